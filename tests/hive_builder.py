"""Write small registry hive files (the regf format) for tests of code that reads hives with regipy.

No maintained PyPI package writes hives, and none of them ships a SYSTEM hive as package data, so
the tests build their own. Only what readers need is written: the base block with its checksum,
one hive bin, key nodes (nk) with ASCII names, `lf` subkey lists, value lists and values (vk).
Data of up to 4 bytes sits inside the value cell and longer data in a cell of its own (no big-data
cells, so values stay under 16 KB). Field layout as in the Kaitai Struct description `windows/regf.ksy`
(github.com/kaitai-io/kaitai_struct_formats).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HBIN_START = 4096
HBIN_HEADER = 32
NO_OFFSET = 0xFFFFFFFF
KEY_COMP_NAME = 0x0020
KEY_HIVE_ENTRY = 0x0004
KEY_NO_DELETE = 0x0008
VALUE_COMP_NAME = 0x0001
DATA_IN_OFFSET = 0x80000000


@dataclass
class HiveKey:
    """A key to write: its name, values as (name, type, data) and subkeys."""

    name: str
    values: list[tuple[str, int, bytes]] = field(default_factory=list)
    subkeys: list[HiveKey] = field(default_factory=list)

    def key(self, path: str) -> HiveKey:
        """Return the subkey at a backslash path, creating the missing keys."""
        current = self
        for part in path.split("\\"):
            found = next((child for child in current.subkeys if child.name.lower() == part.lower()), None)
            if found is None:
                found = HiveKey(part)
                current.subkeys.append(found)
            current = found
        return current

    def set_dword(self, name: str, number: int) -> HiveKey:
        self.values.append((name, 4, struct.pack("<I", number)))
        return self


class _Cells:
    """Cells appended to the hive bin, addressed by their offset from the start of the bins."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, payload: bytes) -> int:
        offset = HBIN_HEADER + len(self.data)
        size = 4 + len(payload)
        size += -size % 8
        self.data += struct.pack("<i", -size) + payload + b"\0" * (size - 4 - len(payload))
        return offset

    def patch(self, offset: int, position: int, number: int) -> None:
        start = offset - HBIN_HEADER + 4 + position
        self.data[start:start + 4] = struct.pack("<I", number)


def _node(flags: int, parent: int, name: bytes, subkey_count: int, subkey_list: int, value_count: int,
          value_list: int) -> bytes:
    return (b"nk" + struct.pack("<HQIIIIIIIIIIIIIIIHH", flags, 0, 0, parent, subkey_count, 0, subkey_list, NO_OFFSET,
                                value_count, value_list, NO_OFFSET, NO_OFFSET, 0, 0, 0, 0, 0, len(name), 0)
            + name)


def _write_key(cells: _Cells, key: HiveKey, parent: int, root: bool) -> int:
    value_offsets = []
    for name, value_type, data in key.values:
        encoded = name.encode("ascii")
        if len(data) <= 4:
            size, data_offset = len(data) | DATA_IN_OFFSET, struct.unpack("<I", data.ljust(4, b"\0"))[0]
        else:
            size, data_offset = len(data), cells.add(data)
        value_offsets.append(cells.add(b"vk" + struct.pack("<HIIIHH", len(encoded), size, data_offset, value_type,
                                                           VALUE_COMP_NAME, 0) + encoded))
    value_list = cells.add(b"".join(struct.pack("<I", offset) for offset in value_offsets)) if value_offsets else NO_OFFSET
    flags = KEY_COMP_NAME | (KEY_HIVE_ENTRY | KEY_NO_DELETE if root else 0)
    name = key.name.encode("ascii")
    node = cells.add(_node(flags, parent, name, 0, NO_OFFSET, len(value_offsets), value_list))
    children = sorted(key.subkeys, key=lambda child: child.name.upper())
    if children:
        offsets = [_write_key(cells, child, node, False) for child in children]
        entries = b"".join(struct.pack("<I", offset) + child.name.encode("ascii")[:4].ljust(4, b"\0")
                           for offset, child in zip(offsets, children))
        subkey_list = cells.add(b"lf" + struct.pack("<H", len(children)) + entries)
        # Subkey count at byte 20 and list offset at byte 28 of the node, after the cell size.
        cells.patch(node, 20, len(children))
        cells.patch(node, 28, subkey_list)
    return node


def build_hive(root: HiveKey, file_name: str = "SYSTEM") -> bytes:
    """Return the bytes of a hive file whose root key is `root`."""
    cells = _Cells()
    root_offset = _write_key(cells, root, NO_OFFSET, True)
    bin_size = HBIN_HEADER + len(cells.data)
    bin_size += -bin_size % 4096
    free = bin_size - HBIN_HEADER - len(cells.data)
    if free:
        cells.data += struct.pack("<i", free) + b"\0" * (free - 4)
    hbin = b"hbin" + struct.pack("<III", 0, bin_size, 0) + b"\0" * 16 + bytes(cells.data)

    base = bytearray(4096)
    struct.pack_into("<4sIIQIIIIIII", base, 0, b"regf", 1, 1, 0, 1, 5, 0, 1, root_offset - 0, bin_size, 1)
    base[48:48 + 64] = file_name.encode("utf-16-le")[:64].ljust(64, b"\0")
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(base[:508])):
        checksum ^= word
    checksum = {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(checksum, checksum)
    struct.pack_into("<I", base, 508, checksum)
    return bytes(base) + hbin
