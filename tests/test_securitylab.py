"""`adminkb.securitylab`: the open relay scenario of the security runbook, run against the mail lab."""

import pandas as pd
import pytest

from adminkb import securitylab
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import can_bind_source_address
from adminkb.securitylab import Notice, open_security_target
from adminkb.smtp.audit import Outcome

pytestmark = pytest.mark.timeout(120)

ADDRESSES = (securitylab.APP_ADDRESS, securitylab.ROAMING_ADDRESS, securitylab.ATTACKER_ADDRESS,
             securitylab.GUESSER_ADDRESS, securitylab.AUDITOR_ADDRESS)
if not all(can_bind_source_address(address) for address in ADDRESSES):
    pytest.skip("this machine cannot use 127.0.0.x source addresses", allow_module_level=True)

PASSWORD = "Lab-Scenario-5d02"


@pytest.fixture
def target(monkeypatch):
    monkeypatch.setenv(securitylab.PASSWORD_VARIABLE, PASSWORD)
    opened = open_security_target(timeout=5)
    yield opened
    opened.close()


def column(name: str) -> str:
    return message(f"securitylab.column.{name}")


def test_starts_as_open_relay(target):
    report = target.audit()
    problems = [item.name for item in report.problems]
    assert problems == ["relay", "auth_before_tls", "banner_version"]
    assert report.exit_code == 1
    assert target.lab.queue_files() == []


def test_attack_fills_queue(target):
    sessions = target.attack_relay(sessions=3, recipients=2, spacing_minutes=30)
    assert sessions[column("accepted")].tolist() == [2, 2, 2]
    assert sessions[column("rejected")].tolist() == [0, 0, 0]
    assert sessions[column("time")].tolist() == ["2026-03-02 09:00:00", "2026-03-02 09:30:00",
                                                 "2026-03-02 10:00:00"]
    assert len(target.lab.queue_files()) == 3
    assert len(target.queue_table()) == 3


def test_guesses_all_fail(target):
    attempts = target.guess_passwords(attempts=4)
    assert attempts[column("reply")].tolist() == ["535 5.7.3 Authentication unsuccessful"] * 4


def test_relay_list_stops_attacker_only(target):
    target.restrict_relay()
    sessions = target.attack_relay(sessions=1, recipients=3)
    assert sessions[column("accepted")].tolist() == [0]
    assert sessions[column("rejected")].tolist() == [3]
    app = target.send_as("app")
    assert app[column("reply")].iloc[-1].startswith("250 2.6.0")
    roaming = target.send_as("roaming")
    assert roaming[column("step")].tolist() == ["STARTTLS", "AUTH LOGIN", "MAIL FROM", "RCPT TO", "DATA"]
    assert roaming[column("reply")].iloc[-1].startswith("250 2.6.0")


def test_tls_before_auth_hides_auth(target):
    before = target.ehlo_keywords()[message("securitylab.column.auth_offer")].tolist()
    assert before[0].startswith("AUTH ")
    target.require_tls_for_auth()
    after = target.ehlo_keywords()[message("securitylab.column.auth_offer")].tolist()
    assert after[0] == message("securitylab.no_auth_offered")
    assert "LOGIN" in after[1]
    plain_guess = target.guess_passwords(attempts=2, with_tls=False)
    assert plain_guess[column("reply")].tolist() == [message("securitylab.outcome.auth_hidden")]
    roaming = target.send_as("roaming")
    assert roaming[column("step")].tolist()[0] == "STARTTLS"
    assert roaming[column("reply")].tolist()[0] in ("TLSv1.2", "TLSv1.3")


def test_connection_control_refuses_attacker(target):
    target.deny_connection()
    assert "220" not in target.try_connect(securitylab.ATTACKER_ADDRESS)
    assert target.try_connect(securitylab.APP_ADDRESS).startswith("220 ")


def test_hardened_lab_passes_audit(target):
    target.restrict_relay()
    target.require_tls_for_auth()
    target.deny_connection()
    target.hide_version()
    report = target.audit()
    assert report.problems == []
    assert report.exit_code == 0
    assert report.item("percent_relay").outcome is Outcome.INFO


def test_logs_survive_restart(target):
    target.attack_relay(sessions=1, recipients=1)
    target.require_tls_for_auth()
    target.send_as("roaming")
    frame = target.read_logs()
    assert securitylab.ATTACKER_ADDRESS in set(frame["c-ip"].astype(str))
    assert securitylab.ROAMING_ADDRESS in set(frame["c-ip"].astype(str))
    # The spammer's message and the roaming user's message, one before and one after the restart.
    assert len(target.lab.queue_files()) == 2


def test_settings_follow_changes(target):
    values = target.settings_table()[column("value")].tolist()
    assert "127.0.0.10" not in values[0]
    target.restrict_relay()
    target.deny_connection()
    values = target.settings_table()[column("value")].tolist()
    assert values[0] == message("securitylab.relay_only", entries="127.0.0.10")
    assert values[3] == message("securitylab.connection_all_except", entries="127.0.0.66")


def test_close_removes_folder(monkeypatch):
    monkeypatch.setenv(securitylab.PASSWORD_VARIABLE, PASSWORD)
    opened = open_security_target(timeout=5)
    root = opened.lab.root
    assert root.is_dir()
    opened.close()
    assert not root.exists()


def test_real_server_steps_are_notices():
    real = open_security_target("192.0.2.25:25")
    assert not real.is_lab
    for step in (real.attack_relay, real.guess_passwords, real.queue_table, real.restrict_relay,
                 real.require_tls_for_auth, real.deny_connection, real.hide_version, real.settings_table):
        assert isinstance(step(), Notice)
    with pytest.raises(InputError) as raised:
        real.read_logs()
    assert raised.value.key == "securitylab.log_path_missing"


def test_password_from_environment(monkeypatch):
    monkeypatch.setenv(securitylab.PASSWORD_VARIABLE, PASSWORD)
    assert securitylab.lab_password() == PASSWORD


def test_password_default_random_and_stable(monkeypatch):
    monkeypatch.delenv(securitylab.PASSWORD_VARIABLE, raising=False)
    first = securitylab.lab_password()
    assert first == securitylab.lab_password()
    assert len(first) == 16
    assert first not in securitylab.GUESSES


@pytest.mark.parametrize("call", [
    lambda target: target.attack_relay(sessions=0),
    lambda target: target.attack_relay(recipients=21),
    lambda target: target.attack_relay(spacing_minutes=-1),
    lambda target: target.guess_passwords(attempts=len(securitylab.GUESSES) + 1),
    lambda target: target.send_as("boss"),
])
def test_bad_arguments_rejected(target, call):
    with pytest.raises(InputError):
        call(target)
    assert target.lab.queue_files() == []


def test_english_settings(target, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    table = target.settings_table()
    assert isinstance(table, pd.DataFrame)
    assert table["setting"].tolist()[0] == "Relay restrictions"


def test_weak_password_guessed_and_flagged(monkeypatch):
    from adminkb import investigate

    monkeypatch.setenv(securitylab.PASSWORD_VARIABLE, "Passw0rd")
    opened = open_security_target(timeout=5)
    try:
        attempts = opened.guess_passwords(attempts=4)
        logs = opened.read_logs()
    finally:
        opened.close()
    replies = attempts[column("reply")].tolist()
    assert replies[2] == "235 2.7.0 Authentication successful"
    assert replies[:2] == ["535 5.7.3 Authentication unsuccessful"] * 2
    # Two failures before the success reach a threshold of 2, but not the default of 5.
    row = investigate.auth_failures(logs, threshold=2).iloc[0]
    assert row[message("investigate.column.client")] == securitylab.GUESSER_ADDRESS
    assert row[message("investigate.column.verdict")] == message("investigate.verdict.success_after_failures")
    row = investigate.auth_failures(logs).iloc[0]
    assert row[message("investigate.column.verdict")] == message("investigate.verdict.success_after_few_failures")
