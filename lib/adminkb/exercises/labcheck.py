"""Lab inspections for exercise checks: SMTP sessions from client addresses, files, arrivals.

Every helper acts as an admin would on the real service: it opens a session from a client's
address and reads the reply, or reads the mailroot and what the remote servers received.
Sessions stop before DATA, so a check never queues mail.
"""

from __future__ import annotations

import email.policy
import ssl
import uuid
from email.parser import BytesParser
from pathlib import Path

from adminkb.lab import SMART_HOST_ADDRESS, ReceivedMessage, can_bind_source_address
from adminkb.smtp import probe
from adminkb.smtp.session import SessionError, SmtpSession

# Seconds for each SMTP step of a check's probe. The lab replies on loopback within milliseconds.
CHECK_TIMEOUT = 10.0

# The values an admin may enter in the Smart Host field for the company gateway: its address in
# brackets, or its name in the lab DNS.
GATEWAY_SETTINGS = (f"[{SMART_HOST_ADDRESS}]", "smarthost.lab.test")


def relay_accepted(target, client: str, mail_from: str, recipient: str) -> bool | None:  # noqa: ANN001
    """Return whether the lab accepts `recipient` from a client at `client`; None when it cannot be tried.

    The session stops after RCPT TO, so nothing is queued.
    """
    if not can_bind_source_address(client):
        return None
    result = probe(target.host, target.port, mail_from=mail_from, rcpt_to=[recipient], source_address=client,
                   timeout=CHECK_TIMEOUT)
    return recipient in result.accepted


def banner_code(target, client: str) -> int | None:  # noqa: ANN001
    """Connect from `client` and return the banner's reply code; None when the lab closes the connection first."""
    session = SmtpSession(target.host, target.port, timeout=CHECK_TIMEOUT, source_address=client)
    with session:
        try:
            session.connect()
            code = session.read_banner().code
            session.quit()
        except SessionError:
            return None
    return code


def read_stored(path: Path) -> tuple[list[str], str, str]:
    """Return a stored message file's X-Receiver recipients, decoded Subject and plain-text body."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
    recipients = [value.strip().lower() for value in parsed.get_all("X-Receiver", [])]
    part = parsed.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    return recipients, str(parsed.get("Subject", "")), body.replace("\r\n", "\n")


def arrivals(lab, message_id: str, recipient: str) -> list[ReceivedMessage]:  # noqa: ANN001 - a MailLab
    """Return the copies of message `message_id` that the lab's remote servers accepted for `recipient`."""
    recipient = recipient.lower()
    return [item for item in lab.remote.received()
            if item.message_id == message_id and recipient in (address.lower() for address in item.recipients)]


def queued_message_ids(lab) -> set[str]:  # noqa: ANN001 - a MailLab
    """Return the Message-IDs of the messages waiting in the lab's Queue."""
    return {status.message_id for status in lab.queue_status()}


def folder_writable(folder: Path) -> bool:
    """Return whether a new entry can be made in `folder`, by creating and removing an empty subfolder.

    A subfolder is used because the service sends any file that appears in Pickup.
    """
    probe_folder = folder / f".adminkb-exercise-{uuid.uuid4().hex}"
    try:
        probe_folder.mkdir()
    except OSError:
        return False
    probe_folder.rmdir()
    return True


def tls_context(lab) -> ssl.SSLContext:  # noqa: ANN001 - a MailLab
    """Return a TLS client context that trusts only the lab's own certificate."""
    return ssl.create_default_context(cafile=str(lab.certificate_file))
