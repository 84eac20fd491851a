"""unattend.xml for Windows 10/11: the generated file, each checker rule failing and passing, the CLI."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from clirun import run_area
from adminkb.errors import InputError
from adminkb.imaging.unattend import (
    NAMESPACE, PASSES, UnattendForm, check_unattend, computer_name_problem, dism_capture_command,
    generate_unattend, sysprep_command,
)


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


GOOD = generate_unattend()


def rules(text: str) -> list[str]:
    return [finding.rule for finding in check_unattend(text)]


# The generated file.

def test_generated_file_is_clean():
    assert check_unattend(GOOD) == []


def test_generated_file_well_formed_with_namespace():
    root = ElementTree.fromstring(GOOD.encode("utf-8"))
    assert root.tag == f"{{{NAMESPACE}}}unattend"
    assert [settings.get("pass") for settings in root] == ["specialize", "oobeSystem"]
    assert all(settings.get("pass") in PASSES for settings in root)


def test_generated_file_has_taiwan_settings():
    root = ElementTree.fromstring(GOOD.encode("utf-8"))
    texts = {element.tag.split("}")[1]: element.text for element in root.iter()}
    assert texts["TimeZone"] == "Taipei Standard Time"
    assert texts["InputLocale"] == "0404:00000404"
    assert texts["SystemLocale"] == "zh-TW"
    assert texts["UserLocale"] == "zh-TW"
    assert texts["UILanguage"] == "zh-TW"
    assert texts["HideEULAPage"] == "true"
    assert texts["ProtectYourPC"] == "3"


def test_generated_file_uses_crlf():
    assert GOOD.startswith('<?xml version="1.0" encoding="utf-8"?>\r\n')
    assert "\n" not in GOOD.replace("\r\n", "")


def test_form_values_written():
    text = generate_unattend(UnattendForm(computer_name="TPE-ACC-01", architecture="x86"))
    assert "<ComputerName>TPE-ACC-01</ComputerName>" in text
    assert 'processorArchitecture="x86"' in text
    assert check_unattend(text) == []


@pytest.mark.parametrize(("form", "key"), [
    (UnattendForm(computer_name="ACCOUNTING-PC-0001"), "imaging_unattend.rule.computer_name_length.problem"),
    (UnattendForm(computer_name="TPE ACC"), "imaging_unattend.rule.computer_name_characters.problem"),
    (UnattendForm(computer_name="12345"), "imaging_unattend.rule.computer_name_characters.problem"),
    (UnattendForm(architecture="ia64"), "imaging_unattend.rule.bad_architecture.problem"),
    (UnattendForm(time_zone="220"), "imaging_unattend.rule.numeric_time_zone.problem"),
    (UnattendForm(input_locale="0404"), "imaging_unattend.rule.bad_input_locale.problem"),
    (UnattendForm(protect_your_pc=4), "imaging_unattend.bad_protect_your_pc"),
])
def test_bad_form_rejected(form, key):
    with pytest.raises(InputError) as raised:
        generate_unattend(form)
    assert raised.value.key == key


def test_xml_special_characters_escaped():
    text = generate_unattend(UnattendForm(time_zone="A & B <C>"))
    assert "A &amp; B &lt;C&gt;" in text
    assert check_unattend(text) == []


# Checker rules: each one fails on a broken copy of the good file and passes on the good file.

BROKEN = {
    "not_well_formed": GOOD.replace("</OOBE>", ""),
    "wrong_root": GOOD.replace(f'xmlns="{NAMESPACE}"', 'xmlns="urn:example"'),
    "unknown_pass": GOOD.replace('pass="specialize"', 'pass="Specialize"'),
    "repeated_pass": GOOD.replace('pass="specialize"', 'pass="oobeSystem"'),
    "bad_architecture": GOOD.replace('processorArchitecture="amd64"', 'processorArchitecture="x64"', 1),
    "bad_component_attribute": GOOD.replace('publicKeyToken="31bf3856ad364e35"', 'publicKeyToken="0"', 1),
    "wrong_pass": GOOD.replace("<TimeZone>Taipei Standard Time</TimeZone>",
                               "<OOBE><HideEULAPage>true</HideEULAPage></OOBE>"),
    "computer_name_length": GOOD.replace("<ComputerName>*</ComputerName>",
                                         "<ComputerName>ACCOUNTING-PC-0001</ComputerName>"),
    "computer_name_characters": GOOD.replace("<ComputerName>*</ComputerName>", "<ComputerName>PC_01.A</ComputerName>"),
    "numeric_time_zone": GOOD.replace("Taipei Standard Time", "220"),
    "bad_input_locale": GOOD.replace("0404:00000404", "0404-00000404"),
}


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_rule_fails_on_broken_file(rule):
    assert rule in rules(BROKEN[rule])


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_rule_passes_on_good_file(rule):
    assert rule not in rules(GOOD)


def test_finding_names_line():
    findings = check_unattend(BROKEN["numeric_time_zone"])
    assert findings[0].line == 6
    assert "Taipei Standard Time" in findings[0].fix


def test_not_well_formed_names_line_and_column():
    finding = check_unattend(BROKEN["not_well_formed"])[0]
    assert finding.line > 1
    assert "第" in finding.problem


def test_wrong_pass_names_valid_passes():
    finding = [finding for finding in check_unattend(BROKEN["wrong_pass"]) if finding.rule == "wrong_pass"][0]
    assert "oobeSystem" in finding.problem
    assert "specialize" in finding.problem


def test_several_input_locales_accepted():
    assert check_unattend(GOOD.replace("0404:00000404", "0404:00000404;0409:00000409")) == []


@pytest.mark.parametrize(("name", "rule"), [
    ("*", None), ("", None), ("TPE-ACC-01", None), ("A" * 15, None), ("A" * 16, "computer_name_length"),
    ("會計部電腦一號", "computer_name_length"), ("會計01", None), ("2026", "computer_name_characters"),
])
def test_computer_name_rules(name, rule):
    assert computer_name_problem(name) == rule


# Commands.

def test_sysprep_command_generalizes_and_shuts_down():
    command = sysprep_command(r"D:\unattend.xml")
    assert "/generalize /oobe /shutdown /unattend:D:\\unattend.xml" in command


def test_dism_capture_command():
    assert dism_capture_command() == r'Dism /Capture-Image /ImageFile:D:\Images\install.wim /CaptureDir:C:\ /Name:"Windows image"'


# `adminkb sysprep unattend` and `check-unattend`.

def test_cli_prints_file(capsys):
    status = run_area("sysprep", "unattend", "--computer-name", "TPE-ACC-01")
    output = capsys.readouterr().out
    assert status == 0
    assert "<ComputerName>TPE-ACC-01</ComputerName>" in output


def test_cli_writes_and_checks(tmp_path, capsys):
    path = tmp_path / "unattend.xml"
    assert run_area("sysprep", "unattend", "--output", str(path)) == 0
    assert path.read_bytes().startswith(b'<?xml version="1.0" encoding="utf-8"?>\r\n')
    assert run_area("sysprep", "check-unattend", str(path)) == 0
    assert "沒有發現問題" in capsys.readouterr().out


def test_cli_does_not_overwrite(tmp_path, capsys):
    path = tmp_path / "unattend.xml"
    path.write_text("keep", encoding="utf-8")
    assert run_area("sysprep", "unattend", "--output", str(path)) == 2
    assert "--force" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "keep"


def test_cli_bad_name_exits_2(capsys):
    assert run_area("sysprep", "unattend", "--computer-name", "A" * 16) == 2
    assert "15" in capsys.readouterr().err


def test_cli_check_finds_problems(tmp_path, capsys):
    path = tmp_path / "unattend.xml"
    path.write_text(BROKEN["numeric_time_zone"], encoding="utf-8")
    assert run_area("sysprep", "check-unattend", str(path)) == 1
    assert "numeric_time_zone" in capsys.readouterr().out


def test_cli_check_missing_file_exits_2(tmp_path, capsys):
    assert run_area("sysprep", "check-unattend", str(tmp_path / "none.xml")) == 2
    assert "下一步" in capsys.readouterr().err
