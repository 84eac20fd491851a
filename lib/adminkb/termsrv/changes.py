"""Build the apply and rollback .reg files from the exported state of the machine.

The apply file sets EnableConcurrentSessions = 1 (and, when asked, AllowMultipleTSSessions = 1).
The rollback file is computed from the export, so it puts back exactly what was there: it deletes
a value (or the Licensing Core key) that the apply file created and restores a value it changed.
Both files are checked on the model before they are returned: apply then rollback must give back
the export.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
    # Names of the values that the export already has at the value the change sets. A rollback
    # built from such an export leaves them set, so it cannot undo an earlier apply.
    preset: tuple[str, ...] = ()

    @property
    def already_applied(self) -> bool:
        """True when the export already has every value the change sets (the apply file is empty)."""
        return not self.apply.keys


def build_change_files(export: RegistryModel, *, allow_multiple_sessions: bool = False) -> ChangeFiles:
    """Return the apply and rollback files for a machine whose exported keys are in `export`.

    Raises InputError when the export does not include a key that the change writes to: without
    it the rollback could not know what to restore, and might delete a key that exists.
    """
    changes = [(TERMINAL_SERVER, LICENSING_CORE, "EnableConcurrentSessions", RegValue.dword(1))]
    if allow_multiple_sessions:
        changes.append((WINLOGON, WINLOGON, "AllowMultipleTSSessions", RegValue.dword(1)))
    for exported_key, _key, _name, _value in changes:
        if not export.has_key(exported_key):
            raise InputError("termsrv.change.key_not_exported", value=exported_key,
                             next_key="termsrv.change.key_not_exported_next")

    before = export.copy()
    after = export.copy()
    preset = tuple(name for _exported_key, key, name, value in changes if before.get(key, name) == value)
    for _exported_key, key, name, value in changes:
        after.set_value(key, name, value)
    apply_file = before.regfile_to(after)
    rollback_file = after.regfile_to(before)

    # Both files come from the model, so the check fails only when the model code is wrong. It runs
    # anyway, because a wrong rollback file would otherwise show up only on the real machine.
    result = before.copy().apply(apply_file)
    if result != after or result.copy().apply(rollback_file) != before:
        raise AssertionError("the generated apply and rollback files do not reverse each other")
    log.info("built apply file (%d keys) and rollback file (%d keys)", len(apply_file.keys), len(rollback_file.keys))
    return ChangeFiles(apply=apply_file, rollback=rollback_file, before=before, after=after, preset=preset)
