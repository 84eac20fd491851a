"""Check a termsrv.dll (or any PE file): fixed file version, string-table version, SHA-256, machine.

The version that Windows compares is the fixed one in VS_FIXEDFILEINFO. The string table's
FileVersion is free text that a build tool or an editor can set to anything, so it is reported
only as a second opinion and flagged when its leading number differs from the fixed version.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pefile

from adminkb.errors import InputError, os_error_text

log = logging.getLogger("adminkb.termsrv")

# The build that the community method installs: termsrv.dll from a Windows XP SP2 beta.
METHOD_BUILD = (5, 1, 2600, 2055)
# Windows XP (32-bit) is version 5.1, build 2600. XP Professional x64 is 5.2.3790, which the method
# does not cover.
XP_VERSION = (5, 1, 2600)

APPLICABILITY_METHOD_BUILD = "method_build"
APPLICABILITY_XP_BUILD = "xp_build"
APPLICABILITY_OTHER = "other"

MACHINE_NAMES = {
    0x014C: "x86 (i386)",
    0x8664: "x64 (AMD64)",
    0xAA64: "ARM64",
    0x01C4: "ARMv7 (ARMNT)",
    0x0200: "IA-64",
}
MACHINE_I386 = 0x014C

_RESOURCE_DIRECTORY = pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]
_LEADING_VERSION = re.compile(r"\s*(\d+)\s*[.,]\s*(\d+)\s*[.,]\s*(\d+)\s*[.,]\s*(\d+)")


@dataclass(frozen=True)
class PeCheck:
    """The result of `check_pe` for one PE file.

    Versions are dotted strings ("5.1.2600.2055"). `string_file_version` is the string table's
    FileVersion as written, and `string_version_differs` is true when its leading four numbers
    are missing or differ from `file_version`. `applicability` is one of `method_build` (the
    build the method installs), `xp_build` (another 32-bit XP build, which the method replaces)
    or `other`.
    """

    path: str
    size: int
    sha256: str
    machine: int
    machine_name: str
    file_version: str
    product_version: str
    string_file_version: str | None
    string_version_differs: bool
    original_filename: str | None
    applicability: str

    @property
    def file_version_tuple(self) -> tuple[int, int, int, int]:
        major, minor, build, revision = (int(part) for part in self.file_version.split("."))
        return major, minor, build, revision

    def to_dict(self) -> dict[str, object]:
        document = asdict(self)
        document["machine"] = f"0x{self.machine:04x}"
        return document


def check_pe(path: str | Path) -> PeCheck:
    """Read the PE file at `path` and return its versions, hash, size and machine type.

    Raises InputError when the file is missing or unreadable, empty, not a PE file, shorter than
    its section table requires (truncated), or has no version resource.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        log.info("cannot read %s: %s", path, error)
        raise InputError("termsrv.pe.unreadable", value=str(path), reason=os_error_text(error),
                         next_key="termsrv.pe.unreadable_next") from error
    return check_pe_bytes(data, source=str(path))


def check_pe_bytes(data: bytes, *, source: str = "<memory>") -> PeCheck:
    """Check PE file contents held in memory, with the errors of `check_pe`."""
    if not data:
        raise InputError("termsrv.pe.empty", value=source, next_key="termsrv.pe.copy_again_next")
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except pefile.PEFormatError as error:
        log.info("%s is not a PE file: %s", source, error)
        raise InputError("termsrv.pe.not_pe", value=source, reason=str(error).strip("'\""),
                         next_key="termsrv.pe.not_pe_next") from None
    try:
        _check_complete(pe, len(data), source)
        pe.parse_data_directories(directories=[_RESOURCE_DIRECTORY])
        fixed = _fixed_file_info(pe, source)
        strings = _string_table(pe)
        machine = pe.FILE_HEADER.Machine
    finally:
        pe.close()

    file_version = _dotted(fixed.FileVersionMS, fixed.FileVersionLS)
    string_version = strings.get("FileVersion")
    check = PeCheck(
        path=source,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        machine=machine,
        machine_name=MACHINE_NAMES.get(machine) or pefile.MACHINE_TYPE.get(machine) or f"0x{machine:04x}",
        file_version=file_version,
        product_version=_dotted(fixed.ProductVersionMS, fixed.ProductVersionLS),
        string_file_version=string_version,
        string_version_differs=string_version is not None and _leading_version(string_version) != file_version,
        original_filename=strings.get("OriginalFilename"),
        applicability=classify_build(file_version, machine),
    )
    log.debug("checked %s: version %s, %s, %d bytes", source, file_version, check.machine_name, check.size)
    return check


def classify_build(file_version: str, machine: int) -> str:
    """Return whether a fixed file version is the method's build, another 32-bit XP build, or neither."""
    parts = tuple(int(part) for part in file_version.split("."))
    if machine != MACHINE_I386:
        return APPLICABILITY_OTHER
    if parts == METHOD_BUILD:
        return APPLICABILITY_METHOD_BUILD
    if parts[:3] == XP_VERSION:
        return APPLICABILITY_XP_BUILD
    return APPLICABILITY_OTHER


def _check_complete(pe: pefile.PE, size: int, source: str) -> None:
    """Raise InputError when a section's raw data ends beyond the end of the file."""
    needed = max((section.PointerToRawData + section.SizeOfRawData for section in pe.sections), default=0)
    if needed > size:
        raise InputError("termsrv.pe.truncated", value=source, size=size, needed=needed,
                         next_key="termsrv.pe.copy_again_next")


def _fixed_file_info(pe: pefile.PE, source: str):
    # pefile has kept VS_FIXEDFILEINFO as a list (one entry a version resource) since 2018.
    found = getattr(pe, "VS_FIXEDFILEINFO", None)
    if not found:
        raise InputError("termsrv.pe.no_version", value=source, next_key="termsrv.pe.no_version_next")
    return found[0]


def _string_table(pe: pefile.PE) -> dict[str, str]:
    """Return the entries of the first string table of the first version resource."""
    for info_list in getattr(pe, "FileInfo", None) or []:
        for info in info_list:
            for table in getattr(info, "StringTable", None) or []:
                return {key.decode("utf-8", "replace"): value.decode("utf-8", "replace")
                        for key, value in table.entries.items()}
    return {}


def _dotted(most_significant: int, least_significant: int) -> str:
    return (f"{most_significant >> 16}.{most_significant & 0xFFFF}."
            f"{least_significant >> 16}.{least_significant & 0xFFFF}")


def _leading_version(text: str) -> str | None:
    """Return the four numbers a string-table version starts with ("5.1.2600.2055 (xpsp...)")."""
    match = _LEADING_VERSION.match(text)
    if match is None:
        return None
    return ".".join(str(int(group)) for group in match.groups())
