"""`adminkb termsrv`: check, state, collect-script, files and plan, with their outputs and exit statuses."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from pathlib import Path

import pefile
import pytest

from adminkb.regfile import RegistryModel, RegValue, read_regfile
from adminkb.termsrv import LICENSING_CORE, TERMINAL_SERVER, WINLOGON
import fake_winreg
from clirun import run_area
from pe_launchers import launcher

DATA = Path(__file__).resolve().parent.parent / "data" / "termsrv"


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def run(*arguments: str) -> int:
    return run_area("termsrv", *arguments)


def xp_build_copy(tmp_path: Path, name: str, revision: int, source: str = "t32.exe") -> Path:
    """Write a copy of a launcher whose fixed file version reads 5.1.2600.<revision>."""
    pe = pefile.PE(data=launcher(source).read_bytes())
    pe.VS_FIXEDFILEINFO[0].FileVersionMS = (5 << 16) | 1
    pe.VS_FIXEDFILEINFO[0].FileVersionLS = (2600 << 16) | revision
    path = tmp_path / name
    path.write_bytes(bytes(pe.write()))
    return path


# check

def test_check_launcher_table(capsys):
    status = run("check", str(launcher("t64.exe")))
    output = capsys.readouterr()
    assert status == 1
    assert "固定檔案版本 (VS_FIXEDFILEINFO)  1.1.0.14" in output.out
    assert "x64 (AMD64) (0x8664)" in output.out
    assert "此方法不適用" in output.out
    assert "原始檔名是「t64.exe」" in output.out
    assert output.err == ""


def test_check_json(capsys):
    path = launcher("t32.exe")
    status = run("check", str(path), "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["file_version"] == "1.1.0.14"
    assert document["machine"] == "0x014c"
    assert document["size"] == path.stat().st_size
    assert document["applicability"] == "other"


def test_check_csv(capsys):
    run("check", str(launcher("w32.exe")), "--format", "csv")
    text = capsys.readouterr().out
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == 1
    assert rows[0]["file_version"] == "1.1.0.14"
    assert rows[0]["applicability"] == "other"


def test_check_xp_build_exits_0(tmp_path, capsys):
    path = xp_build_copy(tmp_path, "termsrv.dll", 5512)
    status = run("check", str(path))
    output = capsys.readouterr().out
    # The string table still says 1.1.0.14, so the mismatch note appears and the status is 1.
    assert status == 1
    assert "字串表的 FileVersion「1.1.0.14」與固定版本 5.1.2600.5512 不同" in output
    assert "Windows XP（32 位元）的 termsrv.dll 版本" in output


def test_check_bad_file_exits_2(tmp_path, capsys):
    path = tmp_path / "termsrv.dll"
    path.write_bytes(b"")
    status = run("check", str(path))
    output = capsys.readouterr()
    assert status == 2
    assert output.out == ""
    assert "是空的" in output.err
    assert "下一步" in output.err


# state

def test_state_table(capsys):
    status = run("state", str(DATA / "xp_terminal_server.reg"), str(DATA / "xp_winlogon.reg"))
    output = capsys.readouterr()
    assert status == 0
    assert "遠端桌面：已開啟" in output.out
    assert "EnableConcurrentSessions 未設為 1" in output.out
    assert "4294967295 (0xffffffff)" in output.out
    assert "未匯出此機碼" in output.out
    assert output.err == ""


def test_state_json(capsys):
    run("state", str(DATA / "xp_terminal_server_applied.reg"), "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert document["concurrent_sessions_enabled"] is True
    assert document["rdp_enabled"] is True
    settings = {item["id"]: item for item in document["settings"]}
    assert settings["enable_concurrent_sessions"]["number"] == 1
    assert settings["max_instance_count_policy"]["key_known"] is False


def test_state_secret_warning(capsys):
    run("state", str(DATA / "xp_winlogon_autologon_password.reg"))
    output = capsys.readouterr()
    assert "明文密碼" in output.err
    assert "DefaultPassword" in output.err
    assert "example-not-a-real-password" not in output.out + output.err


def test_state_no_files_exits_2(capsys):
    status = run("state")
    assert status == 2
    assert "沒有指定任何 .reg 匯出檔" in capsys.readouterr().err


def test_state_live_with_files_exits_2(capsys):
    status = run("state", "--live", str(DATA / "xp_terminal_server.reg"))
    error = capsys.readouterr().err
    assert status == 2
    assert "--live 與 .reg 檔不能同時指定" in error
    assert "xp_terminal_server.reg" in error


@pytest.mark.skipif(sys.platform == "win32", reason="winreg is available on Windows")
def test_state_live_off_windows(capsys):
    status = run("state", "--live")
    assert status == 2
    assert "只有在 Windows 上" in capsys.readouterr().err


def test_state_live_with_stand_in_winreg(monkeypatch, capsys):
    below_hklm = TERMINAL_SERVER[len("HKEY_LOCAL_MACHINE\\"):]
    module = fake_winreg.build_winreg({below_hklm: [("fDenyTSConnections", 1, fake_winreg.REG_DWORD)]})
    monkeypatch.setitem(sys.modules, "winreg", module)
    monkeypatch.setattr(sys, "platform", "win32")
    status = run("state", "--live")
    output = capsys.readouterr()
    assert status == 0
    assert output.err == ""
    assert "遠端桌面：已關閉" in output.out
    # Licensing Core, RDP-Tcp, Winlogon and the policy key do not exist on this machine.
    assert "此機碼不存在" in output.out
    assert "未匯出此機碼" not in output.out


# collect-script

def test_collect_script_to_stdout(capsys):
    status = run("collect-script")
    text = capsys.readouterr().out
    assert status == 0
    assert text.startswith("@echo off")
    assert "reg export" in text


def test_collect_script_file(tmp_path, capsys):
    path = tmp_path / "termsrv-collect.cmd"
    status = run("collect-script", "--output", str(path))
    output = capsys.readouterr().out
    assert status == 0
    data = path.read_bytes()
    assert data.startswith(b"@echo off\r\n")
    assert "收集遠端桌面設定" in data.decode("cp950")
    assert "terminal_server.reg" in output
    assert "certutil -hashfile" in output
    assert "fciv.exe" in output


def test_collect_script_unwritable(tmp_path, capsys):
    target = tmp_path / "missing" / "x.cmd"
    status = run("collect-script", "--output", str(target))
    error = capsys.readouterr().err
    assert status == 2
    assert f"無法寫入檔案 {target}：找不到這個檔案或資料夾" in error
    assert f"請確認資料夾 {tmp_path / 'missing'} 存在" in error
    assert "讀取" not in error


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_collect_script_output_is_folder(tmp_path, capsys, force):
    status = run("collect-script", "--output", str(tmp_path), *force)
    error = capsys.readouterr().err
    assert status == 2
    assert f"--output 指定的 {tmp_path} 是資料夾" in error
    assert f"--output {tmp_path / 'collect.cmd'}" in error


# files

def test_files_written_and_reversible(tmp_path, capsys):
    export = DATA / "xp_terminal_server.reg"
    status = run("files", str(export), "--output-dir", str(tmp_path))
    output = capsys.readouterr().out
    assert status == 0
    assert "EnableConcurrentSessions" in output
    apply_file = read_regfile(tmp_path / "termsrv-apply.reg")
    rollback_file = read_regfile(tmp_path / "termsrv-rollback.reg")
    assert (tmp_path / "termsrv-apply.reg").read_bytes().startswith(b"\xff\xfe")
    original = RegistryModel.from_regfile(read_regfile(export))
    applied = original.copy().apply(apply_file)
    assert applied.get(LICENSING_CORE, "EnableConcurrentSessions") == RegValue.dword(1)
    assert applied.copy().apply(rollback_file) == original


def test_files_refuse_overwrite(tmp_path, capsys):
    (tmp_path / "termsrv-rollback.reg").write_bytes(b"keep me")
    status = run("files", str(DATA / "xp_terminal_server.reg"), "--output-dir", str(tmp_path))
    assert status == 2
    assert "已經存在" in capsys.readouterr().err
    assert (tmp_path / "termsrv-rollback.reg").read_bytes() == b"keep me"
    assert not (tmp_path / "termsrv-apply.reg").exists()


def test_files_output_dir_is_file(tmp_path, capsys):
    existing = tmp_path / "empty.log"
    existing.write_bytes(b"")
    status = run("files", str(DATA / "xp_terminal_server.reg"), "--output-dir", str(existing))
    error = capsys.readouterr().err
    assert status == 2
    assert f"--output-dir 指定的 {existing} 已經存在，但不是資料夾" in error
    assert "讀取" not in error
    assert existing.read_bytes() == b""


def test_files_output_dir_under_file(tmp_path, capsys):
    (tmp_path / "empty.log").write_bytes(b"")
    status = run("files", str(DATA / "xp_terminal_server.reg"), "--output-dir", str(tmp_path / "empty.log" / "sub"))
    error = capsys.readouterr().err
    assert status == 2
    assert f"無法建立資料夾 {tmp_path / 'empty.log' / 'sub'}" in error
    assert "讀取" not in error


def test_files_force_overwrites(tmp_path, capsys):
    (tmp_path / "termsrv-rollback.reg").write_bytes(b"old")
    status = run("files", str(DATA / "xp_terminal_server.reg"), "--output-dir", str(tmp_path), "--force")
    assert status == 0
    assert (tmp_path / "termsrv-rollback.reg").read_bytes().startswith(b"\xff\xfe")


def test_files_already_applied_exits_1(tmp_path, capsys):
    status = run("files", str(DATA / "xp_terminal_server_applied.reg"), "--output-dir", str(tmp_path))
    errors = capsys.readouterr().err
    assert status == 1
    assert "無法還原到變更前的狀態" in errors
    assert "EnableConcurrentSessions = 1" in errors
    assert "下一步" in errors
    assert list(tmp_path.iterdir()) == []


def test_files_partly_applied_exits_1(tmp_path, capsys):
    # EnableConcurrentSessions is already 1 and AllowMultipleTSSessions is 0, so a rollback built
    # from these exports would put back only AllowMultipleTSSessions.
    status = run("files", str(DATA / "xp_terminal_server_applied.reg"), str(DATA / "xp_winlogon_autologon_password.reg"),
                 "--allow-multiple-sessions", "--output-dir", str(tmp_path))
    errors = capsys.readouterr().err
    assert status == 1
    assert "EnableConcurrentSessions = 1" in errors
    assert "AllowMultipleTSSessions" not in errors
    assert list(tmp_path.iterdir()) == []


def test_files_fast_user_switching_on_exits_0(tmp_path, capsys):
    # A stock XP export: Fast User Switching is on, so AllowMultipleTSSessions is already 1.
    exports = [DATA / "xp_terminal_server.reg", DATA / "xp_winlogon.reg"]
    status = run("files", *map(str, exports), "--allow-multiple-sessions", "--output-dir", str(tmp_path))
    output = capsys.readouterr()
    assert status == 0
    assert output.err == ""
    assert "匯出檔中已經是 AllowMultipleTSSessions = 1" in output.out
    assert "沒有先前套用過的跡象" in output.out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["termsrv-apply.reg", "termsrv-rollback.reg"]

    apply_file = read_regfile(tmp_path / "termsrv-apply.reg")
    rollback_file = read_regfile(tmp_path / "termsrv-rollback.reg")
    assert [section.path for section in apply_file.keys] == [LICENSING_CORE]
    assert [section.path for section in rollback_file.keys] == [LICENSING_CORE]
    original = RegistryModel()
    for export in exports:
        original.apply(read_regfile(export))
    applied = original.copy().apply(apply_file)
    assert applied.get(LICENSING_CORE, "EnableConcurrentSessions") == RegValue.dword(1)
    assert applied.get(WINLOGON, "AllowMultipleTSSessions") == RegValue.dword(1)
    restored = applied.copy().apply(rollback_file)
    assert restored == original
    # The rollback leaves the 1 that was there before the change.
    assert restored.get(WINLOGON, "AllowMultipleTSSessions") == RegValue.dword(1)


def test_files_sets_allow_multiple_when_0(tmp_path, capsys):
    exports = [DATA / "xp_terminal_server.reg", DATA / "xp_winlogon_autologon_password.reg"]
    status = run("files", *map(str, exports), "--allow-multiple-sessions", "--output-dir", str(tmp_path))
    output = capsys.readouterr().out
    assert status == 0
    assert "匯出檔中已經是" not in output
    rollback_file = read_regfile(tmp_path / "termsrv-rollback.reg")
    original = RegistryModel()
    for export in exports:
        original.apply(read_regfile(export))
    applied = original.copy().apply(read_regfile(tmp_path / "termsrv-apply.reg"))
    assert applied.get(WINLOGON, "AllowMultipleTSSessions") == RegValue.dword(1)
    restored = applied.copy().apply(rollback_file)
    assert restored.get(WINLOGON, "AllowMultipleTSSessions") == RegValue.dword(0)
    assert restored == original


def test_files_bad_value_in_changed_key_exits_2(tmp_path, capsys):
    status = run("files", str(DATA / "xp_licensing_core_bad_value.reg"), "--output-dir", str(tmp_path))
    errors = capsys.readouterr().err
    assert status == 2
    assert "第 5 行" in errors
    assert "0x1" in errors
    assert list(tmp_path.iterdir()) == []


def test_files_missing_key_exits_2(tmp_path, capsys):
    status = run("files", str(DATA / "xp_winlogon.reg"), "--output-dir", str(tmp_path))
    assert status == 2
    assert "Terminal Server" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# plan

def test_plan_blocks(capsys):
    status = run("plan")
    text = capsys.readouterr().out
    assert status == 0
    blocks = text.strip().split("\n\n")
    run("plan", "--format", "json")
    assert len(blocks) == len(json.loads(capsys.readouterr().out))
    first = blocks[0].splitlines()
    assert [line.split("：", 1)[0] for line in first] == ["步驟", "階段", "動作", "命令", "檢查"]
    assert first[0] == "步驟：1"
    assert "regedit /s termsrv-apply.reg" in text
    assert "regedit /s termsrv-rollback.reg" in text
    # A step's second command lines up under its first.
    second = blocks[1].splitlines()
    assert second[3] == "命令：adminkb termsrv check servicepackfiles_termsrv.dll"
    assert second[4] == "      adminkb termsrv check dllcache_termsrv.dll"


def test_plan_with_collected_and_replacement(tmp_path, capsys):
    collected = tmp_path / "termsrv-collect-PC01"
    collected.mkdir()
    original = xp_build_copy(collected, "system32_termsrv.dll", 5512)
    xp_build_copy(collected, "dllcache_termsrv.dll", 5512)
    replacement = xp_build_copy(tmp_path, "termsrv.dll", 2055, source="w32.exe")
    status = run("plan", "--collected", str(collected), "--replacement", str(replacement), "--format", "json")
    steps = json.loads(capsys.readouterr().out)
    assert status == 0
    old_hash = hashlib.sha256(original.read_bytes()).hexdigest()
    new_hash = hashlib.sha256(replacement.read_bytes()).hexdigest()
    by_number = {step["number"]: step for step in steps}
    assert old_hash in by_number[2]["expected"]
    assert new_hash in by_number[3]["expected"]
    assert "servicepackfiles_termsrv.dll: （尚未檢查" in by_number[2]["expected"]


def test_plan_wrong_replacement_exits_2(capsys):
    status = run("plan", "--replacement", str(launcher("t32.exe")))
    assert status == 2
    assert "不是 5.1.2600.2055" in capsys.readouterr().err


def test_plan_backup_folder_option(capsys):
    run("plan", "--backup-folder", r"D:\backup", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out.lstrip("\ufeff"))))
    backup = rows[3]["commands"].splitlines()
    assert backup[0] == r'mkdir "D:\backup"'
    assert backup[-1].endswith(r'"D:\backup\system32_termsrv.dll"')


def test_help_in_chinese(capsys):
    with pytest.raises(SystemExit) as exited:
        run("check", "--help")
    assert exited.value.code == 0
    assert "結束代碼" in capsys.readouterr().out


def test_plan_rejects_quote_in_backup_folder(capsys):
    assert run("plan", "--backup-folder", 'C:\\a"&del *') == 2
    assert 'C:\\a"&del *' in capsys.readouterr().err


def test_plan_rejects_missing_collected_folder(tmp_path, capsys):
    assert run("plan", "--collected", str(tmp_path / "nope")) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err


def test_plan_collected_without_copies(tmp_path, capsys):
    # A folder with only the .reg exports: the plan would silently lack every hash.
    (tmp_path / "terminal_server.reg").write_bytes((DATA / "xp_terminal_server.reg").read_bytes())
    assert run("plan", "--collected", str(tmp_path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"收集資料夾 {tmp_path} 裡沒有任何 termsrv.dll 複本" in captured.err
    assert "system32_termsrv.dll" in captured.err
    assert "termsrv-collect-<電腦名稱> 資料夾本身" in captured.err


def test_plan_collected_parent_folder(tmp_path, capsys):
    # The folder copied back sits one level down: the error names it.
    collected = tmp_path / "termsrv-collect-PC01"
    collected.mkdir()
    xp_build_copy(collected, "system32_termsrv.dll", 5512)
    assert run("plan", "--collected", str(tmp_path)) == 2
    error = capsys.readouterr().err
    assert f"請改用 --collected {collected}" in error
    assert run("plan", "--collected", str(collected)) == 0


def test_plan_help_renders(capsys):
    with pytest.raises(SystemExit) as caught:
        run("plan", "--help")
    assert caught.value.code == 0
    assert "%SystemDrive%" in capsys.readouterr().out


def test_collect_script_keeps_existing_file(tmp_path, capsys):
    existing = tmp_path / "keep.bat"
    existing.write_text("keep", encoding="utf-8")
    assert run("collect-script", "--output", str(existing)) == 2
    assert existing.read_text(encoding="utf-8") == "keep"
    assert run("collect-script", "--output", str(existing), "--force") == 0
    assert existing.read_bytes() != b"keep"
