"""`adminkb log report` and `adminkb log trace` through the real adminkb parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adminkb.i18n import message
from adminkb.smtplog import REPORT_TABLES, table_title
from clirun import run_area

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"
DELIVERED_LOG = str(LOGS / "smtp_outbound_deferred_then_delivered.log")
RELAY_LOG = str(LOGS / "smtp_relay_denials.log")


def test_report_prints_every_section(capsys):
    status = run_area("log", "report", RELAY_LOG, "--tz", "Asia/Taipei")
    output = capsys.readouterr().out
    assert status == 0
    for name in REPORT_TABLES:
        assert table_title(name) in output
    assert "203.0.113.66" in output
    assert "a@example.org, b@example.org, c@example.org, d@example.net" in output


def test_report_status_line_only_on_terminal(capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    run_area("log", "report", RELAY_LOG)
    assert "now analysing" not in capsys.readouterr().err
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    run_area("log", "report", RELAY_LOG)
    errors = capsys.readouterr().err
    assert "Read " in errors
    assert "now analysing" in errors


def test_report_json_by_table(capsys):
    status = run_area("log", "report", RELAY_LOG, "--format", "json", "--top", "1")
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert list(document) == list(REPORT_TABLES)
    assert len(document["top_clients"]) == 1
    denial = document["relay_denials"][0]
    assert denial[message("smtplog.column.peer")] == "203.0.113.66"
    assert denial[message("smtplog.column.attempts")] == 5


@pytest.mark.parametrize("top", ["0", "ten", "-3"])
def test_report_invalid_top(capsys, top):
    status = run_area("log", "report", RELAY_LOG, "--top", top)
    error = capsys.readouterr().err
    assert status == 2
    assert top in error


def test_report_missing_log(capsys, tmp_path: Path):
    status = run_area("log", "report", str(tmp_path / "ex260302.log"))
    assert status == 2
    assert "ex260302.log" in capsys.readouterr().err


def test_report_writes_plots(capsys, tmp_path: Path, cjk_font):
    status = run_area("log", "report", RELAY_LOG, "--plot-dir", str(tmp_path))
    assert status == 0
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["hourly.png", "relay_denials.png", "top_clients.png", "top_recipients.png", "top_senders.png"]
    for path in tmp_path.iterdir():
        assert path.read_bytes().startswith(b"\x89PNG")


def test_report_keeps_existing_plot(capsys, tmp_path: Path):
    existing = tmp_path / "hourly.png"
    existing.write_bytes(b"an earlier plot")
    status = run_area("log", "report", RELAY_LOG, "--plot-dir", str(tmp_path))
    assert status == 2
    assert existing.read_bytes() == b"an earlier plot"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hourly.png"]


def test_report_overwrites_plot_with_force(capsys, tmp_path: Path, cjk_font):
    existing = tmp_path / "hourly.png"
    existing.write_bytes(b"an earlier plot")
    status = run_area("log", "report", RELAY_LOG, "--plot-dir", str(tmp_path), "--force")
    assert status == 0
    assert existing.read_bytes().startswith(b"\x89PNG")


def test_report_missing_plot_folder(capsys, tmp_path: Path):
    status = run_area("log", "report", RELAY_LOG, "--plot-dir", str(tmp_path / "absent"))
    assert status == 2
    assert "absent" in capsys.readouterr().err


def test_report_plot_folder_is_file(capsys, tmp_path: Path):
    existing = tmp_path / "empty.log"
    existing.write_bytes(b"")
    status = run_area("log", "report", RELAY_LOG, "--plot-dir", str(existing))
    error = capsys.readouterr().err
    assert status == 2
    assert f"「{existing}」已經存在，但不是資料夾" in error
    assert "找不到" not in error


def test_trace_without_criteria_names_options(capsys):
    status = run_area("log", "trace", DELIVERED_LOG)
    error = capsys.readouterr().err
    assert status == 2
    assert "--from, --to, --message-id" in error
    assert "sender=" not in error


def test_trace_delivered_exits_zero(capsys):
    status = run_area("log", "trace", DELIVERED_LOG, "--from", "web@example.com", "--to", "user@example.net",
                      "--tz", "Asia/Taipei")
    output = capsys.readouterr().out
    assert status == 0
    assert "203.0.113.5" in output
    assert "421 4.7.0 Try again later, closing connection" in output


def test_trace_refused_exits_one(capsys):
    status = run_area("log", "trace", RELAY_LOG, "--to", "a@example.org", "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["verdict"] == "refused"
    assert len(document["timeline"]) == 2


def test_trace_not_found_exits_one(capsys):
    status = run_area("log", "trace", RELAY_LOG, "--from", "nobody@example.com")
    assert status == 1
    assert message("smtplog.verdict.not_found") in capsys.readouterr().out


def test_trace_without_criteria(capsys):
    status = run_area("log", "trace", RELAY_LOG)
    assert status == 2
    assert "--from" in capsys.readouterr().err


def test_report_rejects_iis_format(capsys):
    status = run_area("log", "report", str(LOGS / "iis_format_sample.log"))
    assert status == 2
    assert message("smtplog.not_w3c_next") in capsys.readouterr().err


@pytest.mark.parametrize("rows", [[], ["01:00:01 192.0.2.10 EHLO 250", "01:00:02 192.0.2.10 QUIT 240"]],
                         ids=["header only", "no mail transaction"])
def test_report_on_a_log_without_transactions(capsys, tmp_path: Path, rows):
    # A log cut right after its header, or one whose sessions never reached MAIL, still reports.
    lines = ["#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0",
             "#Date: 2026-03-02 01:00:00", "#Fields: time c-ip cs-method sc-status", *rows]
    log = tmp_path / "ex260302.log"
    log.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
    assert run_area("log", "report", str(log)) == 0
    assert table_title("hourly") in capsys.readouterr().out
