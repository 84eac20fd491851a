"""Property tests: logs written in the IIS layout read back as exactly the rows and values written.

Hypothesis builds blocks with their own field lists and values, writes them as the service does
(directives, `+` for spaces, `-` for empty values, CRLF, code page 950) and checks every value,
timestamp and line number that `read_w3c` returns. Values may contain `#` and may start with it,
except in a line's first field.
"""

from __future__ import annotations

import tempfile
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from unittest import mock

import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from adminkb.w3c import INTEGER_FIELDS, PLUS_DECODED_FIELDS, read_w3c
from adminkb.w3c import reader as w3c_reader
from adminkb.w3c.columns import decode_plus

FULL_FIELDS = ("date", "time", "c-ip", "cs-username", "s-sitename", "s-computername", "s-ip", "s-port", "cs-method",
               "cs-uri-stem", "cs-uri-query", "sc-status", "sc-win32-status", "sc-bytes", "cs-bytes", "time-taken",
               "cs-version", "cs-host", "cs(User-Agent)", "cs(Cookie)", "cs(Referer)")
# Printable ASCII and some Big5 characters; no space, `+`, `<` or `>`, which the cases below add on purpose.
_CHARACTERS = [chr(code) for code in range(0x21, 0x7F) if chr(code) not in "+<>"] + list("郵件伺服器測試轉送佇列")
_WORD = st.text(alphabet=_CHARACTERS, min_size=1, max_size=12).filter(lambda word: word != "-" and word[0] != "#")
# Words that start with `#`, directive names included. A value may start with `#` anywhere but at
# the start of a line, where `#` makes the line a directive.
_HASH_WORD = st.sampled_from(["#", "#Fields:", "#Date:", "#Software:"]) | \
    st.text(alphabet=_CHARACTERS, max_size=11).map(lambda rest: "#" + rest)


# One word in eight starts with `#`, so that lines both with and without such values are common.
_ANY_WORD = st.sampled_from([False] * 7 + [True]).flatmap(lambda hashed: _HASH_WORD if hashed else _WORD)


def word_strategy(line_start: bool) -> st.SearchStrategy:
    """Words for a value: any word, or no word starting with `#` when the value starts the line."""
    return _WORD if line_start else _ANY_WORD


@st.composite
def spaced_text(draw: st.DrawFn, line_start: bool = False) -> str:
    """Text with spaces inside (written as `+`). It starts with `#` only when it does not start the line."""
    first = draw(word_strategy(line_start))
    rest = draw(st.lists(word_strategy(False), max_size=3))
    return draw(st.sampled_from(["", " "])) + " ".join([first, *rest])


@st.composite
def query_text(draw: st.DrawFn, line_start: bool = False) -> str:
    """An SMTP argument: spaced text and `<...>` addresses that may hold `+` but no space."""
    parts = []
    for index in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            parts.append(draw(spaced_text(line_start and index == 0)))
        else:
            inside = draw(st.lists(_WORD, min_size=1, max_size=3))
            parts.append("<" + "+".join(inside) + ">")
    return " ".join(parts)


def value_strategy(name: str, line_start: bool = False) -> st.SearchStrategy:
    """Return values for field `name`. `line_start` is true for the block's first field, which starts each line."""
    if name == "date":
        return st.dates(date(2000, 1, 1), date(2099, 12, 31))
    if name in INTEGER_FIELDS:
        return st.none() | st.integers(0, 2**40)
    if name == "cs-uri-query":
        return st.none() | query_text(line_start)
    if name in PLUS_DECODED_FIELDS:
        return st.none() | spaced_text(line_start)
    return st.none() | word_strategy(line_start)


@st.composite
def block_strategy(draw: st.DrawFn) -> dict:
    """A block: a field list in the service's order, its #Date, and rows of values."""
    fields = [name for name in FULL_FIELDS if draw(st.booleans())] or ["c-ip"]
    started = draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 30), timezones=st.just(timezone.utc)))
    started = started.replace(microsecond=0)
    rows = []
    clock = started
    for _ in range(draw(st.integers(0, 8))):
        row = {name: draw(value_strategy(name, line_start=name == fields[0])) for name in fields if name != "time"}
        if "time" in fields:
            # Times move forward within the #Date's day, so a date-less block never passes midnight.
            clock = min(clock + timedelta(seconds=draw(st.integers(0, 600))),
                        clock.replace(hour=23, minute=59, second=59))
            row["time"] = clock.time()
        rows.append(row)
    return {"fields": fields, "started": started, "rows": rows}


def render_value(name: str, value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    return str(value).replace(" ", "+")


def render_log(blocks: list[dict]) -> tuple[bytes, list[tuple[int, dict, dict]]]:
    """Write blocks as the service does; return the bytes and (line, block, row) for each row."""
    lines: list[str] = []
    written: list[tuple[int, dict, dict]] = []
    for block in blocks:
        lines += ["#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0",
                  f"#Date: {block['started']:%Y-%m-%d %H:%M:%S}", f"#Fields: {' '.join(block['fields'])} "]
        for row in block["rows"]:
            lines.append(" ".join(render_value(name, row[name]) for name in block["fields"]))
            written.append((len(lines), block, row))
    return "".join(line + "\r\n" for line in lines).encode("cp950"), written


def expected_timestamp(block: dict, row: dict) -> pd.Timestamp | None:
    if "time" not in block["fields"]:
        return None
    day = row["date"] if "date" in block["fields"] else block["started"].date()
    return pd.Timestamp(datetime.combine(day, row["time"], tzinfo=timezone.utc))


def assert_missing(value: object, where: str) -> None:
    assert pd.isna(value), f"{where}: expected a missing value, found {value!r}"


def check_frame(frame: pd.DataFrame, written: list[tuple[int, dict, dict]]) -> None:
    assert len(frame) == len(written)
    assert frame["source_line"].tolist() == [line for line, _, _ in written]
    assert frame.attrs["skipped"] == []
    for position, (line, block, row) in enumerate(written):
        record = frame.iloc[position]
        expected = expected_timestamp(block, row)
        if expected is None:
            assert_missing(record["timestamp"], f"line {line} timestamp")
        else:
            assert record["timestamp"] == expected, f"line {line}"
        for name in FULL_FIELDS:
            if name in ("date", "time"):
                continue
            value = row.get(name) if name in block["fields"] else None
            if value is None or value == "":
                if name in frame.columns:
                    assert_missing(record[name], f"line {line} {name}")
            else:
                assert record[name] == value, f"line {line} {name}: {record[name]!r} != {value!r}"


@settings(max_examples=150, deadline=None)
@given(blocks=st.lists(block_strategy(), min_size=1, max_size=4))
def test_written_rows_read_back(blocks):
    data, written = render_log(blocks)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ex260302.log"
        path.write_bytes(data)
        frame = read_w3c(path)
    check_frame(frame, written)
    assert [block["rows"] for block in frame.attrs["blocks"]] == [len(block["rows"]) for block in blocks]


@settings(max_examples=60, deadline=None)
@given(blocks=st.lists(block_strategy(), min_size=1, max_size=4), stretch=st.integers(64, 2048))
def test_small_stretches_read_back(blocks, stretch):
    data, written = render_log(blocks)
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(w3c_reader, "_STRETCH_SIZE", stretch):
        path = Path(folder) / "ex260302.log"
        path.write_bytes(data)
        frame = read_w3c(path)
    check_frame(frame, written)


def decode_one_by_one(value: str) -> str:
    """Decode a `cs-uri-query` value character by character: `+` is a space unless a `<` is open."""
    decoded = []
    inside = False
    for character in value:
        if character == "<":
            inside = True
        elif character == ">":
            inside = False
        decoded.append(" " if character == "+" and not inside else character)
    return "".join(decoded)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.none() | st.text(alphabet="<>+a郵", max_size=8), max_size=12),
       start=st.integers(0, 3))
def test_query_decoding_matches_one_by_one(values, start):
    column = pa.array(values, type=pa.string()).slice(min(start, len(values)))
    decoded = decode_plus(column, keep_in_brackets=True).to_pylist()
    assert decoded == [None if value is None else decode_one_by_one(value) for value in column.to_pylist()]
