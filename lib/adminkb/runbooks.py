"""The collection's table of contents: every runbook, planned or written, and the question it addresses.

The index runbook and the README list the runbooks from here, so a runbook added to
`notebooks/` shows up as available in both without editing prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from adminkb.i18n import message

# The notebooks folder of the checkout this package is installed from (run.py and
# environment.yml install it in editable mode, so this is the repository's own folder).
NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass(frozen=True)
class Runbook:
    """One knowledge-base item: its notebook file name and its catalog keys under `runbooks.`."""

    number: str
    filename: str
    topic: str

    @property
    def title(self) -> str:
        return message(f"runbooks.{self.topic}.title")

    @property
    def question(self) -> str:
        return message(f"runbooks.{self.topic}.question")


RUNBOOKS = (
    Runbook("00", "00_index.ipynb", "index"),
    Runbook("01", "01_smtp_session.ipynb", "smtp_session"),
    Runbook("02", "02_pickup_directory.ipynb", "pickup"),
    Runbook("03", "03_mailroot_inspection.ipynb", "mailroot"),
    Runbook("04", "04_smtp_log_analysis.ipynb", "smtp_logs"),
    Runbook("05", "05_dns_smarthost_limits.ipynb", "dns_smarthost"),
    Runbook("06", "06_security.ipynb", "security"),
    Runbook("07", "07_troubleshoot_delivery.ipynb", "troubleshoot"),
    Runbook("10", "10_xp_universal_image.ipynb", "xp_image"),
    Runbook("20", "20_xp_rdp_concurrent_sessions.ipynb", "xp_rdp"),
)


def runbook_table(folder: Path | None = None) -> pd.DataFrame:
    """Return the runbooks as a table with their status: available, or coming when not yet written."""
    folder = folder or (NOTEBOOKS_DIR if NOTEBOOKS_DIR.is_dir() else Path.cwd())
    rows = []
    for runbook in RUNBOOKS:
        available = (folder / runbook.filename).is_file()
        rows.append({
            message("runbooks.column_number"): runbook.number,
            message("runbooks.column_title"): runbook.title,
            message("runbooks.column_question"): runbook.question,
            message("runbooks.column_status"): message("runbooks.available" if available else "runbooks.coming"),
            message("runbooks.column_file"): runbook.filename,
        })
    return pd.DataFrame(rows).set_index(message("runbooks.column_number"))


def show_full_cells() -> None:
    """Make pandas show every table cell in full in this kernel.

    Every runbook calls it in its first code cell. pandas cuts text cells after 50 characters and ends them with "...", which hides the end of a
    server reply, a DNS record or a next step. Rows are still limited by pandas' own options, so a
    large inventory does not flood the page.
    """
    pd.set_option("display.max_colwidth", None)
