"""An inventory of a mailroot tree as a pandas DataFrame, and the summaries admins ask for.

The scan works on the lab's mailroot, a copy taken from a server, or `C:\\inetpub\\mailroot`
itself. It opens every file read-only and reads only the start of it: the envelope lines and
the header section of messages, or the reason text of Badmail `.BDR` files. It never changes
the tree. A file that cannot be read, is empty or is not mail gets a note in its row, and the
scan goes on.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from adminkb import mailroot
from adminkb.errors import InputError
from adminkb.i18n import message

log = logging.getLogger("adminkb.mailroot_scan")

# Headers longer than this are cut, and the row notes it. Real header sections are a few KB.
MAX_HEADER_BYTES = 256 * 1024
# The first read takes one 4 KiB block, which holds the whole header of most messages. Longer
# headers are read on in larger chunks.
FIRST_READ = 4096
READ_CHUNK = 64 * 1024
# A progress bar appears when a tree has more files than this (and `progress` is left at None).
PROGRESS_THRESHOLD = 2000
# "ANSI" text on a Traditional Chinese Windows is code page 950.
DEFAULT_ANSI_ENCODING = "cp950"

OTHER = "Other"

COLUMNS = ("role", "path", "name", "kind", "size", "modified", "age", "mailbox_domain", "mailbox_user",
           "sender", "recipients", "from", "to", "subject", "date", "message_id", "reason", "error_code",
           "reason_sender", "notes")

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
_ENVELOPE_LINE = re.compile(rb"(x-sender|x-receiver)[ \t]*:(.*)", re.IGNORECASE)
_ROLES = {folder.lower(): folder for folder in mailroot.FOLDER_NAMES}
_MAILBOX_FOLDER = re.compile(r"\AP3_(.+)\.mbx\Z", re.IGNORECASE)
_BDR_REASON = re.compile(r"encountered:\s*\"?(.*?)\"?\.?\s*(?:The specific error code|\Z)", re.DOTALL)
_BDR_CODE = re.compile(r"The specific error code was\s+(0x[0-9A-Fa-f]+)")
_BDR_SENDER = re.compile(r"The message sender was\s+(.*?)\.?\s*$", re.MULTILINE)

KINDS = {".eml": "message", ".bad": "badmail_message", ".bdr": "badmail_reason", ".bdp": "badmail_envelope",
         ".ltr": "transcript", ".rtr": "transcript"}


@dataclass(slots=True)
class _Row:
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
        self.notes.append(message(f"mailroot.note.{key}", **values))


def scan_mailroot(root: str | os.PathLike[str], *, now: datetime | None = None, progress: bool | None = None,
                  ansi_encoding: str = DEFAULT_ANSI_ENCODING) -> pd.DataFrame:
    """Return one row per file under the mailroot `root`, sorted by role and path.

    `now` (default: the current time) is the instant ages are measured from. `progress` shows
    a tqdm bar on stderr; None shows it only for trees of more than PROGRESS_THRESHOLD files.
    `.BDR` files without a byte-order mark are decoded with `ansi_encoding`.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise InputError("mailroot.scan_root_missing", value=str(root_path), next_key="mailroot.scan_root_missing_next")
    # A folder with none of the service's folders is not a mailroot (a typo, or /etc): an empty
    # inventory would read as "nothing waiting" and hide the mistake.
    present = {entry.name.lower() for entry in root_path.iterdir() if entry.is_dir()}
    if not present & {folder.lower() for folder in mailroot.FOLDER_NAMES}:
        raise InputError("mailroot.scan_not_mailroot", value=str(root_path),
                         folders=", ".join(mailroot.FOLDER_NAMES), next_key="mailroot.scan_root_missing_next")
    try:
        codecs.lookup(ansi_encoding)
    except LookupError:
        raise InputError("mailroot.unknown_encoding", value=ansi_encoding,
                         next_key="mailroot.unknown_encoding_next") from None
    instant = now or datetime.now(timezone.utc)

    files = sorted(_walk(str(root_path)), key=lambda item: item[1].lower())
    show = len(files) > PROGRESS_THRESHOLD if progress is None else progress
    columns = _Columns()
    if show:
        with tqdm(total=len(files), file=sys.stderr, unit=message("mailroot.progress_unit"),
                  desc=message("mailroot.progress_label")) as bar:
            for full_path, relative in files:
                columns.append(_scan_file(full_path, relative, ansi_encoding))
                bar.update(1)
    else:
        # Without a bar no tqdm object is made, because making one costs about 0.1 s (a lock).
        for full_path, relative in files:
            columns.append(_scan_file(full_path, relative, ansi_encoding))
    # The path list is as large as the columns, so it goes before the frame is built to keep peak memory down.
    count = len(files)
    del files
    columns.link_badmail()
    if columns.unreadable:
        # One line for the whole scan, so that a tree of locked files does not flood the log.
        log.warning("%d of %d files under %s could not be read (run with -vv for each one)", columns.unreadable,
                    count, root_path)
    log.info("scanned %d files under %s", count, root_path)
    return _frame(columns, instant)


def _walk(root: str) -> Iterator[tuple[str, str]]:
    """Yield (full path, path relative to `root` with / separators) for every file under `root`.

    Links to folders are not followed. A folder that cannot be listed is logged and skipped.
    Plain strings keep this fast on trees of 100,000 files.
    """
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    relative = f"{prefix}{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, f"{relative}/"))
                    elif entry.is_file():
                        yield entry.path, relative
        except OSError as error:
            log.warning("cannot list folder %s: %s", folder, error)


def _displayable(text: str) -> str:
    """Replace bytes that were not valid UTF-8 in a file name (surrogate escapes) with U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _scan_file(full_path: str, relative: str, ansi_encoding: str) -> _Row:
    shown = _displayable(relative)
    parts = shown.split("/")
    name = parts[-1]
    role = _ROLES.get(parts[0].lower(), OTHER) if len(parts) > 1 else OTHER
    dot = name.rfind(".")
    row = _Row(role=role, path=shown, name=name, kind=KINDS.get(name[dot:].lower(), "other") if dot >= 0 else "other",
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
            with open(full_path, "rb") as handle:
                _set_status(row, os.fstat(handle.fileno()))
                if row.kind == "badmail_reason":
                    _read_badmail_reason(handle, row, ansi_encoding)
                else:
                    _read_message_header(handle, row)
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
        row.note("unreadable", detail=error.strerror or str(error))
    return row


def _set_status(row: _Row, status: os.stat_result) -> None:
    row.size = status.st_size
    row.modified = status.st_mtime


def _mailbox_owner(parts: list[str]) -> tuple[str, str]:
    """Return the domain and user of a file in `Mailbox\\<domain>\\P3_<user>.mbx\\`."""
    if len(parts) < 4:
        return (parts[1] if len(parts) > 2 else ""), ""
    match = _MAILBOX_FOLDER.match(parts[2])
    return parts[1], match.group(1) if match else ""


def _read_message_header(handle: BinaryIO, row: _Row) -> None:
    header, complete = _read_header_bytes(handle)
    if not header.strip():
        row.note("empty" if row.size == 0 else "no_header")
        return

    # Envelope lines come first, one per line, so a short loop reads them and stops at the first other line.
    recipients: list[str] = []
    offset = 0
    while offset < len(header):
        end = header.find(b"\n", offset)
        line_end = len(header) if end < 0 else end
        match = _ENVELOPE_LINE.match(header, offset, line_end)
        if match is None:
            break
        address = match.group(2).strip().decode("utf-8", errors="replace").strip("<>")
        if match.group(1).lower() == b"x-sender":
            row.sender = address or "<>"
        elif address:
            recipients.append(address)
        offset = line_end + 1
    row.recipients = tuple(recipients)

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


def _read_header_bytes(handle: BinaryIO) -> tuple[bytes, bool]:
    """Return the bytes up to the blank line that ends the header section, and whether it was found."""
    data = handle.read(FIRST_READ)
    end = _header_end(data, 0)
    if end is not None:
        return data[:end], True
    if len(data) < FIRST_READ:
        return data, True
    while len(data) < MAX_HEADER_BYTES:
        chunk = handle.read(READ_CHUNK)
        if not chunk:
            return data, True
        start = max(0, len(data) - 3)
        data += chunk
        end = _header_end(data, start)
        if end is not None:
            return data[:end], True
    return data[:MAX_HEADER_BYTES], False


def _header_end(data: bytes, start: int) -> int | None:
    if data.startswith((b"\r\n", b"\n")):
        return 0
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start)
    if crlf < 0:
        return lf if lf >= 0 else None
    return crlf if lf < 0 or crlf < lf else lf


def _decode_header_value(value: bytes, row: _Row) -> str:
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


def _read_badmail_reason(handle: BinaryIO, row: _Row, ansi_encoding: str) -> None:
    data = handle.read(MAX_HEADER_BYTES)
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


class _Columns:
    """The scanned files as one list per column, filled a row at a time.

    Rows become column values at once, so no object per file outlives its scan. Badmail rows
    are the exception: they are kept until `link_badmail` has copied each `.BDR` reason to its
    `.BAD` and noted the orphans, because the files of one set can be far apart in the scan.
    """

    def __init__(self) -> None:
        self.values: dict[str, list[object]] = {column: [] for column, _ in _ROW_FIELDS}
        self.badmail: list[tuple[int, _Row]] = []
        self.unreadable = 0

    def __len__(self) -> int:
        return len(self.values["path"])

    def append(self, row: _Row) -> None:
        if row.role == mailroot.BADMAIL and row.kind.startswith("badmail_"):
            self.badmail.append((len(self), row))
        if row.unreadable:
            self.unreadable += 1
        for column, attribute in _ROW_FIELDS:
            self.values[column].append(getattr(row, attribute))

    def link_badmail(self) -> None:
        """Give each .BAD row the reason of its .BDR, and note .BDR and .BDP files whose .BAD is gone."""
        by_stem: dict[tuple[str, str], dict[str, tuple[int, _Row]]] = {}
        for index, row in self.badmail:
            folder, _, name = row.path.rpartition("/")
            stem = name.rsplit(".", 1)[0].lower()
            by_stem.setdefault((folder.lower(), stem), {})[row.kind] = (index, row)
        for group in by_stem.values():
            bad = group.get("badmail_message")
            reason = group.get("badmail_reason")
            if bad is not None and reason is not None:
                for column in ("reason", "error_code", "reason_sender"):
                    self.values[column][bad[0]] = getattr(reason[1], column)
            if bad is None:
                for kind in ("badmail_reason", "badmail_envelope"):
                    if kind in group:
                        index, row = group[kind]
                        row.note("orphan", suffix=row.name.rsplit(".", 1)[-1].upper())
                        self.values["notes"][index] = row.notes
        self.badmail = []


def _frame(columns: _Columns, now: datetime) -> pd.DataFrame:
    """Build the inventory from `columns`, emptying each list once the frame has its values."""
    values = columns.values
    # Whole microseconds, as datetime.fromtimestamp gives them; NaN (no time) becomes NaT.
    seconds = np.array([np.nan if stamp is None else stamp for stamp in values.pop("modified")], dtype="float64")
    modified = pd.to_datetime(np.round(seconds * 1_000_000), unit="us", utc=True)
    count = len(values["path"])
    data: dict[str, object] = {}
    for column in COLUMNS:
        if column == "modified":
            data[column] = modified
        elif column == "age":
            data[column] = pd.Timestamp(now) - modified
        elif column == "size":
            data[column] = np.array(values.pop(column), dtype="int64")
        elif column == "recipients":
            data[column] = _object_array([list(recipients) for recipients in values.pop(column)])
        elif column == "notes":
            data[column] = _object_array(["; ".join(notes) if notes else "" for notes in values.pop(column)])
        else:
            # Each list is converted and dropped in turn, so the lists and arrays never all coexist.
            data[column] = _object_array(values.pop(column))
    frame = pd.DataFrame(data, columns=list(COLUMNS), index=pd.RangeIndex(count))
    if not count:
        return frame
    order = {name: index for index, name in enumerate((*mailroot.FOLDER_NAMES, OTHER))}
    frame = frame.sort_values(by=["role", "path"], key=lambda column: column.map(order) if column.name == "role"
                              else column.str.lower(), kind="stable").reset_index(drop=True)
    return frame


def _object_array(items: list[object]) -> np.ndarray:
    """Return `items` as a one-dimensional object array, keeping list items whole.

    np.array(items) would turn lists of equal length into a second dimension, so items are
    stored one by one.
    """
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        array[index] = item
    return array


def _message_rows(inventory: pd.DataFrame) -> pd.DataFrame:
    """Return the rows that stand for one message each: .EML-like files, and .BAD files in Badmail."""
    is_message = inventory["kind"].isin(["message", "badmail_message"])
    in_message_folder = inventory["role"].isin([mailroot.QUEUE, mailroot.DROP, mailroot.PICKUP])
    is_other_file = inventory["kind"].isin(["other"]) & in_message_folder
    return inventory[is_message | is_other_file]


def folder_summary(inventory: pd.DataFrame) -> pd.DataFrame:
    """Return per folder the number of messages, their total size and the age of the oldest.

    Every mailroot folder gets a row, with 0 messages when it is empty or missing.
    """
    messages = _message_rows(inventory)
    rows = []
    for folder in mailroot.FOLDER_NAMES:
        selected = messages[messages["role"] == folder]
        rows.append({"role": folder, "messages": len(selected), "size": int(selected["size"].sum()),
                     "oldest_age": selected["age"].max() if len(selected) else pd.NaT})
    return pd.DataFrame(rows, columns=["role", "messages", "size", "oldest_age"])


def stuck_domains(inventory: pd.DataFrame) -> pd.DataFrame:
    """Return the destination domains of the messages in Queue: messages, recipients and the oldest age.

    Sorted by the oldest age first, because the domain that has waited longest is the one to check.
    """
    columns = ["domain", "messages", "recipients", "oldest_age"]
    queued = _message_rows(inventory)
    queued = queued[queued["role"] == mailroot.QUEUE]
    addresses = queued[["recipients", "age"]].explode("recipients").dropna(subset=["recipients"])
    if addresses.empty:
        return pd.DataFrame(columns=columns)
    domains = addresses["recipients"].str.rpartition("@")[2].str.lower()
    addresses = addresses.assign(domain=domains.where(domains != "", "-"), message=addresses.index)
    per_message = addresses.groupby(["domain", "message"], sort=False).agg(recipients=("recipients", "size"),
                                                                          age=("age", "first"))
    frame = per_message.groupby(level="domain", sort=False).agg(messages=("recipients", "size"),
                                                                recipients=("recipients", "sum"),
                                                                oldest_age=("age", "max")).reset_index()
    frame = frame[columns].astype({"messages": "int64", "recipients": "int64"})
    return frame.sort_values(by=["oldest_age", "domain"], ascending=[False, True]).reset_index(drop=True)


def badmail_reasons(inventory: pd.DataFrame) -> pd.DataFrame:
    """Return each Badmail reason and error code with the number of .BDR files that give it, most frequent first."""
    reasons = inventory[(inventory["role"] == mailroot.BADMAIL) & (inventory["kind"] == "badmail_reason")]
    if reasons.empty:
        return pd.DataFrame(columns=["reason", "error_code", "count"])
    counted = (reasons.groupby(["reason", "error_code"], dropna=False).size().reset_index(name="count"))
    return counted.sort_values(by=["count", "reason"], ascending=[False, True]).reset_index(drop=True)


# Saved inventories and the changes between two of them.

DIFF_COLUMNS = ("change", "old_role", "old_path", "new_role", "new_path", "old_size", "new_size",
                "message_id", "subject")
CHANGES = ("new", "gone", "moved", "grown", "shrunk")
# A saved inventory's name becomes a file name, so it is kept to characters every file system accepts.
_INVENTORY_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_INVENTORY_SUFFIX = ".parquet"


def default_inventory_dir() -> Path:
    """Return `~/.adminkb/inventories`, where inventories are saved unless the user names a folder."""
    return Path.home() / ".adminkb" / "inventories"


def inventory_path(name: str, state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the file a saved inventory called `name` lives in; InputError for names that are not plain."""
    if not _INVENTORY_NAME.match(name):
        raise InputError("mailroot.inventory_bad_name", value=name, next_key="mailroot.inventory_bad_name_next")
    folder = Path(state_dir) if state_dir is not None else default_inventory_dir()
    return folder / f"{name}{_INVENTORY_SUFFIX}"


def save_inventory(inventory: pd.DataFrame, name: str, state_dir: str | os.PathLike[str] | None = None, *,
                   replace: bool = False) -> Path:
    """Write `inventory` as parquet under the name `name` and return the file's path.

    The file is written under a temporary name and renamed into place, so an interrupted save
    leaves the previous file (or none). An existing inventory of that name is kept unless
    `replace` is true: InputError.
    """
    target = inventory_path(name, state_dir)
    if target.exists() and not replace:
        raise InputError("mailroot.inventory_exists", value=str(target), next_key="mailroot.inventory_exists_next")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            inventory.to_parquet(temporary, index=False)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:
        raise InputError("mailroot.inventory_write_failed", value=str(target), detail=error.strerror or str(error),
                         next_key="mailroot.inventory_write_failed_next") from error
    log.info("saved inventory %s (%d rows) to %s", name, len(inventory), target)
    return target


def load_inventory(name: str, state_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Read the inventory saved as `name`; InputError when it is missing or not an inventory."""
    source = inventory_path(name, state_dir)
    if not source.is_file():
        saved = sorted(path.stem for path in source.parent.glob(f"*{_INVENTORY_SUFFIX}")) if source.parent.is_dir() \
            else []
        raise InputError("mailroot.inventory_missing", value=name, where=str(source.parent),
                         names=", ".join(saved) or message("mailroot.cli.none"),
                         next_key="mailroot.inventory_missing_next")
    try:
        frame = pd.read_parquet(source)
    except (OSError, ValueError) as error:
        raise InputError("mailroot.inventory_unreadable", value=str(source), detail=str(error),
                         next_key="mailroot.inventory_missing_next") from error
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise InputError("mailroot.inventory_unreadable", value=str(source), detail=", ".join(missing),
                         next_key="mailroot.inventory_missing_next")
    frame["recipients"] = frame["recipients"].map(lambda values: [] if values is None else list(values))
    return frame


def diff_inventories(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Return the files that are new, gone, moved between folders, grown or shrunk from `old` to `new`.

    A file at the same path in both is the same file. Files left over on either side are paired
    as one message moved between folders when they share a Message-ID, or else a file stem
    (the service keeps the stem when it moves `NTFS_<id>.EML` from Queue to Badmail as
    `NTFS_<id>.BAD`). Everything still unpaired is new or gone. Unchanged files are left out.
    """
    rows: list[dict[str, object]] = []
    old_by_path = {path.lower(): index for index, path in enumerate(old["path"])}
    new_by_path = {path.lower(): index for index, path in enumerate(new["path"])}
    old_size, new_size = old["size"].tolist(), new["size"].tolist()

    for path, new_index in new_by_path.items():
        old_index = old_by_path.get(path)
        if old_index is None or old_size[old_index] == new_size[new_index]:
            continue
        change = "grown" if new_size[new_index] > old_size[old_index] else "shrunk"
        rows.append(_diff_row(change, old, old_index, new, new_index))

    old_left = [index for path, index in old_by_path.items() if path not in new_by_path]
    new_left = [index for path, index in new_by_path.items() if path not in old_by_path]
    waiting: dict[str, list[int]] = {}
    for index in sorted(old_left, key=lambda position: old["path"].iat[position].lower()):
        waiting.setdefault(_identity(old, index), []).append(index)
    for index in sorted(new_left, key=lambda position: new["path"].iat[position].lower()):
        candidates = waiting.get(_identity(new, index))
        if candidates:
            rows.append(_diff_row("moved", old, candidates.pop(0), new, index))
        else:
            rows.append(_diff_row("new", None, None, new, index))
    for indexes in waiting.values():
        rows.extend(_diff_row("gone", old, index, None, None) for index in indexes)

    frame = pd.DataFrame(rows, columns=list(DIFF_COLUMNS))
    # A nullable integer keeps sizes whole where one side is missing.
    frame[["old_size", "new_size"]] = frame[["old_size", "new_size"]].astype("Int64")
    order = {name: position for position, name in enumerate(CHANGES)}
    frame["sort_path"] = frame["new_path"].where(frame["new_path"] != "", frame["old_path"]).str.lower()
    frame = frame.sort_values(by=["change", "sort_path"], key=lambda column: column.map(order)
                              if column.name == "change" else column, kind="stable")
    return frame.drop(columns="sort_path").reset_index(drop=True)


def _identity(frame: pd.DataFrame, index: int) -> str:
    """Return what identifies a file's message across folders: its Message-ID, else its file stem."""
    message_id = frame["message_id"].iat[index]
    if message_id:
        return f"id:{message_id}"
    kind = frame["kind"].iat[index]
    stem = frame["name"].iat[index].rsplit(".", 1)[0].lower()
    # A .BDR or .BDP pairs only with a file of its own kind, while .EML and .BAD files of one
    # stem are the same message before and after the service gave up on it.
    if kind in ("badmail_reason", "badmail_envelope"):
        return f"{kind}:{stem}"
    return f"stem:{stem}"


def _diff_row(change: str, old: pd.DataFrame | None, old_index: int | None, new: pd.DataFrame | None,
              new_index: int | None) -> dict[str, object]:
    row: dict[str, object] = {"change": change, "old_role": "", "old_path": "", "new_role": "", "new_path": "",
                              "old_size": None, "new_size": None}
    for side, frame, index in (("old", old, old_index), ("new", new, new_index)):
        if frame is None or index is None:
            continue
        row[f"{side}_role"] = frame["role"].iat[index]
        row[f"{side}_path"] = frame["path"].iat[index]
        row[f"{side}_size"] = int(frame["size"].iat[index])
        row["message_id"] = frame["message_id"].iat[index]
        row["subject"] = frame["subject"].iat[index]
    return row


# Views for people: translated column names, readable ages, a chart of messages by folder and age.

# Age buckets of the chart: upper bounds and their catalog keys. The last bucket has no bound.
AGE_BUCKETS = ((pd.Timedelta(hours=1), "under_hour"), (pd.Timedelta(days=1), "under_day"),
               (pd.Timedelta(days=2), "under_two_days"), (None, "older"))
# Columns whose values are codes with a catalog text each.
_CODED_COLUMNS = {"change": "mailroot.change", "action": "mailroot_ops.action", "event": "mailroot_ops.event",
                  "kind": "mailroot.kind"}


def format_age(age: pd.Timedelta) -> str:
    """Return an age as days, hours and minutes in the user's language (negative ages count as 0)."""
    total_minutes = max(0, int(age.total_seconds() // 60))
    days, rest = divmod(total_minutes, 24 * 60)
    return message("mailroot.cli.age", days=days, hours=rest // 60, minutes=rest % 60)


def readable(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Return `frame` (or its `columns`) for display: catalog headers, ages as text, recipients one a line."""
    view = frame[columns] if columns is not None else frame
    shown = {}
    for column in view.columns:
        values = view[column]
        if column in _CODED_COLUMNS:
            values = values.map(lambda code, prefix=_CODED_COLUMNS[column]: message(f"{prefix}.{code}"))
        elif pd.api.types.is_timedelta64_dtype(values):
            values = values.map(lambda age: "-" if pd.isna(age) else format_age(age))
        elif values.dtype == object and len(values) and isinstance(values.iloc[0], list):
            values = values.map("\n".join)
        shown[message("mailroot.column.file" if column == "name" else f"mailroot.column.{column}")] = values
    # Object columns take "-" for missing values whatever their type was (nullable integers reject it).
    return pd.DataFrame(shown).astype(object).fillna("-")


def age_figure(inventory: pd.DataFrame):
    """Draw the messages in each folder as bars split by age, with the CJK font; return a RenderedFigure."""
    from adminkb import plotting  # matplotlib is slow to import, and the scan command does not need it

    messages = _message_rows(inventory)
    folders = [folder for folder in mailroot.FOLDER_NAMES if folder not in (mailroot.ROUTE, mailroot.SORTTEMP)]
    figure = plotting.new_figure(8.0, 3.6)
    axes = figure.add_subplot()
    left = np.zeros(len(folders))
    lower = pd.Timedelta(0)
    colors = ("#9ecae1", "#4292c6", "#f16913", "#a50f15")
    for (upper, key), color in zip(AGE_BUCKETS, colors):
        in_bucket = messages["age"] >= lower
        if upper is not None:
            in_bucket &= messages["age"] < upper
        counts = np.array([int(((messages["role"] == folder) & in_bucket).sum()) for folder in folders])
        axes.barh(folders, counts, left=left, color=color, label=message(f"mailroot.age_bucket.{key}"))
        left += counts
        lower = upper if upper is not None else lower
    axes.invert_yaxis()
    axes.set_xlabel(message("mailroot.figure.messages"))
    axes.set_title(message("mailroot.figure.title"))
    axes.legend(loc="lower right")
    return plotting.render_png(figure)
