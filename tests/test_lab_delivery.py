"""The lab's outbound delivery: MX routing, retries, delay notices, NDRs, Badmail and the W3C log."""

import email
import email.policy
import smtplib
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adminkb import mailroot
from adminkb.errors import InputError, LabError
from adminkb.lab import FixedClock, MailLab
from adminkb.lab import dsn
from adminkb.lab.delivery import _arrival_from_name
from adminkb.lab.service import BDP_MAGIC
from adminkb.w3c import read_w3c

START = datetime(2026, 3, 2, 1, 15, tzinfo=timezone.utc)


@pytest.fixture
def lab():
    with MailLab(clock=FixedClock(START), pickup_interval=None, relay_grant=["127.0.0.1"]) as running:
        yield running


def send(lab, recipients, *, sender="app@example.com", message_id="<m1@example.com>", body="hello\r\n"):
    """Send one message into the lab over SMTP and return its content as sent."""
    recipients = [recipients] if isinstance(recipients, str) else list(recipients)
    content = (f"From: {sender or 'postmaster@example.net'}\r\nTo: {', '.join(recipients)}\r\n"
               f"Subject: test\r\nMessage-ID: {message_id}\r\n\r\n{body}").encode()
    with smtplib.SMTP(lab.host, lab.port, local_hostname="app01", timeout=5) as client:
        client.sendmail(sender, recipients, content)
    return content


def outcomes(records):
    return [(record.recipient, record.outcome) for record in records]


def parse(path):
    """Parse a mailroot file; its X-Sender and X-Receiver lines read as header fields."""
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def test_delivery_reaches_mx_with_body_intact(lab):
    content = send(lab, "user@example.net", body="line 1\r\n.starts with a dot\r\n")
    records = lab.deliver_queue()
    assert outcomes(records) == [("user@example.net", "delivered")]
    assert records[0].host == "mx.example.net"
    assert records[0].address == "127.0.0.23"
    [arrived] = lab.remote.received()
    assert arrived.client_ip == "127.0.0.25"
    assert arrived.helo == "mail01.example.com"
    assert arrived.sender == "app@example.com"
    assert arrived.content.endswith(content[content.index(b"\r\n\r\n"):])
    assert arrived.content.startswith(b"Received: from app01 ([127.0.0.1]) by mail01.example.com")
    assert lab.queue_files() == []


def test_outbound_w3c_lines_as_service_client(lab):
    send(lab, "user@example.net")
    lab.deliver_queue()
    lines = lab.log_files()[-1].read_text(encoding="cp950").splitlines()
    outbound = [line.split(" ") for line in lines if " Outbound" in line]
    assert outbound[0][2] == "127.0.0.23"
    assert outbound[0][3] == "OutboundConnectionResponse"
    assert outbound[0][7] == "25"
    assert outbound[0][8] == "-"
    assert outbound[0][10].startswith("220+mx.example.net")
    assert outbound[0][11] == "0"
    commands = [(fields[8], fields[10]) for fields in outbound if fields[3] == "OutboundConnectionCommand"]
    assert commands[0] == ("EHLO", "mail01.example.com")
    assert commands[1][0] == "MAIL"
    assert commands[1][1].startswith("FROM:<app@example.com>+SIZE=")
    assert commands[2] == ("RCPT", "TO:<user@example.net>")
    assert commands[3] == ("DATA", "-")
    assert commands[4] == ("QUIT", "-")
    assert all(fields[11] == "0" for fields in outbound)
    responses = [fields[10] for fields in outbound if fields[3] == "OutboundConnectionResponse"]
    assert responses[-3].startswith("354+")
    assert responses[-2].startswith("250+2.0.0+Ok")
    assert responses[-1].startswith("221")


def test_outbound_lines_read_by_w3c_reader(lab):
    send(lab, "user@example.net")
    lab.deliver_queue()
    frame = read_w3c(lab.log_files()[-1])
    outbound = frame[frame["c-ip"] == "127.0.0.23"]
    assert set(outbound["cs-username"]) == {"OutboundConnectionCommand", "OutboundConnectionResponse"}
    assert list(outbound["s-port"].unique()) == [25]
    assert list(outbound["sc-status"].unique()) == [0]
    commands = outbound[outbound["cs-username"] == "OutboundConnectionCommand"]
    assert list(commands["cs-method"]) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert frame.attrs.get("skipped", []) == []


def test_mx_preference_falls_back_to_second(lab):
    send(lab, "user@backup.lab.test")
    records = lab.deliver_queue()
    assert outcomes(records) == [("user@backup.lab.test", "delivered")]
    assert records[0].host == "mx.example.net"


def test_implicit_mx_uses_domain_address(lab):
    send(lab, "user@implicit.lab.test")
    records = lab.deliver_queue()
    assert outcomes(records) == [("user@implicit.lab.test", "delivered")]
    assert records[0].address == "127.0.0.24"


@pytest.mark.parametrize("recipient, status", [("user@nomail.lab.test", "5.4.4"), ("user@nullmx.lab.test", "5.1.10"),
                                               ("user@nosuch.lab.test", "5.1.2"),
                                               ("nosuchuser@example.net", "5.1.1")])
def test_permanent_failure_sends_ndr_at_once(lab, recipient, status):
    original = send(lab, recipient, message_id="<lost@example.com>")
    records = lab.deliver_queue()
    assert outcomes(records) == [(recipient, "failed"), (recipient, "ndr")]
    assert lab.queue_files() == []
    [ndr_file] = lab.drop_files()
    ndr = parse(ndr_file)
    assert ndr["Subject"] == "Delivery Status Notification (Failure)"
    assert ndr["To"] == "app@example.com"
    assert ndr.get_content_type() == "multipart/report"
    assert ndr.get_param("report-type") == "delivery-status"
    text, report, returned = ndr.iter_parts()
    assert "Delivery to the following recipients failed." in text.get_content()
    assert recipient in text.get_content()
    assert f"Status: {status}" in report.as_string()
    assert f"Final-Recipient: rfc822;{recipient}" in report.as_string()
    assert "Action: failed" in report.as_string()
    inner = returned.get_content()
    assert inner["Message-ID"] == "<lost@example.com>"
    assert b"Content-Type: message/rfc822\r\n\r\nReceived: from app01" in ndr_file.read_bytes()
    assert original.split(b"\r\n\r\n", 1)[1] + b"\r\n--" in ndr_file.read_bytes()
    assert ndr_file.read_bytes().startswith(b"X-Sender: <>\r\nX-Receiver: app@example.com\r\n")


def test_greylisted_message_delivered_on_retry(lab):
    send(lab, "user@grey.lab.test")
    first = lab.deliver_queue()
    assert outcomes(first) == [("user@grey.lab.test", "deferred")]
    assert first[0].reply.startswith("451 4.7.1")
    assert first[0].next_attempt == START + timedelta(minutes=15)
    assert len(lab.queue_files()) == 1
    assert lab.advance(minutes=14) == []
    retried = lab.advance(minutes=1)
    assert outcomes(retried) == [("user@grey.lab.test", "delivered")]
    assert retried[0].time == START + timedelta(minutes=15)
    assert lab.queue_files() == []


def test_retry_schedule_delay_notice_and_expiry(lab):
    send(lab, "user@blocked.lab.test", message_id="<stuck@example.com>")
    records = lab.deliver_queue() + lab.advance(minutes=2880 + 240)
    deferred = [record.time - START for record in records if record.outcome == "deferred"]
    minutes = [int(delta.total_seconds() // 60) for delta in deferred]
    assert minutes[:6] == [0, 15, 45, 105, 345, 585]
    assert all(later - earlier == 240 for earlier, later in zip(minutes[3:], minutes[4:]))
    notices = [record for record in records if record.outcome == "delay_notice"]
    assert len(notices) == 1
    assert notices[0].time - START >= timedelta(minutes=720)
    [expired] = [record for record in records if record.outcome == "expired"]
    assert expired.time - START >= timedelta(minutes=2880)
    assert expired.time - START < timedelta(minutes=2880 + 240)
    assert lab.queue_files() == []
    subjects = sorted(parse(path)["Subject"] for path in lab.drop_files())
    assert subjects == ["Delivery Status Notification (Delay)", "Delivery Status Notification (Failure)"]


def test_expiry_reason_in_reader_language(lab):
    send(lab, "user@blocked.lab.test", message_id="<old@example.com>")
    records = lab.deliver_queue() + lab.advance(minutes=2880 + 240)
    [expired] = [record for record in records if record.outcome == "expired"]
    english = ("The message expired in the queue: delivery was retried for too long. "
               "The remote server did not respond to a connection attempt.")
    assert expired.reply == english
    assert expired.reply_text("en") == english
    assert expired.reply_text("zh-TW") == "郵件在 Queue 中逾時：重試傳遞的時間太久了。遠端伺服器沒有回應連線要求。"
    [report] = [path.read_bytes() for path in lab.drop_files() if b"(Failure)" in path.read_bytes()]
    assert f"Diagnostic-Code: X-Local;{english}".encode() in report


def test_lab_reasons_written_to_files_in_english(lab, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    send(lab, "user@nomail.lab.test", message_id="<c@example.com>")
    records = lab.deliver_queue()
    [failed] = [record for record in records if record.outcome == "failed"]
    assert failed.reply == "The destination has no MX record and no address record."
    assert failed.reply_text() == "目的地沒有 MX 記錄，也沒有位址記錄。"
    texts = [path.read_bytes() for path in lab.drop_files()]
    assert any(b"Diagnostic-Code: X-Local;The destination has no MX record and no address record." in text
               for text in texts)


def test_remote_reply_kept_verbatim(lab):
    send(lab, "nosuchuser@example.net", message_id="<d@example.com>")
    records = lab.deliver_queue()
    [failed] = [record for record in records if record.outcome == "failed"]
    assert failed.reason is None
    assert failed.reply.startswith("550 5.1.1 <nosuchuser@example.net>")
    assert failed.reply_text("zh-TW") == failed.reply
    assert failed.reply_text("en") == failed.reply


def test_delay_notice_lists_recipient_and_headers_only(lab):
    send(lab, "user@blocked.lab.test", message_id="<slow@example.com>", body="secret body\r\n")
    lab.deliver_queue()
    lab.advance(minutes=720 + 240)
    [notice_file] = lab.drop_files()
    notice = parse(notice_file)
    text, report, returned = notice.iter_parts()
    assert "THIS IS A WARNING MESSAGE ONLY." in text.get_content()
    assert "Delivery to the following recipients has been delayed." in text.get_content()
    assert "Action: delayed" in report.as_string()
    assert "Will-Retry-Until:" in report.as_string()
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in notice_file.read_bytes()
    assert len(lab.queue_files()) == 1


def test_fcrdns_rejects_address_without_ptr(lab):
    lab.set_outbound_address("127.0.0.26")
    send(lab, "user@strict.lab.test")
    records = lab.deliver_queue()
    assert outcomes(records) == [("user@strict.lab.test", "failed"), ("user@strict.lab.test", "ndr")]
    assert records[0].reply.startswith("550 5.7.1 Client host [127.0.0.26] rejected")


def test_fcrdns_accepts_address_with_ptr(lab):
    assert lab.outbound_address == "127.0.0.25"
    send(lab, "user@strict.lab.test")
    assert outcomes(lab.deliver_queue()) == [("user@strict.lab.test", "delivered")]


def test_partial_delivery_keeps_remaining_recipient(lab):
    send(lab, ["user@example.net", "user@grey.lab.test"], message_id="<split@example.com>")
    records = lab.deliver_queue()
    assert sorted(outcomes(records)) == [("user@example.net", "delivered"), ("user@grey.lab.test", "deferred")]
    [queued] = lab.queue_files()
    head = queued.read_bytes().split(b"\r\n")[:3]
    assert head[0] == b"X-Sender: app@example.com"
    assert head[1] == b"X-Receiver: user@grey.lab.test"
    assert not head[2].startswith(b"X-Receiver")
    lab.advance(minutes=15)
    arrived = [(item.receiver, item.recipients) for item in lab.remote.received()]
    assert arrived == [("mx.example.net", ("user@example.net",)), ("mx.grey.lab.test", ("user@grey.lab.test",))]


def test_undeliverable_ndr_goes_to_badmail_triple(lab):
    # The sender's own domain is unreachable, so the NDR about the failure cannot be delivered either.
    send(lab, "nosuchuser@example.net", sender="app@blocked.lab.test", message_id="<twice@example.com>")
    records = lab.deliver_queue()
    assert outcomes(records)[:2] == [("nosuchuser@example.net", "failed"), ("nosuchuser@example.net", "ndr")]
    assert outcomes(records)[2] == ("app@blocked.lab.test", "deferred")
    lab.advance(minutes=2880 + 240)
    assert lab.queue_files() == []
    names = [path.name for path in lab.badmail_files()]
    assert len(names) == 3
    stems = {name.rsplit(".", 1)[0] for name in names}
    assert len(stems) == 1
    assert sorted(name.rsplit(".", 1)[1] for name in names) == ["BAD", "BDP", "BDR"]
    bad, bdp, bdr = sorted(lab.badmail_files())
    reason = bdr.read_bytes().decode("ascii")
    assert reason.startswith('Unable to deliver this Delivery Status Notification message because the follow '
                             'error was encountered: "This message is a delivery status notification that cannot '
                             'be delivered.".\r\n')
    assert "The specific error code was 0xC00402C7.\r\n" in reason
    assert reason.endswith("The message sender was <>.\r\n")
    assert bdp.read_bytes().startswith(BDP_MAGIC)
    assert "app@blocked.lab.test".encode("utf-16-le") in bdp.read_bytes()
    ndr = email.message_from_bytes(bad.read_bytes(), policy=email.policy.default)
    assert ndr["Subject"] == "Delivery Status Notification (Failure)"
    assert b"<twice@example.com>" in bad.read_bytes()


def test_failed_null_sender_message_goes_to_badmail(lab):
    send(lab, "nosuchuser@example.net", sender="", message_id="<bounce@example.com>")
    records = lab.deliver_queue()
    assert outcomes(records) == [("nosuchuser@example.net", "badmail")]
    reason = [path for path in lab.badmail_files() if path.suffix == ".BDR"][0].read_bytes().decode("ascii")
    assert reason.startswith('Unable to deliver this message because the follow error was encountered: "550 5.1.1')
    assert lab.drop_files() == []


def test_every_message_ends_exactly_once(lab):
    cases = {"<ok@example.com>": "a@example.net", "<grey@example.com>": "b@grey.lab.test",
             "<unknown@example.com>": "nosuchuser@example.net", "<stuck@example.com>": "c@blocked.lab.test",
             "<nomx@example.com>": "d@nomail.lab.test", "<strict@example.com>": "e@strict.lab.test"}
    for message_id, recipient in cases.items():
        send(lab, recipient, message_id=message_id)
    lab.deliver_queue()
    lab.advance(minutes=3000)
    seen = {}
    for item in lab.remote.received():
        seen.setdefault(item.message_id, []).append("delivered")
    for path in lab.drop_files():
        ndr = parse(path)
        if ndr["Subject"] == "Delivery Status Notification (Failure)":
            returned = list(ndr.iter_parts())[2].get_content()
            seen.setdefault(returned["Message-ID"], []).append("ndr")
    for path in lab.queue_files():
        seen.setdefault(parse(path)["Message-ID"], []).append("queue")
    assert sorted(seen) == sorted(cases)
    assert all(len(places) == 1 for places in seen.values()), seen
    assert seen["<ok@example.com>"] == ["delivered"]
    assert seen["<grey@example.com>"] == ["delivered"]
    assert seen["<stuck@example.com>"] == ["ndr"]


def test_advance_rejects_negative_time(lab):
    with pytest.raises(InputError) as raised:
        lab.advance(minutes=-1)
    assert "-60" in str(raised.value)


def test_advance_needs_fixed_clock():
    with MailLab(pickup_interval=None) as real_time_lab:
        with pytest.raises(LabError):
            real_time_lab.advance(minutes=1)


def test_unusable_outbound_address_is_rejected(lab):
    with pytest.raises(InputError) as raised:
        lab.set_outbound_address("192.0.2.1")
    assert "192.0.2.1" in str(raised.value)
    assert lab.outbound_address == "127.0.0.25"


def test_helo_only_when_outbound_esmtp_off(lab):
    lab.set_outbound_esmtp(False)
    send(lab, "user@example.net")
    assert outcomes(lab.deliver_queue()) == [("user@example.net", "delivered")]
    text = lab.log_files()[-1].read_text(encoding="cp950")
    assert " OutboundConnectionCommand SMTPSVC1 MAIL01 - 25 HELO - mail01.example.com " in text
    assert " MAIL - FROM:<app@example.com> " in text


def test_next_attempt_follows_queue(lab):
    assert lab.next_delivery_attempt() is None
    send(lab, "user@grey.lab.test")
    assert lab.next_delivery_attempt() == START
    lab.deliver_queue()
    assert lab.next_delivery_attempt() == START + timedelta(minutes=15)


def test_arrival_read_from_queue_file_name():
    assert _arrival_from_name("NTFS_fd7f820001dca9e10000000a.EML") == START
    assert _arrival_from_name("report.eml") is None


def test_runner_moves_fixed_clock_and_delivers(lab):
    send(lab, "user@grey.lab.test")
    lab.deliver_queue()
    lab.start_delivery_runner(compression=3600, interval=0.05)
    try:
        for _ in range(100):
            if lab.remote.received():
                break
            time.sleep(0.05)
    finally:
        lab.stop_delivery_runner()
    assert [item.recipients for item in lab.remote.received()] == [("user@grey.lab.test",)]
    assert lab.clock.now() >= START + timedelta(minutes=15)


def test_runner_rejects_bad_settings(lab):
    with pytest.raises(InputError):
        lab.start_delivery_runner(compression=0)


def test_stop_ends_outbound_threads(lab):
    lab.deliver_queue()
    remote, lab_dns = lab.remote, lab.lab_dns
    lab.stop()
    assert not remote.running
    assert not lab_dns.running


def test_ndr_diagnostic_types(lab):
    send(lab, "user@nomail.lab.test", message_id="<a@example.com>")
    send(lab, "nosuchuser@example.net", message_id="<b@example.com>")
    lab.deliver_queue()
    texts = [path.read_bytes() for path in lab.drop_files()]
    assert any(b"Diagnostic-Code: X-Local;The destination has no MX record and no address record." in text
               for text in texts)
    assert any(b"Diagnostic-Code: smtp;550 5.1.1 <nosuchuser@example.net>" in text for text in texts)


def test_write_error_keeps_message_queued(lab, monkeypatch):
    send(lab, "nosuchuser@example.net", message_id="<keep@example.com>")
    send(lab, "user@example.net", message_id="<other@example.com>")
    agent = lab.start_outbound()

    def disk_full(**_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(agent.server, "store_generated", disk_full)
    records = lab.deliver_queue()
    assert ("user@example.net", "delivered") in outcomes(records)
    [kept] = lab.queue_files()
    assert b"<keep@example.com>" in kept.read_bytes()
    assert lab.next_delivery_attempt() == START + timedelta(minutes=15)
    monkeypatch.undo()
    retried = lab.advance(minutes=15)
    assert outcomes(retried) == [("nosuchuser@example.net", "failed"), ("nosuchuser@example.net", "ndr")]
    assert lab.queue_files() == []


def test_ndr_to_remote_sender_is_delivered(lab):
    send(lab, "nosuchuser@example.net", sender="partner@example.net", message_id="<remote@example.com>")
    records = lab.deliver_queue()
    assert outcomes(records) == [("nosuchuser@example.net", "failed"), ("nosuchuser@example.net", "ndr"),
                                 ("partner@example.net", "delivered")]
    [arrived] = lab.remote.received()
    assert arrived.sender == ""
    assert arrived.recipients == ("partner@example.net",)
    ndr = email.message_from_bytes(arrived.content, policy=email.policy.default)
    assert ndr["Subject"] == "Delivery Status Notification (Failure)"
    assert ndr["From"] == "postmaster@example.com"
    assert lab.queue_files() == []
    assert lab.badmail_files() == []


RECIPIENT_CHOICES = ["a@example.net", "nosuchuser@example.net", "b@grey.lab.test", "c@blocked.lab.test",
                     "d@strict.lab.test", "e@nomail.lab.test", "f@backup.lab.test", "g@implicit.lab.test"]
SENDER_CHOICES = ["app@example.com", "partner@example.net", "app@blocked.lab.test"]


def final_places(lab):
    """Map each (original Message-ID, recipient) to the places it ended: delivered, ndr or queue."""
    places = {}

    def note(message_id, recipient, place):
        places.setdefault((message_id, recipient.lower()), []).append(place)

    reports = [path.read_bytes() for path in lab.drop_files()]
    reports += [path.read_bytes() for path in lab.badmail_files() if path.suffix == ".BAD"]
    for item in lab.remote.received():
        if item.sender:
            for recipient in item.recipients:
                note(item.message_id, recipient, "delivered")
        else:
            reports.append(item.content)
    for path in lab.queue_files():
        queued = parse(path)
        if queued["Subject"].startswith("Delivery Status Notification"):
            reports.append(path.read_bytes())
            continue
        for recipient in queued.get_all("X-Receiver"):
            note(queued["Message-ID"], recipient, "queue")
    for data in reports:
        report = email.message_from_bytes(data, policy=email.policy.default)
        if report["Subject"] != "Delivery Status Notification (Failure)":
            continue
        _, status, returned = report.iter_parts()
        original_id = returned.get_content()["Message-ID"]
        for line in status.as_string().splitlines():
            if line.startswith("Final-Recipient: rfc822;"):
                note(original_id, line.split(";", 1)[1], "ndr")
    return places


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.tuples(st.sampled_from(SENDER_CHOICES),
                                   st.lists(st.sampled_from(RECIPIENT_CHOICES), min_size=1, max_size=3, unique=True)),
                         min_size=1, max_size=5),
       steps=st.lists(st.integers(min_value=0, max_value=1500), min_size=1, max_size=4))
def test_each_recipient_ends_in_one_place(messages, steps):
    with MailLab(clock=FixedClock(START), pickup_interval=None, relay_grant=["127.0.0.1"]) as lab:
        expected = set()
        for index, (sender, recipients) in enumerate(messages):
            message_id = f"<p{index}@example.com>"
            send(lab, recipients, sender=sender, message_id=message_id)
            expected.update((message_id, recipient) for recipient in recipients)
        lab.deliver_queue()
        for minutes in steps:
            lab.advance(minutes=minutes)
        places = final_places(lab)
        assert set(places) == expected
        for key, found in places.items():
            assert len(found) == 1, (key, found)


def test_runner_compresses_schedule_on_real_clock():
    with MailLab(pickup_interval=None, relay_grant=["127.0.0.1"]) as real_time_lab:
        send(real_time_lab, "user@blocked.lab.test")
        # 15 minutes become 0.25 s at a compression of 3600.
        real_time_lab.start_delivery_runner(compression=3600, interval=0.05)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                deferred = [record for record in real_time_lab.delivery_records if record.outcome == "deferred"]
                if len(deferred) >= 3:
                    break
                time.sleep(0.05)
        finally:
            real_time_lab.stop_delivery_runner()
        assert len(deferred) >= 3
        gaps = [later.time - earlier.time for earlier, later in zip(deferred, deferred[1:])]
        assert gaps[0] >= timedelta(seconds=0.25)
        assert gaps[1] >= timedelta(seconds=0.5)
        assert len(real_time_lab.queue_files()) == 1


def test_runner_compresses_greylisting_on_real_clock():
    with MailLab(pickup_interval=None, relay_grant=["127.0.0.1"]) as real_time_lab:
        send(real_time_lab, "user@grey.lab.test")
        # The 5-minute greylisting delay becomes 0.5 s and the 15-minute retry 1.5 s at 600.
        real_time_lab.start_delivery_runner(compression=600, interval=0.05)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and real_time_lab.queue_files():
                time.sleep(0.05)
        finally:
            real_time_lab.stop_delivery_runner()
        outcomes_seen = [record.outcome for record in real_time_lab.delivery_records]
        assert outcomes_seen[0] == "deferred"
        assert outcomes_seen[-1] == "delivered"
        assert real_time_lab.queue_files() == []


@pytest.mark.parametrize("content", [b"", b"Subject: no envelope\r\n\r\nbody\r\n",
                                     b"X-Sender: app@example.com\r\n\r\nbody\r\n"])
def test_queue_file_without_recipient_goes_to_badmail_once(lab, content):
    queue = lab.mailroot / "Queue"
    (queue / "NTFS_0000000000000000000000a1.EML").write_bytes(content)
    records = lab.deliver_queue()
    assert [record.outcome for record in records] == ["badmail"]
    assert records[0].reply == "This message does not have any valid recipients."
    assert records[0].reply_text("zh-TW") == "這封郵件沒有任何有效的收件者。"
    assert list(queue.iterdir()) == []
    badmail = sorted(path.suffix for path in (lab.mailroot / "Badmail").iterdir())
    assert badmail == [".BAD", ".BDR"]
    assert lab.deliver_queue() == []
    assert len(list((lab.mailroot / "Badmail").iterdir())) == 2


def test_helo_only_client_never_reaches_esmtp_provider(lab):
    lab.set_outbound_esmtp(False)
    send(lab, "user@bigmail.lab.test")
    records = lab.deliver_queue()
    assert outcomes(records) == [("user@bigmail.lab.test", "deferred")]
    assert records[0].reply.startswith("421 4.7.0 mx.bigmail.lab.test accepts only ESMTP clients")
    lab.set_outbound_esmtp(True)
    assert outcomes(lab.advance(minutes=15)) == [("user@bigmail.lab.test", "delivered")]


def test_failed_report_never_redelivers(lab, monkeypatch, caplog):
    send(lab, ["user@example.net", "nosuchuser@example.net"], message_id="<mixed@example.com>")
    send(lab, "other@example.net", message_id="<next@example.com>")
    agent = lab.start_outbound()

    def broken_report(*_, **__):
        raise RuntimeError("report could not be built")

    monkeypatch.setattr(agent, "_build_report", broken_report)
    records = lab.deliver_queue()
    # The error stayed with its message: the next message was still delivered.
    assert ("other@example.net", "delivered") in outcomes(records)
    assert "delivery attempt for queue file" in caplog.text
    [kept] = lab.queue_files()
    assert mailroot.split_envelope(kept.read_bytes())[1] == ["nosuchuser@example.net"]
    monkeypatch.undo()
    retried = lab.advance(minutes=15)
    assert outcomes(retried) == [("nosuchuser@example.net", "failed"), ("nosuchuser@example.net", "ndr")]
    delivered_to = [recipient for arrived in lab.remote.received() for recipient in arrived.recipients]
    assert delivered_to.count("user@example.net") == 1
    assert lab.queue_files() == []


def test_report_for_recipient_outside_ascii():
    report = dsn.build_dsn(action="failed", postmaster="postmaster@example.com", reporting_mta="mail01.example.com",
                           sender="app@example.com", arrival=START, now=START, zone=timezone.utc,
                           message_id="<r1@example.com>", boundary="b1", original=b"Subject: x\r\n\r\nbody\r\n",
                           recipients=[dsn.RecipientStatus("用戶@例子.台灣", "5.1.1", "550 5.1.1 unknown", None)])
    assert "Final-Recipient: rfc822;用戶@例子.台灣".encode() in report
