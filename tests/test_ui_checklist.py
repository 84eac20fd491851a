"""The checklist widget: driven through its widgets, with the state file read back after each change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from adminkb.errors import InputError
from adminkb.imaging.checklist import Checklist
from adminkb.imaging.steps import STEPS
from adminkb.ui import LAB_STATE_DIR, ChecklistWidget, checklist_html, open_checklist

WHEN = datetime(2026, 3, 2, 1, 15, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def saved(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def make_widget(tmp_path, **options) -> ChecklistWidget:
    return ChecklistWidget(Checklist("build", tmp_path), who=options.pop("who", "王小明"), clock=lambda: WHEN,
                           **options)


# Ticking through the widgets saves at once.

def test_tick_box_saves_tick(tmp_path):
    widget = make_widget(tmp_path)
    widget.rows["updates"].checkbox.value = True
    tick = saved(tmp_path / "build.json")["ticks"]["updates"]
    assert tick["who"] == "王小明"
    assert tick["when"] == "2026-03-02T01:15:00+00:00"
    assert widget.rows["updates"].when.value == "2026-03-02T01:15:00+00:00"


def test_untick_box_removes_tick(tmp_path):
    widget = make_widget(tmp_path)
    widget.rows["updates"].checkbox.value = True
    widget.rows["updates"].checkbox.value = False
    assert saved(tmp_path / "build.json")["ticks"] == {}
    assert widget.rows["updates"].when.value == ""


def test_who_field_used_for_tick(tmp_path):
    widget = make_widget(tmp_path)
    widget.rows["updates"].who.value = "李大同"
    widget.rows["updates"].checkbox.value = True
    assert saved(tmp_path / "build.json")["ticks"]["updates"]["who"] == "李大同"


def test_who_change_on_done_step_saved(tmp_path):
    widget = make_widget(tmp_path)
    widget.rows["updates"].checkbox.value = True
    widget.rows["updates"].who.value = "李大同"
    tick = saved(tmp_path / "build.json")["ticks"]["updates"]
    assert tick["who"] == "李大同"
    assert tick["when"] == "2026-03-02T01:15:00+00:00"


def test_note_on_open_step_saved(tmp_path):
    widget = make_widget(tmp_path)
    widget.rows["updates"].note.value = "等 SP3 光碟"
    assert saved(tmp_path / "build.json")["notes"] == {"updates": "等 SP3 光碟"}


def test_note_moves_onto_tick(tmp_path):
    widget = make_widget(tmp_path)
    widget.rows["updates"].note.value = "SP3"
    widget.rows["updates"].checkbox.value = True
    document = saved(tmp_path / "build.json")
    assert document["ticks"]["updates"]["note"] == "SP3"
    assert "notes" not in document


def test_tick_method_sets_note_and_who(tmp_path):
    widget = make_widget(tmp_path)
    widget.tick("updates", note="SP3 與 IE8", who="李大同")
    tick = saved(tmp_path / "build.json")["ticks"]["updates"]
    assert tick == {"who": "李大同", "when": "2026-03-02T01:15:00+00:00", "note": "SP3 與 IE8"}


def test_tick_unknown_step_raises(tmp_path):
    widget = make_widget(tmp_path)
    with pytest.raises(InputError) as raised:
        widget.tick("no_such_step")
    assert raised.value.key == "imaging_checklist.unknown_step"


def test_missing_who_shows_error(tmp_path):
    widget = make_widget(tmp_path, who="")
    widget.rows["updates"].checkbox.value = True
    assert widget.rows["updates"].checkbox.value is False
    assert "沒有填寫執行者" in widget.message.value
    assert not (tmp_path / "build.json").exists()


def test_failed_save_shows_error_and_old_state(tmp_path, monkeypatch):
    widget = make_widget(tmp_path)
    widget.rows["updates"].checkbox.value = True

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    widget.rows["workgroup"].checkbox.value = True
    assert widget.rows["workgroup"].checkbox.value is False
    assert "磁碟空間不足" in widget.message.value
    assert list(saved(tmp_path / "build.json")["ticks"]) == ["updates"]


def test_error_cleared_after_good_change(tmp_path):
    widget = make_widget(tmp_path, who="")
    widget.rows["updates"].checkbox.value = True
    widget.rows["updates"].who.value = "李大同"
    widget.rows["updates"].checkbox.value = True
    assert widget.message.value == ""


# Progress and reopening.

def test_phase_bars_count_ticks(tmp_path):
    widget = make_widget(tmp_path)
    widget.tick("clean_install")
    widget.tick("updates")
    assert widget.phase_bars["prepare"].value == 2
    assert widget.phase_bars["prepare"].max == 3
    assert widget.phase_counts["prepare"].value == "2/3"
    assert widget.phase_bars["slim"].value == 0


def test_full_phase_bar_marked_success(tmp_path):
    widget = make_widget(tmp_path)
    for step_id in ("clean_install", "updates", "workgroup"):
        widget.tick(step_id)
    assert widget.phase_bars["prepare"].bar_style == "success"


def test_reopened_widget_shows_saved_state(tmp_path):
    first = make_widget(tmp_path)
    first.tick("updates", note="SP3")
    first.rows["workgroup"].note.value = "改用 WORKGROUP"
    second = make_widget(tmp_path, who="李大同")
    assert second.rows["updates"].checkbox.value is True
    assert second.rows["updates"].who.value == "王小明"
    assert second.rows["updates"].note.value == "SP3"
    assert second.rows["workgroup"].checkbox.value is False
    assert second.rows["workgroup"].note.value == "改用 WORKGROUP"
    assert second.rows["workgroup"].who.value == "李大同"


def test_reload_shows_other_process_changes(tmp_path):
    widget = make_widget(tmp_path)
    Checklist("build", tmp_path).tick("updates", "李大同", when=WHEN)
    widget.reload()
    assert widget.rows["updates"].checkbox.value is True
    assert widget.rows["updates"].who.value == "李大同"


def test_change_keeps_other_process_ticks(tmp_path):
    widget = make_widget(tmp_path)
    Checklist("build", tmp_path).tick("updates", "李大同", when=WHEN)
    widget.tick("workgroup")
    assert sorted(saved(tmp_path / "build.json")["ticks"]) == ["updates", "workgroup"]
    assert widget.rows["updates"].checkbox.value is True


# Bad state files: a clear error, never a blank checklist.

@pytest.mark.parametrize("content", ["{not json", '{"format": "something-else"}', "\u00ff\u00fe garbage"])
def test_bad_state_file_raises(tmp_path, content):
    (tmp_path / "build.json").write_text(content, encoding="latin-1")
    with pytest.raises(InputError) as raised:
        open_checklist("build", tmp_path)
    assert raised.value.key in ("imaging_checklist.corrupt", "imaging_checklist.foreign")
    assert (tmp_path / "build.json").read_text("latin-1") == content


# Lab mode.

def test_lab_mode_uses_fresh_folder():
    first = open_checklist("xp-lab", LAB_STATE_DIR)
    first.tick("updates")
    second = open_checklist("xp-lab", LAB_STATE_DIR)
    assert first.checklist.state_dir != second.checklist.state_dir
    assert second.checklist.done == 0
    assert not str(first.checklist.state_dir).startswith(str(Path.home() / ".adminkb"))


def test_lab_mode_fixed_who_and_time():
    widget = open_checklist("xp-lab", LAB_STATE_DIR)
    widget.tick("updates")
    tick = widget.checklist.ticks["updates"]
    assert tick.who == "實習技術員"
    assert tick.when == "2026-03-02T01:15:00+00:00"


def test_default_who_is_account(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGNAME", "operator7")
    monkeypatch.setenv("USER", "operator7")
    monkeypatch.setenv("LNAME", "operator7")
    monkeypatch.setenv("USERNAME", "operator7")
    widget = open_checklist("build", tmp_path)
    assert widget.rows["updates"].who.value == "operator7"


# What nbval and exported pages see.

def test_plain_text_is_summary(tmp_path):
    widget = make_widget(tmp_path)
    widget.tick("updates")
    bundle = widget._repr_mimebundle_()
    assert bundle["text/plain"] == f"檢查清單 build：1/{len(STEPS)} 已完成"
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_html_fallback_shows_saved_state(tmp_path):
    widget = make_widget(tmp_path)
    widget.tick("updates", note="SP3 <IE8>")
    html = widget._repr_mimebundle_()["text/html"]
    assert "王小明" in html
    assert "SP3 &lt;IE8&gt;" in html
    assert "<script" not in html
    assert f"1/{len(STEPS)}" in html


def test_static_report_has_details(tmp_path):
    widget = make_widget(tmp_path)
    report = widget.report()
    html = report._repr_html_()
    assert "<details>" in html
    assert "sfc /purgecache" in html
    assert repr(report).splitlines()[0] == f"檢查清單 build：0/{len(STEPS)} 已完成"
    assert "準備與更新：0/3" in repr(report)


def test_html_same_for_same_state(tmp_path):
    first = make_widget(tmp_path / "a")
    second = make_widget(tmp_path / "b")
    first.tick("updates")
    second.tick("updates")
    assert checklist_html(first.checklist) == checklist_html(second.checklist)


# Exports.

def test_markdown_button_writes_report(tmp_path):
    widget = make_widget(tmp_path)
    widget.tick("updates", note="SP3")
    widget.markdown_button.click()
    text = (tmp_path / "build.md").read_text("utf-8")
    assert "| [x] | `updates` |" in text
    assert "SP3" in text
    assert str(tmp_path / "build.md") in widget.message.value


def test_html_button_writes_page(tmp_path):
    widget = make_widget(tmp_path)
    widget.tick("updates")
    widget.html_button.click()
    page = (tmp_path / "build.html").read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert "王小明" in page
    assert "http" not in page


def test_export_to_named_path(tmp_path):
    widget = make_widget(tmp_path / "state")
    path = widget.export_markdown(tmp_path / "reports" / "build-report.md")
    assert path.read_text("utf-8").startswith("# ")


def test_export_failure_shows_error(tmp_path):
    widget = make_widget(tmp_path)
    (tmp_path / "build.html").mkdir()
    widget.html_button.click()
    assert "無法寫出報表" in widget.message.value
    assert (tmp_path / "build.html").is_dir()


# A new kernel reads what the previous one saved.

OPEN_AND_TICK = """
import sys
from datetime import datetime, timezone
from adminkb.ui import open_checklist
widget = open_checklist("restart", sys.argv[1], who="王小明", clock=lambda: datetime(2026, 3, 2, tzinfo=timezone.utc))
widget.rows["updates"].checkbox.value = True
widget.rows["updates"].note.value = "第一個程序"
widget.rows["workgroup"].note.value = "還沒做"
"""

OPEN_AND_REPORT = """
import json, sys
from adminkb.ui import open_checklist
widget = open_checklist("restart", sys.argv[1], who="李大同")
rows = widget.rows
print(json.dumps({"plain": repr(widget), "updates": rows["updates"].checkbox.value,
                  "updates_who": rows["updates"].who.value, "updates_note": rows["updates"].note.value,
                  "workgroup": rows["workgroup"].checkbox.value, "workgroup_note": rows["workgroup"].note.value},
                 ensure_ascii=False))
"""


def test_state_survives_new_process(tmp_path):
    environment = {**os.environ, "ADMINKB_LANG": "zh-TW"}
    subprocess.run([sys.executable, "-c", OPEN_AND_TICK, str(tmp_path)], check=True, timeout=120, env=environment)
    result = subprocess.run([sys.executable, "-c", OPEN_AND_REPORT, str(tmp_path)], check=True, timeout=120,
                            capture_output=True, text=True, encoding="utf-8", env=environment)
    shown = json.loads(result.stdout)
    assert shown["plain"] == f"檢查清單 restart：1/{len(STEPS)} 已完成"
    assert shown["updates"] is True
    assert shown["updates_who"] == "王小明"
    assert shown["updates_note"] == "第一個程序"
    assert shown["workgroup"] is False
    assert shown["workgroup_note"] == "還沒做"


def run_in_kernel(code: str) -> str:
    """Run code in a fresh python3 Jupyter kernel, return its printed output, and shut the kernel down."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        outputs: list[str] = []
        reply = client.execute_interactive(code, timeout=120, output_hook=lambda message: outputs.append(
            message["content"].get("text", "")) if message["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(outputs)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_state_survives_kernel_restart(tmp_path):
    first = ("import os\nos.environ['ADMINKB_LANG'] = 'zh-TW'\n"
             "from adminkb.ui import open_checklist\n"
             f"widget = open_checklist('kernel', {str(tmp_path)!r}, who='王小明')\n"
             "widget.rows['updates'].checkbox.value = True\n"
             "widget.rows['workgroup'].note.value = '下週處理'\n")
    run_in_kernel(first)
    second = ("import os\nos.environ['ADMINKB_LANG'] = 'zh-TW'\n"
              "from adminkb.ui import open_checklist\n"
              f"widget = open_checklist('kernel', {str(tmp_path)!r})\n"
              "print(repr(widget))\n"
              "print(widget.rows['updates'].checkbox.value, widget.rows['updates'].who.value)\n"
              "print(widget.rows['workgroup'].note.value)\n")
    lines = run_in_kernel(second).splitlines()
    assert lines[0] == f"檢查清單 kernel：1/{len(STEPS)} 已完成"
    assert lines[1] == "True 王小明"
    assert lines[2] == "下週處理"
