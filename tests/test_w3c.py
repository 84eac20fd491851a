"""The log readers: W3C Extended blocks, typed columns, skipped lines, archives, the IIS and NCSA formats."""

from __future__ import annotations

import gzip
import os
import shutil
import smtplib
import socket
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import SERVICE_DEFAULT_FIELDS, FixedClock, MailLab
from adminkb.w3c import (
    INTEGER_FIELDS,
    detect_format,
    read_iis,
    read_log,
    read_ncsa,
    read_w3c,
    summarize,
)
from adminkb.w3c import reader as w3c_reader
from adminkb.w3c.columns import decode_query_value, encode_dictionary
from adminkb.w3c.sources import expand_paths
from unprivileged import needs_mode_bits, run_python

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"
FULL_FIELDS = ("date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
               "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
               "cs(User-Agent) cs(Cookie) cs(Referer)")
SERVICE_DEFAULT_FIELDS_TEXT = " ".join(SERVICE_DEFAULT_FIELDS)
START = datetime(2026, 3, 2, 1, 15, 7, tzinfo=timezone.utc)


def header(fields: str = FULL_FIELDS, date: str = "2026-03-02 01:15:07") -> bytes:
    return (f"#Software: Microsoft Internet Information Services 6.0\r\n#Version: 1.0\r\n#Date: {date}\r\n"
            f"#Fields: {fields} \r\n").encode("ascii")


def entry(time_text: str = "01:15:07", method: str = "MAIL", query: str = "+FROM:+<web@example.net>",
          status: str = "250", user: str = "app01", date: str = "2026-03-02") -> bytes:
    return (f"{date} {time_text} 198.51.100.7 {user} SMTPSVC1 MAIL01 192.0.2.10 0 {method} - {query} {status} 0 "
            f"40 27 0 SMTP - - - -\r\n").encode("ascii")


def write(tmp_path: Path, data: bytes, name: str = "ex260302.log") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def skipped(frame: pd.DataFrame) -> list[tuple[int, str]]:
    return [(line["line"], line["reason"]) for line in frame.attrs["skipped"]]


# Blocks and columns


def test_fields_change_midfile_rows():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    assert len(frame) == 6
    assert frame["source_line"].tolist() == [5, 6, 7, 12, 13, 14]
    assert frame["cs-method"].tolist() == ["EHLO", "MAIL", "RCPT", "EHLO", "MAIL", "xxxx"]
    assert frame["sc-status"].tolist() == [250, 250, 250, 250, 250, 500]
    assert frame["cs-username"].iloc[:3].tolist() == ["app01"] * 3
    assert frame["cs-username"].iloc[3:].isna().all()
    assert frame["c-ip"].iloc[3:].tolist() == ["198.51.100.8"] * 3


def test_fields_change_midfile_timestamps():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    expected = pd.to_datetime(["2026-03-02 01:15:07", "2026-03-02 01:15:07", "2026-03-02 01:15:07",
                               "2026-03-02 02:00:00", "2026-03-02 02:00:01", "2026-03-02 02:00:02"], utc=True)
    assert frame["timestamp"].tolist() == expected.tolist()


def test_fields_change_midfile_blocks():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    blocks = frame.attrs["blocks"]
    assert [block["line"] for block in blocks] == [1, 8]
    assert [block["rows"] for block in blocks] == [3, 3]
    assert blocks[1]["fields"] == ["time", "c-ip", "cs-method", "cs-uri-stem", "sc-status"]
    assert blocks[1]["date"] == "2026-03-02 02:00:00"
    assert blocks[0]["software"] == "Microsoft Internet Information Services 6.0"


def test_column_order_is_union_of_blocks():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    fields = [name for name in FULL_FIELDS.split() if name not in ("date", "time")]
    assert list(frame.columns) == ["timestamp", *fields, "source_file", "source_line"]


def test_column_dtypes():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    assert str(frame["timestamp"].dtype) == "datetime64[s, UTC]"
    for name in INTEGER_FIELDS & set(frame.columns):
        assert frame[name].dtype == pd.Int64Dtype(), name
    for name in ("c-ip", "cs-username", "s-sitename", "cs-method", "source_file"):
        assert isinstance(frame[name].dtype, pd.CategoricalDtype), name
    assert frame["cs-uri-query"].dtype == pd.StringDtype("pyarrow")
    assert frame["source_line"].dtype == "int64"


def test_dash_is_missing():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    assert frame["cs-uri-stem"].isna().all()
    assert frame["cs-host"].isna().all()


def test_plus_decoded_outside_brackets():
    frame = read_w3c(LOGS / "w3c_hash_and_quote_in_values.log")
    assert frame["cs-uri-query"].tolist() == [
        " ticket#7", ' FROM: <"first.last"@example.net>', " TO: <help#desk@example.com>",
        ' TO: <"unbalanced@example.com>', " TO: <user+tag@example.com> NOTIFY=NEVER", "ticket#7"]


def test_hash_and_quote_keep_rows_whole():
    frame = read_w3c(LOGS / "w3c_hash_and_quote_in_values.log")
    assert len(frame) == 6
    assert frame["cs-username"].tolist() == ["ticket#7"] * 6
    assert frame["sc-status"].tolist() == [250, 250, 250, 250, 250, 240]
    assert frame.attrs["skipped"] == []


@pytest.mark.parametrize(("raw", "decoded"), [
    ("+FROM:+<user+tag@example.com>+SIZE=12", " FROM: <user+tag@example.com> SIZE=12"),
    ("<a>+<b+c>+d", "<a> <b+c> d"),
    ("<cut+short", "<cut+short"),
    ("+/+HTTP/1.0", " / HTTP/1.0"),
    ("no-plus", "no-plus"),
])
def test_decode_query_value(raw, decoded):
    assert decode_query_value(raw) == decoded


def test_default_fields_date_from_directive():
    frame = read_w3c(LOGS / "w3c_default_fields_no_date.log")
    assert frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S").tolist() == [
        "2026-03-02 23:59:58", "2026-03-02 23:59:59", "2026-03-03 00:00:01", "2026-03-03 00:00:02",
        "2026-03-03 00:00:02"]
    assert list(frame.columns) == ["timestamp", "c-ip", "cs-method", "cs-uri-stem", "sc-status", "source_file",
                                   "source_line"]


def test_no_date_and_no_directive_date(tmp_path):
    data = b"#Fields: time c-ip cs-method cs-uri-stem sc-status\r\n01:00:00 198.51.100.7 EHLO - 250\r\n"
    frame = read_w3c(write(tmp_path, data))
    assert len(frame) == 1
    assert frame["timestamp"].isna().all()


def test_invalid_directive_date(tmp_path, caplog):
    data = header(fields=SERVICE_DEFAULT_FIELDS_TEXT, date="2026-13-45 99:00:00") + \
        b"01:00:00 198.51.100.7 EHLO - 250\r\n"
    frame = read_w3c(write(tmp_path, data))
    assert len(frame) == 1
    assert frame["timestamp"].isna().all()
    assert "invalid #Date '2026-13-45 99:00:00'" in caplog.text


def test_time_zone_on_request():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log", tz="Asia/Taipei")
    assert str(frame["timestamp"].dtype) == "datetime64[s, Asia/Taipei]"
    assert frame["timestamp"].iloc[0].isoformat() == "2026-03-02T09:15:07+08:00"
    assert frame.attrs["tz"] == "Asia/Taipei"


def test_utc_unless_asked():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    assert frame["timestamp"].iloc[0].isoformat() == "2026-03-02T01:15:07+00:00"
    assert frame.attrs["tz"] is None


# Lines that are not rows


def test_truncated_last_line():
    frame = read_w3c(LOGS / "w3c_truncated_last_line.log")
    assert frame["source_line"].tolist() == [5, 6, 7]
    assert skipped(frame) == [(8, "truncated")]


def test_line_before_fields():
    frame = read_w3c(LOGS / "w3c_line_before_fields.log")
    assert frame["source_line"].tolist() == [6, 7]
    assert skipped(frame) == [(1, "before_fields")]
    assert frame.attrs["blocks"][0]["line"] == 2


def test_binary_garbage_lines():
    frame = read_w3c(LOGS / "w3c_binary_garbage.log")
    assert frame["source_line"].tolist() == [5, 6, 8, 13]
    assert frame["cs-method"].tolist() == ["EHLO", "MAIL", "RCPT", "EHLO"]
    assert skipped(frame) == [(7, "binary"), (9, "binary")]


def test_directive_after_nul_bytes_starts_block():
    frame = read_w3c(LOGS / "w3c_binary_garbage.log")
    assert [block["line"] for block in frame.attrs["blocks"]] == [1, 9]
    assert frame["timestamp"].iloc[-1].isoformat() == "2026-03-02T03:00:00+00:00"


def test_undecodable_byte():
    frame = read_w3c(LOGS / "w3c_undecodable_byte.log")
    assert frame["source_line"].tolist() == [5, 7]
    assert frame["cs-username"].tolist() == ["郵件主機", "郵件主機"]
    assert frame.attrs["skipped"] == [
        {"file": str(LOGS / "w3c_undecodable_byte.log"), "line": 6, "reason": "undecodable", "detail": "0x80"}]


def test_utf8_byte_order_mark(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + header() + entry().replace(b"app01", "郵件".encode("utf-8")))
    frame = read_w3c(path)
    assert frame["cs-username"].tolist() == ["郵件"]
    assert frame.attrs["blocks"][0]["line"] == 1


def test_wrong_field_count():
    frame = read_w3c(LOGS / "w3c_wrong_field_count.log")
    assert frame["source_line"].tolist() == [5, 7, 9, 14, 16]
    assert frame["cs-method"].tolist() == ["EHLO", "RCPT", "QUIT", "EHLO", "QUIT"]
    assert skipped(frame) == [(6, "field_count"), (8, "field_count"), (15, "field_count")]
    # Expected/found: one field short, one field over (a space not written as +), then the
    # second block's own count of five.
    assert [line["detail"] for line in frame.attrs["skipped"]] == ["21/20", "21/22", "5/4"]


def test_wrong_field_count_in_summary():
    document = summarize(read_w3c(LOGS / "w3c_wrong_field_count.log"))
    assert document["rows"] == 5
    assert document["skipped_by_reason"] == {"field_count": 3}


def test_entry_with_trailing_space_is_accepted(tmp_path):
    frame = read_w3c(write(tmp_path, header() + entry().replace(b"\r\n", b" \r\n")))
    assert len(frame) == 1
    assert frame.attrs["skipped"] == []


def test_empty_line(tmp_path):
    frame = read_w3c(write(tmp_path, header() + entry() + b"\r\n" + entry("01:15:09")))
    assert frame["source_line"].tolist() == [5, 7]
    assert skipped(frame) == [(6, "empty_line")]


def test_lone_carriage_return(tmp_path):
    frame = read_w3c(write(tmp_path, header() + entry() + entry(query="+FROM:\r<x@example.net>") + entry()))
    assert frame["source_line"].tolist() == [5, 7]
    assert skipped(frame) == [(6, "binary")]


@pytest.mark.parametrize(("bad", "detail"), [
    (entry(status="abc"), "sc-status=abc"),
    (entry(status="99999999999999999999"), "sc-status=99999999999999999999"),
    (entry(time_text="25:00:00"), "time=25:00:00"),
    (entry(date="2026-02-30"), "date=2026-02-30"),
])
def test_invalid_value_skipped(tmp_path, bad, detail):
    frame = read_w3c(write(tmp_path, header() + entry() + bad + entry("01:15:09", status="451")))
    assert frame["source_line"].tolist() == [5, 7]
    assert frame["sc-status"].tolist() == [250, 451]
    assert frame.attrs["skipped"] == [{"file": str(tmp_path / "ex260302.log"), "line": 6,
                                       "reason": "invalid_value", "detail": detail}]


@pytest.mark.parametrize("line", [
    entry(status="-5"), entry(status="0x10"), entry(status="9223372036854775807"), entry(time_text="01:02"),
    entry(date="1969-12-31"), entry(status="-"),
])
def test_value_reads_same_on_both_paths(tmp_path, line):
    alone = read_w3c(write(tmp_path, header() + line, "ex260302.log"))
    # The "abc" status makes the stretch read its numbers, dates and times as text first.
    beside_bad = read_w3c(write(tmp_path, header() + line + entry(status="abc"), "ex260303.log"))
    assert len(alone) == 1
    assert len(beside_bad) == 1
    for name in ("timestamp", "sc-status"):
        assert alone[name].tolist() == beside_bad[name].tolist(), name


def test_unknown_directive_and_remark(tmp_path):
    data = header() + b"#Remark: restarted by the admin\r\n#Bogus line\r\n" + entry()
    frame = read_w3c(write(tmp_path, data))
    assert frame["source_line"].tolist() == [7]
    assert skipped(frame) == [(6, "unknown_directive")]


def test_bad_fields_directive(tmp_path):
    data = header(fields="date time date") + b"2026-03-02 01:15:07 2026-03-02\r\n" + header() + entry()
    frame = read_w3c(write(tmp_path, data))
    assert frame["source_line"].tolist() == [10]
    assert skipped(frame) == [(4, "bad_fields_directive"), (5, "bad_fields_directive")]


def test_directives_without_entries_make_a_block(tmp_path):
    frame = read_w3c(write(tmp_path, header() + entry() + header(fields=SERVICE_DEFAULT_FIELDS_TEXT)))
    assert len(frame) == 1
    assert [block["rows"] for block in frame.attrs["blocks"]] == [1, 0]
    assert "cs-method" in frame.columns


def test_empty_file(tmp_path):
    frame = read_w3c(write(tmp_path, b""))
    assert len(frame) == 0
    assert list(frame.columns) == ["timestamp", "source_file", "source_line"]
    assert frame.attrs["blocks"] == []


def test_truncated_directive(tmp_path):
    frame = read_w3c(write(tmp_path, header() + entry() + b"#Softw"))
    assert len(frame) == 1
    assert skipped(frame) == [(6, "truncated")]


# Many stretches: line numbers stay exact across chunks and workers


def _big_log() -> tuple[bytes, list[tuple[int, str]]]:
    """Return a log with blocks, bad lines and '#' in values, and the (line, method) of each row."""
    data = header()
    rows: list[tuple[int, str]] = []
    line = 4
    for index in range(3000):
        line += 1
        if index % 997 == 5:
            data += entry().replace(b" SMTP - - - -", b" SMTP - -")
        elif index % 1201 == 7:
            data += b"\x00\x01garbage\r\n"
        elif index == 1500:
            data += header(fields=SERVICE_DEFAULT_FIELDS_TEXT, date="2026-03-02 02:00:00")
            line += 3
            for extra in range(40):
                data += f"02:00:{extra:02d} 198.51.100.9 NOOP - 250\r\n".encode("ascii")
                line += 1
                rows.append((line, "NOOP"))
            data += header()
            line += 4
        else:
            method = f"M{index % 7}#" if index % 13 == 0 else f"M{index % 7}"
            data += entry(method=method)
            rows.append((line, method))
    return data, rows


@pytest.mark.parametrize("workers", [1, 3])
def test_line_numbers_across_stretches(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(w3c_reader, "_STRETCH_SIZE", 4096)
    monkeypatch.setattr(w3c_reader, "_WORKERS", workers)
    data, rows = _big_log()
    frame = read_w3c(write(tmp_path, data))
    assert len(frame) == len(rows)
    assert frame["source_line"].tolist() == [line for line, _ in rows]
    assert frame["cs-method"].tolist() == [method for _, method in rows]
    lines = data.split(b"\n")
    for reported in frame.attrs["skipped"]:
        assert lines[reported["line"] - 1].startswith((b"2026-03-02", b"\x00")), reported


def test_many_hashes_found_by_vector_search(tmp_path, monkeypatch):
    monkeypatch.setattr(w3c_reader, "_HASH_HITS_BEFORE_VECTOR_SEARCH", 3)
    data = header() + entry(method="A#B") * 20 + header(fields=SERVICE_DEFAULT_FIELDS_TEXT) + \
        b"01:00:00 198.51.100.9 NOOP - 250\r\n"
    frame = read_w3c(write(tmp_path, data))
    assert len(frame) == 21
    assert [block["line"] for block in frame.attrs["blocks"]] == [1, 25]


@pytest.mark.parametrize("values", [
    ["SMTPSVC1"] * 5,
    [None] * 3,
    ["a", "aa", ""],
    ["ab", "ab", "ac"],
    ["", ""],
    ["x"],
    ["a", None, "a"],
    ["郵件伺服器"] * 3,
    ["ab", "ba"],
])
@pytest.mark.parametrize("sliced", [False, True])
def test_encode_dictionary_matches_arrow(values, sliced):
    column = pa.array(values, type=pa.string())
    if sliced:
        column = column.slice(1)
    encoded = encode_dictionary(column)
    expected = pc.dictionary_encode(column)
    assert encoded.type == expected.type
    assert encoded.dictionary.equals(expected.dictionary)
    assert encoded.indices.equals(expected.indices)


def test_encode_dictionary_copies_single_value():
    column = pa.array(["SMTPSVC1"] * 1000, type=pa.string())
    encoded = encode_dictionary(column)
    assert encoded.dictionary.to_pylist() == ["SMTPSVC1"]
    assert encoded.dictionary.buffers()[2].size == len("SMTPSVC1")


def test_value_constant_in_one_stretch_only(tmp_path, monkeypatch):
    monkeypatch.setattr(w3c_reader, "_STRETCH_SIZE", 4096)
    users = ["app01"] * 60 + ["app02", "-", "app01"] * 20 + ["-"] * 60
    data = header() + b"".join(entry(user=user) for user in users)
    frame = read_w3c(write(tmp_path, data))
    read = [None if pd.isna(user) else user for user in frame["cs-username"].tolist()]
    assert read == [None if user == "-" else user for user in users]
    assert list(frame["cs-username"].cat.categories) == ["app01", "app02"]


# Sources: folders and archives


def test_gzip_file():
    frame = read_w3c(LOGS / "w3c_gzip_compressed.log.gz")
    assert len(frame) == 5
    assert frame["source_file"].unique().tolist() == [str(LOGS / "w3c_gzip_compressed.log.gz")]


def test_cut_gzip_keeps_lines_before_cut(tmp_path):
    data = header() + b"".join(entry(f"01:{minute:02d}:00") for minute in range(60)) * 40
    compressed = gzip.compress(data, mtime=0)
    path = write(tmp_path, compressed[: len(compressed) * 2 // 3], "ex260302.log.gz")
    frame = read_w3c(path)
    assert len(frame) > 1000
    assert skipped(frame) == [(len(frame) + 5, "truncated")]
    assert frame["source_line"].tolist() == list(range(5, 5 + len(frame)))


def test_zip_members_in_order():
    frame = read_w3c(LOGS / "w3c_zip_two_days.zip")
    archive = str(LOGS / "w3c_zip_two_days.zip")
    assert frame["source_file"].unique().tolist() == [f"{archive}/ex260302.log", f"{archive}/ex260303.log"]
    assert frame["timestamp"].dt.day.tolist() == [2] * 5 + [3] * 5


def test_folder_reads_logs_in_name_order(tmp_path):
    for name in ("ex260303.log", "ex260302.log"):
        shutil.copy(LOGS / "w3c_truncated_last_line.log", tmp_path / name)
    (tmp_path / "notes.txt").write_text("not read")
    (tmp_path / "SMTPSVC2").mkdir()
    frame = read_w3c(tmp_path)
    assert frame["source_file"].unique().tolist() == [str(tmp_path / "ex260302.log"), str(tmp_path / "ex260303.log")]
    assert len(frame) == 6


@pytest.mark.parametrize("path", sorted(LOGS.glob("*.log")), ids=lambda path: path.name)
def test_fixture_keeps_crlf_line_ends(path):
    # The service writes CRLF. A checkout that converted line ends would test the readers on
    # LF files instead, so .gitattributes marks data/logs as -text.
    data = path.read_bytes()
    assert data.count(b"\n") > 0
    assert data.count(b"\n") == data.count(b"\r\n")


def test_several_paths_in_one_frame():
    frame = read_w3c([LOGS / "w3c_truncated_last_line.log", LOGS / "w3c_default_fields_no_date.log"])
    assert len(frame) == 8
    assert len(frame.attrs["files"]) == 2
    assert len(frame.attrs["blocks"]) == 2


# Errors


def test_missing_path(tmp_path):
    with pytest.raises(InputError) as caught:
        read_w3c(tmp_path / "nothing.log")
    assert caught.value.key == "w3c.path_not_found"
    assert caught.value.exit_status == 2


def test_folder_without_logs(tmp_path):
    (tmp_path / "readme.txt").write_text("no logs here")
    with pytest.raises(InputError) as caught:
        read_w3c(tmp_path)
    assert caught.value.key == "w3c.no_logs_in_folder"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need os.mkfifo (POSIX)")
def test_named_pipe_rejected(tmp_path):
    pipe = tmp_path / "ex260302.log"
    os.mkfifo(pipe)
    with pytest.raises(InputError) as caught:
        read_w3c(pipe)
    assert caught.value.key == "w3c.not_a_file"
    assert caught.value.value == str(pipe)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need os.mkfifo (POSIX)")
def test_folder_skips_pipe_and_subfolder(tmp_path):
    os.mkfifo(tmp_path / "ex260301.log")
    (tmp_path / "ex260302.log").mkdir()
    shutil.copy(LOGS / "w3c_truncated_last_line.log", tmp_path / "ex260303.log")
    frame = read_w3c(tmp_path)
    assert frame["source_file"].unique().tolist() == [str(tmp_path / "ex260303.log")]


def test_folder_named_like_log(tmp_path):
    folder = tmp_path / "ex260302.log"
    folder.mkdir()
    with pytest.raises(InputError) as caught:
        read_w3c(folder)
    assert caught.value.key == "w3c.no_logs_in_folder"
    assert caught.value.value == str(folder)


# A child that reads the paths of its arguments with read_w3c and prints the error's key and value.
_READ_AND_REPORT = """
import sys
from adminkb.errors import InputError
from adminkb.w3c import read_w3c
try:
    read_w3c(sys.argv[1:])
except InputError as error:
    print(error.key, error.value, sep="|")
else:
    print("read")
"""


@needs_mode_bits
@pytest.mark.parametrize(("argument", "locked", "key"), [
    ("ex260302.log", "ex260302.log", "w3c.unreadable_file"),
    ("SMTPSVC1", "SMTPSVC1/ex260303.log", "w3c.unreadable_file"),
    ("SMTPSVC1", "SMTPSVC1", "w3c.unreadable_folder"),
    ("SMTPSVC1/ex260303.log", "SMTPSVC1", "w3c.inaccessible_path"),
], ids=["file", "file_in_folder", "folder", "file_under_locked_folder"])
def test_unreadable_input(tmp_path, argument, locked, key):
    (tmp_path / "SMTPSVC1").mkdir()
    for name in ("ex260302.log", "SMTPSVC1/ex260303.log"):
        shutil.copy(LOGS / "w3c_truncated_last_line.log", tmp_path / name)
    target = tmp_path / locked
    target.chmod(0)
    try:
        result = run_python("-c", _READ_AND_REPORT, str(tmp_path / argument))
    finally:
        target.chmod(0o700)
    assert result.returncode == 0, result.stderr
    # The error names the file or folder that could not be read, or the path given when a
    # folder above it is locked.
    named = target if key != "w3c.inaccessible_path" else tmp_path / argument
    assert result.stdout.strip() == f"{key}|{named}"


@needs_mode_bits
def test_cli_unreadable_log_exit_status(tmp_path):
    log = tmp_path / "ex260302.log"
    shutil.copy(LOGS / "w3c_truncated_last_line.log", log)
    log.chmod(0)
    try:
        result = run_python("-m", "adminkb", "log", "summary", str(log), env=dict(os.environ, ADMINKB_LANG="en"))
    finally:
        log.chmod(0o600)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f'The file "{log}" cannot be read: ' in result.stderr
    assert "Traceback" not in result.stderr


def test_not_a_w3c_log():
    with pytest.raises(InputError) as caught:
        read_w3c(LOGS / "iis_format_sample.log")
    assert caught.value.key == "w3c.not_w3c"
    assert "iis" in str(caught.value)


def test_no_paths():
    with pytest.raises(InputError) as caught:
        read_w3c([])
    assert caught.value.key == "w3c.no_paths"


@pytest.mark.parametrize("zone", ["Nowhere/City", "Asia", "../etc", ""])
def test_unknown_time_zone(zone):
    with pytest.raises(InputError) as caught:
        read_w3c(LOGS / "w3c_truncated_last_line.log", tz=zone)
    assert caught.value.key == "w3c.unknown_time_zone"


def test_unknown_encoding():
    with pytest.raises(InputError) as caught:
        read_w3c(LOGS / "w3c_truncated_last_line.log", encoding="no-such-codec")
    assert caught.value.key == "w3c.unknown_encoding"


def test_damaged_gzip(tmp_path):
    data = bytearray(gzip.compress(header() + entry() * 50, mtime=0))
    data[20:40] = b"\xff" * 20
    with pytest.raises(InputError) as caught:
        read_w3c(write(tmp_path, bytes(data), "ex260302.log.gz"))
    assert caught.value.key == "w3c.bad_archive"


def test_damaged_zip(tmp_path):
    data = (LOGS / "w3c_zip_two_days.zip").read_bytes()
    with pytest.raises(InputError) as caught:
        read_w3c(write(tmp_path, data[: len(data) // 2], "logs.zip"))
    assert caught.value.key == "w3c.bad_archive"


def test_zip_encrypted_member():
    # The member is data/logs/w3c_fields_change_midfile.log, encrypted with the password "example".
    archive = LOGS / "w3c_zip_encrypted_member.zip"
    with pytest.raises(InputError) as caught:
        read_w3c(archive)
    assert caught.value.key == "w3c.bad_archive"
    assert caught.value.value == f"{archive}/ex260302.log"
    assert "encrypted" in caught.value.values["detail"]
    assert message("w3c.bad_archive_next") in str(caught.value)


def _zip_member(tmp_path: Path, data: bytes, method: int) -> tuple[Path, int]:
    """Write `data` as the member ex260302.log of logs.zip and return the path and the offset of the member's data."""
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("ex260302.log", data)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("ex260302.log")
    # The local header is 30 bytes and the name follows it. zipfile writes no extra field for a small member.
    return path, info.header_offset + 30 + len(info.filename)


def test_zip_unsupported_compression(tmp_path):
    path, _ = _zip_member(tmp_path, header() + entry(), zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    # Method 9 is Deflate64, which Python's zipfile cannot extract. The method is at byte 8 of
    # the local header and byte 10 of the central directory entry.
    data[8:10] = (9).to_bytes(2, "little")
    data[central + 10:central + 12] = (9).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as caught:
        read_w3c(path)
    assert caught.value.key == "w3c.bad_archive"
    assert caught.value.value == f"{path}/ex260302.log"


def test_zip_invalid_deflate_data(tmp_path):
    path, start = _zip_member(tmp_path, header() + entry() * 20, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    # 0x06 starts a deflate block of type 3, which does not exist, so the first read fails.
    data[start] = 0x06
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as caught:
        read_w3c(path)
    assert caught.value.key == "w3c.bad_archive"
    assert caught.value.value == f"{path}/ex260302.log"


def test_zip_member_breaks_mid_read(tmp_path, monkeypatch):
    monkeypatch.setattr(w3c_reader, "_STRETCH_SIZE", 4096)
    log = header() + b"".join(entry(f"01:{minute:02d}:{second:02d}") for minute in range(20) for second in range(60))
    path, start = _zip_member(tmp_path, log, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    # Damage a stored byte two thirds in: the stretches before it are read, and the CRC-32
    # check at the member's end fails.
    data[start + len(log) * 2 // 3] ^= 0x01
    path.write_bytes(bytes(data))
    # The damage is not found when the member is opened or while its first stretch is read.
    with zipfile.ZipFile(path) as archive, archive.open("ex260302.log") as member:
        assert member.read(4096) == log[:4096]
    with pytest.raises(InputError) as caught:
        read_w3c(path)
    assert caught.value.key == "w3c.bad_archive"
    assert caught.value.value == f"{path}/ex260302.log"
    assert "CRC" in caught.value.values["detail"]


def test_zip_without_logs(tmp_path):
    path = tmp_path / "notes.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no logs")
    with pytest.raises(InputError) as caught:
        read_w3c(path)
    assert caught.value.key == "w3c.no_logs_in_archive"


# Summary


def test_summary_counts():
    frame = read_w3c([LOGS / "w3c_binary_garbage.log", LOGS / "w3c_fields_change_midfile.log"])
    document = summarize(frame)
    assert document["format"] == "w3c"
    assert document["blocks"] == 4
    assert document["rows"] == 10
    assert document["skipped"] == 2
    assert document["skipped_by_reason"] == {"binary": 2}
    assert document["first"] == "2026-03-02T01:15:07+00:00"
    assert document["last"] == "2026-03-02T03:00:00+00:00"
    assert [entry["blocks"] for entry in document["field_sets"]] == [3, 1]
    assert [entry["rows"] for entry in document["field_sets"]] == [7, 3]


def test_summary_of_empty_frame(tmp_path):
    path = write(tmp_path, b"")
    document = summarize(read_w3c(path))
    assert document["rows"] == 0
    assert document["first"] is None
    assert document["empty_files"] == [str(path)]


def test_summary_names_only_the_empty_file(tmp_path):
    empty = tmp_path / "ex260303.log"
    empty.write_bytes(b"")
    logs = [LOGS / "w3c_binary_garbage.log", empty, LOGS / "w3c_fields_change_midfile.log"]
    document = summarize(read_w3c(logs))
    assert document["empty_files"] == [str(empty)]
    assert document["rows"] == 10


# The mail lab's logs


def _wait_for_quit(lab: MailLab, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if b"".join(path.read_bytes() for path in lab.log_files()).count(b" QUIT ") >= count:
            return
        time.sleep(0.02)
    raise AssertionError("the lab did not log QUIT in time")


LAB_MESSAGE = b"Subject: lab\r\n\r\nbody\r\n"


@pytest.mark.timeout(60)
def test_reads_lab_log(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START)) as lab:
        with smtplib.SMTP(lab.host, lab.port, local_hostname="app01.example.net", timeout=10) as client:
            client.sendmail("web@example.net", ["user@example.com"], LAB_MESSAGE)
        with socket.create_connection((lab.host, lab.port), timeout=10) as raw:
            replies = raw.makefile("rb")
            replies.readline()
            raw.sendall("EHLO 郵件主機\r\n".encode("cp950"))
            while replies.readline()[3:4] == b"-":
                pass
            raw.sendall(b"QUIT\r\n")
            replies.readline()
        lab.set_log_fields(SERVICE_DEFAULT_FIELDS)
        with smtplib.SMTP(lab.host, lab.port, local_hostname="app02.example.net", timeout=10) as client:
            client.noop()
        _wait_for_quit(lab, 3)
        frame = read_w3c(lab.log_dir)
        # Shown when an assert fails, to tell a lab logging change from a reader fault.
        written = b"".join(path.read_bytes() for path in lab.log_files()).decode("cp950")
    assert frame["cs-method"].tolist() == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT", "EHLO", "QUIT", "NOOP", "QUIT"], \
        written
    assert frame["cs-uri-query"].iloc[:3].tolist() == [
        " app01.example.net", f" FROM:<web@example.net> size={len(LAB_MESSAGE)}", " TO:<user@example.com>"], written
    assert frame["cs-username"].iloc[5:7].tolist() == ["郵件主機", "郵件主機"], written
    assert frame["c-ip"].unique().tolist() == ["127.0.0.1"]
    assert (frame["timestamp"] == pd.Timestamp(START)).all()
    assert [len(block["fields"]) for block in frame.attrs["blocks"]] == [21, 5]
    assert frame.attrs["skipped"] == []


# Microsoft IIS and NCSA formats


def test_iis_format_rows():
    frame = read_iis(LOGS / "iis_format_sample.log")
    assert frame["cs-method"].tolist() == ["EHLO", "MAIL FROM", "RCPT TO", "DATA", "QUIT"]
    assert frame["cs-uri-query"].tolist()[1:3] == ["FROM:<web@example.net>",
                                                  "TO:<user@example.com>, NOTIFY=SUCCESS,FAILURE"]
    assert frame["time-taken"].tolist() == [0, 90, 0, 270, 81]
    assert frame["cs-bytes"].tolist() == [27, 42, 32, 480, 4]
    assert frame["sc-bytes"].tolist() == [0, 0, 0, 101, 52]
    assert frame["cs-uri-stem"].isna().all()
    assert skipped(frame) == [(6, "not_in_format")]


def test_iis_format_local_time():
    frame = read_iis(LOGS / "iis_format_sample.log")
    assert str(frame["timestamp"].dtype) == "datetime64[s]"
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-03-02 09:15:07")
    assert frame["timestamp"].iloc[4] == pd.Timestamp("2026-03-02 09:15:08")


def test_iis_format_with_server_zone():
    frame = read_iis(LOGS / "iis_format_sample.log", tz="Asia/Taipei")
    assert frame["timestamp"].iloc[0].isoformat() == "2026-03-02T09:15:07+08:00"
    assert frame["timestamp"].dt.tz_convert("UTC").iloc[0].isoformat() == "2026-03-02T01:15:07+00:00"


def test_iis_invalid_status(tmp_path):
    path = write(tmp_path, b"192.0.2.7, -, 3/2/26, 9:15:07, SMTPSVC1, MAIL01, 192.0.2.10, 0, 1, 0, x5x, 0, "
                           b"EHLO, -, app01,\r\n192.0.2.7, -, 3/2/26, 9:15:08, SMTPSVC1, MAIL01, 192.0.2.10, 0, 1, "
                           b"0, 250, 0, EHLO, -, app01,\r\n", "in260302.log")
    frame = read_iis(path)
    assert frame["source_line"].tolist() == [2]
    assert frame.attrs["skipped"][0]["detail"] == "sc-status=x5x"


def test_ncsa_format_rows():
    frame = read_ncsa(LOGS / "ncsa_format_sample.log")
    assert frame["cs-method"].tolist() == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert frame["cs-uri-query"].tolist()[:2] == [" app01.example.net", " FROM: <user+tag@example.net>"]
    assert frame["cs-version"].unique().tolist() == ["SMTP"]
    assert frame["request"].iloc[0] == "EHLO -?+app01.example.net SMTP"
    assert frame["sc-bytes"].tolist() == [0, 0, 0, 131, 67]
    assert skipped(frame) == [(6, "invalid_value")]


def test_ncsa_local_time_and_offset():
    frame = read_ncsa(LOGS / "ncsa_format_sample.log")
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-03-02 09:15:07")
    assert frame["utc_offset"].unique().tolist() == ["+0800"]


def test_ncsa_zone_uses_line_offset():
    frame = read_ncsa(LOGS / "ncsa_format_sample.log", tz="UTC")
    assert frame["timestamp"].iloc[0].isoformat() == "2026-03-02T01:15:07+00:00"
    frame = read_ncsa(LOGS / "ncsa_format_sample.log", tz="America/New_York")
    assert frame["timestamp"].iloc[0].isoformat() == "2026-03-01T20:15:07-05:00"


def test_ncsa_not_in_format(tmp_path):
    with pytest.raises(InputError) as caught:
        read_ncsa(LOGS / "w3c_truncated_last_line.log")
    assert caught.value.key == "w3c.not_ncsa"


def test_iis_not_in_format():
    with pytest.raises(InputError) as caught:
        read_iis(LOGS / "ncsa_format_sample.log")
    assert caught.value.key == "w3c.not_iis"


# Recognising the format


@pytest.mark.parametrize(("name", "expected"), [
    ("w3c_truncated_last_line.log", "w3c"), ("w3c_binary_garbage.log", "w3c"),
    ("w3c_line_before_fields.log", "w3c"), ("iis_format_sample.log", "iis"),
    ("ncsa_format_sample.log", "ncsa"), ("w3c_gzip_compressed.log.gz", "w3c"),
])
def test_detect_format(name, expected):
    assert detect_format(expand_paths(LOGS / name)[0]) == expected


def test_read_log_dispatches():
    assert read_log(LOGS / "iis_format_sample.log").attrs["format"] == "iis"
    assert read_log(LOGS / "ncsa_format_sample.log").attrs["format"] == "ncsa"
    assert read_log(LOGS / "w3c_zip_two_days.zip").attrs["format"] == "w3c"


def test_read_log_mixed_formats():
    with pytest.raises(InputError) as caught:
        read_log([LOGS / "w3c_truncated_last_line.log", LOGS / "iis_format_sample.log"])
    assert caught.value.key == "w3c.mixed_formats"


def test_read_log_unknown_format_name():
    with pytest.raises(InputError) as caught:
        read_log(LOGS / "iis_format_sample.log", log_format="odbc")
    assert caught.value.key == "w3c.unknown_log_format"


def test_read_log_empty_file(tmp_path):
    frame = read_log(write(tmp_path, b""))
    assert frame.attrs["format"] == "w3c"
    assert len(frame) == 0


def test_read_log_unrecognised_file(tmp_path):
    with pytest.raises(InputError) as caught:
        read_log(write(tmp_path, b"hello\r\nworld\r\n", "notes.log"))
    assert caught.value.key == "w3c.unrecognised_format"
    assert caught.value.next_key == "w3c.unrecognised_format_next"
    assert "--log-format auto" not in str(caught.value)
