"""The universal XP image procedure as data: phases and steps with commands, checks and warnings.

Every text a technician reads comes from the catalog (`<area>.phase.<id>` and
`<area>.step.<id>.title/why/verify/warning`, where the area is `imaging_steps` for these steps);
commands and settings are literal strings, the same in every language. Other step lists (such as
the termsrv.dll steps) use the same `Step` with their own catalog area. A step marked COMMUNITY is outside what Microsoft supports and is
listed right after the supported step it replaces, so the runbook can show both, labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adminkb.i18n import catalog, message

SUPPORTED = "supported"
COMMUNITY = "community"

PHASES = ("prepare", "slim", "drivers", "answer_file", "sysprep", "capture", "boot_media", "restore",
          "known_problems")


@dataclass(frozen=True)
class Step:
    """One checklist step: its id, phase, commands or settings, and whether Microsoft supports it."""

    id: str
    phase: str
    commands: tuple[str, ...] = ()
    support: str = SUPPORTED
    # The supported step that a community step replaces.
    instead_of: str | None = None
    # The catalog area that contains the texts of the step and the title of its phase.
    area: str = "imaging_steps"
    # Catalog keys that replace `<area>.step.<id>.<part>` for some parts, as (part, key) pairs,
    # and the values that fill their placeholders. Steps built from another plan reuse its texts.
    text_keys: tuple[tuple[str, str], ...] = ()
    text_values: tuple[tuple[str, object], ...] = ()

    def text(self, part: str) -> str:
        """Return the step's `title`, `why`, `verify` or `warning` text in the user's language."""
        key = dict(self.text_keys).get(part, f"{self.area}.step.{self.id}.{part}")
        return message(key, **dict(self.text_values))

    @property
    def phase_title(self) -> str:
        return message(f"{self.area}.phase.{self.phase}")

    @property
    def support_label(self) -> str:
        """Return the support label in the user's language (supported, or community method)."""
        return message(f"imaging_steps.support.{self.support}")

    @property
    def title(self) -> str:
        return self.text("title")

    @property
    def why(self) -> str:
        return self.text("why")

    @property
    def verify(self) -> str:
        return self.text("verify")

    @property
    def warning(self) -> str | None:
        """Return the warning text, or None for a step without one."""
        key = dict(self.text_keys).get("warning", f"{self.area}.step.{self.id}.warning")
        return message(key, **dict(self.text_values)) if key in catalog() else None


STEPS: tuple[Step, ...] = (
    Step("clean_install", "prepare"),
    Step("updates", "prepare", ("wmic os get Caption,CSDVersion,Version",)),
    Step("workgroup", "prepare"),
    Step("sfc_cache", "slim", ("sfc /cachesize=0", "sfc /purgecache")),
    Step("page_file", "slim", ('reg query "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Memory Management"'
                               " /v PagingFiles",)),
    Step("system_restore", "slim", ('reg query "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\SystemRestore"'
                                    " /v DisableSR",)),
    Step("hibernation", "slim", ("powercfg /hibernate off",)),
    Step("temp_files", "slim", ("cleanmgr /sageset:1", "cleanmgr /sagerun:1")),
    Step("hal_check", "drivers", ('UpdateUPHAL = "ACPIAPIC_UP,%WINDIR%\\Inf\\Hal.inf"',
                                  'UpdateHAL = "ACPIAPIC_MP,%WINDIR%\\Inf\\Hal.inf"')),
    Step("hal_standard_pc", "drivers", support=COMMUNITY, instead_of="hal_check"),
    Step("vendor_software", "drivers"),
    Step("driver_store", "drivers", (r"OemPnPDriversPath = Drivers\Net;Drivers\Video;Drivers\Audio",)),
    Step("mass_storage", "drivers", ("[Sysprep]", "BuildMassStorageSection = Yes", "[SysprepMassStorage]",
                                     r"C:\Sysprep\sysprep.exe -bmsd")),
    Step("intelppm", "drivers", ("sc config intelppm start= disabled",
                                 r"reg query HKLM\SYSTEM\ControlSet001\Services\intelppm /v Start",
                                 r"reg query HKLM\SYSTEM\ControlSet002\Services\intelppm /v Start",
                                 r"reg save HKLM\SYSTEM SYSTEM.hiv",
                                 "adminkb sysprep intelppm SYSTEM.hiv")),
    Step("deploy_tools", "answer_file", (r"md C:\Sysprep",
                                         r"expand D:\SUPPORT\TOOLS\DEPLOY.CAB -F:* C:\Sysprep")),
    Step("write_answer_file", "answer_file", (r"C:\Sysprep\setupmgr.exe",)),
    Step("language_files", "answer_file", (r"xcopy D:\I386\LANG C:\Sysprep\i386\LANG\ /E /I",
                                           r"InstallFilesPath = C:\Sysprep\i386")),
    Step("lint_answer_file", "answer_file", ("adminkb sysprep lint sysprep.inf",)),
    Step("run_sysprep", "sysprep", (r"C:\Sysprep\sysprep.exe -reseal -mini -quiet -forceshutdown",)),
    Step("plan_split", "capture"),
    Step("capture_image", "capture", (r"ghost -clone,mode=pdump,src=1:1,dst=D:\XP.GHO -split=640 -z9 -sure",)),
    Step("check_image", "capture", (r"ghost -chkimg,D:\XP.GHO",)),
    Step("boot_disc", "boot_media"),
    Step("burn_spans", "boot_media"),
    Step("choose_hal", "restore"),
    Step("restore_image", "restore", (r"ghost -clone,mode=pload,src=D:\XP.GHO:1,dst=1:1 -sure",)),
    Step("after_restore", "restore", ("sfc /cachesize=<MB>", "powercfg /hibernate on")),
    Step("amd_reboot_loop", "known_problems", ("disable intelppm", "sc config intelppm start= disabled")),
    Step("stop_7b", "known_problems"),
    Step("wrong_hal", "known_problems"),
)

STEPS_BY_ID = {step.id: step for step in STEPS}


def phase_title(phase: str) -> str:
    """Return a phase's title in the user's language."""
    return message(f"imaging_steps.phase.{phase}")


def phases_of(steps: Sequence[Step]) -> list[str]:
    """Return the phases of a step list in the order they first appear."""
    return list(dict.fromkeys(step.phase for step in steps))


def steps_in(phase: str) -> list[Step]:
    """Return the steps of one phase, in procedure order."""
    return [step for step in STEPS if step.phase == phase]
