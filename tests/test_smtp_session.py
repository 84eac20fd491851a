"""The SMTP client and the probe against scripted servers on 127.0.0.1 (real sockets, real TLS)."""

from __future__ import annotations

import base64
import datetime
import email
import email.header
import email.policy
import json
import logging
import socket

import pytest

from adminkb.errors import InputError
from adminkb.smtp import (REDACTED, Direction, Level, Reply, SmtpSession, build_test_message, prepare_data, probe,
                          validate_address)
from fakeservers import IIS_EHLO, FakeServer, ScriptedSmtp, self_signed_context

pytestmark = pytest.mark.timeout(60)

FROM = "app@example.com"
TO = "user@example.com"


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")


def loopback_alias_available(address: str) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# --- a normal IIS dialogue -----------------------------------------------------------------

def test_iis_dialogue_stops_after_rcpt():
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert result.verdict.level is Level.OK
    assert result.verdict.category == "accepted"
    assert result.exit_code == 0
    assert script.commands == ["EHLO adminkb.example.com", f"MAIL FROM:<{FROM}>", f"RCPT TO:<{TO}>", "QUIT"]
    assert script.messages == []
    assert result.accepted == [TO]
    assert not result.sent
    assert [recorded.step for recorded in result.replies] == ["banner", "ehlo", "mail", "rcpt", "quit"]
    assert result.ehlo.extensions["SIZE"] == "2097152"
    assert result.ehlo.auth_mechanisms == ("GSSAPI", "NTLM", "LOGIN")
    assert "no message was sent" in result.to_text()


def test_transcript_records_lines_in_order():
    with FakeServer(ScriptedSmtp()) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    entries = list(result.transcript)
    server_lines = [entry.text for entry in entries if entry.direction is Direction.SERVER]
    assert server_lines[0].startswith("220 mail01.example.com Microsoft ESMTP MAIL Service, Version: 10.0.17763.1")
    assert server_lines[0].endswith("+0800 ")
    assert server_lines[1:1 + len(IIS_EHLO)] == [line.format(client="127.0.0.1") for line in IIS_EHLO]
    client_lines = [entry.text for entry in entries if entry.direction is Direction.CLIENT]
    assert client_lines == ["EHLO adminkb.example.com", f"MAIL FROM:<{FROM}>", f"RCPT TO:<{TO}>", "QUIT"]
    elapsed = [entry.elapsed for entry in entries]
    assert elapsed == sorted(elapsed)
    assert entries[0].direction is Direction.NOTE


def test_to_text_markers_and_timing():
    with FakeServer(ScriptedSmtp()) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    timed = result.transcript.to_text()
    plain = result.transcript.to_text(timing=False)
    swaks = result.transcript.to_text(timing=False, markers="swaks")
    assert timed.splitlines()[2].split()[0].endswith("s")
    assert plain.splitlines()[2].startswith("S: 220 ")
    assert "C: EHLO adminkb.example.com" in plain.splitlines()
    assert "<-  220 " in swaks
    assert "->  MAIL FROM:<app@example.com>" in swaks.splitlines()
    with pytest.raises(ValueError):
        result.transcript.to_text(markers="morse")


def test_show_timing_off_for_displays():
    with FakeServer(ScriptedSmtp()) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert "s S: 220" in repr(result)
    result.show_timing = False
    assert repr(result) == result.to_text(timing=False)
    assert "s S: 220" not in result._repr_html_()
    assert "S: 220 mail01.example.com" in result._repr_html_()


def test_to_text_without_timing_is_repeatable():
    outputs = []
    for _ in range(2):
        with FakeServer(ScriptedSmtp()) as server:
            result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
        outputs.append(result.to_text(timing=False).replace(str(server.port), "PORT"))
    assert outputs[0] == outputs[1]


def test_send_delivers_zh_tw_test_message(monkeypatch):
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=[TO], send=True, timeout=5)
    assert result.verdict.level is Level.OK
    assert result.sent
    assert "accepted the message (1 of 1 recipients)" in result.verdict.summary
    assert script.commands[-2:] == ["DATA", "QUIT"]
    payload = script.messages[0]
    assert payload.endswith(b"\r\n.\r\n")
    parsed = email.message_from_bytes(payload[:-3], policy=email.policy.default)
    assert "=?utf-8?" in payload.decode("ascii").split("Subject: ", 1)[1].splitlines()[0]
    assert str(parsed["Subject"]) == "adminkb 測試郵件（SMTP 連線測試）"
    assert "測試郵件" in parsed.get_content()
    assert parsed["Message-ID"].endswith("@adminkb.example.com>")
    assert [recorded.step for recorded in result.replies][-3:] == ["data", "message", "quit"]


def test_build_test_message_is_ascii_on_the_wire():
    data = build_test_message(FROM, [TO])
    data.decode("ascii")
    subject_line = [line for line in data.split(b"\r\n") if line.startswith(b"Subject:")][0]
    assert b"=?utf-8?" in subject_line
    parts = email.header.decode_header(subject_line[len(b"Subject: "):].decode("ascii"))
    assert str(email.header.make_header(parts)) == "adminkb 測試郵件（SMTP 連線測試）"


def test_test_message_can_be_fixed():
    moment = datetime.datetime(2026, 3, 2, 9, 15, 7, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
    first = build_test_message(FROM, [TO], date=moment, message_id="<probe-1@adminkb.example.com>")
    second = build_test_message(FROM, [TO], date=moment, message_id="<probe-1@adminkb.example.com>")
    assert first == second
    assert b"Date: Mon, 02 Mar 2026 09:15:07 +0800\r\n" in first
    assert b"Message-ID: <probe-1@adminkb.example.com>\r\n" in first


def test_send_with_null_sender():
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from="", rcpt_to=TO, send=True, timeout=5)
    assert result.exit_code == 0
    assert "MAIL FROM:<>" in script.commands


def test_quit_after_mail_stops_before_rcpt():
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, quit_after="mail", timeout=5)
    assert result.exit_code == 0
    assert script.commands == ["EHLO adminkb.example.com", f"MAIL FROM:<{FROM}>", "QUIT"]


def test_quit_after_banner_sends_only_quit():
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, quit_after="banner", timeout=5)
    assert result.verdict.category == "accepted"
    assert "banner" in result.verdict.summary
    assert script.commands == ["QUIT"]


def test_quit_after_connect_sends_nothing():
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, quit_after="connect", timeout=5)
        server.stop()
    assert result.exit_code == 0
    assert script.commands == []
    assert not any(entry.direction is Direction.CLIENT for entry in result.transcript)


# --- refusals ------------------------------------------------------------------------------

def test_relay_denied_exits_24():
    script = ScriptedSmtp(recipient_reply="550 5.7.1 Unable to relay for {address}")
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to="someone@example.net", timeout=5)
    assert result.exit_code == 24
    assert result.verdict.level is Level.PROBLEM
    assert result.verdict.category == "relay_denied"
    assert result.verdict.step == "rcpt"
    assert "Relay restrictions" in result.verdict.next_step
    assert result.refused[0][0] == "someone@example.net"
    assert script.commands[-1] == "QUIT"


def test_some_recipients_refused_is_a_warning():
    script = ScriptedSmtp(rcpt={"far@example.net": "550 5.7.1 Unable to relay for {address}"})
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=[TO, "far@example.net", "b@example.com"],
                       timeout=5)
    assert result.exit_code == 0
    assert result.verdict.level is Level.WARNING
    assert result.verdict.category == "recipients_partly_refused"
    assert result.accepted == [TO, "b@example.com"]
    assert "2 of 3" in result.verdict.summary
    assert result.verdict.explanation.known.key == "iis_unable_to_relay"


def test_partial_refusal_still_sends():
    script = ScriptedSmtp(rcpt={"far@example.net": "550 5.7.1 Unable to relay for {address}"})
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=[TO, "far@example.net"], send=True,
                       timeout=5)
    assert result.sent
    assert len(script.messages) == 1
    assert result.verdict.level is Level.WARNING


def test_sender_rejected_exits_23():
    script = ScriptedSmtp(mail_reply="530 5.7.0 Authentication required")
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert result.exit_code == 23
    assert result.verdict.category == "auth_required"
    assert "RCPT TO:<user@example.com>" not in script.commands


def test_data_rejected_exits_25():
    script = ScriptedSmtp(data_reply="554 5.5.1 Error: no valid recipients")
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, send=True, timeout=5)
    assert result.exit_code == 25
    assert result.verdict.category == "data_rejected"


def test_message_rejected_exits_26():
    script = ScriptedSmtp(queued_reply="552 5.3.4 Message size exceeds fixed maximum message size")
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, send=True, timeout=5)
    assert result.exit_code == 26
    assert result.verdict.category == "size_exceeded"
    assert result.verdict.step == "message"
    assert not result.sent


def test_banner_554_exits_21():
    script = ScriptedSmtp(banner="554 5.7.1 mail01.example.com: no SMTP service here")
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert result.exit_code == 21
    assert result.verdict.category == "service_unavailable"
    assert script.commands == ["QUIT"]


# --- EHLO and HELO -------------------------------------------------------------------------

def test_ehlo_500_falls_back_to_helo():
    script = ScriptedSmtp(ehlo=["500 5.3.3 Unrecognized command"])
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert result.exit_code == 0
    assert script.commands[:2] == ["EHLO adminkb.example.com", "HELO adminkb.example.com"]
    assert any("falling back to HELO" in entry.text for entry in result.transcript)
    assert result.ehlo.extensions == {}


def test_ehlo_and_helo_rejected_exits_22():
    script = ScriptedSmtp(ehlo=["500 5.3.3 Unrecognized command"], helo="501 5.5.4 Invalid domain name")
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert result.exit_code == 22
    assert result.verdict.category == "ehlo_rejected"


def test_ehlo_4xx_is_not_retried_with_helo():
    script = ScriptedSmtp(ehlo=["421 4.3.2 Service not available, closing transmission channel"])
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert result.exit_code == 22
    assert "HELO adminkb.example.com" not in script.commands
    assert result.verdict.category == "service_unavailable"
    assert result.verdict.level is Level.WARNING


def test_custom_ehlo_name():
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, ehlo_name="app01.example.com", timeout=5)
    assert script.commands[0] == "EHLO app01.example.com"


# --- STARTTLS ------------------------------------------------------------------------------

def tls_script(tmp_path, **options) -> ScriptedSmtp:
    return ScriptedSmtp(ehlo=["250-mail01.example.com Hello [{client}]", "250-STARTTLS", "250-AUTH LOGIN PLAIN",
                              "250 OK"], tls_context=self_signed_context(tmp_path), **options)


def test_starttls_with_self_signed_certificate(tmp_path):
    script = tls_script(tmp_path)
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, starttls=True, tls_verify=False,
                       timeout=5)
    assert result.exit_code == 0
    assert result.tls is not None
    assert result.tls.version.startswith("TLS")
    assert result.tls.subject == "CN=mail01.example.com"
    assert script.commands[:3] == ["EHLO adminkb.example.com", "STARTTLS", "EHLO adminkb.example.com"]
    assert any(entry.tls for entry in result.transcript if entry.direction is Direction.CLIENT)
    assert "~>  MAIL FROM:<app@example.com>" in result.transcript.to_text(timing=False, markers="swaks")
    assert any("not verified" in text for text in result.verdict.note_texts)


def test_starttls_verification_fails_on_self_signed(tmp_path):
    with FakeServer(tls_script(tmp_path)) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, starttls=True, timeout=5)
    assert result.exit_code == 29
    assert result.verdict.category == "tls_verify_failed"
    assert "self-signed" in result.verdict.summary or "self signed" in result.verdict.summary
    assert "--no-verify" in result.verdict.next_step


def test_tls_handshake_garbage_fails_within_timeout():
    def handler(connection):
        connection.send("220 mail01.example.com ESMTP")
        connection.read_line()
        connection.send("250-mail01.example.com", "250 STARTTLS")
        connection.read_line()
        connection.send("220 2.0.0 Ready to start TLS")
        connection.send_raw(b"this is not a TLS record\r\n" * 20)
        connection.read_line()

    with FakeServer(handler) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, starttls=True, tls_verify=False,
                       timeout=3)
    assert result.exit_code == 29
    assert result.verdict.category == "tls_failed"
    assert result.verdict.step == "tls"
    assert result.transcript.entries[-1].elapsed < 3


def test_starttls_not_offered_exits_29():
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, starttls=True, timeout=5)
    assert result.exit_code == 29
    assert result.verdict.category == "tls_unavailable"
    assert "STARTTLS" not in script.commands


def test_starttls_refused_by_server(tmp_path):
    script = ScriptedSmtp(ehlo=["250-mail01.example.com", "250 STARTTLS"],
                          unknown_reply="454 4.7.0 TLS not available due to temporary reason")
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, starttls=True, timeout=5)
    assert result.exit_code == 29
    assert result.verdict.category == "tls_failed"
    assert result.verdict.level is Level.WARNING


# --- AUTH ----------------------------------------------------------------------------------

SECRET = "S3cret!密碼"


def secret_forms(user: str) -> list[str]:
    return [SECRET, base64.b64encode(SECRET.encode()).decode(), base64.b64encode(f"\0{user}\0{SECRET}".encode()).decode()]


@pytest.mark.parametrize("mechanisms, expected", [("LOGIN", "LOGIN"), ("PLAIN LOGIN", "PLAIN"), ("LOGIN PLAIN", "PLAIN")])
def test_auth_secret_never_recorded(tmp_path, caplog, mechanisms, expected):
    caplog.set_level(logging.DEBUG, logger="adminkb")
    user = "app01@example.com"
    script = ScriptedSmtp(ehlo=["250-mail01.example.com Hello [{client}]", f"250-AUTH {mechanisms}", "250 OK"],
                          auth=(user, SECRET))
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, auth_user=user, auth_password=SECRET,
                       timeout=5)
    assert result.exit_code == 0
    assert any(command.startswith(f"AUTH {expected}") for command in script.commands)
    assert any(recorded.reply.code == 235 for recorded in result.replies)
    outputs = {
        "text": result.to_text(),
        "html": result._repr_html_(),
        "json": json.dumps(result.to_dict(), ensure_ascii=False),
        "repr": repr(result),
        "log": "\n".join(record.getMessage() for record in caplog.records),
    }
    for name, output in outputs.items():
        for form in secret_forms(user):
            assert form not in output, f"{name} shows the secret as {form!r}"
    redacted = [entry.text for entry in result.transcript if REDACTED in entry.text]
    assert redacted, "the credential lines should appear as <redacted>"
    assert any(user in entry.text for entry in result.transcript if entry.direction is Direction.NOTE)


def test_auth_plain_without_initial_response():
    # A server that replies 334 to AUTH PLAIN with its token still gets a redacted second line.
    user = "app01@example.com"
    script = ScriptedSmtp(ehlo=["250-mail01.example.com", "250 AUTH PLAIN"], auth=(user, SECRET))

    def handler(connection):
        original = script._authenticate

        def authenticate(conn, line):
            # Ignore the initial response and ask for it again, as some servers do.
            if line.upper().startswith("AUTH PLAIN "):
                conn.send("334 ")
                token = conn.read_line() or ""
                _, got_user, got_password = base64.b64decode(token).decode().split("\0")
                conn.send("235 2.7.0 Authentication successful" if (got_user, got_password) == script.auth
                          else "535 5.7.3 Authentication unsuccessful")
            else:
                original(conn, line)

        script._authenticate = authenticate
        script(connection)

    with FakeServer(handler) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, auth_user=user, auth_password=SECRET,
                       timeout=5)
    assert result.exit_code == 0
    client_lines = [entry.text for entry in result.transcript if entry.direction is Direction.CLIENT]
    assert "AUTH PLAIN <redacted>" in client_lines
    assert "<redacted>" in client_lines
    for form in secret_forms(user):
        assert form not in result.to_text()


def test_auth_failure_exits_28():
    script = ScriptedSmtp(ehlo=["250-mail01.example.com", "250 AUTH LOGIN"], auth=("app01", "right"))
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, auth_user="app01",
                       auth_password="wrong", timeout=5)
    assert result.exit_code == 28
    assert result.verdict.category == "auth_failed"
    assert result.verdict.explanation.known.key == "auth_unsuccessful"
    assert not any(command.startswith("MAIL") for command in script.commands)


def test_auth_not_offered_exits_28():
    script = ScriptedSmtp(ehlo=["250-mail01.example.com", "250 AUTH GSSAPI NTLM"])
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, auth_user="app01",
                       auth_password=SECRET, timeout=5)
    assert result.exit_code == 28
    assert result.verdict.category == "auth_unavailable"
    assert "PLAIN or LOGIN" in result.verdict.summary
    assert any(entry.text.endswith("EHLO reply: GSSAPI NTLM") for entry in result.transcript)
    assert script.commands[-1] == "QUIT"


# --- DATA ----------------------------------------------------------------------------------

def test_dot_stuffing_reaches_server_byte_for_byte():
    script = ScriptedSmtp()
    body = b"Subject: dots\n\n.starts with a dot\n..two dots\nmiddle . dot\n.\nbare cr\rend"
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, send=True, message=body, timeout=5)
    assert result.exit_code == 0
    assert script.messages[0] == (b"Subject: dots\r\n\r\n..starts with a dot\r\n...two dots\r\nmiddle . dot\r\n"
                                  b"..\r\nbare cr\r\nend\r\n.\r\n")


def test_message_as_text_and_email_message():
    from email.message import EmailMessage

    script = ScriptedSmtp()
    message = EmailMessage()
    message["Subject"] = "hello"
    message.set_content(".leading dot line\n")
    with FakeServer(script, connections=2) as server:
        probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, send=True, message="Subject: a\n\nbody\n", timeout=5)
        probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, send=True, message=message, timeout=5)
    assert script.messages[0] == b"Subject: a\r\n\r\nbody\r\n.\r\n"
    assert b"\r\n..leading dot line\r\n" in script.messages[1]


@pytest.mark.parametrize("raw, expected", [
    (b"", b".\r\n"),
    (b"a", b"a\r\n.\r\n"),
    (b"a\r\n", b"a\r\n.\r\n"),
    (b".", b"..\r\n.\r\n"),
    (b"x\n.\ny", b"x\r\n..\r\ny\r\n.\r\n"),
    (b"one\r\ntwo\nthree\rfour", b"one\r\ntwo\r\nthree\r\nfour\r\n.\r\n"),
    (b"\n\n", b"\r\n\r\n.\r\n"),
])
def test_prepare_data(raw, expected):
    assert prepare_data(raw) == expected


# --- addresses and connection options ------------------------------------------------------

def test_source_address_is_used():
    if not loopback_alias_available("127.0.0.10"):
        pytest.skip("127.0.0.10 is not routed to loopback on this machine")
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=TO, source_address="127.0.0.10", timeout=5)
    assert server.connection.client_ip == "127.0.0.10"
    assert result.verdict.explanation is None
    ehlo_reply = result.replies[1].reply
    assert "Hello [127.0.0.10]" in ehlo_reply.texts[0]


def test_host_name_is_resolved():
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        result = probe("localhost", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert result.exit_code == 0


def test_ipv6_loopback():
    if not ipv6_loopback_available():
        pytest.skip("IPv6 loopback (::1) is not available on this machine")
    script = ScriptedSmtp()
    with FakeServer(script, host="::1") as server:
        result = probe("::1", server.port, mail_from=FROM, rcpt_to=TO, timeout=5)
    assert result.exit_code == 0
    assert f"[::1]:{server.port}" in result.to_text()


def test_session_used_directly():
    script = ScriptedSmtp()
    with FakeServer(script) as server, SmtpSession("127.0.0.1", server.port, timeout=5) as session:
        session.connect()
        assert session.read_banner().code == 220
        assert session.ehlo().code == 250
        assert session.supports("size")
        reply = session.command("RSET", step="mail")
        assert reply.text == "Resetting"
        assert session.quit().code == 221
        assert not session.connected
    assert "open" not in repr(session)


# --- input checked before connecting -------------------------------------------------------

BAD_ADDRESSES = [
    ("no-at-sign.example.com", "the @ is missing"),
    ("user@", "the domain right of @ is empty"),
    ("@example.com", "the local part left of @ is empty"),
    ("first last@example.com", "not allowed"),
    ("a..b@example.com", "not allowed"),
    (".a@example.com", "not allowed"),
    ("user@exa_mple.com", "not a valid domain name"),
    ("user@-example.com", "not a valid domain name"),
    ("user@[999.1.1.1]", "not a valid domain name"),
    ("user@example.com\r\nRCPT TO:<victim@example.net>", "control characters"),
    ("使用者@example.com", "non-ASCII"),
    ("x" * 65 + "@example.com", "longer than 64"),
    ("a@" + ".".join(["b" * 60] * 5), "not a valid domain name"),
    ("", "the address is empty"),
]


@pytest.mark.parametrize("address, reason", BAD_ADDRESSES)
def test_invalid_recipient_rejected_before_connecting(address, reason):
    with FakeServer(ScriptedSmtp()) as server:
        with pytest.raises(InputError) as caught:
            probe("127.0.0.1", server.port, mail_from=FROM, rcpt_to=[TO, address], timeout=5)
        server.stop()
        assert server.connections == []
    text = str(caught.value)
    assert reason in text
    assert "rcpt_to" in text
    assert caught.value.value == address


def test_invalid_sender_named_in_error():
    with pytest.raises(InputError) as caught:
        probe("127.0.0.1", 25, mail_from="bad sender@example.com", rcpt_to=TO)
    assert "bad sender@example.com" in str(caught.value)
    assert "mail_from" in str(caught.value)
    assert "Next step: " in str(caught.value)


@pytest.mark.parametrize("address", ["user%other.example@example.com", '"john doe"@example.com', "a@[192.0.2.1]",
                                     "a@[IPv6:2001:db8::1]", "<user@example.com>", "x+tag@sub.example.test",
                                     "a@localhost"])
def test_valid_addresses_accepted(address):
    assert validate_address(address, option="rcpt_to") == address.strip("<>")


def test_postmaster_without_domain_only_for_recipients():
    assert validate_address("Postmaster", option="rcpt_to", allow_postmaster=True) == "Postmaster"
    with pytest.raises(InputError):
        validate_address("Postmaster", option="mail_from")


@pytest.mark.parametrize("options, fragment", [
    ({"port": 0}, 'port "0" is invalid'),
    ({"port": 70000}, 'port "70000" is invalid'),
    ({"timeout": 0}, 'timeout "0" is invalid'),
    ({"timeout": float("nan")}, 'timeout "nan" is invalid'),
    ({"timeout": -1}, 'timeout "-1" is invalid'),
    ({"ehlo_name": "bad name"}, "EHLO name bad name"),
    ({"source_address": "not-an-ip"}, "source address not-an-ip"),
    ({"quit_after": "bogus"}, "stop step bogus is invalid"),
    ({"quit_after": "data"}, "needs send=True"),
    ({"auth_user": "app01"}, "no password"),
    ({"auth_password": "x"}, "without a user name"),
    ({"auth_user": "a\r\nb", "auth_password": "x"}, "must not be empty"),
    ({"message": b"hello"}, "without asking to send"),
    ({"rcpt_to": []}, "At least one recipient"),
])
def test_invalid_options_rejected(options, fragment):
    arguments = {"port": 25, "mail_from": FROM, "rcpt_to": TO, **options}
    port = arguments.pop("port")
    with pytest.raises(InputError) as caught:
        probe("127.0.0.1", port, **arguments)
    assert fragment in str(caught.value)


def test_invalid_message_type_rejected():
    with pytest.raises(InputError) as caught:
        probe("127.0.0.1", 25, mail_from=FROM, rcpt_to=TO, send=True, message=12345)  # type: ignore[arg-type]
    assert "type int cannot be used" in str(caught.value)


def test_address_must_be_text():
    with pytest.raises(InputError) as caught:
        validate_address(None, option="rcpt_to")  # type: ignore[arg-type]
    assert "must be text" in str(caught.value)


def test_source_not_on_this_computer():
    # 192.0.2.1 is a documentation address that no interface carries: binding fails locally.
    result = probe("127.0.0.1", 2525, mail_from=FROM, rcpt_to=TO, source_address="192.0.2.1", timeout=2)
    assert result.exit_code == 2
    assert result.verdict.category == "source_unusable"
    assert "from the source address 192.0.2.1" in result.verdict.summary
    assert "--source-ip" not in result.verdict.next_step


def test_source_family_must_match_host():
    result = probe("::1", 2525, mail_from=FROM, rcpt_to=TO, source_address="127.0.0.10", timeout=2)
    assert result.exit_code == 2
    assert result.verdict.category == "connect_failed"
    assert "same family" in result.verdict.summary


@pytest.mark.parametrize("host", ["", "bad host", "exa_mple.com", "[::1"])
def test_invalid_host_rejected(host):
    with pytest.raises(InputError) as caught:
        probe(host, 25, mail_from=FROM, rcpt_to=TO)
    assert "not a valid host name or IP address" in str(caught.value)


def test_no_default_host():
    with pytest.raises(TypeError):
        probe(mail_from=FROM, rcpt_to=TO)  # type: ignore[call-arg]


def test_reply_object_is_public():
    assert Reply.from_text("250 OK").positive
