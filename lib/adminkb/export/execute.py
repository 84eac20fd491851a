"""Run a runbook's cells in a Jupyter kernel for the export, and turn its failures into InputError."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets.config import Config

from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message

logger = logging.getLogger("adminkb.export")

# Seconds to wait after Ctrl+C for the interrupted cell to stop and nbclient to shut the kernel down.
KERNEL_STOP_TIMEOUT = 30
# The maximum time limit for one cell that `adminkb export --cell-timeout` accepts, in seconds (one day).
MAX_CELL_TIMEOUT = 86_400


def execute_notebook(notebook: Any, path: Path, cell_timeout: int) -> None:
    """Run every cell of `notebook` in place, in the notebook's folder, saving the widget state."""
    kernel_name = notebook.get("metadata", {}).get("kernelspec", {}).get("name") or "python3"
    with tempfile.TemporaryDirectory(prefix="adminkb-kernel-") as sockets:
        options: dict[str, Any] = {}
        if os.name != "nt":
            # Unix sockets in a private folder instead of TCP on loopback: ipykernel warns on every
            # start that TCP carries code and outputs unencrypted. Windows has only TCP.
            options["config"] = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
        quiet_log = _QuietLog(logger.getChild("kernel"), {})
        client = NotebookClient(notebook, timeout=cell_timeout, kernel_name=kernel_name,
                                resources={"metadata": {"path": str(path.parent)}}, store_widget_state=True,
                                log=quiet_log, **options)
        # nbclient would create the kernel manager itself with the global "traitlets" logger.
        client.create_kernel_manager().log = quiet_log
        # The kernel's own stderr goes to a file, so that its messages (a reply it could not send
        # after an interrupt, say) do not land in the admin's terminal. A failure logs its tail.
        kernel_log = Path(sockets) / "kernel.log"
        with open(kernel_log, "wb") as stderr:
            try:
                _run_client(client, path, stderr, kernel_log)
            except InputError:
                tail = _log_tail(kernel_log)
                if tail:
                    logger.info("kernel output for %s:\n%s", path.name, tail)
                raise


class _QuietLog(logging.LoggerAdapter):
    """A logger for nbclient and jupyter_client that logs their errors and warnings at INFO.

    They report the failures that `_run_client` turns into an InputError, which the command line
    prints in the user's language. At the default level they would repeat it as an English
    traceback. `adminkb -v` still shows them.

    NOTE: jupyter_client's launcher logs a kernel program that cannot be started to the global
    "traitlets" logger, which this adapter does not reach, so that one message still shows.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(min(level, logging.INFO), msg, *args, **kwargs)


class _Stopped(Exception):
    """Raised by the cell-start hook once the user has pressed Ctrl+C."""


def _run_client(client: NotebookClient, path: Path, stderr: BinaryIO, kernel_log: Path) -> None:
    """Execute `client`'s notebook and turn its failures into InputError or KeyboardInterrupt.

    nbclient runs in a worker thread. In the main thread it would take over SIGINT and, on
    Ctrl+C, kill the kernel and then fail on its own second clean-up with an AssertionError
    (nbclient 0.11). Here Ctrl+C interrupts the running cell instead and stops the next cell
    from starting, so nbclient shuts the kernel down normally and the runbook's lab removes
    its temporary folder.
    """
    stop = threading.Event()
    kernel_ready = threading.Event()
    outcome: dict[str, BaseException] = {}
    running: dict[str, Any] = {}

    def before_cell(cell: Any = None, cell_index: int | None = None, **_: object) -> None:
        if stop.is_set():
            raise _Stopped
        running["index"] = cell_index
        running["source"] = cell.get("source", "") if cell is not None else ""

    client.on_cell_start = before_cell
    client.on_notebook_start = lambda **_: kernel_ready.set()

    def execute() -> None:
        try:
            client.execute(stderr=stderr)
        except BaseException as error:  # handed to the main thread below
            outcome["error"] = error

    worker = threading.Thread(target=execute, name="adminkb-export-notebook", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        _interrupt_kernel(client)
        worker.join(KERNEL_STOP_TIMEOUT)
        raise
    error = outcome.get("error")
    if error is None:
        return
    if isinstance(error, (_Stopped, KeyboardInterrupt, asyncio.CancelledError)):
        raise KeyboardInterrupt from None
    if not kernel_ready.is_set() and isinstance(error, Exception):
        raise _kernel_start_error(client, path, error, kernel_log) from error
    if isinstance(error, CellTimeoutError) and running.get("index") is not None:
        logger.info("executing %s timed out: %s", path.name, error)
        seconds = client.timeout
        raise InputError("export.error.cell_timeout", value=path.name, cell=running["index"] + 1,
                         preview=_first_line(running["source"]), seconds=seconds,
                         suggested=min(seconds * 2, MAX_CELL_TIMEOUT),
                         next_key="export.error.cell_timeout_next") from error
    if isinstance(error, (CellExecutionError, CellTimeoutError, DeadKernelError)):
        # The first line names the failing cell's error; the full traceback is in the log.
        logger.error("executing %s failed: %s", path.name, error)
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise InputError("export.error.execution_failed", value=path.name, reason=first_line,
                         next_key="export.error.execution_failed_next") from error
    raise error


def _kernel_start_error(client: NotebookClient, path: Path, error: Exception, kernel_log: Path) -> InputError:
    """Build the InputError for a kernel that is not installed or that failed to start."""
    # nbclient registers an exit handler to shut the kernel down before it starts the kernel, and
    # removes it only after a started run. Left in place, it fails at exit with an AssertionError.
    atexit.unregister(client._cleanup_kernel)
    kernel = client.kernel_name
    if isinstance(error, NoSuchKernel):
        logger.info("%s names kernel %s, which is not installed", path.name, kernel)
        available = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "-"
        return InputError("export.error.no_such_kernel", value=path.name, kernel=kernel, available=available,
                          next_key="export.error.no_such_kernel_next")
    logger.info("kernel %s of %s failed to start: %r", kernel, path.name, error)
    # The kernel's last line of stderr ("No module named ipykernel_launcher") names the cause
    # better than jupyter_client's "Kernel died before replying to kernel_info".
    last_stderr_line = (_log_tail(kernel_log).splitlines() or [""])[-1]
    if last_stderr_line.strip():
        reason = _first_line(last_stderr_line, limit=200)
    elif isinstance(error, OSError) and error.filename:
        reason = message("export.error.kernel_program", reason=os_error_text(error), program=error.filename)
    else:
        reason = _first_line(str(error), limit=200) or type(error).__name__
    return InputError("export.error.kernel_start_failed", value=path.name, kernel=kernel, reason=reason,
                      next_key="export.error.kernel_start_failed_next")


def _log_tail(kernel_log: Path) -> str:
    """Return the last 2000 bytes of the kernel's stderr as text, or "" when there is none."""
    try:
        return kernel_log.read_bytes()[-2000:].decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _first_line(text: str, limit: int = 60) -> str:
    """Return the first non-blank line of `text`, cut to `limit` characters with an ellipsis."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _interrupt_kernel(client: NotebookClient) -> None:
    """Send SIGINT to the kernel process, as the Jupyter interrupt button does, if one runs."""
    provisioner = getattr(getattr(client, "km", None), "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    if pid is None or os.name == "nt":
        # NOTE: not run on Windows. There the running cell is not interrupted: the export waits
        # up to KERNEL_STOP_TIMEOUT for it, and the hook stops the cells after it.
        return
    try:
        os.kill(pid, signal.SIGINT)
    except OSError as error:
        logger.warning("could not interrupt kernel process %s: %s", pid, error)
