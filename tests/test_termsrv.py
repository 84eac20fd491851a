"""termsrv.dll checks on real PE files, the Remote Desktop state, the XP batch file, .reg files, plan."""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime, timezone
from pathlib import Path

import pefile
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adminkb.errors import InputError
from adminkb.regfile import RegistryModel, RegValue, encode_regfile, parse_regfile_bytes, read_regfile
from adminkb.termsrv import (
    APPLICABILITY_METHOD_BUILD, APPLICABILITY_OTHER, APPLICABILITY_XP_BUILD, COPY_BACK, LICENSING_CORE, POLICY,
    RDP_TCP, SETTINGS, TERMINAL_SERVER, WINLOGON, build_change_files, check_pe, check_pe_bytes, classify_build,
    collect_batch_bytes, collect_batch_text, model_from_regfiles, plan_rows, read_live_state, read_state,
    replay_registry, state_from_model, step_plan,
)
from adminkb.termsrv.collect import escape_echo
from adminkb.termsrv.pecheck import _leading_version
from adminkb.termsrv.plan import REPLACE_ORDER
import fake_winreg
from pe_launchers import launcher

DATA = Path(__file__).resolve().parent.parent / "data" / "termsrv"
# Launchers that pip vendors from distlib: real Windows PE files with a version resource.
LAUNCHERS = {"t32.exe": 0x014C, "w32.exe": 0x014C, "t64.exe": 0x8664, "w64.exe": 0x8664,
             "t64-arm.exe": 0xAA64, "w64-arm.exe": 0xAA64}


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def launcher_bytes(name: str = "t32.exe") -> bytes:
    return launcher(name).read_bytes()


def with_fixed_version(data: bytes, major: int, minor: int, build: int, revision: int) -> bytes:
    """Return a copy of a PE file whose VS_FIXEDFILEINFO file version is changed."""
    pe = pefile.PE(data=data)
    pe.VS_FIXEDFILEINFO[0].FileVersionMS = (major << 16) | minor
    pe.VS_FIXEDFILEINFO[0].FileVersionLS = (build << 16) | revision
    return bytes(pe.write())


def with_string_version(data: bytes, old: str, new: str) -> bytes:
    """Return a copy whose string-table FileVersion text `old` is replaced by `new` (same length)."""
    assert len(old) == len(new)
    key = "FileVersion\0".encode("utf-16-le")
    start = data.index(key)
    position = data.index(old.encode("utf-16-le"), start)
    return data[:position] + new.encode("utf-16-le") + data[position + len(old) * 2:]


def without_resources(data: bytes) -> bytes:
    """Return a copy whose resource directory entry is cleared, so it has no version resource."""
    pe = pefile.PE(data=data)
    entry = pe.OPTIONAL_HEADER.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]]
    entry.VirtualAddress = 0
    entry.Size = 0
    return bytes(pe.write())


# PE checks on real files.

@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_versions_and_machine(name):
    path = launcher(name)
    check = check_pe(path)
    assert check.file_version == "1.1.0.14"
    assert check.product_version == "1.1.0.14"
    assert check.string_file_version == "1.1.0.14"
    assert check.string_version_differs is False
    assert check.machine == LAUNCHERS[name]
    assert check.size == path.stat().st_size
    assert check.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert check.applicability == APPLICABILITY_OTHER


def test_missing_launcher_skips(monkeypatch):
    monkeypatch.delenv("ADMINKB_REQUIRE_PEERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-launcher.exe"):
        launcher("no-such-launcher.exe")


def test_missing_launcher_fails_when_required(monkeypatch):
    monkeypatch.setenv("ADMINKB_REQUIRE_PEERS", "1")
    with pytest.raises(pytest.fail.Exception, match="ADMINKB_REQUIRE_PEERS=1 is set") as caught:
        launcher("no-such-launcher.exe")
    assert "no-such-launcher.exe" in str(caught.value)


def test_launcher_machine_names():
    assert check_pe(launcher("t32.exe")).machine_name == "x86 (i386)"
    assert check_pe(launcher("t64.exe")).machine_name == "x64 (AMD64)"
    assert check_pe(launcher("t64-arm.exe")).machine_name == "ARM64"


def test_method_build_recognised():
    data = with_fixed_version(launcher_bytes("t32.exe"), 5, 1, 2600, 2055)
    check = check_pe_bytes(data, source="termsrv.dll")
    assert check.file_version == "5.1.2600.2055"
    assert check.applicability == APPLICABILITY_METHOD_BUILD
    # The string table still contains 1.1.0.14, so the mismatch is flagged.
    assert check.string_version_differs is True
    assert check.sha256 == hashlib.sha256(data).hexdigest()


def test_other_xp_build_recognised():
    check = check_pe_bytes(with_fixed_version(launcher_bytes("t32.exe"), 5, 1, 2600, 5512))
    assert check.applicability == APPLICABILITY_XP_BUILD


def test_method_build_on_x64_not_applicable():
    check = check_pe_bytes(with_fixed_version(launcher_bytes("t64.exe"), 5, 1, 2600, 2055))
    assert check.file_version == "5.1.2600.2055"
    assert check.applicability == APPLICABILITY_OTHER


@pytest.mark.parametrize("version, machine, expected", [
    ("5.1.2600.2055", 0x014C, APPLICABILITY_METHOD_BUILD),
    ("5.1.2600.2180", 0x014C, APPLICABILITY_XP_BUILD),
    ("5.1.2600.0", 0x014C, APPLICABILITY_XP_BUILD),
    ("5.2.3790.3959", 0x014C, APPLICABILITY_OTHER),
    ("5.2.3790.3959", 0x8664, APPLICABILITY_OTHER),
    ("6.0.6002.18005", 0x014C, APPLICABILITY_OTHER),
    ("5.1.2600.2055", 0x8664, APPLICABILITY_OTHER),
])
def test_classify_build_table(version, machine, expected):
    assert classify_build(version, machine) == expected


def test_string_version_differs_flagged():
    data = with_string_version(launcher_bytes("t32.exe"), "1.1.0.14", "2.0.0.77")
    check = check_pe_bytes(data)
    assert check.file_version == "1.1.0.14"
    assert check.string_file_version == "2.0.0.77"
    assert check.string_version_differs is True


@pytest.mark.parametrize("text, expected", [
    # XP files write the build branch and date after the number.
    ("5.1.2600.2180 (xpsp_sp2_rtm.040803-2158)", "5.1.2600.2180"),
    ("5.1.2600.2055", "5.1.2600.2055"),
    ("5, 1, 2600, 0", "5.1.2600.0"),
    ("05.01.2600.0055", "5.1.2600.55"),
    ("5.1.2600", None),
    ("beta", None),
])
def test_leading_version_table(text, expected):
    assert _leading_version(text) == expected


def test_not_pe_error(tmp_path):
    path = tmp_path / "termsrv.dll"
    path.write_bytes(b"MZ" + b"this is not a program" * 10)
    with pytest.raises(InputError) as caught:
        check_pe(path)
    assert caught.value.key == "termsrv.pe.not_pe"
    assert str(path) in str(caught.value)
    assert "不是 PE 格式" in str(caught.value)
    assert "下一步" in str(caught.value)


def test_text_file_not_pe(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("termsrv.dll 5.1.2600.2055\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        check_pe(path)
    assert caught.value.key == "termsrv.pe.not_pe"


def test_truncated_file_error(tmp_path):
    data = launcher_bytes("t32.exe")
    path = tmp_path / "termsrv.dll"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as caught:
        check_pe(path)
    assert caught.value.key == "termsrv.pe.truncated"
    assert caught.value.values["size"] == len(data) // 2
    assert caught.value.values["needed"] == len(data)
    assert "不完整" in str(caught.value)


def test_truncated_inside_headers_error(tmp_path):
    path = tmp_path / "termsrv.dll"
    path.write_bytes(launcher_bytes("t32.exe")[:300])
    with pytest.raises(InputError) as caught:
        check_pe(path)
    assert caught.value.key == "termsrv.pe.not_pe"


def test_no_version_resource_error(tmp_path):
    path = tmp_path / "termsrv.dll"
    path.write_bytes(without_resources(launcher_bytes("t32.exe")))
    with pytest.raises(InputError) as caught:
        check_pe(path)
    assert caught.value.key == "termsrv.pe.no_version"
    assert "VS_FIXEDFILEINFO" in str(caught.value)


def test_empty_file_error(tmp_path):
    path = tmp_path / "termsrv.dll"
    path.write_bytes(b"")
    with pytest.raises(InputError) as caught:
        check_pe(path)
    assert caught.value.key == "termsrv.pe.empty"
    assert caught.value.exit_status == 2


def test_missing_file_error(tmp_path):
    with pytest.raises(InputError) as caught:
        check_pe(tmp_path / "missing.dll")
    assert caught.value.key == "termsrv.pe.unreadable"


def test_check_to_dict_machine_hex():
    document = check_pe(launcher("t64.exe")).to_dict()
    assert document["machine"] == "0x8664"
    assert document["file_version"] == "1.1.0.14"


# Remote Desktop state.

def test_state_from_xp_exports():
    state = read_state([DATA / "xp_terminal_server.reg", DATA / "xp_winlogon.reg"])
    assert state.get("deny_connections").number == 0
    assert state.rdp_enabled is True
    assert state.get("enable_concurrent_sessions").number is None
    assert state.get("enable_concurrent_sessions").key_known is True
    assert state.concurrent_sessions_enabled is False
    assert state.get("allow_multiple_sessions").number == 1
    assert state.get("single_session_per_user").number == 1
    assert state.get("max_instance_count").number == 0xFFFFFFFF
    assert state.secrets == []


def test_state_policy_wins():
    state = read_state([DATA / "xp_terminal_server.reg", DATA / "ts_policy_single_session.reg"])
    assert state.get("deny_connections").number == 0
    assert state.get("deny_connections_policy").number == 1
    assert state.rdp_enabled is False
    assert state.effective("single_session_per_user") == 0
    assert state.effective("max_instance_count") == 2


def test_state_policy_key_not_exported():
    state = read_state([DATA / "xp_terminal_server.reg"])
    policy = state.get("max_instance_count_policy")
    assert policy.key_known is False
    assert policy.number is None
    assert state.effective("max_instance_count") == 0xFFFFFFFF
    assert state.get("allow_multiple_sessions").key_known is False


def test_state_applied_export():
    state = read_state([DATA / "xp_terminal_server_applied.reg"])
    assert state.concurrent_sessions_enabled is True


def test_state_rdp_off():
    state = read_state([DATA / "xp_terminal_server_rdp_off.reg"])
    assert state.rdp_enabled is False
    assert state.get("enable_concurrent_sessions").number == 0


def test_state_wrong_type_values():
    state = read_state([DATA / "xp_terminal_server_wrong_type.reg"])
    deny = state.get("deny_connections")
    assert deny.wrong_type is True
    assert deny.number is None
    assert state.rdp_enabled is None
    assert state.get("enable_concurrent_sessions").wrong_type is True


def test_state_reports_autologon_password():
    state = read_state([DATA / "xp_winlogon_autologon_password.reg"])
    assert state.secrets == [WINLOGON + "\\DefaultPassword"]


def test_state_bad_value_in_watched_key():
    with pytest.raises(InputError) as caught:
        read_state([DATA / "xp_terminal_server_bad_value.reg"])
    assert caught.value.key == "regfile.problem.dword_prefix"
    assert "第 4 行" in str(caught.value)


def test_state_unrelated_export_error():
    with pytest.raises(InputError) as caught:
        read_state([DATA / "unrelated_key.reg"])
    assert caught.value.key == "termsrv.state.no_known_key"


def test_state_no_files_error():
    with pytest.raises(InputError) as caught:
        read_state([])
    assert caught.value.key == "termsrv.state.no_files"


def test_state_unreadable_export(tmp_path):
    with pytest.raises(InputError) as caught:
        read_state([tmp_path / "missing.reg"])
    assert caught.value.key == "regfile.file.unreadable"


def test_state_regedit4_cp950_export(tmp_path):
    # A REGEDIT4 export from a Traditional Chinese XP machine, written with the project's writer.
    regfile = read_regfile(DATA / "xp_winlogon.reg")
    path = tmp_path / "winlogon_v4.reg"
    path.write_bytes(encode_regfile(regfile, version=4, code_page="cp950"))
    state = read_state([path])
    assert state.get("allow_multiple_sessions").number == 1
    assert RegistryModel.from_regfile(read_regfile(path)).get(WINLOGON, "DefaultUserName").decoded == "操作員"


@pytest.mark.skipif(sys.platform == "win32", reason="the error is for platforms without winreg")
def test_live_state_needs_windows():
    with pytest.raises(InputError) as caught:
        read_live_state()
    assert caught.value.key == "termsrv.state.not_windows"
    assert sys.platform in str(caught.value)


@pytest.mark.skipif(sys.platform != "win32", reason="winreg exists only on Windows")
def test_live_state_reads_windows():
    state = read_live_state()
    assert state.source == "winreg"
    assert state.covers(TERMINAL_SERVER)


# The live read, with a stand-in winreg module on every platform.

HKLM_PREFIX = "HKEY_LOCAL_MACHINE\\"


def below_hklm(path: str) -> str:
    return path[len(HKLM_PREFIX):]


@pytest.fixture
def windows_registry(monkeypatch):
    """Install a stand-in winreg holding an XP machine's keys, and make the platform read as Windows."""
    module = fake_winreg.build_winreg({
        below_hklm(TERMINAL_SERVER): [
            ("fDenyTSConnections", 0, fake_winreg.REG_DWORD),
            ("fSingleSessionPerUser", 1, fake_winreg.REG_DWORD),
            ("ProductVersion", "5.1", fake_winreg.REG_SZ),
        ],
        below_hklm(LICENSING_CORE): [("EnableConcurrentSessions", 1, fake_winreg.REG_DWORD)],
        below_hklm(RDP_TCP): [("MaxInstanceCount", 0xFFFFFFFF, fake_winreg.REG_DWORD)],
        below_hklm(WINLOGON): [
            ("AllowMultipleTSSessions", 1, fake_winreg.REG_DWORD),
            ("DefaultUserName", "操作員", fake_winreg.REG_SZ),
            ("LegalNoticeText", ["第一行", "second line"], fake_winreg.REG_MULTI_SZ),
        ],
        # The policy key is missing, as on a machine without Remote Desktop policies.
    })
    monkeypatch.setitem(sys.modules, "winreg", module)
    monkeypatch.setattr(sys, "platform", "win32")
    return module


def test_live_state_with_stand_in_winreg(windows_registry):
    state = read_live_state()
    assert state.source == "winreg"
    assert state.rdp_enabled is True
    assert state.concurrent_sessions_enabled is True
    assert state.get("allow_multiple_sessions").number == 1
    assert state.get("single_session_per_user").number == 1
    assert state.get("max_instance_count").number == 0xFFFFFFFF
    assert state.covers(TERMINAL_SERVER)


def test_live_state_missing_policy_key(windows_registry):
    state = read_live_state()
    policy = state.get("deny_connections_policy")
    assert policy.key_known is False
    assert policy.value is None
    assert state.covers(POLICY) is False
    assert state.effective("max_instance_count") == 0xFFFFFFFF


def test_live_state_text_values(windows_registry):
    model = read_live_state().model
    assert model.get(WINLOGON, "DefaultUserName") == RegValue.string("操作員")
    assert model.get(TERMINAL_SERVER, "ProductVersion") == RegValue.string("5.1")
    assert model.get(WINLOGON, "LegalNoticeText") == RegValue.multi_string(["第一行", "second line"])
    assert model.get(LICENSING_CORE, "EnableConcurrentSessions") == RegValue.dword(1)


def test_live_state_opens_keys_read_only(windows_registry):
    read_live_state()
    opened = [sub_key for _root, sub_key, _access in windows_registry.opened]
    # Terminal Server appears in several settings but is opened once.
    assert sorted(opened) == sorted({below_hklm(setting.key) for setting in SETTINGS})
    for root, sub_key, access in windows_registry.opened:
        assert root == fake_winreg.HKEY_LOCAL_MACHINE, sub_key
        assert access == fake_winreg.KEY_READ | fake_winreg.KEY_WOW64_64KEY, sub_key
    assert [handle.closed for handle in windows_registry.handles] == [True] * 4


@pytest.mark.parametrize(("data", "type_number", "expected"), [
    (7, fake_winreg.REG_DWORD, RegValue.dword(7)),
    (2**40, fake_winreg.REG_QWORD, RegValue.qword(2**40)),
    ("%SystemRoot%", fake_winreg.REG_EXPAND_SZ, RegValue.expand_string("%SystemRoot%")),
    ([], fake_winreg.REG_MULTI_SZ, RegValue.multi_string([])),
    (b"\x01\x02", fake_winreg.REG_BINARY, RegValue.binary(b"\x01\x02")),
    (None, fake_winreg.REG_NONE, RegValue(fake_winreg.REG_NONE, b"")),
])
def test_live_read_value_types(monkeypatch, data, type_number, expected):
    from adminkb.termsrv.live import read_keys

    module = fake_winreg.build_winreg({"SOFTWARE\\Example": [("Value", data, type_number)]})
    monkeypatch.setitem(sys.modules, "winreg", module)
    model = read_keys([HKLM_PREFIX + "SOFTWARE\\Example"])
    assert model.get(HKLM_PREFIX + "SOFTWARE\\Example", "Value") == expected


def test_live_read_only_hklm(monkeypatch):
    from adminkb.termsrv.live import read_keys

    monkeypatch.setitem(sys.modules, "winreg", fake_winreg.build_winreg({}))
    with pytest.raises(ValueError, match="HKEY_CURRENT_USER"):
        read_keys(["HKEY_CURRENT_USER\\Software"])


# Apply and rollback files.

def export_model(*names: str) -> RegistryModel:
    return model_from_regfiles([read_regfile(DATA / name) for name in names])


def round_trip(model: RegistryModel, regfile) -> RegistryModel:
    """Write a generated file to bytes and read it back, as regedit would import it."""
    return model.copy().apply(parse_regfile_bytes(encode_regfile(regfile), source="generated.reg", strict=True))


@pytest.mark.parametrize("names", [
    ("xp_terminal_server.reg",),
    ("xp_terminal_server_no_licensing_core.reg",),
    ("xp_terminal_server_rdp_off.reg", "xp_winlogon_autologon_password.reg"),
    ("xp_terminal_server.reg", "xp_winlogon.reg", "ts_policy_single_session.reg"),
])
def test_apply_then_rollback_restores_export(names):
    original = export_model(*names)
    allow = any("winlogon" in name for name in names)
    files = build_change_files(original, allow_multiple_sessions=allow)
    applied = round_trip(original, files.apply)
    assert applied.get(LICENSING_CORE, "EnableConcurrentSessions") == RegValue.dword(1)
    if allow:
        assert applied.get(WINLOGON, "AllowMultipleTSSessions") == RegValue.dword(1)
    assert applied != original
    restored = round_trip(applied, files.rollback)
    assert restored == original
    assert restored.diff(original).equal


def test_apply_file_contents():
    files = build_change_files(export_model("xp_terminal_server.reg"))
    assert [section.path for section in files.apply.keys] == [LICENSING_CORE]
    entries = files.apply.keys[0].values
    assert [(entry.name, entry.value) for entry in entries] == [("EnableConcurrentSessions", RegValue.dword(1))]


def test_rollback_deletes_created_value():
    files = build_change_files(export_model("xp_terminal_server.reg"))
    assert [section.path for section in files.rollback.keys] == [LICENSING_CORE]
    entry = files.rollback.keys[0].values[0]
    assert entry.name == "EnableConcurrentSessions"
    assert entry.value is None


def test_rollback_deletes_created_key():
    files = build_change_files(export_model("xp_terminal_server_no_licensing_core.reg"))
    assert len(files.rollback.keys) == 1
    assert files.rollback.keys[0].delete is True
    assert files.rollback.keys[0].path == LICENSING_CORE


def test_rollback_restores_changed_value():
    files = build_change_files(export_model("xp_terminal_server_rdp_off.reg"))
    entry = files.rollback.keys[0].values[0]
    assert entry.value == RegValue.dword(0)


def test_already_applied_export():
    files = build_change_files(export_model("xp_terminal_server_applied.reg"))
    assert files.already_applied is True
    assert files.rollback.keys == []
    assert files.preset == ("EnableConcurrentSessions",)


def test_fast_user_switching_is_not_preset():
    files = build_change_files(export_model("xp_terminal_server.reg", "xp_winlogon.reg"),
                               allow_multiple_sessions=True)
    assert files.preset == ()
    assert files.already_set == ("AllowMultipleTSSessions",)
    assert files.already_applied is False
    changed = [(section.path, [entry.name for entry in section.values]) for section in files.apply.keys]
    assert changed == [(LICENSING_CORE, ["EnableConcurrentSessions"])]


def test_applied_export_with_fast_user_switching():
    files = build_change_files(export_model("xp_terminal_server_applied.reg", "xp_winlogon.reg"),
                               allow_multiple_sessions=True)
    assert files.preset == ("EnableConcurrentSessions",)
    assert files.already_set == ("AllowMultipleTSSessions",)
    assert files.already_applied is True


def test_fresh_export_has_no_preset_values():
    files = build_change_files(export_model("xp_terminal_server_rdp_off.reg"))
    assert files.preset == ()
    assert files.already_set == ()


def test_change_needs_terminal_server_export():
    with pytest.raises(InputError) as caught:
        build_change_files(export_model("xp_winlogon.reg"))
    assert caught.value.key == "termsrv.change.key_not_exported"
    assert TERMINAL_SERVER in str(caught.value)


def test_change_needs_winlogon_export_for_fast_user_switching():
    with pytest.raises(InputError) as caught:
        build_change_files(export_model("xp_terminal_server.reg"), allow_multiple_sessions=True)
    assert caught.value.value == WINLOGON


def test_change_leaves_export_model_alone():
    original = export_model("xp_terminal_server.reg")
    before = original.copy()
    build_change_files(original)
    assert original == before


# The XP batch file.

def test_batch_uses_crlf_only():
    data = collect_batch_bytes()
    assert b"\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")


def test_batch_encodes_in_cp950():
    data = collect_batch_bytes()
    assert data.decode("cp950") == collect_batch_text()


def test_batch_english_is_ascii(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    collect_batch_text().encode("ascii")


@pytest.mark.parametrize("command", ["powershell", "certutil", "robocopy", "where ", "icacls", "choice"])
def test_batch_avoids_commands_xp_lacks(command):
    assert command not in collect_batch_text().lower()


def test_batch_reg_export_without_overwrite_switch():
    # The batch file deletes an old copy before exporting instead of relying on /y.
    export_lines = [line for line in collect_batch_text().split("\r\n") if line.startswith("reg export")]
    assert export_lines
    for line in export_lines:
        assert "/y" not in line


def test_batch_exports_keys():
    text = collect_batch_text()
    assert 'call :export "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server" terminal_server.reg' in text
    assert 'call :export "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon" winlogon.reg' in text
    assert ('call :export "HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services" ts_policy.reg'
            in text)
    assert 'reg export %1 "%OUT%\\%~2"' in text


def test_batch_copies_three_dll_locations():
    text = collect_batch_text()
    for location in (r"%SystemRoot%\system32\termsrv.dll", r"%SystemRoot%\system32\dllcache\termsrv.dll",
                     r"%SystemRoot%\ServicePackFiles\i386\termsrv.dll"):
        assert f'call :copy_dll "{location}"' in text
    assert 'copy /b /y %1 "%OUT%\\%~2"' in text


def test_batch_hashes_with_fciv_when_present():
    text = collect_batch_text()
    assert "%%~$PATH:I" in text
    assert "-sha1" in text
    assert "if not defined FCIV goto :no_fciv" in text


def test_batch_labels_defined_once():
    lines = collect_batch_text().split("\r\n")
    labels = [line for line in lines if line.startswith(":")]
    assert sorted(labels) == sorted(set(labels))
    for target in ("export", "copy_dll", "no_fciv", "done", "no_folder"):
        assert f":{target}" in labels


def test_batch_writes_every_copy_back_file():
    text = collect_batch_text()
    for item in COPY_BACK:
        assert item.file in text, item.file


def test_escape_echo_specials():
    assert escape_echo("a (b) & c | d < e > f ^ 100%") == "a ^(b^) ^& c ^| d ^< e ^> f ^^ 100%%"


# The step plan.

def test_plan_order_and_phases():
    steps = step_plan()
    assert [step.number for step in steps] == list(range(1, len(steps) + 1))
    phases = [step.phase for step in steps]
    assert phases == sorted(phases, key=["prepare", "change", "verify", "rollback"].index)
    actions = [step.action_key.rsplit(".", 1)[1] for step in steps]
    assert actions.index("backup") < actions.index("rdp_off") < actions.index("replace")
    assert actions.index("replace") < actions.index("import_apply") < actions.index("restart")
    assert actions.index("verify_files") < actions.index("rdp_on") < actions.index("two_sessions")


def test_plan_replaces_wfp_sources_first():
    replace = next(step for step in step_plan() if step.action_key.endswith(".replace"))
    assert "ServicePackFiles" in replace.commands[0]
    assert "dllcache" in replace.commands[1]
    assert replace.commands[2].endswith(r'"%SystemRoot%\system32\termsrv.dll"')
    restore = next(step for step in step_plan() if step.action_key.endswith(".restore"))
    assert "ServicePackFiles" in restore.commands[0]
    assert restore.commands[2].endswith(r'"%SystemRoot%\system32\termsrv.dll"')


def test_plan_backs_up_all_three():
    backup = next(step for step in step_plan() if step.action_key.endswith(".backup"))
    for name in REPLACE_ORDER:
        assert any(name in command for command in backup.commands)


def test_plan_carries_hashes():
    original = check_pe_bytes(with_fixed_version(launcher_bytes("t32.exe"), 5, 1, 2600, 5512),
                              source="system32_termsrv.dll")
    replacement = check_pe_bytes(with_fixed_version(launcher_bytes("w32.exe"), 5, 1, 2600, 2055),
                                 source="termsrv.dll")
    steps = step_plan({"system32_termsrv.dll": original}, replacement)
    by_action = {step.action_key.rsplit(".", 1)[1]: step for step in steps}
    assert original.sha256 in by_action["check_originals"].expected
    assert original.sha256 in by_action["restore"].expected
    assert replacement.sha256 in by_action["replace"].expected
    assert replacement.sha256 in by_action["verify_files"].expected


def test_plan_rejects_wrong_replacement():
    replacement = check_pe(launcher("t32.exe"))
    with pytest.raises(InputError) as caught:
        step_plan(replacement=replacement)
    assert caught.value.key == "termsrv.plan.wrong_replacement"
    assert "1.1.0.14" in str(caught.value)


def test_plan_rejects_non_xp_original():
    with pytest.raises(InputError) as caught:
        step_plan({"system32_termsrv.dll": check_pe(launcher("t64.exe"))})
    assert caught.value.key == "termsrv.plan.original_not_xp"


def test_plan_rejects_unknown_copy_name():
    original = check_pe_bytes(with_fixed_version(launcher_bytes("t32.exe"), 5, 1, 2600, 5512))
    with pytest.raises(InputError) as caught:
        step_plan({"termsrv_copy.dll": original})
    assert caught.value.key == "termsrv.plan.unknown_copy"


def test_plan_rows_in_language(monkeypatch):
    rows = plan_rows(step_plan())
    assert rows[0]["phase"] == "準備"
    monkeypatch.setenv("ADMINKB_LANG", "en")
    rows = plan_rows(step_plan())
    assert rows[0]["phase"] == "Prepare"
    assert rows[-1]["phase"] == "Roll back"


def test_plan_marks_system_changes():
    steps = {step.action_key.rsplit(".", 1)[1]: step for step in step_plan()}
    assert steps["replace"].changes_system is True
    assert steps["check_originals"].changes_system is False


def test_plan_restores_rdp_before_final_check():
    actions = [step.action_key.rsplit(".", 1)[1] for step in step_plan()]
    rollback_start = actions.index("rollback_safe_mode")
    restore = actions.index("rdp_restore")
    assert rollback_start < actions.index("import_rollback") < restore
    assert restore == actions.index("rollback_verify") - 1


@pytest.mark.parametrize("names", [
    ("xp_terminal_server.reg", "xp_winlogon.reg"),
    ("xp_terminal_server_rdp_off.reg",),
    ("xp_terminal_server_no_licensing_core.reg",),
])
def test_plan_replay_restores_export(names):
    export = export_model(*names)
    files = build_change_files(export, allow_multiple_sessions="xp_winlogon.reg" in names)
    steps = step_plan()

    changed = replay_registry([step for step in steps if step.phase != "rollback"], files)
    state = state_from_model(changed, source="replay")
    assert state.concurrent_sessions_enabled is True
    assert state.rdp_enabled is True

    restored = replay_registry(steps, files)
    assert restored.diff(export).changes == []
    assert restored == export


def test_plan_replay_without_rdp_restore_differs():
    # Without the last Remote Desktop step the rollback phase ends with Remote Desktop off.
    files = build_change_files(export_model("xp_terminal_server.reg"))
    steps = [step for step in step_plan() if not step.action_key.endswith(".rdp_restore")]
    changes = list(files.before.diff(replay_registry(steps, files)))
    assert [(change.kind, change.name) for change in changes] == [("value_changed", "fDenyTSConnections")]
    assert changes[0].old == RegValue.dword(0)
    assert changes[0].new == RegValue.dword(1)


def test_plan_replay_deletes_missing_deny_value():
    export = RegistryModel()
    export.create_key(TERMINAL_SERVER)
    export.create_key(LICENSING_CORE)
    files = build_change_files(export)
    assert replay_registry(step_plan(), files) == export


def test_exported_key_constants():
    assert LICENSING_CORE == TERMINAL_SERVER + "\\Licensing Core"
    assert POLICY.endswith("\\Policies\\Microsoft\\Windows NT\\Terminal Services")


# Apply then rollback on generated exports.

_EXISTING_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=0xFFFFFFFF).map(RegValue.dword),
    # Text that a cp950 REGEDIT4 export can contain, with the characters .reg files escape.
    st.text(alphabet=st.sampled_from(list('aZ0 =;"\\[]終端機服務')), max_size=8).map(RegValue.string),
    st.binary(max_size=6).map(RegValue.binary),
)


@settings(max_examples=150, deadline=None)
@given(licensing_core=st.booleans(), concurrent=_EXISTING_VALUES, winlogon=st.booleans(),
       multiple=_EXISTING_VALUES, allow=st.booleans(), version=st.sampled_from([4, 5]))
def test_rollback_restores_generated_exports(licensing_core, concurrent, winlogon, multiple, allow, version):
    model = RegistryModel()
    model.set_value(TERMINAL_SERVER, "fDenyTSConnections", RegValue.dword(0))
    if licensing_core:
        model.create_key(LICENSING_CORE)
        if concurrent is not None:
            model.set_value(LICENSING_CORE, "EnableConcurrentSessions", concurrent)
    if winlogon or allow:
        model.create_key(WINLOGON)
        if multiple is not None:
            model.set_value(WINLOGON, "AllowMultipleTSSessions", multiple)
    # Read the export back from bytes, as the admin's copy would be.
    export = RegistryModel.from_regfile(parse_regfile_bytes(encode_regfile(model, version=version), strict=True))
    files = build_change_files(export, allow_multiple_sessions=allow)
    applied = round_trip(export, files.apply)
    assert applied.get(LICENSING_CORE, "EnableConcurrentSessions") == RegValue.dword(1)
    assert round_trip(applied, files.rollback) == export


# The plan as checklist steps.

def test_checklist_steps_follow_plan():
    from adminkb.termsrv.plan import checklist_steps

    steps = checklist_steps()
    plan = step_plan()
    assert len(steps) == len(plan)
    assert len({step.id for step in steps}) == len(steps)
    assert [step.phase for step in steps] == [plan_step.phase for plan_step in plan]
    assert [step.title for step in steps] == [plan_step.action for plan_step in plan]
    assert [step.verify for step in steps] == [plan_step.expected for plan_step in plan]


def test_checklist_steps_have_reasons():
    from adminkb.termsrv.plan import checklist_steps

    for step in checklist_steps():
        assert step.why.strip(), step.id
        assert step.phase_title.strip(), step.id


def test_checklist_steps_in_checklist(tmp_path):
    from adminkb.imaging.checklist import Checklist
    from adminkb.termsrv.plan import checklist_steps

    checklist = Checklist("xp-rdp", tmp_path, steps=checklist_steps())
    checklist.tick("collect", "tech", when=datetime(2026, 3, 2, tzinfo=timezone.utc))
    checklist.tick("rollback_restart", "tech", when=datetime(2026, 3, 2, tzinfo=timezone.utc))
    reopened = Checklist("xp-rdp", tmp_path, steps=checklist_steps())
    assert reopened.done == 2
    assert reopened.phases == ["prepare", "change", "verify", "rollback"]
    assert reopened.steps[8].id == "import_apply"
    assert reopened.steps[8].commands == ("regedit /s termsrv-apply.reg",)
