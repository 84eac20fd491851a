"""`adminkb reg read` and `adminkb reg diff`: output formats, exit statuses and messages."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import adminkb.cli
from clirun import run_area

DATA = Path(__file__).resolve().parent.parent / "data" / "reg"


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def run(*arguments: str) -> int:
    return run_area("reg", *arguments)


def test_read_clean_file(capsys):
    status = run("read", str(DATA / "version5_utf16le_bom.reg"))
    output = capsys.readouterr()
    assert status == 0
    assert output.err == ""
    lines = output.out.splitlines()
    assert "3 個機碼、10 個值" in lines[0]
    assert lines[1].split() == ["機碼", "名稱", "類型", "資料"]
    assert "會略過的行" not in output.out


def test_read_shows_decoded_values(capsys):
    run("read", str(DATA / "version5_utf16le_bom.reg"))
    text = capsys.readouterr().out
    assert "1 (0x00000001)" in text
    assert "2097152 (0x0000000000200000)" in text
    assert "%SystemRoot%\\System32\\termsrv.dll" in text
    assert "@（預設值）" in text
    assert "de ad be ef 00 11 22 33" in text
    multi_lines = [line.rstrip() for line in text.splitlines()]
    start = next(index for index, line in enumerate(multi_lines) if line.endswith("relay.example.com"))
    assert multi_lines[start + 1].endswith("192.0.2.25")
    assert multi_lines[start + 2].endswith("郵件閘道")


def test_read_problems_after_table(capsys):
    status = run("read", str(DATA / "dword_with_0x_prefix.reg"))
    text = capsys.readouterr().out
    assert status == 1
    table_row = text.index("2 (0x00000002)")
    heading = text.index("regedit 會略過的行（共 1 行）")
    assert table_row < heading
    problem = text[heading:]
    assert "dword_with_0x_prefix.reg 第 5 行" in problem
    assert "WithPrefix" in problem
    assert "下一步" in problem


@pytest.mark.parametrize("name", ["empty.reg", "no_header.reg", "binary_garbage.reg", "unknown_header.reg",
                                  "utf16le_without_bom.reg", "missing.reg"])
def test_read_unusable_exits_2(name, capsys):
    status = run("read", str(DATA / name))
    output = capsys.readouterr()
    assert status == 2
    assert output.out == ""
    assert output.err.startswith("錯誤：")
    assert name in output.err


def test_read_unknown_code_page_exits_2(capsys):
    status = run("read", "--encoding", "cp99999", str(DATA / "regedit4_cp950.reg"))
    assert status == 2
    assert "cp99999" in capsys.readouterr().err


def test_read_encoding_option(tmp_path, capsys):
    path = tmp_path / "western.reg"
    text = "REGEDIT4\r\n\r\n[HKEY_CURRENT_USER\\Software\\Example]\r\n\"Café\"=\"Crème\"\r\n"
    path.write_bytes(text.encode("cp1252"))
    status = run("read", "--encoding", "1252", str(path))
    assert status == 0
    assert "Crème" in capsys.readouterr().out
    status = run("read", str(path))
    assert status == 1
    assert "cp950" in capsys.readouterr().out


def test_read_json(capsys):
    status = run("read", "--format", "json", str(DATA / "bad_values_among_good.reg"))
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["header"] == "Windows Registry Editor Version 5.00"
    values = {value["name"]: value for value in document["keys"][0]["values"]}
    assert values["Good2"] == {"line": 6, "name": "Good2", "delete": False, "type": "REG_DWORD", "type_number": 4,
                               "value": 2, "data": "02000000"}
    assert values["Good3"]["value"] is None
    assert values["Good3"]["data"] == "03"
    assert [problem["code"] for problem in document["problems"]] == [
        "dword_not_hex", "unknown_data_type", "string_bad_escape", "line_not_understood"]
    assert document["problems"][0]["name"] == "BadDword"
    assert "hello" in document["problems"][0]["message"]


def test_read_csv(capsys):
    status = run("read", "--format", "csv", str(DATA / "dword_with_0x_prefix.reg"))
    output = capsys.readouterr()
    assert status == 1
    assert output.out.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(output.out[1:])))
    assert [row["name"] for row in rows] == ["Before", "After"]
    assert rows[1] == {"line": "6", "key": "HKEY_LOCAL_MACHINE\\SOFTWARE\\Example\\Dword", "name": "After",
                       "type": "REG_DWORD", "value": "2 (0x00000002)"}
    assert "WithPrefix" in output.err


def test_read_deletions(capsys):
    run("read", str(DATA / "deletions.reg"))
    text = capsys.readouterr().out
    assert "（刪除此機碼與所有子機碼）" in text
    assert text.count("（刪除此值）") == 3


def test_read_english(monkeypatch, capsys):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    run("read", str(DATA / "odd_hex_digits.reg"))
    text = capsys.readouterr().out
    assert "Lines regedit would skip (1):" in text
    assert "odd_hex_digits.reg, line 5" in text
    assert "odd number of digits" in text


def test_diff_equal(capsys):
    path = str(DATA / "version5_utf16le_bom.reg")
    status = run("diff", path, path)
    assert status == 0
    assert "機碼和值相同" in capsys.readouterr().out


def test_diff_changes(capsys):
    status = run("diff", str(DATA / "diff_before_change.reg"), str(DATA / "diff_after_change.reg"))
    text = capsys.readouterr().out
    assert status == 1
    assert "4 項差異" in text
    for label in ("變更值", "新增值", "移除機碼", "移除值"):
        assert label in text
    assert "REG_DWORD: 1 (0x00000001)" in text
    assert "REG_DWORD: 0 (0x00000000)" in text
    assert "TSEnabled" not in text


def test_diff_json(capsys):
    status = run("diff", "--format", "json", str(DATA / "diff_before_change.reg"), str(DATA / "diff_after_change.reg"))
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["equal"] is False
    changed = document["changes"][0]
    assert changed["kind"] == "value_changed"
    assert changed["name"] == "fDenyTSConnections"
    assert changed["old"]["value"] == 1
    assert changed["new"]["value"] == 0


def test_diff_csv(capsys):
    run("diff", "--format", "csv", str(DATA / "diff_before_change.reg"), str(DATA / "diff_after_change.reg"))
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out.lstrip("\ufeff"))))
    assert [row["change"] for row in rows] == ["變更值", "新增值", "移除機碼", "移除值"]


def test_diff_unreadable_exits_2(capsys):
    status = run("diff", str(DATA / "diff_before_change.reg"), str(DATA / "empty.reg"))
    output = capsys.readouterr()
    assert status == 2
    assert "empty.reg" in output.err


def test_diff_notes_skipped_lines(capsys):
    status = run("diff", str(DATA / "dword_with_0x_prefix.reg"), str(DATA / "dword_with_0x_prefix.reg"))
    output = capsys.readouterr()
    assert status == 0
    assert "dword_with_0x_prefix.reg 有 1 行 regedit 會略過" in output.err


def test_read_help_lists_exit_statuses(capsys):
    with pytest.raises(SystemExit) as caught:
        run("read", "--help")
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "結束代碼：0 檔案沒有問題，1 有 regedit 會略過的值，2 檔案無法讀取" in text
    assert "--encoding CODEPAGE" in text


def test_bad_format_is_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        run("read", "--format", "xml", str(DATA / "empty.reg"))
    assert caught.value.code == 2
    assert "參數錯誤" in capsys.readouterr().err


def test_main_runs_reg_area(capsys):
    assert adminkb.cli.main(["reg", "read", str(DATA / "hex_byte_over_ff.reg")]) == 1
    assert "100" in capsys.readouterr().out
    assert adminkb.cli.main(["reg", "read", str(DATA / "empty.reg")]) == 2


@pytest.mark.timeout(120)
def test_cp950_console_never_crashes(tmp_path):
    path = tmp_path / "emoji.reg"
    path.write_bytes(b"\xff\xfe" + ("Windows Registry Editor Version 5.00\r\n\r\n"
                                    "[HKEY_CURRENT_USER\\Software\\Example]\r\n"
                                    "\"Face\"=\"smile \U0001F600\"\r\n").encode("utf-16-le"))
    result = subprocess.run([sys.executable, "-m", "adminkb", "reg", "read", str(path)], capture_output=True,
                            timeout=60, env=dict(os.environ, PYTHONIOENCODING="cp950", ADMINKB_LANG="zh-TW"))
    assert result.returncode == 0, result.stderr
    assert "smile ?".encode("cp950") in result.stdout
    assert "機碼".encode("cp950") in result.stdout
