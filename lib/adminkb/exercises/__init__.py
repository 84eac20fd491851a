"""Training exercises (練習) on the mail lab: a task, a check of the lab, and a reference solution.

A runbook shows an exercise's task with `show_exercise(ID)`, or with `start_exercise(ID, target)`
when the exercise first stages a situation in the lab (a fault, a message waiting in Queue). It
leaves a cell for the trainee and ends with `check_exercise(ID, target)`, which inspects the lab
and states in the reader's language what is still wrong or that the task is done. Checks look
at the lab's behaviour the way an admin would (real SMTP sessions from the relevant client
addresses, the files in mailroot, what the remote servers received), so any correct way of
solving the task passes.

To add an exercise for another runbook, write two functions that take the runbook's target.
The check returns a list of problems as catalog messages, empty when the task is done. The
solution changes the lab and is used only by tests and instructors. An exercise that starts
from a situation of its own also gets a `stage` function, and one that builds on the runbook's
earlier steps gets a `prepare` function that replays them on a fresh lab. Add the catalog
entries `exercises.<id>.title` and `exercises.<id>.task`, and call `register()` in the module
of the runbook's topic.
"""

from adminkb.exercises.framework import (
    EXERCISES,
    Exercise,
    ExerciseResult,
    ExerciseTask,
    check_exercise,
    exercise_table,
    exercises_for,
    get_exercise,
    prepare_exercise,
    register,
    show_exercise,
    solve_exercise,
    start_exercise,
)
from adminkb.exercises.labcheck import CHECK_TIMEOUT

# Importing the runbook modules registers their exercises, in runbook order.
from adminkb.exercises import basics, resubmit, logs, smarthost, security, troubleshoot  # noqa: E402,F401,I001

__all__ = [
    "CHECK_TIMEOUT",
    "EXERCISES",
    "Exercise",
    "ExerciseResult",
    "ExerciseTask",
    "check_exercise",
    "exercise_table",
    "exercises_for",
    "get_exercise",
    "prepare_exercise",
    "register",
    "show_exercise",
    "solve_exercise",
    "start_exercise",
]
