"""A W3C Extended log writer in the layout of the IIS 6.0 SMTP Service.

Files are `exYYMMDD.log`, named and rolled over by the UTC date, one line per SMTP command with
UTC timestamps. Each block starts with `#Software`, `#Version`, `#Date` and `#Fields` lines
(the `#Fields` line ends with a space, as the service writes it). A new block begins after
each start of the lab, in a new daily file, and when the field list changes. Like the
service, the writer puts a block's directive lines out together with its first entry, and
`#Date` is that entry's time.

Every line is encoded and handed to the operating system with one unbuffered write, so a reader
that opens the file while the lab runs does not get part of a line, and the line is in the file
when `write()` returns. The file stays open between lines; it is opened again when the date
changes or when the file was removed or replaced, and `close()` releases it.
"""

from __future__ import annotations

import codecs
import io
import logging
import operator
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
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

# The LogEntry attribute behind each field that varies from line to line.
_ENTRY_ATTRIBUTES = {
    "c-ip": "client_ip", "cs-username": "username", "s-ip": "server_ip", "s-port": "server_port",
    "cs-method": "method", "cs-uri-query": "cs_uri_query", "sc-status": "status",
    "sc-win32-status": "win32_status", "sc-bytes": "sc_bytes", "cs-bytes": "cs_bytes",
    "time-taken": "time_taken",
}
# Fields with the same value on every line. The SMTP service has no URI stem, host, user
# agent, cookie or referer, so those are written as `-`.
_FIXED_VALUES = {"cs-version": "SMTP"}


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

    Calls may come from the lab's thread (entries) and the caller's thread (field changes, new
    blocks, delivery lines), so the state and the open file are guarded by one lock.
    """

    def __init__(self, folder: Path, site_name: str, computer_name: str,
                 fields: Sequence[str] = FULL_FIELDS, encoding: str = DEFAULT_ENCODING) -> None:
        self.folder = Path(folder)
        # Read-only, because the compiled line format contains them.
        self._site_name = site_name
        self._computer_name = computer_name
        self._fields = validate_fields(fields)
        self.encoding = validate_encoding(encoding)
        self._lock = threading.Lock()
        # The file whose current block has its directive lines written; None means the next
        # entry starts a new block.
        self._block_file: Path | None = None
        self._line_format, self._entry_values = self._compile_layout(self._fields)
        # The UTC second of the last entry, with its date, time and file, because consecutive
        # entries usually share them.
        self._cached_second: datetime | None = None
        self._cached_texts = ("", "")
        self._cached_date: date | None = None
        self._cached_path: Path | None = None
        # The open log file: its path, its (device, inode) to notice a removed or replaced
        # file, and a finalizer that closes it when the writer is dropped without close().
        self._handle: io.FileIO | None = None
        self._handle_path: Path | None = None
        self._handle_identity = (0, 0)
        self._handle_finalizer: weakref.finalize | None = None

    @property
    def site_name(self) -> str:
        return self._site_name

    @property
    def computer_name(self) -> str:
        return self._computer_name

    @property
    def fields(self) -> tuple[str, ...]:
        return self._fields

    def set_fields(self, fields: Sequence[str]) -> None:
        """Change the logged fields; a new block with the new `#Fields` line starts at the next entry."""
        chosen = validate_fields(fields)
        with self._lock:
            if chosen != self._fields:
                self._fields = chosen
                self._line_format, self._entry_values = self._compile_layout(chosen)
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
            path, date_text, time_text = self._stamp(when)
            values = [escape_value(value) for value in self._entry_values(entry)]
            text = self._line_format.format(date_text, time_text, *values)
            if path is not self._block_file and path != self._block_file:
                text = self._directives(when) + text
            self._append(path, text.encode(self.encoding, errors="surrogateescape"))
            self._block_file = path
        return path

    def close(self) -> None:
        """Close the open log file; the next entry opens it again."""
        with self._lock:
            self._close_handle()

    def _stamp(self, when: datetime) -> tuple[Path, str, str]:
        """Return the file, the `date` text and the `time` text of a UTC instant."""
        second = when.replace(microsecond=0)
        if second != self._cached_second:
            day = second.date()
            if day != self._cached_date:
                self._cached_path = self.file_for(second)
                self._cached_date = day
            self._cached_texts = (f"{second:%Y-%m-%d}", f"{second:%H:%M:%S}")
            self._cached_second = second
        assert self._cached_path is not None
        return self._cached_path, *self._cached_texts

    def _compile_layout(self, fields: Sequence[str]) -> tuple[str, Callable[[LogEntry], tuple]]:
        """Return a format string for one line and a function that returns an entry's values for it.

        The fixed values are escaped into the format string, with `{` and `}` doubled. Its
        positional fields are the date, the time and then the entry's values in field order.
        """
        fixed = {"s-sitename": self.site_name, "s-computername": self.computer_name, **_FIXED_VALUES}
        parts = []
        attributes = []
        position = 2
        for name in fields:
            if name == "date":
                parts.append("{0}")
            elif name == "time":
                parts.append("{1}")
            elif name in _ENTRY_ATTRIBUTES:
                parts.append(f"{{{position}}}")
                attributes.append(_ENTRY_ATTRIBUTES[name])
                position += 1
            else:
                parts.append(escape_value(fixed.get(name, "")).replace("{", "{{").replace("}", "}}"))
        if not attributes:
            return " ".join(parts) + "\r\n", lambda entry: ()
        getter = operator.attrgetter(*attributes)
        if len(attributes) == 1:
            return " ".join(parts) + "\r\n", lambda entry: (getter(entry),)
        return " ".join(parts) + "\r\n", getter

    def _append(self, path: Path, data: bytes) -> None:
        """Write `data` to the end of `path` with unbuffered writes, opening the file when needed."""
        handle = self._handle
        # The cached path object is usually the very one open, so `is` saves a Path comparison.
        same_path = path is self._handle_path or path == self._handle_path
        if handle is None or not same_path or not self._still_open_file(path):
            handle = self._open(path)
        view = memoryview(data)
        while view:
            written = handle.write(view)
            view = view[written:]

    def _still_open_file(self, path: Path) -> bool:
        """Return whether `path` is still the file that this writer has open (not removed or replaced)."""
        try:
            status = os.stat(path)
        except FileNotFoundError:
            return False
        return (status.st_dev, status.st_ino) == self._handle_identity

    def _open(self, path: Path) -> io.FileIO:
        self._close_handle()
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = io.FileIO(path, "ab")
        status = os.fstat(handle.fileno())
        self._handle = handle
        self._handle_path = path
        self._handle_identity = (status.st_dev, status.st_ino)
        self._handle_finalizer = weakref.finalize(self, handle.close)
        return handle

    def _close_handle(self) -> None:
        if self._handle is None:
            return
        assert self._handle_finalizer is not None
        self._handle_finalizer.detach()
        self._handle.close()
        self._handle = None
        self._handle_path = None
        self._handle_finalizer = None

    def _directives(self, when: datetime) -> str:
        return (f"#Software: {SOFTWARE}\r\n"
                "#Version: 1.0\r\n"
                f"#Date: {when:%Y-%m-%d %H:%M:%S}\r\n"
                f"#Fields: {' '.join(self._fields)} \r\n")
