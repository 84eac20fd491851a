"""The W3C Extended log reader: IIS SMTP logs with several blocks, any fields, into typed DataFrames.

A log is a series of blocks. Each block starts with directive lines (`#Software`, `#Version`,
`#Date`, `#Fields`) and every entry line after them holds the values of that block's
`#Fields`, separated by single spaces. The service writes `-` for an empty value, replaces
spaces inside values with `+`, never quotes (a `"` is data), ends lines with CRLF and writes
times in UTC. A new block starts after each restart and each change of the logged fields.

How the reader stays fast: it finds the directive lines with a byte search and hands each
stretch of entry lines (a few megabytes) to pyarrow's CSV parser with that block's field
names, several stretches at once in worker threads. Whole-stretch tests (line count, control
bytes, encoding, field count) check each result. Only a stretch that fails a test is split
into lines and checked one by one, so a bad line costs one stretch of work, never a slow pass
over the whole file.

Columns of the result:
- `timestamp`: from `date` and `time`, or from the block's `#Date` and `time` when the block
  has no `date` field. UTC unless a time zone is requested; `date` and `time` are not kept.
- one column per field seen in any block, named as in `#Fields`. A row has missing values in
  the fields its own block does not log. Integer fields (`INTEGER_FIELDS`) are nullable Int64,
  `cs-uri-query` and `cs(Cookie)` are strings, the other fields are categoricals. `+` is
  decoded to a space in `PLUS_DECODED_FIELDS` (see there for the rule).
- `source_file` and `source_line`: where the row was read (line numbers start at 1).
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from adminkb.errors import InputError
from adminkb.w3c import skipped as reasons
from adminkb.w3c.columns import (
    DATE_FIELD,
    INTEGER_FIELDS,
    MISSING,
    PLUS_DECODED_FIELDS,
    TEXT_FIELDS,
    TIME_FIELD,
    TypedEntries,
    arrow_type,
    empty_entries,
    parse_entries,
    type_entries,
)
from adminkb.w3c.frame import (
    CATEGORY_TYPE,
    SOURCE_FILE,
    SOURCE_LINE,
    TIMESTAMP,
    TIMESTAMP_UTC_TYPE,
    attach_attrs,
    checked_encoding,
    resolve_timezone,
    to_pandas,
)
from adminkb.w3c.skipped import ByteScan, SkippedLine, check_line, scan_bytes
from adminkb.w3c.sources import LogSource, PathInput, expand_paths, iter_line_chunks

__all__ = ["DEFAULT_ENCODING", "INTEGER_FIELDS", "LOG_FORMAT", "PLUS_DECODED_FIELDS", "TEXT_FIELDS", "read_w3c"]

log = logging.getLogger("adminkb.w3c")

LOG_FORMAT = "w3c"

# A zh-TW Windows writes its logs in the ANSI code page 950 (Big5 with Microsoft's extensions).
# A file that starts with a UTF-8 byte-order mark is read as UTF-8 in any case.
DEFAULT_ENCODING = "cp950"
UTF8_BOM = b"\xef\xbb\xbf"
KNOWN_DIRECTIVES = ("Software", "Version", "Date", "Fields", "Remark", "Start-Date", "End-Date")

_SECONDS_PER_DAY = 86_400
# A date-less block follows the clock past midnight UTC when a time is this much earlier
# than the one before it (entries are written in time order, give or take a few seconds).
_MIDNIGHT_WRAP_SECONDS = 12 * 3600
_DIRECTIVE_PATTERN = re.compile(r"#([A-Za-z-]+):(.*)")
# Bytes per stretch handed to a worker, how many workers parse at once, and how many stretches
# per worker may wait in memory. Measured on a 160 MB log (benchmarks/w3c_read.py): 2 MB
# stretches peaked about 40 MB lower than 8 MB ones, at the same speed.
_STRETCH_SIZE = 2 * 1024 * 1024
_WORKERS = max(1, min(8, os.cpu_count() or 1))
_IN_FLIGHT_PER_WORKER = 2
# When '#' turns up this often inside values, the rest of a chunk is searched with numpy.
_HASH_HITS_BEFORE_VECTOR_SEARCH = 4096


@dataclass
class _LineRef:
    """A line whose number is known only once the stretches before it have been counted."""

    number: int = 0


@dataclass
class _Stretch:
    """The result of one stretch of lines: typed rows, their line offsets, and the skipped lines.

    Line offsets count from 0 at the stretch's first line, and `first_line` is set once the
    stretches before it are counted. `line_count` is the number of line feeds in the stretch.
    """

    entries: TypedEntries | None
    lines: np.ndarray
    skipped: list[tuple[int, str, str]]
    line_count: int
    first_line: int = 0


@dataclass
class _Block:
    """One block: its directives, its stretches, and the clock of a date-less block."""

    file: str
    header: _LineRef
    fields: tuple[str, ...] | None
    date_text: str | None
    software: str | None
    stretches: list[Future[_Stretch]] = field(default_factory=list)
    rows: int = 0
    # Date-less blocks: midnight UTC of the #Date (seconds since 1970), days passed since, last time seen.
    day_start: int | None = None
    day_offset: int = 0
    last_seconds: int = 0

    def info(self) -> dict[str, object]:
        return {"file": self.file, "line": self.header.number, "fields": list(self.fields or ()),
                "date": self.date_text, "software": self.software, "rows": self.rows}


class _InlineExecutor:
    """Runs each job at once in the calling thread, for machines with one processor."""

    def submit(self, function, *arguments) -> Future:  # noqa: ANN001 - mirrors Executor.submit
        future: Future = Future()
        future.set_result(function(*arguments))
        return future


class _FileReader:
    """Reads one source: finds blocks and sends their stretches to workers.

    The calling thread only searches for directive lines. Counting lines is left to the workers,
    so line numbers are given out afterwards, in `number_lines`.
    """

    def __init__(self, source: LogSource, encoding: str, executor: ThreadPoolExecutor | _InlineExecutor,
                 pending: deque[Future]) -> None:
        self.source = source
        self.encoding = encoding
        self.executor = executor
        self.pending = pending
        self.blocks: list[_Block] = []
        self.pieces: list[_LineRef | Future[_Stretch]] = []
        self.skipped: list[SkippedLine] = []
        self._directive_skips: list[tuple[_LineRef, str, str]] = []
        self.saw_directive = False
        self.saw_bytes = False
        # Directives read since the last entry line; the next entry line opens a block with them.
        self._in_header = False
        self._header = _LineRef()
        self._header_directives: set[str] = set()
        self._software: str | None = None
        self._date_text: str | None = None
        self._fields: tuple[str, ...] | None = None
        self._bad_fields = False

    def read(self) -> None:
        first = True
        for chunk, ends_with_line_end in iter_line_chunks(self.source, _STRETCH_SIZE):
            if first:
                first = False
                if chunk.startswith(UTF8_BOM):
                    chunk = chunk[len(UTF8_BOM):]
                    self.encoding = "utf-8"
            self.saw_bytes = self.saw_bytes or bool(chunk)
            self._read_chunk(chunk, at_file_end=not ends_with_line_end)
        if self._in_header:
            # Directives with no entry after them still make a block (a restart with no traffic).
            self._current_block()

    def _read_chunk(self, chunk: bytes, at_file_end: bool) -> None:
        position = 0
        for start in _directive_starts(chunk):
            if start > position:
                self._entries(chunk[position:start], at_file_end=False)
            end = chunk.find(b"\n", start)
            if end == -1:
                # A directive line cut off at the end of the file.
                self._skip_directive(self._new_line_ref(), reasons.TRUNCATED)
                return
            self._directive(chunk[start:end + 1])
            position = end + 1
        if position < len(chunk):
            self._entries(chunk[position:], at_file_end=at_file_end)

    def _new_line_ref(self) -> _LineRef:
        reference = _LineRef()
        self.pieces.append(reference)
        return reference

    # Directives

    def _directive(self, raw: bytes) -> None:
        reference = self._new_line_ref()
        reason, text = check_line(raw, at_file_end=False, encoding=self.encoding)
        if reason is not None:
            self._skip_directive(reference, reason, text)
            return

        match = _DIRECTIVE_PATTERN.fullmatch(text.rstrip())
        name = match.group(1).lower() if match else None
        known = next((directive for directive in KNOWN_DIRECTIVES if directive.lower() == name), None)
        if match is None or known is None:
            self._skip_directive(reference, reasons.UNKNOWN_DIRECTIVE, text[:40])
            return
        self.saw_directive = True
        self._join_header(known, reference)
        self._apply_directive(known, match.group(2).strip(), reference)

    def _join_header(self, directive: str, reference: _LineRef) -> None:
        """Add a directive to the current group of directives, or start a new group with it."""
        if self._in_header and directive in self._header_directives and directive != "Remark":
            # The same directive twice in one group: the first group was a block without entries
            # (directives written twice in a row), so it is closed as such.
            self._current_block()
        if not self._in_header:
            self._in_header = True
            self._header = reference
            self._header_directives = set()
        self._header_directives.add(directive)

    def _apply_directive(self, directive: str, value: str, reference: _LineRef) -> None:
        if directive == "Software":
            self._software = value
        elif directive == "Date":
            self._date_text = value
        elif directive == "Fields":
            fields = tuple(value.split())
            self._bad_fields = not fields or len(set(fields)) != len(fields)
            if self._bad_fields:
                self._skip_directive(reference, reasons.BAD_FIELDS, value[:80])
            self._fields = None if self._bad_fields else fields

    def _skip_directive(self, reference: _LineRef, reason: str, detail: str = "") -> None:
        self._directive_skips.append((reference, reason, detail))

    def _current_block(self) -> _Block:
        """Return the block that entry lines belong to, opening it after a group of directives."""
        if self._in_header or not self.blocks:
            self._in_header = False
            block = _Block(file=self.source.name, header=self._header, fields=self._fields,
                           date_text=self._date_text, software=self._software)
            _start_clock(block)
            self.blocks.append(block)
        return self.blocks[-1]

    # Entry lines

    def _entries(self, data: bytes, at_file_end: bool) -> None:
        """Send a stretch of entry lines of the current block to a worker."""
        fields: tuple[str, ...] | None = None
        reason = reasons.BEFORE_FIELDS
        block = None
        if self.saw_directive:
            block = self._current_block()
            fields = block.fields
            if self._bad_fields:
                reason = reasons.BAD_FIELDS
        future = self.executor.submit(_read_stretch, data, at_file_end, fields, self.encoding, reason)
        self.pieces.append(future)
        if block is not None and fields is not None:
            block.stretches.append(future)
        self.pending.append(future)
        # Bound the stretches in memory: wait for the oldest before reading far ahead.
        while len(self.pending) > _IN_FLIGHT_PER_WORKER * _WORKERS:
            self.pending.popleft().result()

    def number_lines(self) -> None:
        """Give every directive and stretch its line number, then list the skipped lines in order."""
        line = 1
        for piece in self.pieces:
            if isinstance(piece, _LineRef):
                piece.number = line
                line += 1
            else:
                stretch = piece.result()
                stretch.first_line = line
                line += stretch.line_count
                self.skipped.extend(SkippedLine(self.source.name, stretch.first_line + offset, reason, detail)
                                    for offset, reason, detail in stretch.skipped)
        self.skipped.extend(SkippedLine(self.source.name, reference.number, reason, detail)
                            for reference, reason, detail in self._directive_skips)
        self.skipped.sort(key=lambda skipped: skipped.line)
        self.pieces = []


def _numbered_lines(data: bytes) -> Iterable[tuple[int, bytes, bool]]:
    """Yield `(line offset from 0, raw line, is the unterminated tail)` for each line of `data`."""
    pieces = data.split(b"\n")
    unterminated = not data.endswith(b"\n")
    if not unterminated:
        pieces.pop()
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        yield index, piece, unterminated and index == last


def _directive_starts(chunk: bytes) -> list[int]:
    """Return the offsets of lines that start with '#', also right after a run of NUL bytes.

    After a crash the service can leave NUL bytes where a line was being written, and then it
    writes its next directives on the same line. Such a directive is still found.
    """
    starts: list[int] = []
    position = chunk.find(b"#")
    for _ in range(_HASH_HITS_BEFORE_VECTOR_SEARCH):
        if position == -1:
            return starts
        if position == 0 or chunk[position - 1] in (0x0A, 0x00):
            starts.append(position)
        position = chunk.find(b"#", position + 1)
    if position == -1:
        return starts
    # Many '#' inside values: test the byte before every remaining '#' at once.
    tail = np.frombuffer(chunk, dtype=np.uint8)[position - 1:]
    hashes = np.flatnonzero(tail[1:] == 0x23) + 1
    before = tail[hashes - 1]
    found = hashes[(before == 0x0A) | (before == 0x00)] + position - 1
    return starts + found.tolist()


# Work done in the worker threads


def _read_stretch(data: bytes, at_file_end: bool, fields: tuple[str, ...] | None, encoding: str,
                  reason_without_fields: str) -> _Stretch:
    """Parse and type one stretch of entry lines, setting aside the lines that are not rows.

    Without `fields` (no #Fields directive yet, or a bad one) every line is skipped, with its own
    defect as the reason if it has one, else `reason_without_fields`.
    """
    scan = scan_bytes(data)
    skipped: list[tuple[int, str, str]] = []
    if fields is None:
        for offset, piece, is_tail in _numbered_lines(data):
            reason, text = check_line(piece, at_file_end=is_tail and at_file_end, encoding=encoding)
            skipped.append((offset, reason, text) if reason else (offset, reason_without_fields, ""))
        return _Stretch(None, np.zeros(0, dtype=np.int64), skipped, scan.lines)
    parsed = _parse_whole(data, scan, fields, encoding)
    if parsed is not None:
        table, typed = parsed
        lines = np.arange(table.num_rows, dtype=np.int64)
    else:
        table, typed, lines = _parse_line_by_line(data, at_file_end, fields, encoding, skipped)
    if table.num_rows == 0:
        return _Stretch(None, lines, skipped, scan.lines)
    entries = type_entries(table, fields, typed)
    if entries.invalid.any():
        for row in np.flatnonzero(entries.invalid):
            skipped.append((int(lines[row]), reasons.INVALID_VALUE, entries.details.get(int(row), "")))
        keep = ~entries.invalid
        mask = pa.array(keep)
        entries.columns = {name: pc.filter(column, mask) for name, column in entries.columns.items()}
        entries.days = entries.days[keep] if entries.days is not None else None
        entries.seconds = entries.seconds[keep] if entries.seconds is not None else None
        lines = lines[keep]
    return _Stretch(entries, lines, skipped, scan.lines)


def _parse_whole(data: bytes, scan: ByteScan, fields: tuple[str, ...],
                 encoding: str) -> tuple[pa.Table, bool] | None:
    """Parse a clean stretch in one call; return None when it needs the line-by-line path."""
    if not data.endswith(b"\n") or scan.has_control_bytes:
        return None
    if not scan.is_ascii:
        try:
            data = data.decode(encoding).encode("utf-8")
        except UnicodeDecodeError:
            return None
    bad_rows: list[object] = []
    parsed = parse_entries(data, fields, bad_rows)
    # The parser drops empty lines and splits a line at a lone CR. Both make the row count
    # differ from the line count.
    if bad_rows or parsed is None or parsed[0].num_rows != scan.lines:
        return None
    return parsed


def _parse_line_by_line(data: bytes, at_file_end: bool, fields: tuple[str, ...], encoding: str,
                        skipped: list[tuple[int, str, str]]) -> tuple[pa.Table, bool, np.ndarray]:
    """Check each line of a stretch, note the bad ones in `skipped`, and parse the rest."""
    good: list[str] = []
    offsets: list[int] = []
    expected = len(fields)
    for offset, piece, is_tail in _numbered_lines(data):
        reason, text = check_line(piece, at_file_end=is_tail and at_file_end, encoding=encoding)
        if reason is not None:
            skipped.append((offset, reason, text))
            continue
        found = text.count(" ") + 1
        if found == expected + 1 and text.endswith(" "):
            # NOTE: the service ends only its #Fields line with a space; an entry line that
            # does too is accepted without that space.
            text = text[:-1]
        elif found != expected:
            skipped.append((offset, reasons.FIELD_COUNT, f"{expected}/{found}"))
            continue
        good.append(text)
        offsets.append(offset)
    lines = np.asarray(offsets, dtype=np.int64)
    if not good:
        return empty_entries(fields), True, lines
    parsed = parse_entries(("\n".join(good) + "\n").encode("utf-8"), fields, [])
    if parsed is None or parsed[0].num_rows != len(good):
        raise AssertionError(f"{len(good)} checked lines did not parse as as many rows")
    return parsed[0], parsed[1], lines


# Back in the calling thread: timestamps and the result


def _start_clock(block: _Block) -> None:
    """Set where a date-less block's clock starts: at its #Date directive, if it has one."""
    if block.date_text is None:
        return
    try:
        started = datetime.strptime(block.date_text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        log.warning("%s: invalid #Date %r (expected yyyy-mm-dd hh:mm:ss); rows of its block without a date "
                    "field get no timestamp", block.file, block.date_text)
        return
    block.day_start = int(started.replace(hour=0, minute=0, second=0).timestamp())
    block.last_seconds = started.hour * 3600 + started.minute * 60 + started.second


def _timestamps(block: _Block, entries: TypedEntries, size: int) -> pa.Array:
    """Build the UTC timestamps of one stretch; a stretch of a date-less block moves its clock on."""
    seconds = entries.seconds
    if seconds is None:
        # NOTE: a block that logs `date` without `time` gets no timestamp; IIS always offers both.
        return pa.nulls(size, TIMESTAMP_UTC_TYPE)
    present = seconds != MISSING
    result = np.zeros(len(seconds), dtype=np.int64)
    if entries.days is not None:
        present &= entries.days != MISSING
        result = entries.days * _SECONDS_PER_DAY + seconds
    elif block.day_start is not None:
        ordered = seconds[present]
        if len(ordered):
            previous = np.concatenate(([block.last_seconds], ordered[:-1]))
            wraps = np.cumsum(ordered < previous - _MIDNIGHT_WRAP_SECONDS) + block.day_offset
            result[present] = block.day_start + wraps * _SECONDS_PER_DAY + ordered
            block.day_offset = int(wraps[-1])
            block.last_seconds = int(ordered[-1])
    else:
        # No date field and no #Date directive: the day is unknown, and no day is guessed.
        present[:] = False
    return pa.array(result, type=TIMESTAMP_UTC_TYPE, mask=~present)


def _block_tables(block: _Block) -> list[pa.Table]:
    """Build the rows of a block's stretches, in order, with timestamps and source columns."""
    tables = []
    for future in block.stretches:
        stretch = future.result()
        if stretch.entries is None or not len(stretch.lines):
            continue
        count = len(stretch.lines)
        columns: dict[str, pa.Array] = {TIMESTAMP: _timestamps(block, stretch.entries, count)}
        columns.update(stretch.entries.columns)
        columns[SOURCE_FILE] = pa.DictionaryArray.from_arrays(pa.array(np.zeros(count, dtype=np.int32)),
                                                              pa.array([block.file]))
        columns[SOURCE_LINE] = pa.array(stretch.lines + stretch.first_line)
        tables.append(pa.table(columns))
        block.rows += count
    block.stretches = []
    return tables


def read_w3c(paths: PathInput | Iterable[PathInput], *, tz: str | tzinfo | None = None,
             encoding: str = DEFAULT_ENCODING) -> pd.DataFrame:
    """Read W3C Extended logs (one file, several, a folder, `.gz` or `.zip`) into one DataFrame.

    `tz` names the time zone to show timestamps in (`Asia/Taipei`); without it they stay in
    UTC, as the service writes them. `encoding` is the code page of files without a UTF-8
    byte-order mark. Lines that are not rows are listed in `df.attrs["skipped"]` and blocks in
    `df.attrs["blocks"]`; the module documentation describes the columns.

    Raises InputError for a missing path, a folder without logs, a file that is not a W3C log,
    an unknown time zone or an unknown encoding.
    """
    zone = resolve_timezone(tz)
    encoding = checked_encoding(encoding)
    sources = expand_paths(paths)
    readers: list[_FileReader] = []
    pending: deque[Future] = deque()
    executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="w3c") if _WORKERS > 1 \
        else _InlineExecutor()
    try:
        for source in sources:
            reader = _FileReader(source, encoding, executor, pending)
            reader.read()
            if reader.saw_bytes and not reader.saw_directive:
                raise InputError("w3c.not_w3c", value=source.name, next_key="w3c.not_w3c_next")
            readers.append(reader)
        return _assemble(readers, zone)
    finally:
        if isinstance(executor, ThreadPoolExecutor):
            executor.shutdown(wait=True, cancel_futures=True)


def _assemble(readers: list[_FileReader], zone: tzinfo | None) -> pd.DataFrame:
    """Concatenate every block's rows under the union of their fields, then convert to pandas."""
    order: dict[str, pa.DataType] = {TIMESTAMP: TIMESTAMP_UTC_TYPE}
    tables: list[pa.Table] = []
    skipped: list[SkippedLine] = []
    for reader in readers:
        reader.number_lines()
        for block in reader.blocks:
            for name in block.fields or ():
                if name not in (DATE_FIELD, TIME_FIELD):
                    order.setdefault(name, arrow_type(name))
            tables.extend(_block_tables(block))
        skipped.extend(reader.skipped)
        log.info("%s: %d blocks, %d rows, %d lines skipped", reader.source.name, len(reader.blocks),
                 sum(block.rows for block in reader.blocks), len(reader.skipped))
    order[SOURCE_FILE] = CATEGORY_TYPE
    order[SOURCE_LINE] = pa.int64()
    schema = pa.schema(list(order.items()))
    if tables:
        table = pa.concat_tables(tables, promote_options="default")
        # The stretch tables share their buffers with `table`: dropping them lets the conversion
        # to pandas free each column's Arrow memory as soon as it is converted.
        tables.clear()
        for name in schema.names:
            if name not in table.column_names:
                # A field logged only by blocks without rows.
                table = table.append_column(schema.field(name), pa.nulls(table.num_rows, schema.field(name).type))
        table = table.select(schema.names)
    else:
        table = schema.empty_table()
    frame = to_pandas(table)
    if zone is not None:
        frame[TIMESTAMP] = frame[TIMESTAMP].dt.tz_convert(zone)
    return attach_attrs(frame, log_format=LOG_FORMAT, files=[reader.source.name for reader in readers],
                        blocks=[block.info() for reader in readers for block in reader.blocks],
                        skipped=[line.to_dict() for line in skipped], zone=zone)
