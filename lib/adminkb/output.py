"""Tabular output for the CLI: an aligned text table, one JSON document, or CSV for Excel.

Tables measure Chinese characters as two columns wide, as terminals draw them, so columns
stay aligned in a zh-TW console.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import TextIO

from adminkb.i18n import message

FORMATS = ("table", "json", "csv")


def display_width(text: str) -> int:
    """Return the number of terminal columns `text` takes (wide and full-width characters take two)."""
    width = 0
    for character in text:
        if unicodedata.combining(character):
            continue
        width += 2 if unicodedata.east_asian_width(character) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


# Control characters other than line breaks, and the bidirectional formatting characters, which
# the table shows as escapes. A header or a server reply can carry an escape sequence, which
# printed raw would recolour or rewrite the admin's terminal, or a right-to-left override,
# which would show text in another order than it has.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    text = str(value).replace("\t", " ")
    return _CONTROL_CHARACTERS.sub(_escape_character, text)


def _escape_character(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def render_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str],
                 headers: Mapping[str, str] | None = None) -> str:
    """Render `rows` as an aligned text table; `headers` maps a column to its displayed title.

    A cell with several lines (a multi-string value, say) continues on the following lines of
    the same row.
    """
    headers = headers or {}
    titles = [headers.get(column, column) for column in columns]
    cells = [[_cell(row.get(column)).splitlines() or [""] for column in columns] for row in rows]
    widths = [display_width(title) for title in titles]
    for row in cells:
        for index, lines in enumerate(row):
            widths[index] = max([widths[index], *(display_width(line) for line in lines)])
    out = ["  ".join(_pad(title, widths[i]) for i, title in enumerate(titles)).rstrip(),
           "  ".join("-" * width for width in widths)]
    for row in cells:
        height = max(len(lines) for lines in row)
        for line_index in range(height):
            parts = [_pad(lines[line_index] if line_index < len(lines) else "", widths[i])
                     for i, lines in enumerate(row)]
            out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def render_blocks(rows: Sequence[Mapping[str, object]], columns: Sequence[str],
                  headers: Mapping[str, str] | None = None) -> str:
    """Render `rows` as one block per row, a "title: value" line per column, for rows too wide for a table.

    Long explanations and multi-line commands stay readable in an 80-column console and in a
    file sent to a colleague. Continuation lines of a value are indented under its first line,
    and a blank line separates the blocks.
    """
    headers = headers or {}
    labels = [message("cli.block_label", title=headers.get(column, column)) for column in columns]
    width = max((display_width(label) for label in labels), default=0)
    blocks = []
    for row in rows:
        lines = []
        for column, label in zip(columns, labels):
            value_lines = _cell(row.get(column)).splitlines() or [""]
            lines.append((_pad(label, width) + value_lines[0]).rstrip())
            lines.extend((" " * width + line).rstrip() for line in value_lines[1:])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_json(document: object) -> str:
    """Render one JSON document, keeping Chinese readable (no \\u escapes)."""
    return json.dumps(document, ensure_ascii=False, indent=2, default=str)


def render_csv(rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> str:
    """Render CSV text that starts with a UTF-8 byte-order mark so that Excel detects UTF-8."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: "" if row.get(column) is None else row.get(column) for column in columns})
    return "\ufeff" + buffer.getvalue()


def write_csv(text: str, stream: TextIO | None = None) -> None:
    """Write CSV text from render_csv() as UTF-8 bytes, whatever the console's code page.

    On Windows Python encodes stdout in the ANSI code page (cp950) even when it is redirected to
    a file, which would turn the byte-order mark into "?" and leave Excel guessing. CSV is meant
    for files and Excel, so it bypasses the text layer and goes out as UTF-8 with its BOM.
    """
    stream = stream if stream is not None else sys.stdout
    binary = getattr(stream, "buffer", None)
    if binary is None:  # a StringIO in tests, or a replaced stdout without bytes underneath
        stream.write(text)
        return
    stream.flush()
    binary.write(text.encode("utf-8"))
    binary.flush()
