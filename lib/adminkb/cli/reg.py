"""`adminkb reg read` and `adminkb reg diff`: .reg files on the command line.

`read` lists keys and values with their decoded data, then the lines regedit would skip. It
exits 0 when the file is clean, 1 when some values would be skipped, 2 when the file cannot be
read. `diff` exits 0 when two files set the same keys and values, 1 when they differ, 2 when a
file cannot be read.
"""

from __future__ import annotations

import argparse
import sys

from adminkb.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROBLEMS, add_help_option
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.output import FORMATS, render_csv, render_json, render_table, write_csv
from adminkb.regfile import (
    REG_QWORD, Change, RegDiff, RegFile, RegValue, diff_regfiles, display_name, read_regfile,
)

READ_COLUMNS = ("line", "key", "name", "type", "value")
TABLE_COLUMNS = ("key", "name", "type", "value")
DIFF_COLUMNS = ("change", "key", "name", "old", "new")
# Binary data shows this many bytes a line in tables.
HEX_BYTES_PER_LINE = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("reg", add_help=False, help=message("regfile.cli.area_help"),
                                 description=message("regfile.cli.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True

    read = verbs.add_parser("read", add_help=False, help=message("regfile.cli.read_help"),
                            description=message("regfile.cli.read_description"),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(read)
    read.add_argument("file", metavar="FILE", help=message("regfile.cli.file_help"))
    _add_common_options(read)
    read.set_defaults(handler=run_read)

    diff = verbs.add_parser("diff", add_help=False, help=message("regfile.cli.diff_help"),
                            description=message("regfile.cli.diff_description"),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(diff)
    diff.add_argument("first", metavar="A", help=message("regfile.cli.first_help"))
    diff.add_argument("second", metavar="B", help=message("regfile.cli.second_help"))
    _add_common_options(diff)
    diff.set_defaults(handler=run_diff)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoding", metavar="CODEPAGE", default=None, help=message("regfile.cli.encoding_help"))
    parser.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))


def run_read(arguments: argparse.Namespace) -> int:
    """Print the keys and values of one .reg file and return 0, 1 (skipped values) or 2 (unreadable)."""
    try:
        regfile = read_regfile(arguments.file, encoding=arguments.encoding)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = read_rows(regfile)
    if arguments.format == "json":
        print(render_json(read_document(regfile)))
    elif arguments.format == "csv":
        write_csv(render_csv(rows, READ_COLUMNS))
        # Problems go to stderr so that the CSV stays one clean table.
        _print_problems(regfile, sys.stderr)
    else:
        print(render_read_text(regfile, rows))
    return EXIT_PROBLEMS if regfile.problems else EXIT_OK


def run_diff(arguments: argparse.Namespace) -> int:
    """Print the differences between two .reg files and return 0 (same), 1 (differ) or 2 (unreadable)."""
    try:
        first = read_regfile(arguments.first, encoding=arguments.encoding)
        second = read_regfile(arguments.second, encoding=arguments.encoding)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    for regfile in (first, second):
        if regfile.problems:
            print(message("regfile.cli.diff_problems", file=regfile.source, count=len(regfile.problems)),
                  file=sys.stderr)
    diff = diff_regfiles(first, second)
    rows = diff_rows(diff)
    if arguments.format == "json":
        print(render_json({"first": first.source, "second": second.source, "equal": diff.equal,
                           "changes": [_change_document(change) for change in diff]}))
    elif arguments.format == "csv":
        write_csv(render_csv(rows, DIFF_COLUMNS))
    elif diff.equal:
        print(message("regfile.cli.diff_equal", first=first.source, second=second.source))
    else:
        print(message("regfile.cli.diff_summary", first=first.source, second=second.source, count=len(diff)))
        print(render_table(rows, DIFF_COLUMNS, _headers(DIFF_COLUMNS)))
    return EXIT_OK if diff.equal else EXIT_PROBLEMS


def read_rows(regfile: RegFile) -> list[dict[str, object]]:
    """Return one row a value (or a key without values, or a key deletion), in file order."""
    rows: list[dict[str, object]] = []
    for section in regfile.keys:
        if section.delete:
            rows.append({"line": section.line, "key": section.path, "name": "", "type": "",
                         "value": message("regfile.cli.key_deleted")})
            continue
        if not section.values:
            rows.append({"line": section.line, "key": section.path, "name": "", "type": "", "value": ""})
        for entry in section.values:
            rows.append({"line": entry.line, "key": section.path, "name": display_name(entry.name),
                         "type": entry.value.type_name if entry.value else "-",
                         "value": display_value(entry.value)})
    return rows


def render_read_text(regfile: RegFile, rows: list[dict[str, object]]) -> str:
    """Render the summary line, the table of values, and the problems after it."""
    parts = [message("regfile.cli.summary", file=regfile.source, header=regfile.header, encoding=regfile.encoding,
                     keys=len(regfile.keys), values=regfile.value_count)]
    if rows:
        parts.append(render_table(rows, TABLE_COLUMNS, _headers(TABLE_COLUMNS)))
    else:
        parts.append(message("regfile.cli.no_entries"))
    if regfile.problems:
        parts.append("")
        parts.append(_problems_text(regfile))
    return "\n".join(parts)


def read_document(regfile: RegFile) -> dict[str, object]:
    """Return the JSON document for `reg read`: the file, its keys and values, and its problems."""
    keys = []
    for section in regfile.keys:
        values = [{"line": entry.line, "name": entry.name, "delete": entry.value is None,
                   **(_value_document(entry.value) if entry.value else {})}
                  for entry in section.values]
        keys.append({"line": section.line, "key": section.path, "delete": section.delete, "values": values})
    return {"file": regfile.source, "header": regfile.header, "encoding": regfile.encoding, "keys": keys,
            "problems": [problem.to_dict() for problem in regfile.problems]}


def display_value(value: RegValue | None) -> str:
    """Return value data as a person reads it: numbers with hex beside, text, or hex bytes."""
    if value is None:
        return message("regfile.cli.value_deleted")
    decoded = value.decoded
    if isinstance(decoded, int):
        width = 16 if value.type == REG_QWORD else 8
        return f"{decoded} (0x{decoded:0{width}x})"
    if isinstance(decoded, str):
        return _visible(decoded)
    if isinstance(decoded, list):
        return "\n".join(_visible(item) for item in decoded)
    return "\n".join(decoded[start: start + HEX_BYTES_PER_LINE].hex(" ")
                     for start in range(0, len(decoded), HEX_BYTES_PER_LINE))


def diff_rows(diff: RegDiff) -> list[dict[str, object]]:
    return [{"change": message(f"regfile.cli.change.{change.kind}"), "key": change.key,
             "name": display_name(change.name), "old": _typed_value(change.old), "new": _typed_value(change.new)}
            for change in diff]


def _typed_value(value: RegValue | None) -> str:
    if value is None:
        return ""
    return f"{value.type_name}: {display_value(value)}"


def _visible(text: str) -> str:
    """Show NUL and line breaks inside registry text as escapes, so one value stays one cell."""
    return text.replace("\0", "\\0").replace("\r", "\\r").replace("\n", "\\n")


def _value_document(value: RegValue) -> dict[str, object]:
    decoded = value.decoded
    return {"type": value.type_name, "type_number": value.type,
            "value": None if isinstance(decoded, bytes) else decoded, "data": value.data.hex()}


def _change_document(change: Change) -> dict[str, object]:
    return {"kind": change.kind, "key": change.key, "name": change.name,
            "old": _value_document(change.old) if change.old else None,
            "new": _value_document(change.new) if change.new else None}


def _headers(columns: tuple[str, ...]) -> dict[str, str]:
    return {column: message(f"regfile.cli.column_{column}") for column in columns}


def _problems_text(regfile: RegFile) -> str:
    lines = [message("regfile.cli.problems_heading", count=len(regfile.problems))]
    for problem in regfile.problems:
        first, *rest = problem.describe().splitlines()
        lines.append(f"- {first}")
        lines.extend(f"  {line}" for line in rest)
    return "\n".join(lines)


def _print_problems(regfile: RegFile, stream) -> None:
    if regfile.problems:
        print(_problems_text(regfile), file=stream)
