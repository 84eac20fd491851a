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
import itertools
import logging
import operator
import os
import re
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
# A run of encoded words with only spaces or tabs between them, which RFC 2047 drops. A run is
# decoded as a whole because a word may end inside a multibyte character. RFC 2047 forbids
# that, but Python's email package (3.11) accepts it, and so does this reader.
_ENCODED_RUN = re.compile(r"=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=(?:[ \t]*=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)*")
# Errors from decoding an encoded word: an unknown or non-text charset (LookupError), bad
# Base64 (binascii.Error), and bytes or code points the charset rejects (ValueError).
_WORD_ERRORS = (LookupError, binascii.Error, ValueError)
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


# The columns of a row, in inventory order. A row is a tuple of these values.
ROW_COLUMNS = ("role", "path", "name", "kind", "size", "modified", "mailbox_domain", "mailbox_user", "sender",
               "recipients", "from", "to", "subject", "date", "message_id", "reason", "error_code", "reason_sender",
               "notes")
# Header values of a file without a readable header section: sender, recipients, From, To,
# Subject, Date and Message-ID.
_NO_HEADER = ("", (), "", "", "", "", "")
# Reason values of a file other than a .BDR: reason, error code and sender.
_NO_REASON = ("", "", "")
_FIELD_INDEX = {b"from": 2, b"to": 3, b"subject": 4, b"date": 5, b"message-id": 6}


def _note(notes: list[str], key: str, **values: object) -> None:
    """Append the note `key` in the display language to `notes`, unless the same text is there already."""
    text = message(f"mailroot.note.{key}", **values)
    # Two headers in raw Big5 (From and Subject, say) earn one note, not the same note twice.
    if text not in notes:
        notes.append(text)


def display_name(text: str) -> str:
    """Show bytes that were not valid UTF-8 in a file name (surrogate escapes) as \\xNN.

    Escapes keep two names apart that differ only in such bytes, so that their rows and their
    Badmail sets stay distinct, where one replacement character for every byte would merge them.
    """
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _folder_facts(prefix: str) -> tuple[str, str, str]:
    """Return the role, mailbox domain and mailbox user of files in the folder `prefix` ("" for the root)."""
    if not prefix:
        return OTHER, "", ""
    parts = prefix.split("/")
    role = _ROLES.get(parts[0].lower(), OTHER)
    if role != mailroot.MAILBOX:
        return role, "", ""
    # parts contains the folders below the mailroot, without the file name.
    if len(parts) < 3:
        return role, (parts[1] if len(parts) > 1 else ""), ""
    match = _MAILBOX_FOLDER.match(parts[2])
    return role, parts[1], match.group(1) if match else ""


def scan_chunk(files: list[tuple[str, str]], ansi_encoding: str) -> ScanColumns:
    """Scan the files given as (full path, path relative to the mailroot) pairs, in that order.

    The walk gives the files of one folder one after another, so the folder's role and mailbox
    owner are worked out once for each run of files from the same folder.
    """
    rows = []
    unreadable = 0
    folder: str | None = None
    facts = (OTHER, "", "")
    for full_path, relative in files:
        display_path = display_name(relative)
        prefix, _, name = display_path.rpartition("/")
        if prefix != folder:
            folder, facts = prefix, _folder_facts(prefix)
        row, failed = _scan_file(full_path, display_path, name, facts, display_path != relative, ansi_encoding)
        rows.append(row)
        unreadable += failed
    return ScanColumns(rows, unreadable)


def _scan_file(full_path: str, display_path: str, name: str, facts: tuple[str, str, str], name_not_utf8: bool,
               ansi_encoding: str) -> tuple[tuple[object, ...], bool]:
    """Read one file and return its row, and whether reading it failed."""
    role, mailbox_domain, mailbox_user = facts
    dot = name.rfind(".")
    kind = KINDS.get(name[dot:].lower(), "other") if dot >= 0 else "other"
    if name.startswith(".") and mailroot.is_temporary_file_name(name):
        kind = "temporary"
    notes: list[str] = []
    if name_not_utf8:
        _note(notes, "name_not_utf8")
    size, modified = 0, None
    header, reason = _NO_HEADER, _NO_REASON
    failed = False
    reads_header = kind in ("message", "badmail_message") or role in (mailroot.PICKUP, mailroot.QUEUE, mailroot.DROP)
    try:
        if kind == "badmail_reason" or (reads_header and kind != "temporary"):
            # One open serves both the size and time (fstat) and the header, saving a stat call a file.
            descriptor = _open_read_only(full_path)
            try:
                status = os.fstat(descriptor)
                size, modified = status.st_size, status.st_mtime
                if kind == "badmail_reason":
                    reason = _read_badmail_reason(descriptor, notes, ansi_encoding)
                else:
                    header = _read_message_header(descriptor, size, notes)
            finally:
                os.close(descriptor)
        else:
            # Other files (.BDP, whose layout is not documented, transcripts, temporary files)
            # only get their size and time.
            status = os.stat(full_path)
            size, modified = status.st_size, status.st_mtime
    except OSError as error:
        log.debug("cannot read %s: %s", full_path, error)
        failed = True
        if modified is None:
            try:
                status = os.stat(full_path)
                size, modified = status.st_size, status.st_mtime
            except OSError:
                pass  # The row keeps size 0 and no time, and its note says why.
        _note(notes, "unreadable", detail=os_error_text(error))
    return (role, display_path, name, kind, size, modified, mailbox_domain, mailbox_user, *header, *reason,
            "; ".join(notes)), failed


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


def _read_message_header(descriptor: int, size: int, notes: list[str]) -> tuple[object, ...]:
    """Read a message file's sender, recipients, From, To, Subject, Date and Message-ID.

    Each problem with the header section (empty, not mail, cut) adds a note to `notes`.
    """
    header, complete = _read_header_bytes(descriptor)
    if not header.strip():
        _note(notes, "empty" if size == 0 else "no_header")
        return _NO_HEADER

    # Envelope lines come first: one match finds where they end, one findall reads them.
    offset = _ENVELOPE_BLOCK.match(header).end()
    sender = ""
    recipients: list[str] = []
    if offset:
        for name, value in _ENVELOPE_LINE.findall(header, 0, offset):
            address = mailroot.envelope_address(value, errors="replace")
            if name.lower() == b"x-sender":
                sender = address or "<>"
            elif address:
                recipients.append(address)
        if header[offset - 1:offset] != b"\n":
            # The header is envelope lines only, the last one without a line feed.
            offset += 1
        # The scan needs a line feed before the first header line: the envelope's last one.
        rest, start = header, offset - 1
    else:
        rest, start = b"\n" + header, 0
    not_mail = not header[offset:].strip()
    fields = [sender, tuple(recipients), "", "", "", "", ""]
    for name, value in _HEADER_SCAN.findall(rest, start):
        if not name:
            not_mail = True
            continue
        index = _FIELD_INDEX[name.lower()]
        if fields[index]:
            continue
        if b"\n" in value:
            value = b" ".join(part.strip() for part in value.split(b"\n"))
        else:
            value = value.strip()
        if value.isascii() and b"=?" not in value:
            fields[index] = value.decode("ascii")
        else:
            fields[index], value_notes = _decode_header_cached(value)
            for key, values in value_notes:
                _note(notes, key, **dict(values))
    if not_mail:
        _note(notes, "not_mail")
    if not complete:
        _note(notes, "header_too_long", limit=MAX_HEADER_BYTES)
    return tuple(fields)


def _read_header_bytes(descriptor: int) -> tuple[bytes, bool]:
    """Return the bytes up to the blank line that ends the header section, and whether they are all there.

    A header section longer than MAX_HEADER_BYTES is cut there, and the second value is False.
    A file that ends inside its header section gives all its bytes.
    """
    data = os.read(descriptor, FIRST_READ)
    end = _header_end(data, 0)
    if end is None and len(data) == FIRST_READ:
        while end is None and len(data) <= MAX_HEADER_BYTES:
            chunk = os.read(descriptor, READ_CHUNK)
            if not chunk:
                break
            start = max(0, len(data) - 3)
            data += chunk
            end = _header_end(data, start)
    if end is None:
        end = len(data)
    if end > MAX_HEADER_BYTES:
        return data[:MAX_HEADER_BYTES], False
    return data[:end], True


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


@lru_cache(maxsize=4096)
def _decode_header_cached(value: bytes) -> tuple[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]]:
    """Decode a raw header value and return the text and the notes it earns.

    Raw 8-bit text is read as UTF-8, else cp950, else Latin-1, and encoded words are decoded
    in it too, because some mailers mix the two in one header. The cache pays off because a
    backed-up queue repeats the same From and Subject thousands of times.
    """
    notes: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    text = value.decode("ascii") if value.isascii() else _decode_raw(value, notes)
    if "=?" in text:
        text = _ENCODED_RUN.sub(lambda match: _decode_run(match.group(0), notes), text)
    return text, tuple(notes)


def _decode_raw(value: bytes, notes: list[tuple[str, tuple[tuple[str, str], ...]]]) -> str:
    """Decode unencoded 8-bit header bytes: UTF-8, else cp950 (with a note), else Latin-1 (with a note)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = value.decode("cp950")
    except UnicodeDecodeError:
        notes.append(("undecodable_header", ()))
        return value.decode("latin-1")
    notes.append(("raw_cp950_header", ()))
    return text


def _decode_run(run: str, notes: list[tuple[str, tuple[tuple[str, str], ...]]]) -> str:
    """Decode a run of encoded words, joining the bytes of adjacent words in the same charset.

    When a word in the run is malformed, each word is decoded on its own instead: a malformed
    word stays as written, with a note, and so does the white space next to it.
    """
    words = list(_ENCODED_WORD.finditer(run))
    try:
        parts = [(_word_codec(word), _word_bytes(word)) for word in words]
        return "".join(_decode_text(b"".join(raw for _, raw in group), codec)
                       for codec, group in itertools.groupby(parts, key=operator.itemgetter(0)))
    except _WORD_ERRORS:
        pass
    pieces: list[str] = []
    end = 0
    previous_decoded = False
    for word in words:
        try:
            text = _decode_text(_word_bytes(word), _word_codec(word))
            decoded = True
        except _WORD_ERRORS:
            notes.append(("bad_encoded_word", (("word", word.group(0)),)))
            text = word.group(0)
            decoded = False
        if not (decoded and previous_decoded):
            pieces.append(run[end:word.start()])
        pieces.append(text)
        end = word.end()
        previous_decoded = decoded
    return "".join(pieces)


def _word_codec(word: re.Match[str]) -> str:
    """Return the Python codec for an encoded word's charset (an RFC 2231 language suffix is dropped)."""
    charset = word.group(1).split("*", 1)[0].lower()
    return _CHARSET_ALIASES.get(charset, charset)


def _word_bytes(word: re.Match[str]) -> bytes:
    """Return the bytes an encoded word carries, from its B (Base64) or Q encoding."""
    payload = word.group(3).encode("ascii")
    if word.group(2).upper() == "B":
        return base64.b64decode(payload + b"=" * (-len(payload) % 4), validate=True)
    return binascii.a2b_qp(payload, header=True)


def _decode_text(raw: bytes, codec: str) -> str:
    """Decode `raw` with `codec`, rejecting lone surrogates (UTF-7 can produce them), which no output can encode."""
    text = raw.decode(codec)
    text.encode("utf-8")
    return text


def _read_badmail_reason(descriptor: int, notes: list[str], ansi_encoding: str) -> tuple[str, str, str]:
    """Read a .BDR file's reason, error code and sender, adding a note to `notes` when it has none of them."""
    data = _read_up_to(descriptor, MAX_HEADER_BYTES)
    if not data:
        _note(notes, "empty")
        return _NO_REASON
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    elif data.startswith(codecs.BOM_UTF8):
        text = data[3:].decode("utf-8", errors="replace")
    else:
        text = data.decode(ansi_encoding, errors="replace")
    # Some codecs a user may choose (utf-7, unicode_escape) can produce lone surrogates, which
    # the inventory's Arrow columns cannot hold.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    reason = _BDR_REASON.search(text)
    code = _BDR_CODE.search(text)
    sender = _BDR_SENDER.search(text)
    if not (reason or code):
        _note(notes, "unknown_reason_format")
    return (" ".join(reason.group(1).split()) if reason else "",
            code.group(1).upper().replace("0X", "0x") if code else "",
            sender.group(1).strip() if sender else "")


class ScanColumns:
    """The rows of one chunk of files as one list per column, in ROW_COLUMNS order."""

    def __init__(self, rows: list[tuple[object, ...]], unreadable: int) -> None:
        # One transposition in C instead of a list append per column and row.
        transposed = zip(*rows) if rows else ((),) * len(ROW_COLUMNS)
        self.values: dict[str, list[object]] = {column: list(values)
                                                for column, values in zip(ROW_COLUMNS, transposed)}
        self.unreadable = unreadable

    def __len__(self) -> int:
        return len(self.values["path"])
