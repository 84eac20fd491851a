"""The lab's Smart Host: types 0, 1 and 2, by name or [IP], STARTTLS and AUTH LOGIN, port 25 blocked."""

import smtplib
from datetime import datetime, timezone

import pytest

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import FixedClock, MailLab
from adminkb.lab.delivery import SMART_HOST_NONE, SMART_HOST_TRY_DIRECT_FIRST
from adminkb.lab.remote import SMART_HOST_NAME, SMART_HOST_PASSWORD, SMART_HOST_USER
from adminkb.target import open_target

START = datetime(2026, 3, 2, 1, 15, tzinfo=timezone.utc)


@pytest.fixture
def lab():
    with MailLab(clock=FixedClock(START), pickup_interval=None, relay_grant=["127.0.0.1"]) as running:
        yield running


def send(lab, recipients, message_id="<s1@example.com>"):
    recipients = [recipients] if isinstance(recipients, str) else list(recipients)
    content = f"From: app@example.com\r\nSubject: test\r\nMessage-ID: {message_id}\r\n\r\nhello\r\n".encode()
    with smtplib.SMTP(lab.host, lab.port, local_hostname="app01", timeout=5) as client:
        client.sendmail("app@example.com", recipients, content)


def outcomes(records):
    return [(record.recipient, record.outcome, record.host) for record in records]


def test_blocked_port25_leaves_mail_in_queue(lab):
    lab.block_port25()
    send(lab, "user@example.net")
    records = lab.deliver_queue()
    assert outcomes(records) == [("user@example.net", "deferred", "mx.example.net")]
    assert "port 25 is blocked" in records[0].reply
    assert len(lab.queue_files()) == 1
    assert lab.remote.received() == []


def test_blocked_port25_reason_in_zh_tw_table(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    target = open_target("lab")
    try:
        target.lab.allow_relay("127.0.0.1")
        target.lab.block_port25()
        send(target.lab, ["user@example.net", "user@strict.lab.test"])
        table = target.deliver_queue()
        reasons = table["對方回應（原文）或原因"].tolist()
        assert reasons == ["連線逾時：實驗室的防火牆封鎖了對外的 25 連接埠。"] * 2
        assert target.retry_table()["最後的對方回應（原文）或原因"].tolist() == [reasons[0]]
    finally:
        target.close()


def test_smart_host_by_ip_gets_mail_out(lab):
    lab.block_port25()
    send(lab, ["user@example.net", "user@strict.lab.test"])
    lab.deliver_queue()
    lab.set_smart_host("[127.0.0.40]")
    records = lab.advance(minutes=15)
    assert sorted(outcomes(records)) == [("user@example.net", "delivered", "[127.0.0.40]"),
                                         ("user@strict.lab.test", "delivered", "[127.0.0.40]")]
    [arrived] = lab.remote.received()
    assert arrived.receiver == SMART_HOST_NAME
    assert arrived.recipients == ("user@example.net", "user@strict.lab.test")
    assert lab.queue_files() == []


def test_smart_host_by_name_resolves_through_lab_dns(lab):
    lab.set_smart_host(SMART_HOST_NAME)
    send(lab, "user@example.net")
    records = lab.deliver_queue()
    assert outcomes(records) == [("user@example.net", "delivered", SMART_HOST_NAME)]
    assert records[0].address == "127.0.0.40"


def test_unknown_smart_host_name_defers(lab):
    lab.set_smart_host("missing.lab.test")
    send(lab, "user@example.net")
    records = lab.deliver_queue()
    assert [record.outcome for record in records] == ["deferred"]
    assert records[0].reply == "The smart host missing.lab.test was not found in DNS."
    assert records[0].reply_text("zh-TW") == "在 DNS 中找不到智慧主機 missing.lab.test。"


def test_bracketed_smart_host_sends_no_dns_query(lab):
    lab.set_smart_host("[127.0.0.40]")
    lab.start_outbound()
    send(lab, ["user@example.net", "user@strict.lab.test"])
    before = lab.lab_dns.query_count
    records = lab.deliver_queue()
    assert sorted(outcomes(records)) == [("user@example.net", "delivered", "[127.0.0.40]"),
                                         ("user@strict.lab.test", "delivered", "[127.0.0.40]")]
    assert lab.lab_dns.query_count == before


def test_named_smart_host_queries_lab_dns(lab):
    lab.set_smart_host(SMART_HOST_NAME)
    lab.start_outbound()
    send(lab, "user@example.net")
    before = lab.lab_dns.query_count
    records = lab.deliver_queue()
    assert outcomes(records) == [("user@example.net", "delivered", SMART_HOST_NAME)]
    assert lab.lab_dns.query_count > before


def test_try_direct_first_uses_smart_host_on_failure(lab):
    lab.set_smart_host("[127.0.0.40]", type=SMART_HOST_TRY_DIRECT_FIRST)
    send(lab, ["user@example.net", "user@blocked.lab.test"])
    records = lab.deliver_queue()
    assert sorted(outcomes(records)) == [("user@blocked.lab.test", "delivered", "[127.0.0.40]"),
                                         ("user@example.net", "delivered", "mx.example.net")]


def test_try_direct_first_keeps_permanent_failure(lab):
    lab.set_smart_host("[127.0.0.40]", type=SMART_HOST_TRY_DIRECT_FIRST)
    send(lab, "user@nullmx.lab.test")
    records = lab.deliver_queue()
    assert [record.outcome for record in records] == ["failed", "ndr"]


def test_type_none_ignores_smart_host(lab):
    lab.set_smart_host("[127.0.0.40]", type=SMART_HOST_NONE)
    send(lab, "user@example.net")
    assert outcomes(lab.deliver_queue()) == [("user@example.net", "delivered", "mx.example.net")]


def test_smart_host_with_tls_and_auth(lab):
    lab.require_smart_host_auth()
    lab.set_smart_host("smarthost.lab.test", user=SMART_HOST_USER, password=SMART_HOST_PASSWORD, tls=True)
    send(lab, "user@example.net")
    records = lab.deliver_queue()
    assert [record.outcome for record in records] == ["delivered"]
    [arrived] = lab.remote.received()
    assert arrived.tls is True
    assert arrived.user == SMART_HOST_USER
    log_text = lab.log_files()[-1].read_text(encoding="cp950")
    assert " STARTTLS " in log_text
    assert " AUTH - LOGIN " in log_text
    assert SMART_HOST_PASSWORD not in log_text
    assert "bGFi" not in log_text  # base64 of the password's first bytes


def test_smart_host_requiring_auth_fails_anonymous(lab):
    # 530 to MAIL FROM is a permanent reply, so the sender gets an NDR at once.
    lab.require_smart_host_auth()
    lab.set_smart_host("[127.0.0.40]")
    send(lab, "user@example.net")
    records = lab.deliver_queue()
    assert [record.outcome for record in records] == ["failed", "ndr"]
    assert records[0].reply.startswith("530")


def test_smart_host_wrong_password_defers(lab):
    lab.set_smart_host("[127.0.0.40]", user=SMART_HOST_USER, password="wrong")
    send(lab, "user@example.net")
    records = lab.deliver_queue()
    assert [record.outcome for record in records] == ["deferred"]
    assert records[0].reply.startswith("535")


@pytest.mark.parametrize("options, key", [
    (dict(host="[127.0.0.40]", type=3), "lab.delivery.invalid_smart_host_type"),
    (dict(host="smart host.lab.test"), "lab.delivery.invalid_smart_host"),
    (dict(host=""), "lab.delivery.invalid_smart_host"),
    (dict(host="[127.0.0.40]", user="relay-lab"), "lab.delivery.smart_host_credentials"),
])
def test_invalid_smart_host_settings_rejected(lab, options, key):
    with pytest.raises(InputError) as raised:
        lab.set_smart_host(**options)
    assert raised.value.key == key
    assert lab.smart_host is None


def test_clear_smart_host_restores_mx(lab):
    lab.set_smart_host("[127.0.0.40]")
    lab.clear_smart_host()
    send(lab, "user@example.net")
    assert outcomes(lab.deliver_queue()) == [("user@example.net", "delivered", "mx.example.net")]


def test_target_shows_smart_host_fix():
    target = open_target("lab")
    try:
        target.lab.allow_relay("127.0.0.1")
        settings = target.block_port25()
        assert settings.iloc[4, 1] == message("target.port25_blocked")
        send(target.lab, "user@example.net")
        stuck = target.deliver_queue()
        assert list(stuck.iloc[:, 3]) == [message("target.outcome_deferred")]
        settings = target.set_smart_host("[127.0.0.40]")
        assert settings.iloc[0, 1] == "[127.0.0.40]"
        assert settings.iloc[1, 1] == message("target.smart_host_type_2")
        delivered = target.advance(15)
        assert list(delivered.iloc[:, 3]) == [message("target.outcome_delivered")]
        assert list(delivered.iloc[:, 0]) == ["2026-03-02 09:30"]
        arrived = target.arrived_table()
        assert list(arrived.iloc[:, 0]) == [SMART_HOST_NAME]
        assert len(target.delivery_table()) == 2
        assert target.badmail_table().empty
        assert target.unblock_port25().iloc[4, 1] == message("target.port25_open")
        assert target.clear_smart_host().iloc[0, 1] == message("target.smart_host_none")
    finally:
        target.close()


def test_target_real_server_gives_notices():
    target = open_target("192.0.2.25:25")
    assert "[198.51.100.25]" in target.set_smart_host("[198.51.100.25]")
    assert target.deliver_queue() == message("target.delivery_by_service")
    assert target.block_port25() == message("target.port25_by_hand")
    assert target.arrived_table() == message("target.arrived_lab_only")


def test_target_retry_table_shows_schedule(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    target = open_target("lab")
    try:
        target.lab.allow_relay("127.0.0.1")
        send(target.lab, ["user@blocked.lab.test", "user@example.net"])
        target.deliver_queue()
        table = target.retry_table()
        assert len(table) == 1
        row = table.iloc[0]
        assert row.iloc[2] == "user@blocked.lab.test"
        assert row.iloc[3] == 1
        assert row.iloc[4] == "2026-03-02 09:30"
        assert row.iloc[5] == "2026-03-04 09:15"
        assert row.iloc[6] == "遠端伺服器沒有回應連線要求。"
        target.advance(15)
        assert target.retry_table().iloc[0, 3] == 2
        assert target.retry_table().iloc[0, 4] == "2026-03-02 10:00"
    finally:
        target.close()
