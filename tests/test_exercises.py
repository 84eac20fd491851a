"""Tests for adminkb.exercises: each check fails on a fresh lab and at the point where the runbook
poses the exercise, passes after the solution, and names what is wrong after a typical mistake.
Every check talks to a real mail lab on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adminkb import diagnose, mailroot_ops
from adminkb.errors import InputError
from adminkb.exercises import (
    EXERCISES, check_exercise, exercise_table, exercises_for, get_exercise, prepare_exercise, register,
    show_exercise, solve_exercise, start_exercise,
)
from adminkb.exercises.logs import relay_denied_clients
from adminkb.exercises.resubmit import FAILURE_MARK
from adminkb.exercises.labcheck import read_stored
from adminkb.i18n import catalog
from adminkb.lab import can_bind_source_address
from adminkb.securitylab import open_security_target
from adminkb.target import SmtpTarget, open_target

# Every client address the exercises' checks and the security lab connect from.
CLIENT_ADDRESSES = ("127.0.0.10", "127.0.0.20", "127.0.0.30", "127.0.0.66", "127.0.0.77")

needs_aliases = pytest.mark.skipif(
    not all(can_bind_source_address(address) for address in CLIENT_ADDRESSES),
    reason="this host cannot use the loopback aliases 127.0.0.10-127.0.0.77 as source addresses")


def open_runbook_target(exercise_id: str):
    """Open the target that the exercise's runbook opens: the security lab for 06, else the mail lab."""
    if get_exercise(exercise_id).runbook == "06":
        if not all(can_bind_source_address(address) for address in CLIENT_ADDRESSES):
            pytest.skip("the security lab needs the loopback aliases 127.0.0.10-127.0.0.77")
        return open_security_target("lab")
    return open_target("lab", source_address="127.0.0.10")


@pytest.fixture
def target() -> Iterator[SmtpTarget]:
    lab_target = open_target("lab", source_address="127.0.0.10")
    try:
        yield lab_target
    finally:
        lab_target.close()


@pytest.fixture
def security_target():
    if not all(can_bind_source_address(address) for address in CLIENT_ADDRESSES):
        pytest.skip("the security lab needs the loopback aliases 127.0.0.10-127.0.0.77")
    lab_target = open_security_target("lab")
    try:
        yield lab_target
    finally:
        lab_target.close()


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_exercise_has_catalog_texts(exercise_id):
    assert f"exercises.{exercise_id}.title" in catalog()
    assert f"exercises.{exercise_id}.task" in catalog()


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_exercise_open_on_fresh_lab(exercise_id):
    runbook_target = open_runbook_target(exercise_id)
    try:
        result = check_exercise(exercise_id, runbook_target)
    finally:
        runbook_target.close()
    assert not result.done
    assert result.problems
    assert "尚未完成" in repr(result)


@needs_aliases
@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_exercise_open_where_runbook_poses_it(exercise_id):
    runbook_target = open_runbook_target(exercise_id)
    try:
        prepare_exercise(exercise_id, runbook_target)
        result = check_exercise(exercise_id, runbook_target)
    finally:
        runbook_target.close()
    assert not result.done
    assert "✘" in result._repr_html_()


@needs_aliases
@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_solution_passes_check(exercise_id):
    runbook_target = open_runbook_target(exercise_id)
    try:
        prepare_exercise(exercise_id, runbook_target)
        solve_exercise(exercise_id, runbook_target)
        result = check_exercise(exercise_id, runbook_target)
    finally:
        runbook_target.close()
    assert result.problems == ()
    assert result.done
    assert "完成" in repr(result)
    assert "✔" in result._repr_html_()


def test_runbooks_01_and_02_have_exercises():
    assert [exercise.exercise_id for exercise in exercises_for("01")] == ["second_app_relay"]
    assert [exercise.exercise_id for exercise in exercises_for("02")] == ["dot_line"]


@pytest.mark.parametrize("runbook", ["03", "04", "05", "06", "07"])
def test_runbooks_03_to_07_have_exercises(runbook):
    exercises = exercises_for(runbook)
    assert 1 <= len(exercises) <= 2


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


def test_start_exercise_stages_lab(target):
    task = start_exercise("gateway_only", target)
    assert repr(task).startswith("練習：只經郵件閘道把信送出去")
    assert target.lab.port25_blocked
    assert [status.message_id for status in target.lab.queue_status()] == ["<runbook.exercise-monthly@example.com>"]


def test_start_exercise_leaves_real_server():
    real = SmtpTarget("192.0.2.25:25")
    task = start_exercise("weekend_changes", real)
    assert "127.0.0.10" in repr(task)
    assert real.lab is None


def test_prepare_on_real_server_raises():
    with pytest.raises(InputError) as caught:
        prepare_exercise("resubmit_orders", SmtpTarget("192.0.2.25:25"))
    assert caught.value.key == "exercises.lab_only"


# --- runbook 03: resubmit the orders ------------------------------------------------------------

def resubmit_order_reports(target: SmtpTarget) -> None:
    """Resubmit the failure NDRs in Drop once more, as a trainee who runs the cell twice does."""
    lab = target.lab
    failures = [path for path in lab.drop_files() if FAILURE_MARK in read_stored(path)[1]]
    mailroot_ops.execute(mailroot_ops.plan_resubmit(lab.mailroot, failures), lab.root / "second-journals")
    target.process_pickup()
    lab.deliver_queue()


@needs_aliases
def test_resubmit_twice_reported(target):
    prepare_exercise("resubmit_orders", target)
    solve_exercise("resubmit_orders", target)
    resubmit_order_reports(target)
    problems = check_exercise("resubmit_orders", target).problems
    assert len(problems) == 3
    assert "「訂單 1 出貨通知」送達了 2 次" in problems[0]
    assert "訂單 3 出貨通知" in problems[2]


def test_resubmit_left_in_pickup_reported(target):
    prepare_exercise("resubmit_orders", target)
    lab = target.lab
    failures = [path for path in lab.drop_files() if FAILURE_MARK in read_stored(path)[1]]
    assert len(failures) == 3
    mailroot_ops.execute(mailroot_ops.plan_resubmit(lab.mailroot, failures), lab.root / "journals")
    problems = check_exercise("resubmit_orders", target).problems
    assert len(problems) == 2
    assert "訂單 1 出貨通知、訂單 2 出貨通知、訂單 3 出貨通知" in problems[0]
    assert "target.process_pickup()" in problems[1]


def test_resubmit_without_smart_host_reported(target):
    prepare_exercise("resubmit_orders", target)
    target.lab.clear_smart_host()
    solve_exercise("resubmit_orders", target)
    problems = check_exercise("resubmit_orders", target).problems
    assert len(problems) == 3
    assert "target.deliver_queue()" in problems[1]
    assert "Smart Host" in problems[2]
    assert "blocked.lab.test" in problems[2]


def test_resubmit_delay_notices_stay_out(target):
    prepare_exercise("resubmit_orders", target)
    delays = [path for path in target.lab.drop_files() if "(Delay)" in read_stored(path)[1]]
    assert len(delays) == 3
    with pytest.raises(InputError) as caught:
        mailroot_ops.plan_resubmit(target.lab.mailroot, delays[:1])
    assert caught.value.key == "mailroot_ops.ndr_without_original"


# --- runbook 04: keep out the relay prober --------------------------------------------------------

@needs_aliases
def test_prober_found_in_log(target):
    prepare_exercise("block_relay_prober", target)
    assert relay_denied_clients(target.lab) == ["127.0.0.66"]


@needs_aliases
def test_prober_messages_hide_address(target):
    prepare_exercise("block_relay_prober", target)
    problems = check_exercise("block_relay_prober", target).problems
    assert len(problems) == 1
    assert "220" in problems[0]
    assert "127.0.0.66" not in problems[0]


@needs_aliases
def test_prober_grant_list_too_narrow(target):
    prepare_exercise("block_relay_prober", target)
    target.lab.set_connection_control({"grant": ["127.0.0.10"]})
    problems = check_exercise("block_relay_prober", target).problems
    assert len(problems) == 1
    assert "127.0.0.20" in problems[0]


@needs_aliases
def test_prober_subnet_denial_too_broad(target):
    prepare_exercise("block_relay_prober", target)
    target.lab.deny_connection("127.0.0.0/8")
    problems = check_exercise("block_relay_prober", target).problems
    assert len(problems) == 2
    assert "127.0.0.10" in problems[0]
    assert "127.0.0.20" in problems[1]


# --- runbook 05: through the gateway only ---------------------------------------------------------

def test_gateway_firewall_opened_reported(target):
    prepare_exercise("gateway_only", target)
    target.lab.unblock_port25()
    solve_exercise("gateway_only", target)
    problems = check_exercise("gateway_only", target).problems
    assert len(problems) == 1
    assert "target.block_port25()" in problems[0]


def test_gateway_direct_delivery_reported(target):
    prepare_exercise("gateway_only", target)
    target.lab.unblock_port25()
    target.advance(60)
    problems = check_exercise("gateway_only", target).problems
    assert any("user@example.net" in problem and "沒有經過郵件閘道" in problem for problem in problems)
    assert any("user@blocked.lab.test 還沒有收到" in problem for problem in problems)
    assert any("Queue" in problem for problem in problems)


def test_gateway_wrong_smart_host_reported(target):
    prepare_exercise("gateway_only", target)
    target.set_smart_host("[127.0.0.41]")
    target.advance(60)
    problems = check_exercise("gateway_only", target).problems
    assert len(problems) == 4
    assert "[127.0.0.41]" in problems[0]
    assert "[127.0.0.40]" in problems[0]
    assert "user@example.net" in problems[1]
    assert "user@blocked.lab.test" in problems[2]
    assert "Queue" in problems[3]


def test_gateway_by_name_passes(target):
    prepare_exercise("gateway_only", target)
    target.set_smart_host("smarthost.lab.test")
    target.deliver_queue()
    target.advance(15)
    assert check_exercise("gateway_only", target).done


# --- runbook 06: relay only after AUTH under TLS --------------------------------------------------

def test_auth_relay_fresh_security_lab(security_target):
    problems = check_exercise("auth_only_relay", security_target).problems
    assert len(problems) == 3
    assert "Open Relay" in problems[0]
    assert "127.0.0.10" in problems[1]
    assert "STARTTLS" in problems[2]


def test_auth_relay_runbook_fixes_name_app(security_target):
    security_target.restrict_relay()
    security_target.require_tls_for_auth()
    security_target.deny_connection()
    problems = check_exercise("auth_only_relay", security_target).problems
    assert len(problems) == 1
    assert "127.0.0.10" in problems[0]


def test_auth_relay_without_tls_requirement(security_target):
    security_target.restrict_relay([])
    problems = check_exercise("auth_only_relay", security_target).problems
    assert len(problems) == 1
    assert "需要 TLS 加密" in problems[0]


# --- runbook 07: the weekend's changes ------------------------------------------------------------

@needs_aliases
def test_weekend_diagnosis_names_relay_then_smart_host(target):
    start_exercise("weekend_changes", target)
    first = diagnose.diagnose_target(target, "app@example.com", "user@example.net")
    assert first.cause == "relay_denied"
    target.lab.allow_relay("127.0.0.10")
    second = diagnose.diagnose_target(target, "app@example.com", "user@example.net")
    assert second.cause == "smart_host_unreachable"


@needs_aliases
def test_weekend_relay_fixed_only(target):
    start_exercise("weekend_changes", target)
    target.lab.allow_relay("127.0.0.10")
    target.advance(60)
    problems = check_exercise("weekend_changes", target).problems
    assert len(problems) == 1
    assert "練習：每週報表" in problems[0]
    assert "target.advance" in problems[0]


@needs_aliases
def test_weekend_relay_too_broad_reported(target):
    start_exercise("weekend_changes", target)
    target.lab.allow_relay("127.0.0.0/8")
    target.clear_smart_host()
    target.advance(60)
    problems = check_exercise("weekend_changes", target).problems
    assert len(problems) == 1
    assert "127.0.0.66" in problems[0]


@needs_aliases
def test_weekend_report_expired_reported(target):
    start_exercise("weekend_changes", target)
    target.lab.allow_relay("127.0.0.10")
    target.advance(2880 + 240)
    problems = check_exercise("weekend_changes", target).problems
    assert len(problems) == 1
    assert "target.delivery_table()" in problems[0]
