"""Registry value types and `RegValue`, the byte-exact value shared by the reader, writer and model.

Type numbers follow Winnt.h (Microsoft's "Registry Type Values" table in MS-RPRN 2.2.3.9). A value
keeps the raw type number and the bytes as the registry stores them, so strings are UTF-16LE with
their terminator whatever the .reg file version was. `decoded` is only a view of those bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

REG_NONE = 0
REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_DWORD_BIG_ENDIAN = 5
REG_LINK = 6
REG_MULTI_SZ = 7
REG_RESOURCE_LIST = 8
REG_FULL_RESOURCE_DESCRIPTOR = 9
REG_RESOURCE_REQUIREMENTS_LIST = 10
REG_QWORD = 11

TYPE_NAMES = {
    REG_NONE: "REG_NONE",
    REG_SZ: "REG_SZ",
    REG_EXPAND_SZ: "REG_EXPAND_SZ",
    REG_BINARY: "REG_BINARY",
    REG_DWORD: "REG_DWORD",
    REG_DWORD_BIG_ENDIAN: "REG_DWORD_BIG_ENDIAN",
    REG_LINK: "REG_LINK",
    REG_MULTI_SZ: "REG_MULTI_SZ",
    REG_RESOURCE_LIST: "REG_RESOURCE_LIST",
    REG_FULL_RESOURCE_DESCRIPTOR: "REG_FULL_RESOURCE_DESCRIPTOR",
    REG_RESOURCE_REQUIREMENTS_LIST: "REG_RESOURCE_REQUIREMENTS_LIST",
    REG_QWORD: "REG_QWORD",
}

# `hex(n):` accepts any 32-bit type number, and regedit rejects larger ones.
MAX_TYPE_NUMBER = 0xFFFFFFFF

# Types whose data is UTF-16LE text in the registry (REG_LINK has no terminator by convention).
TEXT_TYPES = frozenset({REG_SZ, REG_EXPAND_SZ, REG_LINK})

# Python's codec name for registry text. "surrogatepass" keeps unpaired surrogates, which the
# registry can hold, instead of failing on them.
UTF16 = "utf-16-le"
UTF16_ERRORS = "surrogatepass"


def type_name(type_number: int) -> str:
    """Return the REG_* name of a type number, or its hex form (`0x00000100`) for other numbers."""
    return TYPE_NAMES.get(type_number, f"0x{type_number:08x}")


def decode_utf16(data: bytes) -> str | None:
    """Return `data` decoded as UTF-16LE (unpaired surrogates kept), or None for an odd length."""
    if len(data) % 2:
        return None
    return data.decode(UTF16, UTF16_ERRORS)


def encode_utf16(text: str) -> bytes:
    return text.encode(UTF16, UTF16_ERRORS)


@dataclass(frozen=True)
class RegValue:
    """One registry value: the raw type number and the data bytes as the registry stores them."""

    type: int
    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.type, int) or not 0 <= self.type <= MAX_TYPE_NUMBER:
            raise ValueError(f"registry type number must be 0..0xFFFFFFFF, got {self.type!r}")
        if not isinstance(self.data, bytes):
            raise TypeError(f"registry data must be bytes, got {type(self.data).__name__}")

    @classmethod
    def string(cls, text: str, type_number: int = REG_SZ) -> RegValue:
        """Build a string value (REG_SZ by default) stored as UTF-16LE with its terminator."""
        return cls(type_number, encode_utf16(text) + b"\0\0")

    @classmethod
    def expand_string(cls, text: str) -> RegValue:
        return cls.string(text, REG_EXPAND_SZ)

    @classmethod
    def multi_string(cls, items: Iterable[str]) -> RegValue:
        """Build a REG_MULTI_SZ value: each string ends with NUL and the list ends with one more."""
        items = list(items)
        for item in items:
            if "\0" in item:
                raise ValueError(f"a REG_MULTI_SZ string cannot contain NUL: {item!r}")
        return cls(REG_MULTI_SZ, encode_utf16("".join(item + "\0" for item in items) + "\0"))

    @classmethod
    def dword(cls, number: int) -> RegValue:
        return cls(REG_DWORD, _check_range(number, 32).to_bytes(4, "little"))

    @classmethod
    def dword_big_endian(cls, number: int) -> RegValue:
        return cls(REG_DWORD_BIG_ENDIAN, _check_range(number, 32).to_bytes(4, "big"))

    @classmethod
    def qword(cls, number: int) -> RegValue:
        return cls(REG_QWORD, _check_range(number, 64).to_bytes(8, "little"))

    @classmethod
    def binary(cls, data: bytes) -> RegValue:
        return cls(REG_BINARY, bytes(data))

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    @property
    def decoded(self) -> str | int | list[str] | bytes:
        """Return the data as the type suggests: str, int, list[str], or bytes when it does not fit.

        Strings lose one trailing terminator. Numbers need exactly 4 (DWORD) or 8 (QWORD) bytes;
        a REG_DWORD of any other length, like any binary type, comes back as bytes.
        """
        if self.type in TEXT_TYPES:
            text = decode_utf16(self.data)
            if text is None:
                return self.data
            return text[:-1] if text.endswith("\0") else text
        if self.type == REG_MULTI_SZ:
            text = decode_utf16(self.data)
            return self.data if text is None else _split_multi_string(text)
        if self.type == REG_DWORD and len(self.data) == 4:
            return int.from_bytes(self.data, "little")
        if self.type == REG_DWORD_BIG_ENDIAN and len(self.data) == 4:
            return int.from_bytes(self.data, "big")
        if self.type == REG_QWORD and len(self.data) == 8:
            return int.from_bytes(self.data, "little")
        return self.data


def _check_range(number: int, bits: int) -> int:
    if not isinstance(number, int) or not 0 <= number < (1 << bits):
        raise ValueError(f"a {bits}-bit registry number must be 0..{(1 << bits) - 1}, got {number!r}")
    return number


def _split_multi_string(text: str) -> list[str]:
    """Split REG_MULTI_SZ text ("a\\0b\\0\\0") into its strings, tolerating a missing terminator."""
    if text.endswith("\0"):
        text = text[:-1]
    if not text:
        return []
    items = text.split("\0")
    if items[-1] == "":
        items.pop()
    return items
