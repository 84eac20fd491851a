"""Checks and generated files for concurrent Remote Desktop sessions on Windows XP.

`check_pe` reads a termsrv.dll (or any PE file): versions, SHA-256, size, machine type, and
whether the build is one the method applies to. `read_state` reads the session settings from
`reg export` files (`read_live_state` from the registry, on Windows). `collect_batch_text` is the
batch file that collects those exports and the DLL copies on XP. `build_change_files` returns the
apply and rollback .reg files, and `step_plan` the ordered steps with backups and verification;
`replay_registry` runs the steps' registry edits on a model. Nothing here changes a machine, and
the package ships no DLL.
"""

from adminkb.termsrv.changes import ChangeFiles, build_change_files
from adminkb.termsrv.collect import COPY_BACK, CopyBackItem, collect_batch_bytes, collect_batch_text
from adminkb.termsrv.pecheck import (
    APPLICABILITY_METHOD_BUILD, APPLICABILITY_OTHER, APPLICABILITY_XP_BUILD, METHOD_BUILD, PeCheck, check_pe,
    check_pe_bytes, classify_build,
)
from adminkb.termsrv.plan import PHASES, PlanStep, RegistryEdit, plan_rows, replay_registry, step_plan
from adminkb.termsrv.state import (
    LICENSING_CORE, POLICY, RDP_TCP, SETTINGS, TERMINAL_SERVER, WINLOGON, RdpState, Setting, SettingValue,
    model_from_regfiles, read_live_state, read_state, state_from_model,
)

__all__ = [
    "APPLICABILITY_METHOD_BUILD", "APPLICABILITY_OTHER", "APPLICABILITY_XP_BUILD", "COPY_BACK", "LICENSING_CORE",
    "METHOD_BUILD", "PHASES", "POLICY", "RDP_TCP", "SETTINGS", "TERMINAL_SERVER", "WINLOGON",
    "ChangeFiles", "CopyBackItem", "PeCheck", "PlanStep", "RdpState", "RegistryEdit", "Setting", "SettingValue",
    "build_change_files", "check_pe", "check_pe_bytes", "classify_build", "collect_batch_bytes",
    "collect_batch_text", "model_from_regfiles", "plan_rows", "read_live_state", "read_state",
    "replay_registry", "state_from_model", "step_plan",
]
