"""Check results as a pandas table, for runbooks: one row a result, texts in the user's language."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from adminkb.dnscheck.result import PROBLEM, CheckResult
from adminkb.findings.table import FindingTable, finding_table
from adminkb.i18n import message

COLUMNS = ("check", "subject", "verdict", "records", "explanation", "next_step")


def verdict_text(result: CheckResult) -> str:
    """Return the verdict in the user's language, with the SPF result name beside it for SPF."""
    text = message(f"dnscheck.verdict.{result.verdict}")
    if result.spf_result is not None:
        text = f"{text} / {message(f'dnscheck.spf.result_name.{result.spf_result}')}"
    return text


def results_table(results: Iterable[CheckResult], *, explain: bool = True) -> FindingTable:
    """Return one row per result: check, subject, verdict, records seen and, with `explain`, the
    explanation and next step.

    In a runbook aimed at a real server, the table's display also lists the problems for the
    record of `adminkb run` (see `adminkb.findings`).
    """
    results = list(results)
    columns = COLUMNS if explain else COLUMNS[:4]
    rows = []
    for result in results:
        row = [message(f"dnscheck.check_name.{result.check}"), result.subject, verdict_text(result),
               "\n".join(result.records) or "-"]
        if explain:
            row += [result.explanation(), result.next_step()]
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[message(f"dnscheck.cli.column_{name}") for name in columns])
    problems = [message("findings.check_problem", check=message(f"dnscheck.check_name.{result.check}"),
                        subject=result.subject, explanation=result.explanation())
                for result in results if result.verdict == PROBLEM]
    return finding_table(frame, problems)
