"""The batch file that collects an IIS SMTP server's files on Windows Server 2003 or XP."""

from __future__ import annotations

import pytest

from adminkb.collect import COPY_BACK, collect_batch_bytes, collect_batch_text
from adminkb.errors import InputError
from tests.clirun import run_area


def test_batch_uses_tools_of_2003_and_xp():
    text = collect_batch_text()
    assert "eventquery.vbs" in text
    assert "wevtutil" not in text
    assert "powershell" not in text.lower()
    assert "forfiles" not in text
    assert "robocopy" not in text
    assert 'call BackupEventlog "%OUT%\\System.evt"' in text
    assert "iiscnfg.vbs\" /save" in text


def test_batch_lines_end_in_crlf():
    text = collect_batch_text()
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")


def test_batch_changes_nothing_outside_its_folder():
    for line in collect_batch_text().split("\r\n"):
        command = line.lstrip(">").split('" ', 1)[-1] if line.startswith(">") else line
        if command.startswith(("del ", "mkdir ", "if not exist \"%OUT%")):
            assert "%OUT%" in command, line
        assert not command.lower().startswith(("move ", "ren ", "net stop", "net start", "rd ")), line


def test_batch_options_reach_commands():
    text = collect_batch_text(mailroot=r"D:\mail root", site=3, days=14, log_folder=r"E:\Logs")
    assert r'dir /s /a /-c /t:w "D:\mail root"' in text
    assert r'"E:\Logs\SMTPSVC3" "%OUT%\logs" 14' in text


def test_vbs_operators_are_escaped():
    text = collect_batch_text()
    assert "^<= CInt(args(2))" in text
    assert 'args(1) ^& "\\", True' in text
    assert '>>"%OUT%\\copy_recent.vbs" echo If Not fso.FolderExists(args(0)) Then WScript.Quit 2' in text


def test_batch_encodes_in_cp950():
    data = collect_batch_bytes()
    assert data.decode("cp950") == collect_batch_text()


@pytest.mark.parametrize(("options", "key"), [
    ({"mailroot": 'C:\\mail" & del *'}, "collect.bad_path"),
    ({"mailroot": ""}, "collect.bad_path"),
    ({"log_folder": "C:\\logs|x"}, "collect.bad_path"),
    ({"site": 0}, "collect.bad_site"),
    ({"site": 255}, "collect.bad_site"),
    ({"days": 0}, "collect.bad_days"),
    ({"days": 367}, "collect.bad_days"),
])
def test_bad_options_raise(options, key):
    with pytest.raises(InputError) as caught:
        collect_batch_text(**options)
    assert caught.value.key == key


def test_cli_writes_and_lists_copy_back(tmp_path, capsys):
    target = tmp_path / "collect_smtp.cmd"
    assert run_area("config", "collect", "--out", str(target), "--days", "3") == 0
    assert target.read_bytes() == collect_batch_bytes(days=3)
    output = capsys.readouterr().out
    for item in COPY_BACK:
        assert item.file in output


def test_cli_keeps_existing_file(tmp_path):
    target = tmp_path / "collect_smtp.cmd"
    target.write_bytes(b"keep me")
    with pytest.raises(InputError) as caught:
        run_area("config", "collect", "--out", str(target))
    assert caught.value.key == "collect.output_exists"
    assert target.read_bytes() == b"keep me"
    assert run_area("config", "collect", "--out", str(target), "--force") == 0
    assert target.read_bytes() == collect_batch_bytes()
