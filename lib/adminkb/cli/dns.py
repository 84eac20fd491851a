"""`adminkb dns check`: the DNS checks for mail delivery on the command line.

Output is a table, one JSON document or CSV. Exit status: 0 when every check is ok or a
warning, 1 when a check found a problem or could not decide (SERVFAIL, REFUSED, timeout, no
server reachable), 2 when the input cannot be used.
"""

from __future__ import annotations

import argparse
import sys

from adminkb.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROBLEMS, MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS, add_help_option, bounded_number
from adminkb.dnscheck import DEFAULT_TIMEOUT, CheckResult, check_domain, worst_verdict
from adminkb.dnscheck.resolver import (
    checked_domain, checked_timeout, format_nameserver, parse_nameserver, system_configuration_source,
    system_nameservers,
)
from adminkb.dnscheck.result import PROBLEM, UNKNOWN, VERDICTS
from adminkb.dnscheck.table import verdict_text
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.output import FORMATS, render_csv, render_json, render_table, write_csv

TABLE_COLUMNS = ("check", "subject", "verdict", "records")
CSV_COLUMNS = ("check", "subject", "verdict", "outcome", "spf_result", "records", "explanation", "next_step")


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("dns", add_help=False, help=message("dnscheck.cli.area_help"),
                                 description=message("dnscheck.cli.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True
    check = verbs.add_parser("check", add_help=False, help=message("dnscheck.cli.check_help"),
                             description=message("dnscheck.cli.check_description"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(check)
    check.add_argument("domain", metavar="DOMAIN", help=message("dnscheck.cli.domain_help"))
    check.add_argument("--nameserver", metavar="HOST[:PORT]", help=message("dnscheck.cli.nameserver_help"))
    check.add_argument("--ip", metavar="SENDING_IP", help=message("dnscheck.cli.ip_help"))
    check.add_argument("--dnsbl", action="append", default=[], metavar="ZONE",
                       help=message("dnscheck.cli.dnsbl_help"))
    check.add_argument("--timeout", type=bounded_number(float, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS), default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help=message("dnscheck.cli.timeout_help", default=f"{DEFAULT_TIMEOUT:g}"))
    check.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))
    check.set_defaults(handler=run_check)


def run_check(arguments: argparse.Namespace) -> int:
    """Run every DNS check for the domain, print the results, and return 0, 1 or 2."""
    from_system = arguments.nameserver is None
    try:
        timeout = checked_timeout(arguments.timeout)
        domain = checked_domain(arguments.domain)
        servers = system_nameservers() if from_system else [parse_nameserver(arguments.nameserver)]
        results = check_domain(domain, nameserver=servers, ip=arguments.ip, dnsbl=arguments.dnsbl, timeout=timeout)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    verdict = worst_verdict(results)
    queried = [format_nameserver(address, port) for address, port in servers]
    nameserver = ", ".join(queried)
    # The summary names the source when the servers came from this machine's configuration.
    described = nameserver
    if from_system:
        described = message("dnscheck.cli.system_nameservers", servers=nameserver,
                            source=system_configuration_source())
    if arguments.format == "json":
        print(render_json({"domain": domain, "ip": arguments.ip, "nameserver": nameserver,
                           "nameservers": queried, "nameserver_source": "system" if from_system else "option",
                           "timeout": timeout, "verdict": verdict, "results": [result.to_dict() for result in results]}))
    elif arguments.format == "csv":
        if from_system:
            # CSV output has no place for it, so the servers queried go to stderr.
            print(message("dnscheck.cli.queried_note", nameserver=described), file=sys.stderr)
        rows = [{**result.to_dict(), "records": "\n".join(result.records)} for result in results]
        write_csv(render_csv(rows, CSV_COLUMNS))
    else:
        print(render_text(domain, described, results))
    return EXIT_PROBLEMS if verdict in (PROBLEM, UNKNOWN) else EXIT_OK


def render_text(domain: str, nameserver: str, results: list[CheckResult]) -> str:
    """Render the summary line, the table of results, then each result's explanation and next step."""
    counts = {verdict: sum(result.verdict == verdict for result in results) for verdict in VERDICTS}
    lines = [message("dnscheck.cli.summary", domain=domain, nameserver=nameserver, **counts)]
    rows = [{"check": message(f"dnscheck.check_name.{result.check}"), "subject": result.subject,
             "verdict": verdict_text(result), "records": "\n".join(result.records)} for result in results]
    headers = {column: message(f"dnscheck.cli.column_{column}") for column in TABLE_COLUMNS}
    lines.append(render_table(rows, TABLE_COLUMNS, headers))
    lines.append("")
    for result in results:
        lines.append(message("dnscheck.cli.result_line", verdict=verdict_text(result),
                             check=message(f"dnscheck.check_name.{result.check}"), subject=result.subject,
                             explanation=result.explanation()))
        lines.append("  " + message("dnscheck.cli.next_step", step=result.next_step()))
    return "\n".join(lines)
