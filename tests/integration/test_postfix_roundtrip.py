"""Pickup messages delivered by the lab to a real Postfix arrive intact: Chinese headers, dot lines.

The message is written by `adminkb.pickup`, picked up by the lab, and delivered by the lab's
outbound delivery to a private Postfix on 127.0.0.1, reached as the Smart Host `[127.0.0.1]`
(no DNS lookup) through the lab's port table. Postfix listens only on addresses that an
interface carries, and Linux's loopback interface carries 127.0.0.1 alone. Postfix hands each message for its domain to a `pipe` service that runs `tee`
into a folder, so the test reads the message exactly as Postfix delivered it.

Postfix keeps message lines without their CR (its queue records carry no line ends), so the
delivered file has LF line ends: the body is compared line by line, byte for byte.
"""

from __future__ import annotations

import email
import email.policy
import os
import pwd
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from adminkb import pickup
from adminkb.lab import FixedClock, MailLab

from .postfix import PrivatePostfix

pytestmark = [
    pytest.mark.peer("postfix"),
    pytest.mark.peer("loopback-aliases"),
    pytest.mark.timeout(120),
]

POSTFIX_ADDRESS = "127.0.0.1"
POSTFIX_DOMAIN = "postfix.test"
START = datetime(2026, 3, 2, 1, 15, tzinfo=timezone.utc)
# Seconds to wait for Postfix's queue manager to run the pipe delivery.
DELIVERY_TIMEOUT = 20.0
SUBJECT = "每日報表：營業額與庫存"
SENDER = ("王小明", "app@example.com")
RECIPIENT = ("陳美玲（會計部）", f"meiling@{POSTFIX_DOMAIN}")
BODY = "各位好：\n\n附上今日報表。\n.\n..第二段以點開頭\n謝謝。\n"
# A 7bit body keeps its lines as they are, so lines of one dot and lines that start with dots
# reach the SMTP session to Postfix and need dot-stuffing there. The Chinese body above is
# base64, in which no line starts with a dot.
DOT_LINES_BODY = ("Nightly backup report\n.\n..\n...\n.hidden line\n..two dots\n. space after the dot\n"
                  "Failed jobs: 2\n.\nend of report\n")


@pytest.fixture
def delivered_folder():
    """A folder the pipe service's user (nobody) can write, outside pytest's 0700 temp tree."""
    folder = Path(tempfile.mkdtemp(prefix="adminkb-postfix-delivered-"))
    nobody = pwd.getpwnam("nobody")
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postfix_mx(delivered_folder, tmp_path):
    """A private Postfix on 127.0.0.1 that delivers mail for postfix.test into `delivered_folder`."""
    instance = PrivatePostfix(
        mynetworks=(), local_domain=POSTFIX_DOMAIN, host=POSTFIX_ADDRESS, log_folder=tmp_path / "postfix-logs",
        settings={"local_transport": "savefile"},
        extra_services=[f"savefile unix - n n - - pipe user=nobody argv=/usr/bin/tee "
                        f"{delivered_folder}/${{queue_id}}.eml"])
    with instance:
        yield instance


def wait_for_file(folder: Path, timeout: float) -> Path | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(folder.glob("*.eml"))
        if files:
            # tee may still be writing; the message is complete once the size stops changing.
            size = files[0].stat().st_size
            time.sleep(0.2)
            if files[0].stat().st_size == size:
                return files[0]
        time.sleep(0.05)
    return None


def test_dot_lines_reach_postfix_intact(postfix_mx, delivered_folder):
    message = pickup.compose_message(SENDER, [RECIPIENT], "備份報表", DOT_LINES_BODY,
                                     date=START, message_id="<roundtrip-dots@example.com>")
    assert message["Content-Transfer-Encoding"] == "7bit"
    with MailLab(clock=FixedClock(START), pickup_interval=None) as lab:
        written = pickup.write_pickup_file(lab.pickup_dir, message, name="dots.eml").read_bytes()
        assert b"\r\n..\r\n" in written
        assert b"\r\n..hidden line\r\n" in written
        assert b"\r\n...two dots\r\n" in written
        [result] = lab.process_pickup()
        [queued] = result.files
        queued_body = queued.read_bytes().split(b"\r\n\r\n", 1)[1]
        # The lab removed the doubling, so the queued body has the lines the SMTP session must stuff.
        assert queued_body.startswith(b"Nightly backup report\r\n.\r\n..\r\n...\r\n.hidden line\r\n")

        lab.remote.map_port25(POSTFIX_ADDRESS, postfix_mx.port)
        lab.set_smart_host(f"[{POSTFIX_ADDRESS}]")
        records = lab.deliver_queue()
        assert [(record.outcome, record.address) for record in records] == [("delivered", POSTFIX_ADDRESS)], \
            postfix_mx.maillog()

    arrived = wait_for_file(delivered_folder, DELIVERY_TIMEOUT)
    assert arrived is not None, f"{sorted(delivered_folder.iterdir())}\n{postfix_mx.maillog()}"
    data = arrived.read_bytes()
    delivered_body = data.split(b"\n\n", 1)[1]
    assert delivered_body == DOT_LINES_BODY.encode("ascii")
    assert delivered_body == queued_body.replace(b"\r\n", b"\n")
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == "備份報表"
    assert parsed["Message-ID"] == "<roundtrip-dots@example.com>"
    assert parsed.get_content() == DOT_LINES_BODY
    logged = postfix_mx.wait_for_log(r"status=sent \(delivered via savefile service")
    assert logged is not None, postfix_mx.maillog()


def test_pickup_message_reaches_postfix_intact(postfix_mx, delivered_folder):
    message = pickup.compose_message(SENDER, [RECIPIENT], SUBJECT, BODY,
                                     date=START, message_id="<roundtrip-1@example.com>")
    with MailLab(clock=FixedClock(START), pickup_interval=None) as lab:
        pickup.write_pickup_file(lab.pickup_dir, message, name="roundtrip.eml")
        [result] = lab.process_pickup()
        [queued] = result.files
        assert queued.parent.name == "Queue"
        queued_body = queued.read_bytes().split(b"\r\n\r\n", 1)[1]

        lab.remote.map_port25(POSTFIX_ADDRESS, postfix_mx.port)
        lab.set_smart_host(f"[{POSTFIX_ADDRESS}]")
        records = lab.deliver_queue()
        assert [(record.outcome, record.address) for record in records] == [("delivered", POSTFIX_ADDRESS)], \
            postfix_mx.maillog()
        assert lab.queue_files() == []
        log_text = lab.log_files()[-1].read_text(encoding="cp950")
        assert f" {POSTFIX_ADDRESS} OutboundConnectionCommand " in log_text

    arrived = wait_for_file(delivered_folder, DELIVERY_TIMEOUT)
    assert arrived is not None, f"{sorted(delivered_folder.iterdir())}\n{postfix_mx.maillog()}"
    data = arrived.read_bytes()
    assert b"\r" not in data
    delivered_body = data.split(b"\n\n", 1)[1]
    assert delivered_body == queued_body.replace(b"\r\n", b"\n")

    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == SUBJECT
    assert parsed["From"].addresses[0].display_name == SENDER[0]
    assert parsed["From"].addresses[0].addr_spec == SENDER[1]
    assert parsed["To"].addresses[0].display_name == RECIPIENT[0]
    assert parsed["Message-ID"] == "<roundtrip-1@example.com>"
    assert parsed.get_content().replace("\r\n", "\n") == BODY
    assert parsed["Received"].startswith("from mail01.example.com")
    assert "[127.0.0.25]" in parsed["Received"]
    logged = postfix_mx.wait_for_log(r"status=sent \(delivered via savefile service")
    assert logged is not None, postfix_mx.maillog()
