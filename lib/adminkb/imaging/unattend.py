"""The modern path: a minimal unattend.xml for Windows 10/11, its checker, and the Sysprep and DISM commands.

The generated file sets the computer name and the time zone (Microsoft-Windows-Shell-Setup in the
specialize pass), Traditional Chinese (Taiwan) input, locale and UI language
(Microsoft-Windows-International-Core in oobeSystem) and the OOBE pages to hide
(Shell-Setup | OOBE in oobeSystem). Which settings belong to which configuration pass follows the
Unattended Windows Setup Reference on Microsoft Learn.

The checker reports what breaks such a file. It finds XML that is not well-formed, a root element
outside the unattend namespace, an unknown or repeated pass, and a component without the
attributes Windows Setup matches on. It also finds a known setting in a pass where Setup ignores
it, a computer name Windows rejects, and an XP-style numeric TimeZone.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message

NAMESPACE = "urn:schemas-microsoft-com:unattend"
WCM_NAMESPACE = "http://schemas.microsoft.com/WMIConfig/2002/State"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
LINE_ATTRIBUTE = "{adminkb}line"
PASSES = ("windowsPE", "offlineServicing", "generalize", "specialize", "auditSystem", "auditUser", "oobeSystem")
ARCHITECTURES = ("x86", "amd64", "arm64")
PUBLIC_KEY_TOKEN = "31bf3856ad364e35"
# The attributes Windows Setup matches a component on, with the only values these components use.
COMPONENT_ATTRIBUTES = {"publicKeyToken": PUBLIC_KEY_TOKEN, "language": "neutral", "versionScope": "nonSxS"}

# Valid configuration passes of the settings that the generator writes and the checker checks, from the
# "Valid configuration passes" line of each setting's page in the Unattended Windows Setup Reference.
SETTING_PASSES = {
    ("Microsoft-Windows-Shell-Setup", "ComputerName"): ("offlineServicing", "specialize"),
    ("Microsoft-Windows-Shell-Setup", "TimeZone"): ("specialize", "oobeSystem", "auditSystem"),
    ("Microsoft-Windows-Shell-Setup", "OOBE"): ("oobeSystem",),
    ("Microsoft-Windows-International-Core", "InputLocale"): ("specialize", "oobeSystem"),
    ("Microsoft-Windows-International-Core", "SystemLocale"): ("specialize", "oobeSystem"),
    ("Microsoft-Windows-International-Core", "UILanguage"): ("specialize", "oobeSystem"),
    ("Microsoft-Windows-International-Core", "UserLocale"): ("specialize", "oobeSystem"),
    ("Microsoft-Windows-International-Core-WinPE", "InputLocale"): ("windowsPE",),
    ("Microsoft-Windows-International-Core-WinPE", "SystemLocale"): ("windowsPE",),
    ("Microsoft-Windows-International-Core-WinPE", "UILanguage"): ("windowsPE",),
    ("Microsoft-Windows-International-Core-WinPE", "UserLocale"): ("windowsPE",),
}

# ComputerName (Shell-Setup): at most 15 bytes, none of these characters or spaces, and not only
# digits. With "*" (or an empty element) Setup generates a random name.
COMPUTER_NAME_FORBIDDEN = set("{|}~[\\]^':;<=>?@!\"#$%`()+/.,*& ")
MAX_COMPUTER_NAME = 15
INPUT_LOCALE = re.compile(r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{4}:\{[0-9A-Fa-f-]{36}\}\{[0-9A-Fa-f-]{36}\}"
                          r"|[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")


@dataclass
class UnattendForm:
    """The values of the minimal answer file. The defaults are for a Taiwanese office PC."""

    # "*" lets Setup make a random name.
    computer_name: str = "*"
    time_zone: str = "Taipei Standard Time"
    # Language id 0404 (Chinese, Taiwan) with keyboard layout id 00000404.
    input_locale: str = "0404:00000404"
    system_locale: str = "zh-TW"
    user_locale: str = "zh-TW"
    ui_language: str = "zh-TW"
    architecture: str = "amd64"
    hide_eula: bool = True
    hide_oem_registration: bool = True
    hide_wireless_setup: bool = True
    # 1 recommended settings, 2 updates only, 3 neither (the admin's policies decide).
    protect_your_pc: int = 3


@dataclass(frozen=True)
class UnattendFinding:
    """One problem in an unattend.xml: the line, the rule id and the values for its texts."""

    line: int
    rule: str
    values: dict[str, object] = field(default_factory=dict)

    @property
    def problem(self) -> str:
        return message(f"imaging_unattend.rule.{self.rule}.problem", **self.values)

    @property
    def fix(self) -> str:
        return message(f"imaging_unattend.rule.{self.rule}.fix", **self.values)

    def to_dict(self) -> dict[str, object]:
        return {"line": self.line, "rule": self.rule, "problem": self.problem, "fix": self.fix}


def generate_unattend(form: UnattendForm | None = None) -> str:
    """Return the answer file text (UTF-8, CRLF line ends), after checking the form's values."""
    form = form or UnattendForm()
    _check_form(form)
    component = (f'name="{{name}}" processorArchitecture="{form.architecture}" publicKeyToken="{PUBLIC_KEY_TOKEN}" '
                 f'language="neutral" versionScope="nonSxS"')
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<unattend xmlns="{NAMESPACE}" xmlns:wcm="{WCM_NAMESPACE}" xmlns:xsi="{XSI_NAMESPACE}">',
        '  <settings pass="specialize">',
        f'    <component {component.format(name="Microsoft-Windows-Shell-Setup")}>',
        f"      <ComputerName>{_xml(form.computer_name)}</ComputerName>",
        f"      <TimeZone>{_xml(form.time_zone)}</TimeZone>",
        "    </component>",
        "  </settings>",
        '  <settings pass="oobeSystem">',
        f'    <component {component.format(name="Microsoft-Windows-International-Core")}>',
        f"      <InputLocale>{_xml(form.input_locale)}</InputLocale>",
        f"      <SystemLocale>{_xml(form.system_locale)}</SystemLocale>",
        f"      <UILanguage>{_xml(form.ui_language)}</UILanguage>",
        f"      <UserLocale>{_xml(form.user_locale)}</UserLocale>",
        "    </component>",
        f'    <component {component.format(name="Microsoft-Windows-Shell-Setup")}>',
        "      <OOBE>",
        f"        <HideEULAPage>{_bool(form.hide_eula)}</HideEULAPage>",
        f"        <HideOEMRegistrationScreen>{_bool(form.hide_oem_registration)}</HideOEMRegistrationScreen>",
        f"        <HideWirelessSetupInOOBE>{_bool(form.hide_wireless_setup)}</HideWirelessSetupInOOBE>",
        f"        <ProtectYourPC>{form.protect_your_pc}</ProtectYourPC>",
        "      </OOBE>",
        "    </component>",
        "  </settings>",
        "</unattend>",
    ]
    return "\r\n".join(lines) + "\r\n"


def _check_form(form: UnattendForm) -> None:
    name_problem = computer_name_problem(form.computer_name)
    if name_problem:
        raise InputError(f"imaging_unattend.rule.{name_problem}.problem", value=form.computer_name,
                         next_key=f"imaging_unattend.rule.{name_problem}.fix", max=MAX_COMPUTER_NAME)
    if form.architecture not in ARCHITECTURES:
        raise InputError("imaging_unattend.rule.bad_architecture.problem", value=form.architecture,
                         next_key="imaging_unattend.rule.bad_architecture.fix", known=", ".join(ARCHITECTURES))
    if form.protect_your_pc not in (1, 2, 3):
        raise InputError("imaging_unattend.bad_protect_your_pc", value=form.protect_your_pc,
                         next_key="imaging_unattend.bad_protect_your_pc_next")
    if form.time_zone.strip().isdigit():
        raise InputError("imaging_unattend.rule.numeric_time_zone.problem", value=form.time_zone,
                         next_key="imaging_unattend.rule.numeric_time_zone.fix")
    for part in form.input_locale.split(";"):
        if not INPUT_LOCALE.fullmatch(part.strip()):
            raise InputError("imaging_unattend.rule.bad_input_locale.problem", value=form.input_locale,
                             next_key="imaging_unattend.rule.bad_input_locale.fix")


def computer_name_problem(name: str) -> str | None:
    """Return the rule id that a computer name breaks, or None for a usable name ("*" included)."""
    if name in ("*", ""):
        return None
    # NOTE: the reference counts "bytes of content" without naming the encoding. UTF-8 is assumed,
    # which is stricter than a double-byte code page for Chinese names.
    if len(name.encode("utf-8")) > MAX_COMPUTER_NAME:
        return "computer_name_length"
    if any(character in COMPUTER_NAME_FORBIDDEN for character in name) or name.isdigit():
        return "computer_name_characters"
    return None


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _bool(value: bool) -> str:
    return "true" if value else "false"


# Checking.

def check_unattend_file(path: str | Path) -> list[UnattendFinding]:
    """Check an unattend.xml file. Raises InputError when it cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError("imaging_unattend.unreadable", value=str(path), reason=os_error_text(error),
                         next_key="imaging_unattend.unreadable_next") from None
    return check_unattend(data)


def check_unattend(data: str | bytes) -> list[UnattendFinding]:
    """Return the problems of an answer file, in line order (an empty list for a good file)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        root = _parse_with_lines(raw)
    except ElementTree.ParseError as error:
        line, column = error.position
        return [UnattendFinding(line, "not_well_formed", {"column": column + 1, "detail": str(error)})]

    findings: list[UnattendFinding] = []
    if root.tag != f"{{{NAMESPACE}}}unattend":
        findings.append(UnattendFinding(_line(root), "wrong_root", {"tag": root.tag}))
        return findings
    seen_passes: dict[str, int] = {}
    for settings in root:
        if settings.tag != f"{{{NAMESPACE}}}settings":
            continue
        pass_name = settings.get("pass", "")
        if pass_name not in PASSES:
            findings.append(UnattendFinding(_line(settings), "unknown_pass",
                                            {"value": pass_name, "known": ", ".join(PASSES)}))
            continue
        if pass_name in seen_passes:
            findings.append(UnattendFinding(_line(settings), "repeated_pass",
                                            {"value": pass_name, "first": seen_passes[pass_name]}))
        seen_passes.setdefault(pass_name, _line(settings))
        for component in settings:
            findings.extend(_check_component(component, pass_name))
    return sorted(findings, key=lambda finding: finding.line)


def _check_component(component: ElementTree.Element, pass_name: str) -> list[UnattendFinding]:
    findings = []
    name = component.get("name", "")
    line = _line(component)
    architecture = component.get("processorArchitecture")
    if architecture not in ARCHITECTURES:
        findings.append(UnattendFinding(line, "bad_architecture", {"value": architecture or "",
                                                                   "known": ", ".join(ARCHITECTURES)}))
    for attribute, expected in COMPONENT_ATTRIBUTES.items():
        if component.get(attribute) != expected:
            findings.append(UnattendFinding(line, "bad_component_attribute",
                                            {"component": name, "attribute": attribute,
                                             "value": component.get(attribute) or "", "expected": expected}))
    for setting in component:
        local = setting.tag.split("}", 1)[-1]
        valid = SETTING_PASSES.get((name, local))
        if valid is not None and pass_name not in valid:
            findings.append(UnattendFinding(_line(setting), "wrong_pass",
                                            {"setting": f"{name} | {local}", "value": pass_name,
                                             "valid": ", ".join(valid)}))
        text = (setting.text or "").strip()
        if (name, local) == ("Microsoft-Windows-Shell-Setup", "ComputerName"):
            problem = computer_name_problem(text)
            if problem:
                findings.append(UnattendFinding(_line(setting), problem, {"value": text, "max": MAX_COMPUTER_NAME}))
        if (name, local) == ("Microsoft-Windows-Shell-Setup", "TimeZone") and text.isdigit():
            findings.append(UnattendFinding(_line(setting), "numeric_time_zone", {"value": text}))
        if local == "InputLocale" and name.startswith("Microsoft-Windows-International-Core"):
            if not all(INPUT_LOCALE.fullmatch(part.strip()) for part in text.split(";")):
                findings.append(UnattendFinding(_line(setting), "bad_input_locale", {"value": text}))
    return findings


def _parse_with_lines(raw: bytes) -> ElementTree.Element:
    """Parse XML and record each element's start line in an `{adminkb}line` attribute.

    ElementTree keeps no line numbers, so expat reads the same bytes once more and reports each
    start tag's line in document order, which is the order of `root.iter()`.
    """
    root = ElementTree.fromstring(raw)
    lines: list[int] = []
    parser = expat.ParserCreate()
    parser.StartElementHandler = lambda _name, _attributes: lines.append(parser.CurrentLineNumber)
    parser.Parse(raw, True)
    for element, line in zip(root.iter(), lines):
        element.set(LINE_ATTRIBUTE, str(line))
    return root


def _line(element: ElementTree.Element) -> int:
    return int(element.get(LINE_ATTRIBUTE, "0"))


# Commands.

def sysprep_command(unattend_path: str = r"C:\Windows\System32\Sysprep\unattend.xml") -> str:
    """Return the Sysprep command that generalizes the installation and shuts it down for capture."""
    return rf"C:\Windows\System32\Sysprep\sysprep.exe /generalize /oobe /shutdown /unattend:{unattend_path}"


def dism_capture_command(image_file: str = r"D:\Images\install.wim", capture_dir: str = "C:\\",
                         name: str = "Windows image") -> str:
    """Return the DISM command (run in Windows PE) that captures the generalized volume to a WIM file."""
    return f'Dism /Capture-Image /ImageFile:{image_file} /CaptureDir:{capture_dir} /Name:"{name}"'
