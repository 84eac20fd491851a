"""Benchmark: the relay and failed-AUTH investigation on a large SMTP W3C Extended log.

The script writes one log in the lab's layout (all 21 fields) with --sessions sessions, each
EHLO, MAIL, one to four RCPT, DATA and QUIT. Clients come from 198.51.100.0/24 and
203.0.113.0/24. One client in eight authenticates first, one in twenty relays to a remote
domain without authenticating, and one address guesses passwords. Recipients are drawn from
20,000 mailboxes in local and remote domains, so values repeat as they do in real logs.

The log is read once with `read_w3c` (not timed). Each analysis then runs --runs times on that
frame and the median time is printed as Markdown. The first call of each run loads the
message catalog, which the first row absorbs (about 1 s on a busy machine).

Usage:
    python benchmarks/investigate.py [--sessions 150000] [--runs 3] [--folder DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from adminkb import investigate
from adminkb.w3c import read_w3c

FIELDS = ("date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem cs-uri-query "
          "sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host cs(User-Agent) cs(Cookie) "
          "cs(Referer)")
LOCAL = "example.com"
REMOTE = ("example.org", "example.net", "victims.test", "mailbox.test")
GUESSER = "203.0.113.250"


def entry(when: datetime, client: str, name: str, method: str, query: str, status: int) -> str:
    return (f"{when:%Y-%m-%d %H:%M:%S} {client} {name} SMTPSVC1 MAIL01 192.0.2.10 0 {method} - {query} {status} "
            f"0 40 30 0 SMTP - - - -\n")


def write_log(path: Path, sessions: int, seed: int = 7) -> int:
    """Write the log and return the number of entry lines."""
    randomizer = random.Random(seed)
    when = datetime(2026, 3, 2, 0, 0, 0, tzinfo=timezone.utc)
    lines = ["#Software: Microsoft Internet Information Services 6.0\n", "#Version: 1.0\n",
             f"#Date: {when:%Y-%m-%d %H:%M:%S}\n", f"#Fields: {FIELDS} \n"]
    for number in range(sessions):
        when += timedelta(seconds=randomizer.choice((0, 0, 1, 2)))
        client = f"{randomizer.choice(('198.51.100', '203.0.113'))}.{randomizer.randrange(1, 250)}"
        helo = f"host{randomizer.randrange(500)}.example.net"
        name = helo
        lines.append(entry(when, client, helo, "EHLO", f"+{helo}", 250))
        if number % 8 == 0:
            lines.append(entry(when, client, helo, "AUTH", "+LOGIN", 235))
            name = f"user{randomizer.randrange(50)}"
        if number % 97 == 0:
            for _ in range(6):
                lines.append(entry(when, GUESSER, "guesser.test", "AUTH", "+LOGIN", 535))
        lines.append(entry(when, client, name, "MAIL", f"+FROM:<app{number % 300}@{LOCAL}>", 250))
        relays = number % 8 == 0 or number % 20 == 0
        for _ in range(randomizer.randint(1, 4)):
            domain = randomizer.choice(REMOTE) if relays or randomizer.random() < 0.1 else LOCAL
            allowed = relays or domain == LOCAL
            recipient = f"user{randomizer.randrange(20000)}@{domain}"
            lines.append(entry(when, client, name, "RCPT", f"+TO:<{recipient}>", 250 if allowed else 550))
        lines.append(entry(when, client, name, "DATA", f"<msg{number}@{LOCAL}>", 250))
        lines.append(entry(when, client, helo, "QUIT", helo, 240))
    path.write_text("".join(lines), encoding="ascii")
    return len(lines) - 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=arguments.folder) as folder:
        path = Path(folder) / "ex260302.log"
        lines = write_log(path, arguments.sessions)
        frame = read_w3c(path)
    analyses = {
        "relay_report": lambda: investigate.relay_report(frame, [LOCAL]),
        "auth_failures": lambda: investigate.auth_failures(frame),
        "abuse_timeline (one client)": lambda: investigate.abuse_timeline(frame, [LOCAL], client=GUESSER),
        "abuse_overview (one client)": lambda: investigate.abuse_overview(frame, [LOCAL], client=GUESSER),
    }
    print(f"{lines:,} entry lines, {arguments.runs} runs\n")
    print("| analysis | median | min | max | lines per second (median) |")
    print("|---|---|---|---|---|")
    for name, analysis in analyses.items():
        times = []
        for _ in range(arguments.runs):
            started = time.perf_counter()
            analysis()
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        print(f"| {name} | {median:.2f} s | {min(times):.2f} s | {max(times):.2f} s | {lines / median:,.0f} |")


if __name__ == "__main__":
    main()
