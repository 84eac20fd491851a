"""Read registry keys of this Windows machine into a RegistryModel with winreg, read-only.

Only values are read, never written: each key opens with KEY_READ and closes once its values are read.
NOTE: CI on Linux runs this module against a stand-in `winreg` module. Only a test run on Windows
reads a real registry with it.
"""

from __future__ import annotations

import logging

from adminkb.regfile import RegistryModel, RegValue

log = logging.getLogger("adminkb.termsrv")


def read_keys(paths: list[str]) -> RegistryModel:
    """Return a model holding the values of each existing key in `paths` (HKEY_LOCAL_MACHINE only)."""
    import winreg  # Windows only; the caller checks the platform first.

    model = RegistryModel()
    prefix = "HKEY_LOCAL_MACHINE\\"
    for path in dict.fromkeys(paths):
        if not path.startswith(prefix):
            raise ValueError(f"only HKEY_LOCAL_MACHINE keys are read, got {path!r}")
        try:
            # KEY_WOW64_64KEY makes a 32-bit Python on 64-bit Windows read the native keys instead of
            # the SOFTWARE\WOW6432Node view for the keys that Windows redirects.
            handle = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path[len(prefix):], 0,
                                    winreg.KEY_READ | winreg.KEY_WOW64_64KEY)
        except FileNotFoundError:
            log.info("registry key not found: %s", path)
            continue
        with handle:
            model.create_key(path)
            index = 0
            while True:
                try:
                    name, data, type_number = winreg.EnumValue(handle, index)
                except OSError:
                    break
                model.set_value(path, name, _raw_value(name, data, type_number))
                index += 1
    return model


def _raw_value(name: str, data: object, type_number: int) -> RegValue:
    """Convert winreg's decoded data back to the bytes the registry stores.

    NOTE: winreg returns text values as str, so the rebuilt bytes always end with the usual
    terminators. A string stored without its terminator or with an embedded NUL does not come back
    byte for byte. The Remote Desktop state reads only DWORDs.
    """
    import winreg

    if isinstance(data, bytes) or data is None:
        return RegValue(type_number, data or b"")
    if type_number == winreg.REG_DWORD and isinstance(data, int):
        return RegValue.dword(data)
    if type_number == winreg.REG_QWORD and isinstance(data, int):
        return RegValue.qword(data)
    if type_number == winreg.REG_MULTI_SZ and isinstance(data, list):
        return RegValue.multi_string(data)
    if isinstance(data, str):
        return RegValue.string(data, type_number)
    log.info("value %r has unexpected data type %s", name, type(data).__name__)
    return RegValue(type_number, b"")
