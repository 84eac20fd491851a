"""Line-by-line reading for the fixed log formats (Microsoft IIS and NCSA), which need no blocks.

These formats have one layout for every line, so a reader is a function that turns one line of
text into values or raises LineDefect. This module does the rest: opening sources, numbering and
checking lines, collecting columns, time zones and the frame's attrs. It runs a Python loop per
line, so it is slower than the W3C reader, which is acceptable for formats that are rarely chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, tzinfo

import numpy as np
import pandas as pd
import pyarrow as pa

from adminkb.errors import InputError
from adminkb.w3c import skipped as reasons
from adminkb.w3c.frame import SOURCE_FILE, SOURCE_LINE, TIMESTAMP, attach_attrs, resolve_timezone, to_pandas
from adminkb.w3c.skipped import SkippedLine, check_line
from adminkb.w3c.sources import PathInput, expand_paths, read_all

log = logging.getLogger("adminkb.w3c")


class LineDefect(Exception):
    """Raised by a line parser: the line is not a row, for `reason` (a skipped.* constant)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


# A line parser returns the row's values by column name, with a naive datetime as `timestamp`.
LineParser = Callable[[str], dict[str, object]]


def read_fixed(paths: PathInput | Iterable[PathInput], *, log_format: str, schema: pa.Schema,
               parse_line: LineParser, not_format_key: str, encoding: str,
               tz: str | tzinfo | None = None,
               localize: Callable[[pd.DataFrame, tzinfo], pd.Series] | None = None) -> pd.DataFrame:
    """Read logs in a fixed format into a DataFrame with `schema` plus the source columns.

    `schema` lists the value columns, `timestamp` first. Timestamps are the local times written
    on the lines, without a zone. With `tz`, `localize` (by default, the zone's own rules) turns
    them into times in that zone. A source in which no line parses but some line has another
    shape raises InputError with `not_format_key`.
    """
    zone = resolve_timezone(tz)
    sources = expand_paths(paths)
    columns: dict[str, list[object]] = {name: [] for name in schema.names}
    files: list[str] = []
    lines: list[int] = []
    skipped: list[SkippedLine] = []
    blocks: list[dict[str, object]] = []
    for source in sources:
        data = read_all(source)
        if data.startswith(b"\xef\xbb\xbf"):
            data, source_encoding = data[3:], "utf-8"
        else:
            source_encoding = encoding
        rows_before = len(lines)
        found_skips: list[SkippedLine] = []
        for number, raw, is_tail in _lines(data):
            reason, text = check_line(raw, at_file_end=is_tail, encoding=source_encoding)
            if reason is None:
                try:
                    values = parse_line(text)
                except LineDefect as defect:
                    found_skips.append(SkippedLine(source.name, number, defect.reason, defect.detail))
                    continue
                for name in schema.names:
                    columns[name].append(values.get(name))
                files.append(source.name)
                lines.append(number)
            else:
                found_skips.append(SkippedLine(source.name, number, reason, text))
        rows = len(lines) - rows_before
        if rows == 0 and any(skip.reason == reasons.NOT_IN_FORMAT for skip in found_skips):
            raise InputError(not_format_key, value=source.name, next_key="w3c.not_format_next")
        skipped.extend(found_skips)
        blocks.append({"file": source.name, "line": 1, "fields": [name for name in schema.names if name != TIMESTAMP],
                       "date": None, "software": None, "rows": rows})
        log.info("%s: %d rows, %d lines skipped", source.name, rows, len(found_skips))
    arrays = [pa.array(columns[name], type=schema.field(name).type) for name in schema.names]
    arrays.append(pa.array(files, type=pa.string()).dictionary_encode())
    arrays.append(pa.array(np.asarray(lines, dtype=np.int64)))
    table = pa.Table.from_arrays(arrays, names=[*schema.names, SOURCE_FILE, SOURCE_LINE])
    frame = to_pandas(table)
    if zone is not None:
        frame[TIMESTAMP] = localize(frame, zone) if localize else \
            frame[TIMESTAMP].dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    return attach_attrs(frame, log_format=log_format, files=[source.name for source in sources], blocks=blocks,
                        skipped=[line.to_dict() for line in skipped], zone=zone)


def _lines(data: bytes) -> Iterable[tuple[int, bytes, bool]]:
    pieces = data.split(b"\n")
    unterminated = not data.endswith(b"\n")
    if not unterminated:
        pieces.pop()
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        yield index + 1, piece, unterminated and index == last


def value_or_none(text: str) -> str | None:
    """Return a value as written, or None for the `-` that marks an empty value."""
    return None if text in ("-", "") else text


def integer(name: str, text: str) -> int | None:
    """Return an integer field's value; `-` is None, anything else that is not a number a LineDefect."""
    if text in ("-", ""):
        return None
    digits = text.removeprefix("-")
    if not digits.isdigit() or not digits.isascii() or len(digits) > 18:
        raise LineDefect(reasons.INVALID_VALUE, f"{name}={text}")
    return int(text)


def local_datetime(name: str, text: str, formats: Sequence[str]) -> datetime:
    """Parse a local date and time with the first of `formats` that fits, else raise a LineDefect."""
    for pattern in formats:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise LineDefect(reasons.INVALID_VALUE, f"{name}={text}")
