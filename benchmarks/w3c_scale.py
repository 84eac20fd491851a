"""Benchmark: read many IIS SMTP W3C logs in one process, and with dask on a distributed LocalCluster.

The script writes --files logs of --lines entry lines each (all 21 fields, the SMTP sessions of
benchmarks/w3c_read.py, directives at the top of each file as after a daily rollover), then
measures three ways to read all of them:
- `one_call`: `adminkb.w3c.read_w3c(files)` in one process (its worker threads parse stretches
  in parallel);
- `dask_local`: `adminkb.w3c.partitions.read_w3c_dask(files).compute()` on a
  `distributed.LocalCluster` of --workers single-threaded worker processes on 127.0.0.1, with no
  dashboard. The cluster's start is timed apart from the read;
- `dask_threads`: the same dask graph on dask's threaded scheduler in one process.

Each measurement runs in a subprocess of its own. Its peak memory is that process's max RSS;
for `dask_local` the workers' max RSS is also summed. Results are medians of --runs runs. A
measurement that fails stops the benchmark, and its error output is printed.

Needs `dask[dataframe]` (the project's `test` extra) and `distributed` (the `bench` extra). From
the repository root, in the project's environment:
    .venv/bin/python -m pip install -e ".[test,bench]"

Usage:
    python benchmarks/w3c_scale.py [--files 8] [--lines 125000] [--runs 3] [--workers 2] [--folder DIR]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from w3c_read import FULL_FIELDS, EntryGenerator, _cpu_model, _directives  # noqa: E402

METHODS = ("baseline", "one_call", "dask_threads", "dask_local")
# The modules the measurements import beyond adminkb, and the extra of pyproject.toml that installs each.
NEEDED_MODULES = {"dask": "test", "dask.dataframe": "test", "distributed": "bench"}
REPOSITORY = Path(__file__).resolve().parent.parent


class MeasurementFailed(RuntimeError):
    """A measurement subprocess exited with an error; the message contains its error output."""


def missing_modules() -> dict[str, str]:
    """Return the needed modules that cannot be imported here, each with the extra that installs it."""
    missing = {}
    for name, extra in NEEDED_MODULES.items():
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:
            # find_spec imports the parent package first, and a broken or absent parent raises.
            found = False
        if not found:
            missing[name] = extra
    return missing


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    """Return the checkout's short commit id, marked when the tree has uncommitted changes."""
    def git(*arguments: str) -> str:
        return subprocess.run(["git", "-C", str(REPOSITORY), *arguments], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git checkout)"
    return f"{commit} with uncommitted changes" if changed else commit


def write_logs(folder: Path, files: int, lines: int) -> list[Path]:
    """Write `files` daily logs of `lines` entries each and return their paths in date order."""
    generator = EntryGenerator(seed=20260302, quotes=True)
    paths = []
    for day in range(files):
        path = folder / f"ex2603{day + 1:02d}.log"
        written = 0
        with open(path, "w", encoding="ascii", newline="") as handle:
            handle.write(_directives(generator.when, FULL_FIELDS))
            while written < lines:
                for entry in generator.session():
                    if written == lines:
                        break
                    handle.write(" ".join(entry[name] for name in FULL_FIELDS) + "\r\n")
                    written += 1
        paths.append(path)
    return paths


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(method: str, folder: Path, workers: int) -> dict[str, object]:
    """Run one method once in this process; return its times, rows and peak memory."""
    from adminkb.w3c import read_w3c
    from adminkb.w3c.partitions import read_w3c_dask

    files = sorted(folder.glob("ex*.log"))
    result: dict[str, object] = {"method": method, "bytes": sum(path.stat().st_size for path in files),
                                 "start_seconds": 0.0, "worker_peak_mib": 0.0}
    began = time.perf_counter()
    if method == "baseline":
        rows = 0
    elif method == "one_call":
        rows = len(read_w3c(files))
    elif method == "dask_threads":
        rows = len(read_w3c_dask(files).compute(scheduler="threads", num_workers=workers))
    elif method == "dask_local":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            result["start_seconds"] = time.perf_counter() - began
            began = time.perf_counter()
            rows = len(read_w3c_dask(files).compute())
            worker_peaks = client.run(_max_rss_mib)
            result["worker_peak_mib"] = sum(worker_peaks.values())
    else:
        raise ValueError(method)
    result["seconds"] = time.perf_counter() - began
    result["rows"] = rows
    result["peak_mib"] = _max_rss_mib()
    return result


def run(folder: Path, files: int, lines: int, runs: int, workers: int, command: str) -> str:
    """Write the logs, measure every method --runs times and return the Markdown report."""
    started = datetime.now(timezone.utc)
    began = time.perf_counter()
    write_logs(folder, files, lines)
    generated_in = time.perf_counter() - began
    results: dict[str, list[dict[str, object]]] = {method: [] for method in METHODS}
    load_before = os.getloadavg()
    for _ in range(runs):
        for method in METHODS:
            child = [sys.executable, __file__, "--measure", method, "--folder", str(folder), "--workers", str(workers)]
            output = subprocess.run(child, capture_output=True, text=True, timeout=900)
            if output.returncode != 0:
                raise MeasurementFailed(f"measurement {method} failed with exit status {output.returncode}.\n"
                                        f"Command: {shlex.join(child)}\nIts error output:\n{output.stderr}")
            results[method].append(json.loads(output.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()
    baseline = statistics.median(result["peak_mib"] for result in results["baseline"])
    table = ["| method | files | MB | median s | MB/s | cluster start s | peak RSS MiB (this process) "
             "| workers' peak RSS MiB | rows |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method in METHODS[1:]:
        measured = results[method]
        size = measured[0]["bytes"] / 1e6
        seconds = statistics.median(result["seconds"] for result in measured)
        start = statistics.median(result["start_seconds"] for result in measured)
        peak = statistics.median(result["peak_mib"] for result in measured)
        worker_peak = statistics.median(result["worker_peak_mib"] for result in measured)
        rows = sorted({result["rows"] for result in measured})
        table.append(f"| {method} | {files} | {size:.1f} | {seconds:.2f} | {size / seconds:.0f} | "
                     f"{start:.2f} | {peak:.0f} | {worker_peak:.0f} | {', '.join(map(str, rows))} |")
    header = [
        f"Date: {started:%Y-%m-%d %H:%M} UTC; commit {_commit()}.",
        f"Machine: {os.cpu_count()} CPUs (`nproc`), {_cpu_model()}, Python {platform.python_version()}, "
        f"pandas {_version('pandas')}, dask {_version('dask')}, distributed {_version('distributed')}.",
        f"Command: `{command}`; logs generated in {generated_in:.0f} s; medians of {runs} runs; baseline "
        f"(imports only) peak RSS {baseline:.0f} MiB; load average (1, 5, 15 min) "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} before the runs, "
        f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} after.",
        "",
    ]
    return "\n".join(header + table) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8, help="number of daily log files (default 8)")
    parser.add_argument("--lines", type=int, default=125_000, help="entry lines per file (default 125,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per method; the median is reported")
    parser.add_argument("--workers", type=int, default=2, help="dask worker processes or threads (default 2)")
    parser.add_argument("--folder", type=Path, help="where to write the logs (default: a new temporary folder)")
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.measure:
        print(json.dumps(measure(arguments.measure, arguments.folder, arguments.workers)))
        return 0
    missing = missing_modules()
    if missing:
        extras = ",".join(sorted(set(missing.values())))
        print(f"error: {', '.join(missing)} cannot be imported by {sys.executable}, and this benchmark needs "
              f"it. pyproject.toml declares it in the [{extras}] extra, which installs from the repository root "
              f"with:\n    {shlex.quote(sys.executable)} -m pip install -e \".[{extras}]\"", file=sys.stderr)
        return 2
    command = shlex.join(["python", "benchmarks/w3c_scale.py", *(argv if argv is not None else sys.argv[1:])])
    try:
        if arguments.folder:
            arguments.folder.mkdir(parents=True, exist_ok=True)
            report = run(arguments.folder, arguments.files, arguments.lines, arguments.runs, arguments.workers,
                         command)
        else:
            with tempfile.TemporaryDirectory(prefix="w3c_scale_") as folder:
                report = run(Path(folder), arguments.files, arguments.lines, arguments.runs, arguments.workers,
                             command)
    except MeasurementFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
