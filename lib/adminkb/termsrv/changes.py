"""Build the apply and rollback .reg files from the exported state of the machine.

The apply file sets EnableConcurrentSessions = 1 (and, when asked, AllowMultipleTSSessions = 1).
The rollback file is computed from the export, so it puts back exactly what was there: it deletes
a value (or the Licensing Core key) that the apply file created and restores a value it changed.
A value that the export already has at the target is left out of both files, so the rollback
leaves it as it was. Both files are checked on the model before they are returned: apply then
rollback must give back the export.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

from adminkb.errors import InputError
from adminkb.regfile import RegFile, RegistryModel, RegValue
from adminkb.termsrv.state import LICENSING_CORE, TERMINAL_SERVER, WINLOGON

log = logging.getLogger("adminkb.termsrv")


@dataclass
class ChangeFiles:
    """The apply and rollback files, with the models before and after the change."""

    apply: RegFile
    rollback: RegFile
    before: RegistryModel
    after: RegistryModel
    # Names of the values whose target value in the export shows that the change was applied
    # before. A rollback built from such an export leaves them set, so it cannot undo that apply.
    preset: tuple[str, ...] = ()
    # Names of the values that the export already has at the target for another reason (Fast User
    # Switching sets AllowMultipleTSSessions = 1). Neither file touches them.
    already_set: tuple[str, ...] = ()

    @property
    def already_applied(self) -> bool:
        """True when the export already has every value the change sets (the apply file is empty)."""
        return not self.apply.keys


class _Edit(NamedTuple):
    """One value the apply file sets, and the exported key that must contain it."""

    exported_key: str
    key: str
    name: str
    value: RegValue
    # True when an export that already has `value` must come from a machine changed before.
    marks_earlier_apply: bool


def build_change_files(export: RegistryModel, *, allow_multiple_sessions: bool = False) -> ChangeFiles:
    """Return the apply and rollback files for a machine whose exported keys are in `export`.

    Only EnableConcurrentSessions = 1 in the export counts as an earlier apply (`preset`), because
    nothing but this method sets it. AllowMultipleTSSessions = 1 is Windows' own value when Fast
    User Switching is on, so it is reported in `already_set` and both files leave it alone.
    Raises InputError when the export does not include a key that the change writes to: without
    it the rollback could not know what to restore, and might delete a key that exists.
    """
    edits = [_Edit(TERMINAL_SERVER, LICENSING_CORE, "EnableConcurrentSessions", RegValue.dword(1), True)]
    if allow_multiple_sessions:
        edits.append(_Edit(WINLOGON, WINLOGON, "AllowMultipleTSSessions", RegValue.dword(1), False))
    for edit in edits:
        if not export.has_key(edit.exported_key):
            raise InputError("termsrv.change.key_not_exported", value=edit.exported_key,
                             next_key="termsrv.change.key_not_exported_next")

    before = export.copy()
    after = export.copy()
    at_target = [edit for edit in edits if before.get(edit.key, edit.name) == edit.value]
    preset = tuple(edit.name for edit in at_target if edit.marks_earlier_apply)
    already_set = tuple(edit.name for edit in at_target if not edit.marks_earlier_apply)
    for edit in edits:
        after.set_value(edit.key, edit.name, edit.value)
    apply_file = before.regfile_to(after)
    rollback_file = after.regfile_to(before)

    # Both files come from the model, so the check fails only when the model code is wrong. It runs
    # anyway, because a wrong rollback file would otherwise show up only on the real machine.
    result = before.copy().apply(apply_file)
    if result != after or result.copy().apply(rollback_file) != before:
        raise AssertionError("the generated apply and rollback files do not reverse each other")
    log.info("built apply file (%d keys) and rollback file (%d keys)", len(apply_file.keys), len(rollback_file.keys))
    return ChangeFiles(apply=apply_file, rollback=rollback_file, before=before, after=after, preset=preset,
                       already_set=already_set)
