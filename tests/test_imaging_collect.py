"""The batch file that collects the SYSTEM hive, hal.dll and sysprep.inf from an XP master, and its CLI."""

from __future__ import annotations

import pytest

from adminkb.imaging.collect import COPY_BACK, collect_batch_bytes, collect_batch_text
from clirun import run_area


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def batch_lines() -> list[str]:
    return collect_batch_text().split("\r\n")


def test_batch_saves_whole_system_key():
    text = collect_batch_text()
    assert 'reg save HKLM\\SYSTEM "%OUT%\\SYSTEM.hiv"' in text
    assert 'reg export HKLM\\SYSTEM "%OUT%\\system.reg"' in text
    assert "ControlSet001" not in text


def test_old_copies_deleted_before_saving():
    lines = batch_lines()
    for command, file_name in (("reg save", "SYSTEM.hiv"), ("reg export", "system.reg")):
        index = next(number for number, line in enumerate(lines) if line.startswith(command))
        assert lines[index - 1] == f'if exist "%OUT%\\{file_name}" del "%OUT%\\{file_name}"'


def test_batch_uses_tools_xp_has():
    text = collect_batch_text().lower()
    for missing in ("powershell", "wevtutil", "certutil", "robocopy", "forfiles", "reg save /y", "reg export /y"):
        assert missing not in text


def test_batch_changes_nothing_outside_its_folder():
    for line in batch_lines():
        words = line.split(" ")
        if "del" in words:
            assert line.split(" del ", 1)[1].startswith('"%OUT%\\'), line
        if "copy" in words:
            destination = line.split(" >> ")[0].rsplit(" ", 1)[1]
            assert destination.startswith('"%OUT%\\'), line
        assert not line.lower().startswith(("reg add", "reg delete", "reg import", "regedit", "sc ", "move ", "ren ")), line


def test_batch_copies_hal_and_sysprep():
    text = collect_batch_text()
    assert 'copy /b /y "%SystemRoot%\\system32\\hal.dll" "%OUT%\\hal.dll"' in text
    assert 'copy /y "%SystemDrive%\\Sysprep\\sysprep.inf" "%OUT%\\sysprep.inf"' in text


def test_copy_back_names_match_batch():
    text = collect_batch_text()
    for item in COPY_BACK:
        assert f"%OUT%\\{item.file}" in text, item.file


def test_batch_lines_end_in_crlf():
    text = collect_batch_text()
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")


def test_batch_encodes_in_cp950():
    assert collect_batch_bytes().decode("cp950") == collect_batch_text()


def test_english_batch_is_ascii(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert collect_batch_text().isascii()


# `adminkb sysprep collect-script`.

def test_cli_prints_batch(capsys):
    assert run_area("sysprep", "collect-script") == 0
    assert capsys.readouterr().out == collect_batch_text()


def test_cli_writes_and_lists_copy_back(tmp_path, capsys):
    target = tmp_path / "imaging-collect.cmd"
    assert run_area("sysprep", "collect-script", "--output", str(target)) == 0
    assert target.read_bytes() == collect_batch_bytes()
    output = capsys.readouterr().out
    for item in COPY_BACK:
        assert item.file in output
    assert "imaging-collect-<COMPUTERNAME>" in output


def test_cli_keeps_existing_file(tmp_path, capsys):
    target = tmp_path / "imaging-collect.cmd"
    target.write_bytes(b"keep")
    assert run_area("sysprep", "collect-script", "--output", str(target)) == 2
    assert target.read_bytes() == b"keep"
    assert "--force" in capsys.readouterr().err


def test_cli_force_overwrites(tmp_path):
    target = tmp_path / "imaging-collect.cmd"
    target.write_bytes(b"old")
    assert run_area("sysprep", "collect-script", "--output", str(target), "--force") == 0
    assert target.read_bytes() == collect_batch_bytes()


def test_cli_unwritable_exits_2(tmp_path, capsys):
    assert run_area("sysprep", "collect-script", "--output", str(tmp_path / "missing" / "x.cmd")) == 2
    assert "無法寫入批次檔" in capsys.readouterr().err
