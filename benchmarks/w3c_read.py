"""Benchmark: read a 1,000,000-line IIS SMTP W3C Extended log with adminkb and with the usual readers.

The script writes two logs under a temporary folder (or --folder):
- `smtp_blocks.log`: the W3C log as the service writes it. All 21 fields, directive lines
  repeated every 100,000 entries (a restart), the field list changed halfway, `#` inside
  some values and `"` in some addresses.
- `smtp_clean.log`: the same kind of entries with no directive lines, one field list and no
  `"`, so that `pandas.read_csv(sep=" ", header=None)` can read it. `smtp_clean_w3c.log` is
  that file with one block's directives in front, so adminkb reads the same entries too.

Each measurement runs in a subprocess of its own, so that its peak memory (max RSS from
`resource.getrusage`) covers that reader only. The time is taken around the read call only.
Results are medians of --runs runs, printed as Markdown.

Two methods measure where the floor of adminkb's approach lies, on the clean file:
`pyarrow_parse` is the pyarrow CSV parse that `read_w3c` runs, alone, in one thread, with the
column types that `read_w3c` requests and nothing after it. `pandas_c_category` is pandas' C
engine asked for what `read_w3c` returns (categoricals, no quoting, `-` as missing).

Usage:
    python benchmarks/w3c_read.py [--lines 1000000] [--runs 3] [--folder DIR] [--reuse] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

FULL_FIELDS = ("date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
               "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
               "cs(User-Agent) cs(Cookie) cs(Referer)").split()
# The second half of the log drops the HTTP-only fields and s-computername, as an admin might.
SHORT_FIELDS = [name for name in FULL_FIELDS
                if name not in ("s-computername", "cs-host", "cs(User-Agent)", "cs(Cookie)", "cs(Referer)")]
HEADER_EVERY = 100_000
START = datetime(2026, 3, 2, 0, 0, 0, tzinfo=timezone.utc)
METHODS = ("baseline", "adminkb", "adminkb_clean", "pandas_c", "pandas_pyarrow", "python_loop", "pyarrow_parse",
           "pandas_c_category")
# Written next to the logs: the entry line count of each, which --reuse compares with --lines.
MANIFEST = "w3c_read_logs.json"


class EntryGenerator:
    """Produces SMTP entries in the shape of real inbound IIS SMTP lines."""

    def __init__(self, seed: int, quotes: bool) -> None:
        self.random = random.Random(seed)
        self.quotes = quotes
        pick = self.random
        self.clients = [f"198.51.100.{n}" for n in range(1, 200)] + [f"203.0.113.{n}" for n in range(1, 60)]
        self.helo_names = [f"app{n:02d}.branch{n % 7}.example.net" for n in range(1, 60)] + ["ticket#7.example.net"]
        self.senders = [f"notification-service-{n}@app{n % 40:02d}.branch{n % 7}.example.net" for n in range(300)]
        self.recipients = [f"first.last{n}@department{n % 12}.example.com" for n in range(3000)] + \
            ["help#desk@example.com"]
        self.when = START
        self.message = 0
        self.pick = pick

    def _tick(self) -> datetime:
        self.when += timedelta(milliseconds=self.pick.randint(0, 180))
        return self.when

    def session(self) -> list[dict[str, str]]:
        """Return the entries of one session: EHLO, MAIL, RCPT..., DATA, QUIT, sometimes noise."""
        pick = self.pick
        client = pick.choice(self.clients)
        helo = pick.choice(self.helo_names)
        sender = pick.choice(self.senders)
        if self.quotes and pick.random() < 0.02:
            sender = '"first.last"@example.net'
        entries = []
        if pick.random() < 0.03:
            entries.append(self._entry(client, "-", "get", "+/+HTTP/1.0", 500, 32, 14))
        entries.append(self._entry(client, helo, "EHLO", f"+{helo}", 250, 193, 10 + len(helo)))
        entries.append(self._entry(client, helo, "MAIL", f"+FROM:+<{sender}>+SIZE={pick.randint(900, 90000)}",
                                   250, 40, 27 + len(sender)))
        for _ in range(pick.choice((1, 1, 1, 2, 3))):
            recipient = pick.choice(self.recipients)
            entries.append(self._entry(client, helo, "RCPT", f"+TO:+<{recipient}>", 250, 29, 9 + len(recipient)))
        self.message += 1
        message_id = f"<MAIL01{self.message:020X}@mail01.example.com>"
        entries.append(self._entry(client, helo, "DATA", message_id, 250, 131, pick.randint(900, 90000)))
        entries.append(self._entry(client, helo, "QUIT", helo, 240, 67, 4, taken=pick.randint(20, 4000)))
        return entries

    def _entry(self, client: str, user: str, method: str, query: str, status: int, sent: int, received: int,
               taken: int = 0) -> dict[str, str]:
        when = self._tick()
        return {"date": f"{when:%Y-%m-%d}", "time": f"{when:%H:%M:%S}", "c-ip": client, "cs-username": user,
                "s-sitename": "SMTPSVC1", "s-computername": "MAIL01", "s-ip": "192.0.2.10", "s-port": "0",
                "cs-method": method, "cs-uri-stem": "-", "cs-uri-query": query, "sc-status": str(status),
                "sc-win32-status": "0", "sc-bytes": str(sent), "cs-bytes": str(received),
                "time-taken": str(taken), "cs-version": "SMTP", "cs-host": "-", "cs(User-Agent)": "-",
                "cs(Cookie)": "-", "cs(Referer)": "-"}


def _directives(when: datetime, fields: list[str]) -> str:
    return (f"#Software: Microsoft Internet Information Services 6.0\r\n#Version: 1.0\r\n"
            f"#Date: {when:%Y-%m-%d %H:%M:%S}\r\n#Fields: {' '.join(fields)} \r\n")


def logs_written(folder: Path, lines: int) -> bool:
    """Return whether an earlier run wrote the three logs in `folder` with `lines` entry lines each."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    expected = {"smtp_blocks.log": lines, "smtp_clean.log": lines, "smtp_clean_w3c.log": lines}
    return json.loads(manifest.read_text(encoding="utf-8")) == expected and \
        all((folder / name).is_file() for name in expected)


def write_logs(folder: Path, lines: int) -> dict[str, int]:
    """Write the three logs and return the number of entry lines in each."""
    expected = {"smtp_blocks.log": lines, "smtp_clean.log": lines, "smtp_clean_w3c.log": lines}
    manifest = folder / MANIFEST
    manifest.unlink(missing_ok=True)
    blocks_path = folder / "smtp_blocks.log"
    clean_path = folder / "smtp_clean.log"
    clean_w3c_path = folder / "smtp_clean_w3c.log"
    for path, quotes, changing in ((blocks_path, True, True), (clean_path, False, False)):
        generator = EntryGenerator(seed=20260302, quotes=quotes)
        written = 0
        with open(path, "w", encoding="ascii", newline="") as handle:
            while written < lines:
                for entry in generator.session():
                    if written == lines:
                        break
                    fields = SHORT_FIELDS if changing and written >= lines // 2 else FULL_FIELDS
                    if changing and (written % HEADER_EVERY == 0 or written == lines // 2):
                        handle.write(_directives(generator.when, fields))
                    handle.write(" ".join(entry[name] for name in fields) + "\r\n")
                    written += 1
    with open(clean_w3c_path, "wb") as handle:
        handle.write(_directives(START, FULL_FIELDS).encode("ascii"))
        with open(clean_path, "rb") as clean:
            while block := clean.read(1 << 24):
                handle.write(block)
    manifest.write_text(json.dumps(expected), encoding="utf-8")
    return expected


def _python_loop(path: Path):
    """Read a W3C log with a plain loop: split each line, switch fields at each #Fields."""
    import pandas as pd

    frames = []
    fields: list[str] | None = None
    rows: list[list[str]] = []
    with open(path, encoding="cp950", newline="") as handle:
        for line in handle:
            if line.startswith("#"):
                if line.startswith("#Fields:"):
                    if rows and fields:
                        frames.append(pd.DataFrame(rows, columns=fields))
                    fields, rows = line[len("#Fields:"):].split(), []
                continue
            values = line.rstrip("\r\n").split(" ")
            if fields and len(values) == len(fields):
                rows.append(values)
    if rows and fields:
        frames.append(pd.DataFrame(rows, columns=fields))
    return pd.concat(frames, ignore_index=True)


def _pyarrow_parse(path: Path):
    """Parse the clean log as `read_w3c` does in each stretch, in one thread, and stop there."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from adminkb.w3c.columns import INTEGER_FIELDS

    types = {name: pa.int64() if name in INTEGER_FIELDS else pa.string() for name in FULL_FIELDS}
    types.update({"date": pa.date32(), "time": pa.time32("s")})
    parse_options = pa_csv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False, escape_char=False,
                                        newlines_in_values=False, ignore_empty_lines=True)
    convert_options = pa_csv.ConvertOptions(column_types=types, null_values=["-", ""], strings_can_be_null=True,
                                            check_utf8=False)
    read_options = pa_csv.ReadOptions(column_names=list(FULL_FIELDS), use_threads=False)
    return pa_csv.read_csv(str(path), read_options=read_options, parse_options=parse_options,
                           convert_options=convert_options)


def _pandas_c_category(path: Path):
    """Read the clean log with pandas' C engine into the dtypes that `read_w3c` returns."""
    import csv

    import pandas as pd

    from adminkb.w3c.columns import INTEGER_FIELDS, TEXT_FIELDS

    dtypes = {name: "category" for name in FULL_FIELDS if name not in INTEGER_FIELDS | TEXT_FIELDS}
    dtypes.update({name: "Int64" for name in FULL_FIELDS if name in INTEGER_FIELDS})
    return pd.read_csv(path, sep=" ", header=None, names=list(FULL_FIELDS), dtype=dtypes, quoting=csv.QUOTE_NONE,
                       na_values=["-"], keep_default_na=False, engine="c")


def measure(method: str, folder: Path) -> dict[str, object]:
    """Run one reader once in this process and return its time, rows and peak memory."""
    import pandas as pd

    import adminkb.w3c  # noqa: F401 - imported for the baseline's memory

    blocks = folder / "smtp_blocks.log"
    clean = folder / "smtp_clean.log"
    path = {"adminkb": blocks, "python_loop": blocks, "adminkb_clean": folder / "smtp_clean_w3c.log"}.get(method, clean)
    began = time.perf_counter()
    cpu_began = time.process_time()
    skipped: int | None = None
    if method == "baseline":
        rows = 0
    elif method in ("adminkb", "adminkb_clean"):
        frame = adminkb.w3c.read_w3c(path)
        rows = len(frame)
        skipped = len(frame.attrs["skipped"])
    elif method == "pandas_c":
        rows = len(pd.read_csv(path, sep=" ", header=None))
    elif method == "pandas_pyarrow":
        rows = len(pd.read_csv(path, sep=" ", header=None, engine="pyarrow"))
    elif method == "python_loop":
        rows = len(_python_loop(path))
    elif method == "pyarrow_parse":
        rows = _pyarrow_parse(path).num_rows
    elif method == "pandas_c_category":
        rows = len(_pandas_c_category(path))
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "seconds": seconds, "cpu_seconds": cpu_seconds, "rows": rows, "skipped": skipped,
            "bytes": path.stat().st_size, "peak_mib": peak_kib / 1024}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(folder: Path, lines: int, runs: int, reuse: bool = False) -> str:
    began = time.perf_counter()
    reused = reuse and logs_written(folder, lines)
    if reused:
        expected = {"smtp_blocks.log": lines, "smtp_clean.log": lines, "smtp_clean_w3c.log": lines}
    else:
        expected = write_logs(folder, lines)
    generated_in = time.perf_counter() - began
    results: dict[str, list[dict[str, object]]] = {method: [] for method in METHODS}
    load_before = os.getloadavg()
    for _ in range(runs):
        # Interleaved, so that a slow spell of a shared machine hits every method alike.
        for method in METHODS:
            output = subprocess.run([sys.executable, __file__, "--measure", method, "--folder", str(folder)],
                                    check=True, capture_output=True, text=True, timeout=900)
            results[method].append(json.loads(output.stdout))
    load_after = os.getloadavg()
    baseline = statistics.median(result["peak_mib"] for result in results["baseline"])
    table = ["| method | file | MB | median s | MB/s | median CPU s | peak RSS MiB | peak RSS / file size "
             "| RSS above baseline MiB | rows | rows as generated | lines skipped |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method in METHODS[1:]:
        measured = results[method]
        seconds = statistics.median(result["seconds"] for result in measured)
        size = measured[0]["bytes"] / 1e6
        cpu = statistics.median(result["cpu_seconds"] for result in measured)
        peak = statistics.median(result["peak_mib"] for result in measured)
        file = {"adminkb": "smtp_blocks.log", "python_loop": "smtp_blocks.log",
                "adminkb_clean": "smtp_clean_w3c.log"}.get(method, "smtp_clean.log")
        rows = {result["rows"] for result in measured}
        skipped = {result["skipped"] for result in measured}
        table.append(f"| {method} | {file} | {size:.1f} | {seconds:.2f} | {size / seconds:.0f} | {cpu:.2f} | "
                     f"{peak:.0f} | {peak * 2**20 / (size * 1e6):.1f} | {peak - baseline:.0f} | "
                     f"{', '.join(map(str, sorted(rows)))} | "
                     f"{'yes' if rows == {expected[file]} else 'NO'} | "
                     f"{', '.join('-' if count is None else str(count) for count in skipped)} |")
    import numpy
    import pandas
    import pyarrow

    header = [
        f"Machine: {os.cpu_count()} CPUs (`nproc`), {_cpu_model()}, Python {platform.python_version()}, "
        f"pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, numpy {numpy.__version__}.",
        f"Command: `python benchmarks/w3c_read.py --lines {lines} --runs {runs}"
        f"{' --folder DIR --reuse' if reuse else ''}`; "
        f"logs {'reused from an earlier run' if reused else f'generated in {generated_in:.0f} s'}; "
        f"medians of {runs} runs; baseline (imports only) peak RSS {baseline:.0f} MiB; "
        f"load average (1, 5, 15 min) {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} before the "
        f"runs, {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} after.",
        "",
    ]
    return "\n".join(header + table) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="entry lines per log (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per method; the median is reported")
    parser.add_argument("--folder", type=Path, help="where to write the logs (default: a new temporary folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep logs that an earlier run wrote in --folder with the same --lines")
    parser.add_argument("--out", type=Path, help="also write the Markdown results to this file")
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.measure:
        print(json.dumps(measure(arguments.measure, arguments.folder)))
        return 0
    if arguments.folder:
        arguments.folder.mkdir(parents=True, exist_ok=True)
        report = run(arguments.folder, arguments.lines, arguments.runs, arguments.reuse)
    else:
        with tempfile.TemporaryDirectory(prefix="w3c_bench_") as folder:
            report = run(Path(folder), arguments.lines, arguments.runs)
    print(report)
    if arguments.out:
        arguments.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
