"""The sample files in the repository's `data` folder, and their display in runbooks with a sample label.

Runbook 07 reads a MetaBase.xml copy and an event log export. In the lab it falls back to the
samples here, because the lab has no metabase or event log of its own. Against a real server it
skips those steps instead, so that a recorded run never shows another server's settings or
events as if they were this server's.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# The data folder of the checkout this package is installed from (editable, like NOTEBOOKS_DIR).
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SAMPLE_METABASE = DATA_DIR / "metabase" / "MetaBase_smtp.xml"
SAMPLE_EVENT_LOG = DATA_DIR / "evtx" / "System_smtpsvc_sample.evtx"


def sample_name(path: Path) -> str:
    """Return `path` relative to the repository, such as `data/metabase/MetaBase_smtp.xml`."""
    return path.relative_to(DATA_DIR.parent).as_posix()


@dataclass
class SampleTable:
    """A table read from one of the project's sample files, shown under `note`, which labels it as a sample."""

    note: str
    table: pd.DataFrame

    def __repr__(self) -> str:
        return f"{self.note}\n{self.table!r}"

    def _repr_html_(self) -> str:
        note = f"<p class='adminkb-sample-note'><strong>{html.escape(self.note)}</strong></p>"
        return note + (self.table._repr_html_() or "")


class Notice(str):
    """A sentence shown in place of a step's result, such as why the step was skipped."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<div style='border-left:4px solid #9a6700;padding:0.3em 0.8em'>{html.escape(self)}</div>"
