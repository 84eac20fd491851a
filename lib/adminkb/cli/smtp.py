"""`adminkb smtp probe` (the SMTP session test), `smtp audit` (security checks) and `smtp investigate`.

Unlike the other commands, `smtp probe` exits with swaks's numbers (see `--help`), and a usage
error exits with 1 ("unusable input") because 2 means "could not connect" here. `smtp audit`
keeps the project's codes: 0 no problem, 1 problems, 2 bad input. `smtp investigate` reads
W3C logs and exits with 1 when it finds a burst of failed authentication.
"""

from __future__ import annotations

import argparse
import os
import sys
import types

from adminkb.cli import MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS, add_help_option, bounded_number, with_cli_option
from adminkb import investigate
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.output import display_width, render_blocks, render_csv, render_json, render_table, write_csv
from adminkb.smtp import DEFAULT_EHLO_NAME, EXIT_INPUT, STEPS, parse_host_port, probe
from adminkb.smtp.addresses import validate_local_source_address
from adminkb.smtp.audit import DEFAULT_VRFY_USER, MAX_CONNECTIONS, AuditReport, audit
from adminkb.smtp.probe import ProbeResult
from adminkb.smtp.session import host_port
from adminkb.smtp.transcript import MARKER_STYLES

# The only way to give the AUTH password: a command-line option would land in the shell history.
PASSWORD_VARIABLE = "ADMINKB_SMTP_PASSWORD"
DEFAULT_TIMEOUT = 10.0


def _usage_error(parser: argparse.ArgumentParser, text: str) -> None:
    parser.print_usage(sys.stderr)
    parser.exit(EXIT_INPUT, message("cli.usage_error", prog=parser.prog, detail=text) + "\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("smtp", add_help=False, help=message("smtp.cli.area_help"),
                                 description=message("smtp.cli.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True
    parser = verbs.add_parser("probe", add_help=False, help=message("smtp.cli.probe_help"),
                              description=message("smtp.cli.probe_description"),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    # Usage errors are "unusable input", exit code 1 in swaks's numbering.
    parser.error = types.MethodType(_usage_error, parser)  # type: ignore[method-assign]
    add_help_option(parser)
    parser.add_argument("target", metavar="HOST[:PORT]", help=message("smtp.cli.target_help"))
    parser.add_argument("--from", dest="mail_from", required=True, metavar="ADDR", help=message("smtp.cli.from_help"))
    parser.add_argument("--to", dest="rcpt_to", action="append", required=True, metavar="ADDR",
                        help=message("smtp.cli.to_help"))
    parser.add_argument("--quit-after", choices=STEPS, metavar="STEP",
                        help=message("smtp.cli.quit_after_help", steps=", ".join(STEPS)))
    parser.add_argument("--send", action="store_true", help=message("smtp.cli.send_help"))
    parser.add_argument("--starttls", action="store_true", help=message("smtp.cli.starttls_help"))
    parser.add_argument("--no-verify", action="store_true", help=message("smtp.cli.no_verify_help"))
    parser.add_argument("--auth-user", metavar="USER", help=message("smtp.cli.auth_user_help"))
    parser.add_argument("--source-ip", metavar="IP", help=message("smtp.cli.source_ip_help"))
    parser.add_argument("--timeout", type=bounded_number(float, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS), default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=message("smtp.cli.timeout_help", default=f"{DEFAULT_TIMEOUT:g}"))
    parser.add_argument("--ehlo", default=DEFAULT_EHLO_NAME, metavar="NAME",
                        help=message("smtp.cli.ehlo_help", default=DEFAULT_EHLO_NAME))
    parser.add_argument("--markers", choices=MARKER_STYLES, default="telnet", help=message("smtp.cli.markers_help"))
    parser.add_argument("--format", choices=("table", "json"), default="table", help=message("smtp.cli.format_help"))
    parser.set_defaults(handler=run_probe)
    _register_audit(verbs)
    _register_investigate(verbs)


def _register_audit(verbs: argparse._SubParsersAction) -> None:
    # The audit keeps the project's exit codes (2 for a usage error), unlike probe.
    parser = verbs.add_parser("audit", add_help=False, help=message("smtp_audit.cli.audit_help"),
                              description=message("smtp_audit.cli.audit_description", max_connections=MAX_CONNECTIONS),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    parser.add_argument("target", metavar="HOST[:PORT]", help=message("smtp.cli.target_help"))
    parser.add_argument("--local-domain", metavar="DOMAIN", help=message("smtp_audit.cli.local_domain_help"))
    parser.add_argument("--lab-ca", metavar="FILE", help=message("smtp_audit.cli.lab_ca_help"))
    parser.add_argument("--tls-name", metavar="NAME", help=message("smtp_audit.cli.tls_name_help"))
    parser.add_argument("--vrfy-user", default=DEFAULT_VRFY_USER, metavar="USER",
                        help=message("smtp_audit.cli.vrfy_user_help", default=DEFAULT_VRFY_USER))
    parser.add_argument("--source-ip", metavar="IP", help=message("smtp.cli.source_ip_help"))
    parser.add_argument("--timeout", type=bounded_number(float, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS), default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=message("smtp.cli.timeout_help", default=f"{DEFAULT_TIMEOUT:g}"))
    parser.add_argument("--ehlo", default=DEFAULT_EHLO_NAME, metavar="NAME",
                        help=message("smtp.cli.ehlo_help", default=DEFAULT_EHLO_NAME))
    parser.add_argument("--transcript", action="store_true", help=message("smtp_audit.cli.transcript_help"))
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help=message("smtp_audit.cli.format_help"))
    parser.set_defaults(handler=run_audit)


def run_audit(arguments: argparse.Namespace) -> int:
    """Run the audit the arguments describe, print it, and return 0 (no problem), 1 (problems) or 2."""
    try:
        host, port = parse_host_port(arguments.target)
        source_address = validate_local_source_address(arguments.source_ip, "--source-ip")
        report = audit(host, port, local_domain=arguments.local_domain, cafile=arguments.lab_ca,
                       tls_name=arguments.tls_name, vrfy_user=arguments.vrfy_user, timeout=arguments.timeout,
                       source_address=source_address, ehlo_name=arguments.ehlo)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return error.exit_status
    if arguments.format == "json":
        print(render_json(report.to_dict()))
    elif arguments.format == "csv":
        write_csv(render_csv(report.rows(), AUDIT_COLUMNS))
    else:
        print(render_audit(report, transcript=arguments.transcript))
    return report.exit_code


AUDIT_COLUMNS = ("item", "outcome", "explanation", "fix")
# Terminal columns for the two long cells of the audit table; CSV and JSON keep whole texts.
EXPLANATION_WIDTH = 60
FIX_WIDTH = 40


def wrap_cell(text: str, width: int) -> str:
    """Wrap `text` into lines of at most `width` terminal columns (Chinese characters count two).

    English breaks at the last space on the line; Chinese, which has no spaces, breaks between
    any two characters.
    """
    lines: list[str] = []
    current = ""
    for character in text:
        if display_width(current + character) <= width:
            current += character
            continue
        space = current.rfind(" ")
        if character.isascii() and not character.isspace() and space > 0:
            lines.append(current[:space])
            current = current[space + 1:] + character
        else:
            lines.append(current.rstrip())
            current = character.lstrip()
    if current:
        lines.append(current)
    return "\n".join(lines)


def render_audit(report: AuditReport, *, transcript: bool = False) -> str:
    """Render the audit as a heading, a table with a verdict and a fix per item, and a summary."""
    headers = {column: message(f"smtp_audit.render.column_{column}") for column in AUDIT_COLUMNS}
    parts = [message("smtp_audit.render.heading", target=host_port(report.host, report.port)), ""]
    if transcript:
        parts += [report.transcript_text(), ""]
    rows = [{**row, "explanation": wrap_cell(row["explanation"], EXPLANATION_WIDTH),
             "fix": wrap_cell(row["fix"], FIX_WIDTH)} for row in report.rows()]
    parts.append(render_table(rows, AUDIT_COLUMNS, headers))
    parts.append("")
    if report.problems:
        parts.append(message("smtp_audit.render.summary_problems", count=len(report.problems),
                             connections=report.connections))
    else:
        parts.append(message("smtp_audit.render.summary_ok", connections=report.connections))
    return "\n".join(parts)


INVESTIGATE_VIEWS = ("summary", "recipients", "timeline", "overview")


def _register_investigate(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("investigate", add_help=False, help=message("investigate.cli.help"),
                              description=message("investigate.cli.description"),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    parser.add_argument("paths", nargs="+", metavar="PATH", help=message("investigate.cli.paths_help"))
    parser.add_argument("--local-domain", action="append", required=True, metavar="DOMAIN",
                        help=message("investigate.cli.local_domain_help"))
    parser.add_argument("--view", choices=INVESTIGATE_VIEWS, default="summary",
                        help=message("investigate.cli.view_help"))
    parser.add_argument("--client", metavar="IP", help=message("investigate.cli.client_help"))
    parser.add_argument("--account", metavar="USER", help=message("investigate.cli.account_help"))
    parser.add_argument("--window", default=investigate.DEFAULT_WINDOW, metavar="LENGTH",
                        help=message("investigate.cli.window_help", default=investigate.DEFAULT_WINDOW))
    parser.add_argument("--threshold", type=bounded_number(int, 1, 1_000_000), default=investigate.DEFAULT_BURST_THRESHOLD, metavar="COUNT",
                        help=message("investigate.cli.threshold_help", default=investigate.DEFAULT_BURST_THRESHOLD))
    parser.add_argument("--frequency", default=investigate.DEFAULT_FREQUENCY, metavar="LENGTH",
                        help=message("investigate.cli.frequency_help", default=investigate.DEFAULT_FREQUENCY))
    parser.add_argument("--tz", metavar="ZONE", help=message("investigate.cli.tz_help"))
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help=message("investigate.cli.format_help"))
    parser.set_defaults(handler=run_investigate)


# investigate parameters that InputError names, and the `smtp investigate` options that set them.
INVESTIGATE_OPTIONS = {"window": "--window", "frequency": "--frequency", investigate.SUMMARY_FUNCTIONS: "--view summary"}


def run_investigate(arguments: argparse.Namespace) -> int:
    """Read the logs, print the chosen view, and return 1 when a burst of failed AUTH was found, else 0 (2: bad input)."""
    from adminkb.w3c import read_w3c

    try:
        frame = read_w3c(arguments.paths, tz=arguments.tz)
        failures = investigate.auth_failures(frame, window=arguments.window, threshold=arguments.threshold)
        tables = _investigation_tables(frame, failures, arguments)
    except InputError as error:
        print(message("cli.error_prefix", text=str(with_cli_option(error, INVESTIGATE_OPTIONS))), file=sys.stderr)
        return error.exit_status
    if arguments.format == "json":
        print(render_json({name: _json_rows(table) for name, table in tables}))
    elif arguments.format == "csv":
        # One CSV document only: the first table of the view.
        _, table = tables[0]
        write_csv(render_csv(_text_rows(table), list(table.columns)))
    else:
        parts = []
        for name, table in tables:
            parts += [message(f"investigate.cli.heading_{name}"), _render_frame(table), ""]
        print("\n".join(parts).rstrip("\n"))
    return 1 if investigate.count_bursts(failures) else 0


def _investigation_tables(frame, failures, arguments: argparse.Namespace) -> list[tuple[str, object]]:
    view = arguments.view
    if view == "summary":
        return [("relays", investigate.relay_report(frame, arguments.local_domain)), ("auth", failures)]
    if view == "recipients":
        return [("recipients", investigate.relayed_recipients(frame, arguments.local_domain))]
    if view == "timeline":
        timeline = investigate.abuse_timeline(frame, arguments.local_domain, client=arguments.client,
                                              account=arguments.account, frequency=arguments.frequency)
        return [("timeline", timeline.reset_index())]
    return [("overview", investigate.abuse_overview(frame, arguments.local_domain, client=arguments.client,
                                                    account=arguments.account))]


def _text_rows(table) -> list[dict[str, str]]:
    """Return a DataFrame's rows with every value as text ("-" for a missing one)."""
    rows = []
    for record in table.to_dict(orient="records"):
        rows.append({column: "-" if value is None or value != value else str(value) for column, value in record.items()})
    return rows


def _json_rows(table) -> list[dict[str, object]]:
    rows = []
    for record in table.to_dict(orient="records"):
        row = {}
        for column, value in record.items():
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            elif hasattr(value, "item"):
                value = value.item()
            row[column] = value
        rows.append(row)
    return rows


def _render_frame(table) -> str:
    if table.empty:
        return message("investigate.cli.nothing_found")
    columns = list(table.columns)
    return render_table(_text_rows(table), columns)


# probe() parameters that InputError names, and the `smtp probe` options that set them.
PROBE_OPTIONS = {"mail_from": "--from", "rcpt_to": "--to", "send=True": "--send", "quit_after": "--quit-after"}


def run_probe(arguments: argparse.Namespace) -> int:
    """Run the probe the arguments describe, print it, and return swaks's exit code."""
    try:
        host, port = parse_host_port(arguments.target)
        password = None
        if arguments.auth_user is not None:
            password = os.environ.get(PASSWORD_VARIABLE)
            if not password:
                raise InputError("smtp.input.password_missing", value=arguments.auth_user,
                                 next_key="smtp.input.password_next")
        source_address = validate_local_source_address(arguments.source_ip, "--source-ip")
        result = probe(host, port, mail_from=arguments.mail_from, rcpt_to=arguments.rcpt_to,
                       quit_after=arguments.quit_after, send=arguments.send, starttls=arguments.starttls,
                       tls_verify=not arguments.no_verify, auth_user=arguments.auth_user, auth_password=password,
                       source_address=source_address, timeout=arguments.timeout, ehlo_name=arguments.ehlo)
    except InputError as error:
        print(message("cli.error_prefix", text=str(with_cli_option(error, PROBE_OPTIONS))), file=sys.stderr)
        return EXIT_INPUT
    if arguments.format == "json":
        print(render_json(result.to_dict()))
    else:
        print(render_text(result, markers=arguments.markers))
    return result.exit_code


def render_text(result: ProbeResult, *, markers: str = "telnet") -> str:
    """Render the transcript, a table explaining each reply, and the verdict."""
    rows = [{"step": message(f"smtp.step.{recorded.step}"), "reply": recorded.reply.raw[0],
             "meaning": "\n".join(explanation.lines())}
            for recorded, explanation in result.explanations()]
    headers = {"step": message("smtp.render.column_step"), "reply": message("smtp.render.column_reply"),
               "meaning": message("smtp.render.column_meaning")}
    parts = [message("smtp.render.transcript_heading", target=host_port(result.host, result.port)),
             result.transcript.to_text(markers=markers), ""]
    if rows:
        parts += [message("smtp.render.explanations_heading"),
                  render_blocks(rows, ["step", "reply", "meaning"], headers), ""]
    parts += result.verdict.lines()
    return "\n".join(parts)
