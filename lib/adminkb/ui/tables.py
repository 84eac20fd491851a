"""Tables for the runbooks: the imaging and Remote Desktop results as pandas DataFrames.

Column names and verdicts come from the catalog, rows keep the order of the procedure, so a
runbook's stored output is the same on every run.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from adminkb.i18n import message
from adminkb.imaging.hal import HALS, HalAdvice, Machine, advise_hal
from adminkb.imaging.intelppm import IntelppmCheck, intelppm_rows
from adminkb.imaging.split import SplitPlan
from adminkb.imaging.sysprep import LintResult
from adminkb.imaging.unattend import UnattendFinding


def _frame(rows: list[dict[str, object]], columns: Sequence[str]) -> pd.DataFrame:
    headers = {column: message(f"ui.table.{column}") for column in columns}
    frame = pd.DataFrame(rows, columns=list(columns)).rename(columns=headers)
    frame.index = range(1, len(frame) + 1)
    return frame


def hal_table(moves: Sequence[tuple[str, Machine, Machine]]) -> pd.DataFrame:
    """Return one row a (label, source, target) move: both HALs, the verdict and the sysprep.inf line."""
    rows = []
    for label, source, target in moves:
        advice: HalAdvice = advise_hal(source, target)
        rows.append({"move": label, "source_hal": _hal_name(advice.source_hal), "target_hal": _hal_name(advice.target_hal),
                     "verdict": message(f"ui.hal_verdict.{advice.verdict}"), "update_line": advice.update_line or "",
                     "reason": message(advice.reason_key)})
    return _frame(rows, ("move", "source_hal", "target_hal", "verdict", "update_line", "reason"))


def _hal_name(hal_id: str) -> str:
    name, file_name = HALS[hal_id]
    return f"{name} ({file_name})"


def lint_table(result: LintResult) -> pd.DataFrame:
    """Return the sysprep.inf findings: line, severity, rule, problem and fix."""
    rows = [{"line": finding.line, "severity": message(f"imaging_sysprep.cli.severity.{finding.severity}"),
             "rule": finding.rule, "problem": finding.problem, "fix": finding.fix} for finding in result.findings]
    return _frame(rows, ("line", "severity", "rule", "problem", "fix"))


def split_table(plan: SplitPlan) -> pd.DataFrame:
    """Return a split plan as item and value rows: parts, media, part size and the two commands."""
    rows = [
        {"item": message("ui.split.image_size"), "value": f"{plan.image_bytes:,} bytes"},
        {"item": message("ui.split.part_size"), "value": f"{plan.part_mb} MB"},
        {"item": message("ui.split.parts"), "value": ", ".join(plan.parts)},
        {"item": message("ui.split.media_needed"), "value": str(plan.media_needed)},
        {"item": message("ui.split.capture"), "value": plan.capture_command},
        {"item": message("ui.split.restore"), "value": plan.restore_command},
    ]
    return _frame(rows, ("item", "value"))


def intelppm_table(check: IntelppmCheck) -> pd.DataFrame:
    """Return intelppm's Start value and the verdict a control set."""
    return _frame(intelppm_rows(check), ("control_set", "start", "verdict"))


def unattend_table(findings: Sequence[UnattendFinding]) -> pd.DataFrame:
    """Return the unattend.xml findings: line, rule, problem and fix."""
    rows = [{"line": finding.line, "rule": finding.rule, "problem": finding.problem, "fix": finding.fix}
            for finding in findings]
    return _frame(rows, ("line", "rule", "problem", "fix"))


def rows_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> pd.DataFrame:
    """Return rows that another module built (such as the termsrv state or plan) under catalog headers."""
    return _frame(list(rows), columns)
