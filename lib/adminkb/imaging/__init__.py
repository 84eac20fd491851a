"""Universal-image tooling: the XP checklist as data, sysprep.inf, HAL rules, intelppm, split plans, unattend.xml.

Domain code only (no Jupyter imports): the runbook's widgets and the CLI build on these modules.
"""

from adminkb.imaging.checklist import Checklist, Tick, default_state_dir
from adminkb.imaging.computer_names import ComputerNamePattern, generate_sysprep_files, write_sysprep_files
from adminkb.imaging.hal import HALS, HalAdvice, Machine, advise_hal
from adminkb.imaging.haldll import HalFile, read_hal_bytes, read_hal_dll
from adminkb.imaging.intelppm import IntelppmCheck, check_intelppm, intelppm_rows, intelppm_summary
from adminkb.imaging.split import MEDIA, Medium, SplitPlan, ghost_span_names, plan_split, swm_names
from adminkb.imaging.steps import PHASES, STEPS, STEPS_BY_ID, Step, phase_title, steps_in
from adminkb.imaging.sysprep import Finding, LintResult, lint_sysprep, lint_text
from adminkb.imaging.sysprep_form import SysprepForm, encode_sysprep, generate_sysprep, write_sysprep
from adminkb.imaging.unattend import (
    UnattendForm, check_unattend, check_unattend_file, dism_capture_command, generate_unattend, sysprep_command,
)

__all__ = [
    "HALS", "MEDIA", "PHASES", "STEPS", "STEPS_BY_ID", "Checklist", "ComputerNamePattern", "Finding", "HalAdvice",
    "HalFile", "LintResult", "generate_sysprep_files", "write_sysprep_files",
    "Machine", "Medium", "SplitPlan", "Step", "SysprepForm", "Tick", "advise_hal", "default_state_dir",
    "encode_sysprep", "generate_sysprep", "ghost_span_names", "lint_sysprep", "lint_text", "phase_title",
    "plan_split", "read_hal_bytes", "read_hal_dll", "steps_in", "swm_names", "write_sysprep",
    "IntelppmCheck", "UnattendForm", "check_intelppm", "check_unattend", "check_unattend_file",
    "dism_capture_command", "generate_unattend", "intelppm_rows", "intelppm_summary", "sysprep_command",
]
