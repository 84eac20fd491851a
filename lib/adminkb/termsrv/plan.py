"""The step plan for replacing termsrv.dll on Windows XP, as data: prepare, change, verify, roll back.

Windows File Protection restores a protected file in system32 from `system32\\dllcache` (and from
`ServicePackFiles\\i386`, where a service pack left its files) when the file changes. The plan
therefore replaces the copies in those folders first and the one in system32 last, so that a
restore brings back the new file. It works in Safe Mode, where Terminal Services does not hold
termsrv.dll open, with Remote Desktop off, and every copy is backed up with its hash first.

The steps that change the registry carry their edits as data (`PlanStep.registry`), so that
`replay_registry` can run the whole plan on a model of the export. The rollback phase turns Remote
Desktop off and the rollback file does not contain fDenyTSConnections, so the phase ends by
setting that value back to the export's before the final comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.imaging.steps import Step
from adminkb.regfile import RegistryModel, RegValue
from adminkb.termsrv.changes import ChangeFiles
from adminkb.termsrv.collect import DLL_COPIES
from adminkb.termsrv.pecheck import APPLICABILITY_METHOD_BUILD, APPLICABILITY_OTHER, METHOD_BUILD, PeCheck
from adminkb.termsrv.state import TERMINAL_SERVER

PHASES = ("prepare", "change", "verify", "rollback")
DEFAULT_BACKUP_FOLDER = r"%SystemDrive%\termsrv-backup"
APPLY_FILE = "termsrv-apply.reg"
ROLLBACK_FILE = "termsrv-rollback.reg"
COLLECT_FILE = "termsrv-collect.cmd"
REPLACEMENT_FILE = "termsrv.dll"

# The order that keeps Windows File Protection from restoring the old file: its sources first.
REPLACE_ORDER = ("servicepackfiles_termsrv.dll", "dllcache_termsrv.dll", "system32_termsrv.dll")
_LOCATIONS = {file_name: location for location, file_name in DLL_COPIES}

EDIT_SET = "set"
EDIT_IMPORT = "import"
EDIT_RESTORE = "restore"


@dataclass(frozen=True)
class RegistryEdit:
    """A registry change that a step makes.

    `kind` is EDIT_SET (set the DWORD `number`), EDIT_IMPORT (import the generated file named
    `file`) or EDIT_RESTORE (put back the value that the export taken before the change has, or
    delete it when the export has none).
    """

    kind: str
    key: str = ""
    name: str = ""
    number: int | None = None
    file: str = ""


# Remote Desktop is off when fDenyTSConnections is 1. System Properties' Remote tab sets it.
_DENY = (TERMINAL_SERVER, "fDenyTSConnections")
_REGISTRY_EDITS = {
    "rdp_off": (RegistryEdit(EDIT_SET, *_DENY, number=1),),
    "import_apply": (RegistryEdit(EDIT_IMPORT, file=APPLY_FILE),),
    "rdp_on": (RegistryEdit(EDIT_SET, *_DENY, number=0),),
    "rollback_safe_mode": (RegistryEdit(EDIT_SET, *_DENY, number=1),),
    "import_rollback": (RegistryEdit(EDIT_IMPORT, file=ROLLBACK_FILE),),
    "rdp_restore": (RegistryEdit(EDIT_RESTORE, *_DENY),),
}


@dataclass(frozen=True)
class PlanStep:
    """One step: its phase, what to do (a catalog key and values), the commands and what to check.

    `commands` are typed on the XP machine unless the action names the workstation. `changes_system` marks
    the steps that change the machine, and `registry` lists the registry edits a step makes.
    """

    number: int
    phase: str
    action_key: str
    commands: tuple[str, ...] = ()
    expected_key: str | None = None
    values: Mapping[str, object] = field(default_factory=dict)
    changes_system: bool = False
    registry: tuple[RegistryEdit, ...] = ()

    @property
    def action(self) -> str:
        return message(self.action_key, **self.values)

    @property
    def expected(self) -> str:
        return message(self.expected_key, **self.values) if self.expected_key else ""

    def to_dict(self) -> dict[str, object]:
        return {"number": self.number, "phase": self.phase, "action": self.action, "commands": list(self.commands),
                "expected": self.expected, "changes_system": self.changes_system}


def step_plan(originals: Mapping[str, PeCheck] | None = None, replacement: PeCheck | None = None, *,
              backup_folder: str = DEFAULT_BACKUP_FOLDER) -> list[PlanStep]:
    """Return the ordered steps, with the hashes of the checked files where they are known.

    `originals` maps a copied file's name (`system32_termsrv.dll`, `dllcache_termsrv.dll`,
    `servicepackfiles_termsrv.dll`) to its check. Raises InputError when a name is unknown, an
    original is not an XP termsrv.dll build, or the replacement is not build 5.1.2600.2055 for x86.
    """
    # The folder goes inside quoted cmd commands: a quote, a redirection or a wildcard would
    # change what they do, and Windows allows none of these characters in a path anyway.
    if not backup_folder or any(character in '"<>|*?' or ord(character) < 32 for character in backup_folder):
        raise InputError("termsrv.plan.bad_backup_folder", value=backup_folder,
                         next_key="termsrv.plan.bad_backup_folder_next")
    originals = dict(originals or {})
    for name, check in originals.items():
        if name not in _LOCATIONS:
            raise InputError("termsrv.plan.unknown_copy", value=name, known=", ".join(REPLACE_ORDER),
                             next_key="termsrv.plan.unknown_copy_next")
        if check.applicability == APPLICABILITY_OTHER:
            raise InputError("termsrv.plan.original_not_xp", value=check.path, version=check.file_version,
                             machine=check.machine_name, next_key="termsrv.plan.original_not_xp_next")
    if replacement is not None and replacement.applicability != APPLICABILITY_METHOD_BUILD:
        raise InputError("termsrv.plan.wrong_replacement", value=replacement.path, version=replacement.file_version,
                         machine=replacement.machine_name, expected=_method_version(),
                         next_key="termsrv.plan.wrong_replacement_next")

    new_hash = replacement.sha256 if replacement else message("termsrv.plan.hash_from_check")
    old_hashes = "\n".join(f"{name}: {_hash_of(originals, name)}" for name in REPLACE_ORDER)
    backups = [f'copy /b /y "{_LOCATIONS[name]}" "{backup_folder}\\{name}"' for name in REPLACE_ORDER]
    replaces = [f'if exist "{_LOCATIONS[name]}" copy /b /y {REPLACEMENT_FILE} "{_LOCATIONS[name]}"'
                for name in REPLACE_ORDER]
    restores = [f'if exist "{backup_folder}\\{name}" copy /b /y "{backup_folder}\\{name}" "{_LOCATIONS[name]}"'
                for name in REPLACE_ORDER]
    values = {"old_hashes": old_hashes, "new_hash": new_hash, "version": _method_version(),
              "backup": backup_folder, "apply": APPLY_FILE, "rollback": ROLLBACK_FILE, "collect": COLLECT_FILE}

    raw_steps = [
        ("prepare", "collect", (COLLECT_FILE,), "collect_expected", False),
        ("prepare", "check_originals", tuple(f"adminkb termsrv check {name}" for name in REPLACE_ORDER),
         "check_originals_expected", False),
        ("prepare", "check_replacement", (f"adminkb termsrv check {REPLACEMENT_FILE}",),
         "check_replacement_expected", False),
        ("prepare", "backup", (f'mkdir "{backup_folder}"', *backups), "backup_expected", False),
        ("prepare", "make_files", ("adminkb termsrv files terminal_server.reg winlogon.reg",),
         "make_files_expected", False),
        ("change", "rdp_off", ("control sysdm.cpl",), "rdp_off_expected", True),
        ("change", "safe_mode", (), "safe_mode_expected", True),
        ("change", "replace", replaces, "replace_expected", True),
        ("change", "import_apply", (f"regedit /s {APPLY_FILE}",), "import_apply_expected", True),
        ("change", "restart", (), "restart_expected", True),
        ("verify", "verify_files", (COLLECT_FILE, "adminkb termsrv check system32_termsrv.dll"),
         "verify_files_expected", False),
        ("verify", "rdp_on", ("control sysdm.cpl",), "rdp_on_expected", True),
        ("verify", "two_sessions", ("taskmgr",), "two_sessions_expected", False),
        ("rollback", "rollback_safe_mode", (), "safe_mode_expected", True),
        ("rollback", "restore", restores, "restore_expected", True),
        ("rollback", "import_rollback", (f"regedit /s {ROLLBACK_FILE}",), "import_rollback_expected", True),
        ("rollback", "restart", (), "restart_expected", True),
        ("rollback", "rdp_restore", ("control sysdm.cpl",), "rdp_restore_expected", True),
        ("rollback", "rollback_verify", (COLLECT_FILE, "adminkb termsrv check system32_termsrv.dll"),
         "rollback_verify_expected", False),
    ]
    return [PlanStep(number, phase, f"termsrv.plan.step.{action}", tuple(commands),
                     f"termsrv.plan.step.{expected}", values, changes, _REGISTRY_EDITS.get(action, ()))
            for number, (phase, action, commands, expected, changes) in enumerate(raw_steps, start=1)]


def replay_registry(steps: Iterable[PlanStep], files: ChangeFiles) -> RegistryModel:
    """Apply the registry edits of `steps` in order to a copy of the export and return the result.

    `files` are the apply and rollback files built from that export (`files.before`). Replaying
    the whole plan must give back the export, because the last step compares the registry with it.
    """
    generated = {APPLY_FILE: files.apply, ROLLBACK_FILE: files.rollback}
    model = files.before.copy()
    for step in steps:
        for edit in step.registry:
            if edit.kind == EDIT_IMPORT:
                model.apply(generated[edit.file])
            elif edit.kind == EDIT_SET:
                model.set_value(edit.key, edit.name, RegValue.dword(edit.number))
            elif edit.kind == EDIT_RESTORE:
                original = files.before.get(edit.key, edit.name)
                if original is None:
                    model.delete_value(edit.key, edit.name)
                else:
                    model.set_value(edit.key, edit.name, original)
            else:
                raise ValueError(f"unknown registry edit kind {edit.kind!r} in step {step.number}")
    return model


def plan_rows(steps: list[PlanStep]) -> list[dict[str, object]]:
    """Return one table row a step: number, phase, action, commands (one a line) and the check."""
    return [{"step": step.number, "phase": message(f"termsrv.plan.phase.{step.phase}"), "action": step.action,
             "commands": "\n".join(step.commands), "expected": step.expected} for step in steps]


def _hash_of(originals: Mapping[str, PeCheck], name: str) -> str:
    check = originals.get(name)
    return check.sha256 if check else message("termsrv.plan.hash_from_check")


def _method_version() -> str:
    return ".".join(str(part) for part in METHOD_BUILD)


CHECKLIST_AREA = "termsrv_steps"


def checklist_steps(steps: list[PlanStep] | None = None) -> tuple[Step, ...]:
    """Return the plan as checklist steps for `adminkb.imaging.checklist.Checklist` and the widget.

    Titles and checks are the plan's own texts (with its hashes and backup folder). The reason for
    each step comes from `termsrv_steps.step.<id>.why`. Ids are the plan's action names, with the
    phase put in front when an action appears twice (the restart of the rollback).
    """
    steps = steps if steps is not None else step_plan()
    result = []
    used: set[str] = set()
    for plan_step in steps:
        action = plan_step.action_key.rsplit(".", 1)[-1]
        step_id = action if action not in used else f"{plan_step.phase}_{action}"
        used.add(step_id)
        keys = [("title", plan_step.action_key)]
        if plan_step.expected_key:
            keys.append(("verify", plan_step.expected_key))
        result.append(Step(step_id, plan_step.phase, plan_step.commands, area=CHECKLIST_AREA, text_keys=tuple(keys),
                           text_values=tuple(sorted(plan_step.values.items()))))
    return tuple(result)
