"""Typed columns for W3C Extended entry lines: parsing a stretch of lines with pyarrow, then typing it.

These functions keep no file state, so the reader runs them on several stretches at once in
worker threads. pyarrow releases the GIL while it parses and computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from adminkb.w3c.frame import CATEGORY_TYPE, INTEGER_TYPE, TEXT_TYPE

DATE_FIELD = "date"
TIME_FIELD = "time"
INTEGER_FIELDS = frozenset({"s-port", "sc-status", "sc-substatus", "sc-win32-status", "sc-bytes", "cs-bytes",
                            "time-taken"})
# Fields whose values are mostly unique; a categorical would only cost memory.
TEXT_FIELDS = frozenset({"cs-uri-query", "cs(Cookie)"})
# Fields where the service writes a space inside a value as `+`, so the reader turns `+` back
# into a space: the SMTP command argument, the HELO/EHLO name and the HTTP headers. The other
# fields (addresses, server names, method, status) never contain spaces. A `+` that was in the
# value itself looks the same as an encoded space, except in `cs-uri-query`: there a `+` inside
# `<...>` is kept, because an address such as `<user+tag@example.com>` contains no space.
PLUS_DECODED_FIELDS = frozenset({"cs-uri-query", "cs-username", "cs(User-Agent)", "cs(Cookie)", "cs(Referer)"})

# Marks a missing date, time or number in numpy arrays: no day, second or count takes this value.
MISSING = np.iinfo(np.int64).min
# Marks a row without a value among dictionary indices.
NO_INDEX = -1
_DATE_TYPE = pa.date32()
# NOTE: IIS writes whole seconds. A time with a fraction (which the W3C draft allows) fails
# this type and then the hh:mm:ss check, so its line is skipped as an invalid value.
_TIME_TYPE = pa.time32("s")
_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"


def arrow_type(name: str) -> pa.DataType:
    """Return the Arrow type of a W3C field's column in the result."""
    if name in INTEGER_FIELDS:
        return INTEGER_TYPE
    if name in TEXT_FIELDS:
        return TEXT_TYPE
    return CATEGORY_TYPE


@dataclass
class TypedEntries:
    """The rows of one stretch after typing: value columns, the date and time parts, bad rows.

    `days` (days since 1970-01-01) and `seconds` (seconds after midnight) are MISSING where the
    value is `-`, and None when the block has no such field. `invalid` marks rows with a value
    their field cannot contain, and `details` names that value (`sc-status=abc`).
    """

    columns: dict[str, pa.Array]
    days: np.ndarray | None
    seconds: np.ndarray | None
    invalid: np.ndarray
    details: dict[int, str] = field(default_factory=dict)


def parse_entries(data: bytes, fields: tuple[str, ...], bad_rows: list[object]) -> tuple[pa.Table, bool] | None:
    """Parse space-separated entry lines with pyarrow: no quoting, `-` and empty values missing.

    Returns the table and whether it was parsed with typed columns (False: integer, date and
    time columns came back as text because some value did not convert). Rows with the wrong
    number of values are left out and appended to `bad_rows`. Returns None when pyarrow
    cannot parse the data at all.
    """
    def on_bad_row(row: object) -> str:
        bad_rows.append(row)
        return "skip"

    parse_options = pa_csv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False, escape_char=False,
                                        newlines_in_values=False, ignore_empty_lines=True,
                                        invalid_row_handler=on_bad_row)
    # One block per stretch: the reader already runs stretches in parallel.
    read_options = pa_csv.ReadOptions(column_names=list(fields), use_threads=False, block_size=len(data) + 1)
    for typed in (True, False):
        types = {name: _parse_type(name, typed) for name in fields}
        convert_options = pa_csv.ConvertOptions(column_types=types, null_values=["-", ""], strings_can_be_null=True,
                                                check_utf8=False)
        try:
            table = pa_csv.read_csv(pa.py_buffer(data), read_options=read_options, parse_options=parse_options,
                                    convert_options=convert_options)
        except pa.ArrowInvalid as error:
            if typed and "conversion error" in str(error).lower():
                bad_rows.clear()
                continue
            return None
        return table, typed
    return None


def _parse_type(name: str, typed: bool) -> pa.DataType:
    if name == DATE_FIELD:
        return _DATE_TYPE if typed else CATEGORY_TYPE
    if name == TIME_FIELD:
        return _TIME_TYPE if typed else CATEGORY_TYPE
    if name in INTEGER_FIELDS and not typed:
        return CATEGORY_TYPE
    if typed and arrow_type(name) == CATEGORY_TYPE:
        # Parsed as text and dictionary-encoded afterwards in type_entries. On the 170 MB clean
        # log of benchmarks/w3c_read.py (2 MB stretches, one run on a busy 2-CPU machine), this
        # took 0.72 s CPU to parse plus 0.16 s to encode, against 0.96 s with dictionary columns.
        return TEXT_TYPE
    return arrow_type(name)


def empty_entries(fields: tuple[str, ...]) -> pa.Table:
    """Return a table with no rows and the typed columns of `fields`."""
    return pa.schema([(name, _parse_type(name, True)) for name in fields]).empty_table()


def type_entries(table: pa.Table, fields: tuple[str, ...], typed: bool) -> TypedEntries:
    """Check and type the parsed columns, and decode `+` in the fields where it means a space."""
    table = table.combine_chunks()
    size = table.num_rows
    invalid = np.zeros(size, dtype=bool)
    details: dict[int, str] = {}
    columns: dict[str, pa.Array] = {}
    days = seconds = None
    for index, name in enumerate(fields):
        column = table.column(index)
        column = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
        if name == DATE_FIELD:
            days = _days(column) if typed else _checked_days(column, invalid, details)
        elif name == TIME_FIELD:
            seconds = _seconds(column) if typed else _checked_seconds(column, invalid, details)
        elif name in INTEGER_FIELDS and not typed:
            columns[name] = _checked_integers(name, column, invalid, details)
        else:
            if arrow_type(name) == CATEGORY_TYPE and not pa.types.is_dictionary(column.type):
                # Encode before decoding `+`, so that each distinct value is decoded once.
                column = encode_dictionary(column)
            columns[name] = _decoded(name, column)
    return TypedEntries(columns, days, seconds, invalid, details)


def encode_dictionary(column: pa.Array) -> pa.DictionaryArray:
    """Dictionary-encode a text column as `pc.dictionary_encode` does, without hashing a column of one value.

    Many fields of an SMTP log contain the same value in every row (s-sitename, s-ip, cs-version)
    or `-` in every row (cs-uri-stem and the HTTP headers). Such a column is recognised from its
    offsets and one byte comparison, which costs less than hashing every value.
    """
    size = len(column)
    if not pa.types.is_string(column.type) or size == 0:
        return pc.dictionary_encode(column)
    if column.null_count == size:
        return pa.DictionaryArray.from_arrays(pa.nulls(size, pa.int32()), pa.array([], type=pa.string()))
    value = _single_value(column) if column.null_count == 0 else None
    if value is None:
        return pc.dictionary_encode(column)
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(size, dtype=np.int32)), value)


def _single_value(column: pa.StringArray) -> pa.StringArray | None:
    """Return the single value of a column without nulls whose rows all contain the same text, else None.

    The value is copied, so that it does not keep the column's data buffer alive.
    """
    _, offsets_buffer, data_buffer = column.buffers()
    size = len(column)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[column.offset:column.offset + size + 1]
    first = int(offsets[0])
    width = int(offsets[1]) - first
    if int(offsets[-1]) - first != size * width:
        return None
    if np.any(np.diff(offsets) != width):
        return None
    if width == 0:
        return pa.array([""], type=pa.string())
    text = data_buffer.slice(first, width).to_pybytes()
    if not data_buffer.slice(first, size * width).equals(pa.py_buffer(text * size)):
        return None
    return pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, width], dtype=np.int32)), pa.py_buffer(text))


def _decoded(name: str, column: pa.Array) -> pa.Array:
    if name in PLUS_DECODED_FIELDS:
        return decode_plus(column, keep_in_brackets=name == "cs-uri-query")
    return column


def _days(column: pa.Array) -> np.ndarray:
    return _as_int64(column).fill_null(MISSING).to_numpy()


def _seconds(column: pa.Array) -> np.ndarray:
    return _as_int64(column).fill_null(MISSING).to_numpy()


def _dictionary_parts(column: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Return a dictionary column's values and its indices as numpy (NO_INDEX for `-`)."""
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    return column.dictionary, column.indices.fill_null(NO_INDEX).to_numpy(zero_copy_only=False)


def _per_row(table: np.ndarray, indices: np.ndarray, fill: object = MISSING) -> np.ndarray:
    """Look up each row's dictionary index in `table`; rows without a value (NO_INDEX) get `fill`."""
    if not len(table):
        return np.full(len(indices), fill, dtype=table.dtype)
    return np.where(indices >= 0, table[np.maximum(indices, 0)], fill)


def _mark(name: str, bad: np.ndarray, values: pa.Array, indices: np.ndarray, invalid: np.ndarray,
          details: dict[int, str]) -> None:
    """Mark rows invalid and note the first bad value of each row."""
    for row in np.flatnonzero(bad & ~invalid):
        details[int(row)] = f"{name}={values[int(indices[row])].as_py()}"
    invalid |= bad


def _cast_each(values: pa.Array, target: pa.DataType) -> tuple[np.ndarray, np.ndarray]:
    """Cast distinct text values with pyarrow's own parser; return the numbers and which ones parsed.

    pyarrow's cast parses as its CSV reader does (`-5` and `0x10` are integers, `2026-02-30` is
    no date), so a value reads the same whether or not its stretch needed this path.
    """
    try:
        numbers = _as_int64(pc.cast(values, target))
        return numbers.fill_null(MISSING).to_numpy(), np.ones(len(values), dtype=bool)
    except pa.ArrowInvalid:
        pass
    # Some value does not parse: the values are distinct and few, so try them one by one.
    table = np.full(len(values), MISSING, dtype=np.int64)
    parsed = np.zeros(len(values), dtype=bool)
    for position in range(len(values)):
        try:
            table[position] = _as_int64(pc.cast(values.slice(position, 1), target))[0].as_py()
            parsed[position] = True
        except pa.ArrowInvalid:
            continue
    return table, parsed


def _as_int64(array: pa.Array) -> pa.Array:
    """Return numbers, days or seconds as int64 (Arrow casts dates and times only to int32)."""
    if pa.types.is_date32(array.type) or pa.types.is_time32(array.type):
        array = array.cast(pa.int32())
    return array.cast(pa.int64())


def _checked_integers(name: str, column: pa.Array, invalid: np.ndarray, details: dict[int, str]) -> pa.Array:
    """Convert a column read as text to int64; rows whose value is not a number become invalid."""
    values, indices = _dictionary_parts(column)
    number_table, parsed = _cast_each(values, INTEGER_TYPE)
    present = indices >= 0
    bad = present & ~_per_row(parsed, indices, fill=True)
    _mark(name, bad, values, indices, invalid, details)
    return pa.array(_per_row(number_table, indices), type=INTEGER_TYPE, mask=~(present & ~bad))


def _checked_seconds(column: pa.Array, invalid: np.ndarray, details: dict[int, str]) -> np.ndarray:
    """Return seconds after midnight from `hh:mm:ss` or `hh:mm` text; other values make their rows invalid.

    pyarrow has no cast from text to a time of day, so the pattern copies what its CSV reader
    takes for `time32[s]`: two-digit hours 00-23, minutes, and seconds that may be left out.
    """
    values, indices = _dictionary_parts(column)
    valid = pc.match_substring_regex(values, _TIME_PATTERN).to_numpy(zero_copy_only=False)
    text = pc.if_else(pa.array(valid), values, pa.scalar("00:00:00"))
    text = pc.if_else(pc.equal(pc.utf8_length(text), 5), pc.binary_join_element_wise(text, ":00", ""), text)
    parts = [pc.cast(pc.utf8_slice_codeunits(text, start, start + 2), pa.int64()).to_numpy() for start in (0, 3, 6)]
    table = np.where(valid, parts[0] * 3600 + parts[1] * 60 + parts[2], MISSING)
    seconds = _per_row(table, indices)
    _mark(TIME_FIELD, (indices >= 0) & (seconds == MISSING), values, indices, invalid, details)
    return seconds


def _checked_days(column: pa.Array, invalid: np.ndarray, details: dict[int, str]) -> np.ndarray:
    """Return days since 1970 from `yyyy-mm-dd` text; other values make their rows invalid."""
    values, indices = _dictionary_parts(column)
    table, _ = _cast_each(values, _DATE_TYPE)
    days = _per_row(table, indices)
    _mark(DATE_FIELD, (indices >= 0) & (days == MISSING), values, indices, invalid, details)
    return days


def decode_plus(column: pa.Array, *, keep_in_brackets: bool) -> pa.Array:
    """Turn `+` back into spaces; with `keep_in_brackets`, a `+` inside `<...>` stays."""
    if pa.types.is_dictionary(column.type):
        decoded = decode_plus(column.dictionary, keep_in_brackets=keep_in_brackets)
        return _rebuild_dictionary(column.indices, decoded)
    if not keep_in_brackets:
        return pc.replace_substring(column, "+", " ")
    return _decode_outside_brackets(column)


def _decode_outside_brackets(column: pa.StringArray) -> pa.StringArray:
    """Replace each `+` that is not inside `<...>` with a space, working on the bytes of all values at once.

    Reading a value from its start, `<` moves inside the brackets and `>` back out, so a `+` is
    inside when the last of these before it (in the same value) is a `<`. A `<` without its `>`
    (a value cut short) keeps every `+` after it.
    """
    validity, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[column.offset:column.offset + len(column) + 1]
    first, last = int(offsets[0]), int(offsets[-1])
    if data_buffer is None or first == last:
        return column
    text = np.frombuffer(data_buffer, dtype=np.uint8)[first:last].copy()
    is_event = text == 0x2B
    if not is_event.any():
        return column
    starts = offsets[:-1] - first
    # One code per byte where the state changes: 1 = outside (a value starts, or `>`), 2 = inside (`<`).
    # A value that starts with `<` gets 2, because the `<` is read after the start.
    codes = np.zeros(len(text), dtype=np.int8)
    codes[starts[starts < len(text)]] = 1
    codes[text == 0x3E] = 1
    codes[text == 0x3C] = 2
    # The events are the state changes and the `+` bytes, in byte order. For each event, a running
    # maximum finds the last state change at or before it. Every value's start is a change, so
    # the first event is one.
    is_event |= codes != 0
    events = np.flatnonzero(is_event)
    kinds = codes[events]
    last_change = np.maximum.accumulate(np.where(kinds != 0, np.arange(len(events)), 0))
    outside_pluses = events[(text[events] == 0x2B) & (kinds[last_change] != 2)]
    text[outside_pluses] = 0x20
    return pa.StringArray.from_buffers(len(column), pa.py_buffer((offsets - first).astype(np.int32)),
                                       pa.py_buffer(text), _sliced_validity(column, validity), column.null_count)


def _sliced_validity(column: pa.Array, validity: pa.Buffer | None) -> pa.Buffer | None:
    """Return a validity bitmap that starts at the column's first value (a slice may not)."""
    if validity is None or column.null_count == 0:
        return None
    if column.offset == 0:
        return validity
    return pc.is_valid(column).buffers()[1]


def decode_query_value(value: str) -> str:
    """Decode one `cs-uri-query` value: `+` becomes a space except inside `<...>`."""
    decoded = _decode_outside_brackets(pa.array([value], type=pa.string()))
    return decoded[0].as_py()


def _rebuild_dictionary(indices: pa.Array, values: pa.Array) -> pa.DictionaryArray:
    """Build a dictionary array whose values may have become equal (`a+b` and `a b` both `a b`)."""
    unique = pc.unique(values)
    if len(unique) == len(values):
        return pa.DictionaryArray.from_arrays(indices, values)
    mapping = pc.index_in(values, value_set=unique).cast(pa.int32())
    return pa.DictionaryArray.from_arrays(mapping.take(indices), unique)
