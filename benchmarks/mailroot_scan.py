"""Benchmark: the mailroot inventory against a bare loop that reads the first 4 KiB of every file.

The script builds a mailroot under a temporary folder (or --folder) in steps of --counts
message files (default 25,000, 50,000 and 100,000). Messages are spread over Queue (45 %),
Drop (25 %), Badmail (15 %, each a .BAD/.BDP/.BDR triple), Pickup (5 %) and Mailbox (10 %).
Sizes run from 1 KB to 1 MB, most of them small as on a real server (log-uniform). Headers
carry envelope lines, Received lines, RFC 2047 Big5 and UTF-8 subjects, and one message in 50
has a header section longer than 4 KiB. Each file's bytes past 16 KiB are a sparse hole, so
100,000 files take a few hundred MB of disk instead of 15 GB. Both readers only open the start
of each file, so the hole changes neither.

At each count, with the page cache warm (one untimed pass of the bare loop first):
- bare loop: in this process, walk the tree with os.scandir, open each file, read 4096 bytes;
- `adminkb mailroot summary ROOT --format json --no-progress` as a subprocess, timed from
  start to exit, so start-up and imports count. Its peak memory is the child's max RSS;
- `python -m adminkb mailroot summary --help`, the same command's start-up alone (its imports
  and parser, no scan).
Each figure is the median of --runs runs. Results print as Markdown. With --drop-caches (Linux,
as root) the page cache is emptied before every timed run instead, so both readers start cold.

Usage:
    python benchmarks/mailroot_scan.py [--counts 25000 50000 100000] [--runs 3] [--folder DIR] [--keep]
                                       [--drop-caches]
"""

from __future__ import annotations

import argparse
import base64
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARES = (("Queue", 0.45), ("Drop", 0.25), ("Badmail", 0.15), ("Pickup", 0.05), ("Mailbox", 0.10))
MIN_SIZE = 1024
MAX_SIZE = 1024 * 1024
# Bytes written for real at the start of each file; the rest up to its size is a hole.
WRITTEN_PREFIX = 16 * 1024
BARE_READ = 4096
LONG_HEADER_EVERY = 50
SUBJECTS = ("訂單通知：碁峰", "每日報表", "會議通知", "Invoice", "密碼即將到期")


def message_bytes(number: int, pick: random.Random) -> bytes:
    """Return the start of one message file: envelope lines, a header section and some body."""
    subject = SUBJECTS[number % len(SUBJECTS)]
    if number % 2:
        encoded = "=?big5?B?" + base64.b64encode(subject.encode("cp950")).decode() + "?="
    else:
        encoded = "=?utf-8?B?" + base64.b64encode(subject.encode("utf-8")).decode() + "?="
    received_count = 40 if number % LONG_HEADER_EVERY == 0 else pick.randint(2, 6)
    lines = [f"X-Sender: app{number % 300}@branch{number % 7}.example.net",
             *(f"X-Receiver: user{(number + k) % 5000}@dept{k}.example.com" for k in range(1 + number % 3))]
    for hop in range(received_count):
        lines.append(f"Received: from relay{hop}.example.net ([192.0.2.{hop % 250 + 1}]) by mail.example.com "
                     f"with Microsoft SMTPSVC(6.0.3790.3959);\r\n\t Mon, 2 Mar 2026 09:{hop % 60:02d}:07 +0800")
    lines += [f"From: =?big5?B?{base64.b64encode('王小明'.encode('cp950')).decode()}?= <app{number % 300}@example.net>",
              f"To: user{number % 5000}@example.com", f"Subject: {encoded}",
              "Date: Mon, 2 Mar 2026 09:15:07 +0800", f"Message-ID: <bench-{number}@example.net>",
              "MIME-Version: 1.0", "Content-Type: text/plain; charset=big5", "", ""]
    head = "\r\n".join(lines).encode("utf-8")
    return head + b"body line\r\n" * 200


def reason_bytes(number: int) -> bytes:
    text = ("Unable to deliver this message because the follow error was encountered: "
            "\"The destination server does not exist.\".\r\n\r\nThe specific error code was 0xC00402C7.\r\n\r\n"
            f"The message sender was app{number % 300}@example.net.\r\n")
    return text.encode("cp950") if number % 2 else b"\xff\xfe" + text.encode("utf-16-le")


def write_file(path: Path, data: bytes, size: int) -> None:
    with open(path, "wb") as handle:
        handle.write(data[: min(len(data), size, WRITTEN_PREFIX)])
        handle.truncate(max(size, min(len(data), WRITTEN_PREFIX)))


def build(root: Path, start: int, stop: int, seed: int = 7) -> None:
    """Add messages number `start` to `stop - 1` to the mailroot `root`."""
    pick = random.Random(seed + start)
    for folder, _ in SHARES:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name in ("Route", "SortTemp"):
        (root / name).mkdir(exist_ok=True)
    edges = []
    total = 0.0
    for folder, share in SHARES:
        total += share
        edges.append((total, folder))
    for number in range(start, stop):
        where = (number * 0.6180339887) % 1.0
        folder = next(name for edge, name in edges if where < edge)
        size = int(math.exp(pick.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))))
        data = message_bytes(number, pick)
        stem = f"NTFS_{number:024x}"
        if folder == "Badmail":
            write_file(root / folder / f"{stem}.BAD", data, size)
            write_file(root / folder / f"{stem}.BDP", bytes(64), 64)
            reason = reason_bytes(number)
            write_file(root / folder / f"{stem}.BDR", reason, len(reason))
        elif folder == "Mailbox":
            box = root / folder / "example.com" / f"P3_user{number % 20}.mbx"
            box.mkdir(parents=True, exist_ok=True)
            write_file(box / f"{stem}.eml", data, size)
        elif folder == "Pickup":
            write_file(root / folder / f"{number:08x}-4f89-41d3-9a0c-0305e82c3301.eml", data, size)
        else:
            write_file(root / folder / f"{stem}.EML", data, size)


def bare_loop(root: Path) -> int:
    """Open every file under `root` and read its first 4 KiB; return the number of files."""
    count = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                with open(entry.path, "rb") as handle:
                    handle.read(BARE_READ)
                count += 1
    return count


def run_child(command: list[str]) -> tuple[float, int]:
    """Run `command` with its output discarded; return the seconds it took and its peak RSS in KiB."""
    # stderr goes to a file, because a full pipe would stop a child that nobody reads.
    with tempfile.TemporaryFile() as errors:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - began
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code not in (0, 1):
            errors.seek(0)
            raise RuntimeError(f"{command} exited with {exit_code}: {errors.read()[-2000:].decode(errors='replace')}")
    return elapsed, usage.ru_maxrss


def drop_caches() -> None:
    """Write dirty pages out and empty the page cache, dentries and inodes (Linux, root only)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as control:
        control.write("3\n")


def measure(root: Path, runs: int, cold: bool) -> dict[str, float]:
    files = bare_loop(root)
    bare, scan, startup, memory = [], [], [], []
    for _ in range(runs):
        if cold:
            drop_caches()
        began = time.perf_counter()
        bare_loop(root)
        bare.append(time.perf_counter() - began)
        if cold:
            drop_caches()
        seconds, peak = run_child([sys.executable, "-m", "adminkb", "mailroot", "summary", str(root),
                                   "--format", "json", "--no-progress"])
        scan.append(seconds)
        memory.append(peak)
        if cold:
            # The command's own start-up then reads the interpreter and packages from disk too.
            drop_caches()
        startup.append(run_child([sys.executable, "-m", "adminkb", "mailroot", "summary", "--help"])[0])
    return {"files": files, "bare_s": statistics.median(bare), "scan_s": statistics.median(scan),
            "startup_s": statistics.median(startup), "peak_mib": max(memory) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the generated mailroot")
    parser.add_argument("--drop-caches", action="store_true",
                        help="empty the page cache before every timed run (Linux, as root)")
    options = parser.parse_args()

    base = options.folder or Path(tempfile.mkdtemp(prefix="adminkb-mailroot-bench-"))
    root = base / "mailroot"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; mailroot under {base}\n")
    print("| messages | files | bare loop s | bare files/s | summary s | summary files/s | ratio | "
          "start-up s | ratio without start-up | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    built = 0
    try:
        for count in sorted(options.counts):
            build(root, built, count)
            built = count
            result = measure(root, options.runs, options.drop_caches)
            bare_rate = result["files"] / result["bare_s"]
            scan_rate = result["files"] / result["scan_s"]
            # On a loaded machine the separate start-up run can take longer than the whole command.
            scan_only = result["scan_s"] - result["startup_s"]
            without_startup = f"{result['files'] / scan_only / bare_rate:.2f}" if scan_only > 0 else "n/a"
            print(f"| {count:,} | {result['files']:,} | {result['bare_s']:.2f} | {bare_rate:,.0f} | "
                  f"{result['scan_s']:.2f} | {scan_rate:,.0f} | {scan_rate / bare_rate:.2f} | "
                  f"{result['startup_s']:.2f} | {without_startup} | {result['peak_mib']:.0f} |", flush=True)
    finally:
        if not options.keep:
            shutil.rmtree(base if options.folder is None else root, ignore_errors=True)


if __name__ == "__main__":
    main()
