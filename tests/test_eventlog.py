"""SMTP service events from .evtx files (read by the real `evtx` parser) and eventquery.vbs CSV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from adminkb.errors import InputError
from adminkb import eventlog
from adminkb.eventlog import parse_eventquery_time, read_events
from adminkb.samples import Notice, SampleTable
from tests.clirun import run_area
from tests.evtx_writer import Event, write_evtx


def _at(hour: int, minute: int) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=timezone.utc)


EVENTS = [
    Event("SMTPSVC", 4000, 3, _at(1, 20), ("example.net", "The connection was dropped by the remote host.")),
    Event("Service Control Manager", 7036, 4, _at(1, 21), ("Simple Mail Transfer Protocol (SMTP)", "running")),
    Event("SMTPSVC", 4006, 3, _at(2, 5), ("[192.0.2.25]", "example.net", "The remote server did not respond.")),
    Event("Smtpsvc", 1234, 2, _at(3, 0), ("An error without a known explanation.",)),
    Event("SMTPSVC", 535, 4, _at(3, 30), ("An information event.",)),
    Event("Service Control Manager", 7031, 2, _at(4, 0), ("Simple Mail Transfer Protocol (SMTP)",)),
]


@pytest.fixture()
def evtx_file(tmp_path):
    return write_evtx(tmp_path / "System.evtx", EVENTS)


def test_smtp_problems_only(evtx_file):
    frame = read_events(evtx_file)
    assert list(frame["event_id"]) == [4000, 4006, 1234]
    assert list(frame["level"]) == ["warning", "warning", "error"]
    assert frame["time"].iloc[0] == datetime(2026, 3, 2, 1, 20, tzinfo=timezone.utc)


def test_known_events_are_explained(evtx_file):
    frame = read_events(evtx_file).set_index("event_id")
    assert "遠端網域" in frame.loc[4000, "explanation"]
    assert "Smart Host" in frame.loc[4006, "next_step"]
    assert pd.isna(frame.loc[1234, "explanation"])
    assert "[192.0.2.25]" in frame.loc[4006, "text"]


def test_time_range_includes_both_ends(evtx_file):
    frame = read_events(evtx_file, since="2026-03-02T02:05:00", until="2026-03-02T03:00:00+00:00")
    assert list(frame["event_id"]) == [4006, 1234]


def test_time_range_with_offset(evtx_file):
    frame = read_events(evtx_file, since="2026-03-02T10:00:00+08:00")
    assert list(frame["event_id"]) == [4006, 1234]


def test_every_source_and_level(evtx_file):
    frame = read_events(evtx_file, sources=None, levels=None)
    assert len(frame) == len(EVENTS)


@pytest.mark.parametrize(("since", "until"), [("yesterday", None), (None, "2026-13-01"),
                                               ("2026-03-03", "2026-03-02")])
def test_bad_times_raise(evtx_file, since, until):
    with pytest.raises(InputError) as caught:
        read_events(evtx_file, since=since, until=until)
    assert caught.value.next_key == "eventlog.bad_time_next"


def test_missing_file_raises(tmp_path):
    with pytest.raises(InputError) as caught:
        read_events(tmp_path / "none.evtx")
    assert caught.value.key == "eventlog.not_found"


@pytest.mark.parametrize("content", [b"", b"ElfFile\x00" + bytes(100), b"not an event log at all\r\n" * 300])
def test_not_evtx_raises(tmp_path, content):
    path = tmp_path / "System.evt"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_events(path)
    assert caught.value.key == "eventlog.unreadable"
    assert "wevtutil" in str(caught.value)


def test_cli_events_table(evtx_file, capsys):
    assert run_area("config", "events", str(evtx_file)) == 1
    output = capsys.readouterr().out
    assert "4006" in output
    assert "7036" not in output


def test_cli_events_json_all_sources(evtx_file, capsys):
    assert run_area("config", "events", str(evtx_file), "--all-sources", "--format", "json") == 1
    document = json.loads(capsys.readouterr().out)
    assert [event["event_id"] for event in document["events"]] == [4000, 4006, 1234, 7031]


def test_cli_events_empty_range(evtx_file, capsys):
    assert run_area("config", "events", str(evtx_file), "--since", "2026-03-02T05:00:00") == 0
    assert "0" in capsys.readouterr().out


# --- eventquery.vbs CSV output ---------------------------------------------------------------

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "evtx"
ENGLISH_CSV = SAMPLES / "smtpsvc_events_en-US.csv"
CHINESE_CSV = SAMPLES / "smtpsvc_events_zh-TW.csv"
SAMPLE_EVTX = SAMPLES / "System_smtpsvc_sample.evtx"
HEADER = '"Type","Event","Date Time","Source","ComputerName","Category","User","Description"'
WARNING_ROW = ('"warning","4000","3/2/2026 9:30:00 AM","SMTPSVC","MAIL01","None","N/A",'
               '"Message delivery to the remote domain \'blocked.lab.test\' failed."')


def _summary(frame):
    return [(row.time.isoformat(), row.event_id, row.level, row.source) for row in frame.itertuples()]


def _write_csv(tmp_path, lines, name="smtpsvc_events.csv", encoding="ascii"):
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


@pytest.mark.parametrize("sample", [ENGLISH_CSV, CHINESE_CSV], ids=["en-US", "zh-TW"])
def test_csv_matches_evtx_table(sample):
    expected = _summary(read_events(SAMPLE_EVTX, sources=None, levels=None))
    assert _summary(read_events(sample, sources=None, levels=None)) == expected


def test_csv_problems_explained():
    frame = read_events(CHINESE_CSV)
    assert list(frame["event_id"]) == [4000, 4006, 4006, 402]
    assert list(frame["level"]) == ["warning", "warning", "warning", "error"]
    assert frame["computer"].iloc[0] == "MAIL01"
    assert "遠端主機中斷了連線" in frame["text"].iloc[0]
    assert "遠端網域" in frame["explanation"].iloc[0]
    assert "Smart Host" in frame["next_step"].iloc[1]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-8"])
def test_csv_unicode_encodings(tmp_path, encoding):
    text = CHINESE_CSV.read_bytes().decode("cp950")
    path = tmp_path / "events.csv"
    path.write_bytes(text.encode(encoding))
    assert _summary(read_events(path)) == _summary(read_events(CHINESE_CSV))
    assert "遠端主機中斷了連線" in read_events(path)["text"].iloc[0]


def test_csv_detected_by_content(tmp_path):
    csv_named_evtx = tmp_path / "System.evtx"
    csv_named_evtx.write_bytes(ENGLISH_CSV.read_bytes())
    evtx_named_csv = tmp_path / "smtpsvc_events.csv"
    evtx_named_csv.write_bytes(SAMPLE_EVTX.read_bytes())
    assert _summary(read_events(csv_named_evtx)) == _summary(read_events(ENGLISH_CSV))
    assert _summary(read_events(evtx_named_csv)) == _summary(read_events(SAMPLE_EVTX))


def test_csv_without_header_or_verbose(tmp_path):
    short_row = '"warning","4006","3/2/2026 10:00:00 AM","SMTPSVC","MAIL01"'
    path = _write_csv(tmp_path, [short_row, WARNING_ROW])
    frame = read_events(path)
    assert list(frame["event_id"]) == [4000, 4006]
    assert frame["text"].iloc[1] == ""
    assert frame["explanation"].iloc[1] is not None


def test_csv_several_logs(tmp_path):
    hyphens = "-" * 78
    path = _write_csv(tmp_path, [
        " ", hyphens, "Listing the events in 'application' log of host 'MAIL01'", hyphens, HEADER,
        WARNING_ROW.replace("4000", "4006"), " ",
        hyphens, "Listing the events in 'system' log of host 'MAIL01'", hyphens, HEADER, WARNING_ROW, " ",
    ])
    assert list(read_events(path)["event_id"]) == [4006, 4000]


def test_csv_no_records_line(tmp_path):
    path = _write_csv(tmp_path, [" ", "INFO: No records available for the 'system' log with the specified criteria.",
                                 " "])
    frame = read_events(path)
    assert frame.empty
    assert list(frame.columns) == ["time", "level", "source", "event_id", "computer", "record_id", "text",
                                   "explanation", "next_step"]


def test_csv_header_only(tmp_path):
    assert read_events(_write_csv(tmp_path, [HEADER])).empty


def test_csv_quoted_quote_and_comma(tmp_path):
    row = ('"error","4000","3/2/2026 9:30:00 PM","SMTPSVC","MAIL01","None","N/A",'
           '"The remote server said ""550 5.7.1 relaying denied, go away""."')
    frame = read_events(_write_csv(tmp_path, [HEADER, row]))
    assert frame["text"].iloc[0] == 'The remote server said "550 5.7.1 relaying denied, go away".'
    assert frame["time"].iloc[0] == datetime(2026, 3, 2, 13, 30, tzinfo=timezone.utc)


def test_csv_server_timezone(tmp_path):
    path = _write_csv(tmp_path, [HEADER, WARNING_ROW])
    frame = read_events(path, server_timezone=timezone(-timedelta(hours=5)))
    assert frame["time"].iloc[0] == datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc)


def test_csv_time_range(tmp_path):
    frame = read_events(ENGLISH_CSV, since="2026-03-02T10:00:00+08:00", until="2026-03-02T02:15:00")
    assert list(frame["event_id"]) == [4006, 4006]


@pytest.mark.parametrize(("text", "expected"), [
    ("3/2/2026 9:20:00 AM", datetime(2026, 3, 2, 1, 20)),
    ("3/2/2026 12:05:00 AM", datetime(2026, 3, 1, 16, 5)),
    ("3/2/2026 12:05:00 PM", datetime(2026, 3, 2, 4, 5)),
    ("2026/3/2 上午 09:20:00", datetime(2026, 3, 2, 1, 20)),
    ("2026/3/2 下午 02:05:09", datetime(2026, 3, 2, 6, 5, 9)),
    ("2026/3/2 14:05:09", datetime(2026, 3, 2, 6, 5, 9)),
    ("03/02/2026 09:20:00", datetime(2026, 3, 2, 1, 20)),
    ("25/12/2026 08:00", datetime(2026, 12, 25, 0, 0)),
])
def test_parse_eventquery_time(text, expected):
    assert parse_eventquery_time(text) == expected.replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["yesterday", "2026/13/2 09:20:00", "3/2/2026 13:20:00 PM", "3/2/2026", "N/A"])
def test_parse_eventquery_time_rejects(text):
    with pytest.raises(ValueError):
        parse_eventquery_time(text)


@pytest.mark.parametrize(("lines", "key", "shown"), [
    ([HEADER, WARNING_ROW.replace('"warning"', '"Avertissement"')], "eventlog.csv_bad_type", "Avertissement"),
    ([HEADER, WARNING_ROW.replace("3/2/2026 9:30:00 AM", "N/A")], "eventlog.csv_bad_time", "N/A"),
    ([HEADER, WARNING_ROW, '"warning","4000","3/2/2026"'], "eventlog.csv_bad_row", "3/2/2026"),
    ([HEADER, WARNING_ROW, '"warning","x4000","3/2/2026 9:30:00 AM","SMTPSVC","MAIL01"'], "eventlog.csv_bad_row",
     "x4000"),
])
def test_csv_bad_rows_raise(tmp_path, lines, key, shown):
    path = _write_csv(tmp_path, lines)
    with pytest.raises(InputError) as caught:
        read_events(path)
    assert caught.value.key == key
    assert shown in str(caught.value)
    assert f"{path}:" in caught.value.where


def test_csv_bad_row_names_line(tmp_path):
    path = _write_csv(tmp_path, [" ", HEADER, WARNING_ROW, '"broken","row"', WARNING_ROW])
    with pytest.raises(InputError) as caught:
        read_events(path)
    assert caught.value.where == f"{path}:4"


def test_csv_undecodable_raises(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes((HEADER + "\r\n").encode("ascii") + b'"error","4000","\x80\x80"\r\n')
    with pytest.raises(InputError) as caught:
        read_events(path)
    assert caught.value.key == "eventlog.csv_encoding"
    assert "cp950" in str(caught.value)


def test_classic_evt_raises(tmp_path):
    path = tmp_path / "System.evt"
    path.write_bytes(b"\x30\x00\x00\x00LfLe" + bytes(40))
    with pytest.raises(InputError) as caught:
        read_events(path)
    assert caught.value.key == "eventlog.classic_evt"
    assert "wevtutil epl" in str(caught.value)


def test_unrelated_csv_raises(tmp_path):
    path = _write_csv(tmp_path, ['"name","address"', '"mail01","192.0.2.25"'])
    with pytest.raises(InputError) as caught:
        read_events(path)
    assert caught.value.key == "eventlog.unreadable"
    assert "eventquery.vbs" in str(caught.value)


def test_cli_events_from_csv(capsys):
    assert run_area("config", "events", str(CHINESE_CSV), "--format", "json", "--utc-offset", "+09:00") == 1
    document = json.loads(capsys.readouterr().out)
    assert [event["event_id"] for event in document["events"]] == [4000, 4006, 4006, 402]
    assert document["events"][0]["time"] == "2026-03-02 00:30:00"


@pytest.mark.parametrize("offset", ["8", "+25:00", "+08:61", "UTC+8"])
def test_cli_bad_utc_offset(offset):
    with pytest.raises(InputError) as caught:
        run_area("config", "events", str(CHINESE_CSV), "--utc-offset", offset)
    assert caught.value.key == "config.cli.bad_utc_offset"


def test_cli_events_csv_on_cp950_console():
    environment = dict(os.environ, ADMINKB_LANG="zh-TW", PYTHONIOENCODING="cp950")
    result = subprocess.run([sys.executable, "-m", "adminkb", "config", "events", str(CHINESE_CSV), "--format", "csv"],
                            capture_output=True, timeout=60, env=environment)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(b"\xef\xbb\xbf")
    text = result.stdout.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("time,level,source,event_id")
    assert "遠端主機中斷了連線" in text


# --- runbook 07's step 8 ----------------------------------------------------------------------

def test_runbook_table_reads_given_export(evtx_file):
    table = eventlog.runbook_table(evtx_file, lab=False)
    assert not isinstance(table, SampleTable)
    assert table.equals(eventlog.display_table(read_events(evtx_file)))


def test_runbook_table_skipped_for_real_server():
    shown = eventlog.runbook_table(None, lab=False)
    assert isinstance(shown, Notice)
    assert shown.startswith("略過這一步：沒有設定 EVENT_LOG 參數")


def test_runbook_table_labels_lab_sample():
    shown = eventlog.runbook_table(None, lab=True)
    assert isinstance(shown, SampleTable)
    assert shown.note.startswith("範例資料：下表讀自專案附的 data/evtx/System_smtpsvc_sample.evtx，不是您伺服器的事件")
    assert shown.table.equals(eventlog.display_table(read_events(SAMPLE_EVTX)))
