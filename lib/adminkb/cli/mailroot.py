"""`adminkb mailroot scan|summary|diff|archive|resubmit`: a mailroot's files on the command line.

`scan` lists every file with its folder, age, envelope, decoded headers and Badmail reason. It
exits 0 when every file could be read as expected, 1 when some rows carry a note (unreadable,
empty, not mail, malformed headers, orphan .BDR), 2 when the path cannot be used. `summary`
counts messages per folder, lists stuck destination domains and Badmail reasons. It exits 0
when Queue and Badmail are empty, 1 when they hold messages, 2 when the path cannot be used.
`scan --save NAME` keeps the inventory, and `diff --since NAME` lists what changed since then
(exit 1 when anything did). `archive` and `resubmit` list their plan unless --confirm is given,
then carry it out with a journal (see adminkb.mailroot_ops).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from adminkb.cli import EXIT_OK, EXIT_PROBLEMS, add_help_option, bounded_number
from adminkb import mailroot_ops
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.mailroot import BADMAIL, QUEUE
from adminkb.mailroot_read import display_name
from adminkb.mailroot_scan import (MAX_WORKERS, PARALLEL_THRESHOLD, badmail_reasons, diff_inventories, folder_summary, format_age, load_inventory,
                                   save_inventory, scan_mailroot, stuck_domains)
from adminkb.output import FORMATS, render_csv, render_json, render_table, write_csv

TABLE_COLUMNS = ("role", "path", "size", "age", "sender", "recipients", "subject", "error_code", "notes")
SUMMARY_FORMATS = ("table", "json")


# Largest --older-than, in days (100 years). Larger ages overflow the date arithmetic, and
# plan_archive itself rejects negative ages and NaN.
MAX_AGE_DAYS = 36500


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("mailroot", add_help=False, help=message("mailroot.cli.area_help"),
                                 description=message("mailroot.cli.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True

    scan = verbs.add_parser("scan", add_help=False, help=message("mailroot.cli.scan_help"),
                            description=message("mailroot.cli.scan_description"),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(scan)
    scan.add_argument("path", metavar="PATH", help=message("mailroot.cli.path_help"))
    scan.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))
    scan.add_argument("--save", metavar="NAME", help=message("mailroot.cli.save_help"))
    scan.add_argument("--force", action="store_true", help=message("mailroot.cli.force_help"))
    _add_state_dir_option(scan)
    _add_scan_options(scan)
    scan.set_defaults(handler=run_scan)

    diff = verbs.add_parser("diff", add_help=False, help=message("mailroot.cli.diff_help"),
                            description=message("mailroot.cli.diff_description"),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(diff)
    diff.add_argument("path", metavar="PATH", help=message("mailroot.cli.path_help"))
    diff.add_argument("--since", metavar="NAME", required=True, help=message("mailroot.cli.since_help"))
    diff.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))
    _add_state_dir_option(diff)
    _add_scan_options(diff)
    diff.set_defaults(handler=run_diff)

    archive = verbs.add_parser("archive", add_help=False, help=message("mailroot_ops.cli.archive_help"),
                               description=message("mailroot_ops.cli.archive_description"),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(archive)
    archive.add_argument("path", metavar="PATH", help=message("mailroot.cli.path_help"))
    archive.add_argument("--older-than", metavar="DAYS", type=float, required=True,
                         help=message("mailroot_ops.cli.older_than_help"))
    destination = archive.add_mutually_exclusive_group()
    destination.add_argument("--to", metavar="DIR", help=message("mailroot_ops.cli.to_help"))
    destination.add_argument("--zip", metavar="FILE", help=message("mailroot_ops.cli.zip_help"))
    _add_operation_options(archive)
    archive.set_defaults(handler=run_archive)

    resubmit = verbs.add_parser("resubmit", add_help=False, help=message("mailroot_ops.cli.resubmit_help"),
                                description=message("mailroot_ops.cli.resubmit_description"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(resubmit)
    resubmit.add_argument("path", metavar="PATH", help=message("mailroot.cli.path_help"))
    resubmit.add_argument("files", metavar="FILE", nargs="+", help=message("mailroot_ops.cli.files_help"))
    _add_operation_options(resubmit)
    resubmit.add_argument("--again", action="store_true", help=message("mailroot_ops.cli.again_help"))
    resubmit.set_defaults(handler=run_resubmit)

    summary = verbs.add_parser("summary", add_help=False, help=message("mailroot.cli.summary_help"),
                               description=message("mailroot.cli.summary_description"),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(summary)
    summary.add_argument("path", metavar="PATH", help=message("mailroot.cli.path_help"))
    summary.add_argument("--format", choices=SUMMARY_FORMATS, default="table",
                         help=message("mailroot.cli.summary_format_help"))
    _add_scan_options(summary)
    summary.set_defaults(handler=run_summary)


def _add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", metavar="DIR", help=message("mailroot.cli.state_dir_help"))


def _add_operation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--confirm", action="store_true", help=message("mailroot_ops.cli.confirm_help"))
    parser.add_argument("--state-dir", metavar="DIR", help=message("mailroot_ops.cli.journal_dir_help"))
    parser.add_argument("--format", choices=SUMMARY_FORMATS, default="table",
                        help=message("mailroot.cli.summary_format_help"))


def _add_scan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ansi-encoding", metavar="CODEPAGE", default="cp950",
                        help=message("mailroot.cli.ansi_encoding_help"))
    parser.add_argument("--no-progress", action="store_true", help=message("mailroot.cli.no_progress_help"))
    parser.add_argument("--workers", type=bounded_number(int, 1, MAX_WORKERS), metavar="N",
                        help=message("mailroot.cli.workers_help", threshold=f"{PARALLEL_THRESHOLD:,}",
                                     maximum=MAX_WORKERS))


def run_scan(arguments: argparse.Namespace) -> int:
    """Print the inventory of one mailroot; return 1 when some files carry a note."""
    inventory = _scan(arguments)
    if arguments.save:
        saved = save_inventory(inventory, arguments.save, arguments.state_dir, replace=arguments.force)
        print(message("mailroot.cli.saved", path=saved), file=sys.stderr)
    records = plain_records(inventory)
    if arguments.format == "json":
        print(render_json({"path": arguments.path, "files": records}))
    elif arguments.format == "csv":
        write_csv(render_csv(records, list(inventory.columns)))
    else:
        print(message("mailroot.cli.scan_heading", path=arguments.path, count=len(records)))
        print(render_table(records, TABLE_COLUMNS, _headers(TABLE_COLUMNS)))
    unlisted = _warn_unlisted(inventory)
    return EXIT_PROBLEMS if unlisted or (inventory["notes"] != "").any() else EXIT_OK


def _warn_unlisted(inventory: pd.DataFrame) -> bool:
    """Print the folders the scan could not list to stderr; return whether there were any."""
    folders = inventory.attrs.get("unlisted_folders", [])
    if folders:
        print(message("mailroot.unlisted_folders", folders=", ".join(folders)), file=sys.stderr)
    return bool(folders)


def run_diff(arguments: argparse.Namespace) -> int:
    """Print the files that changed since a saved inventory; return 1 when any did."""
    # Load first, so a misspelt name fails before a long scan.
    earlier = load_inventory(arguments.since, arguments.state_dir)
    current = _scan(arguments)
    changes = diff_inventories(earlier, current)
    records = plain_records(changes)
    if arguments.format == "json":
        print(render_json({"path": arguments.path, "since": arguments.since, "changes": records}))
    elif arguments.format == "csv":
        write_csv(render_csv(records, list(changes.columns)))
    else:
        for record in records:
            record["change"] = message(f"mailroot.change.{record['change']}")
        print(message("mailroot.cli.diff_heading", path=arguments.path, name=arguments.since, count=len(records)))
        print(_table_or_none_records(records, list(changes.columns)))
    # Files in a folder that could not be listed would show as gone, so the warning matters here too.
    unlisted = _warn_unlisted(current)
    return EXIT_PROBLEMS if records or unlisted else EXIT_OK


def run_archive(arguments: argparse.Namespace) -> int:
    """Archive old Badmail files, or list the plan when --confirm is missing."""
    if arguments.older_than > MAX_AGE_DAYS:
        raise InputError("mailroot_ops.age_too_large", value=f"{arguments.older_than:.15g}", maximum=MAX_AGE_DAYS,
                         next_key="mailroot_ops.bad_age_next")
    return _run_operation(arguments, mailroot_ops.ARCHIVE, lambda: mailroot_ops.plan_archive(
        arguments.path, arguments.older_than, to=arguments.to, zip_file=arguments.zip))


def run_resubmit(arguments: argparse.Namespace) -> int:
    """Copy messages from Badmail or Drop into Pickup, or list the plan when --confirm is missing."""
    return _run_operation(arguments, mailroot_ops.RESUBMIT,
                          lambda: mailroot_ops.plan_resubmit(arguments.path, arguments.files), again=arguments.again)


def _run_operation(arguments: argparse.Namespace, operation: str, make_plan, again: bool = False) -> int:
    # An interrupted run of the same operation on this mailroot is finished first, and alone:
    # planning anew on top of it could resubmit its messages a second time.
    unfinished = mailroot_ops.unfinished_journals(arguments.path, operation, arguments.state_dir)
    if unfinished and arguments.confirm:
        for journal in unfinished:
            print(message("mailroot_ops.cli.resuming", journal=journal), file=sys.stderr)
            print(mailroot_ops.describe_outcome(_interruptible(mailroot_ops.resume, journal)))
        return EXIT_OK
    for journal in unfinished:
        print(message("mailroot_ops.cli.unfinished", journal=journal), file=sys.stderr)

    plan = make_plan()
    table = plan.table()
    records = plain_records(table)
    earlier = [] if again else mailroot_ops.earlier_resubmits(plan, arguments.state_dir)
    if arguments.format == "json":
        document: dict[str, object] = {"operation": operation, "path": arguments.path,
                                       "destination": str(plan.destination), "confirmed": arguments.confirm,
                                       "steps": records}
        if operation == mailroot_ops.RESUBMIT:
            document["already_resubmitted"] = [
                {"source": display_name(item.source), "finished_at": item.finished_at.isoformat(),
                 "journal": str(item.journal)} for item in earlier]
    else:
        for record in records:
            record["action"] = message(f"mailroot_ops.action.{record['action']}")
        print(message("mailroot_ops.cli.plan_heading", count=len(records), destination=plan.destination))
        print(_table_or_none_records(records, list(table.columns)))
    if not plan.steps:
        if arguments.format == "json":
            print(render_json(document))
        else:
            print(message("mailroot_ops.cli.nothing_to_do"))
        return EXIT_OK
    if not arguments.confirm:
        if arguments.format == "json":
            print(render_json(document))
        else:
            if earlier:
                print(message("mailroot_ops.cli.would_reject",
                              files=mailroot_ops.describe_earlier_resubmits(earlier)))
            print(message("mailroot_ops.cli.dry_run"))
        return EXIT_OK
    outcome = _interruptible(mailroot_ops.execute, plan, arguments.state_dir, again=again)
    if arguments.format == "json":
        document.update({"journal": str(outcome.journal), "done": outcome.done,
                         "missing": [display_name(name) for name in outcome.missing]})
        print(render_json(document))
    else:
        print(mailroot_ops.describe_outcome(outcome))
    return EXIT_OK


def _interruptible(function, *positional, **keywords) -> mailroot_ops.Outcome:
    """Call `function`, and on Ctrl+C print which journal is unfinished before main() prints "Interrupted."."""
    try:
        return function(*positional, **keywords)
    except mailroot_ops.OperationInterrupted as interrupted:
        print(interrupted, file=sys.stderr)
        raise


def run_summary(arguments: argparse.Namespace) -> int:
    """Print messages per folder, stuck domains and Badmail reasons; return 1 when Queue or Badmail contains mail."""
    inventory = _scan(arguments)
    folders = folder_summary(inventory)
    domains = stuck_domains(inventory)
    reasons = badmail_reasons(inventory)
    if arguments.format == "json":
        print(render_json({"path": arguments.path, "folders": plain_records(folders),
                           "stuck_domains": plain_records(domains), "badmail_reasons": plain_records(reasons)}))
    else:
        sections = [message("mailroot.cli.folders_heading", path=arguments.path), _table_or_none(folders), "",
                    message("mailroot.cli.domains_heading"), _table_or_none(domains), "",
                    message("mailroot.cli.reasons_heading"), _table_or_none(reasons)]
        print("\n".join(sections))
    waiting = folders[folders["role"].isin([QUEUE, BADMAIL])]["messages"].sum()
    unlisted = _warn_unlisted(inventory)
    return EXIT_PROBLEMS if waiting or unlisted else EXIT_OK


def _table_or_none_records(records: list[dict[str, object]], columns: list[str]) -> str:
    if not records:
        return message("mailroot.cli.none")
    return render_table(records, columns, _headers(columns))


def _table_or_none(frame: pd.DataFrame) -> str:
    if frame.empty:
        return message("mailroot.cli.none")
    return render_table(plain_records(frame), list(frame.columns), _headers(frame.columns))


def _scan(arguments: argparse.Namespace) -> pd.DataFrame:
    # None lets the scan decide by tree size. --no-progress turns the bar off, and so does
    # output to a file or pipe, where the bar's redrawn lines would only clutter the log.
    progress = False if arguments.no_progress or not sys.stderr.isatty() else None
    return scan_mailroot(arguments.path, progress=progress, ansi_encoding=arguments.ansi_encoding,
                         workers=arguments.workers)


def plain_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Return the rows as plain values: ages as text, times in ISO 8601, recipients one a line."""
    records = []
    for row in frame.to_dict(orient="records"):
        plain = {}
        for column, value in row.items():
            if isinstance(value, list):
                plain[column] = "\n".join(value)
            elif isinstance(value, pd.Timedelta):
                plain[column] = format_age(value)
            elif isinstance(value, pd.Timestamp):
                plain[column] = value.isoformat()
            elif value is pd.NaT or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
                plain[column] = None
            else:
                plain[column] = value
        records.append(plain)
    return records


def _headers(columns) -> dict[str, str]:
    names = {"size": "mailroot.column.size", "sender": "mailroot.column.sender",
             "recipients": "mailroot.column.recipients", "subject": "mailroot.column.subject",
             "name": "mailroot.column.file"}
    return {column: message(names.get(column, f"mailroot.column.{column}")) for column in columns}
