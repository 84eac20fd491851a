"""A W3C Extended log writer in the layout of the IIS 6.0 SMTP Service.

Files are `exYYMMDD.log`, named and rolled over by the UTC date, one line per SMTP command with
UTC timestamps. Each block starts with `#Software`, `#Version`, `#Date` and `#Fields` lines
(the `#Fields` line ends with a space, as the service writes it). A new block begins after
each start of the lab, in a new daily file, and when the field list changes. Like the
service, the writer puts a block's directive lines out together with its first entry, and
`#Date` is that entry's time.

Every line is encoded and written with one call and flushed, so a reader that opens the file
while the lab runs does not get part of a line.
"""

from __future__ import annotations

import logging
import threading
import codecs
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from adminkb.errors import InputError

log = logging.getLogger("adminkb.lab")

SOFTWARE = "Microsoft Internet Information Services 6.0"

# The full field list of the service's W3C Extended log, in the order it writes the fields.
FULL_FIELDS = ("date", "time", "c-ip", "cs-username", "s-sitename", "s-computername", "s-ip", "s-port",
               "cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-win32-status", "sc-bytes",
               "cs-bytes", "time-taken", "cs-version", "cs-host", "cs(User-Agent)", "cs(Cookie)",
               "cs(Referer)")

# The fields the service logs when logging is turned on and the field choice is left alone.
SERVICE_DEFAULT_FIELDS = ("time", "c-ip", "cs-method", "cs-uri-stem", "sc-status")

# NOTE: a zh-TW Windows writes these logs in its ANSI code page, 950 (Big5). Values that come
# from the client (HELO names, addresses) keep the bytes the client sent, as the service does.
DEFAULT_ENCODING = "cp950"


@dataclass
class LogEntry:
    """One W3C log line: the values of one command, before `-` and `+` escaping.

    `cs_uri_query` is the command's argument as the client sent it, starting with the space
    that separated it from the verb. That space becomes the `+` seen in real logs.
    """

    when: datetime
    client_ip: str
    server_ip: str
    method: str
    cs_uri_query: str = ""
    username: str = ""
    status: int = 0
    win32_status: int = 0
    sc_bytes: int = 0
    cs_bytes: int = 0
    time_taken: int = 0
    server_port: int = 0


def escape_value(value: object) -> str:
    """Return a field value as the service writes it: `-` when empty, spaces turned into `+`."""
    text = "" if value is None else str(value)
    if text == "":
        return "-"
    return text.replace(" ", "+")


def validate_fields(fields: Iterable[str]) -> tuple[str, ...]:
    """Return `fields` as a tuple after checking each is a field the SMTP service can log."""
    if isinstance(fields, str):
        fields = fields.split()
    chosen = tuple(fields)
    if not chosen:
        raise InputError("lab.no_log_fields", next_key="lab.log_fields_next", names=" ".join(FULL_FIELDS))
    for name in chosen:
        if name not in FULL_FIELDS:
            raise InputError("lab.unknown_log_field", value=name, names=" ".join(FULL_FIELDS),
                             next_key="lab.log_fields_next")
    if len(set(chosen)) != len(chosen):
        raise InputError("lab.duplicate_log_field", value=" ".join(chosen), names=" ".join(FULL_FIELDS),
                         next_key="lab.log_fields_next")
    return chosen


def validate_encoding(encoding: str) -> str:
    """Return `encoding` after checking that Python has a codec of that name."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError("lab.unknown_log_encoding", value=encoding,
                         next_key="lab.unknown_log_encoding_next") from None
    return encoding


class W3CLogWriter:
    """Writes `LogEntry` lines to `exYYMMDD.log` files in one folder.

    Calls may come from the lab's thread (entries) and the caller's thread (field changes and
    new blocks), so the state is guarded by one lock.
    """

    def __init__(self, folder: Path, site_name: str, computer_name: str,
                 fields: Sequence[str] = FULL_FIELDS, encoding: str = DEFAULT_ENCODING) -> None:
        self.folder = Path(folder)
        self.site_name = site_name
        self.computer_name = computer_name
        self._fields = validate_fields(fields)
        self.encoding = validate_encoding(encoding)
        self._lock = threading.Lock()
        # The file whose current block has its directive lines written; None means the next
        # entry starts a new block.
        self._block_file: Path | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        return self._fields

    def set_fields(self, fields: Sequence[str]) -> None:
        """Change the logged fields; a new block with the new `#Fields` line starts at the next entry."""
        chosen = validate_fields(fields)
        with self._lock:
            if chosen != self._fields:
                self._fields = chosen
                self._block_file = None
        log.info("W3C log fields set to: %s", " ".join(chosen))

    def start_new_block(self) -> None:
        """Make the next entry begin a new block, as after a restart of the service."""
        with self._lock:
            self._block_file = None

    def file_for(self, when: datetime) -> Path:
        """Return the log file for an instant: `exYYMMDD.log` by its UTC date."""
        return self.folder / f"ex{when.astimezone(timezone.utc):%y%m%d}.log"

    def write(self, entry: LogEntry) -> Path:
        """Append one entry, preceded by directive lines when a block starts; return the file."""
        when = entry.when.astimezone(timezone.utc)
        with self._lock:
            path = self.file_for(when)
            text = ""
            if self._block_file != path:
                text += self._directives(when)
            values = self._values(entry, when)
            text += " ".join(escape_value(values.get(name, "")) for name in self._fields) + "\r\n"
            data = text.encode(self.encoding, errors="surrogateescape")
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as handle:
                handle.write(data)
                handle.flush()
            self._block_file = path
        return path

    def _directives(self, when: datetime) -> str:
        return (f"#Software: {SOFTWARE}\r\n"
                "#Version: 1.0\r\n"
                f"#Date: {when:%Y-%m-%d %H:%M:%S}\r\n"
                f"#Fields: {' '.join(self._fields)} \r\n")

    def _values(self, entry: LogEntry, when: datetime) -> dict[str, object]:
        """Return every field's value for one entry; fields missing here are written as `-`."""
        return {
            "date": f"{when:%Y-%m-%d}",
            "time": f"{when:%H:%M:%S}",
            "c-ip": entry.client_ip,
            "cs-username": entry.username,
            "s-sitename": self.site_name,
            "s-computername": self.computer_name,
            "s-ip": entry.server_ip,
            "s-port": entry.server_port,
            "cs-method": entry.method,
            "cs-uri-stem": "",
            "cs-uri-query": entry.cs_uri_query,
            "sc-status": entry.status,
            "sc-win32-status": entry.win32_status,
            "sc-bytes": entry.sc_bytes,
            "cs-bytes": entry.cs_bytes,
            "time-taken": entry.time_taken,
            "cs-version": "SMTP",
        }
