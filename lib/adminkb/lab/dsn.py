"""Delivery status notifications and Badmail reasons, worded as the IIS SMTP Service writes them.

A DSN is an RFC 3464 `multipart/report` message: a text part for people, a
`message/delivery-status` part for programs, and the original message (the whole message for a
failure, only its header for a delay). The text part follows the service's wording, as quoted in
Microsoft KB 295734 (failure) and in admins' public posts (delay):

    This is an automatically generated Delivery Status Notification.

    Delivery to the following recipients failed.

           user@example.net
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from adminkb.lab.clock import rfc2822_date
from adminkb.lab.service import split_header_block

FAILURE_SUBJECT = "Delivery Status Notification (Failure)"
DELAY_SUBJECT = "Delivery Status Notification (Delay)"

_FAILURE_TEXT = ("This is an automatically generated Delivery Status Notification.\r\n\r\n"
                 "Delivery to the following recipients failed.\r\n\r\n")
_DELAY_TEXT = ("This is an automatically generated Delivery Status Notification.\r\n\r\n"
               "THIS IS A WARNING MESSAGE ONLY.\r\n\r\n"
               "YOU DO NOT NEED TO RESEND YOUR MESSAGE.\r\n\r\n"
               "Delivery to the following recipients has been delayed.\r\n\r\n")
_RECIPIENT_INDENT = "       "

# Badmail reason lines, with the service's "follow error" typo.
_BADMAIL_MESSAGE = 'Unable to deliver this message because the follow error was encountered: "{text}".'
_BADMAIL_DSN = ('Unable to deliver this Delivery Status Notification message because the follow error was '
                'encountered: "{text}".')
DSN_UNDELIVERABLE_TEXT = "This message is a delivery status notification that cannot be delivered."
# The error code public posts show with the text above.
DSN_UNDELIVERABLE_CODE = "0xC00402C7"


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's line in a DSN: RFC 3463 status, the remote reply or local reason, and the MTA."""

    recipient: str
    status: str
    diagnostic: str
    remote_mta: str | None = None


def build_dsn(*, action: str, postmaster: str, reporting_mta: str, sender: str, arrival: datetime,
              now: datetime, zone: tzinfo, message_id: str, boundary: str, original: bytes,
              recipients: Sequence[RecipientStatus], received_from: str | None = None,
              retry_until: datetime | None = None) -> bytes:
    """Return a DSN (CRLF line ends) about `original` for `sender`; `action` is "failed" or "delayed"."""
    if action not in ("failed", "delayed"):
        raise ValueError(f"action must be 'failed' or 'delayed', not {action!r}")
    failed = action == "failed"
    header = (f"From: {postmaster}\r\n"
              f"To: {sender}\r\n"
              f"Date: {rfc2822_date(now, zone)}\r\n"
              "MIME-Version: 1.0\r\n"
              f"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
              f"Message-ID: {message_id}\r\n"
              f"Subject: {FAILURE_SUBJECT if failed else DELAY_SUBJECT}\r\n"
              "\r\n"
              "This is a MIME-formatted message.\r\n"
              "Portions of this message may be unreadable without a MIME-capable mail program.\r\n"
              "\r\n")
    people = (_FAILURE_TEXT if failed else _DELAY_TEXT) + "".join(
        f"{_RECIPIENT_INDENT}{item.recipient}\r\n" for item in recipients) + "\r\n"
    machine = f"Reporting-MTA: dns;{reporting_mta}\r\n"
    if received_from:
        machine += f"Received-From-MTA: dns;{received_from}\r\n"
    machine += f"Arrival-Date: {rfc2822_date(arrival, zone)}\r\n"
    for item in recipients:
        machine += (f"\r\nFinal-Recipient: rfc822;{item.recipient}\r\n"
                    f"Action: {action}\r\n"
                    f"Status: {item.status}\r\n")
        if item.remote_mta:
            machine += f"Remote-MTA: dns;{item.remote_mta}\r\n"
        machine += f"Diagnostic-Code: {_diagnostic_type(item.diagnostic)};{_one_line(item.diagnostic)}\r\n"
        if retry_until is not None and not failed:
            machine += f"Will-Retry-Until: {rfc2822_date(retry_until, zone)}\r\n"
    if failed:
        returned_type, returned = "message/rfc822", original
    else:
        returned_type, returned = "text/rfc822-headers", split_header_block(original)[0]
    text = (header
            + f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{people}"
            + f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{machine}\r\n"
            + f"--{boundary}\r\nContent-Type: {returned_type}\r\n\r\n")
    tail = f"\r\n--{boundary}--\r\n"
    body = returned if returned.endswith(b"\r\n") or not returned else returned + b"\r\n"
    # UTF-8, not ASCII: an SMTP client may have given a recipient outside ASCII, and the report
    # must still be built for it.
    return text.encode("utf-8", "surrogateescape") + body + tail.encode("ascii")


def is_dsn(content: bytes) -> bool:
    """Return whether a message is a delivery status notification (a `multipart/report` of that type)."""
    header, _ = split_header_block(content)
    unfolded = header.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ").lower()
    return b"content-type: multipart/report" in unfolded and b"report-type=delivery-status" in unfolded


def badmail_reason(*, text: str, code: str, sender: str, dsn: bool) -> bytes:
    """Return the `.BDR` text for a message given up on: the reason, the error code and the sender."""
    first = (_BADMAIL_DSN if dsn else _BADMAIL_MESSAGE).format(text=text)
    reason = (f"{first}\r\n"
              f"The specific error code was {code}.\r\n"
              f"The message sender was {sender or '<>'}.\r\n")
    return reason.encode("ascii", errors="replace")


def _diagnostic_type(text: str) -> str:
    """Return "smtp" for a remote server's reply, else an extension type for the lab's own reason.

    RFC 3464 section 2.3.6 reserves "smtp" for SMTP replies and allows "X-" types for others.
    """
    return "smtp" if text[:3].isdigit() else "X-Local"


def _one_line(text: str) -> str:
    return " ".join(text.split())
