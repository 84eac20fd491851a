"""The Remote Desktop settings that decide how many sessions Windows allows, read from .reg exports.

Key paths (all under HKEY_LOCAL_MACHINE):
- `SYSTEM\\CurrentControlSet\\Control\\Terminal Server`: fDenyTSConnections (1 = Remote Desktop
  off) and fSingleSessionPerUser.
- `...\\Terminal Server\\Licensing Core`: EnableConcurrentSessions, the value the XP method sets.
- `...\\Terminal Server\\WinStations\\RDP-Tcp`: MaxInstanceCount of the RDP listener.
- `SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon`: AllowMultipleTSSessions (Fast User
  Switching).
- `SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services`: the Group Policy copies of
  fDenyTSConnections, fSingleSessionPerUser and MaxInstanceCount, which win over the others.

On Windows versions that Python runs on, `read_live_state` reads the same values with winreg
(read-only). Everywhere else the state comes from `reg export` files copied from the machine.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from adminkb.errors import InputError
from adminkb.regfile import REG_DWORD, RegFile, RegistryModel, RegValue, fold, read_regfile

log = logging.getLogger("adminkb.termsrv")

HKLM = "HKEY_LOCAL_MACHINE"
TERMINAL_SERVER = HKLM + r"\SYSTEM\CurrentControlSet\Control\Terminal Server"
LICENSING_CORE = TERMINAL_SERVER + r"\Licensing Core"
RDP_TCP = TERMINAL_SERVER + r"\WinStations\RDP-Tcp"
WINLOGON = HKLM + r"\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon"
POLICY = HKLM + r"\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"

# `RdpState.source` of a state read from this machine's registry instead of from exports.
LIVE_SOURCE = "winreg"

# The keys that the collection batch file exports, one .reg file each; subkeys come with them.
EXPORTED_KEYS = (TERMINAL_SERVER, WINLOGON, POLICY)

# Winlogon stores the automatic logon password here in clear text when AutoAdminLogon is set.
SECRET_VALUES = ((WINLOGON, "DefaultPassword"),)


@dataclass(frozen=True)
class Setting:
    """One registry value that the state reports: its key, value name and what it controls."""

    id: str
    key: str
    name: str
    policy: bool = False


SETTINGS = (
    Setting("deny_connections", TERMINAL_SERVER, "fDenyTSConnections"),
    Setting("deny_connections_policy", POLICY, "fDenyTSConnections", policy=True),
    Setting("enable_concurrent_sessions", LICENSING_CORE, "EnableConcurrentSessions"),
    Setting("allow_multiple_sessions", WINLOGON, "AllowMultipleTSSessions"),
    Setting("single_session_per_user", TERMINAL_SERVER, "fSingleSessionPerUser"),
    Setting("single_session_per_user_policy", POLICY, "fSingleSessionPerUser", policy=True),
    Setting("max_instance_count", RDP_TCP, "MaxInstanceCount"),
    Setting("max_instance_count_policy", POLICY, "MaxInstanceCount", policy=True),
)


@dataclass(frozen=True)
class SettingValue:
    """A setting as found: `number` is the DWORD, None when the value is missing or not a DWORD.

    `key_known` is true when the source covers the key at all (for a .reg export: whether the
    key or one of its parents was exported). `value` keeps the raw value when one exists.
    """

    setting: Setting
    number: int | None
    value: RegValue | None
    key_known: bool

    @property
    def present(self) -> bool:
        return self.value is not None

    @property
    def wrong_type(self) -> bool:
        return self.value is not None and self.number is None


@dataclass
class RdpState:
    """The Remote Desktop session settings of one machine, and the conclusions drawn from them.

    `rdp_enabled` is None when the sources do not contain fDenyTSConnections as a DWORD.
    """

    source: str
    values: list[SettingValue]
    model: RegistryModel
    secrets: list[str] = field(default_factory=list)

    def get(self, setting_id: str) -> SettingValue:
        for found in self.values:
            if found.setting.id == setting_id:
                return found
        raise KeyError(setting_id)

    def effective(self, setting_id: str) -> int | None:
        """Return the policy number when the policy sets it, else the machine setting's number."""
        policy_id = setting_id + "_policy"
        if any(found.setting.id == policy_id for found in self.values):
            policy = self.get(policy_id)
            if policy.number is not None:
                return policy.number
        return self.get(setting_id).number

    @property
    def rdp_enabled(self) -> bool | None:
        deny = self.effective("deny_connections")
        return None if deny is None else deny == 0

    @property
    def concurrent_sessions_enabled(self) -> bool:
        return self.get("enable_concurrent_sessions").number == 1

    def covers(self, key: str) -> bool:
        """Tell whether the source includes `key`, so that a missing value there really is missing."""
        return self.model.has_key(key)


def state_from_model(model: RegistryModel, *, source: str) -> RdpState:
    """Read every setting from a registry model (an export or a live read)."""
    values = []
    for setting in SETTINGS:
        value = model.get(setting.key, setting.name)
        number = value.decoded if value is not None and value.type == REG_DWORD and len(value.data) == 4 else None
        values.append(SettingValue(setting, number, value, model.has_key(setting.key)))
    secrets = [f"{key}\\{name}" for key, name in SECRET_VALUES if model.get(key, name) is not None]
    if secrets:
        log.info("%s contains clear-text secrets: %s", source, ", ".join(secrets))
    return RdpState(source=source, values=values, model=model, secrets=secrets)


def model_from_regfiles(regfiles: Iterable[RegFile]) -> RegistryModel:
    """Apply exports in order to one model.

    Raises InputError when an export has a line that regedit skips inside a key the state reads,
    because a skipped value there would look missing.
    """
    model = RegistryModel()
    watched = [fold(key) for key in EXPORTED_KEYS]
    for regfile in regfiles:
        for problem in regfile.problems:
            key = fold(problem.key or "")
            if any(key == root or key.startswith(root + "\\") for root in watched):
                raise problem.to_error()
        model.apply(regfile)
    return model


def read_state(paths: Iterable[str | Path], *, encoding: str | None = None) -> RdpState:
    """Read the state from `reg export` files (any mix of the exported keys, in any order)."""
    paths = [Path(path) for path in paths]
    if not paths:
        raise InputError("termsrv.state.no_files", next_key="termsrv.state.no_files_next")
    regfiles = [read_regfile(path, encoding=encoding) for path in paths]
    model = model_from_regfiles(regfiles)
    if not any(model.has_key(key) for key in EXPORTED_KEYS):
        raise InputError("termsrv.state.no_known_key", value=", ".join(str(path) for path in paths),
                         next_key="termsrv.state.no_files_next")
    return state_from_model(model, source=", ".join(str(path) for path in paths))


def read_live_state() -> RdpState:
    """Read the settings from this machine's registry with winreg (Windows only, read-only)."""
    if sys.platform != "win32":
        raise InputError("termsrv.state.not_windows", value=sys.platform, next_key="termsrv.state.not_windows_next")
    from adminkb.termsrv.live import read_keys

    return state_from_model(read_keys([setting.key for setting in SETTINGS]), source=LIVE_SOURCE)
