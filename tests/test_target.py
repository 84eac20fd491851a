"""The runbooks' target: the mail lab by default, a real server read-only."""

import socket

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
