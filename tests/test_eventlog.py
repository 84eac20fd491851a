"""SMTP service events from .evtx files that the real `evtx` parser reads."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from adminkb.errors import InputError
from adminkb.eventlog import read_events
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
