"""The lab's Pickup processing: envelope lines or headers, Drop and Queue, Badmail, the watcher."""

import email
import email.policy
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from adminkb import mailroot, pickup
from adminkb.errors import InputError, LabError
from adminkb.lab import FixedClock, MailLab
from adminkb.lab.pickup import parse_pickup_file

START = datetime(2026, 3, 2, 1, 15, 7, tzinfo=timezone.utc)


@pytest.fixture
def lab():
    with MailLab(clock=FixedClock(START), pickup_interval=None) as running:
        yield running


def wait_for(condition, timeout=5.0):
    """Poll `condition` every 20 ms until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def chinese_message(to=("partner@example.net",), body="第一行\n.\n.hidden\n"):
    return pickup.compose_message(("王小明", "app@example.com"), list(to), "每日報表", body,
                                  date=datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc),
                                  message_id="<report-1@example.com>")


def parse_stored(path):
    """Return the envelope and the parsed message of a Queue or Drop file."""
    sender, recipients, _ = mailroot.read_envelope(path)
    data = path.read_bytes()
    message = email.message_from_bytes(data.split(b"\r\n", 1 + len(recipients))[-1], policy=email.policy.default)
    return sender, recipients, message


def test_remote_recipient_goes_to_queue(lab):
    pickup.write_pickup_file(lab.pickup_dir, chinese_message())
    results = lab.process_pickup()
    assert len(results) == 1
    assert results[0].badmail is False
    assert results[0].recipients == ("partner@example.net",)
    assert lab.pickup_files() == []
    assert lab.drop_files() == []
    queued = lab.queue_files()
    assert len(queued) == 1
    assert mailroot.is_ntfs_file_name(queued[0].name)
    assert results[0].files == (queued[0],)


def test_queued_message_keeps_headers_and_body(lab):
    pickup.write_pickup_file(lab.pickup_dir, chinese_message())
    lab.process_pickup()
    sender, recipients, message = parse_stored(lab.queue_files()[0])
    assert sender == "app@example.com"
    assert recipients == ["partner@example.net"]
    assert message["Subject"] == "每日報表"
    assert message["From"].addresses[0].display_name == "王小明"
    assert message["Message-ID"] == "<report-1@example.com>"
    assert message.get_content() == "第一行\r\n.\r\n.hidden\r\n"


def test_leading_dots_are_undone(lab):
    message = chinese_message(body="plain ascii\n.\n..two\n")
    pickup.write_pickup_file(lab.pickup_dir, message)
    lab.process_pickup()
    data = lab.queue_files()[0].read_bytes()
    assert data.endswith(b"\r\nplain ascii\r\n.\r\n..two\r\n")


def test_local_recipient_goes_to_drop(lab):
    pickup.write_pickup_file(lab.pickup_dir, chinese_message(to=["user@example.com"]))
    results = lab.process_pickup()
    assert lab.queue_files() == []
    assert len(lab.drop_files()) == 1
    assert results[0].files == tuple(lab.drop_files())


def test_mixed_recipients_split(lab):
    pickup.write_pickup_file(lab.pickup_dir, chinese_message(to=["user@example.com", "partner@example.net"]))
    lab.process_pickup()
    _, dropped, _ = parse_stored(lab.drop_files()[0])
    _, queued, _ = parse_stored(lab.queue_files()[0])
    assert dropped == ["user@example.com"]
    assert queued == ["partner@example.net"]


def test_envelope_lines_win_over_headers(lab):
    data = (b"x-sender: bounce@example.com\r\nX-RECEIVER: <hidden@example.net>\r\n"
            b"From: app@example.com\r\nTo: shown@example.net\r\nSubject: envelope\r\n\r\nbody\r\n")
    (lab.pickup_dir / "by-hand.eml").write_bytes(data)
    results = lab.process_pickup()
    assert results[0].sender == "bounce@example.com"
    assert results[0].recipients == ("hidden@example.net",)
    sender, recipients, message = parse_stored(lab.queue_files()[0])
    assert sender == "bounce@example.com"
    assert recipients == ["hidden@example.net"]
    assert message["To"] == "shown@example.net"
    assert "X-Sender" not in message


def test_headers_give_envelope_without_lines(lab):
    data = (b"From: App <app@example.com>\r\nTo: a@example.net\r\nCc: b@example.net, A@example.net\r\n"
            b"Bcc: secret@example.net\r\nSubject: no envelope\r\n\r\nbody\r\n")
    (lab.pickup_dir / "Message.txt").write_bytes(data)
    results = lab.process_pickup()
    assert results[0].sender == "app@example.com"
    assert results[0].recipients == ("a@example.net", "b@example.net", "secret@example.net")
    _, _, message = parse_stored(lab.queue_files()[0])
    assert message["Bcc"] is None
    assert message["Cc"] == "b@example.net, A@example.net"


def test_lone_dot_cuts_the_message(lab):
    data = (b"From: app@example.com\nTo: a@example.net\nSubject: lone dot\n\n"
            b"Testing\n.\nthis line is lost\n")
    (lab.pickup_dir / "notepad.txt").write_bytes(data)
    lab.process_pickup()
    stored = lab.queue_files()[0].read_bytes()
    assert stored.endswith(b"\r\n\r\nTesting\r\n")
    assert b"this line is lost" not in stored


def test_service_headers_are_added(lab):
    data = b"From: app@example.com\r\nTo: a@example.net\r\nSubject: no id\r\n\r\nbody\r\n"
    (lab.pickup_dir / "no-id.eml").write_bytes(data)
    results = lab.process_pickup()
    _, _, message = parse_stored(lab.queue_files()[0])
    assert message["Message-ID"] == results[0].message_id
    assert results[0].message_id.startswith("<MAIL01")
    assert message["X-OriginalArrivalTime"] == "02 Mar 2026 01:15:07.0000 (UTC) FILETIME=[01AB9F80:01DCA9E2]"
    assert message["Received"] is None


def test_no_recipients_goes_to_badmail(lab):
    data = b"From: app@example.com\r\nSubject: nobody\r\n\r\nbody\r\n"
    (lab.pickup_dir / "nobody.eml").write_bytes(data)
    results = lab.process_pickup()
    assert results[0].badmail is True
    assert lab.pickup_files() == []
    assert lab.queue_files() == []
    names = [path.name for path in lab.badmail_files()]
    assert len(names) == 2
    stem = names[0].rsplit(".", 1)[0]
    assert names == [f"{stem}.BAD", f"{stem}.BDR"]
    assert (lab.mailroot / "Badmail" / f"{stem}.BAD").read_bytes() == data
    reason = (lab.mailroot / "Badmail" / f"{stem}.BDR").read_text("ascii")
    assert reason.startswith("Unable to deliver this message because the follow error was encountered:")
    assert "The specific error code was 0xC00402C7." in reason
    assert "The message sender was app@example.com." in reason


def test_empty_file_goes_to_badmail(lab):
    (lab.pickup_dir / "empty.eml").write_bytes(b"")
    results = lab.process_pickup()
    assert results[0].badmail is True
    assert "The message sender was <>." in results[0].files[1].read_text("ascii")


def test_any_file_name_is_picked_up(lab):
    # KB Q221384's example is a file called Message.txt. The lab skips no name, temporary-looking ones included.
    for name in ("Message.txt", ".report.eml.k2j4h1.tmp"):
        (lab.pickup_dir / name).write_bytes(b"X-Sender: a@example.com\r\nX-Receiver: b@example.net\r\n\r\nx\r\n")
    assert lab.pickup_files() == sorted(lab.pickup_dir.iterdir())
    results = lab.process_pickup()
    assert sorted(result.source for result in results) == [".report.eml.k2j4h1.tmp", "Message.txt"]
    assert len(lab.queue_files()) == 2
    assert lab.pickup_files() == []


class SlowFile:
    """A binary file whose writes go to disk in 64 KiB pieces with a pause between them, like a slow share."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        view = memoryview(data)
        for start in range(0, len(view), 65536):
            self.handle.write(view[start:start + 65536])
            self.handle.flush()
            time.sleep(0.002)
        return len(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.handle.close()


@pytest.mark.timeout(60)
def test_watcher_takes_whole_large_message(monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: SlowFile(real_fdopen(*args, **kwargs)))
    body = "".join(f"line {number:06d} of a long report\n.\n" for number in range(100_000))
    message = chinese_message(body=body)
    with MailLab(clock=FixedClock(START), pickup_interval=0.01) as lab:
        pickup.write_pickup_file(lab.pickup_dir, message)
        wait_for(lambda: lab.pickup_files() == [] and lab.queue_files(), timeout=30)
        assert lab.pickup_files() == []
        assert len(lab.queue_files()) == 1
        _sender, _recipients, stored = parse_stored(lab.queue_files()[0])
        assert lab.badmail_files() == []
    assert stored.get_content() == body.replace("\n", "\r\n")


def test_unreadable_file_stays_and_logs_once(lab, monkeypatch, caplog):
    path = lab.pickup_dir / "locked.eml"
    path.write_bytes(b"From: a@example.com\r\nTo: b@example.net\r\n\r\nx\r\n")
    real_read_bytes = Path.read_bytes

    def locked_read_bytes(self):
        if self.name == "locked.eml":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", locked_read_bytes)
    with caplog.at_level(logging.ERROR, logger="adminkb.lab"):
        assert lab.process_pickup() == []
        assert lab.process_pickup() == []
    assert path.exists()
    messages = [record.getMessage() for record in caplog.records if "locked.eml" in record.getMessage()]
    assert len(messages) == 1
    assert "Permission denied" in messages[0]

    monkeypatch.setattr(Path, "read_bytes", real_read_bytes)
    assert len(lab.process_pickup()) == 1
    assert not path.exists()


def test_pickup_writes_no_w3c_lines(lab):
    pickup.write_pickup_file(lab.pickup_dir, chinese_message())
    lab.process_pickup()
    assert lab.log_files() == []


def test_several_files_in_name_order(lab):
    for name in ("b.eml", "a.eml", "c.eml"):
        (lab.pickup_dir / name).write_bytes(f"From: app@example.com\r\nTo: {name}@example.net\r\n\r\nx\r\n".encode())
    results = lab.process_pickup()
    assert [result.source for result in results] == ["a.eml", "b.eml", "c.eml"]
    assert len(lab.queue_files()) == 3
    assert len({path.name for path in lab.queue_files()}) == 3


@pytest.mark.timeout(30)
def test_watcher_picks_files_up():
    with MailLab(pickup_interval=0.05) as lab:
        pickup.write_pickup_file(lab.pickup_dir, chinese_message())
        assert wait_for(lambda: len(lab.queue_files()) == 1)
        assert wait_for(lambda: lab.pickup_files() == [])


def test_process_pickup_before_start():
    lab = MailLab(pickup_interval=None)
    with pytest.raises(LabError):
        lab.process_pickup()


@pytest.mark.parametrize("interval", [0, -1, "fast", True, 7200])
def test_invalid_pickup_interval(interval, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        MailLab(pickup_interval=interval)
    assert "Pickup polling interval" in str(caught.value)


def test_parse_pickup_file_bare_lf():
    parsed = parse_pickup_file(
        b"X-Sender: a@example.com\nX-Receiver: b@example.net\nSubject: s\n\n..x\n")
    assert parsed.sender == "a@example.com"
    assert parsed.recipients == ("b@example.net",)
    assert parsed.content == b"Subject: s\r\n\r\n.x\r\n"


def test_binary_file_goes_to_badmail(lab):
    (lab.pickup_dir / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    results = lab.process_pickup()
    assert results[0].badmail is True
    assert lab.queue_files() == []
    assert lab.pickup_files() == []
    assert (results[0].files[0]).read_bytes().startswith(b"\x89PNG")


def test_stray_cr_in_envelope_goes_to_badmail(lab):
    data = b"X-Sender: a@example.com\r\nX-Receiver: b@exa\rmple.net\r\nSubject: s\r\n\r\nbody\r\n"
    (lab.pickup_dir / "stray-cr.eml").write_bytes(data)
    results = lab.process_pickup()
    assert results[0].badmail is True
    assert lab.queue_files() == []


@pytest.mark.parametrize("line", [b" X-Receiver: evil@example.net", b"\tX-Receiver: evil@example.net",
                                  b"X-Receiver\x0b: evil@example.net", b"X-Receiver-Extra: evil@example.net"])
def test_near_envelope_line_adds_no_recipient(lab, line):
    data = (b"X-Sender: web@example.com\r\nX-Receiver: user@example.net\r\n" + line
            + b"\r\nFrom: web@example.com\r\nTo: user@example.net\r\nSubject: E\r\n\r\nbody\r\n")
    (lab.pickup_dir / "forged.eml").write_bytes(data)
    [result] = lab.process_pickup()
    assert result.recipients == ("user@example.net",)
    # The queue reader, which delivery uses, agrees with the Pickup pass.
    [queued] = lab.queue_files()
    sender, recipients, _ = mailroot.split_envelope(queued.read_bytes())
    assert (sender, recipients) == ("web@example.com", ["user@example.net"])


def test_split_envelope_forms():
    data = (b"x-sender :<>\nX-Receiver: Someone <one@example.net>\r\nX-RECEIVER:\t<two@example.net> \r\n"
            b"X-Receiver:\r\nSubject: s\r\n")
    sender, recipients, offset = mailroot.split_envelope(data)
    assert sender == ""
    assert recipients == ["one@example.net", "two@example.net"]
    assert data[offset:] == b"Subject: s\r\n"


def test_split_envelope_without_lines():
    assert mailroot.split_envelope(b"Subject: s\r\n\r\nbody") == (None, [], 0)
    # A file of envelope lines only, the last one without a line end.
    data = b"X-Sender: a@example.com\r\nX-Receiver: b@example.net"
    assert mailroot.split_envelope(data) == ("a@example.com", ["b@example.net"], len(data))


@pytest.mark.timeout(60)
def test_stop_ends_pickup_pass_between_files(tmp_path):
    # Every file is there before the lab starts, so that its first pass could take all of them.
    waiting = tmp_path / "lab" / "mailroot" / "Pickup"
    waiting.mkdir(parents=True)
    for number in range(3000):
        (waiting / f"m{number:05d}.eml").write_bytes(
            f"X-Sender: a@example.com\r\nX-Receiver: u{number}@example.com\r\n\r\nbody\r\n".encode())
    lab = MailLab(root=tmp_path / "lab", clock=FixedClock(START), pickup_interval=0.02)
    lab.start()
    try:
        assert wait_for(lambda: len(lab.drop_files()) >= 50, timeout=30)
    finally:
        lab.stop()
    left = len(lab.pickup_files())
    stored = len(lab.drop_files())
    time.sleep(0.5)
    # Nothing moves after stop() returned, and every file is in exactly one place.
    assert len(lab.pickup_files()) == left
    assert len(lab.drop_files()) == stored
    assert left > 0
    assert left + stored == 3000


@pytest.mark.timeout(30)
def test_watcher_waits_for_file_being_written(tmp_path):
    with MailLab(clock=FixedClock(START), pickup_interval=0.05) as lab:
        path = lab.pickup_dir / "slow.eml"
        with open(path, "wb") as handle:
            handle.write(b"X-Sender: a@example.com\r\nX-Receiver: user@example.com\r\n\r\n")
            # Write a line every 10 ms, faster than the 50 ms poll, for about half a second.
            for number in range(50):
                handle.write(f"line {number}\r\n".encode())
                handle.flush()
                time.sleep(0.01)
        assert wait_for(lambda: len(lab.drop_files()) == 1)
        _sender, _recipients, stored = parse_stored(lab.drop_files()[0])
    assert stored.get_content().splitlines()[-1] == "line 49"
