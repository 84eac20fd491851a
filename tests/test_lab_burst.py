"""A burst of 1,000 messages from 20 concurrent SMTP clients: the lab loses and doubles none.

Every message carries its own Message-ID. A message counts as accepted when the lab replied
250 to its DATA; each accepted message must then be in Queue exactly once, and nothing the lab
did not accept may be there.
"""

from __future__ import annotations

import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from adminkb.lab import FixedClock, MailLab
from adminkb.lab.clock import TAIWAN_TIME

CLIENTS = 20
MESSAGES = 1000
# Seconds per SMTP step of each client.
SMTP_TIMEOUT = 30
START = datetime(2026, 3, 2, 9, 15, tzinfo=TAIWAN_TIME)


def build_message(client: int, number: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"app{client:02d}@example.com"
    message["To"] = f"user{number % 7}@example.net"
    message["Subject"] = f"Burst {client:02d}-{number:04d}"
    message["Message-ID"] = f"<burst-{client:02d}-{number:04d}@app.example.com>"
    message.set_content(f"Message {number} of client {client}.\n" + "Line of body text.\n" * 20)
    return message


def send_share(port: int, client: int, numbers: range) -> tuple[list[str], list[str]]:
    """Send the messages `numbers` over one SMTP session; return the accepted and rejected Message-IDs."""
    accepted, rejected = [], []
    with smtplib.SMTP("127.0.0.1", port, local_hostname=f"app{client:02d}.example.com",
                      timeout=SMTP_TIMEOUT) as session:
        for number in numbers:
            message = build_message(client, number)
            try:
                session.send_message(message)
            except smtplib.SMTPResponseException:
                rejected.append(message["Message-ID"])
                session.rset()
                continue
            accepted.append(message["Message-ID"])
    return accepted, rejected


def message_ids(files: list[Path]) -> list[str]:
    parser = BytesHeaderParser()
    ids = []
    for path in files:
        with path.open("rb") as handle:
            ids.append(str(parser.parse(handle)["Message-ID"]).strip())
    return ids


@pytest.mark.timeout(300)
def test_burst_loses_and_doubles_nothing(tmp_path):
    with MailLab(root=tmp_path / "lab", clock=FixedClock(START), relay_grant=["127.0.0.1"],
                 pickup_interval=None) as lab:
        shares = [range(client, MESSAGES, CLIENTS) for client in range(CLIENTS)]
        start_together = threading.Barrier(CLIENTS)

        def run(client: int) -> tuple[list[str], list[str]]:
            start_together.wait(SMTP_TIMEOUT)
            return send_share(lab.port, client, shares[client])

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            outcomes = list(pool.map(run, range(CLIENTS)))
        accepted = [message_id for ids, _ in outcomes for message_id in ids]
        rejected = [message_id for _, ids in outcomes for message_id in ids]
        queued = message_ids(lab.queue_files())

    assert rejected == []
    assert len(accepted) == MESSAGES
    assert len(queued) == len(set(queued)), "a message is in Queue twice"
    assert sorted(queued) == sorted(accepted)
