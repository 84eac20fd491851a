"""The runbooks' target: the mail lab by default, a real server read-only."""

import json
import socket
from pathlib import Path

import pytest

from adminkb.errors import InputError
from adminkb.target import SmtpTarget, open_target


def test_lab_target_relay_fix(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    target = open_target("lab", source_address="127.0.0.10")
    try:
        assert target.is_lab
        assert target.probe("app@example.com", "user@example.net", timeout=5).exit_code == 24
        table = target.allow_relay("127.0.0.10")
        assert table.iloc[0].tolist() == ["Only the list below", "127.0.0.10"]
        sent = target.probe("app@example.com", "user@example.net", send=True, timeout=5)
        assert sent.exit_code == 0
        queue = target.queue_table()
        assert queue["Recipients (X-Receiver)"].tolist() == ["user@example.net"]
    finally:
        target.close()
    assert not target.lab.running


def test_lab_sends_same_message_every_run():
    sizes = []
    for _ in range(2):
        target = open_target("lab", source_address="127.0.0.10")
        try:
            target.allow_relay("127.0.0.10")
            target.probe("app@example.com", "user@example.net", send=True, timeout=5)
            sizes.append(target.lab.queue_files()[0].read_bytes())
        finally:
            target.close()
    assert sizes[0] == sizes[1]


def test_real_target_changes_nothing(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    target = SmtpTarget(f"127.0.0.1:{port}")
    assert not target.is_lab
    notice = target.allow_relay(None)
    assert "the application server's IP" in notice
    assert "Relay restrictions" in notice
    assert "real server" in repr(target)
    assert "Target: " in repr(target)
    assert f"127.0.0.1:{port}" in target.close()


def _closed_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


REPORT_BODY = "Nightly backup report\n.\nFailed jobs: 2\n"


def test_lab_pickup_bypasses_relay(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    target = open_target("lab", source_address="127.0.0.10")
    try:
        assert target.probe("web@example.com", "user@example.net", timeout=5).exit_code == 24
        order = target.compose_message(("網站通知", "web@example.com"), [("客服中心", "helpdesk@example.com")],
                                       "訂單 1024 已出貨", "您好\n", cc=["user@example.net"], tag="order")
        written = target.write_pickup(order, name="order.eml")
        assert written["File"].tolist() == ["order.eml"]
        assert "=?utf-8?b?" in target.pickup_file_text("order.eml")
        moved = target.process_pickup()
        assert moved["Pickup file"].tolist() == ["order.eml"]
        assert [path.parent.name for path in target.last_stored] == ["Drop", "Queue"]
        assert target.lab.pickup_files() == []
        head = target.file_head("Queue")
        assert head.splitlines()[:2] == ["X-Sender: web@example.com", "X-Receiver: user@example.net"]
        headers = target.header_table("Queue").set_index("Header")
        assert headers.loc["Subject", "As stored"].startswith("=?utf-8?b?")
        assert headers.loc["Subject", "Decoded"] == "訂單 1024 已出貨"
        assert headers.loc["From", "Decoded"] == "網站通知 <web@example.com>"
        assert target.body_text("Drop") == "您好\n"
        assert target.pickup_table().empty
    finally:
        target.close()


def test_lab_lone_dot_truncates():
    target = open_target("lab")
    try:
        report = target.compose_message("web@example.com", ["helpdesk@example.com"], "備份報表", REPORT_BODY,
                                        tag="report")
        target.write_pickup(report, name="plain.eml", double_dots=False)
        assert "\n.\n" in target.pickup_file_text("plain.eml")
        target.process_pickup()
        assert target.body_text("Drop") == "Nightly backup report\n"
        target.write_pickup(report, name="doubled.eml")
        assert "\n..\n" in target.pickup_file_text("doubled.eml")
        target.process_pickup()
        assert target.body_text("Drop") == REPORT_BODY
    finally:
        target.close()


def test_lab_pickup_files_repeatable():
    stored = []
    for _ in range(2):
        target = open_target("lab")
        try:
            order = target.compose_message(("網站通知", "web@example.com"), ["user@example.net"], "訂單", "內文\n")
            target.write_pickup(order, name="order.eml")
            target.process_pickup()
            stored.append([(path.name, path.read_bytes()) for path in target.last_stored])
        finally:
            target.close()
    assert stored[0] == stored[1]


def test_lab_stored_file_lookups(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    target = open_target("lab")
    try:
        assert "takes the files out of Pickup by itself" in target.file_head()
        with pytest.raises(InputError) as caught:
            target.header_table("Outbox")
        assert caught.value.key == "mailroot.unknown_folder"
    finally:
        target.close()


def test_real_pickup_write_needs_confirm(monkeypatch, tmp_path):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    target = SmtpTarget(f"127.0.0.1:{_closed_port()}")
    report = target.compose_message("web@example.com", ["helpdesk@example.com"], "備份報表", REPORT_BODY)
    assert report["Message-ID"].endswith("@example.com>")
    assert "runbook" not in report["Message-ID"]

    assert "CONFIRM" in target.write_pickup(report, name="report.eml", folder=tmp_path)
    assert "PICKUP_DIR" in target.write_pickup(report, name="report.eml", confirm=True)
    assert "mail lab only" in target.write_pickup(report, name="report.eml", folder=tmp_path, confirm=True,
                                                  double_dots=False)
    assert list(tmp_path.iterdir()) == []

    listed = target.write_pickup(report, name="report.eml", folder=tmp_path, confirm=True)
    assert listed["File"].tolist() == ["report.eml"]
    assert b"\r\n..\r\n" in (tmp_path / "report.eml").read_bytes()
    assert target.pickup_table(tmp_path)["File"].tolist() == ["report.eml"]
    assert "by itself" in target.process_pickup()
    assert "mail lab only" in target.pickup_file_text("report.eml")
    assert "by itself" in target.body_text()


def test_real_pickup_listing_missing_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    target = SmtpTarget(f"127.0.0.1:{_closed_port()}")
    assert "PICKUP_DIR" in target.pickup_table()
    missing = tmp_path / "Pickup"
    with pytest.raises(InputError) as caught:
        target.pickup_table(missing)
    assert caught.value.key == "target.pickup_folder_missing"
    assert caught.value.value == str(missing)
    assert "does not exist" in str(caught.value)


# The DNS server of a runbook's checks, from its NAMESERVER parameter


def test_dns_server_lab_default():
    target = open_target("lab")
    try:
        assert target.dns_server(None) == target.lab.lab_dns.nameserver
        assert target.dns_server("192.0.2.53") == "192.0.2.53:53"
    finally:
        target.close()


@pytest.mark.parametrize("nameserver, expected", [
    ("192.0.2.53", "192.0.2.53:53"),
    (" 192.0.2.53:5353 ", "192.0.2.53:5353"),
    ("[2001:db8::53]:5353", "[2001:db8::53]:5353"),
])
def test_dns_server_real_target(nameserver, expected):
    assert SmtpTarget("192.0.2.25:25").dns_server(nameserver) == expected


@pytest.mark.parametrize("nameserver", [None, "", "  "])
def test_dns_server_missing_for_real_target(monkeypatch, nameserver):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    with pytest.raises(InputError) as caught:
        SmtpTarget("192.0.2.25:25").dns_server(nameserver)
    text = str(caught.value)
    assert caught.value.value == "192.0.2.25:25"
    assert "SERVER 指向真實伺服器 192.0.2.25:25，但參數格的 NAMESERVER 沒有填寫" in text
    assert 'NAMESERVER = "192.0.2.53"' in text


@pytest.mark.parametrize("nameserver, shown", [
    ("dns.example.com", "dns.example.com"),
    ("192.0.2.53:99999", "192.0.2.53:99999"),
    (53, "53"),
    (["192.0.2.53"], "['192.0.2.53']"),
])
def test_dns_server_invalid_value(monkeypatch, nameserver, shown):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    with pytest.raises(InputError) as caught:
        SmtpTarget("192.0.2.25:25").dns_server(nameserver)
    assert f"參數格的 NAMESERVER 值 {shown} 無法使用" in str(caught.value)
    assert "主機名稱不行" in str(caught.value)


def test_dns_server_message_in_english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        SmtpTarget("192.0.2.25:25").dns_server(None)
    assert "NAMESERVER in the parameters cell is empty" in str(caught.value)


def test_outbound_table_real_target_notice(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    notice = SmtpTarget("192.0.2.25:25").outbound_table()
    assert "Delivery tab" in notice


# Runbook 05's first cells with a real SERVER. The target only parses the address and opens no
# connection, so 192.0.2.25 (a documentation address) is never contacted.

RUNBOOK_05 = Path(__file__).resolve().parents[1] / "notebooks" / "05_dns_smarthost_limits.ipynb"


def runbook_05_setup(**parameters: object) -> dict[str, object]:
    """Run runbook 05's parameters cell with `parameters` applied, then its set-up cell; return the variables."""
    cells = [cell for cell in json.loads(RUNBOOK_05.read_text(encoding="utf-8"))["cells"] if cell["cell_type"] == "code"]
    assert "parameters" in cells[0]["metadata"]["tags"]
    setup = next(cell for cell in cells if "target.dns_server(NAMESERVER)" in "".join(cell["source"]))
    namespace: dict[str, object] = {}
    exec("".join(cells[0]["source"]), namespace)
    namespace.update(parameters)
    exec("".join(setup["source"]), namespace)
    return namespace


def test_runbook_05_real_server_needs_nameserver(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    with pytest.raises(InputError) as caught:
        runbook_05_setup(SERVER="192.0.2.25:25", NAMESERVER=None)
    assert "NAMESERVER 沒有填寫" in str(caught.value)


def test_runbook_05_real_server_with_nameserver():
    namespace = runbook_05_setup(SERVER="192.0.2.25:25", NAMESERVER="192.0.2.53")
    assert namespace["nameserver"] == "192.0.2.53:53"
    assert not namespace["target"].is_lab
