"""Generate a sysprep.inf for Windows XP Mini-Setup from a form.

The form checks each value the way the linter does (computer name bytes and characters, product
key shape, HAL id against the key), so a generated file with a workgroup and no plain-text
password lints clean. No value may contain a line break or another control character, because
one would start a new line, section or key in the file. Lines end in CRLF. The file is ASCII
when every value is ASCII, otherwise UTF-16LE with a byte-order mark, which Setup reads on any
code page.
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from dataclasses import dataclass, fields
from pathlib import Path

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.imaging.sysprep import (
    MAX_ADMIN_PASSWORD, MAX_COMPUTER_NAME, PRODUCT_KEY, describe_characters, netbios_invalid, netbios_length,
)
from adminkb.imaging.sysprep_reference import MULTIPROCESSOR_HAL_IDS, TIME_ZONES, UNIPROCESSOR_HAL_IDS

# Traditional Chinese (Taiwan) regional settings: language group 9 is Traditional Chinese,
# 0404 the zh-TW locale. NOTE: the second input locale is the example value from the imaging
# notes; check which input method each layout id installs before rolling the image out.
ZH_TW_LANGUAGE_GROUP = "9"
ZH_TW_LOCALE = "00000404"
ZH_TW_INPUT_LOCALES = "0404:00000404,0404:E0090404"

# Fields whose value an error message must not show.
SECRET_FIELDS = frozenset({"product_key", "admin_password", "domain_admin_password"})
# A workgroup name is a NetBIOS domain name: at most 15 bytes, and none of the computer name's
# invalid characters nor a space (NAMETYPE_DOMAIN in MS-SRVS 2.2.2.8).
MAX_WORKGROUP = 15


@dataclass
class SysprepForm:
    """The answers a technician gives for one image; defaults fit a Taiwanese office workgroup."""

    org_name: str
    full_name: str
    product_key: str
    # One fixed name, or "*" for a random name built from org_name. sysprep.inf has no numbered
    # pattern, because every machine restored from the image reads the same file. For numbered
    # names, ComputerNamePattern gives one name a machine and write_sysprep_files one file each.
    computer_name: str = "*"
    time_zone: str = "Taipei Standard Time"
    workgroup: str | None = "WORKGROUP"
    domain: str | None = None
    domain_admin: str | None = None
    domain_admin_password: str | None = None
    admin_password: str = "*"
    traditional_chinese: bool = True
    input_locales: str = ZH_TW_INPUT_LOCALES
    install_files_path: str = r"C:\Sysprep\i386"
    oem_skip_eula: bool = True
    oem_skip_welcome: bool = True
    oem_skip_regional: bool = True
    extend_oem_partition: bool = False
    keep_page_file: bool = False
    update_installed_drivers: bool = True
    oem_pnp_drivers_path: str | None = None
    build_mass_storage_section: bool = False
    # ("UpdateUPHAL", "ACPIAPIC_UP") or ("UpdateHAL", "ACPIAPIC_MP"); None writes no HAL line.
    hal_update: tuple[str, str] | None = None

    def validate(self) -> None:
        """Raise InputError on the first value that would give a wrong or rejected sysprep.inf."""
        self._check_control_characters()
        name = self.computer_name.strip()
        if not name:
            raise InputError("imaging_sysprep.form.computer_name_empty", value=self.computer_name,
                             next_key="imaging_sysprep.form.computer_name_next")
        if name != "*":
            check_computer_name(name)
        if not PRODUCT_KEY.fullmatch(self.product_key.strip()):
            raise InputError("imaging_sysprep.form.product_key", value="",
                             next_key="imaging_sysprep.form.product_key_next")
        if self.time_zone not in TIME_ZONES:
            raise InputError("imaging_sysprep.form.time_zone", value=self.time_zone,
                             choices=", ".join(sorted(TIME_ZONES)))
        if bool(self.workgroup) == bool(self.domain):
            raise InputError("imaging_sysprep.form.workgroup_or_domain", value=f"{self.workgroup} / {self.domain}")
        if self.workgroup:
            _check_workgroup(self.workgroup.strip())
        if self.admin_password != "*" and len(self.admin_password) > MAX_ADMIN_PASSWORD:
            raise InputError("imaging_sysprep.form.admin_password_long", value=len(self.admin_password),
                             maximum=MAX_ADMIN_PASSWORD)
        if '"' in self.org_name + self.full_name + self.admin_password:
            raise InputError("imaging_sysprep.form.quote_in_value", value='"')
        if self.hal_update is not None:
            key, hal_id = self.hal_update
            allowed = {"UpdateUPHAL": UNIPROCESSOR_HAL_IDS, "UpdateHAL": MULTIPROCESSOR_HAL_IDS}.get(key)
            if allowed is None or hal_id not in allowed:
                raise InputError("imaging_sysprep.form.hal_update", value=f"{key} = {hal_id}",
                                 up=", ".join(UNIPROCESSOR_HAL_IDS), mp=", ".join(MULTIPROCESSOR_HAL_IDS))


    def _check_control_characters(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            texts = value if isinstance(value, tuple) else (value,)
            for text in texts:
                if not isinstance(text, str):
                    continue
                position = next((index for index, character in enumerate(text, start=1)
                                 if unicodedata.category(character) in ("Cc", "Zl", "Zp")), None)
                if position is None:
                    continue
                if field.name in SECRET_FIELDS:
                    shown = message("imaging_sysprep.form.hidden_value")
                else:
                    shown = text.encode("unicode_escape").decode("ascii")
                raise InputError("imaging_sysprep.form.control_character", value=shown,
                                 field=field_label(field.name), position=position,
                                 character=f"U+{ord(text[position - 1]):04X}",
                                 next_key="imaging_sysprep.form.control_character_next")


def field_label(name: str) -> str:
    """Return the label of a form field in the user's language, such as 組織名稱 for org_name."""
    return message(f"imaging_sysprep.form.field.{name}")


def check_computer_name(name: str) -> None:
    """Raise InputError when `name` is not a usable NetBIOS computer name (15 bytes in cp950, valid characters)."""
    length = netbios_length(name)
    if length > MAX_COMPUTER_NAME:
        raise InputError("imaging_sysprep.form.computer_name_long", value=name, length=length,
                         characters=len(name), maximum=MAX_COMPUTER_NAME,
                         next_key="imaging_sysprep.form.computer_name_next")
    invalid = netbios_invalid(name)
    if invalid:
        raise InputError("imaging_sysprep.form.computer_name_invalid", value=name,
                         characters=describe_characters(invalid),
                         next_key="imaging_sysprep.form.computer_name_next")


def _check_workgroup(name: str) -> None:
    length = netbios_length(name)
    if length > MAX_WORKGROUP:
        raise InputError("imaging_sysprep.form.workgroup_long", value=name, length=length, maximum=MAX_WORKGROUP,
                         next_key="imaging_sysprep.form.workgroup_next")
    invalid = netbios_invalid(name)
    if " " in name:
        invalid.append(" ")
    if invalid:
        raise InputError("imaging_sysprep.form.workgroup_invalid", value=name,
                         characters=describe_characters(invalid), next_key="imaging_sysprep.form.workgroup_next")


def hal_update_line(key: str, hal_id: str) -> str:
    """Return the [Unattended] line that makes Mini-Setup load the HAL `hal_id` from hal.inf."""
    return f'{key} = "{hal_id},%WINDIR%\\Inf\\Hal.inf"'


def _yes_no(flag: bool) -> str:
    return "Yes" if flag else "No"


def generate_sysprep(form: SysprepForm) -> str:
    """Return the sysprep.inf text for `form` (CRLF line ends). Raises InputError on a bad value."""
    form.validate()
    unattended = [f"OemSkipEula = {_yes_no(form.oem_skip_eula)}",
                  f"InstallFilesPath = {form.install_files_path}",
                  f"ExtendOemPartition = {1 if form.extend_oem_partition else 0}",
                  f"KeepPageFile = {1 if form.keep_page_file else 0}",
                  f"UpdateInstalledDrivers = {_yes_no(form.update_installed_drivers)}"]
    if form.oem_pnp_drivers_path:
        unattended.append(f"OemPnPDriversPath = {form.oem_pnp_drivers_path}")
    if form.hal_update is not None:
        unattended.append(hal_update_line(*form.hal_update))
    admin = "*" if form.admin_password == "*" else f'"{form.admin_password}"'
    sections: list[tuple[str, list[str]]] = [
        ("Unattended", unattended),
        ("GuiUnattended", [f"AdminPassword = {admin}",
                           f"OEMSkipRegional = {int(form.oem_skip_regional)}",
                           f"TimeZone = {TIME_ZONES[form.time_zone]}",
                           f"OEMSkipWelcome = {int(form.oem_skip_welcome)}"]),
        ("UserData", [f'FullName = "{form.full_name}"',
                      f'OrgName = "{form.org_name}"',
                      f"ComputerName = {form.computer_name.strip()}",
                      f'ProductKey = "{form.product_key.strip().upper()}"']),
    ]
    if form.traditional_chinese:
        sections.append(("RegionalSettings", [f"LanguageGroup = {ZH_TW_LANGUAGE_GROUP}",
                                              f"Language = {ZH_TW_LOCALE}",
                                              f"SystemLocale = {ZH_TW_LOCALE}",
                                              f"UserLocale = {ZH_TW_LOCALE}",
                                              f"InputLocale = {form.input_locales}"]))
    if form.domain:
        identification = [f"JoinDomain = {form.domain}"]
        if form.domain_admin:
            identification.append(f"DomainAdmin = {form.domain_admin}")
        if form.domain_admin_password:
            identification.append(f"DomainAdminPassword = {form.domain_admin_password}")
    else:
        identification = [f"JoinWorkgroup = {form.workgroup}"]
    sections.append(("Identification", identification))
    sections.append(("Networking", ["InstallDefaultComponents = Yes"]))
    if form.build_mass_storage_section:
        sections.append(("Sysprep", ["BuildMassStorageSection = Yes"]))
        sections.append(("SysprepMassStorage", []))
    lines = [";SetupMgrTag"]
    for name, entries in sections:
        lines.append(f"[{name}]")
        lines.extend(f"    {entry}" for entry in entries)
        lines.append("")
    return "\r\n".join(lines)


def encode_sysprep(text: str) -> bytes:
    """Encode answer-file text as ASCII, or as UTF-16LE with a byte-order mark when it is not ASCII."""
    if text.isascii():
        return text.encode("ascii")
    return b"\xff\xfe" + text.encode("utf-16-le")


def write_sysprep(form: SysprepForm, path: str | Path) -> Path:
    """Write the generated sysprep.inf to `path` atomically (temporary file, then rename)."""
    target = Path(path)
    data = encode_sysprep(generate_sysprep(form))
    handle, temporary = tempfile.mkstemp(prefix=".sysprep-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
