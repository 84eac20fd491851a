"""Both READMEs describe the collection as it is: runbook status and the command list."""

import re
from pathlib import Path

import pytest

from adminkb.cli import AREA_MODULES
from adminkb.runbooks import RUNBOOKS

ROOT = Path(__file__).resolve().parents[1]
READMES = {"README.md": "available", "README.zh-TW.md": "可用"}


def runbook_rows(text: str) -> dict[str, str]:
    """Map each runbook number in the README's table to its row."""
    return {match.group(1): match.group(0) for match in re.finditer(r"^\| (\d\d) \|.*\|$", text, re.M)}


@pytest.mark.parametrize("readme", sorted(READMES))
def test_every_runbook_listed_with_its_status(readme):
    rows = runbook_rows((ROOT / readme).read_text(encoding="utf-8"))
    assert sorted(rows) == sorted(runbook.number for runbook in RUNBOOKS)
    for runbook in RUNBOOKS:
        written = (ROOT / "notebooks" / runbook.filename).is_file()
        row = rows[runbook.number]
        assert row.rstrip(" |").endswith(READMES[readme]) == written, row
        if written:
            assert f"`notebooks/{runbook.filename}`" in row, row


@pytest.mark.parametrize("readme", sorted(READMES))
def test_every_command_area_in_the_command_table(readme):
    text = (ROOT / readme).read_text(encoding="utf-8")
    for area in AREA_MODULES:
        assert re.search(rf"^\| `adminkb {area}\b", text, re.M), f"{readme} does not list `adminkb {area}`"
