"""Training exercises (練習) on the mail lab: a task, a check of the lab, and a reference solution.

A runbook shows an exercise's task with `show_exercise(ID)`, leaves a cell for the trainee, and
ends with `check_exercise(ID, target)`, which inspects the lab and states in the reader's
language what is still wrong or that the task is done. Checks look at the lab's behaviour the
way an admin would (real SMTP sessions from the relevant client addresses, the files in
mailroot), so any correct way of solving the task passes.

To add an exercise for another runbook, write two functions that take the runbook's
`SmtpTarget`. The check returns a list of problems as catalog messages, empty when the task is
done. The solution changes the lab and is used only by the tests. Add the catalog entries
`exercises.<id>.title` and `exercises.<id>.task`, and call `register()` at the end of this module.
"""

from __future__ import annotations

import email.policy
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path

import pandas as pd

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import can_bind_source_address
from adminkb.smtp import probe
from adminkb.target import SmtpTarget

logger = logging.getLogger("adminkb.exercises")

# Seconds for each SMTP step of a check's probe. The lab replies on loopback within milliseconds.
CHECK_TIMEOUT = 10.0

Check = Callable[[SmtpTarget], list[str]]
Solution = Callable[[SmtpTarget], None]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id, the runbook it belongs to, its check and its reference solution."""

    exercise_id: str
    runbook: str
    check: Check
    solve: Solution

    @property
    def title(self) -> str:
        return message(f"exercises.{self.exercise_id}.title")

    @property
    def task(self) -> str:
        return message(f"exercises.{self.exercise_id}.task")


EXERCISES: dict[str, Exercise] = {}


def register(exercise_id: str, runbook: str, check: Check, solve: Solution) -> Exercise:
    """Add an exercise to EXERCISES; an id used twice raises ValueError."""
    if exercise_id in EXERCISES:
        raise ValueError(f"exercise id {exercise_id!r} is registered twice")
    exercise = Exercise(exercise_id, runbook, check, solve)
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


def check_exercise(exercise_id: str, target: SmtpTarget) -> ExerciseResult:
    """Inspect the lab behind `target` and return whether the exercise is done, or what is still wrong."""
    exercise = get_exercise(exercise_id)
    if not target.is_lab:
        return ExerciseResult(exercise, (message("exercises.lab_only"),))
    problems = exercise.check(target)
    logger.info("exercise %s checked: %d problems", exercise_id, len(problems))
    return ExerciseResult(exercise, tuple(problems))


def solve_exercise(exercise_id: str, target: SmtpTarget) -> None:
    """Apply the exercise's reference solution to the lab behind `target` (for tests and instructors)."""
    exercise = get_exercise(exercise_id)
    if not target.is_lab:
        raise InputError("exercises.lab_only", value=target.server, next_key="exercises.lab_only_next")
    exercise.solve(target)


# --- shared helpers ---------------------------------------------------------------------------

def _relay_accepted(target: SmtpTarget, client: str, mail_from: str, recipient: str) -> bool | None:
    """Return whether the lab accepts `recipient` from a client at `client`; None when it cannot be tried.

    The session stops after RCPT TO, so nothing is queued.
    """
    if not can_bind_source_address(client):
        return None
    result = probe(target.host, target.port, mail_from=mail_from, rcpt_to=[recipient], source_address=client,
                   timeout=CHECK_TIMEOUT)
    return recipient in result.accepted


def _read_stored(path: Path) -> tuple[list[str], str, str]:
    """Return a stored message file's X-Receiver recipients, decoded Subject and plain-text body."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
    recipients = [value.strip().lower() for value in parsed.get_all("X-Receiver", [])]
    part = parsed.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    return recipients, str(parsed.get("Subject", "")), body.replace("\r\n", "\n")


# --- runbook 01: relay restrictions -----------------------------------------------------------

SECOND_APP = "127.0.0.20"
STRANGER = "127.0.0.66"
RELAY_SENDER = "app@example.com"
RELAY_RECIPIENT = "user@example.net"


def _check_second_app_relay(target: SmtpTarget) -> list[str]:
    lab = target.lab
    problems = []
    if lab.relay_open:
        problems.append(message("exercises.second_app_relay.open_relay"))
    second = _relay_accepted(target, SECOND_APP, RELAY_SENDER, RELAY_RECIPIENT)
    stranger = _relay_accepted(target, STRANGER, RELAY_SENDER, RELAY_RECIPIENT)
    if second is None or stranger is None:
        return [*problems, message("exercises.no_loopback_alias", addresses=f"{SECOND_APP}, {STRANGER}")]
    if not second:
        problems.append(message("exercises.second_app_relay.still_denied", address=SECOND_APP,
                                recipient=RELAY_RECIPIENT))
    if stranger:
        problems.append(message("exercises.second_app_relay.stranger_relays", address=STRANGER))
    return problems


def _solve_second_app_relay(target: SmtpTarget) -> None:
    target.lab.allow_relay(SECOND_APP)


register("second_app_relay", "01", _check_second_app_relay, _solve_second_app_relay)


# --- runbook 02: the Pickup directory ---------------------------------------------------------

DOT_SUBJECT = "練習：句點測試"
DOT_RECIPIENT = "helpdesk@example.com"
DOT_SENDER = "app@example.com"
DOT_LAST_LINE = "END OF EXERCISE"
DOT_BODY = f"Backup report\n.\n{DOT_LAST_LINE}\n"


def _check_dot_line(target: SmtpTarget) -> list[str]:
    lab = target.lab
    waiting = lab.pickup_files()
    delivered = []
    for path in lab.drop_files():
        recipients, subject, body = _read_stored(path)
        if DOT_RECIPIENT in recipients and subject == DOT_SUBJECT:
            delivered.append(body)
    if not delivered:
        key = "exercises.dot_line.still_in_pickup" if waiting else "exercises.dot_line.not_in_drop"
        return [message(key, recipient=DOT_RECIPIENT, subject=DOT_SUBJECT)]
    # A trainee may try several times, so one intact delivery is enough.
    if any(_dot_line_intact(body) for body in delivered):
        return []
    return [message("exercises.dot_line.truncated", last_line=DOT_LAST_LINE)]


def _dot_line_intact(body: str) -> bool:
    lines = body.splitlines()
    return "." in lines and DOT_LAST_LINE in lines and lines.index(".") < lines.index(DOT_LAST_LINE)


def _solve_dot_line(target: SmtpTarget) -> None:
    letter = target.compose_message(DOT_SENDER, [DOT_RECIPIENT], DOT_SUBJECT, DOT_BODY, tag="exercise-dots")
    target.write_pickup(letter, name="exercise-dots.eml")
    target.process_pickup()


register("dot_line", "02", _check_dot_line, _solve_dot_line)


def exercise_table() -> pd.DataFrame:
    """Return every registered exercise as a table (runbook, id, title), for the index and instructors."""
    rows = [{message("exercises.column_runbook"): exercise.runbook,
             message("exercises.column_id"): exercise.exercise_id,
             message("exercises.column_title"): exercise.title}
            for exercise in sorted(EXERCISES.values(), key=lambda item: (item.runbook, item.exercise_id))]
    return pd.DataFrame(rows)
