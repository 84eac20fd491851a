"""A burst of 1,000 messages from 20 concurrent SMTP clients: the lab loses and doubles none.

Every message carries its own Message-ID. A message counts as accepted when the lab replied
250 to its DATA. With delivery off, each accepted message must then be in Queue exactly once,
and nothing the lab did not accept may be there. With the delivery runner on during the burst,
each accepted message must reach the remote receiver exactly once.
"""

from __future__ import annotations

import smtplib
import threading
import time
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
# The background delivery: a pass every RUNNER_INTERVAL seconds, each moving the lab clock by
# RUNNER_INTERVAL * RUNNER_COMPRESSION seconds.
RUNNER_INTERVAL = 0.05
RUNNER_COMPRESSION = 600
# Seconds the runner may take to empty the Queue after the burst. It took about 4 s on a 2-core
# machine; the margin covers a loaded one.
DRAIN_TIMEOUT = 120


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


def send_burst(lab: MailLab) -> tuple[list[str], list[str]]:
    """Send MESSAGES messages from CLIENTS concurrent sessions; return the accepted and rejected Message-IDs."""
    shares = [range(client, MESSAGES, CLIENTS) for client in range(CLIENTS)]
    start_together = threading.Barrier(CLIENTS)

    def run(client: int) -> tuple[list[str], list[str]]:
        start_together.wait(SMTP_TIMEOUT)
        return send_share(lab.port, client, shares[client])

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        outcomes = list(pool.map(run, range(CLIENTS)))
    accepted = [message_id for ids, _ in outcomes for message_id in ids]
    rejected = [message_id for _, ids in outcomes for message_id in ids]
    return accepted, rejected


@pytest.mark.timeout(300)
def test_burst_loses_and_doubles_nothing(tmp_path):
    with MailLab(root=tmp_path / "lab", clock=FixedClock(START), relay_grant=["127.0.0.1"],
                 pickup_interval=None) as lab:
        accepted, rejected = send_burst(lab)
        queued = message_ids(lab.queue_files())

    assert rejected == []
    assert len(accepted) == MESSAGES
    assert len(queued) == len(set(queued)), "a message is in Queue twice"
    assert sorted(queued) == sorted(accepted)


@pytest.mark.timeout(300)
def test_burst_while_runner_delivers(tmp_path):
    with MailLab(root=tmp_path / "lab", clock=FixedClock(START), relay_grant=["127.0.0.1"],
                 pickup_interval=None) as lab:
        lab.start_delivery_runner(compression=RUNNER_COMPRESSION, interval=RUNNER_INTERVAL)
        try:
            accepted, rejected = send_burst(lab)
            delivered_during_burst = len(lab.remote.received())
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while lab.queue_files() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            lab.stop_delivery_runner()
        queued = message_ids(lab.queue_files())
        delivered = [str(item.message_id).strip() for item in lab.remote.received()]
        failures = [record for record in lab.delivery_records if record.outcome != "delivered"]

    assert rejected == []
    assert len(accepted) == MESSAGES
    # The runner must have delivered while the clients were still sending.
    assert delivered_during_burst > 0
    assert queued == [], f"{len(queued)} messages still in Queue after {DRAIN_TIMEOUT} s"
    assert failures == []
    assert len(delivered) == len(set(delivered)), "a message was delivered twice"
    assert sorted(delivered) == sorted(accepted)
