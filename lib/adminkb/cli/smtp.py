"""`adminkb smtp probe` (the SMTP session test) and `adminkb smtp audit` (security checks).

Unlike the other commands, `smtp probe` exits with swaks's numbers (see `--help`), and a usage
error exits with 1 ("unusable input") because 2 means "could not connect" here. `smtp audit`
keeps the project's codes: 0 no problem, 1 problems, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import types

from adminkb.cli import add_help_option
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.output import display_width, render_csv, render_json, render_table
from adminkb.smtp import DEFAULT_EHLO_NAME, EXIT_INPUT, STEPS, parse_host_port, probe
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
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=message("smtp.cli.timeout_help", default=f"{DEFAULT_TIMEOUT:g}"))
    parser.add_argument("--ehlo", default=DEFAULT_EHLO_NAME, metavar="NAME",
                        help=message("smtp.cli.ehlo_help", default=DEFAULT_EHLO_NAME))
    parser.add_argument("--markers", choices=MARKER_STYLES, default="telnet", help=message("smtp.cli.markers_help"))
    parser.add_argument("--format", choices=("table", "json"), default="table", help=message("smtp.cli.format_help"))
    parser.set_defaults(handler=run_probe)
    _register_audit(verbs)


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
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
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
        report = audit(host, port, local_domain=arguments.local_domain, cafile=arguments.lab_ca,
                       tls_name=arguments.tls_name, vrfy_user=arguments.vrfy_user, timeout=arguments.timeout,
                       source_address=arguments.source_ip, ehlo_name=arguments.ehlo)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return error.exit_status
    if arguments.format == "json":
        print(render_json(report.to_dict()))
    elif arguments.format == "csv":
        sys.stdout.write(render_csv(report.rows(), AUDIT_COLUMNS))
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
        result = probe(host, port, mail_from=arguments.mail_from, rcpt_to=arguments.rcpt_to,
                       quit_after=arguments.quit_after, send=arguments.send, starttls=arguments.starttls,
                       tls_verify=not arguments.no_verify, auth_user=arguments.auth_user, auth_password=password,
                       source_address=arguments.source_ip, timeout=arguments.timeout, ehlo_name=arguments.ehlo)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
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
                  render_table(rows, ["step", "reply", "meaning"], headers), ""]
    parts += result.verdict.lines()
    return "\n".join(parts)
