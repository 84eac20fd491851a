"""Lines that are not rows: why a line was skipped, and the checks every format shares.

A skipped line never becomes a row and never moves another row's values. Each one is kept
with its file, line number and reason, so that a reader of the results can see what was left
out and why.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# Reasons, in the order the line-by-line check tests them.
TRUNCATED = "truncated"            # the file's last line has no line end: it was cut while being written
EMPTY = "empty_line"               # nothing but the line end
BINARY = "binary"                  # control bytes (NUL runs after a crash, garbage sent to the port)
UNDECODABLE = "undecodable"        # bytes that are not text in the file's encoding
BEFORE_FIELDS = "before_fields"    # a W3C entry line before any #Fields directive
BAD_FIELDS = "bad_fields_directive"  # a #Fields directive that lists no field or one field twice
UNKNOWN_DIRECTIVE = "unknown_directive"  # a line starting with `#` that is no W3C directive
FIELD_COUNT = "field_count"        # more or fewer values than the block's #Fields lists
INVALID_VALUE = "invalid_value"    # a value its field cannot contain (a status that is not a number)
NOT_IN_FORMAT = "not_in_format"    # an IIS or NCSA format line that does not have the format's shape

REASONS = (TRUNCATED, EMPTY, BINARY, UNDECODABLE, BEFORE_FIELDS, BAD_FIELDS, UNKNOWN_DIRECTIVE,
           FIELD_COUNT, INVALID_VALUE, NOT_IN_FORMAT)

# Control bytes other than tab never occur inside a log line the service wrote (a CR is
# allowed only as part of the CRLF line end, which is removed before this check).
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# `bytes.translate(None, delete)` keeps only the bytes not deleted. Deleting the bytes of plain
# ASCII text leaves line feeds, control bytes and non-ASCII bytes: one fast pass, no regex engine.
_PLAIN_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\r"
_NON_ASCII_AND_LINE_FEED = bytes(range(0x80, 0x100)) + b"\n"


@dataclass(frozen=True)
class ByteScan:
    """The result of one pass over a stretch of lines: line feeds counted, control and non-ASCII bytes found."""

    lines: int
    has_control_bytes: bool
    is_ascii: bool


def scan_bytes(data: bytes) -> ByteScan:
    """Count the line feeds in `data` and find control bytes (other than tab and CR) and non-ASCII bytes.

    A CR that is not part of a line end passes as plain text. Callers find it by comparing the
    number of rows parsed with the line count.
    """
    rest = data.translate(None, _PLAIN_TEXT_BYTES)
    lines = rest.count(b"\n")
    if lines == len(rest):
        return ByteScan(lines, False, True)
    return ByteScan(lines, bool(rest.translate(None, _NON_ASCII_AND_LINE_FEED)), rest.isascii())


@dataclass(frozen=True)
class SkippedLine:
    """One line left out of the rows: where it is, why, and a short detail (expected field count...)."""

    file: str
    line: int
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_line(raw: bytes, *, at_file_end: bool, encoding: str) -> tuple[str | None, str]:
    """Check one raw line (with its line end, if any) and return `(reason, text)`.

    `reason` is None when the line is text; `text` is then the decoded line without its line end.
    Otherwise `text` is a short detail for the skipped line (the undecodable byte, say).
    `at_file_end` is true for the file's last piece when it has no line feed.
    """
    if at_file_end:
        return TRUNCATED, ""
    body = raw[:-1] if raw.endswith(b"\n") else raw
    if body.endswith(b"\r"):
        body = body[:-1]
    if not body:
        return EMPTY, ""
    if _CONTROL_BYTES.search(body):
        return BINARY, ""
    try:
        return None, body.decode(encoding)
    except UnicodeDecodeError as error:
        return UNDECODABLE, f"0x{body[error.start]:02X}"
