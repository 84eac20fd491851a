"""The IIS SMTP Service mailroot: its folders, its file names, and message files with an envelope.

The service keeps its work in folders under one root (`C:\\inetpub\\mailroot` by default). Files
it queues or drops are named `NTFS_<24 hex digits>.EML` and start with `X-Sender:` and
`X-Receiver:` lines that carry the SMTP envelope ahead of the message itself.
"""

from __future__ import annotations

import email.policy
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING

from adminkb.errors import InputError
from adminkb.i18n import message

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("adminkb.mailroot")

DEFAULT_WINDOWS_MAILROOT = PureWindowsPath(r"C:\inetpub\mailroot")

BADMAIL = "Badmail"
DROP = "Drop"
PICKUP = "Pickup"
QUEUE = "Queue"
ROUTE = "Route"
SORTTEMP = "SortTemp"
MAILBOX = "Mailbox"

# Every folder the service creates under the mailroot.
FOLDER_NAMES = (BADMAIL, DROP, PICKUP, QUEUE, ROUTE, SORTTEMP, MAILBOX)

# NOTE: the service's own documentation does not describe how the 24 hex digits are built.
# Names seen in admins' posts look like two FILETIME halves followed by a counter, so the lab
# writes the arrival FILETIME (low then high 32 bits) and then a per-service counter.
NTFS_NAME_PATTERN = re.compile(r"\ANTFS_[0-9A-Fa-f]{24}\.EML\Z", re.IGNORECASE)

# Windows FILETIME counts 100-nanosecond intervals since 1601-01-01 UTC.
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)

# Temporary files start with "." and end with this suffix, and this package's readers (the
# inventory, the safe operations) skip such names. The service skips no name in Pickup, so
# Pickup writes stage their temporary file outside it (`adminkb.pickup.write_pickup_bytes`).
_TEMPORARY_SUFFIX = ".tmp"


def folder_role(name: str) -> str:
    """Return what the folder `name` is for, in the user's language; InputError for unknown names."""
    canonical = _canonical_folder(name)
    return message(f"mailroot.role.{canonical.lower()}")


def roles_table() -> pd.DataFrame:
    """Return each mailroot folder with what it is for, headed in the user's language."""
    import pandas as pd  # imported here so that scan workers, which need only the names above, start fast

    return pd.DataFrame({message("mailroot.column.role"): list(FOLDER_NAMES),
                         message("mailroot.column.purpose"): [folder_role(folder) for folder in FOLDER_NAMES]})


def _canonical_folder(name: str) -> str:
    for folder in FOLDER_NAMES:
        if folder.lower() == name.lower():
            return folder
    raise InputError("mailroot.unknown_folder", value=name, names=", ".join(FOLDER_NAMES),
                     next_key="mailroot.unknown_folder_next")


def create_mailroot(root: str | os.PathLike[str]) -> Path:
    """Create `root` and every mailroot folder under it (existing ones are kept) and return `root`."""
    root_path = Path(root)
    if root_path.exists() and not root_path.is_dir():
        raise InputError("mailroot.root_not_folder", value=str(root_path),
                         next_key="mailroot.root_not_folder_next")
    for folder in FOLDER_NAMES:
        (root_path / folder).mkdir(parents=True, exist_ok=True)
    return root_path


def filetime_from_datetime(instant: datetime) -> int:
    """Return the Windows FILETIME (100 ns intervals since 1601 UTC) of an aware datetime."""
    if instant.tzinfo is None:
        raise ValueError("filetime_from_datetime needs an aware datetime")
    elapsed = instant - _FILETIME_EPOCH
    return (elapsed.days * 86_400 + elapsed.seconds) * 10_000_000 + elapsed.microseconds * 10


def ntfs_file_name(filetime: int, counter: int) -> str:
    """Return a queue file name `NTFS_<24 hex digits>.EML` for an arrival FILETIME and a counter."""
    if not 0 <= filetime < 1 << 64:
        raise ValueError(f"filetime out of range for 64 bits: {filetime}")
    low = filetime & 0xFFFFFFFF
    high = filetime >> 32
    return f"NTFS_{low:08x}{high:08x}{counter & 0xFFFFFFFF:08x}.EML"


def arrival_time_from_name(name: str) -> datetime | None:
    """Return the arrival time an `NTFS_<24 hex digits>` name encodes as the lab writes it, else None.

    The suffix does not matter, so a `.BAD` keeps the time of the `.EML` it came from.
    """
    stem = name.split(".", 1)[0]
    if not NTFS_NAME_PATTERN.match(f"{stem}.EML"):
        return None
    low, high = int(stem[5:13], 16), int(stem[13:21], 16)
    return _FILETIME_EPOCH + timedelta(microseconds=((high << 32) | low) // 10)


def set_times_from_names(root: str | os.PathLike[str]) -> int:
    """Set each `NTFS_...` file's modification time under `root` to the time its name encodes.

    The mail lab names files by its own clock but the file system stamps them with the wall
    clock, so a runbook calls this to make ages in the lab agree with the lab clock. A real
    server's files already carry their true times and need no such step. Returns the number
    of files changed.
    """
    changed = 0
    for path in sorted(Path(root).rglob("NTFS_*")):
        arrival = arrival_time_from_name(path.name)
        if arrival is None or not path.is_file():
            continue
        stamp = arrival.timestamp()
        os.utime(path, (stamp, stamp))
        changed += 1
    return changed


def is_ntfs_file_name(name: str) -> bool:
    """Return whether `name` has the service's `NTFS_<24 hex digits>.EML` form."""
    return NTFS_NAME_PATTERN.match(name) is not None


def envelope_lines(sender: str, recipients: Sequence[str]) -> bytes:
    """Return the `X-Sender:` and `X-Receiver:` lines (CRLF ends) for an SMTP envelope.

    An empty sender is the null reverse-path of bounces and is written `<>`. Addresses are
    UTF-8, and bytes a client sent outside ASCII (decoded with surrogateescape) are written
    back unchanged. Only line breaks raise InputError here, because the lab stores what an
    SMTP client sent. The Pickup writer checks each address in full before it calls this.
    """
    if not recipients:
        raise InputError("mailroot.no_recipients", next_key="mailroot.no_recipients_next")
    lines = [f"X-Sender: {_envelope_address(sender) or '<>'}\r\n"]
    lines.extend(f"X-Receiver: {_envelope_address(recipient)}\r\n" for recipient in recipients)
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def _envelope_address(address: str) -> str:
    # A CR or LF inside an address would start a new header line and change the envelope.
    if "\r" in address or "\n" in address:
        raise InputError("mailroot.address_line_break", value=address.encode("unicode_escape").decode("ascii"),
                         next_key="mailroot.address_line_break_next")
    return address.strip()


def write_message_file(folder: str | os.PathLike[str], name: str, sender: str,
                       recipients: Sequence[str], content: bytes) -> Path:
    """Write the envelope lines and then `content` to `folder/name`, atomically; return the path.

    The bytes go to a temporary file in the same folder first, which is then renamed to `name`,
    so a reader that skips temporary names never gets a partly written message. `content` is
    stored unchanged. An existing file with that name is never replaced: FileExistsError.
    Pickup needs `adminkb.pickup.write_pickup_bytes` instead, because the service reads every
    file there, temporary names included.
    """
    data = envelope_lines(sender, recipients) + bytes(content)
    target = write_file_atomically(folder, name, data)
    log.debug("wrote %s (%d bytes, %d recipients)", target, len(data), len(recipients))
    return target


def write_file_atomically(folder: str | os.PathLike[str], name: str, data: bytes) -> Path:
    """Write `data` to `folder/name` through a temporary file renamed into place; return the path.

    A reader never sees a partly written file under `name`, and an existing file is never
    replaced (FileExistsError). On any error the temporary file is removed.
    """
    if Path(name).name != name or name in ("", ".", ".."):
        raise InputError("mailroot.bad_file_name", value=name, next_key="mailroot.bad_file_name_next")
    folder_path = Path(folder)
    target = folder_path / name
    if target.exists():
        raise FileExistsError(f"{target} already exists; mailroot files are never overwritten")

    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{name}.", suffix=_TEMPORARY_SUFFIX, dir=folder_path)
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        rename_without_replacing(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def is_temporary_file_name(name: str) -> bool:
    """Return whether `name` has the form of this package's temporary files: a leading "." and a ".tmp" suffix.

    `write_file_atomically`, the Pickup writer's staging files and the resubmit staging files
    all use it, so this package's readers skip them.
    """
    return name.startswith(".") and name.endswith(_TEMPORARY_SUFFIX)


def rename_without_replacing(source: Path, target: Path) -> None:
    """Rename `source` to `target` on the same volume, raising FileExistsError instead of replacing `target`."""
    if os.name == "nt":
        # On Windows os.rename already refuses to replace an existing file.
        os.rename(source, target)
        return
    # POSIX rename replaces silently, so link first (fails if the target exists), then unlink.
    try:
        os.link(source, target)
    except (NotImplementedError, PermissionError):
        # NOTE: a file system without hard links (some network shares) falls back to a check
        # before rename, which leaves a small race window between the two calls.
        if target.exists():
            raise FileExistsError(f"{target} already exists") from None
        os.rename(source, target)
        return
    source.unlink()


# An envelope line: `X-Sender` or `X-Receiver` at the very start of the line, then optional
# spaces or tabs, a colon and the address. The lab's Pickup pass and queue and resubmit all
# call split_envelope, and the inventory (adminkb.mailroot_read) applies the same rule with its
# own regular expression, so that no reader finds a recipient that another one misses. An
# indented line, or one with other characters before the colon, ends the envelope.
_ENVELOPE_LINE = re.compile(rb"(x-sender|x-receiver)[ \t]*:(.*)", re.IGNORECASE | re.DOTALL)
# "Name <address>": one bracketed address at the end, with no other bracket before it. A value
# such as "<a@example.net> <b@example.net>" matches nothing, so it stays one (invalid) address
# instead of silently becoming one of the two.
_BRACKETED_ADDRESS = re.compile(r"\A[^<>]*<([^<>]*)>\s*\Z")


def split_envelope(data: bytes, errors: str = "surrogateescape") -> tuple[str | None, list[str], int]:
    """Read the envelope lines at the start of a message file.

    Returns the sender (None without an `X-Sender` line), the recipients in file order, and the
    offset where the message after the envelope starts. Lines end in CRLF or LF. An address
    written as `Name <address>` gives the address, and `<>` gives the null sender "". Empty
    `X-Receiver` lines name no recipient. `errors` is the UTF-8 error handler for bytes
    outside UTF-8: surrogate escapes by default, so that the address can be written back.
    """
    sender: str | None = None
    recipients: list[str] = []
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end
        line = data[offset:end]
        match = _ENVELOPE_LINE.fullmatch(line[:-1] if line.endswith(b"\r") else line)
        if match is None:
            break
        address = envelope_address(match.group(2), errors)
        if match.group(1).lower() == b"x-sender":
            sender = address
        elif address:
            recipients.append(address)
        offset = end + 1
    return sender, recipients, min(offset, len(data))


def envelope_address(raw: bytes, errors: str = "surrogateescape") -> str:
    """Return the address in the value of an envelope line; `errors` is the UTF-8 error handler."""
    text = raw.strip().decode("utf-8", errors=errors)
    if "<" not in text and ">" not in text:
        # The usual plain address. The inventory calls this for every envelope line it reads.
        return text
    bracketed = _BRACKETED_ADDRESS.search(text)
    return bracketed.group(1).strip() if bracketed else text.strip("<>")


def read_envelope(path: str | os.PathLike[str]) -> tuple[str | None, list[str], EmailMessage]:
    """Read a message file: its `X-Sender`, its `X-Receiver` list and the message after them.

    Files without envelope lines (Pickup files written by some programs) give None and an empty
    list. Headers are decoded with the `email` package's default policy, so RFC 2047 encoded
    words (a Chinese subject, say) come back as text.
    """
    data = Path(path).read_bytes()
    # For display: bytes outside UTF-8 become U+FFFD instead of surrogate escapes.
    sender, recipients, offset = split_envelope(data, errors="replace")
    parsed = BytesParser(policy=email.policy.default).parsebytes(data[offset:], headersonly=True)
    return sender, recipients, parsed


def message_table(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Return one row per message file: name, size, envelope sender and recipients, and subject."""
    import pandas as pd
    columns = [message(f"mailroot.column.{name}") for name in ("file", "size", "sender", "recipients", "subject")]
    rows = []
    for path in paths:
        sender, recipients, parsed = read_envelope(path)
        rows.append([Path(path).name, Path(path).stat().st_size, sender or "-", "\n".join(recipients) or "-",
                     str(parsed.get("Subject", "-"))])
    return pd.DataFrame(rows, columns=columns)
