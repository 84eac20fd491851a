"""Windows XP universal-image tooling: the checklist as data, sysprep.inf, HAL rules, split plans.

Domain code only (no Jupyter imports): the runbook's widgets and the CLI build on these modules.
"""

from adminkb.imaging.sysprep import Finding, LintResult, lint_sysprep, lint_text
from adminkb.imaging.sysprep_form import SysprepForm, encode_sysprep, generate_sysprep, write_sysprep

__all__ = ["Finding", "LintResult", "SysprepForm", "encode_sysprep", "generate_sysprep", "lint_sysprep",
           "lint_text", "write_sysprep"]
