"""sysprep.inf for Sysprep 2.0 (Windows XP): read, lint and generate.

`lint_sysprep(path)` returns every finding with its line, rule id, severity and fix; the texts
come from the catalog (`imaging_sysprep.rule.<rule>.problem` and `.fix`). A file that cannot be
read at all (missing, empty, binary) raises InputError instead, so the CLI exits with 2.
Setup reads answer files in the ANSI code page or as UTF-16LE with a byte-order mark.
NOTE: that is how the XP INF parser reads INF files; the encoding findings were not replayed
against a running XP Mini-Setup.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.imaging.sysprep_reference import (
    KEY_HOME, MULTIPROCESSOR_HAL_IDS, PARAMS_SECTION, TIME_ZONES, UNATTEND_ONLY_LOWER, UNIPROCESSOR_HAL_IDS,
    is_known_key, section_spelling, takes_free_keys,
)

log = logging.getLogger("adminkb.imaging.sysprep")

ERROR = "error"
WARNING = "warning"

# Rule id -> severity. Each rule has `imaging_sysprep.rule.<id>.problem` and `.fix` messages.
RULES: dict[str, str] = {
    "encoding": ERROR,
    "outside-section": ERROR,
    "malformed-line": ERROR,
    "duplicate-section": ERROR,
    "duplicate-key": ERROR,
    "wrong-section": ERROR,
    "unattend-only": ERROR,
    "timezone-hex": ERROR,
    "timezone-invalid": ERROR,
    "product-key-unquoted": ERROR,
    "product-key-malformed": ERROR,
    "computer-name-length": ERROR,
    "computer-name-invalid": ERROR,
    "unterminated-quote": ERROR,
    "admin-password-format": ERROR,
    "hal-id-mismatch": ERROR,
    "hal-id-unknown": ERROR,
    "regional-without-installfilespath": ERROR,
    "plaintext-password": WARNING,
    "unknown-section": WARNING,
    "unknown-key": WARNING,
}

# ANSI code page of a Traditional Chinese (Taiwan) Windows, where these files are written.
ANSI_CODEPAGE = "cp950"
# NetBIOS computer names are at most 15 bytes in the OEM code page (Microsoft's "Computer Names"
# page in the Win32 documentation), and Setup cuts longer names. The OEM code page of a
# Traditional Chinese Windows is cp950, where a Chinese character takes 2 bytes.
MAX_COMPUTER_NAME = 15
NETBIOS_CODEPAGE = "cp950"
# Characters a computer name cannot contain: the invalid set of NAMETYPE_COMPUTER in the
# Windows SMB server protocol (MS-SRVS 2.2.2.8), beside the control characters.
NETBIOS_INVALID = frozenset('"/\\[]:|<>+=;,?*')
# AdminPassword holds at most 127 characters (deployment reference, [GuiUnattended]).
MAX_ADMIN_PASSWORD = 127
PRODUCT_KEY = re.compile(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){4}", re.IGNORECASE)
HAL_VALUE = re.compile(r"\s*([A-Za-z_]+)\s*,\s*(\S.*?)\s*")
SECTION_LINE = re.compile(r"\[([^\[\]]+)\]")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BROKEN_SECTION = "\x00broken section header\x00"


@dataclass(frozen=True)
class Finding:
    """One problem in a sysprep.inf: where, which rule, how serious, and the values for its texts."""

    line: int
    rule: str
    section: str | None = None
    key: str | None = None
    values: dict[str, object] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return RULES[self.rule]

    @property
    def problem(self) -> str:
        return message(f"imaging_sysprep.rule.{self.rule}.problem", **self._fill())

    @property
    def fix(self) -> str:
        return message(f"imaging_sysprep.rule.{self.rule}.fix", **self._fill())

    def _fill(self) -> dict[str, object]:
        return {"section": self.section or "", "name": self.key or "", **self.values}

    def to_dict(self) -> dict[str, object]:
        return {"line": self.line, "rule": self.rule, "severity": self.severity,
                "section": self.section, "key": self.key, "problem": self.problem, "fix": self.fix}


@dataclass(frozen=True)
class Entry:
    """One `key = value` line; `raw_value` keeps quotes, `value` has them removed."""

    line: int
    section: str
    key: str
    raw_value: str

    @property
    def quoted(self) -> bool:
        return len(self.raw_value) >= 2 and self.raw_value.startswith('"') and self.raw_value.endswith('"')

    @property
    def value(self) -> str:
        return self.raw_value[1:-1] if self.quoted else self.raw_value


@dataclass
class LintResult:
    """Findings for one file, in line order, and the encoding it was read in."""

    source: str
    encoding: str
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == WARNING]

    @property
    def clean(self) -> bool:
        return not self.findings


def decode_sysprep(data: bytes, source: str) -> tuple[str, str, list[Finding]]:
    """Decode answer-file bytes as Setup would and return (text, encoding name, findings).

    Raises InputError when the bytes are not a text file at all.
    """
    if not data.strip():
        raise InputError("imaging_sysprep.file.empty", value=source, next_key="imaging_sysprep.file.next")
    findings: list[Finding] = []
    if data.startswith(b"\xff\xfe"):
        try:
            text, encoding = data[2:].decode("utf-16-le"), "UTF-16LE"
        except UnicodeDecodeError as error:
            raise InputError("imaging_sysprep.file.binary", value=source, reason=str(error),
                             next_key="imaging_sysprep.file.next") from None
    elif data.startswith(b"\xfe\xff"):
        text, encoding = data[2:].decode("utf-16-be", errors="replace"), "UTF-16BE"
        findings.append(Finding(1, "encoding", values={"detail": message("imaging_sysprep.encoding.utf16be")}))
    elif data.startswith(b"\xef\xbb\xbf"):
        text, encoding = data[3:].decode("utf-8", errors="replace"), "UTF-8 BOM"
        findings.append(Finding(1, "encoding", values={"detail": message("imaging_sysprep.encoding.utf8_bom")}))
    elif b"\x00" in data:
        raise InputError("imaging_sysprep.file.binary", value=source, reason=message("imaging_sysprep.file.nul"),
                         next_key="imaging_sysprep.file.next")
    else:
        text, encoding = _decode_ansi(data, findings)
    if any(ord(character) < 32 and character not in "\t\r\n\x1a" for character in text):
        raise InputError("imaging_sysprep.file.binary", value=source, reason=message("imaging_sysprep.file.control"),
                         next_key="imaging_sysprep.file.next")
    return text, encoding, findings


def _decode_ansi(data: bytes, findings: list[Finding]) -> tuple[str, str]:
    """Decode a file without byte-order mark: ASCII, cp950, or UTF-8 that Setup would misread."""
    if data.isascii():
        return data.decode("ascii"), "ASCII"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        line = _first_non_ascii_line(data)
        findings.append(Finding(line, "encoding", values={"detail": message("imaging_sysprep.encoding.utf8")}))
        return text, "UTF-8"
    try:
        return data.decode(ANSI_CODEPAGE), ANSI_CODEPAGE
    except UnicodeDecodeError:
        line = _first_non_ascii_line(data)
        findings.append(Finding(line, "encoding", values={"detail": message("imaging_sysprep.encoding.not_cp950")}))
        return data.decode(ANSI_CODEPAGE, errors="replace"), ANSI_CODEPAGE


def netbios_length(name: str) -> int:
    """Return the length of a NetBIOS name in bytes of the OEM code page (cp950).

    A character that cp950 cannot encode counts as one byte, and `netbios_invalid` reports it.
    """
    return len(name.encode(NETBIOS_CODEPAGE, errors="replace"))


def netbios_invalid(name: str) -> list[str]:
    """Return the characters of `name` that a NetBIOS computer name cannot contain, each once, in order.

    These are the MS-SRVS invalid set, control characters, and characters that cp950 cannot encode.
    """
    found: list[str] = []
    for character in name:
        if character in found:
            continue
        if (character in NETBIOS_INVALID or unicodedata.category(character) in ("Cc", "Zl", "Zp")
                or not _encodes(character)):
            found.append(character)
    return found


def _encodes(character: str) -> bool:
    try:
        character.encode(NETBIOS_CODEPAGE)
    except UnicodeEncodeError:
        return False
    return True


def describe_characters(characters: list[str]) -> str:
    """Return characters for a message: printable ones as they are, the others as U+XXXX."""
    shown = []
    for character in characters:
        if character.isprintable() and not character.isspace():
            shown.append(character)
        else:
            shown.append(f"U+{ord(character):04X}")
    return " ".join(shown)


def _first_non_ascii_line(data: bytes) -> int:
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.isascii():
            return number
    return 1


def _strip_comment(line: str) -> str:
    """Remove a `;` comment that is outside double quotes."""
    inside = False
    for index, character in enumerate(line):
        if character == '"':
            inside = not inside
        elif character == ";" and not inside:
            return line[:index]
    return line


def parse_sysprep(text: str) -> tuple[list[tuple[int, str]], list[Entry], list[Finding]]:
    """Split answer-file text into section headers (line, name), entries and syntax findings."""
    sections: list[tuple[int, str]] = []
    entries: list[Entry] = []
    findings: list[Finding] = []
    current: str | None = None
    # Only CR and LF end a line. str.splitlines would also split on characters such as U+2028
    # and shift every later line number.
    for number, raw in enumerate(LINE_BREAK.split(text), start=1):
        line = _strip_comment(raw).strip()
        if not line or line == "\x1a":
            continue
        if line.startswith("["):
            header = SECTION_LINE.fullmatch(line)
            if header is None:
                findings.append(Finding(number, "malformed-line", values={"text": raw.strip()}))
                # The lines that follow belong to a section nobody can name, so they are skipped
                # rather than reported once more under the previous section.
                current = _BROKEN_SECTION
                continue
            current = header.group(1).strip()
            sections.append((number, current))
            continue
        if current is _BROKEN_SECTION:
            continue
        if current is None:
            findings.append(Finding(number, "outside-section", values={"text": raw.strip()}))
            continue
        if line.count('"') % 2:
            # An odd number of quotes leaves a string unclosed, so Setup may read another value
            # than the one the line seems to give.
            findings.append(Finding(number, "unterminated-quote", section=current, values={"text": raw.strip()}))
            continue
        if "=" not in line:
            if section_spelling(current) is not None and not takes_free_keys(current):
                findings.append(Finding(number, "malformed-line", section=current, values={"text": raw.strip()}))
            continue
        key, _, value = line.partition("=")
        if not key.strip():
            findings.append(Finding(number, "malformed-line", section=current, values={"text": raw.strip()}))
            continue
        entries.append(Entry(number, current, key.strip(), value.strip()))
    return sections, entries, findings


def lint_text(text: str, source: str = "sysprep.inf", encoding: str = "ASCII",
              findings: list[Finding] | None = None) -> LintResult:
    """Lint decoded answer-file text and return the findings sorted by line."""
    found = list(findings or [])
    sections, entries, syntax = parse_sysprep(text)
    found.extend(syntax)
    found.extend(_check_sections(sections))
    found.extend(_check_keys(entries))
    found.extend(_check_values(entries))
    found.sort(key=lambda finding: (finding.line, finding.rule))
    log.debug("linted %s: %d findings", source, len(found))
    return LintResult(source, encoding, found)


def lint_sysprep(path: str | Path) -> LintResult:
    """Read and lint one sysprep.inf file. Raises InputError when the file cannot be read."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InputError("imaging_sysprep.file.unreadable", value=source, reason=os_error_text(error),
                         next_key="imaging_sysprep.file.next") from None
    text, encoding, findings = decode_sysprep(data, source)
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first_line in _REG_HEADERS:
        # A registry export linted as an answer file would only list every line as out of place.
        raise InputError("imaging_sysprep.file.is_reg", value=source, header=first_line,
                         next_key="imaging_sysprep.file.is_reg_next")
    return lint_text(text, source, encoding, findings)


# The first line of a .reg export, in both of regedit's formats.
_REG_HEADERS = ("Windows Registry Editor Version 5.00", "REGEDIT4")


def _check_sections(sections: list[tuple[int, str]]) -> list[Finding]:
    findings = []
    first_line: dict[str, int] = {}
    for line, name in sections:
        lower = name.lower()
        if lower in first_line:
            findings.append(Finding(line, "duplicate-section", section=name, values={"first": first_line[lower]}))
        else:
            first_line[lower] = line
        if section_spelling(name) is None:
            findings.append(Finding(line, "unknown-section", section=name))
    return findings


def _check_keys(entries: list[Entry]) -> list[Finding]:
    findings = []
    first_line: dict[tuple[str, str], int] = {}
    for entry in entries:
        identity = (entry.section.lower(), entry.key.lower())
        if identity in first_line:
            findings.append(Finding(entry.line, "duplicate-key", entry.section, entry.key,
                                    {"first": first_line[identity]}))
        else:
            first_line[identity] = entry.line
        if section_spelling(entry.section) is None:
            continue
        lower = entry.key.lower()
        if takes_free_keys(entry.section) and not PARAMS_SECTION.fullmatch(entry.section):
            # [GuiRunOnce] and the other free-form sections take any key name, but a key that
            # belongs to a keyed section (ProductKey, TimeZone...) was put there by mistake.
            if lower in KEY_HOME:
                home, spelling = KEY_HOME[lower]
                findings.append(Finding(entry.line, "wrong-section", entry.section, spelling, {"home": home}))
            continue
        if is_known_key(entry.section, entry.key):
            continue
        if lower in KEY_HOME:
            home, spelling = KEY_HOME[lower]
            findings.append(Finding(entry.line, "wrong-section", entry.section, spelling, {"home": home}))
        elif lower in UNATTEND_ONLY_LOWER:
            findings.append(Finding(entry.line, "unattend-only", entry.section, UNATTEND_ONLY_LOWER[lower]))
        else:
            findings.append(Finding(entry.line, "unknown-key", entry.section, entry.key))
    return findings


def _entries_in(entries: list[Entry], section: str) -> dict[str, Entry]:
    """Return the first entry of each key in `section`, keyed by lower-case key name."""
    found: dict[str, Entry] = {}
    for entry in entries:
        if entry.section.lower() == section.lower():
            found.setdefault(entry.key.lower(), entry)
    return found


def _check_values(entries: list[Entry]) -> list[Finding]:
    findings: list[Finding] = []
    gui = _entries_in(entries, "GuiUnattended")
    user = _entries_in(entries, "UserData")
    unattended = _entries_in(entries, "Unattended")
    identification = _entries_in(entries, "Identification")

    if "timezone" in gui:
        findings.extend(_check_time_zone(gui["timezone"]))
    if "productkey" in user:
        findings.extend(_check_product_key(user["productkey"]))
    if "computername" in user:
        findings.extend(_check_computer_name(user["computername"]))
    findings.extend(_check_passwords(gui, identification))
    for key, allowed, other in (("updateuphal", UNIPROCESSOR_HAL_IDS, MULTIPROCESSOR_HAL_IDS),
                                ("updatehal", MULTIPROCESSOR_HAL_IDS, UNIPROCESSOR_HAL_IDS)):
        if key in unattended:
            findings.extend(_check_hal(unattended[key], allowed, other))
    regional_lines = [entry.line for entry in entries if entry.section.lower() == "regionalsettings"]
    install_path = unattended.get("installfilespath")
    if regional_lines and (install_path is None or not install_path.value.strip()):
        findings.append(Finding(min(regional_lines), "regional-without-installfilespath", "RegionalSettings"))
    return findings


def _check_computer_name(entry: Entry) -> list[Finding]:
    name = entry.value.strip()
    if name == "*":
        return []
    findings = []
    length = netbios_length(name)
    if length > MAX_COMPUTER_NAME:
        findings.append(Finding(entry.line, "computer-name-length", "UserData", "ComputerName",
                                {"value": name, "length": length, "characters": len(name),
                                 "maximum": MAX_COMPUTER_NAME}))
    invalid = netbios_invalid(name)
    if invalid:
        findings.append(Finding(entry.line, "computer-name-invalid", "UserData", "ComputerName",
                                {"value": name, "characters": describe_characters(invalid)}))
    return findings


def _check_time_zone(entry: Entry) -> list[Finding]:
    value = entry.value.strip()
    if value.isdigit() or not value:
        # An empty TimeZone is legal: Mini-Setup then asks for the zone.
        return []
    digits = value[2:] if value.lower().startswith("0x") else value
    try:
        decimal = int(digits, 16)
    except ValueError:
        decimal = None
    if decimal is None:
        return [Finding(entry.line, "timezone-invalid", "GuiUnattended", "TimeZone", {"value": value})]
    names = [name for name, index in TIME_ZONES.items() if index == decimal]
    zone = names[0] if names else message("imaging_sysprep.zone_unknown")
    return [Finding(entry.line, "timezone-hex", "GuiUnattended", "TimeZone",
                    {"value": value, "decimal": decimal, "zone": zone})]


def _check_product_key(entry: Entry) -> list[Finding]:
    findings = []
    if not entry.quoted:
        findings.append(Finding(entry.line, "product-key-unquoted", "UserData", "ProductKey"))
    if not PRODUCT_KEY.fullmatch(entry.value.strip()):
        findings.append(Finding(entry.line, "product-key-malformed", "UserData", "ProductKey",
                                {"value": mask_product_key(entry.value.strip())}))
    return findings


def mask_product_key(key: str) -> str:
    """Keep only the last group of a product key, so that findings can be shared safely."""
    visible = key[-5:] if len(key) > 5 else ""
    return "*" * (len(key) - len(visible)) + visible


def _check_passwords(gui: dict[str, Entry], identification: dict[str, Entry]) -> list[Finding]:
    findings = []
    password = gui.get("adminpassword")
    encrypted = gui.get("encryptedadminpassword")
    if password is not None:
        text = password.value
        if password.raw_value.strip() != "*":
            if not password.quoted:
                findings.append(Finding(password.line, "admin-password-format", "GuiUnattended", "AdminPassword",
                                        {"detail": message("imaging_sysprep.password.unquoted")}))
            elif len(text) > MAX_ADMIN_PASSWORD:
                findings.append(Finding(password.line, "admin-password-format", "GuiUnattended", "AdminPassword",
                                        {"detail": message("imaging_sysprep.password.too_long", length=len(text),
                                                           maximum=MAX_ADMIN_PASSWORD)}))
            if encrypted is None or encrypted.value.strip().lower() != "yes":
                findings.append(Finding(password.line, "plaintext-password", "GuiUnattended", "AdminPassword"))
    domain_password = identification.get("domainadminpassword")
    if domain_password is not None and domain_password.value.strip():
        findings.append(Finding(domain_password.line, "plaintext-password", "Identification", "DomainAdminPassword"))
    return findings


def _check_hal(entry: Entry, allowed: tuple[str, ...], other: tuple[str, ...]) -> list[Finding]:
    key = "UpdateUPHAL" if allowed is UNIPROCESSOR_HAL_IDS else "UpdateHAL"
    match = HAL_VALUE.fullmatch(entry.value)
    hal_id = match.group(1).upper() if match else entry.value.strip()
    if hal_id in allowed and match:
        return []
    if hal_id in other:
        return [Finding(entry.line, "hal-id-mismatch", "Unattended", key,
                        {"value": hal_id, "allowed": ", ".join(allowed)})]
    return [Finding(entry.line, "hal-id-unknown", "Unattended", key,
                    {"value": entry.value.strip(), "allowed": ", ".join(allowed)})]
