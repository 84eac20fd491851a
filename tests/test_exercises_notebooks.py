"""Each mail runbook (01 to 07) poses the exercises registered for it, and is stored unsolved.

The `## 練習` section of the notebook shows each exercise's task (`show_exercise` or
`start_exercise`), leaves a cell for the trainee, and checks the lab (`check_exercise`). The
stored outputs are read as nbval compares them: the task as the catalog words it, and the
check's "not done yet" message with the problems still open.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from adminkb.exercises import EXERCISES, exercises_for
from adminkb.i18n import message
from adminkb.runbooks import NOTEBOOKS_DIR, RUNBOOKS

MAIL_RUNBOOKS = ("01", "02", "03", "04", "05", "06", "07")
# The stored notebooks are executed in zh-TW, the default language.
LANGUAGE = "zh-TW"

_H2 = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)
_TASK_CALL = re.compile(r"""\b(?:show_exercise|start_exercise)\(\s*["']([A-Za-z0-9_]+)["']""")
_CHECK_CALL = re.compile(r"""\bcheck_exercise\(\s*["']([A-Za-z0-9_]+)["']\s*,""")


def _path(number: str) -> Path:
    runbook = next(item for item in RUNBOOKS if item.number == number)
    return NOTEBOOKS_DIR / runbook.filename


def _exercise_section(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Return the cells from the `## 練習` heading up to the next level-2 heading."""
    start = next((index for index, cell in enumerate(notebook.cells)
                  if cell.cell_type == "markdown" and "練習" in _H2.findall(cell.source)), None)
    assert start is not None, "the notebook has no '## 練習' section"
    section = [notebook.cells[start]]
    for cell in notebook.cells[start + 1:]:
        if cell.cell_type == "markdown" and _H2.search(cell.source):
            break
        section.append(cell)
    return section


def _text_output(cell: nbformat.NotebookNode, mime: str = "text/plain") -> str:
    """Return the cell's one stored execute_result or display_data in `mime`."""
    results = [output for output in cell.get("outputs", []) if output.get("output_type") in
               ("execute_result", "display_data")]
    assert len(results) == 1, f"expected one rich output, found {len(results)}: {cell.source!r}"
    return "".join(results[0]["data"][mime])


def _is_blank_code(cell: nbformat.NotebookNode) -> bool:
    lines = [line.strip() for line in cell.source.splitlines()]
    return cell.cell_type == "code" and all(not line or line.startswith("#") for line in lines)


@pytest.fixture(params=MAIL_RUNBOOKS)
def mail_runbook(request) -> tuple[str, Path, nbformat.NotebookNode]:
    path = _path(request.param)
    assert path.is_file(), f"mail runbook {request.param} is missing: {path.name}"
    return request.param, path, nbformat.read(path, as_version=4)


def test_mail_runbooks_all_have_exercises():
    runbooks = sorted({exercise.runbook for exercise in EXERCISES.values()})
    assert runbooks == list(MAIL_RUNBOOKS)


def test_section_poses_registered_exercises(mail_runbook):
    number, path, notebook = mail_runbook
    code = "\n".join(cell.source for cell in _exercise_section(notebook) if cell.cell_type == "code")
    registered = [exercise.exercise_id for exercise in exercises_for(number)]
    assert 1 <= len(registered) <= 2, f"runbook {number} has {len(registered)} exercises"
    assert _TASK_CALL.findall(code) == registered, f"{path.name} shows tasks {_TASK_CALL.findall(code)}"
    assert _CHECK_CALL.findall(code) == registered, f"{path.name} checks {_CHECK_CALL.findall(code)}"


def test_task_output_matches_catalog(mail_runbook):
    number, path, notebook = mail_runbook
    for exercise in exercises_for(number):
        cell = next(cell for cell in _exercise_section(notebook)
                    if cell.cell_type == "code" and exercise.exercise_id in _TASK_CALL.findall(cell.source))
        title = message(f"exercises.{exercise.exercise_id}.title", language=LANGUAGE)
        task = message(f"exercises.{exercise.exercise_id}.task", language=LANGUAGE)
        expected = message("exercises.task_heading", language=LANGUAGE, title=title) + "\n" + task
        assert _text_output(cell) == expected, f"{path.name}: the stored task of {exercise.exercise_id} is stale"


def test_blank_cell_between_task_and_check(mail_runbook):
    number, path, notebook = mail_runbook
    section = _exercise_section(notebook)
    for exercise in exercises_for(number):
        task_index = next(index for index, cell in enumerate(section)
                          if cell.cell_type == "code" and exercise.exercise_id in _TASK_CALL.findall(cell.source))
        check_index = next(index for index, cell in enumerate(section)
                           if cell.cell_type == "code" and exercise.exercise_id in _CHECK_CALL.findall(cell.source))
        assert task_index < check_index, f"{path.name}: {exercise.exercise_id} is checked before it is shown"
        between = section[task_index + 1:check_index]
        assert any(_is_blank_code(cell) for cell in between), \
            f"{path.name}: no blank cell for the trainee before the check of {exercise.exercise_id}"


def test_check_output_not_done(mail_runbook):
    number, path, notebook = mail_runbook
    for exercise in exercises_for(number):
        cell = next(cell for cell in _exercise_section(notebook)
                    if cell.cell_type == "code" and exercise.exercise_id in _CHECK_CALL.findall(cell.source))
        title = message(f"exercises.{exercise.exercise_id}.title", language=LANGUAGE)
        lines = _text_output(cell).splitlines()
        assert lines[0] == message("exercises.result_open", language=LANGUAGE, title=title), \
            f"{path.name}: the stored check of {exercise.exercise_id} is not the 'not done yet' message"
        assert len(lines) >= 2, f"{path.name}: the stored check of {exercise.exercise_id} lists no problem"
        assert all(line.startswith("- ") for line in lines[1:])
        assert "✘" in _text_output(cell, "text/html")
        assert message("exercises.lab_only", language=LANGUAGE) not in lines, \
            f"{path.name}: the exercise {exercise.exercise_id} was stored against a real server"


def test_stored_unsolved(mail_runbook):
    _, path, notebook = mail_runbook
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert "solve_exercise" not in cell.source, f"{path.name} cell {index + 1} applies a solution"
