"""`adminkb log read|summary|report|trace`: IIS SMTP logs on the command line.

`read` writes the rows of one or more logs as CSV (UTF-8 with BOM, to stdout or a file) or
as Parquet (to a file). `summary` counts files, blocks, rows and skipped lines. Both exit 0
when they produced their output, even if some lines were not rows, because those lines are
counted on stderr and listed by `summary`. They exit 2 when the input cannot be used.

`report` prints the SMTP analyses of `adminkb.smtplog` and can save their plots as PNG
files. It exits 0 once the report is out. `trace` reports whether a message left. It exits 0
when the message was delivered to a remote server and 1 when it was not or was not found.
Both exit 2 when the input cannot be used.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from adminkb.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROBLEMS, add_help_option, with_cli_option
from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.output import render_json, render_table
from adminkb.plotting import RenderedFigure
from adminkb.smtplog import DEFAULT_TOP, SmtpLogAnalysis, analyze, checked_top, table_title
from adminkb.smtplog.trace import TRACE_PARAMETERS
from adminkb.w3c import AUTO, DEFAULT_ENCODING, LOG_FORMATS, read_log, summarize
from adminkb.w3c import skipped as skipped_reasons
from adminkb.w3c.sources import expand_paths

READ_FORMATS = ("csv", "parquet")
SUMMARY_FORMATS = ("table", "json")
REPORT_FORMATS = ("table", "json")
# The PNG files `report --plot-dir` writes, by file name, with the method that draws each.
PLOT_FILES = {
    "hourly.png": lambda analysis, top: analysis.plot_hourly(),
    "top_clients.png": lambda analysis, top: analysis.plot_top_clients(top),
    "top_senders.png": lambda analysis, top: analysis.plot_top_senders(top),
    "top_recipients.png": lambda analysis, top: analysis.plot_top_recipients(top),
    "relay_denials.png": lambda analysis, top: analysis.plot_relay_denials(top),
}
# The summary table lists at most this many skipped lines; `--format json` lists them all.
SKIPPED_LINES_SHOWN = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("log", add_help=False, help=message("w3c.cli.area_help"),
                                 description=message("w3c.cli.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True

    read = verbs.add_parser("read", add_help=False, help=message("w3c.cli.read_help"),
                            description=message("w3c.cli.read_description"),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(read)
    _add_input_options(read)
    read.add_argument("--format", choices=READ_FORMATS, default="csv", help=message("w3c.cli.read_format_help"))
    read.add_argument("--out", metavar="FILE", help=message("w3c.cli.out_help"))
    read.add_argument("--force", action="store_true", help=message("w3c.cli.force_help"))
    read.set_defaults(handler=run_read)

    summary = verbs.add_parser("summary", add_help=False, help=message("w3c.cli.summary_help"),
                               description=message("w3c.cli.summary_description"),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(summary)
    _add_input_options(summary)
    summary.add_argument("--format", choices=SUMMARY_FORMATS, default="table",
                         help=message("w3c.cli.summary_format_help"))
    summary.set_defaults(handler=run_summary)

    report = verbs.add_parser("report", add_help=False, help=message("w3c.cli.report_help"),
                              description=message("w3c.cli.report_description"),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(report)
    _add_input_options(report)
    report.add_argument("--top", default=DEFAULT_TOP, metavar="N", help=message("w3c.cli.top_help"))
    report.add_argument("--format", choices=REPORT_FORMATS, default="table", help=message("w3c.cli.report_format_help"))
    report.add_argument("--plot-dir", metavar="FOLDER", help=message("w3c.cli.plot_dir_help"))
    report.add_argument("--force", action="store_true", help=message("w3c.cli.plot_force_help"))
    report.set_defaults(handler=run_report)

    trace = verbs.add_parser("trace", add_help=False, help=message("w3c.cli.trace_help"),
                             description=message("w3c.cli.trace_description"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(trace)
    _add_input_options(trace)
    trace.add_argument("--from", dest="sender", metavar="ADDRESS", help=message("w3c.cli.trace_from_help"))
    trace.add_argument("--to", dest="recipient", metavar="ADDRESS", help=message("w3c.cli.trace_to_help"))
    trace.add_argument("--message-id", metavar="ID", help=message("w3c.cli.trace_message_id_help"))
    trace.add_argument("--format", choices=REPORT_FORMATS, default="table", help=message("w3c.cli.report_format_help"))
    trace.set_defaults(handler=run_trace)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help=message("w3c.cli.paths_help"))
    parser.add_argument("--tz", metavar="ZONE", help=message("w3c.cli.tz_help"))
    parser.add_argument("--log-format", choices=(AUTO, *LOG_FORMATS), default=AUTO,
                        help=message("w3c.cli.log_format_help"))
    parser.add_argument("--encoding", default=DEFAULT_ENCODING, metavar="CODEPAGE",
                        help=message("w3c.cli.encoding_help", default=DEFAULT_ENCODING))


def _read(arguments: argparse.Namespace) -> pd.DataFrame:
    return read_log(arguments.paths, log_format=arguments.log_format, tz=arguments.tz, encoding=arguments.encoding)


def run_read(arguments: argparse.Namespace) -> int:
    """Write the rows of the logs as CSV or Parquet; return 0, or 2 when the input cannot be used."""
    try:
        out = _checked_output(arguments)
        frame = _read(arguments)
        if out is None:
            _write_csv_to_stdout(frame)
        elif arguments.format == "parquet":
            write_atomically(out, lambda handle: frame.to_parquet(handle, engine="pyarrow", index=False))
        else:
            write_atomically(out, lambda handle: _write_csv(frame, handle))
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    document = summarize(frame)
    print(message("w3c.cli.read_done", rows=document["rows"], files=len(document["files"]),
                  blocks=document["blocks"], skipped=document["skipped"]), file=sys.stderr)
    if document["skipped"]:
        print(message("w3c.cli.read_skipped_next"), file=sys.stderr)
    if document["empty_files"]:
        print(message("w3c.cli.empty_files", count=len(document["empty_files"]),
                      names=", ".join(document["empty_files"])), file=sys.stderr)
    return EXIT_OK


def run_summary(arguments: argparse.Namespace) -> int:
    """Print what the logs hold; return 0, or 2 when the input cannot be used."""
    try:
        frame = _read(arguments)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    document = summarize(frame)
    if arguments.format == "json":
        print(render_json(document))
    else:
        print(render_summary(document))
    return EXIT_OK


def _checked_output(arguments: argparse.Namespace) -> Path | None:
    """Return the output file, after checking that it can be written without harming an input."""
    if arguments.out is None:
        if arguments.format == "parquet":
            raise InputError("w3c.cli.parquet_needs_out", next_key="w3c.cli.parquet_needs_out_next")
        return None
    out = Path(arguments.out)
    if out.is_dir():
        raise InputError("w3c.cli.out_is_folder", value=str(out), next_key="w3c.cli.out_next")
    if not out.parent.is_dir():
        raise InputError("w3c.cli.out_folder_missing", value=str(out.parent), next_key="w3c.cli.out_next")
    for source in expand_paths(arguments.paths):
        if _same_file(out, source.path):
            raise InputError("w3c.cli.out_is_input", value=str(out), next_key="w3c.cli.out_next")
    if out.exists() and not arguments.force:
        raise InputError("w3c.cli.out_exists", value=str(out), next_key="w3c.cli.out_exists_next")
    return out


def _same_file(first: Path, second: Path) -> bool:
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()


def _mode_for(path: Path) -> int:
    """Return the permission bits for a new `path`: the existing file's, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through a temporary file in the same folder, then rename it into place.

    Readers of `path` find either the old file or the complete new one, never a part. When
    writing fails, the temporary file is removed and InputError names the output file.
    """
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file readable by its owner only. Give it the mode a plain open()
        # would (0o666 less the umask), or the mode of the file it replaces.
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except OSError as error:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise InputError("w3c.cli.output_failed", value=str(path), detail=os_error_text(error),
                         next_key="w3c.cli.out_next") from None
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _write_csv(frame: pd.DataFrame, handle: BinaryIO) -> None:
    """Write CSV with a UTF-8 byte-order mark, so that Excel reads the Chinese text right."""
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        frame.to_csv(text, index=False, lineterminator="\r\n")
        text.flush()
    finally:
        text.detach()


def _write_csv_to_stdout(frame: pd.DataFrame) -> None:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        # A text-only stream (as some embedding hosts give): write the same text without bytes.
        sys.stdout.write("\ufeff" + frame.to_csv(index=False, lineterminator="\r\n"))
        return
    sys.stdout.flush()
    _write_csv(frame, buffer)
    buffer.flush()


def render_summary(document: dict) -> str:
    """Render the summary as short lines and tables in the user's language."""
    first, last = document["first"], document["last"]
    zone = document["tz"] or message("w3c.cli.zone_as_written" if document["format"] != "w3c" else "w3c.cli.zone_utc")
    lines = [
        message("w3c.cli.summary_heading", format=message(f"w3c.cli.format_name.{document['format']}")),
        message("w3c.cli.summary_counts", files=len(document["files"]), blocks=document["blocks"],
                rows=document["rows"], skipped=document["skipped"]),
        message("w3c.cli.summary_range", first=first, last=last, zone=zone) if first
        else message("w3c.cli.summary_no_times"),
        "",
    ]
    if document["empty_files"]:
        lines += [message("w3c.cli.empty_files", count=len(document["empty_files"]),
                          names=", ".join(document["empty_files"])), ""]
    field_rows = [{"blocks": entry["blocks"], "rows": entry["rows"], "fields": " ".join(entry["fields"])}
                  for entry in document["field_sets"]]
    if field_rows:
        lines += [message("w3c.cli.field_sets_heading"),
                  render_table(field_rows, ("blocks", "rows", "fields"), _headers()), ""]
    if document["skipped"]:
        reason_rows = [{"reason": message(f"w3c.reason.{reason}"), "lines": count}
                       for reason, count in document["skipped_by_reason"].items()]
        lines += [message("w3c.cli.reasons_heading"), render_table(reason_rows, ("reason", "lines"), _headers()), ""]
        shown = document["skipped_lines"][:SKIPPED_LINES_SHOWN]
        skipped_rows = [{"file": line["file"], "line": line["line"], "reason": message(f"w3c.reason.{line['reason']}"),
                         "detail": skipped_detail_text(line["reason"], line["detail"])} for line in shown]
        lines += [message("w3c.cli.skipped_heading", shown=len(shown), total=document["skipped"]),
                  render_table(skipped_rows, ("file", "line", "reason", "detail"), _headers())]
    return "\n".join(lines).rstrip("\n")


# A field count kept as "EXPECTED/FOUND" in a skipped line's detail.
_FIELD_COUNTS = re.compile(r"(\d+)/(\d+)")


def skipped_detail_text(reason: str, detail: str) -> str | None:
    """Return a skipped line's detail as a reader understands it, or None when there is none.

    The JSON output keeps the short, language-neutral detail (`15/0`, `0xB5`). The table spells
    it out instead: the field counts, the byte that could not be decoded, or the text quoted.
    """
    if not detail:
        return None
    counts = _FIELD_COUNTS.fullmatch(detail)
    if counts and reason in (skipped_reasons.FIELD_COUNT, skipped_reasons.NOT_IN_FORMAT):
        return message("w3c.detail.field_count", expected=counts.group(1), found=counts.group(2))
    if reason == skipped_reasons.UNDECODABLE:
        return message("w3c.detail.undecodable", byte=detail)
    return message("w3c.detail.text", text=detail)


def _headers() -> dict[str, str]:
    names: Sequence[str] = ("blocks", "rows", "fields", "reason", "lines", "file", "line", "detail")
    return {name: message(f"w3c.cli.column.{name}") for name in names}


def _analysis(arguments: argparse.Namespace) -> SmtpLogAnalysis:
    return analyze(_read(arguments), tz=arguments.tz)


def run_report(arguments: argparse.Namespace) -> int:
    """Print the SMTP analyses and write their plots; return 0, or 2 when the input cannot be used."""
    try:
        top = checked_top(arguments.top)
        plot_dir = _checked_plot_dir(arguments.plot_dir, force=arguments.force)
        frame = _read(arguments)
        if sys.stderr.isatty():
            # The analyses of a large log take many seconds, so a line on the terminal explains the wait.
            print(message("w3c.cli.analysing", rows=f"{len(frame):,}"), file=sys.stderr, flush=True)
        analysis = analyze(frame, tz=arguments.tz)
        tables = analysis.report(top)
        figures = _write_plots(analysis, top, plot_dir) if plot_dir is not None else []
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    if arguments.format == "json":
        print(render_json({name: _records(table) for name, table in tables.items()}))
    else:
        print(render_report(tables, analysis.zone))
    for path in figures:
        print(message("w3c.cli.plot_written", path=str(path)), file=sys.stderr)
    return EXIT_OK


# The trace parameters that InputError names, and the `log trace` options that set them.
TRACE_OPTIONS = {TRACE_PARAMETERS: "--from, --to, --message-id"}


def run_trace(arguments: argparse.Namespace) -> int:
    """Print whether a message left; return 0 when it was delivered, 1 when not, 2 on bad input."""
    try:
        result = _analysis(arguments).trace(sender=arguments.sender, recipient=arguments.recipient,
                                            message_id=arguments.message_id)
    except InputError as error:
        print(message("cli.error_prefix", text=str(with_cli_option(error, TRACE_OPTIONS))), file=sys.stderr)
        return EXIT_BAD_INPUT
    if arguments.format == "json":
        print(render_json({"verdict": result.verdict, "summary": result.summary, "criteria": result.criteria,
                           "timeline": _records(result.table())}))
    else:
        lines = [result.criteria, result.summary]
        if not result.timeline.empty:
            lines += ["", _render_frame(result.table())]
        print("\n".join(lines))
    return EXIT_OK if result.left else EXIT_PROBLEMS


def _checked_plot_dir(folder: str | None, *, force: bool) -> Path | None:
    """Return the plot folder after checking that it exists and that no plot would be overwritten."""
    if folder is None:
        return None
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise InputError("w3c.cli.plot_dir_not_folder", value=str(path), next_key="w3c.cli.plot_dir_missing_next")
    if not path.is_dir():
        raise InputError("w3c.cli.plot_dir_missing", value=str(path), next_key="w3c.cli.plot_dir_missing_next")
    existing = [name for name in PLOT_FILES if (path / name).exists()]
    if existing and not force:
        raise InputError("w3c.cli.plot_exists", value=str(path / existing[0]), next_key="w3c.cli.plot_exists_next")
    return path


def _write_plots(analysis: SmtpLogAnalysis, top: int, folder: Path) -> list[Path]:
    """Draw every plot first, then write each through a temporary file, so no PNG is left half-written."""
    figures: dict[str, RenderedFigure] = {name: draw(analysis, top) for name, draw in PLOT_FILES.items()}
    written = []
    for name, figure in figures.items():
        target = folder / name
        write_atomically(target, lambda handle, png=figure.png: handle.write(png))
        written.append(target)
    return written


def _cell_text(value: object) -> object:
    if value is None or (not isinstance(value, (list, tuple)) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value) if isinstance(value, pd.Timestamp) else value


def _records(table: pd.DataFrame) -> list[dict[str, object]]:
    return [{column: _cell_text(value) for column, value in row.items()} for row in table.to_dict("records")]


def _render_frame(table: pd.DataFrame) -> str:
    columns = [str(column) for column in table.columns]
    rows = [{str(column): _cell_text(value) for column, value in row.items()} for row in table.to_dict("records")]
    return render_table(rows, columns)


def render_report(tables: dict[str, pd.DataFrame], zone: str) -> str:
    """Render the report tables under their titles, with a "none" line for an empty table."""
    lines = [message("w3c.cli.report_heading", zone=zone), ""]
    for name, table in tables.items():
        lines.append(message("w3c.cli.report_section", title=table_title(name), rows=len(table)))
        lines.append(_render_frame(table) if not table.empty else message("w3c.cli.report_empty"))
        lines.append("")
    return "\n".join(lines).rstrip("\n")
