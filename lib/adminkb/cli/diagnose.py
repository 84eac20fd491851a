"""`adminkb diagnose`: the guided delivery diagnosis on the command line.

Exit status, one per outcome class of the most likely cause (documented in `--help`):
0 every check passed, 1 warnings only, 2 unusable input, 10 connection, 11 relay,
12 queue and delivery, 13 DNS, 14 configuration.
"""

from __future__ import annotations

import argparse

from adminkb.cli import MAX_SITE_ID, add_help_option, bounded_number
from adminkb.diagnose import DiagnoseRequest, diagnose, select_virtual_server
from adminkb.diagnose.checks import checked_folder, checked_log_path, checked_smart_host
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.metabase import read_metabase
from adminkb.output import render_blocks, render_json
from adminkb.smtp import parse_host_port
from adminkb.smtp.addresses import validate_address, validate_local_source_address, validate_timeout

COLUMNS = ("step", "verdict", "evidence", "next_step")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("diagnose", add_help=False, help=message("diagnose.cli.help"),
                                   description=message("diagnose.cli.description"),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    parser.add_argument("--server", metavar="HOST[:PORT]", required=True, help=message("diagnose.cli.server_help"))
    parser.add_argument("--from", dest="mail_from", metavar="ADDR", required=True,
                        help=message("diagnose.cli.from_help"))
    parser.add_argument("--to", dest="rcpt_to", metavar="ADDR", required=True, help=message("diagnose.cli.to_help"))
    parser.add_argument("--mailroot", metavar="PATH", help=message("diagnose.cli.mailroot_help"))
    parser.add_argument("--logs", metavar="PATH", help=message("diagnose.cli.logs_help"))
    parser.add_argument("--metabase", metavar="FILE", help=message("diagnose.cli.metabase_help"))
    parser.add_argument("--virtual-server", metavar="N", type=bounded_number(int, 1, MAX_SITE_ID), help=message("diagnose.cli.virtual_server_help"))
    parser.add_argument("--smart-host", metavar="HOST[:PORT]", help=message("diagnose.cli.smart_host_help"))
    parser.add_argument("--check-outbound", action="store_true", help=message("diagnose.cli.check_outbound_help"))
    parser.add_argument("--dns", metavar="SERVER[:PORT]", help=message("diagnose.cli.dns_help"))
    parser.add_argument("--mx-port", metavar="PORT", type=bounded_number(int, 1, 65535),
                        help=message("diagnose.cli.mx_port_help"))
    parser.add_argument("--send-test", action="store_true", help=message("diagnose.cli.send_test_help"))
    parser.add_argument("--source", metavar="ADDR", help=message("diagnose.cli.source_help"))
    parser.add_argument("--timeout", metavar="SECONDS", default="10", help=message("diagnose.cli.timeout_help"))
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help=message("diagnose.cli.format_help"))
    parser.set_defaults(handler=run_diagnose)


def build_request(arguments: argparse.Namespace) -> DiagnoseRequest:
    """Check the options and turn them into a DiagnoseRequest; raise InputError for unusable ones."""
    host, port = parse_host_port(arguments.server)
    validate_address(arguments.mail_from, option="--from")
    validate_address(arguments.rcpt_to, option="--to")
    if arguments.dns and not arguments.check_outbound:
        raise InputError("diagnose.dns_without_outbound", value=arguments.dns,
                         next_key="diagnose.dns_without_outbound_next")
    if arguments.mx_port is not None and not arguments.check_outbound:
        raise InputError("diagnose.mx_port_without_outbound", value=arguments.mx_port,
                         next_key="diagnose.mx_port_without_outbound_next")
    configuration = None
    if arguments.metabase:
        servers = read_metabase(arguments.metabase)
        configuration = select_virtual_server(servers, arguments.virtual_server, port, arguments.metabase)
    return DiagnoseRequest(host=host, port=port, mail_from=arguments.mail_from, rcpt_to=arguments.rcpt_to,
                           mailroot=checked_folder(arguments.mailroot, "--mailroot"),
                           logs=checked_log_path(arguments.logs, "--logs"), configuration=configuration,
                           smart_host=checked_smart_host(arguments.smart_host, "--smart-host"),
                           check_outbound=arguments.check_outbound,
                           send_test=arguments.send_test, dns=arguments.dns, mx_port=arguments.mx_port or 25,
                           timeout=validate_timeout(arguments.timeout),
                           source_address=validate_local_source_address(arguments.source, "--source"))


def run_diagnose(arguments: argparse.Namespace) -> int:
    """Run the diagnosis, print the table (most likely cause on top) and return the class's exit status."""
    result = diagnose(build_request(arguments))
    if arguments.format == "json":
        print(render_json(result.to_dict()))
    else:
        print(result.summary())
        print()
        headers = {column: message(f"diagnose.column.{column}") for column in COLUMNS}
        # One block per step: the evidence and the next step are sentences, too long for columns.
        print(render_blocks(result.rows(), COLUMNS, headers))
    return result.exit_status
