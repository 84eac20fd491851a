"""`adminkb config`: the SMTP service's own configuration and events, read from copies.

`read` lists each SMTP virtual server's settings from a MetaBase.xml copy. It exits 0 when every
list could be decoded, 1 when a setting carries a note, 2 when the file cannot be used.
`collect` writes the batch file that gathers these files on Windows Server 2003 or XP.
`events` lists the SMTP service's errors and warnings from an exported .evtx file or from the
CSV that eventquery.vbs writes on Windows Server 2003 and XP. It exits 0 when there are none in
the range, 1 when there are some, 2 when the file cannot be used.
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta, timezone
from pathlib import Path

from adminkb.cli import EXIT_OK, EXIT_PROBLEMS, MAX_SITE_ID, add_help_option, bounded_number
from adminkb.collect import COPY_BACK, DEFAULT_DAYS, MAX_DAYS, DEFAULT_LOG_FOLDER, DEFAULT_MAILROOT, FOLDER_PREFIX, collect_batch_bytes
from adminkb.errors import InputError, os_error_text
from adminkb.eventlog import COLUMNS as EVENT_COLUMNS
from adminkb.eventlog import DEFAULT_SERVER_OFFSET, read_events
from adminkb.i18n import message
from adminkb.metabase import TABLE_COLUMNS, read_metabase, settings_table
from adminkb.output import FORMATS, render_csv, render_json, render_table, write_csv


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

    events = verbs.add_parser("events", add_help=False, help=message("config.cli.events_help"),
                              description=message("config.cli.events_description"),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(events)
    events.add_argument("path", metavar="FILE", help=message("config.cli.evtx_help"))
    events.add_argument("--since", metavar="TIME", default=None, help=message("config.cli.since_help"))
    events.add_argument("--until", metavar="TIME", default=None, help=message("config.cli.until_help"))
    events.add_argument("--all-sources", action="store_true", help=message("config.cli.all_sources_help"))
    events.add_argument("--utc-offset", metavar="+HH:MM", default=None, help=message("config.cli.utc_offset_help"))
    events.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))
    events.set_defaults(handler=run_events)

    collect = verbs.add_parser("collect", add_help=False, help=message("config.cli.collect_help"),
                               description=message("config.cli.collect_description"),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(collect)
    collect.add_argument("--out", metavar="FILE", required=True, help=message("config.cli.collect_out_help"))
    collect.add_argument("--mailroot", metavar="PATH", default=DEFAULT_MAILROOT,
                         help=message("config.cli.collect_mailroot_help"))
    collect.add_argument("--site", metavar="N", type=bounded_number(int, 1, MAX_SITE_ID), default=1, help=message("config.cli.collect_site_help"))
    collect.add_argument("--days", metavar="DAYS", type=bounded_number(int, 1, MAX_DAYS), default=DEFAULT_DAYS,
                         help=message("config.cli.collect_days_help"))
    collect.add_argument("--log-folder", metavar="PATH", default=DEFAULT_LOG_FOLDER,
                         help=message("config.cli.collect_log_folder_help"))
    collect.add_argument("--force", action="store_true", help=message("config.cli.collect_force_help"))
    collect.set_defaults(handler=run_collect)


def _headers(columns) -> dict[str, str]:
    return {column: message(f"metabase.column.{column}") for column in columns}


def run_read(arguments: argparse.Namespace) -> int:
    """Print every SMTP virtual server's settings; return 1 when a list could not be decoded."""
    servers = read_metabase(arguments.path)
    records = settings_table(servers).to_dict(orient="records")
    if arguments.format == "json":
        print(render_json({"path": arguments.path, "settings": records}))
    elif arguments.format == "csv":
        write_csv(render_csv(records, list(TABLE_COLUMNS)))
    else:
        print(message("config.cli.read_heading", path=arguments.path, count=len(servers)))
        print(render_table(records, TABLE_COLUMNS, _headers(TABLE_COLUMNS)))
    return EXIT_PROBLEMS if any(server.notes for server in servers) else EXIT_OK


# The table leaves out the computer and record number; JSON and CSV keep every column.
EVENT_TABLE_COLUMNS = ("time", "level", "source", "event_id", "text", "explanation", "next_step")


_UTC_OFFSET = re.compile(r"\A([+-])(\d{1,2})(?::?(\d{2}))?\Z")


def parse_utc_offset(text: str | None) -> timezone:
    """Turn "+08:00", "+0800" or "-5" into a fixed time zone; None gives the default (UTC+8)."""
    if text is None:
        return DEFAULT_SERVER_OFFSET
    match = _UTC_OFFSET.match(text.strip())
    if match:
        sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        offset = timedelta(hours=hours, minutes=minutes)
        if minutes < 60 and offset <= timedelta(hours=14):
            return timezone(-offset if sign == "-" else offset)
    raise InputError("config.cli.bad_utc_offset", value=text, next_key="config.cli.bad_utc_offset_next")


def run_events(arguments: argparse.Namespace) -> int:
    """Print the SMTP service's errors and warnings; return 1 when there are any."""
    sources = None if arguments.all_sources else ("SMTPSVC",)
    frame = read_events(arguments.path, since=arguments.since, until=arguments.until, sources=sources,
                        server_timezone=parse_utc_offset(arguments.utc_offset))
    records = []
    for row in frame.to_dict(orient="records"):
        row["time"] = row["time"].strftime("%Y-%m-%d %H:%M:%S")
        row["level"] = message(f"eventlog.level.{row['level']}")
        records.append(row)
    if arguments.format == "json":
        print(render_json({"path": arguments.path, "events": records}))
    elif arguments.format == "csv":
        write_csv(render_csv(records, list(EVENT_COLUMNS)))
    else:
        print(message("config.cli.events_heading", path=arguments.path, count=len(records)))
        if records:
            headers = {column: message(f"eventlog.column.{column}") for column in EVENT_TABLE_COLUMNS}
            print(render_table(records, EVENT_TABLE_COLUMNS, headers))
    return EXIT_PROBLEMS if records else EXIT_OK


def run_collect(arguments: argparse.Namespace) -> int:
    """Write the collection batch file and list what to copy back; an existing file is kept unless --force."""
    data = collect_batch_bytes(mailroot=arguments.mailroot, site=arguments.site, days=arguments.days,
                               log_folder=arguments.log_folder)
    path = Path(arguments.out)
    if path.exists() and not arguments.force:
        raise InputError("collect.output_exists", value=str(path), next_key="collect.output_exists_next")
    try:
        path.write_bytes(data)
    except OSError as error:
        raise InputError("collect.write_failed", value=str(path), reason=os_error_text(error),
                         next_key="collect.write_failed_next") from None
    print(message("collect.wrote", path=path))
    print(message("collect.copy_back_heading", folder=FOLDER_PREFIX + "<COMPUTERNAME>"))
    rows = [{"name": item.file, "description": item.description} for item in COPY_BACK]
    headers = {column: message(f"collect.column.{column}") for column in ("name", "description")}
    print(render_table(rows, ("name", "description"), headers))
    return EXIT_OK
