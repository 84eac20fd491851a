"""The package's English log lines stay out of the runbooks' cell output and reach configured handlers.

A Jupyter kernel configures no logging, so without a handler on the `adminkb` logger Python's
last-resort handler would print every warning on stderr, and the notebook would store it as
cell output. Runbook 03's two-day step sends delivery status notifications to Badmail, which
the lab logs as warnings: executing that step in a real kernel shows no stderr at all.
"""

import logging
import subprocess
import sys
import textwrap

import nbformat
import pytest
from nbclient import NotebookClient

from adminkb.runbooks import NOTEBOOKS_DIR

RUNBOOK_03 = NOTEBOOKS_DIR / "03_mailroot_inspection.ipynb"
# The step in runbook 03 in which the lab moves undeliverable notifications to Badmail.
BADMAIL_STEP = "target.advance(2880)"

# Two days of lab time with a sender whose own notifications bounce: the lab logs a warning
# for each notification it moves to Badmail.
BADMAIL_SCENARIO = textwrap.dedent("""
    import logging, sys
    from adminkb.target import open_target
    if sys.argv[1:] == ["configured"]:
        logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    target = open_target("lab", source_address="127.0.0.10")
    try:
        alert = target.compose_message("nosuchuser@example.net", ["user@blocked.lab.test"], "警示", "x\\n",
                                       tag="alert")
        target.write_pickup(alert, name="alert.eml")
        target.process_pickup()
        target.deliver_queue()
        target.advance(2880)
        print(len(target.lab.badmail_files()))
    finally:
        target.close()
""")


def run_scenario(*arguments):
    return subprocess.run([sys.executable, "-c", BADMAIL_SCENARIO, *arguments], capture_output=True, text=True,
                          timeout=120)


def test_package_logger_has_null_handler():
    handlers = logging.getLogger("adminkb").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


def test_unconfigured_program_prints_no_warning():
    finished = run_scenario()
    assert finished.returncode == 0, finished.stderr
    assert int(finished.stdout.split()[-1]) >= 3, "the scenario puts a notification into Badmail"
    assert finished.stderr == ""


def test_configured_program_receives_warning():
    finished = run_scenario("configured")
    assert finished.returncode == 0, finished.stderr
    assert "adminkb.lab.delivery WARNING" in finished.stderr
    assert "went to Badmail" in finished.stderr


@pytest.mark.timeout(300)
def test_runbook_03_badmail_step_has_no_stderr():
    notebook = nbformat.read(RUNBOOK_03, as_version=4)
    step = next(index for index, cell in enumerate(notebook.cells)
                if cell.cell_type == "code" and BADMAIL_STEP in cell.source)
    notebook.cells = notebook.cells[:step + 1] + [nbformat.v4.new_code_cell("target.close()")]
    client = NotebookClient(notebook, kernel_name="python3", timeout=240,
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    client.execute()

    outputs = notebook.cells[step].outputs
    assert [output for output in outputs if output.get("name") == "stderr"] == []
    text = "\n".join(str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
                     for output in outputs)
    assert "went to Badmail" not in text
    assert "Badmail" in text, "the step's table still shows the Badmail outcome"
    for index, cell in enumerate(notebook.cells):
        stderr = [output for output in cell.get("outputs", []) if output.get("name") == "stderr"]
        assert stderr == [], f"cell {index} wrote to stderr: {stderr}"
