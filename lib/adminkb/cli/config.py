"""`adminkb config`: the SMTP service's own configuration and events, read from copies.

`read` lists each SMTP virtual server's settings from a MetaBase.xml copy. It exits 0 when every
list could be decoded, 1 when a setting carries a note, 2 when the file cannot be used.
"""

from __future__ import annotations

import argparse
import sys

from adminkb.cli import EXIT_OK, EXIT_PROBLEMS, add_help_option
from adminkb.i18n import message
from adminkb.metabase import TABLE_COLUMNS, read_metabase, settings_table
from adminkb.output import FORMATS, render_csv, render_json, render_table


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("config", add_help=False, help=message("config.cli.area_help"),
                                 description=message("config.cli.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True

    read = verbs.add_parser("read", add_help=False, help=message("config.cli.read_help"),
                            description=message("config.cli.read_description"),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(read)
    read.add_argument("path", metavar="FILE", help=message("config.cli.metabase_help"))
    read.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))
    read.set_defaults(handler=run_read)


def _headers(columns) -> dict[str, str]:
    return {column: message(f"metabase.column.{column}") for column in columns}


def run_read(arguments: argparse.Namespace) -> int:
    """Print every SMTP virtual server's settings; return 1 when a list could not be decoded."""
    servers = read_metabase(arguments.path)
    records = settings_table(servers).to_dict(orient="records")
    if arguments.format == "json":
        print(render_json({"path": arguments.path, "settings": records}))
    elif arguments.format == "csv":
        sys.stdout.write(render_csv(records, list(TABLE_COLUMNS)))
    else:
        print(message("config.cli.read_heading", path=arguments.path, count=len(servers)))
        print(render_table(records, TABLE_COLUMNS, _headers(TABLE_COLUMNS)))
    return EXIT_PROBLEMS if any(server.notes for server in servers) else EXIT_OK
