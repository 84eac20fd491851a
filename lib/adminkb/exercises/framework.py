"""The exercise registry and what a runbook calls: show or start a task, check it, solve it.

The runbook modules of this package register their exercises here. See the package
documentation for how a runbook uses an exercise and how to add one.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from adminkb.errors import InputError
from adminkb.i18n import message

logger = logging.getLogger("adminkb.exercises")

# A runbook's target: `adminkb.target.SmtpTarget`, or `adminkb.securitylab.SecurityTarget` in the
# security runbook. Exercises use what both have: `is_lab`, `lab`, `host` and `port`.
Target = Any
Check = Callable[[Target], list[str]]
Change = Callable[[Target], None]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id, its runbook, its check, its reference solution and its optional set-up steps.

    `stage` changes the runbook's lab to pose the task (a fault to find, a message waiting in
    Queue), and `start_exercise()` runs it. `prepare` replays, on a fresh lab, the runbook steps
    that come before the exercise, so that tests and instructors can start from that state.
    """

    exercise_id: str
    runbook: str
    check: Check
    solve: Change
    stage: Change | None = None
    prepare: Change | None = None

    @property
    def title(self) -> str:
        return message(f"exercises.{self.exercise_id}.title")

    @property
    def task(self) -> str:
        return message(f"exercises.{self.exercise_id}.task")


EXERCISES: dict[str, Exercise] = {}


def register(exercise_id: str, runbook: str, check: Check, solve: Change, *, stage: Change | None = None,
             prepare: Change | None = None) -> Exercise:
    """Add an exercise to EXERCISES; an id used twice raises ValueError."""
    if exercise_id in EXERCISES:
        raise ValueError(f"exercise id {exercise_id!r} is registered twice")
    exercise = Exercise(exercise_id, runbook, check, solve, stage, prepare)
    EXERCISES[exercise_id] = exercise
    return exercise


def get_exercise(exercise_id: str) -> Exercise:
    """Return the exercise with this id, or raise InputError listing the known ids."""
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise InputError("exercises.unknown", value=exercise_id, known=", ".join(sorted(EXERCISES)),
                         next_key="exercises.unknown_next") from None


def exercises_for(runbook: str) -> list[Exercise]:
    """Return the exercises of one runbook ("01"), in the order they were registered."""
    return [exercise for exercise in EXERCISES.values() if exercise.runbook == runbook]


class ExerciseTask:
    """An exercise's task text as a notebook shows it."""

    def __init__(self, exercise: Exercise) -> None:
        self.exercise = exercise

    def __repr__(self) -> str:
        return message("exercises.task_heading", title=self.exercise.title) + "\n" + self.exercise.task

    def _repr_html_(self) -> str:
        heading = html.escape(message("exercises.task_heading", title=self.exercise.title))
        return (f'<div class="adminkb-exercise"><strong>{heading}</strong>'
                f"<p>{html.escape(self.exercise.task)}</p></div>")


@dataclass(frozen=True)
class ExerciseResult:
    """The outcome of a check: done, or the problems still found in the lab."""

    exercise: Exercise
    problems: tuple[str, ...]

    @property
    def done(self) -> bool:
        return not self.problems

    def __repr__(self) -> str:
        if self.done:
            return message("exercises.result_done", title=self.exercise.title)
        lines = [message("exercises.result_open", title=self.exercise.title)]
        lines += [f"- {problem}" for problem in self.problems]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        if self.done:
            text = html.escape(message("exercises.result_done", title=self.exercise.title))
            return f'<p class="adminkb-exercise-done">✔ {text}</p>'
        items = "".join(f"<li>{html.escape(problem)}</li>" for problem in self.problems)
        heading = html.escape(message("exercises.result_open", title=self.exercise.title))
        return f'<div class="adminkb-exercise-open"><p>✘ {heading}</p><ul>{items}</ul></div>'


def show_exercise(exercise_id: str) -> ExerciseTask:
    """Return the exercise's task for display in a notebook."""
    return ExerciseTask(get_exercise(exercise_id))


def start_exercise(exercise_id: str, target: Target) -> ExerciseTask:
    """Stage the exercise's starting situation in the lab behind `target` and return its task.

    A real server is left alone: the task is shown, and the check then reports that exercises run
    only in the lab.
    """
    exercise = get_exercise(exercise_id)
    if exercise.stage is not None and target.is_lab:
        exercise.stage(target)
        logger.info("exercise %s staged in the lab", exercise_id)
    return ExerciseTask(exercise)


def check_exercise(exercise_id: str, target: Target) -> ExerciseResult:
    """Inspect the lab behind `target` and return whether the exercise is done, or what is still wrong."""
    exercise = get_exercise(exercise_id)
    if not target.is_lab:
        return ExerciseResult(exercise, (message("exercises.lab_only"),))
    problems = exercise.check(target)
    logger.info("exercise %s checked: %d problems", exercise_id, len(problems))
    return ExerciseResult(exercise, tuple(problems))


def solve_exercise(exercise_id: str, target: Target) -> None:
    """Apply the exercise's reference solution to the lab behind `target` (for tests and instructors)."""
    exercise = get_exercise(exercise_id)
    if not target.is_lab:
        raise InputError("exercises.lab_only", value=target.server, next_key="exercises.lab_only_next")
    exercise.solve(target)


def prepare_exercise(exercise_id: str, target: Target) -> None:
    """Bring a fresh lab to the state in which the runbook poses the exercise, then stage the exercise.

    This runs the runbook's earlier steps (for tests, and for instructors who start a class at
    the exercise). Raises InputError for a real server.
    """
    exercise = get_exercise(exercise_id)
    if not target.is_lab:
        raise InputError("exercises.lab_only", value=target.server, next_key="exercises.lab_only_next")
    if exercise.prepare is not None:
        exercise.prepare(target)
    if exercise.stage is not None:
        exercise.stage(target)


def exercise_table() -> pd.DataFrame:
    """Return every registered exercise as a table (runbook, id, title), for the index and instructors."""
    rows = [{message("exercises.column_runbook"): exercise.runbook,
             message("exercises.column_id"): exercise.exercise_id,
             message("exercises.column_title"): exercise.title}
            for exercise in sorted(EXERCISES.values(), key=lambda item: (item.runbook, item.exercise_id))]
    return pd.DataFrame(rows)
