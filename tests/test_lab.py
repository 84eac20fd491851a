"""The mail lab through real sockets: the IIS 6.0 dialogue, relay, mailroot files, logs and the CLI."""

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from adminkb.errors import InputError, LabError
from adminkb.lab import (
    LAB_ADDRESS,
    SERVICE_DEFAULT_FIELDS,
    STRANGER_ADDRESS,
    TRUSTED_CLIENT_ADDRESS,
    AccessList,
    FixedClock,
    MailLab,
    can_bind_source_address,
)

START = datetime(2026, 3, 2, 1, 15, 7, tzinfo=timezone.utc)
BANNER = (b"220 mail01.example.com Microsoft ESMTP MAIL Service, Version: 6.0.3790.4675 "
          b"ready at  Mon, 2 Mar 2026 09:15:07 +0800 \r\n")
SOCKET_TIMEOUT = 10

aliases = pytest.mark.skipif(
    not (can_bind_source_address(TRUSTED_CLIENT_ADDRESS) and can_bind_source_address(STRANGER_ADDRESS)),
    reason="this host has no loopback address besides 127.0.0.1 (macOS), so clients cannot be told apart")


class RawClient:
    """A telnet-like client: send one line, read the whole reply as a list of raw lines."""

    def __init__(self, lab, source=STRANGER_ADDRESS):
        self.sock = socket.create_connection((lab.host, lab.port), timeout=SOCKET_TIMEOUT,
                                             source_address=(source, 0))
        self.file = self.sock.makefile("rb")

    def reply(self):
        lines = []
        while True:
            line = self.file.readline()
            assert line, f"connection closed after {lines!r}"
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    def command(self, text):
        self.sock.sendall(text.encode("ascii") + b"\r\n")
        return self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def wait_for(condition, timeout=5.0):
    """Poll `condition` every 20 ms until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def log_text(lab):
    return b"".join(path.read_bytes() for path in lab.log_files()).decode("cp950")


@pytest.fixture
def lab(tmp_path):
    with MailLab(root=tmp_path / "lab", clock=FixedClock(START)) as running:
        yield running


def greet(client, name="app01.example.net"):
    assert client.reply()[0].startswith(b"220 mail01.example.com Microsoft ESMTP MAIL Service")
    assert client.command(f"EHLO {name}")[-1] == b"250 OK\r\n"


# Dialogue


def test_banner_text(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        assert client.reply() == [BANNER]


def test_ehlo_list_in_service_order(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        client.reply()
        assert client.command("EHLO app01.example.net") == [
            b"250-mail01.example.com Hello [127.0.0.1]\r\n", b"250-TURN\r\n", b"250-SIZE 2097152\r\n",
            b"250-ETRN\r\n", b"250-PIPELINING\r\n", b"250-DSN\r\n", b"250-ENHANCEDSTATUSCODES\r\n",
            b"250-8bitmime\r\n", b"250-BINARYMIME\r\n", b"250-CHUNKING\r\n", b"250-VRFY\r\n", b"250 OK\r\n"]


def test_ehlo_size_follows_setting(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START), max_message_size=4096) as lab:
        with RawClient(lab, LAB_ADDRESS) as client:
            client.reply()
            assert b"250-SIZE 4096\r\n" in client.command("EHLO app01")


@aliases
def test_helo_reply_names_client(lab):
    with RawClient(lab, STRANGER_ADDRESS) as client:
        client.reply()
        assert client.command("HELO darkthread") == [b"250 mail01.example.com Hello [127.0.0.66]\r\n"]


def test_helo_without_name_refused(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        client.reply()
        assert client.command("HELO") == [b"501 5.5.4 Invalid Address\r\n"]
        assert client.command("MAIL FROM:<web@example.net>") == [b"503 5.5.2 Send hello first\r\n"]


def test_sender_ok_text(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        assert client.command("MAIL FROM:<web@example.net>") == [b"250 2.1.0 web@example.net....Sender OK\r\n"]


def test_telnet_style_sender_without_brackets(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        assert client.command("mail from: jeffrey@example.net") == [
            b"250 2.1.0 jeffrey@example.net....Sender OK\r\n"]


def test_null_sender_accepted(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        assert client.command("MAIL FROM:<>") == [b"250 2.1.0 <>....Sender OK\r\n"]


def test_local_recipient_reply_ends_with_space(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<user@example.com>") == [b"250 2.1.5 user@example.com \r\n"]


def test_unrecognized_command(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        client.reply()
        assert client.command("XYZZY now") == [b"500 5.3.3 Unrecognized command\r\n"]
        assert client.command("GET / HTTP/1.0") == [b"500 5.3.3 Unrecognized command\r\n"]
        assert client.command("") == [b"500 5.3.3 Unrecognized command\r\n"]
        assert client.command("EXPN staff") == [b"500 5.3.3 Unrecognized command\r\n"]


def test_overlong_command_line(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        client.reply()
        assert client.command("NOOP " + "x" * 5000) == [b"500 5.3.3 Unrecognized command\r\n"]
        assert client.command("NOOP") == [b"250 2.0.0 OK\r\n"]


def test_rset_clears_transaction(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RSET") == [b"250 2.0.0 Resetting\r\n"]
        assert client.command("RCPT TO:<user@example.com>") == [b"503 5.5.2 Need mail command\r\n"]
        assert client.command("MAIL FROM:<other@example.net>") == [b"250 2.1.0 other@example.net....Sender OK\r\n"]


def test_command_order_errors(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        assert client.command("RCPT TO:<user@example.com>") == [b"503 5.5.2 Need mail command\r\n"]
        assert client.command("DATA") == [b"503 5.5.2 Need mail command\r\n"]
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("MAIL FROM:<web@example.net>") == [b"503 5.5.2 Sender already specified\r\n"]
        assert client.command("DATA") == [b"503 5.5.2 Need rcpt command\r\n"]


def test_bad_addresses_and_arguments(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        assert client.command("MAIL web@example.net") == [b"501 5.5.4 Invalid arguments\r\n"]
        assert client.command("MAIL FROM:<web@example.net") == [b"501 5.5.4 Invalid Address\r\n"]
        assert client.command("MAIL FROM:<web@example.net> FOO=BAR") == [b"501 5.5.4 Invalid arguments\r\n"]
        assert client.command("MAIL FROM:<web@example.net> SIZE=big") == [b"501 5.5.4 Invalid arguments\r\n"]
        client.command("MAIL FROM:<web@example.net> SIZE=1000 BODY=8BITMIME")
        assert client.command("RCPT TO:<nobody>") == [b"501 5.5.4 Invalid Address\r\n"]
        assert client.command("RCPT TO:<user@example.com> NOTIFY=NEVER") == [b"250 2.1.5 user@example.com \r\n"]
        assert client.command("RCPT TO:<user@example.com> COLOR=RED") == [b"501 5.5.4 Invalid arguments\r\n"]


def test_other_commands(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        assert client.command("NOOP") == [b"250 2.0.0 OK\r\n"]
        assert client.command("HELP") == [
            b"214-This server supports the following commands:\r\n",
            b"214 HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP AUTH TURN ETRN BDAT VRFY\r\n"]
        assert client.command("VRFY bob") == [
            b"252 2.1.5 Cannot VRFY user, but will take message for <bob@example.com>\r\n"]
        assert client.command("STARTTLS") == [b"554 5.7.3 Unable to initialize security subsystem\r\n"]
        assert client.command("AUTH LOGIN") == [b"504 5.7.4 Unrecognized authentication type\r\n"]
        assert client.command("TURN") == [b"502 5.7.0 Permission denied\r\n"]
        assert client.command("ETRN example.net") == [b"250 2.0.0 Queuing for node example.net started\r\n"]


def test_quit_closes(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        client.reply()
        assert client.command("QUIT") == [b"221 2.0.0 mail01.example.com Service closing transmission channel\r\n"]
        assert client.file.readline() == b""


def test_pipelined_commands(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        client.send(b"MAIL FROM:<web@example.net>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n")
        assert [client.reply(), client.reply(), client.reply()] == [
            [b"250 2.1.0 web@example.net....Sender OK\r\n"], [b"250 2.1.5 user@example.com \r\n"],
            [b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"]]
        client.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\n")
        assert client.reply()[0].startswith(b"250 2.6.0 <MAIL01")


# Relay restrictions


@aliases
def test_relay_denied_for_stranger(lab):
    with RawClient(lab, STRANGER_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<someone@example.org>") == [
            b"550 5.7.1 Unable to relay for someone@example.org\r\n"]
    assert lab.queue_files() == []


@aliases
def test_relay_allowed_after_grant(lab):
    lab.allow_relay(TRUSTED_CLIENT_ADDRESS)
    assert lab.relay_grant == ["127.0.0.10"]
    with RawClient(lab, TRUSTED_CLIENT_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<someone@example.org>") == [b"250 2.1.5 someone@example.org \r\n"]
    with RawClient(lab, STRANGER_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<someone@example.org>")[0].startswith(b"550 5.7.1")


@aliases
def test_deny_relay_takes_grant_back(lab):
    lab.allow_relay(TRUSTED_CLIENT_ADDRESS)
    lab.deny_relay(TRUSTED_CLIENT_ADDRESS)
    assert lab.relay_grant == []
    with RawClient(lab, TRUSTED_CLIENT_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<someone@example.org>")[0].startswith(b"550 5.7.1")


@aliases
def test_relay_grant_by_subnet(lab):
    lab.set_relay_grant(["127.0.0.0/28"])
    with RawClient(lab, TRUSTED_CLIENT_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<someone@example.org>")[0].startswith(b"250 2.1.5")
    with RawClient(lab, STRANGER_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<someone@example.org>")[0].startswith(b"550 5.7.1")


def test_deny_inside_granted_subnet(lab, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    lab.set_relay_grant(["127.0.0.0/28"])
    with pytest.raises(InputError) as caught:
        lab.deny_relay(TRUSTED_CLIENT_ADDRESS)
    assert "127.0.0.0/28" in str(caught.value)
    assert lab.relay_grant == ["127.0.0.0/28"]


@aliases
def test_open_relay_on_loopback(lab):
    lab.set_relay_open(except_entries=[STRANGER_ADDRESS])
    assert lab.relay_open
    with RawClient(lab, TRUSTED_CLIENT_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<someone@example.org>")[0].startswith(b"250 2.1.5")
    with RawClient(lab, STRANGER_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<someone@example.org>")[0].startswith(b"550 5.7.1")


@aliases
def test_percent_hack_accepted(lab):
    # Accepted at RCPT and bounced later: relay checkers that call this an open relay are wrong.
    with RawClient(lab, STRANGER_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        assert client.command("RCPT TO:<user%other.example@example.com>") == [
            b"250 2.1.5 user%other.example@example.com \r\n"]


# Accepted mail in the mailroot


@aliases
def test_stranger_local_mail_in_drop(lab):
    with RawClient(lab, STRANGER_ADDRESS) as client:
        greet(client, "client.example.net")
        client.command("MAIL FROM:<web@example.net>")
        client.command("RCPT TO:<user@example.com>")
        assert client.command("DATA") == [b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"]
        client.send(b"Subject: hello\r\n\r\n..leading dot\r\nbody\r\n.\r\n")
        assert client.reply() == [
            b"250 2.6.0 <MAIL01BsD65V34BgVZE00000001@mail01.example.com> Queued mail for delivery\r\n"]
    assert lab.queue_files() == []
    [drop] = lab.drop_files()
    assert drop.name == "NTFS_01ab9f8001dca9e200000001.EML"
    assert drop.read_bytes() == (
        b"X-Sender: web@example.net\r\n"
        b"X-Receiver: user@example.com\r\n"
        b"Received: from client.example.net ([127.0.0.66]) by mail01.example.com with Microsoft "
        b"SMTPSVC(6.0.3790.4675);\r\n"
        b"\t Mon, 2 Mar 2026 09:15:07 +0800\r\n"
        b"Subject: hello\r\n"
        b"Message-ID: <MAIL01BsD65V34BgVZE00000001@mail01.example.com>\r\n"
        b"X-OriginalArrivalTime: 02 Mar 2026 01:15:07.0000 (UTC) FILETIME=[01AB9F80:01DCA9E2]\r\n"
        b"\r\n"
        b".leading dot\r\n"
        b"body\r\n")


@aliases
def test_remote_recipient_goes_to_queue(lab):
    lab.allow_relay(TRUSTED_CLIENT_ADDRESS)
    with smtplib.SMTP(lab.host, lab.port, local_hostname="app01.example.com", timeout=SOCKET_TIMEOUT,
                      source_address=(TRUSTED_CLIENT_ADDRESS, 0)) as client:
        refused = client.sendmail("web@example.com", ["someone@example.org", "user@example.com"],
                                  b"Subject: both\r\nMessage-ID: <app-1@app01.example.com>\r\n\r\nhi\r\n")
    assert refused == {}
    [queued] = lab.queue_files()
    [dropped] = lab.drop_files()
    assert queued.read_bytes().startswith(b"X-Sender: web@example.com\r\nX-Receiver: someone@example.org\r\n"
                                          b"Received: from app01.example.com ([127.0.0.10])")
    assert dropped.read_bytes().startswith(b"X-Sender: web@example.com\r\nX-Receiver: user@example.com\r\n")
    assert queued.name != dropped.name
    assert queued.read_bytes().count(b"Message-ID:") == 1


def test_own_message_id_echoed(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        client.command("RCPT TO:<user@example.com>")
        client.command("DATA")
        client.send(b"Message-ID: <4F5002F2.860022@example.net>\r\nSubject: x\r\n\r\nbody\r\n.\r\n")
        # The service echoes the header value as received, with its leading space.
        assert client.reply() == [b"250 2.6.0  <4F5002F2.860022@example.net> Queued mail for delivery\r\n"]
    assert " DATA - +<4F5002F2.860022@example.net> 250 " in log_text(lab)


def test_message_size_limit(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START), max_message_size=2048) as lab:
        with RawClient(lab, LAB_ADDRESS) as client:
            greet(client)
            assert client.command("MAIL FROM:<web@example.net> SIZE=4096") == [
                b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"]
            client.command("MAIL FROM:<web@example.net>")
            client.command("RCPT TO:<user@example.com>")
            client.command("DATA")
            client.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 40 + b".\r\n")
            assert client.reply() == [b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"]
            # The transaction is over; the session goes on.
            assert client.command("RCPT TO:<user@example.com>") == [b"503 5.5.2 Need mail command\r\n"]
            client.command("MAIL FROM:<web@example.net>")
            client.command("RCPT TO:<user@example.com>")
            client.command("DATA")
            client.send(b"Subject: small\r\n\r\nok\r\n.\r\n")
            assert client.reply()[0].startswith(b"250 2.6.0")
        assert len(lab.drop_files()) == 1
        assert b"Subject: small" in lab.drop_files()[0].read_bytes()


def test_long_data_line_over_limit(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START), max_message_size=2048) as lab:
        with RawClient(lab, LAB_ADDRESS) as client:
            greet(client)
            client.command("MAIL FROM:<web@example.net>")
            client.command("RCPT TO:<user@example.com>")
            client.command("DATA")
            client.send(b"Subject: one line\r\n\r\n" + b"y" * 100_000 + b"\r\n.\r\n")
            assert client.reply() == [b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"]
        assert lab.drop_files() == []


def test_long_data_line_within_limit_kept(lab):
    line = b"z" * 5000 + b"\r\n"
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        client.command("RCPT TO:<user@example.com>")
        client.command("DATA")
        client.send(b"Subject: long\r\n\r\n" + line + b".\r\n")
        assert client.reply()[0].startswith(b"250 2.6.0")
    assert lab.drop_files()[0].read_bytes().endswith(b"\r\n\r\n" + line)


def test_bdat_chunks(lab):
    first = b"Subject: chunked\r\n\r\npart one\r\n"
    second = b"part two\r\n"
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net> BODY=BINARYMIME")
        client.command("RCPT TO:<user@example.com>")
        client.send(f"BDAT {len(first)}\r\n".encode() + first)
        assert client.reply() == [f"250 2.0.0 {len(first)} bytes received\r\n".encode()]
        client.send(f"BDAT {len(second)} LAST\r\n".encode() + second)
        assert client.reply()[0].startswith(b"250 2.6.0 <MAIL01")
    assert lab.drop_files()[0].read_bytes().endswith(b"\r\n\r\npart one\r\npart two\r\n")


def test_bdat_without_recipient(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        client.command("MAIL FROM:<web@example.net>")
        client.send(b"BDAT 5 LAST\r\nhello")
        assert client.reply() == [b"503 5.5.2 Need rcpt command\r\n"]
        assert client.command("NOOP") == [b"250 2.0.0 OK\r\n"]


# Connection control


@aliases
@pytest.mark.parametrize("control, stranger_allowed, trusted_allowed", [
    ({"grant": [TRUSTED_CLIENT_ADDRESS]}, False, True),
    ({"grant": ["127.0.0.0/29"]}, False, False),
    ({"grant": ["127.0.0.0/28"]}, False, True),
    ({"deny": [STRANGER_ADDRESS]}, False, True),
    ({"deny": ["127.0.0.64/30"]}, False, True),
    ({"deny": ["127.0.0.0/24"]}, False, False),
    (None, True, True),
])
def test_connection_control(tmp_path, control, stranger_allowed, trusted_allowed):
    with MailLab(root=tmp_path, clock=FixedClock(START), connection_control=control) as lab:
        for source, allowed in ((STRANGER_ADDRESS, stranger_allowed), (TRUSTED_CLIENT_ADDRESS, trusted_allowed)):
            with RawClient(lab, source) as client:
                first = client.file.readline()
                assert (first == BANNER) == allowed, (source, first)
                if not allowed:
                    assert first == b""


@aliases
def test_connection_control_at_runtime(lab):
    lab.deny_connection(STRANGER_ADDRESS)
    assert lab.connection_control == {"deny": [STRANGER_ADDRESS]}
    with RawClient(lab, STRANGER_ADDRESS) as client:
        assert client.file.readline() == b""
    lab.allow_connection(STRANGER_ADDRESS)
    assert lab.connection_control == {"deny": []}
    with RawClient(lab, STRANGER_ADDRESS) as client:
        assert client.file.readline() == BANNER
    lab.set_connection_control({"grant": [TRUSTED_CLIENT_ADDRESS]})
    with RawClient(lab, STRANGER_ADDRESS) as client:
        assert client.file.readline() == b""
    lab.set_connection_control(None)
    assert lab.connection_control is None


def test_denied_connection_writes_no_log_line(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START), connection_control={"deny": ["127.0.0.0/8"]}) as lab:
        with RawClient(lab, LAB_ADDRESS) as client:
            assert client.file.readline() == b""
        time.sleep(0.1)
        assert lab.log_files() == []


# Safety and settings


def test_bad_local_domain_example_is_domain():
    with pytest.raises(InputError) as caught:
        MailLab(local_domains=["bad domain"])
    assert caught.value.next_key == "lab.invalid_domain_next"
    assert "example.com" in str(caught.value)
    assert "mail01.example.com" not in str(caught.value)


def test_non_loopback_listen_refused(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(LabError) as caught:
        MailLab(listen="192.0.2.10")
    assert "192.0.2.10" in str(caught.value)
    assert "add allow_non_loopback=True only if" in str(caught.value)
    with pytest.raises(LabError):
        MailLab(listen="0.0.0.0")


@pytest.mark.parametrize("options", [
    {"relay_open": True},
    {"relay_grant": ["0.0.0.0/0"]},
    {"relay_grant": ["::/0"]},
])
def test_exposed_open_relay_refused(options, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(LabError) as caught:
        MailLab(listen="192.0.2.10", allow_non_loopback=True, **options)
    assert "relay cannot be open to everyone" in str(caught.value)


def test_runtime_open_relay_refused_exposed():
    lab = MailLab(listen="192.0.2.10", allow_non_loopback=True, relay_grant=["192.0.2.0/24"])
    with pytest.raises(LabError):
        lab.set_relay_open()
    with pytest.raises(LabError):
        lab.allow_relay("0.0.0.0/0")
    assert lab.relay_grant == ["192.0.2.0/24"]


def test_open_relay_on_loopback_allowed():
    lab = MailLab(relay_open=True)
    assert lab.relay_open
    assert lab.relay_grant == []


@pytest.mark.parametrize("options, key", [
    ({"relay_grant": ["127.0.0.300"]}, "lab.invalid_network"),
    ({"relay_grant": ["127.0.0.1/24"]}, "lab.invalid_network"),
    ({"relay_grant": "not-an-ip"}, "lab.invalid_network"),
    ({"listen": "localhost"}, "lab.invalid_address"),
    ({"port": -1}, "lab.invalid_port"),
    ({"port": 70000}, "lab.invalid_port"),
    ({"max_message_size": 10}, "lab.invalid_size"),
    ({"hostname": "mail 01"}, "lab.invalid_name"),
    ({"local_domains": ["192.0.2.1"]}, "lab.invalid_name"),
    ({"connection_control": {"allow": ["127.0.0.1"]}}, "lab.invalid_list_mode"),
    ({"connection_control": ["127.0.0.1"]}, "lab.invalid_connection_control"),
    ({"relay_open": True, "relay_grant": ["127.0.0.10"]}, "lab.relay_open_with_grant"),
    ({"log_fields": ["date", "bogus"]}, "lab.unknown_log_field"),
])
def test_bad_settings_are_input_errors(options, key):
    with pytest.raises(InputError) as caught:
        MailLab(**options)
    assert caught.value.key == key
    assert caught.value.exit_status == 2


def test_bad_log_encoding_is_input_error(tmp_path):
    with pytest.raises(InputError) as caught:
        MailLab(root=tmp_path, log_encoding="no-such-codec")
    assert caught.value.key == "lab.unknown_log_encoding"


def test_root_turned_file_before_start(tmp_path):
    target = tmp_path / "later"
    lab = MailLab(root=target)
    target.write_text("x")
    with pytest.raises(InputError) as caught:
        lab.start()
    assert caught.value.key == "lab.root_is_file"
    assert not lab.running


@pytest.mark.parametrize("name, next_key", [("mailroot", "lab.root_is_mailroot_parent_next"),
                                            ("copy", "lab.root_is_mailroot_next")])
def test_copied_mailroot_as_root_rejected(tmp_path, name, next_key):
    copied = tmp_path / name
    (copied / "Queue").mkdir(parents=True)
    (copied / "Badmail").mkdir()
    with pytest.raises(InputError) as caught:
        MailLab(root=copied).start()
    assert caught.value.key == "lab.root_is_mailroot"
    assert caught.value.next_key == next_key
    assert "Badmail, Queue" in str(caught.value)
    assert sorted(path.name for path in copied.iterdir()) == ["Badmail", "Queue"]


def test_root_with_lab_mailroot_accepted(tmp_path):
    (tmp_path / "mailroot" / "Queue").mkdir(parents=True)
    with MailLab(root=tmp_path) as lab:
        assert lab.mailroot == tmp_path / "mailroot"


def test_root_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(LabError) as caught:
        MailLab(root=blocker / "lab").start()
    assert caught.value.key == "lab.root_unusable"


def test_root_that_is_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(InputError) as caught:
        MailLab(root=target)
    assert str(target) in str(caught.value)


def test_paths_before_start_are_lab_error():
    with pytest.raises(LabError):
        MailLab().mailroot


def test_start_twice_is_lab_error(lab):
    with pytest.raises(LabError):
        lab.start()


def test_port_in_use_is_lab_error(lab):
    other = MailLab(port=lab.port)
    with pytest.raises(LabError) as caught:
        other.start()
    assert caught.value.key == "lab.port_in_use"
    assert f"findstr :{lab.port}" in str(caught.value)
    assert not other.running


def test_address_not_on_machine_is_bind_error():
    # 192.0.2.1 is a documentation address that this machine does not have.
    other = MailLab(listen="192.0.2.1", allow_non_loopback=True)
    with pytest.raises(LabError) as caught:
        other.start()
    assert caught.value.key == "lab.bind_failed"
    assert not other.running


def test_access_list_rules():
    grant = AccessList.of("grant", ["127.0.0.10", "192.0.2.0/24"])
    assert grant.allows("127.0.0.10")
    assert grant.allows("192.0.2.200")
    assert grant.allows("::ffff:192.0.2.1")
    assert not grant.allows("127.0.0.66")
    assert not grant.allows("::1")
    deny = AccessList.of("deny", ["127.0.0.66"])
    assert not deny.allows("127.0.0.66")
    assert deny.allows("127.0.0.10")
    assert deny.opens_to_unlisted()
    assert not grant.opens_to_unlisted()
    assert AccessList.of("grant", ["::/0"]).opens_to_unlisted()
    assert grant.entries() == ["127.0.0.10", "192.0.2.0/24"]


def test_can_bind_source_address():
    assert can_bind_source_address(LAB_ADDRESS)
    # A documentation address is on no interface of a test machine.
    assert not can_bind_source_address("192.0.2.123")


# Start, stop and the mailroot


def test_starts_in_milliseconds_without_dns(tmp_path, monkeypatch):
    def no_dns(*arguments, **keywords):
        raise AssertionError("the lab must not look up DNS names")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    monkeypatch.setattr(socket, "gethostbyaddr", no_dns)
    began = time.perf_counter()
    with MailLab(root=tmp_path) as lab:
        started = time.perf_counter() - began
        with RawClient(lab, LAB_ADDRESS) as client:
            assert client.reply()[0].startswith(b"220 mail01.example.com ")
            client.command("EHLO app01")
    # A few milliseconds normally; the bound leaves room for a loaded CI machine.
    assert started < 0.5


def test_stop_releases_port(tmp_path):
    lab = MailLab(root=tmp_path).start()
    port = lab.port
    client = RawClient(lab, LAB_ADDRESS)
    client.reply()
    lab.stop()
    assert not lab.running
    assert lab.port is None
    assert client.file.readline() == b""
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LAB_ADDRESS, port), timeout=SOCKET_TIMEOUT).close()
    again = MailLab(root=tmp_path, port=port).start()
    assert again.port == port
    again.stop()


def test_stop_twice_is_harmless(tmp_path):
    lab = MailLab(root=tmp_path).start()
    lab.stop()
    lab.stop()


def test_temporary_root_removed_on_stop():
    with MailLab() as lab:
        root = lab.root
        assert (root / "mailroot" / "Pickup").is_dir()
        assert lab.log_dir == root / "LogFiles" / "SMTPSVC1"
    assert not root.exists()


def test_given_root_kept_on_stop(tmp_path):
    with MailLab(root=tmp_path / "kept") as lab:
        with RawClient(lab, LAB_ADDRESS) as client:
            client.reply()
            client.command("QUIT")
    assert (tmp_path / "kept" / "mailroot" / "Drop").is_dir()
    assert wait_for(lambda: list((tmp_path / "kept" / "LogFiles" / "SMTPSVC1").glob("ex*.log")))


def test_restart_keeps_lab_usable(tmp_path):
    lab = MailLab(root=tmp_path, clock=FixedClock(START))
    for _ in range(2):
        lab.start()
        with RawClient(lab, LAB_ADDRESS) as client:
            assert client.reply() == [BANNER]
        lab.stop()


# W3C log


def session_for_log(lab, source=LAB_ADDRESS):
    with RawClient(lab, source) as client:
        greet(client, "app01")
        client.command("MAIL FROM:<web@example.net>")
        client.command("RCPT TO:<user@example.com>")
        client.command("DATA")
        client.send(b"Subject: log\r\n\r\nbody\r\n.\r\n")
        client.reply()
        client.command("xxxx rr.com")
        client.command("QUIT")


def test_log_lines_per_command(lab):
    session_for_log(lab)
    assert wait_for(lambda: "QUIT" in log_text(lab))
    lines = log_text(lab).split("\r\n")
    assert lines[:4] == [
        "#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0", "#Date: 2026-03-02 01:15:07",
        "#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
        "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
        "cs(User-Agent) cs(Cookie) cs(Referer) "]
    prefix = "2026-03-02 01:15:07 127.0.0.1 app01 SMTPSVC1 MAIL01 127.0.0.1 0 "
    assert lines[4:11] == [
        prefix + "EHLO - +app01 250 0 192 10 0 SMTP - - - -",
        prefix + "MAIL - +FROM:<web@example.net> 250 0 40 27 0 SMTP - - - -",
        prefix + "RCPT - +TO:<user@example.com> 250 0 29 26 0 SMTP - - - -",
        prefix + "DATA - <MAIL01BsD65V34BgVZE00000001@mail01.example.com> 250 0 131 22 0 SMTP - - - -",
        prefix + "xxxx - +rr.com 500 0 32 11 0 SMTP - - - -",
        prefix + "QUIT - app01 240 0 67 4 0 SMTP - - - -",
        "",
    ]


def test_log_before_helo_has_dash_username(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        client.reply()
        client.command("get / HTTP/1.0")
        client.command("QUIT")
    assert wait_for(lambda: "QUIT" in log_text(lab))
    text = log_text(lab)
    assert " 127.0.0.1 - SMTPSVC1 MAIL01 127.0.0.1 0 get - +/+HTTP/1.0 500 0 32 14 0 SMTP - - - -\r\n" in text
    assert " QUIT - - 240 " in text


def test_disconnect_without_quit_logged(lab):
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client, "app01")
        client.command("NOOP")
    assert wait_for(lambda: "QUIT" in log_text(lab))
    assert log_text(lab).endswith(" QUIT - app01 240 0 14 4 0 SMTP - - - -\r\n")


def test_time_taken_and_session_length(tmp_path):
    clock = FixedClock(START)
    with MailLab(root=tmp_path, clock=clock) as lab:
        with RawClient(lab, LAB_ADDRESS) as client:
            greet(client, "app01")
            client.command("MAIL FROM:<web@example.net>")
            client.command("RCPT TO:<user@example.com>")
            client.command("DATA")
            clock.advance(timedelta(milliseconds=1500))
            client.send(b"Subject: slow\r\n\r\nbody\r\n.\r\n")
            client.reply()
            client.command("QUIT")
        assert wait_for(lambda: "QUIT" in log_text(lab))
        lines = log_text(lab).split("\r\n")
    data_line = next(line for line in lines if " DATA " in line).split(" ")
    quit_line = next(line for line in lines if " QUIT " in line).split(" ")
    assert data_line[1] == "01:15:08"
    assert data_line[15] == "1500"
    assert quit_line[12] == "1500"


def test_new_log_block_after_restart(tmp_path):
    lab = MailLab(root=tmp_path, clock=FixedClock(START))
    for _ in range(2):
        with lab:
            session_for_log(lab)
            assert wait_for(lambda: log_text(lab).endswith("SMTP - - - -\r\n"))
    text = (tmp_path / "LogFiles" / "SMTPSVC1" / "ex260302.log").read_bytes().decode("cp950")
    assert text.count("#Software: Microsoft Internet Information Services 6.0\r\n") == 2
    assert text.count(" QUIT - app01 240 ") == 2


def test_service_default_log_fields(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START), log_fields=SERVICE_DEFAULT_FIELDS) as lab:
        session_for_log(lab)
        assert wait_for(lambda: "QUIT" in log_text(lab))
        lines = log_text(lab).split("\r\n")
    assert lines[3] == "#Fields: time c-ip cs-method cs-uri-stem sc-status "
    assert lines[4:10] == ["01:15:07 127.0.0.1 EHLO - 250", "01:15:07 127.0.0.1 MAIL - 250",
                           "01:15:07 127.0.0.1 RCPT - 250", "01:15:07 127.0.0.1 DATA - 250",
                           "01:15:07 127.0.0.1 xxxx - 500", "01:15:07 127.0.0.1 QUIT - 240"]


def test_log_fields_change_at_runtime(lab):
    session_for_log(lab)
    assert wait_for(lambda: "QUIT" in log_text(lab))
    lab.set_log_fields("time c-ip cs-method cs-uri-stem sc-status")
    session_for_log(lab)
    assert wait_for(lambda: log_text(lab).endswith("QUIT - 240\r\n"))
    assert log_text(lab).count("#Fields: ") == 2


def test_daily_rollover(tmp_path):
    clock = FixedClock(datetime(2026, 3, 2, 23, 59, 0, tzinfo=timezone.utc))
    with MailLab(root=tmp_path, clock=clock) as lab:
        session_for_log(lab)
        clock.advance(timedelta(minutes=2))
        session_for_log(lab)
        assert wait_for(lambda: len(lab.log_files()) == 2)
        assert wait_for(lambda: b" QUIT " in lab.log_files()[1].read_bytes())
        names = [path.name for path in lab.log_files()]
    assert names == ["ex260302.log", "ex260303.log"]


# Reproducibility


def record_run(root):
    with MailLab(root=root, clock=FixedClock(START)) as lab:
        quit_lines = log_text(lab).count(" QUIT ") if lab.log_dir.exists() else 0
        with RawClient(lab, LAB_ADDRESS) as client:
            banner = client.reply()
        session_for_log(lab)
        session_for_log(lab)
        assert wait_for(lambda: log_text(lab).count(" QUIT ") == quit_lines + 3)
        files = {path.name: path.read_bytes() for path in lab.drop_files()}
        return banner, log_text(lab), files


def test_fixed_clock_reproducible(tmp_path):
    first = record_run(tmp_path / "one")
    second = record_run(tmp_path / "two")
    assert first == second
    assert len(first[2]) == 2


def test_reused_root_never_overwrites(tmp_path):
    record_run(tmp_path)
    _, _, files = record_run(tmp_path)
    assert len(list((tmp_path / "mailroot" / "Drop").iterdir())) == 4
    assert len(files) == 4


# The adminkb lab command


def start_cli(*arguments, language="zh-TW"):
    environment = dict(os.environ, ADMINKB_LANG=language, PYTHONUNBUFFERED="1")
    # On Windows only a process group of its own can be sent Ctrl+Break.
    flags = subprocess.CREATE_NEW_PROCESS_GROUP if os.name == "nt" else 0
    return subprocess.Popen([sys.executable, "-m", "adminkb", "lab", *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=environment, creationflags=flags)


def run_cli(*arguments, language="zh-TW"):
    environment = dict(os.environ, ADMINKB_LANG=language)
    return subprocess.run([sys.executable, "-m", "adminkb", "lab", *arguments], capture_output=True,
                          timeout=60, env=environment)


STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT] if os.name != "nt" else [signal.CTRL_BREAK_EVENT]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop_signal", STOP_SIGNALS, ids=lambda number: signal.Signals(number).name)
def test_cli_runs_until_stopped(tmp_path, stop_signal):
    process = start_cli("--root", str(tmp_path), "--relay", TRUSTED_CLIENT_ADDRESS, "127.0.0.0/30",
                        "--local-domain", "example.com", "example.net")
    try:
        first = process.stdout.readline().decode("utf-8")
        match = re.search(r"127\.0\.0\.1:(\d+)", first)
        assert match, first
        assert "已啟動" in first
        rest = [process.stdout.readline().decode("utf-8") for _ in range(4)]
        assert str(tmp_path / "mailroot") in rest[0]
        assert str(tmp_path / "LogFiles" / "SMTPSVC1") in rest[1]
        assert "127.0.0.10, 127.0.0.0/30" in rest[2]
        assert "example.com, example.net" in rest[2]
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=SOCKET_TIMEOUT) as sock:
            assert sock.makefile("rb").readline().startswith(b"220 mail01.example.com Microsoft ESMTP MAIL Service")
        process.send_signal(stop_signal)
        output, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, errors.decode("utf-8", "replace")
    assert "郵件實驗室已停止" in output.decode("utf-8")
    assert (tmp_path / "mailroot" / "Queue").is_dir()


def test_cli_non_loopback_refused():
    result = run_cli("--listen", "192.0.2.10")
    assert result.returncode == 2
    text = result.stderr.decode("utf-8")
    assert "192.0.2.10 不是回送位址" in text
    assert "--allow-non-loopback" in text


def test_cli_exposed_open_relay_refused():
    result = run_cli("--listen", "192.0.2.10", "--allow-non-loopback", "--relay", "0.0.0.0/0", language="en")
    assert result.returncode == 2
    assert "relay cannot be open to everyone" in result.stderr.decode("utf-8")


def test_cli_invalid_network():
    result = run_cli("--relay", "127.0.0.1/24")
    assert result.returncode == 2
    assert "127.0.0.1/24" in result.stderr.decode("utf-8")
    assert "不是有效的 IP 位址或子網路" in result.stderr.decode("utf-8")
    assert "does not appear" not in result.stderr.decode("utf-8")


def test_cli_root_is_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = run_cli("--root", str(target), language="en")
    assert result.returncode == 2
    assert "is a file, not a folder" in result.stderr.decode("utf-8")


@pytest.mark.parametrize("port", ["abc", "70000"])
def test_cli_bad_port(port):
    result = run_cli("--port", port)
    assert result.returncode == 2


def test_cli_help_in_zh_tw():
    result = run_cli("--help")
    assert result.returncode == 0
    text = result.stdout.decode("utf-8")
    assert "允許轉送 (Relay) 的 IP 位址或子網路" in text
    assert "--allow-non-loopback" in text


# Edge cases of the connection


def test_non_ascii_sender_bytes_kept(lab):
    sender = "使用者@example.net".encode("utf-8")
    with RawClient(lab, LAB_ADDRESS) as client:
        greet(client)
        client.send(b"MAIL FROM:<" + sender + b">\r\n")
        assert client.reply() == [b"250 2.1.0 " + sender + b"....Sender OK\r\n"]
        client.command("RCPT TO:<user@example.com>")
        client.command("DATA")
        client.send(b"Subject: utf-8\r\n\r\nbody\r\n.\r\n")
        assert client.reply()[0].startswith(b"250 2.6.0")
    assert lab.drop_files()[0].read_bytes().startswith(b"X-Sender: " + sender + b"\r\n")


@pytest.mark.skipif(not can_bind_source_address("::1"), reason="this host has no IPv6 loopback address")
def test_ipv6_loopback(tmp_path):
    with MailLab(root=tmp_path, listen="::1", clock=FixedClock(START)) as lab:
        assert lab.address == f"[::1]:{lab.port}"
        with socket.create_connection(("::1", lab.port), timeout=SOCKET_TIMEOUT) as sock:
            reader = sock.makefile("rb")
            assert reader.readline() == BANNER
            sock.sendall(b"HELO app01\r\n")
            assert reader.readline() == b"250 mail01.example.com Hello [::1]\r\n"


@pytest.mark.timeout(30)
def test_idle_connection_timed_out(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START), connection_timeout=0.3) as lab:
        with RawClient(lab, LAB_ADDRESS) as client:
            greet(client, "app01")
            began = time.monotonic()
            assert client.file.readline() == b""
            assert time.monotonic() - began < 5
        assert wait_for(lambda: " QUIT - app01 240 " in log_text(lab))


@pytest.mark.timeout(30)
def test_stop_during_data(tmp_path):
    lab = MailLab(root=tmp_path, clock=FixedClock(START)).start()
    client = RawClient(lab, LAB_ADDRESS)
    greet(client)
    client.command("MAIL FROM:<web@example.net>")
    client.command("RCPT TO:<user@example.com>")
    client.command("DATA")
    client.send(b"Subject: never finished\r\n\r\nhalf a mess")
    began = time.monotonic()
    lab.stop()
    assert time.monotonic() - began < 5
    assert client.file.readline() == b""
    client.close()
    assert list((tmp_path / "mailroot" / "Drop").iterdir()) == []


def test_fixed_clock_moves_only_forward():
    clock = FixedClock(datetime(2026, 3, 2, 9, 15, 7))
    assert clock.now() == START.replace(hour=9)
    assert clock.advance(1.5) == START.replace(hour=9, second=8, microsecond=500000)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_lab_accepts_datetime_as_clock(tmp_path):
    with MailLab(root=tmp_path, clock=START) as lab:
        with RawClient(lab, LAB_ADDRESS) as client:
            assert client.reply() == [BANNER]


@pytest.mark.timeout(60)
def test_concurrent_sessions(lab):
    def send(number):
        with smtplib.SMTP(lab.host, lab.port, local_hostname=f"app{number:02d}", timeout=SOCKET_TIMEOUT) as client:
            client.sendmail("web@example.net", ["user@example.com"], f"Subject: {number}\r\n\r\nbody\r\n")

    threads = [threading.Thread(target=send, args=(number,)) for number in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SOCKET_TIMEOUT * 2)
    files = lab.drop_files()
    assert len(files) == 20
    assert len({path.read_bytes().split(b"Message-ID: ")[1][:60] for path in files}) == 20
    assert wait_for(lambda: log_text(lab).count(" QUIT ") == 20)
    assert log_text(lab).count(" DATA - <MAIL01") == 20


def test_failed_start_leaves_no_temporary_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LabError):
            MailLab(port=port).start()
    assert list(tmp_path.iterdir()) == []
