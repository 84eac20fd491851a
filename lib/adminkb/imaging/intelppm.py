"""The Intel-to-AMD reboot loop: read intelppm's Start value in every control set, and write the fix.

An XP image built on an Intel machine loads intelppm.sys (the Intel processor driver) at boot. On
an AMD processor that stops Windows with STOP 0x7E (or 0xFC with PAE), which shows as a reboot
loop (Microsoft KB 953356). Setting `HKLM\\SYSTEM\\<each ControlSet>\\Services\\intelppm\\Start`
to 4 (disabled) before capturing the image avoids it.

The values come from a `reg export` file (REGEDIT4 or version 5, read with adminkb.regfile) or
from the SYSTEM hive file itself (read with regipy). In a hive the control sets are the root's
`ControlSet00N` keys and `Select\\Current` names the one in use. An export can also contain
`CurrentControlSet`, which is the running system's alias of one of them.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.regfile import REG_DWORD, RegFile, RegistryModel, RegValue, read_regfile

log = logging.getLogger("adminkb.imaging.intelppm")

SYSTEM_KEY = "HKEY_LOCAL_MACHINE\\SYSTEM"
SERVICE_PATH = "Services\\intelppm"
START_DISABLED = 4
# The service Start values that Windows defines (the Services key's documented Start types).
START_NAMES = {0: "boot", 1: "system", 2: "automatic", 3: "manual", 4: "disabled"}
CONTROL_SET = re.compile(r"(ControlSet\d{3}|CurrentControlSet)", re.IGNORECASE)
HIVE_MAGIC = b"regf"


@dataclass(frozen=True)
class ControlSetStart:
    """intelppm in one control set: whether its key exists and its Start value.

    `start` is None when the key or the value is missing or the value is not a DWORD
    (`wrong_type` is true in the last case).
    """

    control_set: str
    key_present: bool
    start: int | None
    wrong_type: bool = False

    @property
    def loads(self) -> bool:
        """Tell whether Windows would load the driver from this control set (key there, not disabled).

        A present key without a readable Start value counts as loading, because nothing shows that
        it is off.
        """
        return self.key_present and self.start != START_DISABLED


@dataclass
class IntelppmCheck:
    """The intelppm state of one machine (or image), control set by control set."""

    source: str
    kind: str
    control_sets: list[ControlSetStart] = field(default_factory=list)
    # The control set Windows boots from (`Select\Current`), when the source is a hive that has it.
    current: str | None = None
    # False when a hive's header checksum is wrong, which means the hive was copied while in use
    # or its transaction logs were not applied, so the values read may be out of date.
    hive_clean: bool = True

    @property
    def at_risk(self) -> list[ControlSetStart]:
        """Return the control sets from which intelppm would load on an AMD machine."""
        return [entry for entry in self.control_sets if entry.loads]

    @property
    def safe(self) -> bool:
        return not self.at_risk

    def fix_regfile(self) -> RegFile:
        """Return a .reg file that sets Start = 4 in every control set where intelppm would load."""
        model = RegistryModel()
        for entry in self.at_risk:
            model.set_value(service_key(entry.control_set), "Start", RegValue.dword(START_DISABLED))
        regfile = model.to_regfile(version=5)
        regfile.source = "<intelppm fix>"
        return regfile


def service_key(control_set: str) -> str:
    """Return the full key of intelppm in one control set."""
    return f"{SYSTEM_KEY}\\{control_set}\\{SERVICE_PATH}"


def check_intelppm(paths: str | Path | Sequence[str | Path], *, encoding: str | None = None) -> IntelppmCheck:
    """Read intelppm's Start values from a SYSTEM hive file or from one or more `reg export` files.

    A file that starts with `regf` is read as a hive (then it must be the only file). Raises
    InputError when a file cannot be read or contains no control set.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(path) for path in paths]
    if not paths:
        raise InputError("imaging_intelppm.no_files", next_key="imaging_intelppm.no_files_next")
    hives = [path for path in paths if _starts_with_magic(path)]
    if hives:
        if len(paths) > 1:
            raise InputError("imaging_intelppm.hive_with_others", value=", ".join(str(path) for path in paths),
                             next_key="imaging_intelppm.hive_with_others_next")
        return check_hive(hives[0])
    return check_regfiles([read_regfile(path, encoding=encoding) for path in paths])


def _starts_with_magic(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(4) == HIVE_MAGIC
    except OSError as error:
        raise InputError("imaging_intelppm.unreadable", value=str(path), reason=os_error_text(error),
                         next_key="imaging_intelppm.unreadable_next") from None


# .reg exports.

def check_regfiles(regfiles: Iterable[RegFile]) -> IntelppmCheck:
    """Read the control sets from exports of `HKLM\\SYSTEM` or of its intelppm keys.

    Raises InputError for an unreadable line inside an intelppm key, because a skipped Start
    value would look missing, and when no file contains a control set.
    """
    regfiles = list(regfiles)
    model = RegistryModel()
    control_sets: dict[str, str] = {}
    for regfile in regfiles:
        for problem in regfile.problems:
            if problem.key and _split_system_key(problem.key) and SERVICE_PATH.lower() in problem.key.lower():
                raise problem.to_error()
        model.apply(regfile)
        for section in regfile.keys:
            found = _split_system_key(section.path)
            if found:
                control_sets.setdefault(found.lower(), found)
    source = ", ".join(regfile.source for regfile in regfiles)
    if not control_sets:
        raise InputError("imaging_intelppm.no_control_set", value=source,
                         next_key="imaging_intelppm.no_control_set_next")
    check = IntelppmCheck(source=source, kind="reg")
    for name in sorted(control_sets.values(), key=_control_set_order):
        key = service_key(name)
        value = model.get(key, "Start")
        check.control_sets.append(_entry(name, model.has_key(key), value))
    log.info("intelppm from %s: %d control sets, %d at risk", source, len(check.control_sets), len(check.at_risk))
    return check


def _split_system_key(path: str) -> str | None:
    """Return the control set name of a key under HKLM\\SYSTEM (or None for other keys)."""
    parts = path.rstrip("\\").split("\\")
    if len(parts) < 3 or parts[0].upper() not in ("HKEY_LOCAL_MACHINE", "HKLM") or parts[1].upper() != "SYSTEM":
        return None
    return parts[2] if CONTROL_SET.fullmatch(parts[2]) else None


def _entry(control_set: str, key_present: bool, value: RegValue | None) -> ControlSetStart:
    if value is None:
        return ControlSetStart(control_set, key_present, None)
    if value.type != REG_DWORD or len(value.data) != 4:
        return ControlSetStart(control_set, key_present, None, wrong_type=True)
    return ControlSetStart(control_set, key_present, int.from_bytes(value.data, "little"))


def _control_set_order(name: str) -> tuple[int, str]:
    # Numbered sets first, in number order, then CurrentControlSet.
    return (1, name) if name.lower() == "currentcontrolset" else (0, name.lower())


# SYSTEM hive files.

def check_hive(path: str | Path) -> IntelppmCheck:
    """Read the control sets of a SYSTEM hive file with regipy."""
    from construct.core import ConstructError
    from regipy.exceptions import RegipyException
    from regipy.registry import RegistryHive
    from regipy.utils import calculate_xor32_checksum

    path = Path(path)
    try:
        hive = RegistryHive(str(path))
        root_subkeys = list(hive.root.iter_subkeys())
        check = IntelppmCheck(source=str(path), kind="hive")
        names = sorted((subkey.name for subkey in root_subkeys if CONTROL_SET.fullmatch(subkey.name)),
                       key=_control_set_order)
        if not names:
            raise InputError("imaging_intelppm.no_control_set", value=str(path),
                             next_key="imaging_intelppm.no_control_set_next")
        for name in names:
            check.control_sets.append(_hive_entry(hive, name))
        check.current = _current_control_set(hive)
        hive._stream.seek(0)
        check.hive_clean = calculate_xor32_checksum(hive._stream.read(508)) == hive.header.checksum
    except (RegipyException, ConstructError, struct.error, ValueError, EOFError, StopIteration, IndexError) as error:
        # regipy and construct raise these for truncated or damaged hives.
        # NOTE: found by cutting and flipping bytes of small test hives, so a real damaged hive may raise others.
        log.info("cannot parse hive %s: %s", path, error)
        raise InputError("imaging_intelppm.bad_hive", value=str(path), reason=str(error) or type(error).__name__,
                         next_key="imaging_intelppm.bad_hive_next") from None
    except OSError as error:
        raise InputError("imaging_intelppm.unreadable", value=str(path), reason=os_error_text(error),
                         next_key="imaging_intelppm.unreadable_next") from None
    log.info("intelppm from hive %s: %d control sets, %d at risk", path, len(check.control_sets), len(check.at_risk))
    return check


def _subkey(key, name: str):
    """Return the subkey `name` (case-insensitive, as Windows compares key names) or None."""
    for subkey in key.iter_subkeys() or ():
        if subkey.name.lower() == name.lower():
            return subkey
    return None


def _hive_entry(hive, control_set: str) -> ControlSetStart:
    key = _subkey(hive.root, control_set)
    for part in SERVICE_PATH.split("\\"):
        key = _subkey(key, part) if key is not None else None
    if key is None:
        return ControlSetStart(control_set, False, None)
    for value in key.iter_values():
        if value.name.lower() == "start":
            if value.value_type != "REG_DWORD" or not isinstance(value.value, int):
                return ControlSetStart(control_set, True, None, wrong_type=True)
            return ControlSetStart(control_set, True, value.value)
    return ControlSetStart(control_set, True, None)


def _current_control_set(hive) -> str | None:
    select = _subkey(hive.root, "Select")
    if select is None:
        return None
    for value in select.iter_values():
        if value.name.lower() == "current" and isinstance(value.value, int):
            return f"ControlSet{value.value:03d}"
    return None


# Reports.

def start_text(entry: ControlSetStart) -> str:
    """Return the Start value as the user reads it: number and meaning, or why there is none."""
    if not entry.key_present:
        return message("imaging_intelppm.start.missing")
    if entry.wrong_type:
        return message("imaging_intelppm.start.wrong_type")
    if entry.start is None:
        return message("imaging_intelppm.start.no_value")
    name = START_NAMES.get(entry.start, "other")
    return message("imaging_intelppm.start.value", number=entry.start,
                   name=message(f"imaging_intelppm.start_name.{name}"))


def intelppm_rows(check: IntelppmCheck) -> list[dict[str, object]]:
    """Return one row a control set: its name, the Start value and the verdict."""
    return [{"control_set": entry.control_set, "start": start_text(entry),
             "verdict": message("imaging_intelppm.verdict.risk" if entry.loads else "imaging_intelppm.verdict.safe")}
            for entry in check.control_sets]


def intelppm_summary(check: IntelppmCheck) -> str:
    """Return the verdict for the whole machine, with the next step when a control set is at risk."""
    if check.safe:
        return message("imaging_intelppm.summary_safe", source=check.source)
    sets = ", ".join(entry.control_set for entry in check.at_risk)
    return "\n".join([message("imaging_intelppm.summary_risk", source=check.source, count=len(check.at_risk), sets=sets),
                      message("errors.next_step", step=message("imaging_intelppm.summary_risk_next"))])
