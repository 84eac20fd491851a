"""Recorded runs: papermill execution into a dated folder, with no secret in the record."""

from __future__ import annotations

import html
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from adminkb.errors import InputError
from adminkb.export import external_resources
from adminkb.export.render import WIDGET_VIEW, site_css
from adminkb.i18n import message
from adminkb.recorder import (FAILED, INTERRUPTED, NOT_RUN, OK, PROBLEMS, RunInterrupted, _new_run_folder,
                              list_parameters, parameter_values, parse_value, record_run, resolve_notebook)
from adminkb.redaction import REDACTED, Redactor, secret_forms, secret_values
from tests.clirun import run_area

pytestmark = pytest.mark.timeout(300)

SECRET = "hunter2-lab-only-secret"


def _write_runbook(folder, file_name, title, steps, *, parameters='SERVER = "lab"  # 目標伺服器', tail=()):
    """Write a small runbook: a title, a parameters cell, then one heading and code cell per step.

    `steps` lists (heading, code) pairs, and `tail` adds markdown cells at the end.
    """
    notebook = nbformat.v4.new_notebook()
    parameters_cell = nbformat.v4.new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {title}"), nbformat.v4.new_markdown_cell("## 參數"),
                      parameters_cell]
    for heading, code in steps:
        notebook.cells += [nbformat.v4.new_markdown_cell(f"## {heading}"), nbformat.v4.new_code_cell(code)]
    notebook.cells += [nbformat.v4.new_markdown_cell(text) for text in tail]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / file_name
    nbformat.write(notebook, path)
    return path


def _write_notebook(folder, *, fail_in_step_2=False):
    step_two = 'raise RuntimeError("step two broke")' if fail_in_step_2 else 'print("server", SERVER)'
    return _write_runbook(folder, "99_test.ipynb", "99 測試", [
        ("步驟 1：讀取環境變數", 'import os\nprint("password is", os.environ["ADMINKB_SMTP_PASSWORD"])\n'
                                 'os.environ["ADMINKB_SMTP_PASSWORD"]'),
        ("步驟 2：連線", step_two),
        ("步驟 3：結束", 'print("done")'),
    ], parameters='SERVER = "lab"  # 目標伺服器\nTIMEOUT = 10  # 逾時秒數', tail=["## 結論"])


def test_secret_never_reaches_record(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    notebook = _write_notebook(tmp_path)
    record = record_run(notebook, {"SERVER": "192.0.2.25:25"}, out=tmp_path / "runs", progress=False)
    assert record.status == OK
    written = [path.read_text(encoding="utf-8") for path in (record.notebook_file, record.html_file,
                                                              record.html_file.with_name("record.json"))]
    for text in written:
        assert SECRET not in text
    assert REDACTED in written[0]
    assert REDACTED in written[1]
    assert "192.0.2.25:25" in written[0]


# Secrets whose backslash, quote, ampersand and angle bracket change when repr(), JSON or HTML
# escapes them. Every spelling keeps the letters before the first such character, so the
# tests look for those.
TRICKY_SECRETS = {"Passw0rd\\2026": "Passw0rd", 'Tr0ub4dor&3"x\\y<z': "Tr0ub4dor"}


def _write_secret_notebook(folder):
    """Write a runbook that shows the secret in every way a cell can.

    The cells print it, return it, show it as HTML, JSON and a table, and raise it in an error.
    """
    return _write_runbook(folder, "98_secret.ipynb", "98 機密資料", [
        ("步驟 1：印出與傳回", 'import html, json, os, sys\npw = os.environ["ADMINKB_SMTP_PASSWORD"]\n'
                               'print("password is", pw)\npw'),
        ("步驟 2：HTML、JSON 與表格", 'import pandas as pd\nfrom IPython.display import HTML, display\n'
                                       'display(HTML(f"<b>{html.escape(pw)}</b>"))\n'
                                       'print(json.dumps({"password": pw}))\npd.DataFrame({"password": [pw]})'),
        ("步驟 3：分兩段寫出", 'sys.stdout.write(pw[:6])\nsys.stdout.flush()\n'
                               'sys.stdout.write(pw[6:] + "\\n")'),
        ("步驟 4：錯誤訊息", 'raise ValueError(f"login failed with {pw!r}")'),
    ])


@pytest.mark.parametrize("secret", list(TRICKY_SECRETS))
def test_escaped_secret_never_reaches_record(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", secret)
    record = record_run(_write_secret_notebook(tmp_path), out=tmp_path / "runs", progress=False)
    core = TRICKY_SECRETS[secret]
    files = {path.name: path.read_text(encoding="utf-8")
             for path in (record.notebook_file, record.html_file, record.html_file.with_name("record.json"))}
    for name, text in files.items():
        assert core not in text, f"{name} contains a spelling of the secret"
    assert files["98_secret.ipynb"].count(REDACTED) >= 6
    assert REDACTED in files["run.html"]
    assert record.status == FAILED
    assert core not in record.error
    assert REDACTED in record.error


def test_secret_spellings_redacted():
    secret = 'Tr0ub4dor&3"x\\y<z'
    redactor = Redactor([secret])
    spellings = [secret, repr(secret), json.dumps(secret), json.dumps({"pw": secret}), html.escape(secret),
                 html.escape(repr(secret)), f"'{secret}'".replace("\\", "\\\\").replace("'", "\\'")]
    for spelling in spellings:
        cleaned = redactor.text(spelling)
        assert "Tr0ub4dor" not in cleaned, spelling
        assert REDACTED in cleaned
    assert secret in secret_forms(secret)


def test_split_stream_joined_before_redaction():
    secret = "Passw0rd\\2026"
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(pw)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=secret[:6]),
                    nbformat.v4.new_output("stream", name="stdout", text=secret[6:] + "\n")]
    notebook.cells = [cell]
    cleaned = Redactor([secret]).notebook(notebook)
    assert [output["text"] for output in cleaned.cells[0].outputs] == [REDACTED + "\n"]


def test_record_lists_steps_and_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    record = record_run(_write_notebook(tmp_path), {"TIMEOUT": 3}, out=tmp_path / "runs", progress=False)
    data = json.loads(record.html_file.with_name("record.json").read_text(encoding="utf-8"))
    assert data["parameters"] == {"TIMEOUT": 3}
    assert [step["outcome"] for step in data["steps"]] == [OK, OK, OK]
    assert data["started"] <= data["finished"]
    assert data["host"]
    assert record.html_file.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_failed_step_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    record = record_run(_write_notebook(tmp_path, fail_in_step_2=True), out=tmp_path / "runs", progress=False)
    assert record.status == FAILED
    assert [step.outcome for step in record.steps] == [OK, FAILED, NOT_RUN]
    assert "step two broke" in record.error
    page = record.html_file.read_text(encoding="utf-8")
    assert f"<strong>{message('recorder.outcome.failed')}</strong>" in page
    assert f"<td>{message('recorder.outcome.not_run')}</td>" in page


def test_html_loads_nothing_from_other_hosts(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    record = record_run(_write_notebook(tmp_path), out=tmp_path / "runs", progress=False)
    page = record.html_file.read_text(encoding="utf-8")
    assert external_resources(page) == []
    assert "<script src=" not in page
    assert "<link" not in page


def test_html_uses_export_page(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    record = record_run(_write_notebook(tmp_path), {"SERVER": "a|b *c*"}, out=tmp_path / "runs", progress=False)
    page = record.html_file.read_text(encoding="utf-8")
    assert 'class="adminkb-page"' in page
    assert '<main id="content">' in page
    assert site_css().strip()[:200] in page
    assert '<table class="adminkb-run-record">' in page
    assert '<table class="adminkb-run-steps">' in page
    assert "步驟 2：連線" in page
    assert "a|b *c*" in page
    assert page.index("adminkb-run-record") < page.index("99 測試")


def test_html_shows_widget_fallbacks(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    notebook_path = _write_notebook(tmp_path)
    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.cells.insert(-1, nbformat.v4.new_code_cell(
        "import ipywidgets\nfrom IPython.display import HTML, display\n"
        "display(ipywidgets.Text(value='relay'))\ndisplay(HTML('<p class=\"fallback\">轉送清單</p>'))"))
    notebook.cells.insert(-1, nbformat.v4.new_code_cell("ipywidgets.IntSlider(value=7)"))
    nbformat.write(notebook, notebook_path)
    record = record_run(notebook_path, out=tmp_path / "runs", progress=False)
    executed = nbformat.read(record.notebook_file, as_version=4)
    assert WIDGET_VIEW in json.dumps([cell.get("outputs", []) for cell in executed.cells])
    page = record.html_file.read_text(encoding="utf-8")
    assert WIDGET_VIEW not in page
    assert '<p class="fallback">轉送清單</p>' in page
    assert "IntSlider(value=7)" in page
    assert external_resources(page) == []


def test_html_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    notebook_path = _write_notebook(tmp_path)
    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.cells.insert(-1, nbformat.v4.new_code_cell('print("alice@mail.example.com via 192.0.2.7")'))
    nbformat.write(notebook, notebook_path)
    record = record_run(notebook_path, {"SERVER": "192.0.2.25:25"}, out=tmp_path / "runs", mask=True,
                        progress=False)
    page = record.html_file.read_text(encoding="utf-8")
    assert "alice" not in page
    assert "mail.example.com" not in page
    assert "192.0.2.7" not in page
    assert "192.0.2.25" not in page
    assert "user-1@host-1.invalid via ipv4-" in page
    assert f"<td>{message('recorder.masked_host')}</td>" in page
    assert f"<td>{socket.gethostname()}</td>" not in page
    assert SECRET not in page


def test_mask_hides_single_label_server(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    notebook_path = _write_notebook(tmp_path)
    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.cells.insert(-1, nbformat.v4.new_code_cell('print(r"copy \\\\FILESRV\\cases\\MetaBase.xml")'))
    nbformat.write(notebook, notebook_path)
    record = record_run(notebook_path, {"SERVER": "MAIL01:25"}, out=tmp_path / "runs", mask=True, progress=False)
    for path in (record.notebook_file, record.html_file, record.html_file.with_name("record.json")):
        text = path.read_text(encoding="utf-8")
        assert "MAIL01" not in text, path.name
        assert "FILESRV" not in text, path.name
    data = json.loads(record.html_file.with_name("record.json").read_text(encoding="utf-8"))
    assert data["parameters"] == {"SERVER": "host-1.invalid:25"}
    page = record.html_file.read_text(encoding="utf-8")
    assert "server host-1.invalid:25" in page
    assert "copy \\\\host-2.invalid\\cases\\MetaBase.xml" in page


def test_external_resource_keeps_record(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    notebook_path = _write_notebook(tmp_path)
    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.cells.insert(-1, nbformat.v4.new_code_cell(
        "from IPython.display import HTML\nHTML('<img src=\"http://192.0.2.80/logo.png\">')"))
    nbformat.write(notebook, notebook_path)
    with pytest.raises(InputError) as caught:
        record_run(notebook_path, out=tmp_path / "runs", progress=False)
    assert caught.value.key == "recorder.external_resource"
    assert "http://192.0.2.80/logo.png" in str(caught.value)
    (folder,) = (tmp_path / "runs").iterdir()
    assert (folder / "99_test.ipynb").is_file()
    assert (folder / "record.json").is_file()
    assert not (folder / "run.html").exists()


def _runbook_reading_secret(tmp_path, filename):
    """Copy a runbook with one more cell in its step 1 that prints the secret and returns it.

    The copy sits in tmp_path/notebooks with tmp_path/data pointing at the project's data, so
    the runbook's relative paths (../data/...) still resolve.
    """
    from adminkb.runbooks import NOTEBOOKS_DIR

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "data").symlink_to(NOTEBOOKS_DIR.parent / "data", target_is_directory=True)
    notebook = nbformat.read(NOTEBOOKS_DIR / filename, as_version=4)
    step_one = next(index for index, cell in enumerate(notebook.cells)
                    if cell.cell_type == "markdown" and cell.source.startswith("## 步驟 1"))
    notebook.cells.insert(step_one + 2, nbformat.v4.new_code_cell(
        'import os\nprint("SMTP 密碼：", os.environ["ADMINKB_SMTP_PASSWORD"])\nos.environ["ADMINKB_SMTP_PASSWORD"]'))
    path = tmp_path / "notebooks" / filename
    nbformat.write(notebook, path)
    return path


def test_lab_runbook_masked(tmp_path, monkeypatch):
    secret = 'Tr0ub4dor&3"x\\y<z'
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", secret)
    runbook = _runbook_reading_secret(tmp_path, "01_smtp_session.ipynb")
    record = record_run(runbook, {"CONFIRM": True}, out=tmp_path / "runs", mask=True, progress=False)
    assert record.status == OK
    assert len(record.steps) >= 3
    executed = nbformat.read(record.notebook_file, as_version=4)
    code_text = "\n".join(cell.source + json.dumps(cell.get("outputs", []), ensure_ascii=False)
                          for cell in executed.cells if cell.cell_type == "code")
    assert "app@example.com" not in code_text
    assert "user-1@" in code_text
    assert f"SMTP 密碼： {REDACTED}" in code_text
    assert json.loads(record.html_file.with_name("record.json").read_text(encoding="utf-8"))["masked"] is True
    for path in (record.notebook_file, record.html_file, record.html_file.with_name("record.json")):
        assert "Tr0ub4dor" not in path.read_text(encoding="utf-8")


def test_troubleshooting_runbook_recorded(tmp_path, monkeypatch):
    secret = "Passw0rd\\2026"
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", secret)
    runbook = _runbook_reading_secret(tmp_path, "07_troubleshoot_delivery.ipynb")
    record = record_run(runbook, {"TIMEOUT": 5}, out=tmp_path / "runs", progress=False)
    assert record.status == OK
    assert [step.outcome for step in record.steps] == [OK] * len(record.steps)
    assert len(record.steps) == 10
    page = record.html_file.read_text(encoding="utf-8")
    assert "smart_host_unreachable" in page
    assert f"SMTP 密碼： {REDACTED}" in page
    for path in (record.notebook_file, record.html_file, record.html_file.with_name("record.json")):
        assert "Passw0rd" not in path.read_text(encoding="utf-8")


def test_secret_parameter_rejected(tmp_path):
    notebook = _write_notebook(tmp_path)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[2].source += '\nSMTP_PASSWORD = None  # 密碼'
    nbformat.write(nb, notebook)
    with pytest.raises(InputError) as caught:
        record_run(notebook, {"SMTP_PASSWORD": "x"}, out=tmp_path / "runs", progress=False)
    assert caught.value.key == "recorder.secret_parameter"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("notebook", "parameters", "key"), [
    ("98", {}, "recorder.unknown_number"),
    ("missing.ipynb", {}, "recorder.not_found"),
    ("99_test.ipynb", {"NOPE": 1}, "recorder.unknown_parameter"),
    ("99_test.ipynb", {"server": 1}, "recorder.unknown_parameter"),
])
def test_bad_input_raises(tmp_path, notebook, parameters, key):
    _write_notebook(tmp_path)
    with pytest.raises(InputError) as caught:
        record_run(tmp_path / notebook if notebook.endswith(".ipynb") else notebook, parameters,
                   out=tmp_path / "runs", progress=False)
    assert caught.value.key == key


def test_not_a_notebook_raises(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        resolve_notebook(path)
    assert caught.value.key == "recorder.not_notebook"


def test_run_folders_never_collide(tmp_path):
    from datetime import datetime, timezone

    moment = datetime(2026, 3, 2, 1, 15, tzinfo=timezone.utc)
    first = _new_run_folder(tmp_path, "07_x", moment)
    second = _new_run_folder(tmp_path, "07_x", moment)
    assert first.name == "20260302-011500_07_x"
    assert second.name == "20260302-011500_07_x-2"


@pytest.mark.parametrize(("text", "value"), [("None", None), ("true", True), ("False", False), ("10", 10),
                                            ("2.5", 2.5), ("192.0.2.25:25", "192.0.2.25:25"), ("lab", "lab")])
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_parameter_values_follow_defaults(tmp_path):
    notebook = _write_notebook(tmp_path)
    values = parameter_values(notebook, [("SERVER", "007"), ("TIMEOUT", "2.5")])
    assert values == {"SERVER": "007", "TIMEOUT": 2.5}


def test_parameter_values_none_for_text_default():
    # Runbooks 01, 02 and 07 tell admins to switch APP_IP off with -p APP_IP None.
    assert parameter_values("07", [("APP_IP", "None")]) == {"APP_IP": None}


@pytest.mark.parametrize("text", ["abc", "true", "None"])
def test_parameter_values_reject_kind(tmp_path, text):
    notebook = _write_notebook(tmp_path)
    with pytest.raises(InputError) as caught:
        parameter_values(notebook, [("TIMEOUT", text)])
    assert caught.value.key == "recorder.parameter_kind"
    assert f"參數 TIMEOUT 需要數字，但收到 {text}。" in str(caught.value)


def test_parameter_values_bool_default():
    # Runbook 01's CONFIRM defaults to False.
    assert parameter_values("01", [("CONFIRM", "true")]) == {"CONFIRM": True}
    with pytest.raises(InputError) as caught:
        parameter_values("01", [("CONFIRM", "yes")])
    assert "需要 true 或 false" in str(caught.value)


def test_cli_bad_parameter_kind_runs_nothing(tmp_path, capsys):
    notebook = _write_notebook(tmp_path)
    with pytest.raises(InputError):
        run_area("run", str(notebook), "--out", str(tmp_path / "runs"), "-p", "TIMEOUT", "abc")
    assert not (tmp_path / "runs").exists()


def test_secret_values_by_name():
    values = secret_values({"ADMINKB_SMTP_PASSWORD": "abcd1234", "API_TOKEN": "tok-5678", "PWD": "/work/main",
                            "HOME": "/root", "DB_PASS": "x"})
    assert values == ["abcd1234", "tok-5678"]


def test_list_parameters_reads_comments():
    parameters = {item.name: item for item in list_parameters("01")}
    assert parameters["SERVER"].default == '"lab"'
    assert "實驗室" in parameters["SERVER"].help


def test_cli_list_parameters(capsys):
    assert run_area("run", "01", "--list-parameters") == 0
    assert "REMOTE_RCPT" in capsys.readouterr().out


def test_cli_failed_run_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    notebook = _write_notebook(tmp_path, fail_in_step_2=True)
    assert run_area("run", str(notebook), "--out", str(tmp_path / "runs"), "-p", "TIMEOUT", "3") == 1
    output = capsys.readouterr().out
    assert "step two broke" in output


def _write_slow_notebook(folder):
    return _write_runbook(folder, "97_slow.ipynb", "97 逾時", [
        ("步驟 1：很慢的檢查", 'import time\nprint("started", flush=True)\ntime.sleep(60)'),
        ("步驟 2：之後", 'print("after")'),
    ])


def test_cli_timeout_keeps_record(tmp_path, capfd):
    from adminkb.cli import main

    code = main(["run", str(_write_slow_notebook(tmp_path)), "--out", str(tmp_path / "runs"), "--timeout", "2"])
    out, err = capfd.readouterr()
    assert code == 1
    assert "超過 2 秒" in out
    assert "--timeout 4" in out
    assert "Traceback" not in out + err
    (folder,) = (tmp_path / "runs").iterdir()
    record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    assert record["status"] == FAILED
    assert [step["outcome"] for step in record["steps"]] == [FAILED, NOT_RUN]
    assert "超過 2 秒" in record["error"]
    page = (folder / "run.html").read_text(encoding="utf-8")
    assert "有一個儲存格執行超過 2 秒（--timeout 的設定）" in page
    assert "KeyboardInterrupt" not in page
    executed = nbformat.read(folder / "97_slow.ipynb", as_version=4)
    slow = executed.cells[4]
    assert [output["output_type"] for output in slow.outputs] == ["stream", "error"]
    assert slow.outputs[0]["text"] == "started\n"
    assert "請加大 --timeout" in slow.outputs[1]["evalue"]
    assert executed.cells[6].get("execution_count") is None


# --- interrupted runs and unusable input --------------------------------------------------------

def _write_interrupted_notebook(folder, stop_signal):
    """Write a runbook whose step 2 sends `stop_signal` to the process that runs it, then sleeps.

    The kernel's parent is the process that started it: pytest for record_run, the command for
    `adminkb run`. Step 1 starts the mail lab and prints its temporary folder and the kernel's
    process id, so a test can check that both are gone afterwards.
    """
    return _write_runbook(folder, "96_interrupted.ipynb", "96 中斷", [
        ("步驟 1：啟動實驗室", 'import os\nfrom adminkb.target import open_target\n\n'
                               'target = open_target(SERVER)\n'
                               'print("lab root", target.lab.root)\nprint("kernel pid", os.getpid())\n'
                               'print("password is", os.environ["ADMINKB_SMTP_PASSWORD"])'),
        ("步驟 2：被中斷的檢查", f'import signal, time\nprint("before the signal", flush=True)\n'
                                 f'os.kill(os.getppid(), signal.{stop_signal.name})\ntime.sleep(60)'),
        ("步驟 3：之後", 'print("after")'),
    ])


def _code_cell(notebook, start):
    """Return the code cell whose source starts with `start` (papermill may have added a cell before it)."""
    return next(cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.startswith(start))


def _printed_value(notebook, label):
    """Return the text after `label` in the recorded stdout of step 1."""
    text = "".join(output.get("text", "") for output in _code_cell(notebook, "import os").outputs)
    line = next(line for line in text.splitlines() if line.startswith(label))
    return line[len(label):].strip()


def _wait_until_gone(check, seconds=10.0):
    """Return True once `check()` is false, polling for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(os.name == "nt", reason="os.kill with SIGINT to a parent process is POSIX only")
def test_interrupted_run_keeps_record(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    notebook = _write_interrupted_notebook(tmp_path, signal.SIGINT)
    with pytest.raises(RunInterrupted) as caught:
        record_run(notebook, out=tmp_path / "runs", progress=False)
    record = caught.value.record
    assert record is not None
    assert record.status == INTERRUPTED
    assert [step.outcome for step in record.steps] == [OK, INTERRUPTED, NOT_RUN]
    data = json.loads(record.html_file.with_name("record.json").read_text(encoding="utf-8"))
    assert data["status"] == INTERRUPTED
    assert data["error"] == message("recorder.interrupted")
    executed = nbformat.read(record.notebook_file, as_version=4)
    stopped = _code_cell(executed, "import signal")
    assert stopped.outputs[0]["text"] == "before the signal\n"
    assert stopped.outputs[-1]["ename"] == "RunInterrupted"
    assert _code_cell(executed, 'print("after")').get("execution_count") is None
    page = record.html_file.read_text(encoding="utf-8")
    assert f"<strong>{message('recorder.outcome.interrupted')}</strong>" in page
    for path in (record.notebook_file, record.html_file, record.html_file.with_name("record.json")):
        assert SECRET not in path.read_text(encoding="utf-8")
    assert sorted(path.name for path in Path(record.folder).iterdir()) == [
        "96_interrupted.ipynb", "record.json", "run.html"]
    # The kernel was shut down, not killed, so the lab removed its temporary folder.
    lab_root = Path(_printed_value(executed, "lab root"))
    assert _wait_until_gone(lab_root.exists), f"{lab_root} was left behind"
    kernel = int(_printed_value(executed, "kernel pid"))
    assert _wait_until_gone(lambda: _process_exists(kernel)), f"kernel {kernel} still runs"


def test_interrupt_before_any_cell_removes_folder(tmp_path, monkeypatch):
    import papermill

    def interrupted_while_kernel_starts(*arguments, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted_while_kernel_starts)
    with pytest.raises(RunInterrupted) as caught:
        record_run(_write_notebook(tmp_path), out=tmp_path / "runs", progress=False)
    assert caught.value.record is None
    assert list((tmp_path / "runs").iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="SIGTERM to a parent process is POSIX only")
def test_cli_sigterm_keeps_record(tmp_path):
    notebook = _write_interrupted_notebook(tmp_path, signal.SIGTERM)
    runs = tmp_path / "runs"
    environment = dict(os.environ, ADMINKB_LANG="zh-TW", ADMINKB_SMTP_PASSWORD=SECRET)
    result = subprocess.run([sys.executable, "-m", "adminkb", "run", str(notebook), "--out", str(runs)],
                            capture_output=True, timeout=240, env=environment)
    out, err = result.stdout.decode("utf-8"), result.stderr.decode("utf-8")
    assert result.returncode == 130, out + err
    assert "已中斷。" in err
    assert "Traceback" not in out + err
    assert "結果：已中斷" in out
    (folder,) = runs.iterdir()
    record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    assert record["status"] == INTERRUPTED
    assert [step["outcome"] for step in record["steps"]] == [OK, INTERRUPTED, NOT_RUN]
    assert (folder / "run.html").is_file()
    executed = nbformat.read(folder / notebook.name, as_version=4)
    lab_root = Path(_printed_value(executed, "lab root"))
    assert _wait_until_gone(lab_root.exists), f"{lab_root} was left behind"
    kernel = int(_printed_value(executed, "kernel pid"))
    assert _wait_until_gone(lambda: _process_exists(kernel)), f"kernel {kernel} still runs"
    for path in folder.iterdir():
        assert SECRET not in path.read_text(encoding="utf-8")


def test_cli_out_file_rejected(tmp_path, capsys):
    from adminkb.cli import main

    target = tmp_path / "empty.log"
    target.write_text("keep me", encoding="utf-8")
    assert main(["run", "01", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"--out 指定的 {target} 是檔案，不是資料夾" in err
    assert "下一步：" in err
    assert "Traceback" not in err
    assert target.read_text(encoding="utf-8") == "keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty.log"]


def test_out_under_file_rejected(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        record_run(_write_notebook(tmp_path), out=blocker / "runs", progress=False)
    assert caught.value.key == "recorder.out_unusable"
    assert str(blocker / "runs") in str(caught.value)


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"cells": [\n', "第 2 行第 1 欄附近的內容不是有效的 JSON"),
    (b"", "第 1 行第 1 欄附近的內容不是有效的 JSON"),
    (b"[]", "不是 Jupyter notebook 的格式"),
    (b"{}", "不是 Jupyter notebook 的格式"),
    (b'{"nbformat": 9, "cells": []}', "不是 Jupyter notebook 的格式"),
    ('{"cells": "錯"}'.encode("big5"), "不是 UTF-8 文字"),
], ids=["truncated", "empty", "list", "object", "version", "big5"])
def test_cli_corrupt_notebook_rejected(tmp_path, capsys, content, reason):
    from adminkb.cli import main

    path = tmp_path / "corrupt.ipynb"
    path.write_bytes(content)
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"無法讀取操作手冊 {path}：" in err
    assert reason in err
    assert "下一步：" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


# --- problems that checks found on a real server ---------------------------------------------------

def _write_probe_notebook(folder):
    """Write a runbook that probes SERVER in step 1 and does nothing that can fail in step 2."""
    return _write_runbook(folder, "95_probe.ipynb", "95 檢查", [
        ("步驟 1：連線檢查", 'from adminkb.target import open_target\n\ntarget = open_target(SERVER)\n'
                             'target.probe("app@example.com", "helpdesk@example.com", timeout=5)'),
        ("步驟 2：收尾", "target.close()"),
    ])


@pytest.fixture
def refused_server():
    """A loopback "host:port" that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_real_server_problem_recorded(tmp_path, refused_server):
    record = record_run(_write_probe_notebook(tmp_path), {"SERVER": refused_server}, out=tmp_path / "runs",
                        progress=False)
    assert record.status == PROBLEMS
    assert [step.outcome for step in record.steps] == [PROBLEMS, OK]
    (problem,) = record.steps[0].problems
    assert f"{refused_server} 拒絕連線" in problem
    data = json.loads(record.html_file.with_name("record.json").read_text(encoding="utf-8"))
    assert data["status"] == PROBLEMS
    assert data["steps"][0]["problems"] == [problem]
    page = record.html_file.read_text(encoding="utf-8")
    assert f"<strong>{message('recorder.outcome.problems')}</strong><ul><li>{html.escape(problem)}</li></ul>" in page


def test_lab_staged_problem_not_recorded(tmp_path):
    notebook = _write_probe_notebook(tmp_path)
    nb = nbformat.read(notebook, as_version=4)
    # From the lab's default address the remote recipient needs relay, which the lab denies.
    nb.cells[4].source = nb.cells[4].source.replace("helpdesk@example.com", "user@example.net")
    nbformat.write(nb, notebook)
    record = record_run(notebook, out=tmp_path / "runs", progress=False)
    executed = nbformat.read(record.notebook_file, as_version=4)
    assert "拒絕轉送" in json.dumps(executed.cells[4].outputs, ensure_ascii=False)
    assert record.status == OK
    assert [step.outcome for step in record.steps] == [OK, OK]


def test_problem_text_redacted_and_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    notebook = _write_probe_notebook(tmp_path)
    nb = nbformat.read(notebook, as_version=4)
    # A check result as a real server's would display it: its problem names the server and a secret.
    nb.cells[4].source = (
        "import os\nfrom IPython.display import display\nfrom adminkb.findings import FINDING_MIME\n\n"
        "problem = f'mail01.example.com 拒絕 {os.environ[\"ADMINKB_SMTP_PASSWORD\"]}'\n"
        "display({FINDING_MIME: {'problems': [problem]}, 'text/plain': problem}, raw=True)")
    nb.cells[6].source = "print('done')"
    nbformat.write(nb, notebook)
    record = record_run(notebook, {"SERVER": "mail01.example.com:25"}, out=tmp_path / "runs", mask=True,
                        progress=False)
    (problem,) = record.steps[0].problems
    assert "mail01.example.com" not in problem
    assert SECRET not in problem
    assert REDACTED in problem
    for path in (record.notebook_file, record.html_file, record.html_file.with_name("record.json")):
        text = path.read_text(encoding="utf-8")
        assert "mail01.example.com" not in text
        assert SECRET not in text


def test_cli_problems_exit_1(tmp_path, refused_server, capsys):
    notebook = _write_probe_notebook(tmp_path)
    assert run_area("run", str(notebook), "--out", str(tmp_path / "runs"), "-p", "SERVER", refused_server) == 1
    out = capsys.readouterr().out
    assert "（結果：發現問題）" in out
    assert "執行完成，1 個步驟發現問題：" in out
    assert f"- 步驟 1：連線檢查：{refused_server} 拒絕連線" in out


def test_real_server_run_shows_no_sample(tmp_path, refused_server):
    record = record_run("07", {"SERVER": refused_server, "APP_IP": None, "TIMEOUT": 3}, out=tmp_path / "runs",
                        progress=False)
    executed = nbformat.read(record.notebook_file, as_version=4)
    # The outputs of steps 7 and 8, which read a MetaBase.xml copy and an event log export.
    outputs = json.dumps([cell.get("outputs", []) for cell in executed.cells
                          if cell.cell_type == "code" and "runbook_table(" in cell.source], ensure_ascii=False)
    assert "略過這一步：沒有設定 METABASE 參數" in outputs
    assert "略過這一步：沒有設定 EVENT_LOG 參數" in outputs
    # The sample MetaBase.xml lets 192.0.2.x relay, and the sample events are dated 2026-03-02.
    assert "192.0.2." not in outputs
    assert "2026-03-02" not in outputs
    assert "範例資料" not in outputs
    outcomes = {step.title.split("：")[0]: step.outcome for step in record.steps}
    assert outcomes["步驟 7"] == OK
    assert outcomes["步驟 8"] == OK
    assert outcomes["步驟 2"] == PROBLEMS
    assert record.status == PROBLEMS
