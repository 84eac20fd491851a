"""Reading one mailroot file: its envelope lines and headers, or a Badmail reason, as a row.

`scan_chunk` reads a list of files and returns their rows as columns. It runs in the process
that scans, or in worker processes when `adminkb.mailroot_scan` spreads a large tree over
several CPUs, so this module imports nothing heavy (no pandas) and its results pickle cheaply.
Files are opened read-only with `os.open` and read with `os.read`, which skips the buffered
file object that `open()` builds for every file.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import logging
import operator
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from adminkb import mailroot
from adminkb.errors import os_error_text
from adminkb.i18n import message

log = logging.getLogger("adminkb.mailroot_scan")

# Headers longer than this are cut, and the row notes it. Real header sections are a few KB.
MAX_HEADER_BYTES = 256 * 1024
# The first read takes one 4 KiB block, which holds the whole header of most messages. Longer
# headers are read on in larger chunks.
FIRST_READ = 4096
READ_CHUNK = 64 * 1024

OTHER = "Other"

# Big5 as Taiwanese systems write it includes the cp950 extension characters, which Python's
# big5 codec lacks, so these labels are decoded with cp950.
_CHARSET_ALIASES = {"big5": "cp950", "x-big5": "cp950", "cn-big5": "cp950", "csbig5": "cp950", "big-5": "cp950",
                    "ms950": "cp950", "windows-950": "cp950", "x-x-big5": "cp950"}

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
# RFC 2047 drops the white space between two adjacent encoded words.
_SPACE_BETWEEN_WORDS = re.compile(r"(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)[ \t]+(?==\?[^?\s]+\?[BbQq]\?)")
# One pass of one regular expression over the header section finds two things. The headers the
# inventory shows match with group 1 (the name) and group 2 (the value and its continuation
# lines). A line that is no "Name: value" header, no continuation line and not the empty end
# matches with no group set. Each match starts at a line feed, which the regex engine finds with a fast literal search, so the
# other lines are never split or decoded in Python.
_HEADER_SCAN = re.compile(rb"\n(?:((?i:from|to|subject|date|message-id))[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
                          rb"|(?![ \t]|\r?\n|\r?\Z|[!-9;-~]+[ \t]*:))")
_FIELD_ATTRIBUTES = {b"from": "from_", b"to": "to", b"subject": "subject", b"date": "date",
                     b"message-id": "message_id"}
_ENVELOPE_LINE = re.compile(rb"(x-sender|x-receiver)[ \t]*:([^\n]*)", re.IGNORECASE)
# The run of envelope lines at the start of a message file.
_ENVELOPE_BLOCK = re.compile(rb"(?:(?:x-sender|x-receiver)[ \t]*:[^\n]*(?:\n|\Z))*", re.IGNORECASE)
# A line feed, then an empty line: where a header section ends. One regular expression search
# is several times faster here than bytes.find(b"\n\n"), which restarts at every line feed.
_BLANK_LINE = re.compile(rb"\n\r?\n")
_ROLES = {folder.lower(): folder for folder in mailroot.FOLDER_NAMES}
_MAILBOX_FOLDER = re.compile(r"\AP3_(.+)\.mbx\Z", re.IGNORECASE)
_BDR_REASON = re.compile(r"encountered:\s*\"?(.*?)\"?\.?\s*(?:The specific error code|\Z)", re.DOTALL)
_BDR_CODE = re.compile(r"The specific error code was\s+(0x[0-9A-Fa-f]+)")
_BDR_SENDER = re.compile(r"The message sender was\s+(.*?)\.?\s*$", re.MULTILINE)

KINDS = {".eml": "message", ".bad": "badmail_message", ".bdr": "badmail_reason", ".bdp": "badmail_envelope",
         ".ltr": "transcript", ".rtr": "transcript"}


@dataclass(slots=True)
class FileRow:
    role: str
    path: str
    name: str
    kind: str
    size: int
    # Seconds since the epoch (st_mtime); the frame turns all of them into timestamps at once.
    modified: float | None
    mailbox_domain: str = ""
    mailbox_user: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()
    from_: str = ""
    to: str = ""
    subject: str = ""
    date: str = ""
    message_id: str = ""
    reason: str = ""
    error_code: str = ""
    reason_sender: str = ""
    notes: list[str] | None = None
    unreadable: bool = False

    def note(self, key: str, **values: object) -> None:
        if self.notes is None:
            self.notes = []
        text = message(f"mailroot.note.{key}", **values)
        # Two headers in raw Big5 (From and Subject, say) earn one note, not the same note twice.
        if text not in self.notes:
            self.notes.append(text)



def _displayable(text: str) -> str:
    """Replace bytes that were not valid UTF-8 in a file name (surrogate escapes) with U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def scan_file(full_path: str, relative: str, ansi_encoding: str) -> FileRow:
    shown = _displayable(relative)
    parts = shown.split("/")
    name = parts[-1]
    role = _ROLES.get(parts[0].lower(), OTHER) if len(parts) > 1 else OTHER
    dot = name.rfind(".")
    row = FileRow(role=role, path=shown, name=name, kind=KINDS.get(name[dot:].lower(), "other") if dot >= 0 else "other",
               size=0, modified=None)
    if shown is not relative and shown != relative:
        row.note("name_not_utf8")
    if role == mailroot.MAILBOX:
        row.mailbox_domain, row.mailbox_user = _mailbox_owner(parts)
    if name.startswith(".") and mailroot.is_temporary_file_name(name):
        row.kind = "temporary"

    reads_header = row.kind in ("message", "badmail_message") or role in (mailroot.PICKUP, mailroot.QUEUE,
                                                                             mailroot.DROP)
    try:
        if row.kind == "badmail_reason" or (reads_header and row.kind != "temporary"):
            # One open serves both the size and time (fstat) and the header, saving a stat call a file.
            descriptor = _open_read_only(full_path)
            try:
                _set_status(row, os.fstat(descriptor))
                if row.kind == "badmail_reason":
                    _read_badmail_reason(descriptor, row, ansi_encoding)
                else:
                    _read_message_header(descriptor, row)
            finally:
                os.close(descriptor)
        else:
            # Other files (.BDP, whose layout is not documented, transcripts, temporary files)
            # only get their size and time.
            _set_status(row, os.stat(full_path))
    except OSError as error:
        log.debug("cannot read %s: %s", full_path, error)
        row.unreadable = True
        if row.modified is None:
            try:
                _set_status(row, os.stat(full_path))
            except OSError:
                pass  # The row keeps size 0 and no time, and its note says why.
        row.note("unreadable", detail=os_error_text(error))
    return row


# Binary mode matters on Windows only, where os.open would otherwise translate line ends.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def _open_read_only(path: str) -> int:
    """Open `path` for reading and return the descriptor; a test replaces this to inject an OSError."""
    return os.open(path, _READ_FLAGS)


def _read_up_to(descriptor: int, limit: int) -> bytes:
    """Read up to `limit` bytes, going on after a short read until the end of the file."""
    parts = []
    left = limit
    while left > 0:
        part = os.read(descriptor, min(left, READ_CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _set_status(row: FileRow, status: os.stat_result) -> None:
    row.size = status.st_size
    row.modified = status.st_mtime


def _mailbox_owner(parts: list[str]) -> tuple[str, str]:
    """Return the domain and user of a file in `Mailbox\\<domain>\\P3_<user>.mbx\\`."""
    if len(parts) < 4:
        return (parts[1] if len(parts) > 2 else ""), ""
    match = _MAILBOX_FOLDER.match(parts[2])
    return parts[1], match.group(1) if match else ""


def _read_message_header(descriptor: int, row: FileRow) -> None:
    header, complete = _read_header_bytes(descriptor)
    if not header.strip():
        row.note("empty" if row.size == 0 else "no_header")
        return

    # Envelope lines come first: one match finds where they end, one findall reads them.
    offset = _ENVELOPE_BLOCK.match(header).end()
    recipients: list[str] = []
    for name, value in _ENVELOPE_LINE.findall(header, 0, offset):
        address = value.strip().decode("utf-8", errors="replace").strip("<>")
        if name.lower() == b"x-sender":
            row.sender = address or "<>"
        elif address:
            recipients.append(address)
    row.recipients = tuple(recipients)
    if offset and header[offset - 1:offset] != b"\n":
        # The header is envelope lines only, the last one without a line feed.
        offset += 1

    # The scan needs a line feed before the first header line, which the envelope's last line
    # provides when there is one.
    rest, start = (header, offset - 1) if offset else (b"\n" + header, 0)
    not_mail = not header[offset:].strip()
    for name, value in _HEADER_SCAN.findall(rest, start):
        if not name:
            not_mail = True
            continue
        attribute = _FIELD_ATTRIBUTES[name.lower()]
        if getattr(row, attribute):
            continue
        if b"\n" in value:
            value = b" ".join(part.strip() for part in value.split(b"\n"))
        else:
            value = value.strip()
        setattr(row, attribute, _decode_header_value(value, row))
    if not_mail:
        row.note("not_mail")
    if not complete:
        row.note("header_too_long", limit=MAX_HEADER_BYTES)


def _read_header_bytes(descriptor: int) -> tuple[bytes, bool]:
    """Return the bytes up to the blank line that ends the header section, and whether it was found."""
    data = os.read(descriptor, FIRST_READ)
    end = _header_end(data, 0)
    if end is not None:
        return data[:end], True
    if len(data) < FIRST_READ:
        return data, True
    while len(data) < MAX_HEADER_BYTES:
        chunk = os.read(descriptor, READ_CHUNK)
        if not chunk:
            return data, True
        start = max(0, len(data) - 3)
        data += chunk
        end = _header_end(data, start)
        if end is not None:
            return data[:end], True
    return data[:MAX_HEADER_BYTES], False


def _header_end(data: bytes, start: int) -> int | None:
    """Return where the blank line that ends the header section starts (at or after `start`), or None.

    The blank line is CRLF CRLF or LF LF; a CR LF after a bare LF does not end the section.
    """
    if data.startswith((b"\r\n", b"\n")):
        return 0
    while True:
        match = _BLANK_LINE.search(data, start)
        if match is None:
            return None
        position = match.start()
        if match.end() - position == 2:
            return position
        if position > 0 and data[position - 1] == 0x0D:
            return position - 1
        start = position + 1


def _decode_header_value(value: bytes, row: FileRow) -> str:
    """Decode a raw header value: RFC 2047 encoded words, or raw 8-bit text as UTF-8, else cp950."""
    if value.isascii() and b"=?" not in value:
        return value.decode("ascii")
    text, notes = _decode_header_cached(value)
    for key, values in notes:
        row.note(key, **dict(values))
    return text


@lru_cache(maxsize=4096)
def _decode_header_cached(value: bytes) -> tuple[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]]:
    """Return the decoded text of a header value and the notes it earns.

    The cache pays off because a backed-up queue repeats the same From and Subject thousands
    of times.
    """
    notes: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    if not value.isascii():
        try:
            return value.decode("utf-8"), ()
        except UnicodeDecodeError:
            pass
        try:
            text = value.decode("cp950")
        except UnicodeDecodeError:
            return value.decode("latin-1"), (("undecodable_header", ()),)
        return text, (("raw_cp950_header", ()),)
    text = _SPACE_BETWEEN_WORDS.sub(r"\1", value.decode("ascii"))
    text = _ENCODED_WORD.sub(lambda match: _decode_word(match, notes), text)
    return text, tuple(notes)


def _decode_word(match: re.Match[str], notes: list[tuple[str, tuple[tuple[str, str], ...]]]) -> str:
    """Return the text of one encoded word, or the word unchanged (with a note) when it is malformed."""
    charset = match.group(1).split("*", 1)[0].lower()
    codec = _CHARSET_ALIASES.get(charset, charset)
    payload = match.group(3).encode("ascii")
    try:
        if match.group(2).upper() == "B":
            raw = base64.b64decode(payload + b"=" * (-len(payload) % 4), validate=True)
        else:
            raw = binascii.a2b_qp(payload, header=True)
        return raw.decode(codec)
    except (LookupError, binascii.Error, UnicodeDecodeError, ValueError):
        notes.append(("bad_encoded_word", (("word", match.group(0)),)))
        return match.group(0)


def _read_badmail_reason(descriptor: int, row: FileRow, ansi_encoding: str) -> None:
    data = _read_up_to(descriptor, MAX_HEADER_BYTES)
    if not data:
        row.note("empty")
        return
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    elif data.startswith(codecs.BOM_UTF8):
        text = data[3:].decode("utf-8", errors="replace")
    else:
        text = data.decode(ansi_encoding, errors="replace")
    reason = _BDR_REASON.search(text)
    code = _BDR_CODE.search(text)
    sender = _BDR_SENDER.search(text)
    row.reason = " ".join(reason.group(1).split()) if reason else ""
    row.error_code = code.group(1).upper().replace("0X", "0x") if code else ""
    row.reason_sender = sender.group(1).strip() if sender else ""
    if not (reason or code):
        row.note("unknown_reason_format")


# The row fields in inventory column order, with the attribute each column comes from.
_ROW_FIELDS = (("role", "role"), ("path", "path"), ("name", "name"), ("kind", "kind"), ("size", "size"),
               ("modified", "modified"), ("mailbox_domain", "mailbox_domain"), ("mailbox_user", "mailbox_user"),
               ("sender", "sender"), ("recipients", "recipients"), ("from", "from_"), ("to", "to"),
               ("subject", "subject"), ("date", "date"), ("message_id", "message_id"), ("reason", "reason"),
               ("error_code", "error_code"), ("reason_sender", "reason_sender"), ("notes", "notes"))
_ROW_VALUES = operator.attrgetter(*(attribute for _, attribute in _ROW_FIELDS))
ROW_COLUMNS = tuple(column for column, _ in _ROW_FIELDS)


class ScanColumns:
    """The rows of one chunk of files as one list per column, in ROW_COLUMNS order."""

    def __init__(self) -> None:
        self.values: dict[str, list[object]] = {column: [] for column in ROW_COLUMNS}
        self.unreadable = 0

    def __len__(self) -> int:
        return len(self.values["path"])

    @classmethod
    def from_rows(cls, rows: list[FileRow]) -> ScanColumns:
        """Return the columns of `rows`, in their order."""
        columns = cls()
        columns.unreadable = sum(row.unreadable for row in rows)
        # One attrgetter call a row and one transposition, both in C, instead of a list append
        # per column and row.
        for column, values in zip(ROW_COLUMNS, zip(*map(_ROW_VALUES, rows))):
            columns.values[column] = list(values)
        return columns


def scan_chunk(files: list[tuple[str, str]], ansi_encoding: str) -> ScanColumns:
    """Scan the files given as (full path, path relative to the mailroot) pairs, in that order."""
    return ScanColumns.from_rows([scan_file(full_path, relative, ansi_encoding) for full_path, relative in files])
