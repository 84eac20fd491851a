"""Run a runbook's cells in a Jupyter kernel for the export, and turn its failures into InputError."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets.config import Config

from adminkb.errors import InputError

logger = logging.getLogger("adminkb.export")

# Seconds to wait after Ctrl+C for the interrupted cell to stop and nbclient to shut the kernel down.
KERNEL_STOP_TIMEOUT = 30


def execute_notebook(notebook: Any, path: Path, cell_timeout: int) -> None:
    """Run every cell of `notebook` in place, in the notebook's folder, saving the widget state."""
    kernel_name = notebook.get("metadata", {}).get("kernelspec", {}).get("name") or "python3"
    with tempfile.TemporaryDirectory(prefix="adminkb-kernel-") as sockets:
        options: dict[str, Any] = {}
        if os.name != "nt":
            # Unix sockets in a private folder instead of TCP on loopback: ipykernel warns on every
            # start that TCP carries code and outputs unencrypted. Windows has only TCP.
            options["config"] = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
        client = NotebookClient(notebook, timeout=cell_timeout, kernel_name=kernel_name,
                                resources={"metadata": {"path": str(path.parent)}}, store_widget_state=True,
                                **options)
        # The kernel's own stderr goes to a file, so that its messages (a reply it could not send
        # after an interrupt, say) do not land in the admin's terminal. A failure logs its tail.
        kernel_log = Path(sockets) / "kernel.log"
        with open(kernel_log, "wb") as stderr:
            try:
                _run_client(client, path, stderr)
            except InputError:
                tail = kernel_log.read_bytes()[-2000:].decode("utf-8", "replace").strip()
                if tail:
                    logger.info("kernel output for %s:\n%s", path.name, tail)
                raise


class _Stopped(Exception):
    """Raised by the cell-start hook once the user has pressed Ctrl+C."""


def _run_client(client: NotebookClient, path: Path, stderr: BinaryIO) -> None:
    """Execute `client`'s notebook and turn its failures into InputError or KeyboardInterrupt.

    nbclient runs in a worker thread. In the main thread it would take over SIGINT and, on
    Ctrl+C, kill the kernel and then fail on its own second clean-up with an AssertionError
    (nbclient 0.11). Here Ctrl+C interrupts the running cell instead and stops the next cell
    from starting, so nbclient shuts the kernel down normally and the runbook's lab removes
    its temporary folder.
    """
    stop = threading.Event()
    outcome: dict[str, BaseException] = {}

    def stop_before_next_cell(**_: object) -> None:
        if stop.is_set():
            raise _Stopped

    client.on_cell_start = stop_before_next_cell

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
    if isinstance(error, (CellExecutionError, CellTimeoutError, DeadKernelError)):
        # The first line names the failing cell's error; the full traceback is in the log.
        logger.error("executing %s failed: %s", path.name, error)
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise InputError("export.error.execution_failed", value=path.name, reason=first_line,
                         next_key="export.error.execution_failed_next") from error
    raise error


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
