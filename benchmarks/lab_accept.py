"""Benchmark: messages per second that the mail lab and a private Postfix accept on loopback.

Both servers are driven in the same run by Postfix's load generator `smtp-source` with the
same arguments (by default 2,000 messages of about 1 KB over 20 concurrent sessions, one
connection per message). The time runs from smtp-source's start to its exit, so it ends when
the last message got its reply to DATA.

Losses are counted by Message-ID: smtp-source gives each message its own. For the lab, the
Message-IDs in Queue are compared with the number sent. For Postfix (every transport is
`discard`), the distinct Message-IDs that its cleanup daemon logged are counted once the log
stops growing. CPU per message is the CPU time of this process, where the lab (or the bare
aiosmtpd server) runs, or of Postfix's master process tree (Linux /proc), divided by the
messages.

Postfix needs root to start (its master drops privileges to the postfix user). Without
Postfix the script measures the lab alone and prints why. Runs alternate between the servers,
and the table gives each run and the median.

With --bare-aiosmtpd a third server takes part: aiosmtpd's own SMTP class with a handler that
writes each message to a file of its own and fsyncs it, with no IIS behaviour, log or queue
layout. It is the floor that the lab's own work adds to.

Usage (from the repository root):
    python benchmarks/lab_accept.py [--messages 2000] [--sessions 20] [--size 1024] [--runs 3]
                                    [--reuse] [--bare-aiosmtpd] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import email.parser
import itertools
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from aiosmtpd.smtp import SMTP  # noqa: E402

from adminkb.lab import MailLab  # noqa: E402
from tests.integration.postfix import PrivatePostfix, postfix_available  # noqa: E402

SMTP_SOURCE = Path("/usr/sbin/smtp-source")
# Seconds one smtp-source run may take before the benchmark gives up on it.
RUN_TIMEOUT = 600
# Seconds to wait for Postfix's log to show every message, and the pause that counts as "stopped growing".
LOG_SETTLE_TIMEOUT = 60.0
LOG_QUIET_SECONDS = 1.0
CLEANUP_MESSAGE_ID = re.compile(r"cleanup\[\d+\]: \w+: message-id=(<[^>]*>)")


def smtp_source_command(port: int, options: argparse.Namespace) -> list[str]:
    command = [str(SMTP_SOURCE), "-s", str(options.sessions), "-m", str(options.messages),
               "-l", str(options.size), "-M", "bench.example.net", "-f", "app@example.com",
               "-t", "user@example.net"]
    if options.reuse:
        command.append("-d")
    return command + [f"127.0.0.1:{port}"]


def run_smtp_source(port: int, options: argparse.Namespace) -> float:
    """Run smtp-source against `port` and return the seconds it took; raise when it fails."""
    started = time.perf_counter()
    completed = subprocess.run(smtp_source_command(port, options), capture_output=True, text=True,
                               timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"smtp-source exited with {completed.returncode}: {completed.stderr.strip()[-500:]}")
    return elapsed


def queued_message_ids(files: list[Path]) -> list[str]:
    parser = email.parser.BytesHeaderParser()
    ids = []
    for path in files:
        with path.open("rb") as handle:
            ids.append(str(parser.parse(handle)["Message-ID"]))
    return ids


class ProfiledLab(MailLab):
    """A lab whose event-loop thread, where the SMTP sessions run, is profiled by `profiler`."""

    profiler: cProfile.Profile | None = None

    def _run_loop(self, ready) -> None:
        # cProfile sees only the thread that enabled it, so it starts inside the lab's thread.
        if self.profiler is None:
            super()._run_loop(ready)
            return
        self.profiler.enable()
        try:
            super()._run_loop(ready)
        finally:
            self.profiler.disable()


def measure_lab(options: argparse.Namespace, profiler: cProfile.Profile | None) -> tuple[float, int, float]:
    """Return the seconds, the lost message count and the lab's CPU seconds of one run against a fresh lab.

    The CPU seconds are this process's, all threads, during the smtp-source run. The main
    thread only waits for smtp-source then, so they are the lab's own cost.
    """
    with tempfile.TemporaryDirectory(prefix="adminkb-bench-lab-") as folder:
        lab = ProfiledLab(root=folder, relay_grant=["127.0.0.1"], pickup_interval=None)
        lab.profiler = profiler
        with lab:
            cpu_before = time.process_time()
            elapsed = run_smtp_source(lab.port, options)
            cpu_seconds = time.process_time() - cpu_before
            ids = queued_message_ids(lab.queue_files())
    return elapsed, options.messages - len(set(ids)), cpu_seconds


class FsyncHandler:
    """An aiosmtpd handler that writes each message to a new file in `folder` and fsyncs it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        path = self.folder / f"{next(self._numbers):08d}.eml"
        with path.open("xb") as handle:
            handle.write(envelope.content)  # type: ignore[attr-defined]
            handle.flush()
            os.fsync(handle.fileno())
        return "250 OK"


def measure_bare_aiosmtpd(options: argparse.Namespace) -> tuple[float, int, float]:
    """Return the seconds, the lost message count and the CPU seconds of one run against a bare aiosmtpd server."""
    with tempfile.TemporaryDirectory(prefix="adminkb-bench-aiosmtpd-") as folder:
        handler = FsyncHandler(Path(folder))
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(loop.create_server(
            lambda: SMTP(handler, hostname="bench.example.test", loop=loop), host="127.0.0.1", port=0))
        port = server.sockets[0].getsockname()[1]
        thread = threading.Thread(target=loop.run_forever, name="bare-aiosmtpd", daemon=True)
        thread.start()
        try:
            cpu_before = time.process_time()
            elapsed = run_smtp_source(port, options)
            cpu_seconds = time.process_time() - cpu_before
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(RUN_TIMEOUT)
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.close()
        ids = queued_message_ids(sorted(Path(folder).glob("*.eml")))
    return elapsed, options.messages - len(set(ids)), cpu_seconds


def logged_message_ids(instance: PrivatePostfix, expected: int) -> set[str]:
    """Return the Message-IDs in Postfix's log once all `expected` are there or the log stops growing."""
    deadline = time.monotonic() + LOG_SETTLE_TIMEOUT
    previous_size, quiet_since = -1, time.monotonic()
    ids: set[str] = set()
    while time.monotonic() < deadline:
        text = instance.maillog()
        ids = set(CLEANUP_MESSAGE_ID.findall(text))
        if len(ids) >= expected:
            return ids
        if len(text) != previous_size:
            previous_size, quiet_since = len(text), time.monotonic()
        elif time.monotonic() - quiet_since > LOG_QUIET_SECONDS:
            return ids
        time.sleep(0.2)
    return ids


def process_tree_cpu_seconds(root_pid: int) -> float:
    """Return the CPU seconds of a process and its live descendants, with the children they reaped.

    Reads utime, stime, cutime and cstime from /proc/PID/stat (Linux), so a Postfix daemon that
    exited and was reaped by the master still counts through the master's cutime and cstime.
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, ... utime is field 14 of stat, here index 11.
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(value) for value in fields[11:15]) / ticks
    tree = {root_pid}
    for _ in range(10):
        tree |= {pid for pid, parent in parents.items() if parent in tree}
    return sum(times.get(pid, 0.0) for pid in tree)


def measure_postfix(options: argparse.Namespace) -> tuple[float, int, float | None]:
    """Return the seconds, the lost message count and the CPU seconds of one run against a fresh private Postfix.

    The CPU seconds are the master's process tree's, from before smtp-source starts until every
    message is logged; None when the master's PID file cannot be read.
    """
    with PrivatePostfix(mynetworks=("127.0.0.1/32",)) as instance:
        master_pid = read_master_pid(instance)
        cpu_before = process_tree_cpu_seconds(master_pid) if master_pid else None
        elapsed = run_smtp_source(instance.port, options)
        ids = logged_message_ids(instance, options.messages)
        cpu_seconds = process_tree_cpu_seconds(master_pid) - cpu_before if master_pid else None
    return elapsed, options.messages - len(ids), cpu_seconds


def read_master_pid(instance: PrivatePostfix) -> int | None:
    try:
        return int((instance.queue_directory / "pid" / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def print_table(options: argparse.Namespace, results: dict[str, list[tuple[float, int, float | None]]]) -> None:
    print(f"smtp-source: {options.messages} messages of {options.size} bytes, {options.sessions} sessions, "
          f"{'one connection per session (-d)' if options.reuse else 'one connection per message'}")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print()
    print("| server | " + " | ".join(f"run {index + 1}" for index in range(options.runs))
          + " | median | lost messages | CPU per message |")
    print("|---|" + "---|" * (options.runs + 3))
    for name, runs in results.items():
        rates = [options.messages / seconds for seconds, _, _ in runs]
        cells = " | ".join(f"{rate:.0f}/s" for rate in rates)
        lost = ", ".join(str(count) for _, count, _ in runs)
        cpu_times = [cpu for _, _, cpu in runs if cpu is not None]
        cpu = f"{statistics.median(cpu_times) / options.messages * 1000:.2f} ms" if cpu_times else "-"
        print(f"| {name} | {cells} | {statistics.median(rates):.0f}/s | {lost} | {cpu} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per run (smtp-source -m)")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions (smtp-source -s)")
    parser.add_argument("--size", type=int, default=1024, help="message body size in bytes (smtp-source -l)")
    parser.add_argument("--runs", type=int, default=3, help="runs per server")
    parser.add_argument("--reuse", action="store_true",
                        help="send every message of a session over one connection (smtp-source -d)")
    parser.add_argument("--bare-aiosmtpd", action="store_true",
                        help="also measure a bare aiosmtpd server that writes and fsyncs each message")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of the lab's event-loop thread (CPU time) to this file")
    options = parser.parse_args()

    if not SMTP_SOURCE.exists():
        print(f"{SMTP_SOURCE} not found (Debian package: postfix)", file=sys.stderr)
        return 2
    with_postfix, reason = postfix_available()
    if not with_postfix:
        print(f"Postfix is not measured: {reason}", file=sys.stderr)
    # The lab thread's CPU time as the clock: a wall clock also counts the time the thread waits for a core.
    profiler = cProfile.Profile(time.thread_time) if options.profile else None

    results: dict[str, list[tuple[float, int, float | None]]] = {"mail lab": []}
    if with_postfix:
        results["Postfix"] = []
    if options.bare_aiosmtpd:
        results["bare aiosmtpd (write + fsync)"] = []
    for run in range(options.runs):
        results["mail lab"].append(measure_lab(options, profiler))
        if with_postfix:
            results["Postfix"].append(measure_postfix(options))
        if options.bare_aiosmtpd:
            results["bare aiosmtpd (write + fsync)"].append(measure_bare_aiosmtpd(options))
        print(f"run {run + 1} of {options.runs} done", file=sys.stderr)
    print_table(options, results)
    if profiler is not None:
        profiler.dump_stats(options.profile)
        print(f"\nprofile of the lab's runs written to {options.profile}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
