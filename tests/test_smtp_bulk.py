"""`send_batches()` against the mail lab: batches, the rate limit, rejections and a dead server."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser

import pytest

from adminkb.errors import InputError
from adminkb.i18n import LANGUAGES, message
from adminkb.lab import FixedClock, MailLab
from adminkb.lab.clock import TAIWAN_TIME
from adminkb.smtp.bulk import BulkResult, build_messages, send_batches, watch_queue

START = datetime(2026, 3, 2, 9, 15, tzinfo=TAIWAN_TIME)


def make_messages(count: int, recipient: str = "user@example.net", *, with_id: bool = True) -> list[EmailMessage]:
    messages = []
    for number in range(count):
        item = EmailMessage()
        item["From"] = "newsletter@example.com"
        item["To"] = recipient
        item["Subject"] = f"Bulk {number:03d}"
        if with_id:
            item["Message-ID"] = f"<bulk-{number:03d}@app.example.com>"
        item.set_content(f"Message {number}.\n")
        messages.append(item)
    return messages


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def lab(tmp_path):
    with MailLab(root=tmp_path / "lab", clock=FixedClock(START), relay_grant=["127.0.0.1"],
                 pickup_interval=None) as running:
        yield running


def queued_ids(lab: MailLab) -> list[str]:
    parser = BytesHeaderParser()
    return [str(parser.parsebytes(path.read_bytes())["Message-ID"]).strip() for path in lab.queue_files()]


def test_batches_all_queued(lab):
    messages = make_messages(25)
    result = send_batches(messages, host="127.0.0.1", port=lab.port, batch_size=10, rate=500, progress=False)
    assert result.batches == 3
    assert len(result.accepted) == 25
    assert result.rejected == []
    assert result.unsent == []
    assert result.stopped_by is None
    assert sorted(queued_ids(lab)) == sorted(result.accepted)


def test_one_session_per_batch(lab):
    send_batches(make_messages(7), host="127.0.0.1", port=lab.port, batch_size=3, rate=500, progress=False)
    log_text = "".join(path.read_text(encoding="utf-8") for path in lab.log_files())
    assert log_text.count(" EHLO ") == 3
    assert log_text.count(" QUIT ") == 3


def test_rate_limit_spaces_messages(lab):
    clock = FakeClock()
    result = send_batches(make_messages(10), host="127.0.0.1", port=lab.port, batch_size=4, rate=5,
                          progress=False, sleep=clock.sleep, monotonic=clock.monotonic)
    assert len(result.accepted) == 10
    # Ten messages at 5 per second: the last one may start 9 intervals of 0.2 s after the first.
    assert sum(clock.sleeps) == pytest.approx(9 * 0.2)
    assert result.seconds == pytest.approx(9 * 0.2)


def test_pause_between_batches(lab):
    clock = FakeClock()
    send_batches(make_messages(6), host="127.0.0.1", port=lab.port, batch_size=2, rate=1000, pause=3,
                 progress=False, sleep=clock.sleep, monotonic=clock.monotonic)
    assert clock.sleeps.count(3) == 2


def test_real_rate_limit_holds(lab):
    started = time.monotonic()
    result = send_batches(make_messages(6), host="127.0.0.1", port=lab.port, batch_size=3, rate=20,
                          progress=False)
    elapsed = time.monotonic() - started
    assert len(result.accepted) == 6
    # Six messages at 20 per second cannot take less than five intervals of 50 ms.
    assert elapsed >= 5 * 0.05


def test_rejected_recipient_does_not_stop_run(tmp_path):
    with MailLab(root=tmp_path / "lab", clock=FixedClock(START), pickup_interval=None) as closed_lab:
        messages = make_messages(2) + make_messages(1, "someone@example.com")
        messages[2].replace_header("Message-ID", "<local@app.example.com>")
        result = send_batches(messages, host="127.0.0.1", port=closed_lab.port, batch_size=10, rate=500,
                              progress=False)
    assert [message_id for message_id, _ in result.rejected] == ["<bulk-000@app.example.com>",
                                                                 "<bulk-001@app.example.com>"]
    assert result.rejected[0][1].startswith("550 5.7.1 Unable to relay")
    assert result.accepted == ["<local@app.example.com>"]
    assert result.unsent == []


def test_missing_message_id_added(lab):
    messages = make_messages(2, with_id=False)
    result = send_batches(messages, host="127.0.0.1", port=lab.port, rate=500, progress=False)
    assert all(item["Message-ID"] for item in messages)
    assert sorted(result.accepted) == sorted(str(item["Message-ID"]) for item in messages)
    assert sorted(queued_ids(lab)) == sorted(result.accepted)


@pytest.mark.timeout(20)
def test_closed_port_stops_with_all_unsent():
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    result = send_batches(make_messages(5), host="127.0.0.1", port=port, batch_size=2, rate=500, timeout=2,
                          progress=False)
    assert result.accepted == []
    assert len(result.unsent) == 5
    assert result.batches == 1
    assert "ConnectionRefusedError" in result.stopped_by


@pytest.mark.timeout(20)
def test_421_stops_run():
    """A server that accepts one message and then answers 421, as an overloaded receiver does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        with connection, connection.makefile("rwb") as stream:
            def reply(text: str) -> None:
                stream.write(text.encode() + b"\r\n")
                stream.flush()

            reply("220 mx.example.net ESMTP")
            messages_done = 0
            while line := stream.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    reply("250 mx.example.net")
                elif verb == b"MAIL" and messages_done == 1:
                    reply("421 4.7.0 Too many messages, try again later")
                    return
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    reply("250 OK")
                elif verb == b"DATA":
                    reply("354 Go ahead")
                    while stream.readline() not in (b".\r\n", b""):
                        pass
                    messages_done += 1
                    reply("250 Queued")
                elif verb == b"QUIT":
                    reply("221 Bye")
                    return

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        result = send_batches(make_messages(4), host="127.0.0.1", port=port, batch_size=10, rate=500, timeout=5,
                              progress=False)
    finally:
        server.join(5)
        listener.close()
    assert result.accepted == ["<bulk-000@app.example.com>"]
    assert len(result.unsent) == 3
    assert result.stopped_by.startswith("421 4.7.0")


def test_result_tables_in_both_languages(monkeypatch):
    result = BulkResult(accepted=["<a@example.com>"], rejected=[("<b@example.com>", "550 5.7.1 no")],
                        unsent=["<c@example.com>"], batches=1)
    for language in LANGUAGES:
        monkeypatch.setenv("ADMINKB_LANG", language)
        table = result.table()
        assert table.shape == (6, 2)
        assert table.iloc[0, 1] == "3"
        assert result.rejected_table().iloc[0, 1] == "550 5.7.1 no"
        assert message("bulk.progress_label", language)


@pytest.mark.parametrize("settings, key", [
    ({"host": ""}, "smtp.input.invalid_host"),
    ({"host": "bad host"}, "smtp.input.invalid_host"),
    ({"port": 0}, "bulk.out_of_range"),
    ({"port": 25.5}, "bulk.invalid_setting"),
    ({"batch_size": 0}, "bulk.out_of_range"),
    ({"batch_size": "20"}, "bulk.invalid_setting"),
    ({"rate": 0}, "bulk.out_of_range"),
    ({"rate": float("nan")}, "bulk.out_of_range"),
    ({"rate": True}, "bulk.invalid_setting"),
    ({"pause": -1}, "bulk.out_of_range"),
    ({"timeout": 0}, "bulk.out_of_range"),
])
def test_bad_settings_rejected_before_sending(settings, key):
    arguments = {"host": "127.0.0.1", "port": 9, **settings}
    with pytest.raises(InputError) as caught:
        send_batches(make_messages(1), progress=False, **arguments)
    assert caught.value.key == key
    assert caught.value.next_key


def test_non_message_rejected():
    with pytest.raises(InputError) as caught:
        send_batches(["To: user@example.net\n\nhello"], host="127.0.0.1", port=9, progress=False)
    assert caught.value.key == "bulk.not_a_message"


# Building messages and watching a Queue folder


def test_build_messages_numbered_and_stable():
    first = build_messages(3, sender="news@example.com", recipients=["a@example.net", "b@example.net"],
                           subject="Notice", body="Hello")
    again = build_messages(3, sender="news@example.com", recipients=["a@example.net", "b@example.net"],
                           subject="Notice", body="Hello")
    assert [item["Message-ID"] for item in first] == ["<bulk-0001@example.com>", "<bulk-0002@example.com>",
                                                      "<bulk-0003@example.com>"]
    assert [item["To"] for item in first] == ["a@example.net", "b@example.net", "a@example.net"]
    assert first[1]["Subject"] == "Notice #0002"
    assert [item.as_bytes() for item in first] == [item.as_bytes() for item in again]


def test_build_messages_bad_input():
    with pytest.raises(InputError) as caught:
        build_messages(2, sender="news@example.com", recipients=[], subject="s", body="b")
    assert caught.value.key == "bulk.no_recipients"
    with pytest.raises(InputError) as caught:
        build_messages(0, sender="news@example.com", recipients=["a@example.net"], subject="s", body="b")
    assert caught.value.key == "bulk.out_of_range"


def test_watch_queue_until_drained(tmp_path):
    queue = tmp_path / "Queue"
    queue.mkdir()
    for number in range(3):
        (queue / f"NTFS_{number:024x}.EML").write_bytes(b"x")
    (queue / "notes.txt").write_text("not a message", encoding="utf-8")
    clock = FakeClock()

    def sleep_and_deliver(seconds: float) -> None:
        clock.sleep(seconds)
        remaining = sorted(queue.glob("*.EML"))
        if remaining:
            remaining[0].unlink()

    watch = watch_queue(queue, interval=5, timeout=60, progress=False, sleep=sleep_and_deliver,
                        monotonic=clock.monotonic)
    assert [files for _, files in watch.samples] == [3, 2, 1, 0]
    assert watch.drained
    assert clock.sleeps == [5, 5, 5]
    assert watch.table().shape == (4, 2)


def test_watch_queue_stops_at_timeout(tmp_path):
    queue = tmp_path / "Queue"
    queue.mkdir()
    (queue / "NTFS_000000000000000000000001.EML").write_bytes(b"x")
    clock = FakeClock()
    watch = watch_queue(queue, interval=5, timeout=12, progress=False, sleep=clock.sleep,
                        monotonic=clock.monotonic)
    assert watch.remaining == 1
    assert not watch.drained
    assert sum(clock.sleeps) == pytest.approx(12)


def test_watch_queue_missing_folder(tmp_path):
    with pytest.raises(InputError) as caught:
        watch_queue(tmp_path / "missing", progress=False)
    assert caught.value.key == "bulk.queue_not_found"


@pytest.mark.timeout(60)
def test_lab_queue_drains_through_smart_host(tmp_path):
    with MailLab(root=tmp_path / "lab", clock=FixedClock(START), relay_grant=["127.0.0.1"],
                 pickup_interval=None) as running:
        messages = build_messages(12, sender="news@example.com", recipients=["user@example.net"],
                                  subject="Notice", body="Hello")
        sent = send_batches(messages, host="127.0.0.1", port=running.port, batch_size=5, rate=500, progress=False)
        assert len(sent.accepted) == 12
        running.set_smart_host("[127.0.0.40]")
        running.start_delivery_runner(compression=600, interval=0.1)
        try:
            watch = watch_queue(running.mailroot / "Queue", interval=0.2, timeout=30, progress=False)
        finally:
            running.stop_delivery_runner()
        arrived = {item.message_id for item in running.remote.received()}
    assert watch.drained
    assert arrived == set(sent.accepted)


def test_watch_queue_without_folder():
    with pytest.raises(InputError) as caught:
        watch_queue(None, progress=False)
    assert caught.value.key == "bulk.queue_not_given"
