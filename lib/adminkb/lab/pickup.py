"""Pickup processing: the lab takes message files out of `mailroot\\Pickup` as the service does.

The service reads a Pickup file the way it reads SMTP DATA (Microsoft KB Q221384): a line
holding a single `.` ends the message, and one leading dot is removed from every other line.
`X-Sender:` and `X-Receiver:` lines at the top set the envelope. Without them the envelope
comes from the From, To, Cc and Bcc headers. Picked-up mail is sorted like mail received over
SMTP, without relay checks: local recipients to Drop, the others to Queue. A file that names
no recipient goes to Badmail.

Pickup never crosses an SMTP session, so it writes no line to the W3C log.
"""

from __future__ import annotations

import email.policy
import logging
import re
import threading
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from adminkb import mailroot
from adminkb.errors import InputError
from adminkb.lab.service import VirtualServer, split_header_block

log = logging.getLogger("adminkb.lab")

DEFAULT_POLL_INTERVAL = 0.2

_BCC_HEADER = re.compile(rb"\Abcc[ \t]*:", re.IGNORECASE)

# NOTE: the reason text follows the service's Badmail wording (including its "follow error"
# typo). The detail text and the error code for a Pickup file without recipients are not
# confirmed from a real .BDR file.
_NO_RECIPIENTS_REASON = ('Unable to deliver this message because the follow error was encountered: '
                         '"This message does not have any valid recipients.".')
_NO_RECIPIENTS_CODE = "0xC00402C7"


@dataclass(frozen=True)
class PickupResult:
    """The outcome for one Pickup file: the envelope used and the files the message went to."""

    source: str
    sender: str
    recipients: tuple[str, ...]
    message_id: str | None
    files: tuple[Path, ...]
    badmail: bool = False


@dataclass(frozen=True)
class PickupEnvelope:
    """A Pickup file read as the service reads it: envelope lines (if any) and the message bytes."""

    sender: str | None
    recipients: tuple[str, ...]
    content: bytes


def parse_pickup_file(data: bytes) -> PickupEnvelope:
    """Split a Pickup file into its envelope lines and the message, undoing the dot-doubling.

    Lines may end in CRLF or a bare LF. The message stops at a line holding a single dot.
    """
    sender, recipients, offset = mailroot.split_envelope(data)
    lines = data[offset:].split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    message_lines = []
    for line in lines:
        line = line.rstrip(b"\r")
        if line == b".":
            break
        message_lines.append(line[1:] if line.startswith(b".") else line)
    content = b"".join(line + b"\r\n" for line in message_lines)
    return PickupEnvelope(sender, tuple(recipients), content)


def envelope_from_message(content: bytes) -> tuple[str, list[str]]:
    """Return the sender (From) and recipients (To, Cc, Bcc) that the message's headers name."""
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(content)
    sender = ""
    recipients: list[str] = []
    try:
        from_header = headers.get("From")
        if from_header is not None and from_header.addresses:
            sender = from_header.addresses[0].addr_spec
        for name in ("To", "Cc", "Bcc"):
            for header in headers.get_all(name, []):
                recipients.extend(address.addr_spec for address in header.addresses if address.addr_spec)
    except (TypeError, ValueError, IndexError) as error:
        # The email package raises these for some malformed address headers.
        log.info("malformed address header in a Pickup file: %s", error)
    return sender, recipients


def remove_bcc(content: bytes) -> bytes:
    """Return `content` without its Bcc header lines (and their continuation lines)."""
    header_block, body = split_header_block(content)
    kept_lines: list[bytes] = []
    skipping = False
    for line in header_block.split(b"\r\n")[:-1] if header_block else []:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = _BCC_HEADER.match(line) is not None
        if not skipping:
            kept_lines.append(line + b"\r\n")
    return b"".join(kept_lines) + body


class PickupProcessor:
    """Moves the files in one Pickup folder into Drop, Queue or Badmail, one pass at a time.

    `process()` can be called from a watcher thread and from the caller's thread at once, so a
    lock keeps two passes from taking the same file.
    """

    def __init__(self, server: VirtualServer) -> None:
        self.server = server
        self._lock = threading.Lock()
        # Files that could not be read, so that a file failing on every pass is logged once.
        self._failed: set[str] = set()
        # Size and modification time of each file at the previous watcher pass.
        self._last_seen: dict[str, tuple[int, int]] = {}

    @property
    def folder(self) -> Path:
        return self.server.mailroot / mailroot.PICKUP

    def process(self, *, stop: threading.Event | None = None, settled_only: bool = False) -> list[PickupResult]:
        """Take every file out of Pickup, in name order, and return what became of each.

        Like the service, the lab takes files of any name (KB Q221384 reproduces its problem
        with a file called Message.txt), so a writer must create the file elsewhere and rename it
        in, as `adminkb.pickup.write_pickup_bytes` does. The pass ends early once `stop` is
        set. With `settled_only`, a file is taken only when its size and modification time are
        the same as at the previous such pass, so a file still being copied in is left alone.
        """
        with self._lock:
            waiting = self._waiting_files()
            if settled_only:
                waiting = self._settled(waiting)
            results = []
            for path in waiting:
                if stop is not None and stop.is_set():
                    break
                result = self._process_file(path)
                if result is not None:
                    results.append(result)
            return results

    def _settled(self, paths: list[Path]) -> list[Path]:
        """Return the files of `paths` whose size and modification time did not change since the last call."""
        seen: dict[str, tuple[int, int]] = {}
        settled = []
        for path in paths:
            try:
                status = path.stat()
            except OSError:
                continue
            seen[path.name] = (status.st_size, status.st_mtime_ns)
            if self._last_seen.get(path.name) == seen[path.name]:
                settled.append(path)
        self._last_seen = seen
        return settled

    def _waiting_files(self) -> list[Path]:
        try:
            entries = sorted(self.folder.iterdir(), key=lambda entry: entry.name)
        except OSError as error:
            log.error("cannot list the Pickup folder %s: %s", self.folder, error)
            return []
        # NOTE: whether the service waits while another program still has a Pickup file open
        # for writing is not documented. The watcher waits until a file has not changed for
        # one poll interval, so a writer that pauses longer than that still loses the rest.
        return [entry for entry in entries if entry.is_file()]

    def _process_file(self, path: Path) -> PickupResult | None:
        try:
            data = path.read_bytes()
        except OSError as error:
            if path.name not in self._failed:
                self._failed.add(path.name)
                log.error("cannot read Pickup file %s, leaving it for the next pass: %s", path.name, error)
            return None
        self._failed.discard(path.name)

        parsed = parse_pickup_file(data)
        header_sender, header_recipients = envelope_from_message(parsed.content)
        sender = parsed.sender if parsed.sender is not None else header_sender
        recipients = list(parsed.recipients) if parsed.recipients else _unique(header_recipients)
        content = parsed.content
        if not parsed.recipients:
            # NOTE: the lab removes Bcc lines when it takes the recipients from the headers,
            # so that To and Cc recipients do not see them. Whether the service does is not confirmed.
            content = remove_bcc(content)

        try:
            result = self._store(path, data, sender, recipients, content)
            path.unlink()
        except OSError as error:
            # NOTE: a failure between writing the new file and removing the Pickup file would
            # leave the message in both places, and the next pass would send it again.
            log.error("failed to process Pickup file %s, leaving it for the next pass: %s", path.name, error)
            return None
        return result

    def _store(self, path: Path, data: bytes, sender: str, recipients: list[str], content: bytes) -> PickupResult:
        if not recipients:
            return self._to_badmail(path, data, sender)
        try:
            stored = self.server.store_picked_up(sender=sender, recipients=recipients, content=content)
        except InputError as error:
            # An envelope line with a stray CR cannot be written back as an envelope.
            log.warning("Pickup file %s has an unusable envelope: %s", path.name, error)
            return self._to_badmail(path, data, sender)
        log.info("picked up %s from Pickup as %s, sender %s, %d recipients: %s", path.name,
                 stored.message_id, sender or "<>", len(recipients),
                 ", ".join(f"{file.parent.name}\\{file.name}" for file in stored.files))
        return PickupResult(path.name, sender, tuple(recipients), stored.message_id, stored.files)

    def _to_badmail(self, path: Path, data: bytes, sender: str) -> PickupResult:
        reason = (f"{_NO_RECIPIENTS_REASON}\r\n"
                  f"The specific error code was {_NO_RECIPIENTS_CODE}.\r\n"
                  f"The message sender was {sender or '<>'}.\r\n")
        files = self.server.store_badmail(content=data, reason=reason.encode("ascii", errors="replace"))
        log.warning("Pickup file %s names no recipient and went to Badmail as %s", path.name, files[0].name)
        return PickupResult(path.name, sender, (), None, files, badmail=True)


class PickupWatcher:
    """A thread that runs `PickupProcessor.process()` every `interval` seconds until stopped."""

    def __init__(self, processor: PickupProcessor, interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self.processor = processor
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="adminkb-lab-pickup", daemon=True)
        self._thread.start()
        log.info("watching %s every %.2f s", self.processor.folder, self.interval)

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the Pickup watcher did not stop within %s s", timeout)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                # A stop ends the pass between two files, so that stop() returns only when no
                # file is being taken, and a lab started next on the same mailroot finds
                # nothing half done.
                self.processor.process(stop=self._stop, settled_only=True)
            except Exception:
                # One bad pass must not end the watcher; the next pass tries again.
                log.exception("a Pickup pass failed in the lab")


def _unique(addresses: list[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            unique.append(address)
    return unique
