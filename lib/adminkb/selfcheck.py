"""A quick check that this machine can run the runbooks, shown in the index runbook.

It starts the mail lab once on a fixed clock, reads its banner with the session client and
tests whether clients can use their own loopback addresses, so the output is the same on every
machine where everything works.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import pandas as pd

from adminkb.i18n import message
from adminkb.lab import STRANGER_ADDRESS, TRUSTED_CLIENT_ADDRESS, MailLab, can_bind_source_address
from adminkb.smtp import probe

MINIMUM_PYTHON = (3, 11)
# The fixed instant makes the banner (which carries the date) the same on every run.
CHECK_TIME = datetime(2026, 3, 2, 1, 15, 0, tzinfo=timezone.utc)


def _row(check: str, passed: bool, detail: str) -> dict[str, str]:
    return {
        message("selfcheck.column_check"): message(f"selfcheck.{check}"),
        message("selfcheck.column_result"): message("selfcheck.passed" if passed else "selfcheck.failed"),
        message("selfcheck.column_detail"): detail,
    }


def check_environment() -> pd.DataFrame:
    """Run the checks and return one row per check with its result and what it saw."""
    rows = []
    python_ok = sys.version_info[:2] >= MINIMUM_PYTHON
    rows.append(_row("python", python_ok, message("selfcheck.python_detail" if python_ok else "selfcheck.python_old")))

    with MailLab(clock=CHECK_TIME) as lab:
        result = probe(lab.host, lab.port, mail_from="selfcheck@example.com", rcpt_to="selfcheck@example.com",
                       quit_after="banner", timeout=5)
        banner = result.replies[0].reply.raw[0] if result.replies else ""
        rows.append(_row("lab", result.ok and banner.startswith("220 "), banner or result.verdict.summary))

    aliases = all(can_bind_source_address(address) for address in (TRUSTED_CLIENT_ADDRESS, STRANGER_ADDRESS))
    detail = message("selfcheck.aliases_detail" if aliases else "selfcheck.aliases_missing",
                     trusted=TRUSTED_CLIENT_ADDRESS, stranger=STRANGER_ADDRESS)
    rows.append(_row("aliases", aliases, detail))
    return pd.DataFrame(rows)
