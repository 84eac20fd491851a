"""Peers that misbehave: each gives a clear verdict within the timeout, never a hang or a traceback."""

from __future__ import annotations

import socket
import time

import pytest

from adminkb.smtp import Level, SessionError, SmtpSession, probe
from fakeservers import FakeServer, ScriptedSmtp

pytestmark = pytest.mark.timeout(60)

FROM = "app@example.com"
TO = "user@example.com"
# Slack on top of a timeout for thread scheduling on a busy machine (seconds).
SLACK = 1.5


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")


def timed_probe(port: int, **options):
    started = time.monotonic()
    result = probe("127.0.0.1", port, mail_from=FROM, rcpt_to=TO, **options)
    return result, time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_port_exits_2():
    result, elapsed = timed_probe(free_port(), timeout=5)
    assert result.exit_code == 2
    assert result.verdict.category == "connect_refused"
    assert result.verdict.step == "connect"
    assert result.verdict.level is Level.PROBLEM
    assert "refused the connection" in result.verdict.summary
    assert elapsed < 5


def test_no_banner_times_out_within_timeout():
    def silent(connection):
        connection.read_line()

    with FakeServer(silent) as server:
        result, elapsed = timed_probe(server.port, timeout=1)
    assert result.exit_code == 21
    assert result.verdict.category == "timeout"
    assert result.verdict.step == "banner"
    assert "within 1 seconds" in result.verdict.summary
    assert 0.9 <= elapsed < 1 + SLACK


def test_closed_before_banner():
    def closer(connection):
        connection.close()

    with FakeServer(closer) as server:
        result, elapsed = timed_probe(server.port, timeout=5)
    assert result.exit_code == 21
    assert result.verdict.category == "no_banner"
    assert elapsed < 5


def test_slow_dribble_cannot_extend_the_timeout():
    def dribble(connection):
        for character in "220 slowly":
            connection.send_raw(character.encode())
            time.sleep(0.3)

    with FakeServer(dribble) as server:
        result, elapsed = timed_probe(server.port, timeout=1)
    assert result.verdict.category == "timeout"
    assert elapsed < 1 + SLACK
    # The bytes that did arrive are shown.
    assert any(entry.text.startswith("220") for entry in result.transcript if entry.direction.value == "server")


@pytest.mark.parametrize("banner, protocol_note", [
    ("HTTP/1.1 400 Bad Request", "web (HTTP)"),
    ("SSH-2.0-OpenSSH_9.2p1 Debian-2", "SSH"),
    ("+OK POP3 server ready", "POP3"),
    ("hello, this is not SMTP", None),
])
def test_garbage_banner_exits_21(banner, protocol_note):
    def speaker(connection):
        connection.send(banner)
        connection.read_line()

    with FakeServer(speaker) as server:
        result, elapsed = timed_probe(server.port, timeout=5)
    assert result.exit_code == 21
    assert result.verdict.category == "garbage"
    assert banner in result.verdict.summary
    if protocol_note:
        assert any(protocol_note in note for note in result.verdict.note_texts)
    else:
        assert result.verdict.note_texts == []
    assert elapsed < 5


def test_endless_line_is_capped():
    def flood(connection):
        chunk = b"A" * 65536
        try:
            for _ in range(200):
                connection.send_raw(chunk)
        except OSError:
            pass

    with FakeServer(flood) as server:
        result, elapsed = timed_probe(server.port, timeout=5)
    assert result.exit_code == 21
    assert result.verdict.category == "line_too_long"
    assert "4096 bytes" in result.verdict.summary
    assert elapsed < 5
    shown = [entry.text for entry in result.transcript if entry.direction.value == "server"]
    assert shown and len(shown[0]) <= 200


def test_long_line_with_end_is_capped_too():
    def long_line(connection):
        connection.send("220 " + "x" * 5000)
        connection.read_line()

    with FakeServer(long_line) as server:
        result, _ = timed_probe(server.port, timeout=5)
    assert result.verdict.category == "line_too_long"


def test_endless_continuation_lines_are_capped():
    def chatty(connection):
        connection.send("220 mail01.example.com ESMTP")
        connection.read_line()
        try:
            for _ in range(1000):
                connection.send("250-more")
        except OSError:
            pass

    with FakeServer(chatty) as server:
        result, elapsed = timed_probe(server.port, timeout=5)
    assert result.exit_code == 22
    assert result.verdict.category == "too_many_lines"
    assert "100 lines" in result.verdict.summary
    assert elapsed < 5


def test_code_change_inside_reply_is_garbage():
    def mixed(connection):
        connection.send("220 mail01.example.com ESMTP")
        connection.read_line()
        connection.send("250-mail01.example.com", "354 surprise")
        connection.read_line()

    with FakeServer(mixed) as server:
        result, _ = timed_probe(server.port, timeout=5)
    assert result.exit_code == 22
    assert result.verdict.category == "garbage"


def test_peer_closing_mid_dialogue_exits_23():
    def quitter(connection):
        connection.send("220 mail01.example.com ESMTP")
        connection.read_line()
        connection.send("250 mail01.example.com")
        connection.read_line()
        connection.close()

    with FakeServer(quitter) as server:
        result, elapsed = timed_probe(server.port, timeout=5)
    assert result.exit_code == 23
    assert result.verdict.category == "connection_closed"
    assert result.verdict.step == "mail"
    assert "closed the connection at MAIL FROM" in result.verdict.summary
    assert elapsed < 5


def test_peer_closing_after_partial_reply_shows_it():
    def cut(connection):
        connection.send("220 mail01.example.com ESMTP")
        connection.read_line()
        connection.send_raw(b"250-mail01.example.com\r\n250-SIZ")
        connection.close()

    with FakeServer(cut) as server:
        result, _ = timed_probe(server.port, timeout=5)
    assert result.verdict.category == "connection_closed"
    assert result.verdict.step == "ehlo"
    assert any(entry.text == "250-SIZ" for entry in result.transcript)


def test_silent_after_ehlo_times_out_at_ehlo():
    def mute(connection):
        connection.send("220 mail01.example.com ESMTP")
        connection.read_line()
        connection.read_line()

    with FakeServer(mute) as server:
        result, elapsed = timed_probe(server.port, timeout=1)
    assert result.exit_code == 22
    assert result.verdict.category == "timeout"
    assert result.verdict.step == "ehlo"
    assert elapsed < 1 + SLACK
    # A server that timed out gets no QUIT, which would only cost another timeout.
    assert server.connection.lines == ["EHLO adminkb.example.com"]


def test_total_timeout_bounds_a_slow_server():
    def slow(connection):
        connection.send("220 mail01.example.com ESMTP")
        while True:
            line = connection.read_line()
            if line is None:
                return
            time.sleep(0.4)
            connection.send("250 ok" if not line.startswith("QUIT") else "221 bye")

    with FakeServer(slow) as server:
        result, elapsed = timed_probe(server.port, timeout=1, total_timeout=1.0, quit_after="rcpt")
    assert result.verdict.category == "total_timeout"
    assert "1 seconds" in result.verdict.summary
    assert elapsed < 1 + 1 + SLACK


def test_greylisting_is_a_warning():
    script = ScriptedSmtp(recipient_reply="450 4.2.0 <{address}>: Recipient address rejected: Greylisted, see"
                                          " http://postgrey.schweikert.ch/help/example.com.html")
    with FakeServer(script) as server:
        result, _ = timed_probe(server.port, timeout=5)
    assert result.exit_code == 24
    assert result.verdict.level is Level.WARNING
    assert result.verdict.category == "greylisted"


def test_service_unavailable_banner_is_a_warning():
    with FakeServer(ScriptedSmtp(banner="421 4.3.2 Service not available, closing transmission channel")) as server:
        result, _ = timed_probe(server.port, timeout=5)
    assert result.exit_code == 21
    assert result.verdict.level is Level.WARNING
    assert result.verdict.category == "service_unavailable"


def test_unknown_reply_code_is_unknown():
    with FakeServer(ScriptedSmtp(mail_reply="650 what is this")) as server:
        result, _ = timed_probe(server.port, timeout=5)
    assert result.exit_code == 23
    assert result.verdict.level is Level.UNKNOWN


def test_implicit_tls_port_hint():
    def tls_waiter(connection):
        connection.read_line()

    try:
        server = FakeServer(tls_waiter, port=465)
    except OSError:
        pytest.skip("port 465 on 127.0.0.1 cannot be bound here (in use or not permitted)")
    with server:
        result, _ = timed_probe(465, timeout=1)
    assert result.verdict.category == "timeout"
    assert any("implicit TLS" in note for note in result.verdict.note_texts)


def test_session_raises_session_error_with_message():
    def silent(connection):
        connection.read_line()

    with FakeServer(silent) as server, SmtpSession("127.0.0.1", server.port, timeout=0.5) as session:
        session.connect()
        with pytest.raises(SessionError) as caught:
            session.read_banner()
    error = caught.value
    assert error.category == "timeout"
    assert error.step == "banner"
    assert "No response at banner within 0.5 seconds" in str(error)
    assert "Next step: " in str(error)


def test_html_escapes_server_text():
    script = ScriptedSmtp(banner="220 <script>alert(1)</script> & friends")
    with FakeServer(script) as server:
        result, _ = timed_probe(server.port, timeout=5)
    html = result._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in html
    assert "<pre" in html
    assert "<details>" in html
