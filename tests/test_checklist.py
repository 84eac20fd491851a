"""Imaging checklist: steps as data, progress saved atomically, clear errors, reports and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from clirun import run_area
from adminkb.errors import InputError
from adminkb.i18n import catalog
from adminkb.imaging.checklist import Checklist, json_error_text
from adminkb.imaging.steps import COMMUNITY, PHASES, STEPS, STEPS_BY_ID, SUPPORTED, steps_in

WHEN = datetime(2026, 3, 2, 1, 15, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


# Steps as data.

def test_every_phase_has_steps():
    for phase in PHASES:
        assert steps_in(phase), phase


def test_step_ids_unique():
    assert len(STEPS_BY_ID) == len(STEPS)


@pytest.mark.parametrize("step", STEPS, ids=[step.id for step in STEPS])
def test_step_texts_in_both_languages(step):
    for part in ("title", "why", "verify"):
        entry = catalog()[f"imaging_steps.step.{step.id}.{part}"]
        assert entry["zh-TW"].strip()
        assert entry["en"].strip()
    assert step.phase in PHASES
    assert step.support in (SUPPORTED, COMMUNITY)


def test_no_orphan_step_texts():
    prefixes = {key.split(".")[2] for key in catalog() if key.startswith("imaging_steps.step.")}
    assert prefixes == set(STEPS_BY_ID)


def test_community_step_labelled_beside_supported():
    community = [step for step in STEPS if step.support == COMMUNITY]
    assert [step.id for step in community] == ["hal_standard_pc"]
    standard_pc = community[0]
    assert standard_pc.instead_of == "hal_check"
    order = [step.id for step in STEPS]
    assert order.index("hal_standard_pc") == order.index("hal_check") + 1
    assert "微軟不支援" in standard_pc.warning


def test_timezone_step_warns_hex():
    step = STEPS_BY_ID["write_answer_file"]
    assert "DC" in step.warning
    assert "220" in step.verify


def test_intelppm_commands_cover_control_sets():
    commands = STEPS_BY_ID["intelppm"].commands
    assert "sc config intelppm start= disabled" in commands
    assert any("ControlSet001" in command for command in commands)
    assert any("ControlSet002" in command for command in commands)


def test_step_without_warning_returns_none():
    assert STEPS_BY_ID["hibernation"].warning is None


# Progress.

def test_tick_saves_and_reloads(tmp_path):
    checklist = Checklist("XP-SP3-2026-03", tmp_path)
    checklist.tick("updates", "王小明", when=WHEN, note="SP3 與 IE8")
    reopened = Checklist("XP-SP3-2026-03", tmp_path)
    tick = reopened.ticks["updates"]
    assert tick.who == "王小明"
    assert tick.when == "2026-03-02T01:15:00+00:00"
    assert tick.note == "SP3 與 IE8"
    assert reopened.done == 1
    assert reopened.total == len(STEPS)


def test_untick_saves(tmp_path):
    checklist = Checklist("build", tmp_path)
    checklist.tick("updates", "tech", when=WHEN)
    checklist.untick("updates")
    assert not Checklist("build", tmp_path).is_done("updates")


def test_untick_open_step_writes_nothing(tmp_path):
    Checklist("build", tmp_path).untick("updates")
    assert not (tmp_path / "build.json").exists()


def test_tick_converts_to_utc(tmp_path):
    from datetime import timedelta
    taipei = timezone(timedelta(hours=8))
    tick = Checklist("build", tmp_path).tick("updates", "tech", when=datetime(2026, 3, 2, 9, 15, tzinfo=taipei))
    assert tick.when == "2026-03-02T01:15:00+00:00"


def test_complete_after_all_ticks(tmp_path):
    checklist = Checklist("build", tmp_path)
    for step in STEPS:
        checklist.tick(step.id, "tech", when=WHEN)
    assert checklist.complete
    assert Checklist("build", tmp_path).complete


def test_file_is_json_with_format(tmp_path):
    Checklist("build", tmp_path).tick("updates", "tech", when=WHEN)
    document = json.loads((tmp_path / "build.json").read_text("utf-8"))
    assert document["format"] == "adminkb-checklist"
    assert document["version"] == 1
    assert document["name"] == "build"
    assert document["ticks"]["updates"]["who"] == "tech"


def test_save_leaves_no_temporary(tmp_path):
    checklist = Checklist("build", tmp_path)
    checklist.tick("updates", "tech", when=WHEN)
    checklist.tick("workgroup", "tech", when=WHEN)
    # The lock file stays, because deleting it would race with a process waiting on it.
    assert sorted(path.name for path in tmp_path.iterdir()) == [".build.lock", "build.json"]


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    checklist = Checklist("build", tmp_path)
    checklist.tick("updates", "tech", when=WHEN)
    before = (tmp_path / "build.json").read_bytes()

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        checklist.tick("workgroup", "tech", when=WHEN)
    assert (tmp_path / "build.json").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [".build.lock", "build.json"]


def test_state_dir_created(tmp_path):
    folder = tmp_path / "nested" / "checklists"
    Checklist("build", folder).tick("updates", "tech", when=WHEN)
    assert (folder / "build.json").is_file()


def test_default_state_dir_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    checklist = Checklist("build")
    assert checklist.path == tmp_path / ".adminkb" / "checklists" / "build.json"


# Changes from several processes and objects at once.

def test_two_objects_keep_both_ticks(tmp_path):
    first = Checklist("build", tmp_path)
    second = Checklist("build", tmp_path)
    first.tick("updates", "tech-a", when=WHEN)
    second.tick("workgroup", "tech-b", when=WHEN)
    reopened = Checklist("build", tmp_path)
    assert reopened.ticks["updates"].who == "tech-a"
    assert reopened.ticks["workgroup"].who == "tech-b"


def test_untick_keeps_other_objects_ticks(tmp_path):
    first = Checklist("build", tmp_path)
    second = Checklist("build", tmp_path)
    first.tick("updates", "tech-a", when=WHEN)
    second.tick("workgroup", "tech-b", when=WHEN)
    first.untick("workgroup")
    reopened = Checklist("build", tmp_path)
    assert reopened.is_done("updates")
    assert not reopened.is_done("workgroup")


# Each process opens the checklist once, waits for the start file so that all of them run at the
# same moment, then ticks its own steps. Without a lock around reread-and-save, a process saves
# its stale copy and the others' ticks disappear.
TICKING_PROCESS = """
import sys, time
from pathlib import Path
from adminkb.imaging.checklist import Checklist
state_dir, start_file, who, *steps = sys.argv[1:]
checklist = Checklist("shared", state_dir)
deadline = time.monotonic() + 20
while not Path(start_file).exists():
    if time.monotonic() > deadline:
        sys.exit("the start file never appeared")
    time.sleep(0.005)
for step_id in steps:
    checklist.tick(step_id, who, note="from " + who)
"""


def test_concurrent_processes_keep_every_tick(tmp_path):
    step_ids = [step.id for step in STEPS]
    workers = 6
    start_file = tmp_path / "start"
    state_dir = tmp_path / "state"
    processes = []
    for number in range(workers):
        steps = step_ids[number::workers]
        processes.append(subprocess.Popen([sys.executable, "-c", TICKING_PROCESS, str(state_dir), str(start_file),
                                           f"tech-{number}", *steps], stderr=subprocess.PIPE, text=True))
    time.sleep(1.0)
    start_file.touch()
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors
    checklist = Checklist("shared", state_dir)
    assert checklist.done == len(step_ids)
    for number in range(workers):
        for step_id in step_ids[number::workers]:
            assert checklist.ticks[step_id].who == f"tech-{number}"
            assert checklist.ticks[step_id].note == f"from tech-{number}"


def test_concurrent_cli_ticks_kept(tmp_path):
    step_ids = [step.id for step in STEPS][:4]
    command = [sys.executable, "-m", "adminkb", "checklist", "shared", "--state-dir", str(tmp_path), "--who", "tech"]
    processes = [subprocess.Popen([*command, "--tick", step_id], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for step_id in step_ids]
    for process in processes:
        # Each run imports the whole CLI, which takes seconds on a loaded two-core machine.
        _, errors = process.communicate(timeout=180)
        assert process.returncode == 1, errors
    assert sorted(Checklist("shared", tmp_path).ticks) == sorted(step_ids)


def test_held_lock_times_out_with_error(tmp_path):
    checklist = Checklist("build", tmp_path)
    other = Checklist("build", tmp_path)
    with other._locked():
        with pytest.raises(InputError) as raised:
            with checklist._locked(timeout=0.2):
                pass
    assert raised.value.key == "imaging_checklist.locked"
    assert ".build.lock" in str(raised.value)


# Notes and names on open and done steps.

def test_note_on_open_step_survives_reopen(tmp_path):
    Checklist("build", tmp_path).set_note("updates", "等 SP3 光碟")
    reopened = Checklist("build", tmp_path)
    assert reopened.note("updates") == "等 SP3 光碟"
    assert not reopened.is_done("updates")


def test_tick_keeps_open_note(tmp_path):
    checklist = Checklist("build", tmp_path)
    checklist.set_note("updates", "SP3")
    checklist.tick("updates", "tech", when=WHEN)
    saved = json.loads((tmp_path / "build.json").read_text("utf-8"))
    assert saved["ticks"]["updates"]["note"] == "SP3"
    assert "notes" not in saved


def test_untick_moves_note_to_open_step(tmp_path):
    checklist = Checklist("build", tmp_path)
    checklist.tick("updates", "tech", when=WHEN, note="SP3")
    checklist.untick("updates")
    assert Checklist("build", tmp_path).note("updates") == "SP3"


def test_set_who_keeps_time(tmp_path):
    checklist = Checklist("build", tmp_path)
    checklist.tick("updates", "tech", when=WHEN)
    checklist.set_who("updates", "王小明")
    tick = Checklist("build", tmp_path).ticks["updates"]
    assert tick.who == "王小明"
    assert tick.when == "2026-03-02T01:15:00+00:00"


def test_set_who_empty_rejected(tmp_path):
    checklist = Checklist("build", tmp_path)
    checklist.tick("updates", "tech", when=WHEN)
    with pytest.raises(InputError) as raised:
        checklist.set_who("updates", " ")
    assert raised.value.key == "imaging_checklist.who_missing"


def test_bad_notes_object_raises(tmp_path):
    document = {"format": "adminkb-checklist", "version": 1, "name": "build", "ticks": {}, "notes": {"updates": 5}}
    (tmp_path / "build.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path)
    assert raised.value.key == "imaging_checklist.corrupt"


# Bad input and bad files: each a clear error, never a blank checklist.

@pytest.mark.parametrize("name", ["", "../escape", "a/b", "-dash", ".hidden", "x" * 65, "with space"])
def test_bad_name_rejected(tmp_path, name):
    with pytest.raises(InputError) as raised:
        Checklist(name, tmp_path)
    assert raised.value.key == "imaging_checklist.bad_name"


def test_chinese_name_accepted(tmp_path):
    Checklist("會計部映像檔", tmp_path).tick("updates", "tech", when=WHEN)
    assert (tmp_path / "會計部映像檔.json").is_file()


def test_unknown_step_rejected(tmp_path):
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path).tick("no_such_step", "tech")
    assert raised.value.key == "imaging_checklist.unknown_step"


def test_missing_who_rejected(tmp_path):
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path).tick("updates", "  ")
    assert raised.value.key == "imaging_checklist.who_missing"


def test_naive_time_rejected(tmp_path):
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path).tick("updates", "tech", when=datetime(2026, 3, 2, 1, 15))
    assert raised.value.key == "imaging_checklist.naive_time"


@pytest.mark.parametrize("content, key", [
    ('{"format": "adminkb-checklist", "version": 1, "name": "build", "ticks": {', "imaging_checklist.corrupt"),
    ("", "imaging_checklist.corrupt"),
    ('{"format": "adminkb-checklist", "version": 1, "name": "build"}', "imaging_checklist.corrupt"),
    ('{"format": "adminkb-checklist", "version": 1, "name": "build", "ticks": {"updates": {"who": 5}}}',
     "imaging_checklist.corrupt"),
    ('{"cells": [], "nbformat": 4}', "imaging_checklist.foreign"),
    ("[1, 2, 3]", "imaging_checklist.foreign"),
    ('{"format": "adminkb-checklist", "version": 99, "name": "build", "ticks": {}}', "imaging_checklist.version"),
    ('{"format": "adminkb-checklist", "version": 1, "name": "other", "ticks": {}}', "imaging_checklist.other_name"),
])
def test_bad_file_raises(tmp_path, content, key):
    path = tmp_path / "build.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path)
    assert raised.value.key == key
    assert str(path) in str(raised.value)
    assert path.read_text(encoding="utf-8") == content


def test_corrupt_json_names_line(tmp_path):
    (tmp_path / "build.json").write_text('{\n  "format": "adminkb-checklist",\n  oops\n}', encoding="utf-8")
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path)
    assert "第 3 行" in str(raised.value)


@pytest.mark.parametrize("content, words", [
    ("", "應該是一個值"), ("{", "欄位名稱"), ('{"a" 1}', "冒號"), ("[1 2]", "逗號"), ('"abc', "雙引號"),
    ('{"a": 1} x', "多餘的內容"), ('"a\\q"', "反斜線"), ('"\\u12"', "十六進位"), ('"a\x01"', "控制字元"),
])
def test_corrupt_json_reason_in_chinese(tmp_path, content, words):
    (tmp_path / "build.json").write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path)
    text = str(raised.value)
    assert words in text
    for english in ("Expecting", "delimiter", "Unterminated", "Extra data", "Invalid"):
        assert english not in text


def test_unknown_json_message_worded(tmp_path):
    error = json.JSONDecodeError("Some future message", "x", 0)
    assert json_error_text(error) == "JSON 語法錯誤"


def test_corrupt_json_english(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "build.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path)
    assert "a field name in double quotes is expected here" in str(raised.value)


def test_binary_file_raises(tmp_path):
    (tmp_path / "build.json").write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(InputError) as raised:
        Checklist("build", tmp_path)
    assert raised.value.key == "imaging_checklist.corrupt"


def test_unknown_step_records_kept(tmp_path):
    document = {"format": "adminkb-checklist", "version": 1, "name": "build", "created": "2026-03-01T00:00:00+00:00",
                "ticks": {"retired_step": {"who": "tech", "when": "2026-03-01T00:00:00+00:00", "note": ""}}}
    (tmp_path / "build.json").write_text(json.dumps(document), encoding="utf-8")
    checklist = Checklist("build", tmp_path)
    assert checklist.done == 0
    checklist.tick("updates", "tech", when=WHEN)
    saved = json.loads((tmp_path / "build.json").read_text("utf-8"))
    assert "retired_step" in saved["ticks"]
    assert saved["created"] == "2026-03-01T00:00:00+00:00"


# Reports.

def test_markdown_report(tmp_path):
    checklist = Checklist("build", tmp_path)
    checklist.tick("updates", "王小明", when=WHEN, note="SP3 | IE8\n已重新開機")
    text = checklist.to_markdown()
    assert text.startswith("# 映像檔檢查清單：build")
    assert "進度：已完成 1 / 30 個步驟。" in text
    assert "## 準備與更新" in text
    row = next(line for line in text.splitlines() if "`updates`" in line)
    assert row.startswith("| [x] |")
    assert "SP3 \\| IE8<br>已重新開機" in row
    assert "| [ ] | `clean_install` |" in text
    assert "社群做法（微軟不支援）" in text


def test_rows_in_procedure_order(tmp_path):
    rows = Checklist("build", tmp_path).rows()
    assert [row["step"] for row in rows] == [step.id for step in STEPS]


# `adminkb checklist`.

def run(*arguments: str) -> int:
    return run_area("checklist", *arguments)


def test_cli_tick_and_show(tmp_path, capsys):
    status = run("build", "--state-dir", str(tmp_path), "--tick", "updates", "--tick", "workgroup",
                 "--who", "王小明", "--note", "第一批")
    text = capsys.readouterr().out
    assert status == 1
    assert "進度：已完成 2 / 30 個步驟。" in text
    row = next(line for line in text.splitlines() if " updates " in line)
    assert "[x] 完成" in row
    assert "王小明" in row
    assert "第一批" in row
    assert Checklist("build", tmp_path).is_done("workgroup")


def test_cli_untick(tmp_path, capsys):
    run("build", "--state-dir", str(tmp_path), "--tick", "updates", "--who", "tech")
    run("build", "--state-dir", str(tmp_path), "--untick", "updates")
    capsys.readouterr()
    assert not Checklist("build", tmp_path).is_done("updates")


def test_cli_all_done_exits_0(tmp_path, capsys):
    ticks = [argument for step in STEPS for argument in ("--tick", step.id)]
    status = run("build", "--state-dir", str(tmp_path), "--who", "tech", *ticks)
    capsys.readouterr()
    assert status == 0


def test_cli_unknown_step_exits_2(tmp_path, capsys):
    status = run("build", "--state-dir", str(tmp_path), "--tick", "nope", "--who", "tech")
    output = capsys.readouterr()
    assert status == 2
    assert "nope" in output.err
    assert output.out == ""


def test_cli_corrupt_file_exits_2(tmp_path, capsys):
    (tmp_path / "build.json").write_text("{not json", encoding="utf-8")
    status = run("build", "--state-dir", str(tmp_path))
    output = capsys.readouterr()
    assert status == 2
    assert "已損毀" in output.err
    assert (tmp_path / "build.json").read_text(encoding="utf-8") == "{not json"


def test_cli_json(tmp_path, capsys):
    run("build", "--state-dir", str(tmp_path), "--tick", "updates", "--who", "tech", "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert document["done"] == 1
    assert document["total"] == len(STEPS)
    assert document["ticks"]["updates"]["who"] == "tech"


def test_cli_markdown(tmp_path, capsys):
    run("build", "--state-dir", str(tmp_path), "--format", "markdown")
    assert capsys.readouterr().out.startswith("# 映像檔檢查清單：build")


def test_cli_csv(tmp_path, capsys):
    run("build", "--state-dir", str(tmp_path), "--format", "csv")
    text = capsys.readouterr().out
    assert text.startswith("\ufeffphase,step,title,support,done,who,when,note")
    assert len(text.strip().splitlines()) == len(STEPS) + 1


def test_cli_english(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    run("build", "--state-dir", str(tmp_path))
    text = capsys.readouterr().out
    assert "Progress: 0 of 30 steps done." in text
    assert "[Prepare and update]" in text


def test_state_dir_that_is_a_file_rejected(tmp_path):
    occupied = tmp_path / "notes.txt"
    occupied.write_text("keep", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        Checklist("img1", occupied)
    assert str(occupied) in str(caught.value)
    assert occupied.read_text(encoding="utf-8") == "keep"


def test_failed_save_leaves_object_unchanged(tmp_path, monkeypatch):
    checklist = Checklist("build", tmp_path)
    checklist.tick("updates", "tech", when=WHEN)

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        checklist.tick("workgroup", "tech", when=WHEN)
    assert not checklist.is_done("workgroup")
    assert checklist.is_done("updates")


def test_cli_html_report(tmp_path, capsys):
    Checklist("build", tmp_path).tick("updates", "王小明", when=WHEN, note="SP3 <IE8>")
    status = run_area("checklist", "build", "--state-dir", str(tmp_path), "--format", "html")
    page = capsys.readouterr().out
    assert status == 1
    assert page.startswith("<!DOCTYPE html>")
    assert "王小明" in page
    assert "SP3 &lt;IE8&gt;" in page
    assert "<script" not in page


def test_cli_refuses_tick_and_untick_of_one_step(tmp_path, capsys):
    step = STEPS[0].id
    assert run_area("checklist", "build", "--state-dir", str(tmp_path), "--tick", step) in (0, 1)
    status = run_area("checklist", "build", "--state-dir", str(tmp_path), "--untick", step, "--tick", step)
    assert status == 2
    assert step in capsys.readouterr().err
    # Nothing changed: the step ticked by the first command is still done.
    assert Checklist("build", tmp_path).is_done(step)
