"""sysprep.inf linter and generator: a failing and a passing fixture per rule, and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from adminkb.errors import InputError
from adminkb.imaging.sysprep import RULES, lint_sysprep, lint_text
from adminkb.imaging.sysprep_form import SysprepForm, encode_sysprep, generate_sysprep, write_sysprep
from clirun import run_area

DATA = Path(__file__).resolve().parent.parent / "data" / "sysprep"

# Failing fixture -> (rule, line) it must report.
FAILING = {
    "bad_encoding_utf8.inf": ("encoding", 16),
    "bad_encoding_utf8_bom.inf": ("encoding", 1),
    "bad_encoding_utf16be.inf": ("encoding", 1),
    "bad_outside_section.inf": ("outside-section", 1),
    "bad_malformed_line.inf": ("malformed-line", 8),
    "bad_duplicate_section.inf": ("duplicate-section", 33),
    "bad_duplicate_key.inf": ("duplicate-key", 13),
    "bad_wrong_section.inf": ("wrong-section", 7),
    "bad_wrong_section_free_form.inf": ("wrong-section", 34),
    "bad_unattend_only.inf": ("unattend-only", 7),
    "bad_timezone_hex.inf": ("timezone-hex", 11),
    "bad_timezone_invalid.inf": ("timezone-invalid", 11),
    "bad_product_key_unquoted.inf": ("product-key-unquoted", 18),
    "bad_product_key_malformed.inf": ("product-key-malformed", 18),
    "bad_computer_name_length.inf": ("computer-name-length", 17),
    "bad_computer_name_bytes.inf": ("computer-name-length", 17),
    "bad_computer_name_invalid.inf": ("computer-name-invalid", 17),
    "bad_unterminated_quote.inf": ("unterminated-quote", 16),
    "bad_admin_password_format.inf": ("admin-password-format", 9),
    "bad_hal_id_mismatch.inf": ("hal-id-mismatch", 7),
    "bad_hal_id_mismatch_mp.inf": ("hal-id-mismatch", 7),
    "bad_hal_id_unknown.inf": ("hal-id-unknown", 7),
    "bad_regional_without_installfilespath.inf": ("regional-without-installfilespath", 20),
    "bad_plaintext_password.inf": ("plaintext-password", 9),
    "bad_unknown_section.inf": ("unknown-section", 33),
    "bad_unknown_key.inf": ("unknown-key", 7),
}
PASSING = sorted(path.name for path in DATA.glob("good_*.inf")) + ["clean_minimal.inf", "clean_setupmgr_full.inf"]
UNREADABLE = ["unreadable_empty.inf", "unreadable_utf16_without_bom.inf", "unreadable_binary.inf", "missing.inf"]


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def test_every_rule_has_failing_fixture():
    assert set(RULES) == {rule for rule, _ in FAILING.values()}


def test_every_failing_fixture_has_passing_twin():
    for name in FAILING:
        twin = name.replace("bad_", "good_", 1)
        if name.startswith("bad_encoding"):
            continue
        assert (DATA / twin).is_file(), twin
    assert (DATA / "good_encoding_cp950.inf").is_file()
    assert (DATA / "good_encoding_utf16le.inf").is_file()


@pytest.mark.parametrize("name", sorted(FAILING))
def test_failing_fixture_reports_rule(name):
    rule, line = FAILING[name]
    result = lint_sysprep(DATA / name)
    reported = [(finding.rule, finding.line) for finding in result.findings]
    assert (rule, line) in reported
    finding = next(finding for finding in result.findings if finding.rule == rule)
    assert finding.severity == RULES[rule]
    assert finding.problem.strip()
    assert finding.fix.strip()


@pytest.mark.parametrize("name", PASSING)
def test_passing_fixture_is_clean(name):
    result = lint_sysprep(DATA / name)
    assert result.findings == []
    assert result.clean


@pytest.mark.parametrize("name", UNREADABLE)
def test_unreadable_file_raises(name):
    with pytest.raises(InputError) as raised:
        lint_sysprep(DATA / name)
    assert raised.value.exit_status == 2
    assert name in str(raised.value)
    assert "下一步" in str(raised.value)


@pytest.mark.parametrize("name, header", [("regedit4_cp950.reg", "REGEDIT4"),
                                          ("all_value_types.reg", "Windows Registry Editor Version 5.00")])
def test_registry_export_rejected(name, header):
    with pytest.raises(InputError) as raised:
        lint_sysprep(DATA.parent / "reg" / name)
    assert raised.value.key == "imaging_sysprep.file.is_reg"
    assert header in str(raised.value)
    assert "adminkb reg read" in str(raised.value)


def test_computer_name_counted_in_cp950_bytes():
    result = lint_sysprep(DATA / "bad_computer_name_bytes.inf")
    finding = next(finding for finding in result.findings if finding.rule == "computer-name-length")
    assert result.encoding == "cp950"
    assert finding.values["characters"] == 9
    assert finding.values["length"] == 16
    assert "16 個位元組" in finding.problem


def test_chinese_name_within_15_bytes_clean():
    result = lint_sysprep(DATA / "good_computer_name_bytes.inf")
    assert result.encoding == "cp950"
    assert result.findings == []


def test_computer_name_invalid_characters_listed():
    finding = lint_sysprep(DATA / "bad_computer_name_invalid.inf").findings[0]
    assert finding.values["characters"] == "/ *"


# (name, the characters the finding lists, or None for no finding). U+4EEC is a simplified
# character that cp950 lacks, and cp950 has no no-break space.
@pytest.mark.parametrize("name, shown", [("PC\u00a0A", "U+00A0"), ("PC\u2028A", "U+2028"), ("PC\u4e2d\u6587", None),
                                         ("PC\u4eec", "\u4eec"), ("PC\U0001F600", "\U0001F600"), ("PC-01.A_B", None)])
def test_computer_name_character_cases(name, shown):
    findings = [finding for finding in lint_text(f"[UserData]\r\nComputerName={name}\r\n").findings
                if finding.rule == "computer-name-invalid"]
    if shown is None:
        assert findings == []
    else:
        assert findings[0].values["characters"] == shown


def test_random_computer_name_not_checked():
    assert lint_text("[UserData]\r\nComputerName = *\r\n").findings == []


def test_known_key_in_run_once_reported():
    finding = lint_sysprep(DATA / "bad_wrong_section_free_form.inf").findings[0]
    assert finding.section == "GuiRunOnce"
    assert finding.key == "ProductKey"
    assert finding.values["home"] == "UserData"


def test_free_keys_in_run_once_clean():
    text = '[GuiRunOnce]\r\nCommand0 = "C:\\a.cmd"\r\nCommand1 = "C:\\b.cmd"\r\n'
    assert lint_text(text).findings == []


def test_params_section_keys_not_checked():
    text = "[params.MS_TCPIP.Adapter1]\r\nDHCP = Yes\r\nLanguage = 00000404\r\n"
    assert lint_text(text).findings == []


def test_unterminated_quote_skips_entry():
    rules = [finding.rule for finding in lint_text('[UserData]\r\nProductKey = "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE\r\n').findings]
    assert rules == ["unterminated-quote"]


def test_semicolon_inside_open_quote_kept():
    finding = lint_text('[UserData]\r\nOrgName = "Example; Co.\r\n').findings[0]
    assert finding.rule == "unterminated-quote"
    assert finding.values["text"] == 'OrgName = "Example; Co.'


def test_paired_quotes_with_comment_clean():
    assert lint_text('[UserData]\r\nOrgName = "Example Co." ; the "legal" name\r\n').findings == []


def test_timezone_hex_names_decimal():
    result = lint_sysprep(DATA / "bad_timezone_hex.inf")
    finding = result.findings[0]
    assert "220" in finding.problem
    assert "Taipei Standard Time" in finding.problem


def test_timezone_decimal_not_reported():
    text = "[GuiUnattended]\r\nTimeZone = 220\r\n"
    assert lint_text(text).findings == []


def test_timezone_0x_prefix_reported():
    text = "[GuiUnattended]\r\nTimeZone = 0xDC\r\n"
    rules = [finding.rule for finding in lint_text(text).findings]
    assert rules == ["timezone-hex"]


def test_timezone_empty_not_reported():
    assert lint_text("[GuiUnattended]\r\nTimeZone =\r\n").findings == []


def test_unquoted_hal_value_accepted():
    text = "[Unattended]\r\nUpdateUPHAL = MPS_UP,%WINDIR%\\Inf\\Hal.inf\r\n"
    assert lint_text(text).findings == []


def test_line_separator_keeps_numbers():
    text = "[UserData]\r\nOrgName = \"A\u2028B\"\r\nComputerName = TAIPEI-ACCOUNT-01\r\n"
    finding = lint_text(text).findings[0]
    assert finding.rule == "computer-name-length"
    assert finding.line == 3


def test_empty_key_name_malformed():
    rules = [finding.rule for finding in lint_text("[Unattended]\r\n= Yes\r\n").findings]
    assert rules == ["malformed-line"]


def test_product_key_masked_in_message():
    result = lint_sysprep(DATA / "bad_product_key_malformed.inf")
    problem = result.findings[0].problem
    assert "AAAAABBBBB" not in problem
    assert "EEEEE" in problem


def test_malformed_header_skips_following_keys():
    result = lint_sysprep(DATA / "bad_malformed_line.inf")
    assert [finding.rule for finding in result.findings] == ["malformed-line"]


def test_names_match_without_case():
    text = "[guiunattended]\r\ntimezone = 220\r\n[USERDATA]\r\ncomputername = *\r\n"
    assert lint_text(text).findings == []


def test_comment_after_value_ignored():
    text = '[UserData]\r\nProductKey = "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE" ; volume key\r\n'
    assert lint_text(text).findings == []


def test_semicolon_inside_quotes_kept():
    text = '[GuiRunOnce]\r\nCommand0 = "cmd /c echo a;b"\r\n'
    assert lint_text(text).findings == []


def test_blank_admin_password_not_warned():
    text = "[GuiUnattended]\r\nAdminPassword = *\r\n"
    assert lint_text(text).findings == []


def test_long_admin_password_reported():
    text = '[GuiUnattended]\r\nAdminPassword = "' + "x" * 128 + '"\r\nEncryptedAdminPassword = Yes\r\n'
    rules = [finding.rule for finding in lint_text(text).findings]
    assert rules == ["admin-password-format"]


def test_cp950_fixture_decoded():
    result = lint_sysprep(DATA / "good_encoding_cp950.inf")
    assert result.encoding == "cp950"


def test_utf16le_fixture_decoded():
    result = lint_sysprep(DATA / "good_encoding_utf16le.inf")
    assert result.encoding == "UTF-16LE"


def test_english_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    finding = lint_sysprep(DATA / "bad_wrong_section.inf").findings[0]
    assert finding.problem.startswith("TimeZone is in the wrong section")
    assert "[GuiUnattended]" in finding.fix


# The generator.

def sample_form(**changes) -> SysprepForm:
    form = SysprepForm(org_name="Example Co.", full_name="IT Department",
                       product_key="AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    return replace(form, **changes)


def test_generated_file_passes_linter(tmp_path):
    path = write_sysprep(sample_form(), tmp_path / "sysprep.inf")
    result = lint_sysprep(path)
    assert result.findings == []
    assert result.encoding == "ASCII"


@pytest.mark.parametrize("hal_update", [("UpdateUPHAL", "ACPIAPIC_UP"), ("UpdateHAL", "ACPIAPIC_MP"),
                                        ("UpdateUPHAL", "MPS_UP"), ("UpdateHAL", "SYSPRO_MP")])
def test_generated_hal_line_passes(tmp_path, hal_update):
    path = write_sysprep(sample_form(hal_update=hal_update), tmp_path / "sysprep.inf")
    assert lint_sysprep(path).findings == []
    assert f'{hal_update[0]} = "{hal_update[1]},%WINDIR%\\Inf\\Hal.inf"' in path.read_text("ascii")


def test_generated_chinese_is_utf16le(tmp_path):
    path = write_sysprep(sample_form(org_name="範例公司"), tmp_path / "sysprep.inf")
    data = path.read_bytes()
    assert data.startswith(b"\xff\xfe")
    result = lint_sysprep(path)
    assert result.findings == []
    assert result.encoding == "UTF-16LE"


def test_generated_time_zone_decimal():
    text = generate_sysprep(sample_form(time_zone="Tokyo Standard Time"))
    assert "TimeZone = 235" in text
    assert "\r\n" in text


def test_generated_regional_settings():
    text = generate_sysprep(sample_form())
    assert "SystemLocale = 00000404" in text
    assert "InstallFilesPath = C:\\Sysprep\\i386" in text
    text_without = generate_sysprep(sample_form(traditional_chinese=False))
    assert "[RegionalSettings]" not in text_without


def test_generated_domain_password_warned():
    text = generate_sysprep(sample_form(workgroup=None, domain="CORP", domain_admin="joiner",
                                        domain_admin_password="Example-Only-2"))
    rules = [finding.rule for finding in lint_text(text).findings]
    assert rules == ["plaintext-password"]


def test_generated_mass_storage_section():
    text = generate_sysprep(sample_form(build_mass_storage_section=True))
    assert "BuildMassStorageSection = Yes" in text
    assert lint_text(text).findings == []


@pytest.mark.parametrize("changes, key", [
    ({"computer_name": "TAIPEI-ACCOUNT-01"}, "computer_name_long"),
    ({"computer_name": "台北會計部電腦零一"}, "computer_name_long"),
    ({"computer_name": "台北會計部電腦01"}, "computer_name_long"),
    ({"computer_name": "PC:01"}, "computer_name_invalid"),
    ({"computer_name": "PC*"}, "computer_name_invalid"),
    ({"workgroup": "W" * 16}, "workgroup_long"),
    ({"workgroup": "會計部工作群組一"}, "workgroup_long"),
    ({"workgroup": "MY GROUP"}, "workgroup_invalid"),
    ({"workgroup": "WG;X"}, "workgroup_invalid"),
    ({"computer_name": " "}, "computer_name_empty"),
    ({"product_key": "AAAAA-BBBBB"}, "product_key"),
    ({"time_zone": "Mars Standard Time"}, "time_zone"),
    ({"workgroup": "WORKGROUP", "domain": "CORP"}, "workgroup_or_domain"),
    ({"workgroup": None}, "workgroup_or_domain"),
    ({"admin_password": "x" * 128}, "admin_password_long"),
    ({"org_name": 'Say "hi"'}, "quote_in_value"),
    ({"hal_update": ("UpdateUPHAL", "ACPIAPIC_MP")}, "hal_update"),
    ({"hal_update": ("UpdateHAL", "MPS_UP")}, "hal_update"),
    ({"hal_update": ("UpdateAnyHAL", "MPS_UP")}, "hal_update"),
])
def test_form_rejects_bad_value(changes, key):
    with pytest.raises(InputError) as raised:
        generate_sysprep(sample_form(**changes))
    assert raised.value.key == f"imaging_sysprep.form.{key}"
    assert raised.value.exit_status == 2


# Every string field of the form, with a value that is valid apart from the inserted character.
STRING_FIELDS = {
    "org_name": "Example Co.", "full_name": "IT", "product_key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE",
    "computer_name": "PC01", "time_zone": "Taipei Standard Time", "workgroup": "WORKGROUP",
    "admin_password": "Example-Only-1", "input_locales": "0404:00000404", "install_files_path": "C:\\Sysprep\\i386",
    "oem_pnp_drivers_path": "Drivers\\Net",
}


@pytest.mark.parametrize("field", sorted(STRING_FIELDS))
@pytest.mark.parametrize("character", ["\r", "\n", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028"])
def test_form_rejects_control_character(field, character):
    value = STRING_FIELDS[field]
    form = sample_form(**{field: value[:2] + character + value[2:]})
    with pytest.raises(InputError) as raised:
        generate_sysprep(form)
    assert raised.value.key == "imaging_sysprep.form.control_character"
    assert raised.value.values["position"] == 3
    assert raised.value.values["character"] == f"U+{ord(character):04X}"


@pytest.mark.parametrize("field", ["domain", "domain_admin", "domain_admin_password"])
def test_form_rejects_control_character_in_domain(field):
    values = {"workgroup": None, "domain": "CORP", "domain_admin": "joiner", "domain_admin_password": "Example-2"}
    values[field] = values[field] + "\r\n[GuiRunOnce]"
    with pytest.raises(InputError) as raised:
        generate_sysprep(sample_form(**values))
    assert raised.value.key == "imaging_sysprep.form.control_character"


def test_form_rejects_control_character_in_hal():
    with pytest.raises(InputError) as raised:
        generate_sysprep(sample_form(hal_update=("UpdateUPHAL", "ACPIAPIC_UP\r\n")))
    assert raised.value.key == "imaging_sysprep.form.control_character"


def test_injected_section_never_generated():
    with pytest.raises(InputError) as raised:
        generate_sysprep(sample_form(org_name="Corp\r\n[GuiRunOnce]\r\nCommand0=evil"))
    text = str(raised.value)
    assert "組織名稱" in text
    assert "Corp\\r\\n[GuiRunOnce]" in text
    assert "下一步" in text


def test_control_character_error_hides_password():
    with pytest.raises(InputError) as raised:
        generate_sysprep(sample_form(admin_password="Secret-Value\n1"))
    assert "Secret-Value" not in str(raised.value)
    assert "不顯示" in str(raised.value)


def test_chinese_computer_name_within_15_bytes(tmp_path):
    path = write_sysprep(sample_form(computer_name="台北會計部01"), tmp_path / "sysprep.inf")
    result = lint_sysprep(path)
    assert result.encoding == "UTF-16LE"
    assert result.findings == []


def test_long_chinese_name_error_counts_bytes():
    with pytest.raises(InputError) as raised:
        generate_sysprep(sample_form(computer_name="台北會計部電腦零一"))
    assert raised.value.values["length"] == 18
    assert raised.value.values["characters"] == 9
    assert "18 個位元組" in str(raised.value)


def test_form_error_hides_product_key():
    with pytest.raises(InputError) as raised:
        generate_sysprep(sample_form(product_key="QQQQQ-WWWWW"))
    assert "QQQQQ" not in str(raised.value)


def test_write_leaves_no_temporary(tmp_path):
    write_sysprep(sample_form(), tmp_path / "sysprep.inf")
    assert [path.name for path in tmp_path.iterdir()] == ["sysprep.inf"]


def test_encode_ascii_without_bom():
    assert encode_sysprep("[UserData]\r\n") == b"[UserData]\r\n"


# `adminkb sysprep lint`.

def run(*arguments: str) -> int:
    return run_area("sysprep", *arguments)


def test_cli_clean_exits_0(capsys):
    status = run("lint", str(DATA / "clean_minimal.inf"))
    output = capsys.readouterr()
    assert status == 0
    assert "沒有發現問題" in output.out
    assert output.err == ""


def test_cli_findings_exit_1(capsys):
    status = run("lint", str(DATA / "bad_timezone_hex.inf"))
    text = capsys.readouterr().out
    assert status == 1
    assert "1 個錯誤、0 個警告" in text
    assert "timezone-hex" in text
    assert "TimeZone = 220" in text
    row = next(line for line in text.splitlines() if "timezone-hex" in line)
    assert row.split()[0] == "11"
    assert row.split()[1] == "錯誤"


def test_cli_warning_only_exits_1(capsys):
    status = run("lint", str(DATA / "bad_unknown_key.inf"))
    assert status == 1
    assert "警告" in capsys.readouterr().out


@pytest.mark.parametrize("name", UNREADABLE)
def test_cli_unreadable_exits_2(name, capsys):
    status = run("lint", str(DATA / name))
    output = capsys.readouterr()
    assert status == 2
    assert output.out == ""
    assert output.err.startswith("錯誤：")


def test_cli_json(capsys):
    status = run("lint", str(DATA / "bad_plaintext_password.inf"), "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert [finding["line"] for finding in document["findings"]] == [9, 30]
    assert {finding["severity"] for finding in document["findings"]} == {"warning"}


def test_cli_csv_has_bom(capsys):
    run("lint", str(DATA / "bad_unknown_key.inf"), "--format", "csv")
    text = capsys.readouterr().out
    assert text.startswith("\ufeffline,severity,rule,problem,fix")
    assert "unknown-key" in text


# `adminkb sysprep check-unattend`: input that is not XML cannot be checked.


@pytest.mark.parametrize("data", [bytes(range(256)) * 4, "這不是 XML\n只是文字\n".encode("utf-8")],
                         ids=["binary", "text"])
def test_check_unattend_not_xml_exits_2(tmp_path, capsys, data):
    path = tmp_path / "unattend.xml"
    path.write_bytes(data)
    status = run("check-unattend", str(path))
    output = capsys.readouterr()
    assert status == 2
    assert "not_well_formed" in output.out


def test_check_unattend_help_names_unattend(capsys):
    with pytest.raises(SystemExit):
        run("check-unattend", "--help")
    text = capsys.readouterr().out
    assert "unattend.xml" in text
    assert "sysprep.inf" not in text
