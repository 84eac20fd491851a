"""The Intel-to-AMD reboot loop: read intelppm's Start value in every control set, and write the fix.

An XP image built on an Intel machine keeps the service entry of intelppm.sys (the Intel processor
driver). Microsoft KB 953356 describes the result: after such an image is deployed to a machine
with another processor maker's CPU and that machine is upgraded to XP SP2 or SP3, the driver
loads at the next restart and Windows stops with STOP 0x7E (or 0xFC with PAE), which shows as a
reboot loop. Setting `HKLM\\SYSTEM\\<each ControlSet>\\Services\\intelppm\\Start` to 4 (disabled)
before capturing the image avoids it.

The values come from a `reg export` file (REGEDIT4 or version 5, read with adminkb.regfile) or
from the SYSTEM hive file itself (read with regipy). In a hive the control sets are the root's
`ControlSet00N` keys and `Select\\Current` names the one in use. An export can also contain
`CurrentControlSet`, which is the running system's alias of one of them.

A hive contains every control set of the machine. An export contains only the exported keys,
so the check is complete only when the export contains `HKLM\\SYSTEM\\Select` (whose Current,
Default, Failed and LastKnownGood values name the control sets Windows uses) and, for each of
those control sets, its intelppm key or a parent of it. Exporting all of `HKLM\\SYSTEM`
(`reg export HKLM\\SYSTEM`) or saving the hive (`reg save HKLM\\SYSTEM`) gives both.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
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
SELECT_KEY = f"{SYSTEM_KEY}\\Select"
# The Select values that name a control set by number (0 names none).
SELECT_VALUES = ("Current", "Default", "Failed", "LastKnownGood")


@dataclass(frozen=True)
class ControlSetStart:
    """intelppm in one control set: whether its key exists and its Start value.

    `start` is None when the key or the value is missing or the value is not a DWORD
    (`wrong_type` is true in the last case). `checked` is false when the input does not show
    this control set's intelppm key or a parent of it, so nothing is known about it.
    """

    control_set: str
    key_present: bool
    start: int | None
    wrong_type: bool = False
    checked: bool = True

    @property
    def loads(self) -> bool:
        """Tell whether Windows would load the driver from this control set (key there, not disabled).

        A present key without a readable Start value counts as loading, because nothing shows that
        it is off.
        """
        return self.checked and self.key_present and self.start != START_DISABLED


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
    # The control sets that an exported Select key names, or None when the export lacks Select
    # (then the machine may have control sets that the export does not show).
    selected: list[str] | None = None

    @property
    def at_risk(self) -> list[ControlSetStart]:
        """Return the control sets from which intelppm would load on an AMD machine."""
        return [entry for entry in self.control_sets if entry.loads]

    @property
    def checked(self) -> list[ControlSetStart]:
        return [entry for entry in self.control_sets if entry.checked]

    @property
    def unchecked(self) -> list[ControlSetStart]:
        """Return the control sets that the input names but whose intelppm key it does not show."""
        return [entry for entry in self.control_sets if not entry.checked]

    @property
    def complete(self) -> bool:
        """Tell whether every control set of the machine was checked (always for a hive)."""
        if self.kind == "hive":
            return True
        return self.selected is not None and not self.unchecked

    @property
    def safe(self) -> bool:
        """Tell whether every control set was checked and none of them loads intelppm.sys."""
        return self.complete and not self.at_risk

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

    A control set counts as checked when an export contains its key, its Services key or its
    intelppm key, because `reg export` writes a key with every subkey. The control sets that
    an exported Select key names are listed even when no export shows them. Raises InputError
    for an unreadable line inside an intelppm key, because a skipped Start value would look
    missing, and when no file contains a control set.
    """
    regfiles = list(regfiles)
    model = RegistryModel()
    control_sets: dict[str, str] = {}
    covered: set[str] = set()
    for regfile in regfiles:
        for problem in regfile.problems:
            if problem.key and _split_system_key(problem.key) and SERVICE_PATH.lower() in problem.key.lower():
                raise problem.to_error()
        # A whole SYSTEM export has hundreds of thousands of keys, so only the keys that can hold
        # or remove intelppm's Start value or the Select values go into the model.
        model.apply(replace(regfile, keys=[section for section in regfile.keys if _relevant(section.path)]))
        for section in regfile.keys:
            found = _split_system_key(section.path)
            if found:
                control_sets.setdefault(found.lower(), found)
                if _covers_intelppm(section.path):
                    covered.add(found.lower())
    source = ", ".join(regfile.source for regfile in regfiles)
    if not control_sets:
        raise InputError("imaging_intelppm.no_control_set", value=source,
                         next_key="imaging_intelppm.no_control_set_next")
    check = IntelppmCheck(source=source, kind="reg")
    selected = _selected_control_sets(model)
    if selected is not None:
        check.selected = list(dict.fromkeys(name for _, name in selected))
        check.current = next((name for value, name in selected if value == "Current"), None)
    for name in check.selected or ():
        # CurrentControlSet is the alias of the current control set, so its row stands for that set.
        alias_shown = name == check.current and "currentcontrolset" in covered
        if name.lower() not in control_sets and not alias_shown:
            control_sets[name.lower()] = name
    for name in sorted(control_sets.values(), key=_control_set_order):
        if name.lower() not in covered:
            check.control_sets.append(ControlSetStart(name, False, None, checked=False))
            continue
        key = service_key(name)
        value = model.get(key, "Start")
        check.control_sets.append(_entry(name, model.has_key(key), value))
    log.info("intelppm from %s: %d control sets, %d at risk, %d not shown", source, len(check.control_sets),
             len(check.at_risk), len(check.unchecked))
    return check


def _relevant(path: str) -> bool:
    """Tell whether a key is Select, intelppm's key or a subkey of it, or a parent of one of them."""
    parts = [part.lower() for part in path.rstrip("\\").split("\\")]
    if len(parts) < 2 or parts[0] not in ("hkey_local_machine", "hklm") or parts[1] != "system":
        return False
    below = parts[2:]
    if not below or below[0] == "select":
        return True
    wanted = SERVICE_PATH.lower().split("\\")
    rest = below[1:]
    return rest[:len(wanted)] == wanted[:len(rest)]


def _covers_intelppm(path: str) -> bool:
    """Tell whether an exported key is a control set's key, its Services key or its intelppm key."""
    parts = path.rstrip("\\").split("\\")[3:]
    wanted = SERVICE_PATH.lower().split("\\")
    return [part.lower() for part in parts] == wanted[:len(parts)]


def _selected_control_sets(model: RegistryModel) -> list[tuple[str, str]] | None:
    """Return (Select value name, control set) for each control set that Select names, or None without Select."""
    if not model.has_key(SELECT_KEY):
        return None
    selected: list[tuple[str, str]] = []
    for value_name in SELECT_VALUES:
        value = model.get(SELECT_KEY, value_name)
        if value is None or value.type != REG_DWORD or len(value.data) != 4:
            continue
        number = int.from_bytes(value.data, "little")
        if number:
            selected.append((value_name, f"ControlSet{number:03d}"))
    return selected


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
    if not entry.checked:
        return message("imaging_intelppm.start.not_shown")
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
             "verdict": message(f"imaging_intelppm.verdict.{_verdict(entry)}")}
            for entry in check.control_sets]


def _verdict(entry: ControlSetStart) -> str:
    if not entry.checked:
        return "unchecked"
    return "risk" if entry.loads else "safe"


def intelppm_summary(check: IntelppmCheck) -> str:
    """Return the verdict for the whole machine, with the next step when a control set is at risk or unchecked.

    The verdict says the image can go to AMD machines only when every control set was checked.
    """
    if check.safe:
        return message("imaging_intelppm.summary_safe", source=check.source)
    lines = []
    if check.at_risk:
        sets = ", ".join(entry.control_set for entry in check.at_risk)
        lines.append(message("imaging_intelppm.summary_risk", source=check.source, count=len(check.at_risk),
                             sets=sets))
        if not check.complete:
            lines.append(message("imaging_intelppm.summary_risk_partial", missing=coverage_gap(check)))
        lines.append(message("errors.next_step", step=message("imaging_intelppm.summary_risk_next")))
    else:
        checked = ", ".join(entry.control_set for entry in check.checked)
        key = "imaging_intelppm.summary_partial" if checked else "imaging_intelppm.summary_nothing_checked"
        lines.append(message(key, source=check.source, checked=checked, missing=coverage_gap(check)))
    if not check.complete:
        lines.append(message("errors.next_step", step=message("imaging_intelppm.partial_next")))
    return "\n".join(lines)


def coverage_gap(check: IntelppmCheck) -> str:
    """Return why the check does not cover the whole machine: missing Select key, control sets not shown."""
    gaps = []
    if check.unchecked:
        gaps.append(message("imaging_intelppm.gap.not_shown",
                            sets=", ".join(entry.control_set for entry in check.unchecked)))
    if check.selected is None and check.kind != "hive":
        gaps.append(message("imaging_intelppm.gap.no_select"))
    return message("imaging_intelppm.gap.separator").join(gaps)
