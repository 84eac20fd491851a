"""Time the nbval run of the whole runbook collection (target: under 2 minutes on 2 cores).

Usage: python benchmarks/nbval_collection.py [--runs N]

Runs `python -m pytest notebooks/` N times in a subprocess (kernel start-up included, as in
the test command) and prints each wall time, the median, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="number of timed runs (default 3)")
    arguments = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    times = []
    for run in range(arguments.runs):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *map(str, notebooks)],
                                cwd=ROOT, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        print(f"run {run + 1}: {elapsed:.1f} s  ({last})")
        if result.returncode != 0:
            print(result.stdout[-3000:], file=sys.stderr)
            return 1
        times.append(elapsed)
    print(f"notebooks: {len(notebooks)}; median {statistics.median(times):.1f} s over {len(times)} runs")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
