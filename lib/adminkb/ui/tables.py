"""Tables for the runbooks: the imaging and Remote Desktop results as pandas DataFrames.

Column names and verdicts come from the catalog, rows keep the order of the procedure, so a
runbook's stored output is the same on every run. The imaging tables are `FullTextTable`s: they
show every cell in full, because a technician copies commands and file names from them, and a
table without rows shows one line in the user's language instead of pandas' "Empty DataFrame".
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pandas as pd

from adminkb.i18n import message
from adminkb.imaging.computer_names import name_rows
from adminkb.imaging.hal import HALS, HalAdvice, Machine, advise_hal
from adminkb.imaging.intelppm import IntelppmCheck, intelppm_rows
from adminkb.imaging.split import SplitPlan
from adminkb.imaging.sysprep import LintResult
from adminkb.imaging.unattend import UnattendFinding


# pandas display options that would otherwise cut cells or leave out rows and columns.
_SHOW_ALL = ("display.max_colwidth", None, "display.max_columns", None, "display.max_rows", None)


class FullTextTable(pd.DataFrame):
    """A DataFrame whose text and HTML forms never cut a cell, with a message for a table without rows.

    pandas cuts cells longer than `display.max_colwidth` (50 characters by default) and ends them
    with "...", which would cut commands in the middle. In a terminal it also leaves out columns
    that do not fit the console width.
    """

    _metadata = ["empty_text"]
    # The line shown in place of a table without rows. None keeps pandas' own form.
    empty_text: str | None = None

    @property
    def _constructor(self) -> type[FullTextTable]:
        return FullTextTable

    def __repr__(self) -> str:
        if self.empty and self.empty_text:
            return self.empty_text
        with pd.option_context(*_SHOW_ALL):
            return super().__repr__()

    def _repr_html_(self) -> str | None:
        if self.empty and self.empty_text:
            return f"<p>{escape(self.empty_text)}</p>"
        with pd.option_context(*_SHOW_ALL):
            return super()._repr_html_()


def _frame(rows: list[dict[str, object]], columns: Sequence[str]) -> pd.DataFrame:
    headers = {column: message(f"ui.table.{column}") for column in columns}
    frame = pd.DataFrame(rows, columns=list(columns)).rename(columns=headers)
    frame.index = range(1, len(frame) + 1)
    return frame


def _full_text(rows: list[dict[str, object]], columns: Sequence[str], empty_key: str | None = None) -> FullTextTable:
    table = FullTextTable(_frame(rows, columns))
    if empty_key is not None:
        table.empty_text = message(empty_key)
    return table


def hal_table(moves: Sequence[tuple[str, Machine, Machine]]) -> pd.DataFrame:
    """Return one row a (label, source, target) move: both HALs, the verdict and the sysprep.inf line."""
    rows = []
    for label, source, target in moves:
        advice: HalAdvice = advise_hal(source, target)
        rows.append({"move": label, "source_hal": _hal_name(advice.source_hal), "target_hal": _hal_name(advice.target_hal),
                     "verdict": message(f"ui.hal_verdict.{advice.verdict}"), "update_line": advice.update_line or "",
                     "reason": advice.reason})
    return _full_text(rows, ("move", "source_hal", "target_hal", "verdict", "update_line", "reason"))


def _hal_name(hal_id: str) -> str:
    name, file_name = HALS[hal_id]
    return f"{name} ({file_name})"


def lint_table(result: LintResult) -> pd.DataFrame:
    """Return the sysprep.inf findings: line, severity, rule, problem and fix."""
    rows = [{"line": finding.line, "severity": message(f"imaging_sysprep.cli.severity.{finding.severity}"),
             "rule": finding.rule, "problem": finding.problem, "fix": finding.fix} for finding in result.findings]
    return _full_text(rows, ("line", "severity", "rule", "problem", "fix"), "ui.table.no_findings")


def split_table(plan: SplitPlan) -> pd.DataFrame:
    """Return a split plan as item and value rows: parts, media, part size and the two commands.

    A Ghost plan's first command captures the disk into spans. A DISM plan's first command only
    splits a WIM file that was captured before, so its row is labelled as the split command.
    """
    first_command = "ui.split.capture" if plan.tool == "ghost" else "ui.split.split"
    rows = [
        {"item": message("ui.split.image_size"), "value": message("ui.split.bytes", count=f"{plan.image_bytes:,}")},
        {"item": message("ui.split.part_size"), "value": f"{plan.part_mb} MB"},
        {"item": message("ui.split.parts"), "value": ", ".join(plan.parts)},
        {"item": message("ui.split.media_needed"), "value": str(plan.media_needed)},
        {"item": message(first_command), "value": plan.capture_command},
        {"item": message("ui.split.restore"), "value": plan.restore_command},
    ]
    return _full_text(rows, ("item", "value"))


def names_table(names: Sequence[str]) -> pd.DataFrame:
    """Return the computer names of a pattern with their length in cp950 bytes (at most 15 each)."""
    return _full_text(name_rows(names), ("computer_name", "bytes"))


def intelppm_table(check: IntelppmCheck) -> pd.DataFrame:
    """Return intelppm's Start value and the verdict a control set."""
    return _full_text(intelppm_rows(check), ("control_set", "start", "verdict"))


def unattend_table(findings: Sequence[UnattendFinding]) -> pd.DataFrame:
    """Return the unattend.xml findings: line, rule, problem and fix."""
    rows = [{"line": finding.line, "rule": finding.rule, "problem": finding.problem, "fix": finding.fix}
            for finding in findings]
    return _full_text(rows, ("line", "rule", "problem", "fix"), "ui.table.no_findings")


def rows_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> FullTextTable:
    """Return rows that another module built (such as the termsrv state or plan) under catalog headers.

    The table is a FullTextTable, which shows long cells such as registry paths in full.
    """
    return _full_text(list(rows), columns)
