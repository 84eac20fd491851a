"""A stand-in for Windows' `winreg` module, so that the live registry read runs on Linux CI.

`build_winreg(keys)` returns a module object with the constants and the two functions that
`adminkb.termsrv.live` calls. `keys` maps a path below HKEY_LOCAL_MACHINE to the
`(name, data, type)` tuples that `winreg.EnumValue` returns, with data already decoded as winreg
returns it: int for REG_DWORD and REG_QWORD, str for REG_SZ and REG_EXPAND_SZ, a list of str for
REG_MULTI_SZ, bytes for REG_BINARY. The module has no write functions, so a
write attempt fails with AttributeError, and it records every OpenKey call and handle.
"""

from __future__ import annotations

import types

# Windows' values for these constants.
HKEY_LOCAL_MACHINE = 0x80000002
KEY_READ = 0x20019
KEY_WOW64_64KEY = 0x0100
REG_NONE = 0
REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_MULTI_SZ = 7
REG_QWORD = 11

# Windows' error numbers for a missing key, a closed handle and the end of the value list.
ERROR_FILE_NOT_FOUND = 2
ERROR_INVALID_HANDLE = 6
ERROR_NO_MORE_ITEMS = 259


class FakeKey:
    """An open key: its path and values, and whether the caller closed it."""

    def __init__(self, path: str, values: list[tuple[str, object, int]]) -> None:
        self.path = path
        self.values = values
        self.closed = False

    def __enter__(self) -> FakeKey:
        return self

    def __exit__(self, *exception: object) -> None:
        self.closed = True


def build_winreg(keys: dict[str, list[tuple[str, object, int]]]) -> types.ModuleType:
    """Return a `winreg` stand-in serving `keys` (paths compare case-insensitively, as in Windows)."""
    module = types.ModuleType("winreg")
    for name, value in globals().items():
        if name.startswith(("HKEY_", "KEY_", "REG_")):
            setattr(module, name, value)
    folded = {path.upper(): (path, values) for path, values in keys.items()}
    module.opened = []
    module.handles = []

    def open_key(root: int, sub_key: str, reserved: int = 0, access: int = KEY_READ) -> FakeKey:
        module.opened.append((root, sub_key, access))
        if root != HKEY_LOCAL_MACHINE or sub_key.upper() not in folded:
            raise FileNotFoundError(ERROR_FILE_NOT_FOUND, "The system cannot find the file specified")
        path, values = folded[sub_key.upper()]
        handle = FakeKey(path, values)
        module.handles.append(handle)
        return handle

    def enum_value(handle: FakeKey, index: int) -> tuple[str, object, int]:
        if handle.closed:
            raise OSError(ERROR_INVALID_HANDLE, "The handle is invalid")
        if index >= len(handle.values):
            raise OSError(ERROR_NO_MORE_ITEMS, "No more data is available")
        return handle.values[index]

    module.OpenKey = open_key
    module.EnumValue = enum_value
    return module
