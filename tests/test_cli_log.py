"""`adminkb log read` and `adminkb log summary`: outputs, atomic writes, messages and exit statuses."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import stat
from pathlib import Path

import pandas as pd
import pytest

from adminkb.cli import log as log_cli
from adminkb.cli import main
from adminkb.errors import InputError
from clirun import run_area

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def run(*arguments: str) -> int:
    return run_area("log", *arguments)


def csv_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(data[3:].decode("utf-8"), newline="")))


# read


def test_read_csv_to_stdout(capsysbinary):
    status = run("read", str(LOGS / "w3c_fields_change_midfile.log"))
    output = capsysbinary.readouterr()
    assert status == 0
    rows = csv_rows(output.out)
    assert len(rows) == 6
    assert rows[0]["timestamp"] == "2026-03-02 01:15:07+00:00"
    assert rows[1]["cs-uri-query"] == " FROM: <web@example.net>"
    assert rows[3]["cs-username"] == ""
    assert rows[5]["source_line"] == "14"
    assert "6 列" in output.err.decode("utf-8")


def test_read_csv_lines_end_crlf(capsysbinary):
    run("read", str(LOGS / "w3c_truncated_last_line.log"))
    data = capsysbinary.readouterr().out
    assert data.count(b"\r\n") == 4
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_read_reports_skipped_lines(capsys):
    status = run("read", str(LOGS / "w3c_truncated_last_line.log"))
    error = capsys.readouterr().err
    assert status == 0
    assert "略過 1 行" in error
    assert "adminkb log summary" in error


def test_read_time_zone(capsysbinary):
    run("read", str(LOGS / "w3c_truncated_last_line.log"), "--tz", "Asia/Taipei")
    rows = csv_rows(capsysbinary.readouterr().out)
    assert rows[0]["timestamp"] == "2026-03-02 09:15:07+08:00"


def test_read_csv_to_file(tmp_path, capsys):
    out = tmp_path / "rows.csv"
    status = run("read", str(LOGS / "w3c_undecodable_byte.log"), "--out", str(out))
    assert status == 0
    assert capsys.readouterr().out == ""
    rows = csv_rows(out.read_bytes())
    assert [row["cs-username"] for row in rows] == ["郵件主機", "郵件主機"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rows.csv"]


def test_read_parquet_keeps_types(tmp_path):
    out = tmp_path / "rows.parquet"
    status = run("read", str(LOGS / "w3c_fields_change_midfile.log"), "--format", "parquet", "--out", str(out))
    assert status == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 6
    # Parquet has no seconds unit, so the timestamps come back in milliseconds.
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-03-02 01:15:07", tz="UTC")
    assert frame["sc-status"].dtype == pd.Int64Dtype()
    assert isinstance(frame["cs-method"].dtype, pd.CategoricalDtype)


def test_read_keeps_existing_output(tmp_path):
    out = tmp_path / "rows.csv"
    out.write_text("old content")
    assert run("read", str(LOGS / "w3c_truncated_last_line.log"), "--out", str(out)) == 2
    assert out.read_text() == "old content"


def test_read_force_replaces_output(tmp_path):
    out = tmp_path / "rows.csv"
    out.write_text("old content")
    run("read", str(LOGS / "w3c_truncated_last_line.log"), "--out", str(out), "--force")
    assert len(csv_rows(out.read_bytes())) == 3


def test_read_several_formats_auto(capsysbinary):
    run("read", str(LOGS / "iis_format_sample.log"))
    rows = csv_rows(capsysbinary.readouterr().out)
    assert rows[1]["cs-method"] == "MAIL FROM"
    assert rows[0]["timestamp"] == "2026-03-02 09:15:07"


def test_read_forced_format_mismatch(capsys):
    status = run("read", str(LOGS / "iis_format_sample.log"), "--log-format", "w3c")
    assert status == 2
    assert "不是 W3C Extended 記錄檔" in capsys.readouterr().err


def test_parquet_needs_out(capsys):
    status = run("read", str(LOGS / "w3c_truncated_last_line.log"), "--format", "parquet")
    error = capsys.readouterr().err
    assert status == 2
    assert "Parquet" in error
    assert "--out" in error


def test_out_is_input_rejected(tmp_path, capsys):
    log = tmp_path / "ex260302.log"
    shutil.copy(LOGS / "w3c_truncated_last_line.log", log)
    before = log.read_bytes()
    status = run("read", str(tmp_path), "--out", str(log))
    assert status == 2
    assert "也是要讀取的記錄檔" in capsys.readouterr().err
    assert log.read_bytes() == before


def test_out_folder_missing(tmp_path, capsys):
    status = run("read", str(LOGS / "w3c_truncated_last_line.log"), "--out", str(tmp_path / "no" / "rows.csv"))
    assert status == 2
    assert "不存在" in capsys.readouterr().err


def test_out_is_folder(tmp_path, capsys):
    status = run("read", str(LOGS / "w3c_truncated_last_line.log"), "--out", str(tmp_path))
    assert status == 2
    assert "是資料夾" in capsys.readouterr().err


@pytest.mark.parametrize(("arguments", "text"), [
    (("read", "no-such-file.log"), "找不到路徑"),
    (("summary", "no-such-file.log"), "找不到路徑"),
    (("read", str(LOGS / "w3c_truncated_last_line.log"), "--tz", "Mars/Base"), "不認得的時區"),
    (("summary", str(LOGS / "w3c_truncated_last_line.log"), "--encoding", "klingon"), "不認得的字元編碼"),
    (("summary", str(LOGS / "w3c_truncated_last_line.log"), str(LOGS / "ncsa_format_sample.log")), "格式不一致"),
])
def test_bad_input_exits_2(capsys, arguments, text):
    status = run(*arguments)
    error = capsys.readouterr().err
    assert status == 2
    assert text in error
    assert "下一步" in error


def test_folder_without_logs_exits_2(tmp_path, capsys):
    status = run("summary", str(tmp_path))
    assert status == 2
    assert "沒有記錄檔" in capsys.readouterr().err


# Atomic writes


def test_failed_write_leaves_old_file(tmp_path):
    out = tmp_path / "rows.csv"
    out.write_text("old content")

    def fail_halfway(handle):
        handle.write(b"half of the rows")
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError) as caught:
        log_cli.write_atomically(out, fail_halfway)
    assert caught.value.key == "w3c.cli.output_failed"
    assert "磁碟空間不足" in str(caught.value)
    assert out.read_text() == "old content"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rows.csv"]


def test_interrupted_write_removes_temporary(tmp_path):
    out = tmp_path / "rows.csv"

    def interrupted(handle):
        handle.write(b"part")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        log_cli.write_atomically(out, interrupted)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="raise_signal(SIGTERM) ends the process on Windows")
def test_sigterm_during_write_removes_temporary(tmp_path, monkeypatch, capsys):
    out = tmp_path / "rows.csv"
    real_write = log_cli._write_csv
    seen = []

    def terminated_mid_write(frame, handle):
        real_write(frame.head(1), handle)
        seen.extend(path.name for path in tmp_path.iterdir())
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(log_cli, "_write_csv", terminated_mid_write)
    status = main(["log", "read", str(LOGS / "w3c_truncated_last_line.log"), "--out", str(out)])
    assert status == 130
    assert "已中斷。" in capsys.readouterr().err
    # The temporary file existed while the CSV was written, and the interrupt removed it.
    assert len(seen) == 1
    assert seen[0].startswith(".rows.csv.")
    assert seen[0].endswith(".tmp")
    assert list(tmp_path.iterdir()) == []


# summary


def test_summary_table(capsys):
    status = run("summary", str(LOGS / "w3c_binary_garbage.log"), str(LOGS / "w3c_fields_change_midfile.log"))
    text = capsys.readouterr().out
    assert status == 0
    assert "記錄檔摘要（W3C Extended 擴充記錄檔格式）" in text
    assert "檔案 2 個、區塊 4 個、資料列 10 列、略過 2 行" in text
    assert "時間範圍：2026-03-02T01:15:07+00:00 至 2026-03-02T03:00:00+00:00（UTC 世界協調時間）" in text
    assert "time c-ip cs-method cs-uri-stem sc-status" in text
    assert "含有控制字元的二進位資料" in text


def test_summary_lists_skipped_lines(capsys):
    run("summary", str(LOGS / "w3c_undecodable_byte.log"))
    lines = capsys.readouterr().out.splitlines()
    listed = [line for line in lines if line.startswith(str(LOGS))]
    assert len(listed) == 1
    assert listed[0].split()[1] == "6"
    assert listed[0].endswith("無法解碼的位元組 0x80")


def test_summary_and_read_name_an_empty_file(tmp_path, capsys):
    empty = tmp_path / "ex260303.log"
    empty.write_bytes(b"")
    assert run("summary", str(empty)) == 0
    assert f"有 1 個檔案是空的，沒有任何記錄或指示詞：{empty}。" in capsys.readouterr().out
    assert run("read", str(empty), str(LOGS / "w3c_line_before_fields.log")) == 0
    assert f"有 1 個檔案是空的，沒有任何記錄或指示詞：{empty}。" in capsys.readouterr().err


def test_summary_real_log_not_empty(capsys):
    run("summary", str(LOGS / "w3c_truncated_last_line.log"))
    assert "檔案是空的" not in capsys.readouterr().out


def test_summary_english(capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    run("summary", str(LOGS / "w3c_truncated_last_line.log"))
    text = capsys.readouterr().out
    assert "Log summary (W3C Extended)" in text
    assert "last line cut off" in text


def test_summary_json(capsys):
    status = run("summary", str(LOGS / "w3c_line_before_fields.log"), "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["rows"] == 2
    assert document["skipped_by_reason"] == {"before_fields": 1}
    assert document["skipped_lines"] == [{"file": str(LOGS / "w3c_line_before_fields.log"), "line": 1,
                                          "reason": "before_fields", "detail": ""}]
    assert document["field_sets"][0]["blocks"] == 1


def test_summary_of_iis_format(capsys):
    run("summary", str(LOGS / "iis_format_sample.log"))
    text = capsys.readouterr().out
    assert "Microsoft IIS 格式" in text
    assert "記錄檔寫的當地時間" in text


def test_summary_spells_out_field_counts(capsys):
    run("summary", str(LOGS / "iis_format_sample.log"))
    text = capsys.readouterr().out
    assert "應有 15 個欄位，這一行有 0 個" in text
    assert "15/0" not in text
    run("summary", str(LOGS / "w3c_wrong_field_count.log"))
    assert "應有 21 個欄位，這一行有 20 個" in capsys.readouterr().out


def test_summary_quotes_text_details(capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    run("summary", str(LOGS / "ncsa_format_sample.log"))
    assert '"date=31/Feb/2026:09:15:08"' in capsys.readouterr().out
    run("summary", str(LOGS / "iis_format_sample.log"), "--format", "json")
    # JSON keeps the short detail for scripts.
    assert json.loads(capsys.readouterr().out)["skipped_lines"][0]["detail"] == "15/0"


def test_summary_shows_first_skipped_lines_only(tmp_path, capsys):
    data = (LOGS / "w3c_truncated_last_line.log").read_bytes()
    cut = data.rindex(b"\r\n") + 2
    path = tmp_path / "ex260302.log"
    path.write_bytes(data[:cut] + b"\x01garbage\r\n" * 30)
    run("summary", str(path))
    text = capsys.readouterr().out
    assert "略過的行（列出 20 行，共 30 行）" in text


# help


def test_read_help_states_exit_codes(capsys):
    with pytest.raises(SystemExit) as caught:
        run("read", "--help")
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "結束代碼：0 已完成輸出" in text
    assert "--tz" in text


def test_summary_help_in_english(capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(SystemExit):
        run("summary", "--help")
    assert "Exit status: 0 the summary was printed, 2 the input could not be used." in capsys.readouterr().out


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_output_gets_umask_mode(tmp_path):
    out = tmp_path / "rows.csv"
    old_umask = os.umask(0o022)
    try:
        assert run("read", str(LOGS / "w3c_fields_change_midfile.log"), "--out", str(out)) == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_replaced_output_keeps_mode(tmp_path):
    out = tmp_path / "rows.csv"
    out.write_text("old", encoding="utf-8")
    out.chmod(0o640)
    assert run("read", str(LOGS / "w3c_fields_change_midfile.log"), "--out", str(out), "--force") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


# A log whose file name is Big5 bytes, as copied from a Windows share onto a Linux disk.


@pytest.fixture
def big5_named_log(tmp_path):
    name = os.fsdecode(b"\xb4\xfa\xb8\xd5.log")
    path = tmp_path / name
    shutil.copyfile(LOGS / "smtp_busy_morning.log", path)
    return path


@pytest.mark.parametrize("verb", [["read"], ["summary"], ["report", "--format", "json"],
                                  ["trace", "--from", "nobody@example.com"]])
def test_big5_file_name_is_read(big5_named_log, verb, capsys):
    status = run(*verb, str(big5_named_log))
    captured = capsys.readouterr()
    assert status in (0, 1)
    assert "Traceback" not in captured.err
    assert "UnicodeEncodeError" not in captured.err


def test_big5_file_name_shown_replaced(big5_named_log, capsysbinary):
    status = run("read", str(big5_named_log))
    rows = csv_rows(capsysbinary.readouterr().out)
    assert status == 0
    assert rows
    assert rows[0]["source_file"].endswith("\ufffd\ufffd\ufffd\ufffd.log")


def test_big5_file_name_to_parquet(big5_named_log, tmp_path):
    out = tmp_path / "rows.parquet"
    status = run("read", str(big5_named_log), "--format", "parquet", "--out", str(out))
    frame = pd.read_parquet(out)
    assert status == 0
    assert len(frame) > 0
    assert frame["source_file"].iloc[0].endswith("\ufffd\ufffd\ufffd\ufffd.log")
