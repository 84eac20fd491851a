"""The runbooks' shape: registered, linked correctly, executed, zh-TW prose, lab-first parameters."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adminkb.i18n import message
from adminkb.runbooks import RUNBOOKS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ZHTW_CHECK = ROOT.parent / "shared" / "tools" / "zhtw_check.py"
LINK = re.compile(r"\]\(([^)#\s]+\.ipynb)(#[^)]*)?\)")
COMING = "即將推出"
# A "coming soon" label belongs to the runbook named earlier in its clause, which ends at one of these.
CLAUSE_END = re.compile(r"[｜|。；;\n]")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def markdown(notebook: dict) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]


def test_notebooks_exist():
    assert NOTEBOOKS, "no runbooks in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_registered_in_collection(path):
    assert path.name in {runbook.filename for runbook in RUNBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_python3_kernel(path):
    assert load(path)["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_stored_with_outputs(path):
    code_cells = [cell for cell in load(path)["cells"] if cell["cell_type"] == "code"]
    assert code_cells, f"{path.name} has no code cell"
    for index, cell in enumerate(code_cells):
        assert cell["execution_count"] is not None, f"{path.name}: code cell {index} was never executed"
        errors = [output for output in cell["outputs"] if output["output_type"] == "error"]
        assert not errors, f"{path.name}: code cell {index} stored an error"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_links_point_to_runbooks_or_say_coming(path):
    for text in markdown(load(path)):
        for line in text.splitlines():
            for target, _anchor in LINK.findall(line):
                assert (path.parent / target).is_file(), f"{path.name} links to missing {target}: {line}"
        for line in text.splitlines():
            if line.startswith("|") and "即將推出" in line:
                assert not LINK.search(line), f"{path.name}: a coming runbook must not be linked: {line}"


def runbooks_labelled_coming(text: str) -> list[str]:
    """Return the numbers of the runbooks that `text` labels as coming soon, by number or title in the label's clause."""
    numbers = []
    for label in re.finditer(COMING, text):
        clause = CLAUSE_END.split(text[:label.start()])[-1]
        for runbook in RUNBOOKS:
            named = re.search(rf"(?<!\d){runbook.number}(?!\d)", clause) or \
                message(f"runbooks.{runbook.topic}.title", "zh-TW") in clause
            if named:
                numbers.append(runbook.number)
    return numbers


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_written_runbook_not_called_coming(path):
    for text in markdown(load(path)):
        for number in runbooks_labelled_coming(text):
            runbook = next(item for item in RUNBOOKS if item.number == number)
            written = (path.parent / runbook.filename).is_file()
            assert not written, f"{path.name} calls runbook {number} coming soon, but {runbook.filename} exists"


@pytest.mark.parametrize("text, numbers", [
    ("｜ 下一篇：03 mailroot 檢查（Badmail、Queue、Drop）（即將推出）", ["03"]),
    ("- 問題在投遞階段，請看 03 mailroot 檢查手冊（即將推出）。", ["03"]),
    ("請看 SMTP 記錄檔分析手冊（即將推出）", ["04"]),
    ("[03 mailroot 檢查](03_mailroot_inspection.ipynb)。其他手冊即將推出", []),
])
def test_coming_label_finds_runbook(text, numbers):
    assert runbooks_labelled_coming(text) == numbers


def test_index_lists_every_planned_runbook():
    text = "\n".join(markdown(load(ROOT / "notebooks" / "00_index.ipynb")))
    for runbook in RUNBOOKS[1:]:
        assert re.search(rf"^\| {runbook.number} \|", text, re.MULTILINE), f"index lacks runbook {runbook.number}"
        written = (ROOT / "notebooks" / runbook.filename).is_file()
        row = re.search(rf"^\| {runbook.number} \|.*$", text, re.MULTILINE).group(0)
        assert ("即將推出" in row) != written, f"runbook {runbook.number}: status in the index is wrong: {row}"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name != "00_index.ipynb"], ids=lambda path: path.name)
def test_parameters_cell_first_code_cell(path):
    code_cells = [cell for cell in load(path)["cells"] if cell["cell_type"] == "code"]
    assert "parameters" in code_cells[0]["metadata"].get("tags", []), f"{path.name}: first code cell is not tagged parameters"


@pytest.mark.skipif(not ZHTW_CHECK.is_file(), reason="../shared/tools/zhtw_check.py (the team's zh-TW prose checker) is not beside this checkout")
def test_prose_reads_as_taiwan_chinese():
    result = subprocess.run([sys.executable, str(ZHTW_CHECK), *map(str, NOTEBOOKS)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
