"""Read the SMTP service's events from an exported event log (`.evtx`), explained where known.

The `evtx` package (a maintained Rust parser with Python bindings) reads the file. Only the
errors and warnings of the SMTP service (event source `SMTPSVC`) are kept by default, inside an
optional time range, with an explanation and a next step for the event IDs listed in
`KNOWN_EVENTS`.

Windows Server 2003 and XP save event logs as `.evt`, which this module does not read. Convert
such a file on Vista or later with `wevtutil epl system.evt system.evtx /lf:true`, or read the
CSV that the collection batch file writes with eventquery.vbs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from evtx import PyEvtxParser

from adminkb.errors import InputError
from adminkb.i18n import message

log = logging.getLogger("adminkb.eventlog")

SMTP_SOURCES = ("SMTPSVC",)
# Event levels as Windows writes them: 1 critical, 2 error, 3 warning, 4 information.
LEVELS = {1: "critical", 2: "error", 3: "warning", 4: "information", 0: "information"}
PROBLEM_LEVELS = ("critical", "error", "warning")

# SMTPSVC event IDs with an explanation in the catalog (eventlog.known.<id>).
# 4000 and 4006: KB 286673 and the Exchange Server Analyzer page on event 4006 (the same SMTP
# transport). 402: the Microsoft SMTP Service event list of the IIS 4.0 Option Pack.
KNOWN_EVENTS = (402, 4000, 4006)

COLUMNS = ("time", "level", "source", "event_id", "computer", "record_id", "text", "explanation", "next_step")


def _parse_time(value: object, option: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise InputError("eventlog.bad_time", value=value, option=option,
                             next_key="eventlog.bad_time_next") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def read_events(path: str | os.PathLike[str], *, since: object = None, until: object = None,
                sources: Iterable[str] | None = SMTP_SOURCES,
                levels: Iterable[str] | None = PROBLEM_LEVELS) -> pd.DataFrame:
    """Return the events of `sources` at `levels` between `since` and `until`, oldest first.

    `since` and `until` are datetimes or ISO 8601 text (UTC when no offset is given); both ends
    are included. `sources=None` or `levels=None` keeps every source or level. Raises
    InputError when the file is missing or is not an .evtx file.
    """
    source = Path(path)
    start = _parse_time(since, "--since")
    end = _parse_time(until, "--until")
    if start and end and start > end:
        raise InputError("eventlog.empty_range", value=f"{since} .. {until}", next_key="eventlog.bad_time_next")
    if not source.is_file():
        raise InputError("eventlog.not_found", value=str(source), next_key="eventlog.not_found_next")
    wanted_sources = None if sources is None else {name.lower() for name in sources}
    wanted_levels = None if levels is None else set(levels)
    rows = []
    try:
        parser = PyEvtxParser(str(source), number_of_threads=1)
        for record in parser.records_json():
            row = _row(record)
            if row is None:
                continue
            if wanted_sources is not None and row["source"].lower() not in wanted_sources:
                continue
            if wanted_levels is not None and row["level"] not in wanted_levels:
                continue
            if (start and row["time"] < start) or (end and row["time"] > end):
                continue
            rows.append(row)
    except (OSError, RuntimeError) as error:
        raise InputError("eventlog.unreadable", value=str(source), detail=str(error).splitlines()[0],
                         next_key="eventlog.unreadable_next") from None
    rows.sort(key=lambda item: (item["time"], item["record_id"]))
    for row in rows:
        row["time"] = pd.Timestamp(row["time"])
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _row(record: dict) -> dict[str, object] | None:
    try:
        event = json.loads(record["data"])["Event"]
        system = event["System"]
    except (KeyError, TypeError, ValueError):
        log.warning("event record %s has no System section; skipped", record.get("event_record_id"))
        return None
    provider = system.get("Provider", {}).get("#attributes", {})
    source = provider.get("EventSourceName") or provider.get("Name") or ""
    event_id = _number(system.get("EventID"))
    level = LEVELS.get(_number(system.get("Level")), "information")
    created = system.get("TimeCreated", {}).get("#attributes", {}).get("SystemTime", "")
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        log.warning("event record %s has an unreadable time %r; skipped", record.get("event_record_id"), created)
        return None
    known = event_id if source.lower() in {name.lower() for name in SMTP_SOURCES} and event_id in KNOWN_EVENTS else None
    return {
        "time": moment,
        "level": level,
        "source": source,
        "event_id": event_id,
        "computer": system.get("Computer"),
        "record_id": _number(system.get("EventRecordID")),
        "text": _event_text(event),
        "explanation": message(f"eventlog.known.e{known}.meaning") if known else None,
        "next_step": message(f"eventlog.known.e{known}.next") if known else None,
    }


def _number(value: object) -> int | None:
    if isinstance(value, dict):
        value = value.get("#text")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _event_text(event: dict) -> str:
    """Join the event's data strings (classic events keep their insertion strings there)."""
    data = (event.get("EventData") or {}).get("Data")
    if data is None:
        return ""
    items = data if isinstance(data, list) else [data]
    texts = []
    for item in items:
        value = item.get("#text") if isinstance(item, dict) else item
        if isinstance(value, list):
            texts.extend(str(part) for part in value if part is not None)
        elif value is not None:
            texts.append(str(value))
    return "\n".join(texts)


# The columns a notebook shows; the computer and record number stay in the frame `read_events` returns.
DISPLAY_COLUMNS = ("time", "level", "event_id", "text", "explanation", "next_step")


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Return events from `read_events` with levels and column titles in the user's language."""
    shown = frame[list(DISPLAY_COLUMNS)].copy()
    shown["time"] = shown["time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    shown["level"] = [message(f"eventlog.level.{level}") for level in shown["level"]]
    return shown.rename(columns={column: message(f"eventlog.column.{column}") for column in DISPLAY_COLUMNS})
