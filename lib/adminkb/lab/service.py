"""The state one SMTP virtual server shares between its sessions.

`VirtualServer` keeps the settings an admin sees in the virtual server's properties (host
name, message size limit, relay restrictions, connection control, local domains), hands out
message ids and queue file names, and stores accepted mail in the mailroot the way the
service does: local recipients in Drop, the others in Queue.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import os
import ssl
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path

from adminkb import mailroot
from adminkb.lab import replies
from adminkb.lab.clock import MONTH_NAMES, Clock, rfc2822_date
from adminkb.lab.policy import AccessList
from adminkb.lab.w3clog import W3CLogWriter

log = logging.getLogger("adminkb.lab")

# Message ids look like <MAIL01fSDGAIXWb9DY00001e05@mail01.example.com> in the service's logs:
# the computer name padded with letters and digits to 19 characters, then a hex counter.
_MESSAGE_ID_PREFIX_LENGTH = 19
_MESSAGE_ID_MIN_FILLER = 4
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# The first bytes of the lab's own `.BDP` files.
BDP_MAGIC = b"ADMINKB-LAB-BDP\x00"

# Flags for a new file that must not exist yet. O_BINARY exists on Windows only.
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
# Temporary names to try before giving up: each clash is a file left over from a crash.
_TEMPORARY_NAME_ATTEMPTS = 100
# Queue and Drop names to try when earlier runs on the same root left files with the next names.
_FILE_NAME_ATTEMPTS = 10_000

_MESSAGE_ID_HEADER = re.compile(rb"^message-id:", re.IGNORECASE)
_ARRIVAL_TIME_HEADER = re.compile(rb"^x-originalarrivaltime:", re.IGNORECASE)


@dataclass(frozen=True)
class StoredMessage:
    """The outcome of storing one accepted message: its id and the files written."""

    message_id: str
    files: tuple[Path, ...]


class VirtualServer:
    """Settings, policy lists, counters, the W3C log and the mailroot of one SMTP virtual server.

    The policy lists are replaced whole (they are immutable), and the counters are guarded by a
    lock, because sessions run in the lab's thread while a notebook changes settings from its own.
    """

    def __init__(self, *, hostname: str, computer_name: str, version: str, zone: tzinfo, clock: Clock,
                 mailroot_path: Path, log_writer: W3CLogWriter, local_domains: Iterable[str],
                 relay: AccessList, connection: AccessList | None, max_message_size: int,
                 relay_for_authenticated: bool = True) -> None:
        self.hostname = hostname
        self.computer_name = computer_name
        self.version = version
        self.zone = zone
        self.clock = clock
        self.mailroot = mailroot_path
        self.log_writer = log_writer
        self.local_domains = tuple(domain.lower().rstrip(".") for domain in local_domains)
        self.relay = relay
        self.connection = connection
        self.max_message_size = max_message_size
        self.relay_for_authenticated = relay_for_authenticated
        # Extra EHLO keywords for authentication (such as "AUTH GSSAPI NTLM LOGIN"), listed
        # right after the greeting line; empty while the lab offers no authentication.
        self.authentication_keywords: tuple[str, ...] = ()
        # STARTTLS: None while no certificate is bound, so the service offers no TLS.
        self.tls_context: ssl.SSLContext | None = None
        # Basic authentication (AUTH LOGIN) against `accounts`, accepted only under TLS
        # while `auth_requires_tls` is set.
        self.basic_auth = False
        self.auth_requires_tls = True
        self._accounts: dict[str, tuple[str, str]] = {}
        # NOTE: not a setting of the real service, which replies 252 to every VRFY. The lab
        # uses it to show a server whose VRFY reveals which accounts exist.
        self.vrfy_reveals_users = False
        # The banner text after the host name instead of the product and version (the
        # metabase property ConnectResponse); None keeps the service's own banner.
        self.connect_response: str | None = None
        self.sessions: set = set()
        self._lock = threading.Lock()
        self._message_counter = 0
        self._file_counter = 0
        self._temporary_counter = itertools.count(1)
        self._last_date: tuple[tuple[datetime, tzinfo] | None, str] = (None, "")
        # Seed for the filler letters of message ids: stable for a fixed clock, new each run otherwise.
        self._id_seed = f"{computer_name}|{mailroot.filetime_from_datetime(clock.now())}"

    # Policy decisions

    def connection_allowed(self, client_ip: str) -> bool:
        """Return whether connection control lets `client_ip` in (no list: everyone)."""
        control = self.connection
        return control is None or control.allows(client_ip)

    def is_local(self, address: str) -> bool:
        """Return whether the domain of `address` is one of the virtual server's local domains."""
        domain = address.rpartition("@")[2].lower().rstrip(".")
        return domain in self.local_domains

    def relay_allowed(self, client_ip: str, authenticated: bool) -> bool:
        """Return whether a client may send to remote domains, as the Relay Restrictions dialog decides."""
        if authenticated and self.relay_for_authenticated:
            return True
        return self.relay.allows(client_ip)

    def banner(self) -> str:
        """Return the 220 greeting line for a new connection."""
        if self.connect_response is not None:
            return replies.CUSTOM_BANNER.format(host=self.hostname, text=self.connect_response)
        return replies.BANNER.format(host=self.hostname, version=self.version,
                                     date=self._date_text(self.clock.now()))

    def _date_text(self, instant: datetime) -> str:
        """Return `rfc2822_date(instant, self.zone)`, reusing the text while the second and zone stay the same."""
        second = instant.replace(microsecond=0)
        # One tuple, replaced whole, so a thread that reads it never pairs a key with another text.
        key, text = self._last_date
        if key != (second, self.zone):
            key = (second, self.zone)
            text = rfc2822_date(second, self.zone)
            self._last_date = (key, text)
        return text

    def set_accounts(self, accounts: Iterable[tuple[str, str]]) -> None:
        """Replace the lab's account list with (user name, password) pairs."""
        self._accounts = {user.lower(): (user, password) for user, password in accounts}

    @property
    def account_names(self) -> list[str]:
        return sorted(user for user, _ in self._accounts.values())

    def check_password(self, user: str, password: str) -> str | None:
        """Return the account's own spelling when `password` is right, else None.

        User names compare without regard to case, as Windows account names do. The password
        comparison takes the same time whatever the position of the first wrong character.
        """
        entry = self._accounts.get(user.lower())
        expected = entry[1] if entry is not None else ""
        matches = hmac.compare_digest(password.encode("utf-8", "surrogateescape"),
                                      expected.encode("utf-8", "surrogateescape"))
        return entry[0] if entry is not None and matches else None

    def has_account(self, user: str) -> bool:
        return user.lower() in self._accounts

    @property
    def default_domain(self) -> str:
        return self.local_domains[0] if self.local_domains else self.hostname

    # Identifiers

    def next_message_id(self) -> str:
        """Return a new message id in the service's form, `<MAIL01...00000001@host>`."""
        with self._lock:
            self._message_counter += 1
            counter = self._message_counter
        filler_length = max(_MESSAGE_ID_MIN_FILLER, _MESSAGE_ID_PREFIX_LENGTH - len(self.computer_name))
        filler = _base62_digest(f"{self._id_seed}|{counter}", filler_length)
        return f"<{self.computer_name}{filler}{counter & 0xFFFFFFFF:08x}@{self.hostname}>"

    def _next_file_name(self, folder: Path, arrival: datetime) -> str:
        filetime = mailroot.filetime_from_datetime(arrival)
        while True:
            with self._lock:
                self._file_counter += 1
                counter = self._file_counter
            name = mailroot.ntfs_file_name(filetime, counter)
            # A lab started again on an old root with the same fixed clock would repeat names.
            if not (folder / name).exists():
                return name

    # Storing accepted mail

    def store(self, *, sender: str, recipients: Sequence[str], content: bytes, helo: str,
              client_ip: str, message_id: str) -> StoredMessage:
        """Add the service's trace headers and write the message to Drop and/or Queue.

        Local-domain recipients share one file in Drop, the others one file in Queue, each
        starting with the envelope lines for its own recipients.
        """
        arrival = self.clock.now()
        data = self.add_trace_headers(content, helo=helo, client_ip=client_ip, arrival=arrival,
                                      message_id=message_id)
        files = self._write_by_destination(sender, recipients, data, arrival)
        if log.isEnabledFor(logging.INFO):
            log.info("accepted %s from %s (%s) for %d recipients: %s", message_id.strip(), sender or "<>",
                     client_ip, len(recipients), ", ".join(path.name for path in files))
        return StoredMessage(message_id=message_id, files=tuple(files))

    def store_picked_up(self, *, sender: str, recipients: Sequence[str], content: bytes) -> StoredMessage:
        """Store a message taken from Pickup in Drop and/or Queue, adding Message-ID and arrival time.

        NOTE: mail from Pickup never crossed an SMTP session, so the lab adds no `Received:`
        line. Which trace headers the service adds to picked-up mail is not confirmed.
        """
        arrival = self.clock.now()
        header_block, body = split_header_block(content)
        header_lines = header_block.split(b"\r\n")[:-1] if header_block else []
        own_id = find_message_id(content)
        message_id = own_id.strip() if own_id is not None else self.next_message_id()
        added = b""
        if own_id is None:
            added += f"Message-ID: {message_id}\r\n".encode("ascii")
        if not any(_ARRIVAL_TIME_HEADER.match(line) for line in header_lines):
            added += original_arrival_time(arrival).encode("ascii")
        files = self._write_by_destination(sender, recipients, header_block + added + body, arrival)
        return StoredMessage(message_id=message_id, files=tuple(files))

    def store_badmail(self, *, content: bytes, reason: bytes,
                      envelope: tuple[str, Sequence[str]] | None = None) -> tuple[Path, ...]:
        """Write a message the service gives up on to Badmail as `<stem>.BAD`, with its reason in `<stem>.BDR`.

        With `envelope` (sender, recipients) a `<stem>.BDP` is written too, so the three files
        form the service's triple. NOTE: the layout of the service's binary `.BDP` data is not
        documented. The lab writes its own: `BDP_MAGIC`, then the X-Sender and X-Receiver
        lines in UTF-16LE. Readers should treat `.BDP` files as opaque.
        """
        folder = self.mailroot / mailroot.BADMAIL
        # The .BDP bytes are built before any file is written, so a bad envelope cannot leave a
        # lone .BAD behind. A message without recipients gets no .BDP, as there is no envelope to keep.
        envelope_data = None
        if envelope is not None and envelope[1]:
            sender, recipients = envelope
            envelope_data = BDP_MAGIC + mailroot.envelope_lines(sender, recipients).decode(
                "utf-8", "surrogateescape").encode("utf-16-le", "surrogatepass")
        while True:
            stem = self._next_file_name(folder, self.clock.now())[: -len(".EML")]
            if not any((folder / f"{stem}{suffix}").exists() for suffix in (".BAD", ".BDP", ".BDR")):
                break
        bad = mailroot.write_file_atomically(folder, f"{stem}.BAD", content)
        files = [bad]
        if envelope_data is not None:
            files.append(mailroot.write_file_atomically(folder, f"{stem}.BDP", envelope_data))
        files.append(mailroot.write_file_atomically(folder, f"{stem}.BDR", reason))
        return tuple(files)

    def store_generated(self, *, sender: str, recipients: Sequence[str], content: bytes) -> StoredMessage:
        """Store a message the service writes itself (a delivery status notification) in Drop and/or Queue.

        It is sorted like any other mail: to Drop for a local recipient, to Queue for a remote one.
        """
        stored = self.store_picked_up(sender=sender, recipients=recipients, content=content)
        log.info("stored %s from %s for %s: %s", stored.message_id, sender or "<>", ", ".join(recipients),
                 ", ".join(path.name for path in stored.files))
        return stored

    def _write_by_destination(self, sender: str, recipients: Sequence[str], data: bytes,
                              arrival: datetime) -> list[Path]:
        """Write one file to Drop for the local recipients and one to Queue for the others."""
        local = [address for address in recipients if self.is_local(address)]
        remote = [address for address in recipients if not self.is_local(address)]
        files = []
        for folder_name, group in ((mailroot.DROP, local), (mailroot.QUEUE, remote)):
            if not group:
                continue
            content = mailroot.envelope_lines(sender, group) + data
            files.append(self._write_message_file(self.mailroot / folder_name, content, arrival))
        return files

    def _write_message_file(self, folder: Path, content: bytes, arrival: datetime) -> Path:
        """Write `content` to a new `NTFS_*.EML` file in `folder` through a temporary file; return its path.

        This keeps the contract of `mailroot.write_message_file` with fewer system calls,
        because every accepted message passes here. The temporary file is linked under the
        message name and then removed, so no reader sees part of a message, and an existing
        file is never replaced. A taken name (left by an earlier run on the same root) moves
        on to the next counter value, as `_next_file_name` does.
        """
        filetime = mailroot.filetime_from_datetime(arrival)
        temporary = self._create_temporary_file(folder, content)
        try:
            for _ in range(_FILE_NAME_ATTEMPTS):
                with self._lock:
                    self._file_counter += 1
                    counter = self._file_counter
                target = os.path.join(folder, mailroot.ntfs_file_name(filetime, counter))
                if _link_without_replacing(temporary, target):
                    log.debug("wrote %s (%d bytes)", target, len(content))
                    return Path(target)
            raise FileExistsError(f"{folder} has no free message file name after {_FILE_NAME_ATTEMPTS} tries")
        finally:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass

    def _create_temporary_file(self, folder: Path, content: bytes) -> str:
        """Write `content` to a new temporary file in `folder` and return its path.

        The file is created exclusively, with the owner-only mode that `tempfile.mkstemp` gives.
        On a write error it is removed again.
        """
        for _ in range(_TEMPORARY_NAME_ATTEMPTS):
            temporary = os.path.join(folder, f".lab{os.getpid():x}-{next(self._temporary_counter):x}.EML.tmp")
            try:
                descriptor = os.open(temporary, _NEW_FILE_FLAGS, 0o600)
            except FileExistsError:
                continue
            try:
                view = memoryview(content)
                while view:
                    view = view[os.write(descriptor, view):]
            except BaseException:
                os.close(descriptor)
                os.unlink(temporary)
                raise
            os.close(descriptor)
            return temporary
        raise FileExistsError(f"{folder} has no free temporary file name after {_TEMPORARY_NAME_ATTEMPTS} tries")

    def add_trace_headers(self, content: bytes, *, helo: str, client_ip: str, arrival: datetime,
                          message_id: str) -> bytes:
        """Return `content` with the headers the service adds on receipt.

        A `Received:` line goes first. At the end of the header section come a `Message-ID:`
        when the message has none, and `X-OriginalArrivalTime:` unless an earlier Microsoft
        server already added one. The body is not touched.
        """
        received = (f"Received: from {helo} ([{client_ip}]) by {self.hostname} with Microsoft "
                    f"SMTPSVC({self.version});\r\n\t {self._date_text(arrival)}\r\n").encode(
                        "ascii", "surrogateescape")
        header_block, body = split_header_block(content)
        header_lines = header_block.split(b"\r\n")[:-1] if header_block else []
        added = b""
        if not any(_MESSAGE_ID_HEADER.match(line) for line in header_lines):
            # NOTE: the service's reply carries this id and mail that passed through it shows
            # the same id, so the lab adds it to the stored header. Where the service puts the
            # line among the headers is not confirmed.
            added += f"Message-ID: {message_id}\r\n".encode("ascii")
        if not any(_ARRIVAL_TIME_HEADER.match(line) for line in header_lines):
            added += original_arrival_time(arrival).encode("ascii")
        return received + header_block + added + body


def _link_without_replacing(source: str, target: str) -> bool:
    """Give the file `source` the additional name `target`; return False when `target` exists.

    A hard link never replaces an existing file, so there is no window in which two writers
    could both take one name. Where the file system has no hard links, a check followed by a
    rename leaves a small window between the two calls, and `source` is gone afterwards.
    """
    if os.name != "nt":
        try:
            os.link(source, target)
            return True
        except FileExistsError:
            return False
        except (NotImplementedError, PermissionError):
            pass
    # NOTE: the rename fallback (Windows, file systems without hard links) is not run by the
    # tests on Linux. On Windows os.rename itself refuses to replace an existing file.
    if os.path.exists(target):
        return False
    try:
        os.rename(source, target)
    except FileExistsError:
        return False
    return True


def split_header_block(content: bytes) -> tuple[bytes, bytes]:
    """Split a message into its header lines (each ending CRLF) and the rest from the blank line on.

    A message without a blank line is all header; one that starts with a blank line has none.
    """
    if content.startswith(b"\r\n"):
        return b"", content
    end = content.find(b"\r\n\r\n")
    if end == -1:
        if content and not content.endswith(b"\r\n"):
            content += b"\r\n"
        return content, b""
    return content[:end + 2], content[end + 2:]


def find_message_id(content: bytes) -> str | None:
    """Return the raw value of the message's `Message-ID:` header (unfolded), or None.

    The value keeps the whitespace after the colon, because the service echoes it as received:
    a header `Message-ID: <x@example.com>` gives ` <x@example.com>`, which the W3C log shows as
    `+<x@example.com>`.
    """
    header_block, _ = split_header_block(content)
    lines = header_block.split(b"\r\n")
    for index, line in enumerate(lines):
        if not _MESSAGE_ID_HEADER.match(line):
            continue
        value = line.split(b":", 1)[1]
        for continuation in lines[index + 1:]:
            if not continuation[:1] in (b" ", b"\t"):
                break
            value += continuation
        return value.decode("ascii", errors="surrogateescape")
    return None


def original_arrival_time(arrival: datetime) -> str:
    """Return the `X-OriginalArrivalTime:` header line (with CRLF) for an arrival instant.

    The service writes the UTC time with milliseconds as four digits, then the FILETIME as
    `[LOW:HIGH]` in upper-case hex: `02 Oct 2008 14:18:52.0941 (UTC) FILETIME=[CC16C3D0:01C92499]`.
    """
    utc = arrival.astimezone(timezone.utc)
    filetime = mailroot.filetime_from_datetime(utc)
    month = MONTH_NAMES[utc.month - 1]
    return (f"X-OriginalArrivalTime: {utc.day:02d} {month} {utc.year} {utc:%H:%M:%S}.{utc.microsecond // 1000:04d} (UTC) "
            f"FILETIME=[{filetime & 0xFFFFFFFF:08X}:{filetime >> 32:08X}]\r\n")


def _base62_digest(text: str, length: int) -> str:
    number = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")
    characters = []
    for _ in range(length):
        number, remainder = divmod(number, len(_BASE62))
        characters.append(_BASE62[remainder])
    return "".join(characters)
