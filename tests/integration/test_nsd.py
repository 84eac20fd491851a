"""Every DNS check against NSD serving the lab's zone files, compared with the lab DNS server.

NSD (Debian's nsd package) runs in the foreground with its own configuration, zones folder,
PID file and log in a temporary folder, on 127.0.0.1 at a free port, with remote control off.
It never reads or writes /etc/nsd. The lab DNS server serves the same `data/lab-*.zone` files,
and each check must give the same verdict, outcome and records from both servers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from adminkb.dnscheck import (
    DnsClient, check_address, check_dmarc, check_dnsbl, check_domain, check_fcrdns, check_mx, check_ptr,
    check_spf,
)
from adminkb.dnscheck.result import CheckResult
from adminkb.lab.dns import LabDns, lab_zone_files

from .conftest import require_peer

pytestmark = pytest.mark.timeout(120)

NSD_COMMAND = Path("/usr/sbin/nsd")
NSD_CHECKCONF_COMMAND = Path("/usr/sbin/nsd-checkconf")
# Seconds NSD may take to load the zones and answer its first query after the start.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# Seconds for one whole check; both servers answer on loopback in milliseconds.
CHECK_TIMEOUT = 5.0
DNSBL_ZONE = "dnsbl.test"


def nsd_available() -> tuple[bool, str]:
    """Return whether a private NSD can run here, and the reason when it cannot."""
    for command in (NSD_COMMAND, NSD_CHECKCONF_COMMAND):
        if not command.exists():
            return False, f"{command} not found (Debian package: nsd)"
    return True, ""


def free_port() -> int:
    """Return a port that is free on 127.0.0.1 for both UDP and TCP at the time of the call."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port on 127.0.0.1 was free for both UDP and TCP after 20 tries")


def zone_origin(path: Path) -> str:
    """Return the `$ORIGIN` of a lab zone file, without the final dot."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.upper().startswith("$ORIGIN"):
            return line.split()[1].rstrip(".")
    raise ValueError(f"{path} has no $ORIGIN line")


def write_nsd_config(folder: Path, port: int, zone_files: list[Path]) -> Path:
    """Copy the zone files into `folder` and write an nsd.conf that keeps every file inside it."""
    zones = folder / "zones"
    zones.mkdir()
    lines = [
        "server:",
        "  ip-address: 127.0.0.1",
        f"  port: {port}",
        "  do-ip6: no",
        '  username: ""',
        '  chroot: ""',
        f'  zonesdir: "{zones}"',
        f'  pidfile: "{folder / "nsd.pid"}"',
        f'  logfile: "{folder / "nsd.log"}"',
        f'  zonelistfile: "{folder / "zone.list"}"',
        f'  xfrdfile: "{folder / "xfrd.state"}"',
        f'  xfrdir: "{folder / "xfr"}"',
        '  database: ""',
        "  server-count: 1",
        "  verbosity: 1",
        "  hide-version: yes",
        "remote-control:",
        "  control-enable: no",
    ]
    for path in zone_files:
        shutil.copy(path, zones / path.name)
        lines += ["zone:", f"  name: {zone_origin(path)}", f'  zonefile: "{path.name}"']
    config = folder / "nsd.conf"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def wait_until_answering(port: int, process: subprocess.Popen, log_file: Path) -> None:
    """Return once NSD answers a SOA query for example.com; raise with its log when it does not."""
    query = dns.message.make_query("example.com", "SOA")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    log_text = log_file.read_text(encoding="utf-8", errors="replace") if log_file.exists() else ""
    raise RuntimeError(f"NSD on port {port} did not answer within {START_TIMEOUT} s "
                       f"(exit status {process.poll()}); log:\n{log_text[-2000:]}")


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A private NSD serving the lab zone files; yields its address and port."""
    found, reason = nsd_available()
    require_peer("nsd", found, reason)
    folder = tmp_path_factory.mktemp("nsd")
    port = free_port()
    config = write_nsd_config(folder, port, lab_zone_files())
    checked = subprocess.run([str(NSD_CHECKCONF_COMMAND), str(config)], capture_output=True, text=True,
                             timeout=20, stdin=subprocess.DEVNULL)
    assert checked.returncode == 0, f"nsd-checkconf rejected {config}: {checked.stderr}"
    process = subprocess.Popen([str(NSD_COMMAND), "-d", "-c", str(config)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_answering(port, process, folder / "nsd.log")
        yield "127.0.0.1", port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def lab_dns() -> Iterator[LabDns]:
    with LabDns.from_files(lab_zone_files()) as running:
        yield running


def zone_names() -> tuple[list[str], list[str]]:
    """Return the owner names of the lab's forward zones and the IPv4 addresses their records name."""
    domains: set[str] = set()
    addresses: set[str] = set()
    for path in lab_zone_files():
        zone = dns.zone.from_text(path.read_text(encoding="utf-8"), relativize=False)
        origin = zone.origin.to_text(omit_final_dot=True)
        for name, node in zone.nodes.items():
            text = name.to_text(omit_final_dot=True)
            if origin.endswith("in-addr.arpa"):
                labels = text.removesuffix(".in-addr.arpa").split(".")
                if len(labels) == 4:
                    addresses.add(".".join(reversed(labels)))
                continue
            if origin == DNSBL_ZONE:
                labels = text.removesuffix("." + DNSBL_ZONE).split(".")
                if len(labels) == 4:
                    addresses.add(".".join(reversed(labels)))
                continue
            domains.add(text.removeprefix("_dmarc."))
            for rdataset in node.rdatasets:
                if rdataset.rdtype == dns.rdatatype.A:
                    addresses.update(rdata.address for rdata in rdataset)
    # 127.0.0.28 appears in no zone at all: no PTR, not listed.
    return sorted(domains), sorted(addresses | {"127.0.0.28"})


DOMAINS, ADDRESSES = zone_names()
SPF_SENDERS = ["127.0.0.1", "127.0.0.25", "127.0.0.26", "127.0.0.30", "198.51.100.7"]


def run_checks(client: DnsClient, subject: str) -> list[CheckResult]:
    """Run every check that applies to `subject`, a domain or an IPv4 address."""
    if subject[0].isdigit():
        return [check_ptr(client, subject), check_fcrdns(client, subject), check_dnsbl(client, subject, DNSBL_ZONE)]
    results = [*check_mx(client, subject), check_address(client, subject), check_spf(client, subject),
               check_dmarc(client, subject)]
    results += [check_spf(client, subject, ip) for ip in SPF_SENDERS]
    return results


def comparable(result: CheckResult) -> tuple:
    """Return what must match between servers; records are sorted, because RRset order may differ."""
    return (result.check, result.subject, result.verdict, result.outcome, result.spf_result,
            sorted(result.records))


def test_lab_zone_names_found():
    assert "example.com" in DOMAINS
    assert "strict.lab.test" in DOMAINS
    assert "127.0.0.25" in ADDRESSES
    assert "127.0.0.27" in ADDRESSES


@pytest.mark.parametrize("subject", DOMAINS + ADDRESSES)
def test_checks_agree_with_nsd(nsd, lab_dns, subject):
    address, port = nsd
    on_nsd = run_checks(DnsClient(address, port, timeout=CHECK_TIMEOUT), subject)
    on_lab = run_checks(DnsClient(lab_dns.address, lab_dns.port, timeout=CHECK_TIMEOUT), subject)

    assert [comparable(result) for result in on_nsd] == [comparable(result) for result in on_lab]
    assert all(result.outcome != "timeout" for result in on_nsd)


@pytest.mark.parametrize("domain, ip", [("example.com", "127.0.0.25"), ("example.net", "127.0.0.27"),
                                        ("lab.test", "127.0.0.26")])
def test_check_domain_agrees_with_nsd(nsd, lab_dns, domain, ip):
    address, port = nsd
    on_nsd = check_domain(domain, nameserver=address, port=port, ip=ip, dnsbl=[DNSBL_ZONE],
                          timeout=CHECK_TIMEOUT)
    on_lab = check_domain(domain, nameserver=lab_dns.address, port=lab_dns.port, ip=ip, dnsbl=[DNSBL_ZONE],
                          timeout=CHECK_TIMEOUT)

    assert [comparable(result) for result in on_nsd] == [comparable(result) for result in on_lab]


def test_nsd_status_kinds(nsd):
    address, port = nsd
    client = DnsClient(address, port, timeout=CHECK_TIMEOUT)
    assert client.lookup("example.com", "MX").status == "answer"
    assert client.lookup("missing.example.com", "A").status == "nxdomain"
    assert client.lookup("example.com", "AAAA").status == "nodata"
    assert client.lookup("www.example.org", "A").status == "refused"


def test_compared_checks_cover_each_verdict(nsd):
    address, port = nsd
    results = []
    for subject in DOMAINS + ADDRESSES:
        results += run_checks(DnsClient(address, port, timeout=CHECK_TIMEOUT), subject)
    assert {result.verdict for result in results} >= {"ok", "warning", "problem"}
    assert {result.check for result in results} >= {"mx", "address", "spf", "dmarc", "ptr", "fcrdns", "dnsbl"}
    assert {result.spf_result for result in results} >= {"pass", "fail", "softfail", "permerror", "none"}
