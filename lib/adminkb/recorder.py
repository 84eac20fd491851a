"""Recorded runs: execute a runbook with papermill and keep the notebook, an offline HTML page and a record.

    record = record_run("07", {"SERVER": "192.0.2.25:25"}, mask=True)
    record.folder         # ~/.adminkb/runs/20260302-091500_07_troubleshoot_delivery/

Each run gets a new dated folder with the executed notebook, `run.html` and `record.json`.
The HTML page is offline: it loads no script or style from another host. The record contains
the parameters, start and end time, the host that ran it and the outcome of each `## 步驟` section.

Secrets: runbooks read credentials from environment variables. Before anything is written,
the value of every environment variable whose name looks like a secret (`SECRET_NAME`) is
replaced by `REDACTED` in every string of the notebook, the record and the page, in each
spelling escaping gives it (see `adminkb.redaction`). A parameter with such a name is
rejected, because parameters are written into the record. `mask=True` also replaces e-mail
local parts, host names and addresses with `adminkb.masking`.

The HTML page is rendered by `adminkb.export`, so it looks like an exported runbook, shows
widgets by their static fallback, and passes the same check for external resources. When that
check fails, the notebook and `record.json` are kept and `run.html` is not written.

A run aimed at a real server also records the problems its checks found: a step whose check
result listed problems (see `adminkb.findings`) has the outcome "problems", and so does the run
when no step failed. The lab's runbooks stage faults on purpose, so their checks list none.

Ctrl+C (or SIGTERM, which the command line turns into KeyboardInterrupt) stops the run, and the
cells executed so far are still written, with status "interrupted". A run stopped before any
cell started leaves no folder behind.
"""

from __future__ import annotations

import ast
import copy
import html
import json
import logging
import os
import re
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from adminkb.errors import InputError, os_error_text
from adminkb.findings import problems_in_output
from adminkb.i18n import message
from adminkb.masking import Masker, mask_notebook
from adminkb.redaction import SECRET_NAME, Redactor, secret_values
from adminkb.runbooks import NOTEBOOKS_DIR, RUNBOOKS

log = logging.getLogger("adminkb.recorder")

DEFAULT_KERNEL = "python3"
DEFAULT_CELL_TIMEOUT = 600
# The longest --timeout the command line accepts: one day.
MAX_CELL_TIMEOUT = 86_400
_STEP_HEADING = re.compile(r"^##\s*(步驟\s*\d+.*)$", re.MULTILINE)
_PARAMETER_NAME = re.compile(r"\A[A-Z][A-Z0-9_]*\Z")

OK = "ok"
# Every cell ran, but a check found a problem on the real server.
PROBLEMS = "problems"
FAILED = "failed"
NOT_RUN = "not_run"
INTERRUPTED = "interrupted"
# The error name `_mark_stopped_cell` gives the cell that was running when the user interrupted the run.
INTERRUPTED_ERROR_NAME = "RunInterrupted"


def default_runs_folder() -> Path:
    """Return `~/.adminkb/runs`, where recorded runs go unless another folder is named."""
    return Path.home() / ".adminkb" / "runs"


def resolve_notebook(name: str | os.PathLike[str]) -> Path:
    """Return the runbook for a path or a number such as `07`; raise InputError when there is none."""
    text = str(name)
    if re.fullmatch(r"\d{1,2}", text):
        number = text.zfill(2)
        for runbook in RUNBOOKS:
            if runbook.number == number and (NOTEBOOKS_DIR / runbook.filename).is_file():
                return NOTEBOOKS_DIR / runbook.filename
        raise InputError("recorder.unknown_number", value=text, next_key="recorder.unknown_number_next")
    path = Path(text)
    if not path.is_file():
        raise InputError("recorder.not_found", value=text, next_key="recorder.unknown_number_next")
    if path.suffix.lower() != ".ipynb":
        raise InputError("recorder.not_notebook", value=text, next_key="recorder.unknown_number_next")
    check_notebook_readable(path)
    return path


def check_notebook_readable(path: Path) -> None:
    """Raise InputError naming `path` and the reason when it is not a notebook nbformat can read."""
    try:
        nbformat.read(path, as_version=4)
    except OSError as error:
        reason = os_error_text(error)
    except UnicodeDecodeError:
        reason = message("recorder.reason.not_utf8")
    except nbformat.reader.NotJSONError as error:
        cause = error.__cause__
        if isinstance(cause, json.JSONDecodeError):
            reason = message("recorder.reason.bad_json_at", line=cause.lineno, column=cause.colno)
        else:
            reason = message("recorder.reason.bad_json")
    except (ValueError, AttributeError, nbformat.ValidationError) as error:
        # nbformat raises AttributeError for JSON that is not an object, and a ValidationError or
        # NBFormatError (a ValueError) for an object that lacks a notebook's keys or version.
        log.info("%s is not a readable notebook: %r", path, error)
        reason = message("recorder.reason.not_notebook")
    else:
        return
    raise InputError("recorder.notebook_unreadable", value=str(path), reason=reason,
                     next_key="recorder.notebook_unreadable_next")


@dataclass(frozen=True)
class Parameter:
    """One parameter of a runbook's `parameters` cell: name, default as written, and its comment."""

    name: str
    default: str
    help: str


def list_parameters(notebook: str | os.PathLike[str]) -> list[Parameter]:
    """Return the parameters of the runbook's cell tagged `parameters`, in order."""
    import papermill

    path = resolve_notebook(notebook)
    found = papermill.inspect_notebook(str(path))
    return [Parameter(name, str(entry.get("default")), entry.get("help") or "") for name, entry in found.items()]


def parameters_table(notebook: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Return the runbook's parameters as table rows with titles in the user's language."""
    return [{message("recorder.column.name"): item.name, message("recorder.column.default"): item.default,
             message("recorder.column.help"): item.help} for item in list_parameters(notebook)]


def parse_value(text: str) -> object:
    """Turn a `-p NAME VALUE` text into a Python value: None, True/False, int, float, or the text."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parameter_values(notebook: str | os.PathLike[str], pairs: list[tuple[str, str]]) -> dict[str, object]:
    """Convert `-p NAME VALUE` texts to values of the type of each parameter's default.

    A string default keeps the text as typed, so `-p SERVER 007` stays "007", except None,
    which the runbooks use to switch a setting off (`-p APP_IP None`). A number default
    needs a number, and a True/False default needs true or false. Other defaults (None, lists)
    take what `parse_value` makes of the text. Raises InputError for a value of the wrong type,
    before anything runs. Unknown names pass through to `check_parameters`, which rejects them.
    """
    defaults = {item.name: _default_value(item.default) for item in list_parameters(notebook)}
    values: dict[str, object] = {}
    for name, text in pairs:
        if name not in defaults:
            values[name] = parse_value(text)
            continue
        default = defaults[name]
        value = parse_value(text)
        if isinstance(default, str) and value is not None:
            value = text
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError("recorder.parameter_kind", value=text, name=name,
                                 kind=message("recorder.kind.bool"), next_key="recorder.parameter_kind_next")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError("recorder.parameter_kind", value=text, name=name,
                                 kind=message("recorder.kind.number"), next_key="recorder.parameter_kind_next")
        values[name] = value
    return values


def _default_value(written: str) -> object:
    """Return the Python value of a default as written in the parameters cell, or None."""
    try:
        return ast.literal_eval(written)
    except (ValueError, SyntaxError):
        return None


def check_parameters(notebook: Path, parameters: dict[str, object]) -> dict[str, object]:
    """Return the parameters when each one exists in the runbook and none looks like a secret."""
    known = {parameter.name for parameter in list_parameters(notebook)}
    for name in parameters:
        if not _PARAMETER_NAME.match(name) or name not in known:
            raise InputError("recorder.unknown_parameter", value=name, known=", ".join(sorted(known)) or "-",
                             next_key="recorder.unknown_parameter_next")
        if SECRET_NAME.search(name):
            raise InputError("recorder.secret_parameter", value=name, next_key="recorder.secret_parameter_next")
    return parameters


@dataclass
class StepOutcome:
    """A `## 步驟` section of the runbook, how its code cells ended, and the problems its checks found."""

    title: str
    outcome: str
    problems: list[str] = field(default_factory=list)


@dataclass
class RunRecord:
    """The contents of `record.json` for one recorded run."""

    notebook: str
    folder: str
    parameters: dict[str, object]
    started: str
    finished: str
    host: str
    status: str
    masked: bool
    steps: list[StepOutcome] = field(default_factory=list)
    error: str | None = None

    @property
    def notebook_file(self) -> Path:
        return Path(self.folder) / Path(self.notebook).name

    @property
    def html_file(self) -> Path:
        return Path(self.folder) / "run.html"

    @property
    def steps_with_problems(self) -> list[StepOutcome]:
        return [step for step in self.steps if step.problems]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def step_outcomes(notebook: Any) -> list[StepOutcome]:
    """Return the outcome of each `## 步驟` section.

    A step is failed when a code cell raised, interrupted when the user stopped the run in one
    of its cells, and not run after either. A step whose cells ran has the outcome "problems"
    when one of its outputs lists problems a check found (`adminkb.findings`).
    """
    outcomes: list[StepOutcome] = []
    stopped_before = False
    current: StepOutcome | None = None
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            heading = _STEP_HEADING.search(cell.source)
            if heading:
                current = StepOutcome(heading.group(1).strip(), NOT_RUN if stopped_before else OK)
                outcomes.append(current)
            elif cell.source.lstrip().startswith("## "):
                current = None
            continue
        if current is None or cell.cell_type != "code":
            continue
        executed = cell.get("execution_count") is not None
        outputs = cell.get("outputs", [])
        for output in outputs:
            current.problems.extend(problem for problem in problems_in_output(output)
                                    if problem not in current.problems)
        errors = [output for output in outputs if output.get("output_type") == "error"]
        if errors:
            interrupted = any(output.get("ename") == INTERRUPTED_ERROR_NAME for output in errors)
            current.outcome = INTERRUPTED if interrupted else FAILED
            stopped_before = True
        elif not executed and current.outcome in (OK, PROBLEMS) and cell.source.strip():
            current.outcome = NOT_RUN
        elif current.problems and current.outcome == OK:
            current.outcome = PROBLEMS
    return outcomes


def run_status(status: str, steps: list[StepOutcome]) -> str:
    """Return the run's status: `status` from the execution, or "problems" when it ran and a step found some."""
    if status == OK and any(step.outcome == PROBLEMS for step in steps):
        return PROBLEMS
    return status


class RunInterrupted(KeyboardInterrupt):
    """Raised by `record_run` when the user interrupted the run, after the record is written.

    `record` is the record of the cells executed so far, or None when no cell had started, in
    which case the run folder was removed again.
    """

    def __init__(self, record: RunRecord | None) -> None:
        super().__init__()
        self.record = record


def _new_run_folder(parent: Path, stem: str, started: datetime) -> Path:
    """Create and return a new folder for the run under `parent`, named after the start time and `stem`."""
    if parent.exists() and not parent.is_dir():
        raise InputError("recorder.out_not_folder", value=str(parent), next_key="recorder.out_next")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError("recorder.out_unusable", value=str(parent), reason=os_error_text(error),
                         next_key="recorder.out_next") from error
    base = f"{started.strftime('%Y%m%d-%H%M%S')}_{stem}"
    for attempt in range(1, 1000):
        folder = parent / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise InputError("recorder.folder_taken", value=str(parent / base), next_key="recorder.folder_taken_next")


def record_run(notebook: str | os.PathLike[str], parameters: dict[str, object] | None = None, *,
               out: str | os.PathLike[str] | None = None, mask: bool = False, kernel_name: str = DEFAULT_KERNEL,
               cell_timeout: int = DEFAULT_CELL_TIMEOUT, progress: bool = True) -> RunRecord:
    """Execute a runbook with papermill into a new dated folder and return the run's record.

    A runbook that raises, a cell that runs longer than `cell_timeout` seconds and a kernel that
    dies all still get their record (status failed, with the reason), because a failed live run
    is worth keeping. Raises InputError for an unknown or unreadable runbook, an unknown
    parameter or an `out` that is not a usable folder, before anything runs. Raises InputError
    after writing the notebook and record.json when the HTML page would load an external
    resource. Raises RunInterrupted on Ctrl+C, after writing the record of the cells that ran.
    """
    path = resolve_notebook(notebook)
    parameters = check_parameters(path, dict(parameters or {}))
    redactor = Redactor(secret_values())
    started = datetime.now(timezone.utc)
    folder = _new_run_folder(Path(out) if out else default_runs_folder(), path.stem, started)
    executed_path = folder / path.name
    log.info("recording %s into %s with parameters %s", path.name, folder, sorted(parameters))
    try:
        # The executed notebook still contains any secret a cell printed, so it is written to a
        # private scratch folder and only its cleaned copy reaches the run folder.
        with tempfile.TemporaryDirectory(prefix="adminkb-run-") as scratch:
            executed, status, error_text = _execute(path, parameters, Path(scratch), redactor,
                                                    kernel_name=kernel_name, cell_timeout=cell_timeout,
                                                    progress=progress)
    except KeyboardInterrupt:
        # Interrupted before papermill started or while the scratch folder was removed.
        _remove_if_empty(folder)
        raise
    finished = datetime.now(timezone.utc)
    if status == INTERRUPTED and not _any_cell_started(executed):
        log.info("run of %s interrupted before any cell started; removed %s", path.name, folder)
        _remove_if_empty(folder)
        raise RunInterrupted(None)

    masker = _run_masker(parameters) if mask else None
    executed = _clean_notebook(executed, redactor, masker)
    steps = step_outcomes(executed)
    record = RunRecord(notebook=str(path), folder=str(folder), parameters=parameters,
                       started=started.isoformat(timespec="seconds"), finished=finished.isoformat(timespec="seconds"),
                       host=message("recorder.masked_host") if mask else socket.gethostname(),
                       status=run_status(status, steps), masked=mask, steps=steps, error=error_text)
    record_data = _clean_data(record.to_dict(), redactor, masker)
    _write_text(executed_path, nbformat.writes(executed))
    _write_text(folder / "record.json", json.dumps(record_data, ensure_ascii=False, indent=2) + "\n")
    # The notebook and the record are clean already; this catches a spelling the renderer made.
    page = redactor.text(render_run_html(executed, record_data))
    _write_text(record.html_file, page)
    if status == INTERRUPTED:
        raise RunInterrupted(record)
    return record


def _write_text(path: Path, text: str) -> None:
    """Write UTF-8 `text` to `path` through a temporary file, so that a second Ctrl+C leaves no half file.

    The run folder is new and this run's own, so a fixed temporary name cannot collide, and
    open() gives the file the usual mode (0o666 less the umask).
    """
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError as error:
        log.info("kept run folder %s: %s", folder, error)


def _any_cell_started(notebook: Any) -> bool:
    """Return whether papermill started any code cell of `notebook`."""
    return any(cell.cell_type == "code" and cell.get("metadata", {}).get("papermill", {}).get("start_time")
               for cell in notebook.cells)


def _execute(path: Path, parameters: dict[str, object], scratch: Path, redactor: Redactor, *, kernel_name: str,
             cell_timeout: int, progress: bool) -> tuple[Any, str, str | None]:
    """Run the runbook in `scratch` and return the executed notebook, its status and the error text.

    A cell that times out or a kernel that dies stops papermill without the error output it
    writes for an exception, so the stopped cell gets one here, in the user's language. The
    kernel's own stderr (its warnings and the traceback of the interrupted cell) goes to a file
    in `scratch` and then to the log, not to the admin's terminal.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    raw_path = scratch / path.name
    kernel_stderr = scratch / "kernel-stderr.log"
    status, error_text, stop_reason = OK, None, None
    # The index of each cell whose execution finished, so that an interrupt between two cells
    # is not blamed on the cell before it.
    finished_cells: set[int] = set()
    try:
        papermill.execute_notebook(str(path), str(raw_path), parameters=parameters, kernel_name=kernel_name,
                                   cwd=str(path.parent), progress_bar=progress, execution_timeout=cell_timeout,
                                   request_save_on_cell_execute=True,
                                   kernel_manager_class=_kernel_manager_class(kernel_stderr),
                                   on_cell_executed=lambda cell_index, **_: finished_cells.add(cell_index))
    except KeyboardInterrupt:
        # papermill has interrupted and shut down the kernel, so the runbook's lab removed its
        # temporary folder, and has saved the notebook as far as it ran.
        status = INTERRUPTED
        log.info("recorded run of %s interrupted by the user", path.name)
    except PapermillExecutionError as error:
        status, error_text = FAILED, redactor.text(f"{error.ename}: {error.evalue}")
        log.warning("recorded run of %s failed in cell %s: %s", path.name, error.exec_count, error_text)
    except CellTimeoutError:
        stop_reason = message("recorder.cell_timeout", seconds=cell_timeout,
                              suggested=min(2 * cell_timeout, MAX_CELL_TIMEOUT))
        log.warning("recorded run of %s stopped: a cell ran longer than %d seconds", path.name, cell_timeout)
    except DeadKernelError:
        stop_reason = message("recorder.kernel_died")
        log.warning("recorded run of %s stopped: the kernel died", path.name)
    if kernel_stderr.is_file():
        text = redactor.text(kernel_stderr.read_text(encoding="utf-8", errors="replace")).strip()
        if text:
            log.log(logging.INFO if status == FAILED or stop_reason else logging.DEBUG, "kernel stderr:\n%s", text)
    # papermill saves the notebook after every cell and once more when it stops, so the file
    # exists unless the kernel never started.
    executed = nbformat.read(raw_path if raw_path.is_file() else path, as_version=4)
    if status == INTERRUPTED:
        error_text = message("recorder.interrupted")
        _mark_stopped_cell(executed, message("recorder.interrupted_cell"), name=INTERRUPTED_ERROR_NAME,
                           finished=finished_cells)
    elif stop_reason is not None:
        status, error_text = FAILED, stop_reason
        _mark_stopped_cell(executed, stop_reason)
    return executed, status, error_text


def _kernel_manager_class(stderr_file: Path) -> type:
    """Return a kernel manager class whose kernels write their stderr to `stderr_file`."""
    from jupyter_client.manager import AsyncKernelManager

    class FileStderrKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            # Popen gives the kernel its own copy of the file handle, so this one may close.
            with stderr_file.open("ab") as stream:
                kw.setdefault("stderr", stream)
                await super().start_kernel(**kw)

    return FileStderrKernelManager


def _mark_stopped_cell(notebook: Any, reason: str, *, name: str = "RunStopped",
                       finished: set[int] | None = None) -> None:
    """Give the cell that was running when the run stopped an error output `name` that states `reason`.

    That cell is the last code cell papermill started, unless its index is in `finished`: then
    the run stopped between two cells and no cell is marked. The KeyboardInterrupt the stop may
    have left in the cell is dropped, because `reason` states why the cell ended.
    """
    started = [(index, cell) for index, cell in enumerate(notebook.cells)
               if cell.cell_type == "code" and cell.source.strip()
               and cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return
    index, cell = started[-1]
    if finished is not None and index in finished:
        return
    cell.outputs = [output for output in cell.get("outputs", []) if output.get("output_type") != "error"]
    cell.outputs.append(nbformat.v4.new_output("error", ename=name, evalue=reason, traceback=[reason]))
    cell.metadata["papermill"]["status"] = "failed"
    cell.metadata["papermill"]["exception"] = True


# Parameters whose value names a server ("MAIL01:25", "[192.0.2.25]"): --mask hides that name
# wherever the record shows it, even as a bare computer name that looks like any other word.
HOST_PARAMETERS = ("SERVER", "SMART_HOST", "NAMESERVER")


def _run_masker(parameters: dict[str, object]) -> Masker:
    masker = Masker()
    for name in HOST_PARAMETERS:
        value = parameters.get(name)
        if isinstance(value, str) and value.strip().lower() != "lab":
            masker.add_host(_host_part(value))
    return masker


def _host_part(value: str) -> str:
    """Return the host of "host", "host:port", "[address]" or "[address]:port"."""
    text = value.strip()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    host, colon, port = text.rpartition(":")
    return host if colon and port.isdigit() and ":" not in host else text


def _clean_notebook(notebook: Any, redactor: Redactor, masker: Masker | None) -> Any:
    """Redact secrets in every string of the notebook (sources, outputs, metadata), then mask when asked."""
    cleaned = redactor.notebook(notebook)
    if masker is None:
        return cleaned
    masked = mask_notebook(cleaned, masker)
    papermill_metadata = masked.metadata.get("papermill")
    if papermill_metadata is not None:
        masked.metadata["papermill"] = _clean_data(dict(papermill_metadata), Redactor([]), masker)
    return masked


def _clean_data(data: object, redactor: Redactor, masker: Masker | None) -> object:
    if isinstance(data, str):
        text = redactor.text(data)
        return masker.mask(text) if masker else text
    if isinstance(data, dict):
        return {key: _clean_data(value, redactor, masker) for key, value in data.items()}
    if isinstance(data, list):
        return [_clean_data(value, redactor, masker) for value in data]
    return data


def run_summary_cell(record: dict[str, Any]) -> Any:
    """Build the markdown cell that opens the run's page: the record's fields and each step's outcome.

    The tables are HTML inside the markdown, so a value that contains markdown syntax (a `|` or a
    `*` in a parameter) is shown as written. Every value is escaped, and line breaks become
    spaces, because a blank line would end the HTML block.
    """
    def cell_text(value: object) -> str:
        return " ".join(html.escape(str(value)).splitlines())

    rows = [(message("recorder.html.notebook"), Path(str(record["notebook"])).name),
            (message("recorder.html.host"), record["host"]),
            (message("recorder.html.started"), record["started"]),
            (message("recorder.html.finished"), record["finished"]),
            (message("recorder.html.status"), message(f"recorder.outcome.{record['status']}")),
            (message("recorder.html.parameters"), json.dumps(record["parameters"], ensure_ascii=False))]
    summary = "".join(f"<tr><th>{cell_text(name)}</th><td>{cell_text(value)}</td></tr>" for name, value in rows)
    steps = "".join(f"<tr><td>{cell_text(step['title'])}</td>"
                    f"<td>{_outcome_html(step['outcome'])}{_problems_html(step.get('problems', []))}</td></tr>"
                    for step in record["steps"])
    title = message("recorder.html.title", notebook=Path(str(record["notebook"])).name)
    source = (f"# {title}\n\n<table class=\"adminkb-run-record\">{summary}</table>\n\n"
              f"## {message('recorder.html.steps')}\n\n<table class=\"adminkb-run-steps\">{steps}</table>\n\n---\n")
    return nbformat.v4.new_markdown_cell(source)


def _outcome_html(outcome: str) -> str:
    """Return a step's outcome in the user's language, in bold unless the step ran without problems."""
    text = html.escape(message(f"recorder.outcome.{outcome}"))
    return f"<strong>{text}</strong>" if outcome in (FAILED, INTERRUPTED, PROBLEMS) else text


def _problems_html(problems: list[str]) -> str:
    """Return the problems a step's checks found as a list for its table cell, or "" when there are none."""
    if not problems:
        return ""
    items = "".join(f"<li>{' '.join(html.escape(problem).splitlines())}</li>" for problem in problems)
    return f"<ul>{items}</ul>"


def render_run_html(notebook: Any, record: dict[str, Any]) -> str:
    """Render the run as an offline page with the export's renderer: the record's tables, then the notebook.

    Widget views become their static HTML as in `adminkb export`. Raises InputError naming the
    first resource the page would load from outside its folder, which happens only when a cell's
    output contains such a reference (an `<img>` with a URL, for example).
    """
    from adminkb.export import external_resources
    from adminkb.export.render import Page, make_exporter, render_page, site_css

    page_notebook = copy.deepcopy(notebook)
    page_notebook.cells.insert(0, run_summary_cell(record))
    name = Path(str(record["notebook"])).name
    page = Page(number="", filename=name, url="run.html",
                title=message("recorder.html.title", notebook=name), question="")
    # No navigation bar: a run folder has no site index and no other page to link to.
    render_page(make_exporter(no_input=False), page_notebook, page, "", site_css(), set())
    for warning in page.warnings:
        log.warning("%s", warning)
    found = external_resources(page.html)
    if found:
        raise InputError("recorder.external_resource", value=found[0], where=str(record["folder"]),
                         next_key="recorder.external_resource_next")
    return page.html
