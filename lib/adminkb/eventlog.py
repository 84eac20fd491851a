"""Read the SMTP service's events from an exported event log, explained where known.

Two kinds of file are read, and their content decides which one a file is (the extension does not):

- an `.evtx` export, read with the `evtx` package (a maintained Rust parser with Python
  bindings);
- the CSV that `cscript eventquery.vbs /fo csv /v` writes on Windows XP and Server 2003, which
  the collection batch file (`adminkb.collect`) saves as `smtpsvc_events.csv`.

Only the errors and warnings of the SMTP service (event source `SMTPSVC`) are kept by default,
inside an optional time range, with an explanation and a next step for the event IDs listed in
`KNOWN_EVENTS`.

Windows Server 2003 and XP save event logs as `.evt`, which this module does not read. Convert
such a file on Vista or later with `wevtutil epl system.evt system.evtx /lf:true`.

What is known about eventquery.vbs's CSV, from the script's source (the XP version, and a later
Server 2003 version) and Microsoft's documentation of the tool:

- The columns are, in this order, Type, Event, Date Time, Source, ComputerName, and with /v
  also Category, User, Description. The header names are localization strings of the script,
  so this module reads the columns by position. Line breaks in the description are replaced
  by spaces. With /nh there is no header row.
- The XP version writes a line with one space, a line of 78 hyphens, "Listing the events in
  'system' log of host 'NAME'" and another line of hyphens before the CSV rows. The later
  version writes none of these for CSV. "INFO: No records available ..." stands for no events.
- Date Time is the event's local time on the server, without a UTC offset, in the format of
  the server's regional settings (VBScript FormatDateTime in the XP version). So the reader
  needs the server's UTC offset, and accepts the usual short-date forms (see
  `parse_eventquery_time`).
- cscript writes redirected output in the OEM code page unless //U is given, and then writes
  UTF-16 (Eric Lippert, "Unicode output and the Windows Script Host", 2004). The OEM code page
  of Traditional Chinese Windows is 950. The reader accepts UTF-16, UTF-8 and cp950.

NOTE: no real eventquery.vbs output from a Traditional Chinese server was available. The
Chinese column headers, the Chinese Type words (錯誤, 警告, 資訊) and the zh-TW date form
("2026/3/2 上午 09:20:00") are assumptions, and how CmdLib.wsc quotes a double quote inside a
value is unconfirmed (read here as in RFC 4180, by doubling it).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

import pandas as pd
from evtx import PyEvtxParser

from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.samples import SAMPLE_EVENT_LOG, Notice, SampleTable, sample_name

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

EVTX_MAGIC = b"ElfFile\x00"
# A classic .evt file starts with a 48-byte header whose second field is the signature "LfLe".
EVT_SIGNATURE = b"LfLe"
# The default time zone of the servers whose CSV is read: Taiwan's, UTC+8, because the runbooks
# are written for admins there. `read_events` takes another one.
DEFAULT_SERVER_OFFSET = timezone(timedelta(hours=8))


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
                levels: Iterable[str] | None = PROBLEM_LEVELS,
                server_timezone: tzinfo = DEFAULT_SERVER_OFFSET) -> pd.DataFrame:
    """Return the events of `sources` at `levels` between `since` and `until`, oldest first.

    `path` is an .evtx export or eventquery.vbs CSV output. `since` and `until` are datetimes
    or ISO 8601 text (UTC when no offset is given), and both ends are included.
    `sources=None` or `levels=None` keeps every source or level. `server_timezone` is the
    server's time zone, which the CSV's local times are converted from (an .evtx file stores
    UTC). Raises InputError when the file is missing or is neither kind of file.
    """
    source = Path(path)
    start = _parse_time(since, "--since")
    end = _parse_time(until, "--until")
    if start and end and start > end:
        raise InputError("eventlog.empty_range", value=f"{since} .. {until}", next_key="eventlog.bad_time_next")
    if not source.is_file():
        raise InputError("eventlog.not_found", value=str(source), next_key="eventlog.not_found_next")
    try:
        with source.open("rb") as handle:
            head = handle.read(len(EVTX_MAGIC))
    except OSError as error:
        raise InputError("eventlog.unreadable", value=str(source), detail=os_error_text(error),
                         next_key="eventlog.unreadable_next") from None

    if head.startswith(EVTX_MAGIC):
        records = _evtx_rows(source)
    elif head[4:8] == EVT_SIGNATURE:
        raise InputError("eventlog.classic_evt", value=str(source), next_key="eventlog.unreadable_next")
    else:
        records = read_eventquery_csv(source, server_timezone)

    wanted_sources = None if sources is None else {name.lower() for name in sources}
    wanted_levels = None if levels is None else set(levels)
    rows = []
    for row in records:
        if wanted_sources is not None and row["source"].lower() not in wanted_sources:
            continue
        if wanted_levels is not None and row["level"] not in wanted_levels:
            continue
        if (start and row["time"] < start) or (end and row["time"] > end):
            continue
        rows.append(row)
    rows.sort(key=lambda item: (item["time"], item["record_id"] or 0))
    for row in rows:
        row["time"] = pd.Timestamp(row["time"])
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _evtx_rows(source: Path) -> list[dict[str, object]]:
    rows = []
    try:
        parser = PyEvtxParser(str(source), number_of_threads=1)
        for record in parser.records_json():
            row = _row(record)
            if row is not None:
                rows.append(row)
    except (OSError, RuntimeError) as error:
        raise InputError("eventlog.unreadable", value=str(source), detail=str(error).splitlines()[0],
                         next_key="eventlog.unreadable_next") from None
    return rows


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
    return _event_row(moment, level, source, event_id, system.get("Computer"),
                      _number(system.get("EventRecordID")), _event_text(event))


def _event_row(moment: datetime, level: str, source: str, event_id: int | None, computer: object,
               record_id: int | None, text: str) -> dict[str, object]:
    """Build one row of the events table, with the explanation of a known SMTPSVC event."""
    known = event_id if source.lower() in {name.lower() for name in SMTP_SOURCES} and event_id in KNOWN_EVENTS else None
    return {
        "time": moment,
        "level": level,
        "source": source,
        "event_id": event_id,
        "computer": computer,
        "record_id": record_id,
        "text": text,
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


# eventquery.vbs CSV output

# Column positions in eventquery.vbs output; /v adds the last three.
EVENTQUERY_COLUMNS = ("Type", "Event", "Date Time", "Source", "ComputerName", "Category", "User", "Description")
SHORT_COLUMN_COUNT = 5
# The Type column as WMI's Win32_NTLogEvent writes it. NOTE: the Chinese words are the Event
# Viewer's words on Traditional Chinese Windows; that WMI writes them there is unconfirmed.
EVENTQUERY_TYPES = {
    "error": "error", "warning": "warning", "information": "information",
    "錯誤": "error", "警告": "warning", "資訊": "information",
}
_KNOWN_TYPES = ", ".join(EVENTQUERY_TYPES)
# The line eventquery.vbs writes when no event matched, in its English text.
_NO_RECORDS = re.compile(r"^\s*INFO:", re.IGNORECASE)
_AM_PM = {"上午": "AM", "下午": "PM"}
_DATE_TIME = re.compile(
    r"^\s*(?P<date>\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4})\s+"
    r"(?:(?P<before>AM|PM)\s*)?(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?"
    r"(?:\s*(?P<after>AM|PM))?\s*$", re.IGNORECASE)


def decode_event_text(data: bytes) -> str:
    """Decode eventquery.vbs output: UTF-16 (cscript //U), UTF-8, or cp950 (the OEM code page of zh-TW Windows).

    UTF-8 is tried before cp950 because an ASCII file is both, and Chinese text in cp950 is
    rarely valid UTF-8. Raises UnicodeDecodeError when no encoding fits.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data:
        # Text in cp950 or UTF-8 has no NUL byte, but the quotes, commas and line breaks of
        # UTF-16 text without a byte-order mark do: their zero byte comes second in little-endian.
        odd_zeros = data[1::2].count(0)
        return data.decode("utf-16-le" if odd_zeros >= data[0::2].count(0) else "utf-16-be")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp950")


def parse_eventquery_time(text: str, server_timezone: tzinfo = DEFAULT_SERVER_OFFSET) -> datetime:
    """Parse the Date Time column of eventquery.vbs output and return the moment in UTC.

    Accepted forms: "3/2/2026 9:20:00 AM" (month first, en-US), "2026/3/2 上午 09:20:00" and
    "2026/3/2 09:20:00" (year first, zh-TW), and "03/02/2026 09:20:00" (the script's own form
    for some locales). A date with the year last is read month first unless its first number is
    above 12. Raises ValueError for any other text.
    """
    normalized = text
    for word, marker in _AM_PM.items():
        normalized = normalized.replace(word, f" {marker} ")
    match = _DATE_TIME.match(normalized)
    if not match:
        raise ValueError(text)
    texts = re.split(r"[/.-]", match["date"])
    parts = [int(part) for part in texts]
    if len(texts[0]) == 4:
        year, month, day = parts
    else:
        first, second, year = parts
        month, day = (second, first) if first > 12 else (first, second)
    hour = int(match["hour"])
    marker = (match["before"] or match["after"] or "").upper()
    if marker and not 1 <= hour <= 12:
        raise ValueError(text)
    if marker == "PM" and hour != 12:
        hour += 12
    elif marker == "AM" and hour == 12:
        hour = 0
    local = datetime(year, month, day, hour, int(match["minute"]), int(match["second"] or 0), tzinfo=server_timezone)
    return local.astimezone(timezone.utc)


def read_eventquery_csv(path: str | os.PathLike[str],
                        server_timezone: tzinfo = DEFAULT_SERVER_OFFSET) -> list[dict[str, object]]:
    """Return every event in eventquery.vbs CSV output as rows of the events table, in file order.

    Blank lines, the XP version's banner lines and the header row are skipped wherever they
    appear, because eventquery.vbs writes them again for every log it lists.
    Raises InputError naming the file and line when the content is not eventquery.vbs CSV, a
    row is malformed, or a value cannot be read.
    """
    source = Path(path)
    try:
        text = decode_event_text(source.read_bytes())
    except UnicodeDecodeError as error:
        raise InputError("eventlog.csv_encoding", value=str(source), offset=error.start,
                         next_key="eventlog.csv_encoding_next") from None
    except OSError as error:
        raise InputError("eventlog.unreadable", value=str(source), detail=os_error_text(error),
                         next_key="eventlog.unreadable_next") from None

    rows: list[dict[str, object]] = []
    header_seen = False
    no_records_line = False
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue
            if len(fields) == 1:
                # A banner line of the XP version or the INFO line. Both come again for every
                # log when eventquery.vbs lists several (/l *).
                no_records_line = no_records_line or bool(_NO_RECORDS.match(fields[0]))
                continue
            if len(fields) in (SHORT_COLUMN_COUNT, len(EVENTQUERY_COLUMNS)):
                if fields[1].strip().isdigit():
                    rows.append(_eventquery_row(fields, source, line, server_timezone))
                    continue
                if not _is_eventquery_time(fields[2]):
                    # The header row, also repeated for every log.
                    header_seen = True
                    continue
            if header_seen or rows:
                raise InputError("eventlog.csv_bad_row", value=",".join(fields)[:120], where=f"{source}:{line}",
                                 count=len(fields), known=_KNOWN_TYPES, next_key="eventlog.csv_next")
    except csv.Error as error:
        raise InputError("eventlog.csv_bad_row", value=str(error), where=f"{source}:{reader.line_num}",
                         count="-", known=_KNOWN_TYPES, next_key="eventlog.csv_next") from None
    if not rows and not header_seen and not no_records_line:
        raise InputError("eventlog.unreadable", value=str(source), detail=message("eventlog.not_eventquery"),
                         next_key="eventlog.unreadable_next")
    return rows


def _is_eventquery_time(text: str) -> bool:
    try:
        parse_eventquery_time(text)
    except ValueError:
        return False
    return True


def _eventquery_row(fields: list[str], source: Path, line: int, server_timezone: tzinfo) -> dict[str, object]:
    where = f"{source}:{line}"
    kind = fields[0].strip()
    level = EVENTQUERY_TYPES.get(kind.lower())
    if level is None:
        raise InputError("eventlog.csv_bad_type", value=kind, where=where, known=_KNOWN_TYPES,
                         next_key="eventlog.csv_next")
    try:
        moment = parse_eventquery_time(fields[2], server_timezone)
    except ValueError:
        raise InputError("eventlog.csv_bad_time", value=fields[2], where=where,
                         next_key="eventlog.csv_bad_time_next") from None
    description = fields[7].strip() if len(fields) > SHORT_COLUMN_COUNT else ""
    computer = fields[4].strip()
    return _event_row(moment, level, fields[3].strip(), int(fields[1]), computer if computer != "N/A" else None,
                      None, "" if description == "N/A" else description)


# The columns a notebook shows; the computer and record number stay in the frame `read_events` returns.
DISPLAY_COLUMNS = ("time", "level", "event_id", "text", "explanation", "next_step")


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Return events from `read_events` with levels and column titles in the user's language."""
    shown = frame[list(DISPLAY_COLUMNS)].copy()
    shown["time"] = shown["time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    shown["level"] = [message(f"eventlog.level.{level}") for level in shown["level"]]
    return shown.rename(columns={column: message(f"eventlog.column.{column}") for column in DISPLAY_COLUMNS})


def runbook_table(path: str | os.PathLike[str] | None, *, lab: bool) -> pd.DataFrame | SampleTable | Notice:
    """Return the SMTP service's problem events from the export at `path`, for a runbook's step.

    Without `path`, the lab gets the project's sample export under a line saying it is a sample,
    and a real server gets a notice that the step was skipped and names EVENT_LOG.
    """
    if path is not None:
        return display_table(read_events(path))
    if not lab:
        return Notice(message("eventlog.runbook.skipped"))
    return SampleTable(message("eventlog.runbook.sample", file=sample_name(SAMPLE_EVENT_LOG)),
                       display_table(read_events(SAMPLE_EVENT_LOG)))
