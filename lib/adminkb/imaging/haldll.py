"""Read which HAL a Windows XP machine runs from a copy of its hal.dll.

Setup copies one of several HAL files (halmacpi.dll, halaacpi.dll...) and renames it hal.dll,
but the file's version resource keeps the original name in OriginalFilename. That is the name
Explorer shows as "Original File name" on the Version tab of hal.dll's properties.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pefile

from adminkb.errors import InputError, os_error_text
from adminkb.imaging.hal import HALS, Machine

log = logging.getLogger("adminkb.imaging.haldll")

# Original HAL file name (lower case) -> hal.inf id.
HAL_FILES = {file.lower(): hal_id for hal_id, (_, file) in HALS.items()}

# A machine description that gives each HAL, so that a hal.dll can feed the HAL advisor.
_MACHINES = {
    "STANDARD_PC": Machine(acpi=False, apic=False),
    "MPS_UP": Machine(acpi=False, apic=True, processors=1),
    "MPS_MP": Machine(acpi=False, apic=True, processors=2),
    "ACPIPIC_UP": Machine(acpi=True, apic=False),
    "ACPIAPIC_UP": Machine(acpi=True, apic=True, processors=1),
    "ACPIAPIC_MP": Machine(acpi=True, apic=True, processors=2),
}


@dataclass(frozen=True)
class HalFile:
    """A hal.dll read from disk: its original file name, file version and the HAL it is."""

    path: str
    original_filename: str
    file_version: str
    hal_id: str

    @property
    def device_manager_name(self) -> str:
        return HALS[self.hal_id][0]

    def machine(self) -> Machine:
        """Return a machine description that gives this HAL, for `advise_hal`."""
        return _MACHINES[self.hal_id]


def read_hal_dll(path: str | Path) -> HalFile:
    """Read a copied hal.dll and return which HAL it is. Raises InputError on an unusable file."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InputError("imaging.haldll.unreadable", value=source, reason=os_error_text(error),
                         next_key="imaging.haldll.copy_next") from None
    return read_hal_bytes(data, source=source)


def read_hal_bytes(data: bytes, source: str = "hal.dll") -> HalFile:
    """Return which HAL the PE file in `data` is, from its version resource."""
    if not data:
        raise InputError("imaging.haldll.empty", value=source, next_key="imaging.haldll.copy_next")
    try:
        pe = pefile.PE(data=data, fast_load=True)
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]])
    except pefile.PEFormatError as error:
        raise InputError("imaging.haldll.not_pe", value=source, reason=str(error).strip("'\""),
                         next_key="imaging.haldll.copy_next") from None
    strings = _version_strings(pe)
    original = strings.get("OriginalFilename", "").strip()
    if not original:
        raise InputError("imaging.haldll.no_original_name", value=source, next_key="imaging.haldll.copy_next")
    hal_id = HAL_FILES.get(original.lower())
    if hal_id is None:
        raise InputError("imaging.haldll.not_hal", value=source, name=original, known=", ".join(sorted(HAL_FILES)))
    version = _fixed_version(pe) or strings.get("FileVersion", "").strip()
    log.debug("%s is %s (%s, version %s)", source, hal_id, original, version)
    return HalFile(source, original, version, hal_id)


def _version_strings(pe: pefile.PE) -> dict[str, str]:
    strings: dict[str, str] = {}
    for info in getattr(pe, "FileInfo", None) or []:
        for entry in info:
            if getattr(entry, "Key", b"") != b"StringFileInfo":
                continue
            for table in entry.StringTable:
                for key, value in table.entries.items():
                    strings.setdefault(key.decode("utf-8", "replace"), value.decode("utf-8", "replace"))
    return strings


def _fixed_version(pe: pefile.PE) -> str | None:
    fixed = getattr(pe, "VS_FIXEDFILEINFO", None)
    if not fixed:
        return None
    info = fixed[0]
    return (f"{info.FileVersionMS >> 16}.{info.FileVersionMS & 0xFFFF}."
            f"{info.FileVersionLS >> 16}.{info.FileVersionLS & 0xFFFF}")
