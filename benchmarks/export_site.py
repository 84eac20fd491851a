"""Time `adminkb export` over the runbook collection.

Usage: python benchmarks/export_site.py [--runs N] [--execute]

Each run calls `adminkb.export.export_site` into a fresh temporary folder. Without `--execute`
it keeps the stored outputs, so only rendering, the external-resource check and the write are
timed. With `--execute` every runbook also runs against the mail lab, as `adminkb export` does
by default; that takes minutes, so run it with `--runs 1`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from adminkb.export import export_site
from adminkb.runbooks import NOTEBOOKS_DIR


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="number of timed runs (default: 3)")
    parser.add_argument("--execute", action="store_true", help="run every runbook against the lab first")
    arguments = parser.parse_args()

    notebooks = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    times = []
    for run in range(1, arguments.runs + 1):
        with tempfile.TemporaryDirectory(prefix="adminkb-export-bench-") as folder:
            start = time.perf_counter()
            result = export_site(Path(folder) / "html", use_stored_outputs=not arguments.execute, progress=False)
            elapsed = time.perf_counter() - start
            size = sum(path.stat().st_size for path in (Path(folder) / "html").iterdir())
        times.append(elapsed)
        print(f"run {run}: {elapsed:.2f} s, {len(result.pages)} pages, {size / 1e6:.2f} MB")
    print(f"median: {statistics.median(times):.2f} s over {len(notebooks)} notebooks "
          f"({'executed' if arguments.execute else 'stored outputs'})")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
