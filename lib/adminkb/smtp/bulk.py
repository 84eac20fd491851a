"""Send many messages politely: in batches, one SMTP session per batch, under a rate limit.

A server that gets hundreds of messages at once falls behind, and a receiving server may
reply to a flood with `421` and close the connection. `send_batches()` spaces the messages at
most `rate` per second, opens one session per batch of `batch_size` messages, and pauses
`pause` seconds between batches. It stops at the first connection failure or `421` reply, so
the rest is reported as not sent instead of being pushed at a server that rejects it.
Every message is counted by its Message-ID, so the result can be matched with the server's
Queue and log.

    result = send_batches(messages, host="127.0.0.1", port=2525, batch_size=20, rate=10)
    result.table()
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import smtplib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.smtp.addresses import validate_host
from adminkb.smtp.session import DEFAULT_EHLO_NAME

log = logging.getLogger("adminkb.smtp.bulk")

DEFAULT_BATCH_SIZE = 50
# Messages per second; a burst of hundreds at once is what makes a server fall behind.
DEFAULT_RATE = 10.0
DEFAULT_TIMEOUT = 10.0
MAX_BATCH_SIZE = 1000
MAX_RATE = 1000.0
MAX_PAUSE = 3600.0
# The reply code with which a server closes the session because it is overloaded or refusing.
SERVICE_NOT_AVAILABLE = 421


@dataclass
class BulkResult:
    """The outcome of a bulk run: Message-IDs accepted, rejected with the reply, and not sent."""

    accepted: list[str] = field(default_factory=list)
    # (Message-ID, reply text such as "550 5.7.1 Unable to relay for ...")
    rejected: list[tuple[str, str]] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)
    batches: int = 0
    # Why the run stopped early (a connection failure or a 421 reply), else None.
    stopped_by: str | None = None
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return len(self.accepted) + len(self.rejected) + len(self.unsent)

    def table(self) -> pd.DataFrame:
        """Return the counts as a two-column table in the user's language."""
        rows = [
            (message("bulk.row_total"), str(self.total)),
            (message("bulk.row_batches"), str(self.batches)),
            (message("bulk.row_accepted"), str(len(self.accepted))),
            (message("bulk.row_rejected"), str(len(self.rejected))),
            (message("bulk.row_unsent"), str(len(self.unsent))),
            (message("bulk.row_stopped_by"), self.stopped_by or "-"),
        ]
        return pd.DataFrame(rows, columns=[message("bulk.column_item"), message("bulk.column_value")])

    def rejected_table(self) -> pd.DataFrame:
        """Return each rejected message's Message-ID and the server's reply."""
        return pd.DataFrame(self.rejected, columns=[message("bulk.column_message_id"), message("bulk.column_reply")])


def send_batches(messages: Iterable[EmailMessage], *, host: str, port: int = 25,
                 batch_size: int = DEFAULT_BATCH_SIZE, rate: float = DEFAULT_RATE, pause: float = 0.0,
                 timeout: float = DEFAULT_TIMEOUT, ehlo_name: str = DEFAULT_EHLO_NAME,
                 source_address: str | None = None, progress: bool = True,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> BulkResult:
    """Send `messages` to `host`:`port` in batches under a rate limit and return what happened.

    The envelope comes from each message's From and To/Cc headers (smtplib's `send_message`).
    A message without a Message-ID gets one, written into the message object, so that every
    message can be counted. `timeout` is the seconds allowed for each SMTP step. `sleep` and
    `monotonic` are the clock, replaceable in tests. Raises InputError for unusable settings
    before anything is sent.
    """
    host = validate_host(host)
    port = _checked_number("port", port, 1, 65535, integer=True)
    batch_size = _checked_number("batch_size", batch_size, 1, MAX_BATCH_SIZE, integer=True)
    rate = _checked_number("rate", rate, 0.001, MAX_RATE)
    pause = _checked_number("pause", pause, 0, MAX_PAUSE)
    timeout = _checked_number("timeout", timeout, 0.1, 3600)
    queue = list(messages)
    for item in queue:
        if not isinstance(item, EmailMessage):
            raise InputError("bulk.not_a_message", value=type(item).__name__, next_key="bulk.not_a_message_next")
        if item["Message-ID"] is None:
            # make_msgid calls socket.getfqdn() unless given a domain, which can stall without DNS.
            item["Message-ID"] = email.utils.make_msgid(idstring="adminkb-bulk", domain=ehlo_name)

    result = BulkResult()
    started = monotonic()
    interval = 1.0 / rate
    sent_count = 0
    batch_count = math.ceil(len(queue) / batch_size)
    log.info("bulk run of %d messages to %s port %d: %d batches of up to %d, %.3g per second",
             len(queue), host, port, batch_count, batch_size, rate)
    with tqdm(total=len(queue), disable=not progress, desc=message("bulk.progress_label"),
              unit=message("bulk.progress_unit")) as bar:
        for batch_index in range(batch_count):
            batch = queue[batch_index * batch_size:(batch_index + 1) * batch_size]
            if batch_index > 0 and pause > 0:
                sleep(pause)
            result.batches += 1
            try:
                session = smtplib.SMTP(host, port, local_hostname=ehlo_name, timeout=timeout,
                                       source_address=(source_address, 0) if source_address else None)
            except (OSError, smtplib.SMTPException) as error:
                _stop(result, queue[batch_index * batch_size:], f"{type(error).__name__}: {error}", host, port)
                break
            stopped = False
            with session:
                for position, item in enumerate(batch):
                    # Space the messages over the whole run, so pauses and slow replies are not made up for by a burst.
                    due = started + sent_count * interval
                    wait = due - monotonic()
                    if wait > 0:
                        sleep(wait)
                    sent_count += 1
                    outcome = _send_one(session, item)
                    bar.update(1)
                    if outcome is None:
                        result.accepted.append(str(item["Message-ID"]))
                        continue
                    code, reply = outcome
                    if code == SERVICE_NOT_AVAILABLE or code is None:
                        result.unsent.append(str(item["Message-ID"]))
                        rest = batch[position + 1:] + queue[(batch_index + 1) * batch_size:]
                        _stop(result, rest, reply, host, port)
                        stopped = True
                        break
                    result.rejected.append((str(item["Message-ID"]), reply))
            if stopped:
                break
    result.seconds = monotonic() - started
    log.info("bulk run to %s port %d ended: %d accepted, %d rejected, %d not sent in %.1f s",
             host, port, len(result.accepted), len(result.rejected), len(result.unsent), result.seconds)
    return result


def _send_one(session: smtplib.SMTP, item: EmailMessage) -> tuple[int | None, str] | None:
    """Send one message; return None when accepted, else the reply code (None for a lost connection) and text."""
    try:
        refused = session.send_message(item)
    except smtplib.SMTPRecipientsRefused as error:
        code, text = next(iter(error.recipients.values()))
        _reset(session)
        return code, _reply_text(code, text)
    except smtplib.SMTPResponseException as error:
        _reset(session)
        return error.smtp_code, _reply_text(error.smtp_code, error.smtp_error)
    except (smtplib.SMTPServerDisconnected, OSError) as error:
        return None, f"{type(error).__name__}: {error}"
    if refused:
        # Some recipients were refused and the rest accepted: the message went out.
        log.info("message %s accepted for some recipients; rejected recipients: %s", item["Message-ID"], refused)
    return None


def _reset(session: smtplib.SMTP) -> None:
    try:
        session.rset()
    except (smtplib.SMTPException, OSError) as error:
        log.info("RSET after a rejected message failed: %s", error)


def _reply_text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{code} {text}".replace("\n", " ")


def _stop(result: BulkResult, rest: list[EmailMessage], reason: str, host: str, port: int) -> None:
    result.unsent.extend(str(item["Message-ID"]) for item in rest)
    result.stopped_by = reason
    log.warning("bulk run to %s port %d stopped, %d messages not sent: %s", host, port, len(rest), reason)


def _checked_number(name: str, value: object, low: float, high: float, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        _invalid(name, value)
    if not math.isfinite(value) or not low <= value <= high:
        raise InputError("bulk.out_of_range", value=value, name=name, low=low, high=high,
                         next_key="bulk.out_of_range_next")
    return int(value) if integer else float(value)


def _invalid(name: str, value: object):
    raise InputError("bulk.invalid_setting", value=value, name=name, next_key="bulk.invalid_setting_next")


def build_messages(count: int, *, sender: str, recipients: list[str], subject: str, body: str,
                   id_domain: str = "example.com") -> list[EmailMessage]:
    """Build `count` numbered messages, one per recipient in turn, each with its own Message-ID.

    The subject and body get the message's number (` #0001`), and the Message-ID is
    `<bulk-0001@id_domain>`, so the same call gives the same messages every time.
    """
    count = _checked_number("count", count, 1, 100_000, integer=True)
    if not recipients:
        raise InputError("bulk.no_recipients", next_key="bulk.no_recipients_next")
    messages = []
    for number in range(1, count + 1):
        item = EmailMessage()
        item["From"] = sender
        item["To"] = recipients[(number - 1) % len(recipients)]
        item["Subject"] = f"{subject} #{number:04d}"
        item["Message-ID"] = f"<bulk-{number:04d}@{id_domain}>"
        item.set_content(f"{body}\n\n#{number:04d}\n")
        messages.append(item)
    return messages


@dataclass
class QueueWatch:
    """Queue file counts seen while waiting for a Queue folder to drain."""

    # (seconds since the watch began, message files in Queue)
    samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        """The message files in Queue at the last look."""
        return self.samples[-1][1] if self.samples else 0

    @property
    def drained(self) -> bool:
        return self.remaining == 0

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([(f"{seconds:.1f}", files) for seconds, files in self.samples],
                            columns=[message("bulk.column_seconds"), message("bulk.column_queue_files")])


def count_queue_files(folder: str | os.PathLike[str] | None) -> int:
    """Return the number of message files (`*.EML`, any case) in a Queue folder; raise InputError when it is missing."""
    if folder is None:
        raise InputError("bulk.queue_not_given", next_key="bulk.queue_not_found_next")
    path = Path(folder)
    if not path.is_dir():
        raise InputError("bulk.queue_not_found", value=str(path), next_key="bulk.queue_not_found_next")
    return sum(1 for entry in path.iterdir() if entry.suffix.lower() == ".eml" and entry.is_file())


def watch_queue(folder: str | os.PathLike[str] | None, *, interval: float = 5.0, timeout: float = 300.0,
                progress: bool = True, sleep: Callable[[float], None] = time.sleep,
                monotonic: Callable[[], float] = time.monotonic) -> QueueWatch:
    """Count the files in a Queue folder every `interval` seconds until it is empty or `timeout` passes.

    Only reads the folder, so it is safe against a live server's `mailroot\\Queue` (a share or
    a copy). The progress bar counts down from the files found at the start.
    """
    interval = _checked_number("interval", interval, 0.01, 3600)
    timeout = _checked_number("timeout", timeout, 0, 86_400)
    watch = QueueWatch()
    started = monotonic()
    first = count_queue_files(folder)
    watch.samples.append((0.0, first))
    with tqdm(total=first, disable=not progress, desc=message("bulk.queue_progress_label"),
              unit=message("bulk.progress_unit")) as bar:
        while watch.remaining > 0 and monotonic() - started < timeout:
            sleep(min(interval, max(0.0, timeout - (monotonic() - started))))
            files = count_queue_files(folder)
            bar.update(max(0, min(first, watch.remaining) - files))
            watch.samples.append((monotonic() - started, files))
    log.info("Queue %s: %d files at the start, %d after %.1f s", folder, first, watch.remaining,
             monotonic() - started)
    return watch
