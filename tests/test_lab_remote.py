"""The lab's remote receivers: accept, reverse DNS check, greylisting, unreachable, smart host."""

import base64
import smtplib
import ssl
from datetime import datetime, timedelta, timezone

import pytest

from adminkb.errors import InputError, LabError
from adminkb.lab import FixedClock
from adminkb.lab.dns import LabDns, lab_zone_files
from adminkb.lab.remote import (SMART_HOST_ADDRESS, SMART_HOST_NAME, SMART_HOST_PASSWORD, SMART_HOST_USER,
                                RemoteLab, ReceiverSpec)

START = datetime(2026, 3, 2, 1, 15, tzinfo=timezone.utc)
MESSAGE = b"From: app@example.com\r\nTo: user@example.net\r\nSubject: test\r\nMessage-ID: <r1@example.com>\r\n\r\nline\r\n.dot\r\n"


@pytest.fixture(scope="module")
def lab_dns():
    with LabDns.from_files(lab_zone_files()) as server:
        yield server


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def remote(lab_dns, clock, tmp_path):
    with RemoteLab(dns_server=lab_dns.nameserver, clock=clock, folder=tmp_path) as running:
        yield running


def connect(remote, address, source="127.0.0.25"):
    return smtplib.SMTP(address, remote.port_for(address), local_hostname="mail01.example.com",
                        source_address=(source, 0), timeout=5)


def test_accepting_receiver_stores_message(remote):
    with connect(remote, "127.0.0.23") as client:
        client.sendmail("app@example.com", ["user@example.net"], MESSAGE)
    [item] = remote.received()
    assert item.receiver == "mx.example.net"
    assert item.client_ip == "127.0.0.25"
    assert item.helo == "mail01.example.com"
    assert item.recipients == ("user@example.net",)
    assert item.message_id == "<r1@example.com>"
    assert item.content == MESSAGE
    assert remote.received("mx.example.net") == [item]
    assert remote.received("127.0.0.99") == []


def test_accepting_receiver_rejects_unknown_user(remote):
    with connect(remote, "127.0.0.23") as client:
        client.ehlo()
        client.mail("app@example.com")
        code, text = client.rcpt("nosuchuser@example.net")
    assert code == 550
    assert text.startswith(b"5.1.1 ")


@pytest.mark.parametrize("source, expected", [("127.0.0.25", 250), ("127.0.0.26", 550), ("127.0.0.27", 550)])
def test_fcrdns_receiver_checks_reverse_dns(remote, source, expected):
    with connect(remote, "127.0.0.34", source=source) as client:
        client.ehlo()
        client.mail("app@example.com")
        code, text = client.rcpt("user@strict.lab.test")
    assert code == expected
    if expected == 550:
        assert text.startswith(b"5.7.1 Client host [" + source.encode() + b"] rejected")
        assert b"forward-confirmed reverse DNS" in text


def test_greylist_accepts_retry_after_delay(remote, clock):
    def attempt():
        with connect(remote, "127.0.0.35") as client:
            client.ehlo()
            client.mail("app@example.com")
            return client.rcpt("user@grey.lab.test")

    first = attempt()
    assert first[0] == 451
    assert first[1].startswith(b"4.7.1 ")
    assert attempt()[0] == 451
    clock.advance(timedelta(minutes=4, seconds=59))
    assert attempt()[0] == 451
    clock.advance(timedelta(seconds=1))
    assert attempt()[0] == 250


def test_greylist_keys_on_sender_and_recipient(remote, clock):
    assert not remote.greylist_passes("127.0.0.25", "a@example.com", "x@grey.lab.test")
    clock.advance(timedelta(minutes=5))
    assert remote.greylist_passes("127.0.0.25", "A@example.com", "X@grey.lab.test")
    assert not remote.greylist_passes("127.0.0.25", "b@example.com", "x@grey.lab.test")


def test_unreachable_address_refuses_connection(remote):
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.36", remote.port_for("127.0.0.36"), local_hostname="mail01.example.com", timeout=5)


def test_port_table_maps_port_25_only(remote):
    assert remote.port_for("127.0.0.23", 25) == remote.port
    assert remote.port_for("127.0.0.23", 587) == 587
    assert remote.port != 25


def test_smart_host_accepts_tls_and_auth_login(remote):
    context = ssl.create_default_context(cafile=str(remote.certificate_file))
    with connect(remote, SMART_HOST_ADDRESS) as client:
        client.ehlo()
        client.starttls(context=context)
        client.ehlo()
        client.login(SMART_HOST_USER, SMART_HOST_PASSWORD)
        client.sendmail("app@example.com", ["user@strict.lab.test"], MESSAGE)
    [item] = remote.received(SMART_HOST_NAME)
    assert item.tls is True
    assert item.user == SMART_HOST_USER


def test_smart_host_rejects_wrong_password(remote):
    with connect(remote, SMART_HOST_ADDRESS) as client:
        client.ehlo()
        code, _ = client.docmd("AUTH", "LOGIN")
        assert code == 334
        client.docmd(base64.b64encode(SMART_HOST_USER.encode()).decode())
        code, _ = client.docmd(base64.b64encode(b"wrong").decode())
    assert code == 535


def test_smart_host_can_require_auth(remote):
    remote.smart_host_requires_auth = True
    with connect(remote, SMART_HOST_ADDRESS) as client:
        client.ehlo()
        code, _ = client.mail("app@example.com")
    assert code == 530


def test_unknown_receiver_kind_is_rejected(lab_dns, clock, tmp_path):
    with pytest.raises(InputError) as raised:
        RemoteLab(dns_server=lab_dns.nameserver, clock=clock, folder=tmp_path,
                  receivers=(ReceiverSpec("127.0.0.23", "mx.example.net", "bounce"),))
    assert "bounce" in str(raised.value)


def test_stop_closes_every_receiver(lab_dns, clock, tmp_path):
    remote = RemoteLab(dns_server=lab_dns.nameserver, clock=clock, folder=tmp_path).start()
    port = remote.port
    remote.stop()
    assert not remote.running
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.23", port, local_hostname="mail01.example.com", timeout=5)
    remote.stop()


def test_port_table_entry_overrides_shared_port(remote):
    remote.map_port25("127.0.0.1", 2525)
    assert remote.port_for("127.0.0.1") == 2525
    assert remote.port_for("127.0.0.23") == remote.port


@pytest.mark.parametrize("address, port, error", [("192.0.2.25", 2525, LabError), ("mail.example.net", 2525, LabError),
                                                  ("127.0.0.1", 0, InputError), ("127.0.0.1", 70000, InputError),
                                                  ("127.0.0.1", True, InputError)])
def test_port_table_rejects_bad_entry(remote, address, port, error):
    with pytest.raises(error) as raised:
        remote.map_port25(address, port)
    assert str(port) in str(raised.value) or address in str(raised.value)
    assert remote.port_for(address) == remote.port


def test_esmtp_only_receiver_closes_after_helo(remote):
    with connect(remote, "127.0.0.37") as client:
        code, text = client.helo()
        assert code == 421
        assert text.startswith(b"4.7.0 ")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.mail("app@example.com")


def test_esmtp_only_receiver_accepts_ehlo(remote):
    with connect(remote, "127.0.0.37") as client:
        client.sendmail("app@example.com", ["user@bigmail.lab.test"], MESSAGE)
    assert [item.receiver for item in remote.received()] == ["mx.bigmail.lab.test"]
