"""Reading the HAL type from a copied hal.dll's version resource (OriginalFilename)."""

from __future__ import annotations

import importlib.resources
import struct
from pathlib import Path

import pefile
import pytest

from adminkb.errors import InputError
from adminkb.imaging.hal import HALS, SUPPORTED, Machine, advise_hal
from adminkb.imaging.haldll import read_hal_bytes, read_hal_dll


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


# Real PE files to carry a test version resource: pip's bundled Windows launchers.

def launcher_bytes() -> bytes:
    path = Path(str(importlib.resources.files("pip._vendor.distlib") / "t32.exe"))
    if not path.exists():
        pytest.skip("this pip has no t32.exe launcher")
    return path.read_bytes()


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _block(key: str, value: bytes = b"", value_length: int = 0, text: bool = False,
           children: tuple[bytes, ...] = ()) -> bytes:
    """Build one VS_VERSIONINFO-style block: length, value length, type, key, value, children."""
    body = _pad(struct.pack("<HHH", 0, value_length, 1 if text else 0) + (key + "\0").encode("utf-16-le"))
    body += value
    if children:
        body = _pad(body) + b"".join(_pad(child) for child in children[:-1]) + children[-1]
    return struct.pack("<H", len(body)) + body[2:]


def _string(key: str, value: str) -> bytes:
    return _block(key, (value + "\0").encode("utf-16-le"), len(value) + 1, text=True)


def version_resource(strings: dict[str, str], version: tuple[int, int, int, int] = (5, 1, 2600, 5512)) -> bytes:
    """Build a VS_VERSIONINFO resource with a fixed file version and the given string table."""
    high, low = (version[0] << 16) | version[1], (version[2] << 16) | version[3]
    fixed = struct.pack("<13I", 0xFEEF04BD, 0x00010000, high, low, high, low, 0x3F, 0, 0x40004, 3, 0, 0, 0)
    table = _block("040904B0", text=True, children=tuple(_string(key, value) for key, value in strings.items()))
    string_info = _block("StringFileInfo", text=True, children=(table,))
    var_info = _block("VarFileInfo", text=True,
                      children=(_block("Translation", struct.pack("<HH", 0x0409, 0x04B0), 4),))
    return _block("VS_VERSION_INFO", fixed, len(fixed), children=(string_info, var_info))


def with_version_resource(data: bytes, resource: bytes) -> bytes:
    """Return a copy of a PE file whose version resource is replaced by `resource` (no larger)."""
    pe = pefile.PE(data=data)
    version_type = next(kind for kind in pe.DIRECTORY_ENTRY_RESOURCE.entries
                        if kind.id == pefile.RESOURCE_TYPE["RT_VERSION"])
    entry = version_type.directory.entries[0].directory.entries[0].data.struct
    assert len(resource) <= entry.Size
    offset = pe.get_offset_from_rva(entry.OffsetToData)
    entry.Size = len(resource)
    out = bytearray(pe.write())
    out[offset: offset + len(resource)] = resource
    return bytes(out)


def fake_hal(original_filename: str) -> bytes:
    strings = {"FileVersion": "5.1.2600.5512 (xpsp.080413-2111)", "OriginalFilename": original_filename}
    return with_version_resource(launcher_bytes(), version_resource(strings))


@pytest.mark.parametrize("hal_id", sorted(HALS))
def test_reads_each_hal(hal_id, tmp_path):
    original = HALS[hal_id][1]
    path = tmp_path / "hal.dll"
    path.write_bytes(fake_hal(original))
    hal = read_hal_dll(path)
    assert hal.hal_id == hal_id
    assert hal.original_filename == original
    assert hal.file_version == "5.1.2600.5512"
    assert hal.device_manager_name == HALS[hal_id][0]
    assert hal.machine().hal() == hal_id


def test_original_name_case_ignored():
    assert read_hal_bytes(fake_hal("HALMACPI.DLL")).hal_id == "ACPIAPIC_MP"


def test_hal_dll_feeds_advisor():
    source = read_hal_bytes(fake_hal("halaacpi.dll")).machine()
    advice = advise_hal(source, Machine(acpi=True, apic=True, processors=2))
    assert advice.verdict == SUPPORTED
    assert advice.update_line == 'UpdateHAL = "ACPIAPIC_MP,%WINDIR%\\Inf\\Hal.inf"'


def test_other_dll_not_hal():
    with pytest.raises(InputError) as raised:
        read_hal_bytes(launcher_bytes(), source="t32.exe")
    assert raised.value.key == "imaging.haldll.not_hal"
    assert "t32.exe" in str(raised.value)


def test_missing_original_name():
    data = with_version_resource(launcher_bytes(), version_resource({"FileVersion": "5.1.2600.5512"}))
    with pytest.raises(InputError) as raised:
        read_hal_bytes(data)
    assert raised.value.key == "imaging.haldll.no_original_name"


def test_no_version_resource():
    pe = pefile.PE(data=launcher_bytes())
    entry = pe.OPTIONAL_HEADER.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]]
    entry.VirtualAddress = 0
    entry.Size = 0
    with pytest.raises(InputError) as raised:
        read_hal_bytes(bytes(pe.write()))
    assert raised.value.key == "imaging.haldll.no_original_name"


def test_text_file_not_pe(tmp_path):
    path = tmp_path / "hal.dll"
    path.write_text("not a DLL", encoding="ascii")
    with pytest.raises(InputError) as raised:
        read_hal_dll(path)
    assert raised.value.key == "imaging.haldll.not_pe"
    assert raised.value.exit_status == 2


def test_empty_file(tmp_path):
    path = tmp_path / "hal.dll"
    path.write_bytes(b"")
    with pytest.raises(InputError) as raised:
        read_hal_dll(path)
    assert raised.value.key == "imaging.haldll.empty"


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as raised:
        read_hal_dll(tmp_path / "absent.dll")
    assert raised.value.key == "imaging.haldll.unreadable"
    assert "下一步" in str(raised.value)


def test_truncated_copy_reported():
    data = fake_hal("halmacpi.dll")
    with pytest.raises(InputError) as raised:
        read_hal_bytes(data[: len(data) // 2])
    assert raised.value.key == "imaging.haldll.no_original_name"
    assert "重新複製" in str(raised.value)
