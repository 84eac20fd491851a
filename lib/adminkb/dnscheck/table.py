"""Check results as a pandas table, for runbooks: one row a result, texts in the user's language."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from adminkb.dnscheck.result import CheckResult
from adminkb.i18n import message

COLUMNS = ("check", "subject", "verdict", "records", "explanation", "next_step")


def verdict_text(result: CheckResult) -> str:
    """Return the verdict in the user's language, with the SPF result name beside it for SPF."""
    text = message(f"dnscheck.verdict.{result.verdict}")
    if result.spf_result is not None:
        text = f"{text} / {message(f'dnscheck.spf.result_name.{result.spf_result}')}"
    return text


def results_table(results: Iterable[CheckResult], *, explain: bool = True) -> pd.DataFrame:
    """Return one row per result: check, subject, verdict, records seen and, with `explain`, the
    explanation and next step."""
    columns = COLUMNS if explain else COLUMNS[:4]
    rows = []
    for result in results:
        row = [message(f"dnscheck.check_name.{result.check}"), result.subject, verdict_text(result),
               "\n".join(result.records) or "-"]
        if explain:
            row += [result.explanation(), result.next_step()]
        rows.append(row)
    return pd.DataFrame(rows, columns=[message(f"dnscheck.cli.column_{name}") for name in columns])
