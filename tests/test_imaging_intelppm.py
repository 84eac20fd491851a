"""intelppm check: Start values per control set from .reg exports and SYSTEM hives, the fix, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirun import run_area
from hive_builder import HiveKey, build_hive
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.imaging.intelppm import check_intelppm, intelppm_rows, intelppm_summary, service_key
from adminkb.regfile import RegistryModel, RegValue, encode_regfile, read_regfile

DATA = Path(__file__).resolve().parent.parent / "data" / "reg"


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def system_hive(tmp_path: Path, starts: dict[str, int | None], current: int | None = 1) -> Path:
    """Write a SYSTEM hive with intelppm's Start per control set (None: no intelppm key)."""
    root = HiveKey("CMI-CreateHive{00000000-0000-0000-0000-000000000000}")
    if current is not None:
        root.key("Select").set_dword("Current", current).set_dword("Default", current).set_dword("LastKnownGood", 2)
    for control_set, start in starts.items():
        services = root.key(f"{control_set}\\Services")
        services.key("Tcpip").set_dword("Start", 1)
        if start is not None:
            services.key("intelppm").set_dword("Start", start).set_dword("Type", 1)
    path = tmp_path / "SYSTEM"
    path.write_bytes(build_hive(root))
    return path


# .reg exports.

def test_intel_master_both_sets_at_risk():
    check = check_intelppm(DATA / "intelppm_intel_master.reg")
    assert [entry.control_set for entry in check.control_sets] == ["ControlSet001", "ControlSet002"]
    assert [entry.start for entry in check.control_sets] == [1, 1]
    assert [entry.control_set for entry in check.at_risk] == ["ControlSet001", "ControlSet002"]
    assert not check.safe


def test_system_export_at_risk_complete():
    check = check_intelppm(DATA / "intelppm_system_export.reg")
    assert check.complete
    assert check.selected == ["ControlSet001", "ControlSet002"]
    assert check.current == "ControlSet001"
    assert [entry.control_set for entry in check.at_risk] == ["ControlSet001", "ControlSet002"]


def test_fixed_system_export_safe():
    check = check_intelppm(DATA / "intelppm_system_export_fixed.reg")
    assert check.complete
    assert check.safe
    assert check.fix_regfile().keys == []
    assert "每個控制集的 intelppm 都已停用或不存在" in intelppm_summary(check)


def test_disabled_keys_without_select_not_safe():
    check = check_intelppm(DATA / "intelppm_disabled.reg")
    assert check.at_risk == []
    assert check.selected is None
    assert not check.complete
    assert not check.safe
    assert check.fix_regfile().keys == []


# An export of one control set's intelppm key: everything it shows is disabled, but the machine's
# other control sets (at least LastKnownGood's) were never seen.

def test_one_control_set_export_not_all_clear():
    check = check_intelppm(DATA / "intelppm_only_controlset001.reg")
    summary = intelppm_summary(check)
    assert [entry.control_set for entry in check.checked] == ["ControlSet001"]
    assert not check.safe
    assert "每個控制集" not in summary
    assert message("imaging_intelppm.summary_safe", source=check.source) not in summary
    assert "只檢查了 ControlSet001" in summary
    assert "HKLM\\SYSTEM\\Select" in summary
    assert "reg save HKLM\\SYSTEM" in summary
    assert "reg export HKLM\\SYSTEM" in summary


def test_one_control_set_export_exits_1(capsys):
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_only_controlset001.reg"))
    output = capsys.readouterr().out
    assert status == 1
    assert "只檢查了 ControlSet001" in output
    assert "下一步" in output


def export_file(tmp_path: Path, sections: dict[str, dict[str, int]]) -> Path:
    """Write a version 5 export with DWORD values, one section a key under HKLM\\SYSTEM."""
    model = RegistryModel()
    for key, values in sections.items():
        model.create_key(f"HKEY_LOCAL_MACHINE\\SYSTEM\\{key}")
        for name, number in values.items():
            model.set_value(f"HKEY_LOCAL_MACHINE\\SYSTEM\\{key}", name, RegValue.dword(number))
    path = tmp_path / "export.reg"
    path.write_bytes(encode_regfile(model.to_regfile()))
    return path


def test_select_names_set_not_exported(tmp_path):
    path = export_file(tmp_path, {"Select": {"Current": 1, "Default": 1, "Failed": 0, "LastKnownGood": 2},
                                  "ControlSet001\\Services\\intelppm": {"Start": 4}})
    check = check_intelppm(path)
    assert [(entry.control_set, entry.checked) for entry in check.control_sets] == [("ControlSet001", True),
                                                                                  ("ControlSet002", False)]
    assert not check.complete
    assert "ControlSet002" in intelppm_summary(check)


def test_select_with_every_set_complete(tmp_path):
    path = export_file(tmp_path, {"Select": {"Current": 1, "LastKnownGood": 2},
                                  "ControlSet001\\Services\\intelppm": {"Start": 4},
                                  "ControlSet002\\Services": {}})
    check = check_intelppm(path)
    assert check.complete
    assert check.safe
    assert check.control_sets[1].key_present is False


def test_current_control_set_alias_covers_current(tmp_path):
    path = export_file(tmp_path, {"Select": {"Current": 1, "Default": 1, "LastKnownGood": 1},
                                  "CurrentControlSet\\Services\\intelppm": {"Start": 4}})
    check = check_intelppm(path)
    assert [entry.control_set for entry in check.control_sets] == ["CurrentControlSet"]
    assert check.safe


def test_other_key_of_control_set_unchecked(tmp_path):
    path = export_file(tmp_path, {"Select": {"Current": 1}, "ControlSet001\\Control": {"Example": 1}})
    check = check_intelppm(path)
    summary = intelppm_summary(check)
    assert check.checked == []
    assert not check.safe
    assert "沒有任何控制集能檢查" in summary


def test_intelppm_subkey_alone_unchecked(tmp_path):
    path = export_file(tmp_path, {"Select": {"Current": 1}, "ControlSet001\\Services\\intelppm\\Enum": {"Count": 0}})
    assert check_intelppm(path).control_sets[0].checked is False


def test_hive_complete_without_select(tmp_path):
    check = check_intelppm(system_hive(tmp_path, {"ControlSet001": 4}, current=None))
    assert check.complete
    assert check.safe


def test_large_export_keeps_values(tmp_path):
    sections = {f"ControlSet00{number}\\Services\\Svc{index}": {"Start": 3}
                for number in (1, 2) for index in range(2000)}
    sections.update({"Select": {"Current": 1, "LastKnownGood": 2}, "ControlSet001\\Services\\intelppm": {"Start": 1},
                     "ControlSet002\\Services\\intelppm": {"Start": 4}})
    check = check_intelppm(export_file(tmp_path, sections))
    assert [entry.start for entry in check.control_sets] == [1, 4]
    assert [entry.control_set for entry in check.at_risk] == ["ControlSet001"]


def test_one_missed_set_found():
    check = check_intelppm(DATA / "intelppm_one_set_missed.reg")
    by_set = {entry.control_set: entry for entry in check.control_sets}
    assert by_set["ControlSet001"].loads is False
    assert by_set["ControlSet002"].start == 3
    assert by_set["ControlSet002"].loads is True
    assert by_set["ControlSet003"].checked is False
    assert by_set["ControlSet003"].loads is False
    assert [entry.control_set for entry in check.at_risk] == ["ControlSet002"]


def test_regedit4_cp950_current_control_set():
    check = check_intelppm(DATA / "intelppm_regedit4_cp950.reg")
    assert [entry.control_set for entry in check.control_sets] == ["CurrentControlSet"]
    assert check.control_sets[0].start == 1


def test_string_start_counts_as_risk():
    check = check_intelppm(DATA / "intelppm_start_is_string.reg")
    entry = check.control_sets[0]
    assert entry.wrong_type is True
    assert entry.loads is True


def test_bad_start_line_raises():
    with pytest.raises(InputError) as raised:
        check_intelppm(DATA / "intelppm_bad_start.reg")
    assert "0x4" in str(raised.value)


def test_export_without_control_set_raises():
    with pytest.raises(InputError) as raised:
        check_intelppm(DATA.parent / "termsrv" / "unrelated_key.reg")
    assert raised.value.key == "imaging_intelppm.no_control_set"


def test_several_exports_combined(tmp_path):
    check = check_intelppm([DATA / "intelppm_disabled.reg", DATA / "intelppm_regedit4_cp950.reg"])
    assert [entry.control_set for entry in check.control_sets] == ["ControlSet001", "ControlSet002",
                                                                    "CurrentControlSet"]
    assert [entry.control_set for entry in check.at_risk] == ["CurrentControlSet"]


def test_no_files_raises():
    with pytest.raises(InputError) as raised:
        check_intelppm([])
    assert raised.value.key == "imaging_intelppm.no_files"


def test_missing_file_raises(tmp_path):
    with pytest.raises(InputError) as raised:
        check_intelppm(tmp_path / "nothing.reg")
    assert raised.value.key == "imaging_intelppm.unreadable"


# The fix file.

def test_fix_sets_start_4_where_at_risk():
    check = check_intelppm(DATA / "intelppm_one_set_missed.reg")
    fix = check.fix_regfile()
    assert [section.path for section in fix.keys] == [service_key("ControlSet002")]
    assert fix.keys[0].values[0].name == "Start"
    assert fix.keys[0].values[0].value == RegValue.dword(4)


def test_fix_applied_makes_export_safe(tmp_path):
    export = read_regfile(DATA / "intelppm_system_export.reg")
    check = check_intelppm(DATA / "intelppm_system_export.reg")
    fixed = RegistryModel.from_regfile(export).apply(check.fix_regfile())
    path = tmp_path / "fixed.reg"
    path.write_bytes(encode_regfile(fixed))
    after = check_intelppm(path)
    assert after.safe
    assert fixed.get(service_key("ControlSet001"), "ImagePath") == RegistryModel.from_regfile(export).get(
        service_key("ControlSet001"), "ImagePath")


def test_fix_file_is_what_regedit_reads(tmp_path):
    path = tmp_path / "fix.reg"
    path.write_bytes(encode_regfile(check_intelppm(DATA / "intelppm_intel_master.reg").fix_regfile()))
    raw = path.read_bytes()
    assert raw.startswith(b"\xff\xfe")
    text = raw[2:].decode("utf-16-le")
    assert text.startswith("Windows Registry Editor Version 5.00\r\n")
    assert '"Start"=dword:00000004' in text
    assert read_regfile(path).problems == []


# SYSTEM hive files (built by tests/hive_builder.py and read with regipy).

def test_hive_control_sets_read(tmp_path):
    path = system_hive(tmp_path, {"ControlSet001": 1, "ControlSet002": 4})
    check = check_intelppm(path)
    assert check.kind == "hive"
    assert [(entry.control_set, entry.start) for entry in check.control_sets] == [("ControlSet001", 1),
                                                                                ("ControlSet002", 4)]
    assert check.current == "ControlSet001"
    assert check.hive_clean is True
    assert [entry.control_set for entry in check.at_risk] == ["ControlSet001"]


def test_hive_all_disabled_safe(tmp_path):
    check = check_intelppm(system_hive(tmp_path, {"ControlSet001": 4, "ControlSet002": 4, "ControlSet003": None}))
    assert check.safe
    assert check.control_sets[2].key_present is False


def test_hive_without_select(tmp_path):
    check = check_intelppm(system_hive(tmp_path, {"ControlSet001": 1}, current=None))
    assert check.current is None


def test_hive_bad_checksum_noted(tmp_path):
    path = system_hive(tmp_path, {"ControlSet001": 4})
    data = bytearray(path.read_bytes())
    data[508] ^= 0xFF
    path.write_bytes(bytes(data))
    assert check_intelppm(path).hive_clean is False


def test_hive_without_control_sets_raises(tmp_path):
    root = HiveKey("ROOT")
    root.key("Software").set_dword("Example", 1)
    path = tmp_path / "SOFTWARE"
    path.write_bytes(build_hive(root, file_name="SOFTWARE"))
    with pytest.raises(InputError) as raised:
        check_intelppm(path)
    assert raised.value.key == "imaging_intelppm.no_control_set"


def test_truncated_hive_raises(tmp_path):
    path = system_hive(tmp_path, {"ControlSet001": 1})
    path.write_bytes(path.read_bytes()[:4200])
    with pytest.raises(InputError) as raised:
        check_intelppm(path)
    assert raised.value.key == "imaging_intelppm.bad_hive"


def test_hive_with_reg_file_raises(tmp_path):
    path = system_hive(tmp_path, {"ControlSet001": 1})
    with pytest.raises(InputError) as raised:
        check_intelppm([path, DATA / "intelppm_disabled.reg"])
    assert raised.value.key == "imaging_intelppm.hive_with_others"


def test_rows_in_user_language(tmp_path):
    rows = intelppm_rows(check_intelppm(DATA / "intelppm_one_set_missed.reg"))
    assert rows[0]["start"] == "4（已停用）"
    assert rows[1]["verdict"].startswith("有風險")
    assert rows[2]["start"].startswith("檔案裡沒有這個控制集的 intelppm 機碼")
    assert rows[2]["verdict"].startswith("未檢查")


def test_rows_key_missing_in_checked_set(tmp_path):
    rows = intelppm_rows(check_intelppm(system_hive(tmp_path, {"ControlSet001": None})))
    assert rows[0]["start"].startswith("沒有 intelppm 機碼")
    assert rows[0]["verdict"].startswith("安全")


# `adminkb sysprep intelppm`.

def test_cli_at_risk_exits_1(capsys):
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_intel_master.reg"))
    output = capsys.readouterr().out
    assert status == 1
    assert "ControlSet002" in output
    assert "STOP 0x7E" in output
    assert "下一步" in output


def test_cli_safe_exits_0(capsys):
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_system_export_fixed.reg"))
    assert status == 0
    assert "可以還原到 AMD 電腦" in capsys.readouterr().out


def test_cli_writes_fix(tmp_path, capsys):
    fix = tmp_path / "intelppm-fix.reg"
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_system_export.reg"), "--fix", str(fix))
    assert status == 1
    assert str(fix) in capsys.readouterr().out
    assert check_intelppm([DATA / "intelppm_system_export.reg", fix]).safe


def test_cli_fix_not_overwritten(tmp_path, capsys):
    fix = tmp_path / "intelppm-fix.reg"
    fix.write_bytes(b"keep")
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_intel_master.reg"), "--fix", str(fix))
    assert status == 2
    assert "--force" in capsys.readouterr().err
    assert fix.read_bytes() == b"keep"


def test_cli_fix_not_needed_not_written(tmp_path, capsys):
    fix = tmp_path / "intelppm-fix.reg"
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_system_export_fixed.reg"), "--fix", str(fix))
    assert status == 0
    assert not fix.exists()


def test_cli_partial_fix_not_written(tmp_path, capsys):
    fix = tmp_path / "intelppm-fix.reg"
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_disabled.reg"), "--fix", str(fix))
    assert status == 1
    assert not fix.exists()
    assert "沒有寫出" in capsys.readouterr().out


def test_cli_partial_json(capsys):
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_one_set_missed.reg"), "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["complete"] is False
    assert document["selected"] is None
    assert [entry["checked"] for entry in document["control_sets"]] == [True, True, False]


def test_cli_hive_json(tmp_path, capsys):
    path = system_hive(tmp_path, {"ControlSet001": 1, "ControlSet002": 4})
    status = run_area("sysprep", "intelppm", str(path), "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["kind"] == "hive"
    assert document["current"] == "ControlSet001"
    assert [entry["loads"] for entry in document["control_sets"]] == [True, False]


def test_cli_bad_file_exits_2(capsys):
    status = run_area("sysprep", "intelppm", str(DATA / "intelppm_bad_start.reg"))
    assert status == 2
    assert "第 4 行" in capsys.readouterr().err
