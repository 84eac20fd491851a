"""Benchmark: the time of a full `dns check` against the lab DNS server and against a silent server.

A full check is what `adminkb dns check DOMAIN --ip IP --dnsbl ZONE` runs: MX and each
exchanger's addresses, SPF evaluated for the IP, DMARC, PTR, forward-confirmed reverse DNS and
one blocklist. It is measured two ways:
- `check_domain()` in this process against the lab DNS server (goal: under 50 ms);
- the `adminkb dns check` command through the real parser and output, in this process, so
  Python's start-up and imports are not counted.
Against a UDP socket that reads every query and never answers, the whole check must end
within its `--timeout` plus at most 0.5 s.

Usage (from the repository root):
    python benchmarks/dns_check.py [--runs 50] [--silent-runs 3] [--timeouts 1 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import socket
import statistics
import sys
import threading
import time

from adminkb.cli import main as adminkb_main
from adminkb.dnscheck import check_domain
from adminkb.lab.dns import LabDns, lab_zone_files

DOMAIN = "example.com"
SENDING_IP = "127.0.0.25"
DNSBL_ZONE = "dnsbl.test"
# Seconds the check of DOMAIN may take against the lab DNS server.
GOAL_SECONDS = 0.050
# Seconds a check may overshoot its --timeout against a silent server.
SILENT_ALLOWANCE = 0.5


class SilentServer:
    """A UDP socket on 127.0.0.1 that reads every datagram and never answers, as a dead DNS server appears."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                self.socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received += 1

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.socket.close()


def time_call(function, runs: int) -> list[float]:
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        durations.append(time.perf_counter() - started)
    return durations


def run_cli(*arguments: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return adminkb_main(["dns", "check", *arguments])


def summary(durations: list[float]) -> str:
    ordered = sorted(durations)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"{statistics.median(durations) * 1000:.1f} ms | {p95 * 1000:.1f} ms | "
            f"{max(durations) * 1000:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="checks per measurement against the lab DNS")
    parser.add_argument("--silent-runs", type=int, default=3, help="checks per timeout against the silent server")
    parser.add_argument("--timeouts", type=float, nargs="+", default=[1.0, 5.0],
                        help="--timeout values, in seconds, tried against the silent server")
    options = parser.parse_args()

    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print()
    print(f"Against the lab DNS server ({options.runs} runs; goal under {GOAL_SECONDS * 1000:.0f} ms):")
    print()
    print("| what | median | 95th percentile | max | queries per check |")
    print("|---|---|---|---|---|")
    with LabDns.from_files(lab_zone_files()) as server:
        def library_check() -> None:
            check_domain(DOMAIN, nameserver=server.nameserver, ip=SENDING_IP, dnsbl=[DNSBL_ZONE])

        library_check()
        before = server.query_count
        library_check()
        queries = server.query_count - before
        print(f"| check_domain() | {summary(time_call(library_check, options.runs))} | {queries} |")
        cli_arguments = (DOMAIN, "--ip", SENDING_IP, "--dnsbl", DNSBL_ZONE, "--nameserver", server.nameserver)
        status = run_cli(*cli_arguments)
        print(f"| adminkb dns check (exit status {status}) | "
              f"{summary(time_call(lambda: run_cli(*cli_arguments), options.runs))} | {queries} |")

    print()
    print(f"Against a silent UDP server ({options.silent_runs} runs each; "
          f"allowed: timeout + {SILENT_ALLOWANCE} s):")
    print()
    print("| --timeout | median | max | overshoot of max | within allowance |")
    print("|---|---|---|---|---|")
    with SilentServer() as silent:
        for timeout in options.timeouts:
            arguments = (DOMAIN, "--ip", SENDING_IP, "--dnsbl", DNSBL_ZONE,
                         "--nameserver", f"127.0.0.1:{silent.port}", "--timeout", str(timeout))
            durations = time_call(lambda: run_cli(*arguments), options.silent_runs)
            overshoot = max(durations) - timeout
            print(f"| {timeout:g} s | {statistics.median(durations):.3f} s | {max(durations):.3f} s | "
                  f"{overshoot:.3f} s | {'yes' if overshoot <= SILENT_ALLOWANCE else 'no'} |")
        if silent.received == 0:
            print("\nThe silent server received no query, so these figures measure nothing.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
