"""Numeric options of every area: NaN, infinities, huge and negative values end in a clear error."""

from __future__ import annotations

import pytest

from adminkb.cli import main

LOG = "data/logs/smtp_busy_morning.log"

# Each command up to the numeric option, then the option name and the exit status of a usage
# error. `smtp probe` numbers its exits after swaks, where a usage error is 1.
COMMANDS = [
    (["mailroot", "archive", "mailroot", "--to", "archive", "--older-than"], "--older-than", 2),
    (["smtp", "probe", "127.0.0.1", "--from", "a@example.com", "--to", "b@example.com", "--timeout"],
     "--timeout", 1),
    (["smtp", "audit", "127.0.0.1", "--timeout"], "--timeout", 2),
    (["smtp", "investigate", LOG, "--local-domain", "example.com", "--threshold"], "--threshold", 2),
    (["dns", "check", "example.test", "--nameserver", "127.0.0.1", "--timeout"], "--timeout", 2),
    (["lab", "--deliver", "--compression"], "--compression", 2),
    (["lab", "--port"], "--port", 2),
    (["config", "collect", "--out", "collected", "--days"], "--days", 2),
    (["config", "collect", "--out", "collected", "--site"], "--site", 2),
    (["run", "01_smtp_session", "--timeout"], "--timeout", 2),
    (["diagnose", "--server", "127.0.0.1", "--from", "a@example.com", "--to", "b@example.com",
      "--virtual-server"], "--virtual-server", 2),
    (["export", "--cell-timeout"], "--cell-timeout", 2),
]

VALUES = ["1e308", "inf", "nan", "-1"]


def exit_status(words: list[str]) -> int:
    """Run `adminkb WORDS...` and return its exit status, whether argparse or the handler ends it."""
    try:
        return main(words)
    except SystemExit as stopped:
        return stopped.code


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize(("words", "option", "status"), COMMANDS, ids=lambda item: item if isinstance(item, str) else None)
def test_number_out_of_range_rejected(tmp_path, monkeypatch, capsys, words, option, status, value):
    monkeypatch.chdir(tmp_path)
    for folder in ("Badmail", "Queue", "Pickup", "Drop"):
        (tmp_path / "mailroot" / folder).mkdir(parents=True)
    code = exit_status([*words, value])
    err = capsys.readouterr().err
    assert code == status
    assert "Traceback" not in err
    assert option in err


def test_value_shown_as_typed(capsys):
    with pytest.raises(SystemExit):
        main(["smtp", "audit", "127.0.0.1", "--timeout", "1e308"])
    err = capsys.readouterr().err
    assert "「1e308」" in err


def test_older_than_too_large(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main(["mailroot", "archive", "mailroot", "--to", "archive", "--older-than", "99999999"])
    err = capsys.readouterr().err
    assert status == 2
    assert "99999999" in err
    assert "36500" in err


def test_timeout_zero_rejected(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["smtp", "audit", "127.0.0.1", "--timeout", "0"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "0.1 到 3600" in err


def test_range_message_english(monkeypatch, capsys):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(SystemExit):
        main(["lab", "--port", "70000"])
    err = capsys.readouterr().err
    assert '"70000" is invalid: expected a whole number from 0 to 65535' in err
