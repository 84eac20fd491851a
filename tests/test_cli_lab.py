"""`adminkb lab --deliver`: the background delivery runner, seen through a real lab process."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time

import pytest

from adminkb.cli.lab import StopRequest, _stop_on_signals, mail_domains_by_address, receivers_table
from adminkb.i18n import message
from adminkb.lab.dns import lab_zone_files
from adminkb.lab.remote import RECEIVERS, UNREACHABLE

pytestmark = pytest.mark.timeout(120)

SOCKET_TIMEOUT = 10
LINE_TIMEOUT = 60


class LabProcess:
    """`adminkb lab` in a child process, with its output lines collected by a reader thread."""

    def __init__(self, *arguments: str, language: str = "en") -> None:
        environment = dict(os.environ, ADMINKB_LANG=language, PYTHONUNBUFFERED="1")
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if os.name == "nt" else 0
        self.process = subprocess.Popen([sys.executable, "-m", "adminkb", "lab", *arguments],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
                                        creationflags=flags)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.process.stdout:
            self._queue.put(raw.decode("utf-8"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = LINE_TIMEOUT) -> str:
        """Return the first line from now on that matches `pattern`; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no output line matched {pattern!r} within {timeout} s; got {self.lines!r}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"the lab ended before a line matched {pattern!r}; got {self.lines!r}")
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def stop(self) -> tuple[int, str]:
        """Stop the lab as Ctrl+C or a service manager would; return its exit status and stderr."""
        self.process.send_signal(signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            errors = self.process.stderr.read().decode("utf-8", "replace")
            pytest.fail(f"the lab did not stop within 30 s of the signal; stderr: {errors!r}")
        self._reader.join(10)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return self.process.returncode, self.process.stderr.read().decode("utf-8", "replace")


def run_lab_command(*arguments: str, language: str = "en") -> subprocess.CompletedProcess:
    environment = dict(os.environ, ADMINKB_LANG=language)
    return subprocess.run([sys.executable, "-m", "adminkb", "lab", *arguments], capture_output=True,
                          timeout=60, env=environment)


def test_deliver_sends_queued_mail(tmp_path):
    lab = LabProcess("--root", str(tmp_path), "--relay", "127.0.0.1", "--deliver", "--compression", "600")
    try:
        started = lab.wait_for(r"Mail lab .* started")
        port = int(re.search(r"127\.0\.0\.1:(\d+)", started).group(1))
        lab.wait_for(r"Background delivery started: lab time runs 600 times faster")
        lab.wait_for(r"Press Ctrl\+C to stop")
        with smtplib.SMTP("127.0.0.1", port, timeout=SOCKET_TIMEOUT) as client:
            client.ehlo("app.example.com")
            refused = client.sendmail("app@example.com", ["user@example.net", "nosuchuser@example.net"],
                                      "Subject: lab delivery\r\n\r\nbody\r\n")
        assert refused == {}
        delivered = lab.wait_for(r"user@example\.net: delivered")
        failed = lab.wait_for(r"nosuchuser@example\.net: failed permanently")
    finally:
        status, errors = lab.stop()
    assert status == 0, errors
    assert "mx.example.net [127.0.0.23]" in delivered
    assert "250 2.0.0" in delivered
    assert "550 5.1.1" in failed
    assert "Mail lab stopped." in lab.lines[-1]
    assert list((tmp_path / "mailroot" / "Queue").iterdir()) == []


def test_deliver_prints_receivers_table(tmp_path):
    lab = LabProcess("--root", str(tmp_path), "--deliver", language="zh-TW")
    try:
        lab.wait_for("背景傳遞已啟動：實驗室時間以 60 倍速進行")
        header = lab.wait_for(r"^IP 位址")
        stop_hint = lab.wait_for("按 Ctrl\\+C 停止")
    finally:
        status, errors = lab.stop()
    assert status == 0, errors
    table = "".join(lab.lines[lab.lines.index(header):lab.lines.index(stop_hint)])
    assert "收件網域" in header
    for spec in RECEIVERS:
        assert spec.address in table
        assert spec.hostname in table
    assert "127.0.0.36  mx.blocked.lab.test" in table
    assert "沒有伺服器接聽" in table


def test_deliver_prints_lab_dns_that_answers(tmp_path):
    lab = LabProcess("--root", str(tmp_path), "--deliver")
    try:
        line = lab.wait_for(r"^Lab DNS: ")
        lab.wait_for(r"Press Ctrl\+C to stop")
        address = re.search(r"Lab DNS: (127\.0\.0\.1:\d+) ", line).group(1)
        result = subprocess.run([sys.executable, "-m", "adminkb", "dns", "check", "example.net", "--nameserver",
                                 address, "--format", "json"], capture_output=True, timeout=60,
                                env=dict(os.environ, ADMINKB_LANG="en"))
    finally:
        status, errors = lab.stop()
    assert status == 0, errors
    assert f"--nameserver {address}" in line
    checks = json.loads(result.stdout)
    mx = next(check for check in checks["results"] if check["check"] == "mx")
    assert mx["verdict"] == "ok"


def _outbound_step(command: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-m", "adminkb", *command, "--format", "json"], capture_output=True,
                            timeout=60, env=dict(os.environ, ADMINKB_LANG="en"))
    steps = json.loads(result.stdout)["steps"]
    return next(step for step in steps if step["name"] == "outbound")


def test_deliver_hint_diagnoses_outbound(tmp_path):
    lab = LabProcess("--root", str(tmp_path), "--deliver")
    try:
        line = lab.wait_for(r"^To diagnose outbound delivery")
        lab.wait_for(r"Press Ctrl\+C to stop")
        command = line.split("for example: adminkb ", 1)[1].split()
        with_port = _outbound_step(command)
        port_at = command.index("--mx-port")
        without_port = _outbound_step(command[:port_at] + command[port_at + 2:])
    finally:
        status, errors = lab.stop()
    assert status == 0, errors
    assert with_port["verdict"] == "ok"
    assert "mx.example.net [127.0.0.23]" in with_port["evidence"]
    # Nothing listens on port 25 in the lab, so the hint's --mx-port is what makes the check work.
    assert without_port["verdict"] == "problem"
    assert ":25 " in without_port["evidence"]


def test_receiver_lines_absent_without_deliver(tmp_path):
    lab = LabProcess("--root", str(tmp_path))
    try:
        lab.wait_for(r"Press Ctrl\+C to stop")
    finally:
        status, errors = lab.stop()
    assert status == 0, errors
    text = "".join(lab.lines)
    assert "Background delivery" not in text
    assert "127.0.0.23" not in text


@pytest.mark.skipif(os.name == "nt", reason="raise_signal(SIGTERM) ends the process on Windows")
def test_sigterm_sets_stop_flag():
    request = StopRequest()
    before = signal.getsignal(signal.SIGTERM)
    previous = _stop_on_signals(request)
    try:
        signal.raise_signal(signal.SIGTERM)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    assert request.requested
    assert signal.getsignal(signal.SIGTERM) is before


def test_compression_without_deliver_rejected(tmp_path):
    result = run_lab_command("--root", str(tmp_path), "--compression", "120")
    assert result.returncode == 2
    errors = result.stderr.decode("utf-8")
    assert "--compression 120 is only valid with --deliver" in errors
    assert "Add --deliver" in errors
    assert result.stdout == b""
    assert not (tmp_path / "mailroot").exists()


def test_non_loopback_names_cli_option(tmp_path):
    result = run_lab_command("--root", str(tmp_path), "--listen", "0.0.0.0", "--port", "0", language="zh-TW")
    errors = result.stderr.decode("utf-8")
    assert result.returncode == 2
    assert "才加上 --allow-non-loopback。" in errors
    assert "allow_non_loopback=True" not in errors


@pytest.mark.parametrize("value", ["0.5", "200000"])
def test_compression_out_of_range_rejected(tmp_path, value):
    result = run_lab_command("--root", str(tmp_path), "--deliver", "--compression", value)
    assert result.returncode == 2
    errors = result.stderr.decode("utf-8")
    assert "--compression" in errors
    assert "from 1 to 100000" in errors
    assert b"started" not in result.stdout


def test_compression_not_a_number_rejected():
    result = run_lab_command("--deliver", "--compression", "fast")
    assert result.returncode == 2
    assert "fast" in result.stderr.decode("utf-8")


def test_mail_domains_follow_mx_and_cname(tmp_path):
    zone = tmp_path / "lab-corp.test.zone"
    zone.write_text("$ORIGIN corp.test.\n$TTL 300\n"
                    "@        SOA   ns1 hostmaster 1 3600 600 86400 300\n"
                    "@        NS    ns1\n"
                    "ns1      A     127.0.0.53\n"
                    "@        MX    10 mx\n"
                    "mx       A     127.0.0.23\n"
                    "branch   MX    10 alias\n"
                    "alias    CNAME mx\n"
                    "loop     MX    10 loop1\n"
                    "loop1    CNAME loop2\n"
                    "loop2    CNAME loop1\n"
                    "nomx     A     127.0.0.24\n", encoding="utf-8")
    domains = mail_domains_by_address([zone])
    assert domains == {"127.0.0.23": ["branch.corp.test", "corp.test"]}


def test_lab_zones_route_to_receivers():
    domains = mail_domains_by_address(lab_zone_files())
    assert domains["127.0.0.23"] == ["backup.lab.test", "example.net"]
    assert domains["127.0.0.34"] == ["strict.lab.test"]
    assert domains[UNREACHABLE[0]] == ["backup.lab.test", "blocked.lab.test"]
    assert "127.0.0.24" not in domains


def test_receivers_table_english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    table = receivers_table()
    lines = table.splitlines()
    assert lines[0].split() == ["IP", "address", "Host", "name", "Mail", "domains", "Behaviour"]
    implicit = next(line for line in lines if line.startswith("127.0.0.24"))
    assert implicit.split()[:3] == ["127.0.0.24", "implicit.lab.test", "implicit.lab.test"]
    greylist = next(line for line in lines if line.startswith("127.0.0.35"))
    assert message("lab.cli.receiver_kind.greylist") in greylist


@pytest.mark.parametrize(("arguments", "option", "parameter"), [
    (["--hostname", "bad host name"], "--hostname", "錯誤：hostname"),
    (["--local-domain", "bad domain"], "--local-domain", "錯誤：local_domains"),
])
def test_bad_name_names_cli_option(tmp_path, arguments, option, parameter):
    result = run_lab_command("--root", str(tmp_path), *arguments, language="zh-TW")
    errors = result.stderr.decode("utf-8")
    assert result.returncode == 2
    assert f"{option} 的值" in errors
    assert parameter not in errors
    assert b"started" not in result.stdout
