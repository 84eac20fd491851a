"""Tests for adminkb.exercises: each check fails on a fresh lab, passes after the solution, and
names what is wrong after a typical mistake. Every check talks to a real mail lab on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adminkb.errors import InputError
from adminkb.exercises import (
    EXERCISES, check_exercise, exercise_table, exercises_for, get_exercise, register, show_exercise, solve_exercise,
)
from adminkb.i18n import catalog
from adminkb.lab import can_bind_source_address
from adminkb.target import SmtpTarget, open_target

needs_aliases = pytest.mark.skipif(
    not (can_bind_source_address("127.0.0.20") and can_bind_source_address("127.0.0.66")),
    reason="this host cannot use 127.0.0.20 and 127.0.0.66 as source addresses")


@pytest.fixture
def target() -> Iterator[SmtpTarget]:
    lab_target = open_target("lab", source_address="127.0.0.10")
    try:
        yield lab_target
    finally:
        lab_target.close()


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_exercise_has_catalog_texts(exercise_id):
    assert f"exercises.{exercise_id}.title" in catalog()
    assert f"exercises.{exercise_id}.task" in catalog()


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_exercise_open_on_fresh_lab(exercise_id, target):
    result = check_exercise(exercise_id, target)
    assert not result.done
    assert result.problems
    assert "尚未完成" in repr(result)


@needs_aliases
@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_solution_passes_check(exercise_id, target):
    solve_exercise(exercise_id, target)
    result = check_exercise(exercise_id, target)
    assert result.problems == ()
    assert result.done
    assert "完成" in repr(result)
    assert "✔" in result._repr_html_()


def test_runbooks_01_and_02_have_exercises():
    assert [exercise.exercise_id for exercise in exercises_for("01")] == ["second_app_relay"]
    assert [exercise.exercise_id for exercise in exercises_for("02")] == ["dot_line"]


@needs_aliases
def test_relay_open_reported(target):
    target.lab.set_relay_open()
    problems = check_exercise("second_app_relay", target).problems
    assert len(problems) == 2
    assert "Open Relay" in problems[0]
    assert "127.0.0.66" in problems[1]


@needs_aliases
def test_relay_subnet_too_broad_reported(target):
    target.lab.allow_relay("127.0.0.0/8")
    problems = check_exercise("second_app_relay", target).problems
    assert len(problems) == 1
    assert "127.0.0.66" in problems[0]


@needs_aliases
def test_relay_missing_second_app_reported(target):
    target.lab.allow_relay("127.0.0.10")
    problems = check_exercise("second_app_relay", target).problems
    assert len(problems) == 1
    assert "127.0.0.20" in problems[0]
    assert "550 5.7.1" in problems[0]


def test_dot_line_waiting_in_pickup_reported(target):
    letter = target.compose_message("app@example.com", ["helpdesk@example.com"], "練習：句點測試",
                                    "Backup report\n.\nEND OF EXERCISE\n", tag="waiting")
    target.write_pickup(letter, name="waiting.eml")
    problems = check_exercise("dot_line", target).problems
    assert len(problems) == 1
    assert "target.process_pickup()" in problems[0]


def test_dot_line_undoubled_reported(target):
    letter = target.compose_message("app@example.com", ["helpdesk@example.com"], "練習：句點測試",
                                    "Backup report\n.\nEND OF EXERCISE\n", tag="careless")
    target.write_pickup(letter, name="careless.eml", double_dots=False)
    target.process_pickup()
    problems = check_exercise("dot_line", target).problems
    assert len(problems) == 1
    assert "截斷" in problems[0]


def test_dot_line_other_subject_ignored(target):
    letter = target.compose_message("app@example.com", ["helpdesk@example.com"], "別的主旨",
                                    "Backup report\n.\nEND OF EXERCISE\n", tag="other")
    target.write_pickup(letter, name="other.eml")
    target.process_pickup()
    problems = check_exercise("dot_line", target).problems
    assert len(problems) == 1
    assert "Drop" in problems[0]


def test_dot_line_retry_after_mistake_passes(target):
    letter = target.compose_message("app@example.com", ["helpdesk@example.com"], "練習：句點測試",
                                    "Backup report\n.\nEND OF EXERCISE\n", tag="first-try")
    target.write_pickup(letter, name="first-try.eml", double_dots=False)
    target.process_pickup()
    solve_exercise("dot_line", target)
    assert check_exercise("dot_line", target).done


def test_check_on_real_server_says_lab_only():
    real = SmtpTarget("192.0.2.25:25")
    result = check_exercise("dot_line", real)
    assert not result.done
    assert "SERVER = \"lab\"" in result.problems[0]


def test_solve_on_real_server_raises():
    with pytest.raises(InputError) as caught:
        solve_exercise("dot_line", SmtpTarget("192.0.2.25:25"))
    assert caught.value.key == "exercises.lab_only"


def test_unknown_exercise_raises():
    with pytest.raises(InputError) as caught:
        get_exercise("no_such_exercise")
    assert "no_such_exercise" in str(caught.value)
    assert "dot_line" in str(caught.value)


def test_duplicate_id_rejected():
    with pytest.raises(ValueError, match="dot_line"):
        register("dot_line", "02", lambda target: [], lambda target: None)


def test_task_display_from_catalog():
    task = show_exercise("second_app_relay")
    assert repr(task).startswith("練習：讓第二台應用程式伺服器轉送")
    assert "127.0.0.20" in repr(task)
    assert "127.0.0.20" in task._repr_html_()


def test_english_texts(monkeypatch, target):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert repr(show_exercise("dot_line")).startswith("Exercise: Deliver the line")
    assert "not done yet" in repr(check_exercise("dot_line", target))


def test_exercise_table_lists_all():
    table = exercise_table()
    assert len(table) == len(EXERCISES)
    assert list(table.iloc[:, 1]) == sorted(EXERCISES, key=lambda name: (EXERCISES[name].runbook, name))
    assert "讓第二台應用程式伺服器轉送" in list(table.iloc[:, 2])
