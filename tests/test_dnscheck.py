"""DNS checks against the lab DNS server: every verdict of every check, each failure kind, timeouts."""

from __future__ import annotations

import socket
import sys
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.resolver
import pytest

from adminkb.dnscheck import (
    DnsClient, DnsblZone, check_address, check_dmarc, check_dnsbl, check_domain, check_fcrdns, check_mx,
    check_ptr, check_spf, checked_domain, checked_ip, make_resolver, parse_dmarc, parse_dnsbl, parse_nameserver,
    system_nameservers, worst_verdict,
)
from adminkb.dnscheck import resolver as resolver_module
from adminkb.dnscheck.dmarc import DmarcSyntaxError
from adminkb.dnscheck.resolver import checked_timeout
from adminkb.dnscheck.result import CheckResult
from adminkb.errors import InputError
from adminkb.i18n import LANGUAGES
from adminkb.lab.dns import LabDns, lab_zone_files

# A silent server may take the budget plus dnspython's overshoot of 0.1-0.4 s.
OVERSHOOT = 0.5


@pytest.fixture(scope="module")
def server():
    with LabDns.from_files(lab_zone_files()) as running:
        yield running


@pytest.fixture
def client(server):
    return DnsClient(server.address, server.port, timeout=3)


@pytest.fixture
def servfail(server):
    """Add names that the server answers with SERVFAIL for one test."""
    added: list[dns.name.Name] = []

    def add(name: str) -> None:
        added.append(dns.name.from_text(name))
        server.servfail_names.add(added[-1])

    yield add
    for name in added:
        server.servfail_names.discard(name)


@pytest.fixture
def silent(server):
    """Add names that the server never answers for one test."""
    added: list[dns.name.Name] = []

    def add(name: str) -> None:
        added.append(dns.name.from_text(name))
        server.silent_names.add(added[-1])

    yield add
    for name in added:
        server.silent_names.discard(name)


@pytest.fixture
def mute_socket():
    """A UDP socket on loopback that reads every query and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    received = []
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                received.append(sock.recvfrom(4096)[0])
            except TimeoutError:
                continue
            except OSError:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    yield sock.getsockname()[1], received
    stop.set()
    reader.join(2)
    sock.close()


def assert_explained(result: CheckResult) -> None:
    """Every result renders its explanation and next step in both languages."""
    for language in LANGUAGES:
        assert result.explanation(language).strip()
        assert result.next_step(language).strip()
        assert "{" not in result.explanation(language)


def expect(result: CheckResult, verdict: str, outcome: str) -> CheckResult:
    assert result.outcome == outcome, result.to_dict("en")
    assert result.verdict == verdict
    assert_explained(result)
    return result


# Lookup statuses


def test_lookup_statuses_distinct(client, servfail):
    servfail("example.net")
    assert client.lookup("example.com", "MX").status == "answer"
    assert client.lookup("missing.example.com", "A").status == "nxdomain"
    assert client.lookup("example.com", "AAAA").status == "nodata"
    assert client.lookup("example.net", "MX").status == "servfail"
    assert client.lookup("www.example.org", "A").status == "refused"


@pytest.mark.timeout(10)
def test_lookup_timeout_status(client, silent):
    silent("example.net")
    started = time.monotonic()
    lookup = DnsClient(client.nameserver, client.port, timeout=1).lookup("example.net", "MX")
    assert lookup.status == "timeout"
    assert time.monotonic() - started < 1 + OVERSHOOT


def closed_udp_port() -> int:
    """Return a loopback UDP port that nothing listens on, so a query there gets ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def truncating_server():
    """A loopback DNS server whose UDP answers are all truncated and whose TCP port refuses connections.

    A TCP socket is bound to the same port without listening, so that the resolver's retry over
    TCP is refused by this test and not by whatever else might listen there.
    """
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    port = udp.getsockname()[1]
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", port))
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                wire, peer = udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            response = dns.message.make_response(dns.message.from_wire(wire))
            response.flags |= dns.flags.TC
            udp.sendto(response.to_wire(), peer)

    responder = threading.Thread(target=answer, daemon=True)
    responder.start()
    yield port
    stop.set()
    responder.join(2)
    udp.close()
    tcp.close()


@pytest.mark.timeout(10)
def test_lookup_closed_udp_port_unreachable():
    port = closed_udp_port()
    started = time.monotonic()
    lookup = DnsClient("127.0.0.1", port, timeout=3).lookup("example.net", "MX")
    # The ICMP reply ends the lookup at once instead of after the 3-second timeout.
    assert time.monotonic() - started < 1
    assert lookup.status == "unreachable"
    assert lookup.failed
    assert [(failure.server, failure.transport) for failure in lookup.unreachable] == [(f"127.0.0.1:{port}", "UDP")]
    assert lookup.unreachable[0].reason("en") == "Connection refused"
    assert lookup.unreachable[0].reason("zh-TW") == "連線被拒（該位址與連接埠沒有程式在接聽）"
    assert lookup.describe() == "example.net MX: UNREACHABLE"


@pytest.mark.timeout(10)
def test_lookup_refused_tcp_unreachable(truncating_server):
    lookup = DnsClient("127.0.0.1", truncating_server, timeout=3).lookup("example.net", "MX")
    assert lookup.status == "unreachable"
    assert [(failure.server, failure.transport) for failure in lookup.unreachable] == [
        (f"127.0.0.1:{truncating_server}", "TCP")]
    assert isinstance(lookup.unreachable[0].error, ConnectionRefusedError)


def test_lookup_servfail_not_unreachable(client, servfail):
    servfail("example.net")
    lookup = client.lookup("example.net", "MX")
    assert lookup.status == "servfail"
    assert lookup.unreachable == ()


def test_lookup_servfail_beside_unreachable(server, servfail):
    # One server replies SERVFAIL and the other cannot be reached. A reply came back, so the status is SERVFAIL.
    servfail("example.net")
    client = DnsClient([("127.0.0.1", closed_udp_port()), (server.address, server.port)], timeout=3)
    lookup = client.lookup("example.net", "MX")
    assert lookup.status == "servfail"
    assert lookup.unreachable == ()


def test_lookup_follows_cname(client):
    lookup = client.lookup("www.example.com", "A")
    assert lookup.texts() == ["127.0.0.20"]
    assert lookup.canonical_name == "example.com."


def test_spent_budget_sends_no_query(server):
    client = DnsClient(server.address, server.port, timeout=0.001)
    time.sleep(0.01)
    before = server.query_count
    assert client.lookup("example.com", "MX").status == "timeout"
    assert server.query_count == before
    client.restart()
    assert client.remaining() > 0


def server_pairs(resolver) -> list[tuple[str, int]]:
    return [(nameserver.address, nameserver.port) for nameserver in resolver.nameservers]


def test_make_resolver_uses_only_given_server(server):
    resolver = make_resolver(server.address, server.port, timeout=2)
    assert server_pairs(resolver) == [(server.address, server.port)]
    assert resolver.port == server.port
    assert resolver.cache is None
    assert resolver.lifetime == 2
    assert resolver.timeout == 2
    answer = resolver.resolve("example.com", "MX")
    assert len(answer) == 2


def test_make_resolver_shares_timeout_between_servers(server):
    servers = [("127.0.0.1", 1053), (server.address, server.port)]
    resolver = make_resolver(servers, timeout=3)
    assert server_pairs(resolver) == servers
    assert resolver.lifetime == 3
    assert resolver.timeout == 1.5


# This machine's configured servers. No test here sends a query to them: the configuration is
# either a file written by the test or a stand-in that names the lab DNS server.


@pytest.fixture
def resolv_conf(tmp_path, monkeypatch):
    """Point the system configuration at a resolv.conf file in `tmp_path`; return its path."""
    path = tmp_path / "resolv.conf"
    monkeypatch.setattr(resolver_module, "RESOLV_CONF", str(path))
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="Windows reads its DNS servers from the registry")
def test_system_nameservers_from_resolv_conf(resolv_conf):
    resolv_conf.write_text("# written by a test\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"
                           "search example.com\noptions timeout:30 attempts:4\n", encoding="utf-8")
    assert system_nameservers() == [("192.0.2.53", 53), ("2001:db8::53", 53)]


@pytest.mark.skipif(sys.platform == "win32", reason="Windows reads its DNS servers from the registry")
@pytest.mark.parametrize("content", [None, "search example.com\n"], ids=["missing-file", "no-nameserver-line"])
def test_system_nameservers_none_configured(resolv_conf, monkeypatch, content):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    if content is not None:
        resolv_conf.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        system_nameservers()
    assert caught.value.value == str(resolv_conf)
    assert f"本機沒有設定可用的 DNS 伺服器（讀取的位置：{resolv_conf}）" in str(caught.value)
    assert "--nameserver" in str(caught.value)


def test_system_nameservers_skip_doh_urls(monkeypatch):
    def read() -> dns.resolver.Resolver:
        configured = dns.resolver.Resolver(configure=False)
        configured.nameservers = ["https://dns.example.com/dns-query", "192.0.2.53"]
        return configured

    monkeypatch.setattr(resolver_module, "read_system_configuration", read)
    assert system_nameservers() == [("192.0.2.53", 53)]


def test_client_without_nameserver_asks_system_servers(server, monkeypatch):
    def read() -> dns.resolver.Resolver:
        configured = dns.resolver.Resolver(configure=False)
        configured.nameservers = [server.address]
        configured.port = server.port
        return configured

    monkeypatch.setattr(resolver_module, "read_system_configuration", read)
    before = server.query_count
    client = DnsClient(None, timeout=3)
    assert client.nameservers == [(server.address, server.port)]
    assert client.describe_nameservers() == server.nameserver
    assert client.lookup("example.com", "MX").status == "answer"
    assert server.query_count == before + 1
    results = check_domain("example.com", nameserver=None, timeout=3)
    assert worst_verdict(results) == "ok"


def test_make_resolver_reads_port_from_text(server):
    resolver = make_resolver(server.nameserver)
    assert resolver.port == server.port
    assert resolver.lifetime == 5.0


# Time budget against a socket that never answers


@pytest.mark.timeout(15)
@pytest.mark.parametrize("timeout", [0.5, 1.5])
def test_whole_check_bounded_on_mute_server(mute_socket, timeout):
    port, received = mute_socket
    started = time.monotonic()
    results = check_domain("example.com", nameserver=f"127.0.0.1:{port}", ip="127.0.0.25",
                           dnsbl=["dnsbl.test"], timeout=timeout)
    elapsed = time.monotonic() - started
    assert elapsed < timeout + OVERSHOOT
    assert received, "the mute server should have read at least one query"
    assert {result.verdict for result in results} == {"unknown"}
    assert results[0].outcome == "timeout"
    spf = next(result for result in results if result.check == "spf")
    assert spf.spf_result == "temperror"
    for result in results:
        assert_explained(result)


@pytest.mark.timeout(15)
def test_silent_server_gives_timeout_verdicts(server):
    server.silent_all = True
    try:
        started = time.monotonic()
        results = check_domain("example.com", nameserver=server.nameserver, timeout=1)
        elapsed = time.monotonic() - started
    finally:
        server.silent_all = False
    assert elapsed < 1 + OVERSHOOT
    assert [result.outcome for result in results] == ["timeout", "record_unknown", "timeout"]


# MX


def test_mx_found_in_preference_order(client):
    results = check_mx(client, "example.com")
    expect(results[0], "ok", "found")
    assert results[0].details["exchangers"] == [{"preference": 10, "host": "mx1.example.com"},
                                                {"preference": 20, "host": "mx2.example.com"}]
    assert [result.subject for result in results[1:]] == ["mx1.example.com", "mx2.example.com"]
    assert results[2].details["addresses"] == ["127.0.0.22", "::1"]


def test_mx_implicit_falls_back_to_address(client):
    results = check_mx(client, "implicit.lab.test")
    assert len(results) == 1
    expect(results[0], "warning", "implicit")
    assert results[0].details["implicit_addresses"] == ["127.0.0.24"]


def test_mx_some_unusable(client):
    results = check_mx(client, "mixed.lab.test")
    expect(results[0], "warning", "some_unusable")
    assert results[0].values["broken"] == "missing.lab.test"
    expect(results[2], "problem", "nxdomain")


def test_mx_none_usable(client):
    expect(check_mx(client, "dangling.lab.test")[0], "problem", "none_usable")
    results = check_mx(client, "noaddress.lab.test")
    expect(results[0], "problem", "none_usable")
    expect(results[1], "problem", "no_address")


def test_mx_hosts_unknown(client, servfail):
    servfail("missing.lab.test")
    results = check_mx(client, "dangling.lab.test")
    expect(results[0], "unknown", "hosts_unknown")
    expect(results[1], "unknown", "servfail")


def test_mx_nxdomain(client):
    results = check_mx(client, "missing.example.com")
    assert len(results) == 1
    expect(results[0], "problem", "nxdomain")


def test_mx_no_mail_host(client):
    expect(check_mx(client, "nomail.lab.test")[0], "problem", "no_mail_host")


def test_mx_null(client):
    results = check_mx(client, "nullmx.lab.test")
    assert len(results) == 1
    expect(results[0], "problem", "null_mx")


def test_mx_null_beside_others(client):
    expect(check_mx(client, "nullmixed.lab.test")[0], "problem", "null_mx_mixed")


def test_mx_servfail_refused_timeout(client, servfail, silent):
    servfail("example.net")
    expect(check_mx(client, "example.net")[0], "unknown", "servfail")
    expect(check_mx(client, "example.org")[0], "unknown", "refused")
    silent("lab.test")
    quick = DnsClient(client.nameserver, client.port, timeout=0.5)
    expect(check_mx(quick, "lab.test")[0], "unknown", "timeout")


@pytest.mark.timeout(15)
def test_unreachable_results_blame_this_side():
    port = closed_udp_port()
    results = check_domain("example.net", nameserver=f"127.0.0.1:{port}", ip="127.0.0.25", timeout=3)
    assert {result.verdict for result in results} == {"unknown"}
    assert {result.outcome for result in results} == {"unreachable"}
    spf = next(result for result in results if result.check == "spf")
    assert spf.spf_result == "temperror"
    mx = expect(results[0], "unknown", "unreachable")
    assert f"127.0.0.1:{port}（UDP）：連線被拒" in mx.explanation("zh-TW")
    assert f"127.0.0.1:{port} (UDP): Connection refused" in mx.explanation("en")
    assert "這台電腦這一端" in mx.next_step("zh-TW")
    assert "authoritative" not in mx.next_step("en")
    assert mx.to_dict("en")["details"]["unreachable"] == [
        {"server": f"127.0.0.1:{port}", "transport": "UDP", "error": "Connection refused"}]


def test_servfail_result_keeps_its_advice(client, servfail):
    servfail("example.net")
    mx = expect(check_mx(client, "example.net")[0], "unknown", "servfail")
    assert "authoritative" in mx.next_step("en")
    assert "unreachable" not in mx.details


def test_mx_implicit_lookup_failure(client, servfail):
    servfail("implicit.lab.test")
    # The MX query itself gets SERVFAIL too, so the result names the failed lookup.
    result = check_mx(client, "implicit.lab.test")[0]
    expect(result, "unknown", "servfail")
    assert result.values["type"] == "MX"


# Address of a mail host


def test_address_found(client):
    result = expect(check_address(client, "mx2.example.com"), "ok", "found")
    assert "127.0.0.22" in result.values["addresses"]


def test_address_alias(client):
    result = expect(check_address(client, "mail.alias.lab.test"), "warning", "alias")
    assert result.values["target"] == "mx1.example.com"


def test_address_nxdomain_and_no_address(client):
    expect(check_address(client, "missing.lab.test"), "problem", "nxdomain")
    expect(check_address(client, "host.noaddress.lab.test"), "problem", "no_address")


def test_address_unknown(client, servfail):
    servfail("mx1.example.com")
    expect(check_address(client, "mx1.example.com"), "unknown", "servfail")


# PTR and forward-confirmed reverse DNS


def test_ptr_found(client):
    result = expect(check_ptr(client, "127.0.0.25"), "ok", "found")
    assert result.details["names"] == ["out.example.com"]


def test_ptr_missing(client):
    expect(check_ptr(client, "127.0.0.26"), "problem", "missing")


def test_ptr_unknown(client, servfail):
    servfail("26.0.0.127.in-addr.arpa")
    expect(check_ptr(client, "127.0.0.26"), "unknown", "servfail")


def test_fcrdns_confirmed(client):
    result = expect(check_fcrdns(client, "127.0.0.1"), "ok", "confirmed")
    assert result.details["host"] == "smtp.example.com"


def test_fcrdns_mismatch(client):
    result = expect(check_fcrdns(client, "127.0.0.27"), "problem", "mismatch")
    assert "forged.example.net A 127.0.0.99" in result.records


def test_fcrdns_without_ptr(client):
    expect(check_fcrdns(client, "127.0.0.26"), "problem", "no_ptr")


def test_fcrdns_forward_lookup_fails(client, servfail):
    servfail("forged.example.net")
    expect(check_fcrdns(client, "127.0.0.27"), "unknown", "servfail")


def test_ipv4_mapped_address_checked_as_ipv4(client):
    result = check_ptr(client, "::ffff:127.0.0.25")
    assert result.subject == "127.0.0.25"
    assert result.verdict == "ok"


# SPF record (without a sending IP); results with an IP are in test_spf.py


def test_spf_record_found(client):
    result = expect(check_spf(client, "example.com"), "ok", "record_found")
    assert result.spf_result is None
    assert result.values["record"].startswith("v=spf1 ip4:127.0.0.1")


def test_spf_record_missing(client):
    expect(check_spf(client, "alias.lab.test"), "warning", "no_record")


def test_spf_record_duplicated(client):
    result = expect(check_spf(client, "twospf.lab.test"), "problem", "record_invalid")
    assert result.details["reason"] == "multiple_records"


def test_spf_record_unknown(client, servfail):
    servfail("example.com")
    expect(check_spf(client, "example.com"), "unknown", "record_unknown")


def test_spf_with_ip_in_lab_zone(client):
    result = expect(check_spf(client, "example.com", "127.0.0.31"), "ok", "pass")
    assert result.spf_result == "pass"
    assert result.details["mechanism"] == "include:_spf.example.net"


# DMARC


def test_dmarc_enforced(client):
    result = expect(check_dmarc(client, "example.com"), "ok", "enforced")
    assert result.details["policy"] == "reject"
    assert result.details["tags"]["adkim"] == "s"


def test_dmarc_monitoring(client):
    expect(check_dmarc(client, "example.net"), "warning", "monitoring")


def test_dmarc_partial(client):
    result = expect(check_dmarc(client, "halfpolicy.lab.test"), "warning", "partial")
    assert result.details["percent"] == 50


def test_dmarc_missing(client):
    expect(check_dmarc(client, "implicit.lab.test"), "warning", "missing")


def test_dmarc_invalid_policy(client):
    result = expect(check_dmarc(client, "badpolicy.lab.test"), "problem", "invalid")
    assert result.values["tag"] == "p"
    assert result.values["value"] == "discard"


def test_dmarc_two_records(client):
    expect(check_dmarc(client, "twodmarc.lab.test"), "problem", "multiple")


def test_dmarc_falls_back_to_organizational_domain(client):
    result = expect(check_dmarc(client, "mx1.example.com"), "ok", "enforced")
    assert result.details["found_at"] == "example.com"


def test_dmarc_unknown(client, servfail):
    servfail("_dmarc.example.com")
    expect(check_dmarc(client, "example.com"), "unknown", "servfail")


@pytest.mark.parametrize("text, tag", [
    ("v=DMARC1", "p"),
    ("v=DMARC1; p=reject; sp=drop", "sp"),
    ("v=DMARC1; p=reject; pct=150", "pct"),
    ("v=DMARC1; p=reject; pct=half", "pct"),
    ("v=DMARC1; p=reject; adkim=x", "adkim"),
    ("v=DMARC1; p=reject; broken", "broken"),
])
def test_dmarc_parse_errors(text, tag):
    with pytest.raises(DmarcSyntaxError) as caught:
        parse_dmarc(text)
    assert caught.value.tag == tag


def test_dmarc_parse_subdomain_policy():
    record = parse_dmarc("v=DMARC1; p=Reject; sp=none; pct=25; unknown=ignored;")
    assert record.policy == "reject"
    assert record.subdomain_policy == "none"
    assert record.percent == 25


# DNSBL


def test_dnsbl_not_listed(client):
    expect(check_dnsbl(client, "127.0.0.25", "dnsbl.test"), "ok", "not_listed")


def test_dnsbl_listed_with_reason(client):
    result = expect(check_dnsbl(client, "127.0.0.27", "dnsbl.test"), "problem", "listed")
    assert result.details["codes"] == ["127.0.0.2"]
    assert "reported as spam" in result.details["reason"]


def test_dnsbl_test_entry_listed(client):
    expect(check_dnsbl(client, "127.0.0.2", "dnsbl.test"), "problem", "listed")


def test_dnsbl_refused_query_is_unknown(client):
    result = expect(check_dnsbl(client, "127.0.0.26", "dnsbl.test"), "unknown", "query_refused")
    assert result.details["codes"] == ["127.255.255.254"]


def test_dnsbl_undocumented_code_is_unknown(client):
    expect(check_dnsbl(client, "127.0.0.29", "dnsbl.test"), "unknown", "undocumented")


def test_dnsbl_documented_code_is_listed(client):
    expect(check_dnsbl(client, "127.0.0.29", "dnsbl.test=127.0.0.2,127.0.1.1-127.0.1.3"), "problem", "listed")


def test_dnsbl_code_outside_documented_list(client):
    zone = parse_dnsbl("dnsbl.test=127.0.0.3")
    expect(check_dnsbl(client, "127.0.0.27", zone), "unknown", "undocumented")


def test_dnsbl_answer_outside_loopback(client):
    expect(check_dnsbl(client, "127.0.0.30", "dnsbl.test"), "unknown", "not_a_code")


def test_dnsbl_lookup_failure(client, servfail):
    servfail("25.0.0.127.dnsbl.test")
    expect(check_dnsbl(client, "127.0.0.25", "dnsbl.test"), "unknown", "servfail")


def test_dnsbl_query_names():
    zone = DnsblZone("dnsbl.test")
    assert zone.query_name(checked_ip("192.0.2.99")) == "99.2.0.192.dnsbl.test"
    name = zone.query_name(checked_ip("2001:db8::1"))
    assert name.startswith("1.0.0.0.0.0.0.0")
    assert name.endswith("8.b.d.0.1.0.0.2.dnsbl.test")
    assert len(name.split(".")) == 32 + 2


# A whole check


def test_check_domain_order_and_verdict(server):
    results = check_domain("example.com", nameserver=server.nameserver, ip="127.0.0.25", dnsbl=["dnsbl.test"])
    assert [result.check for result in results] == ["mx", "address", "address", "spf", "dmarc", "ptr", "fcrdns",
                                                   "dnsbl"]
    assert worst_verdict(results) == "ok"


def test_check_domain_problems(server):
    results = check_domain("example.net", nameserver=server.nameserver, ip="127.0.0.27", dnsbl=["dnsbl.test"])
    assert worst_verdict(results) == "problem"


def test_result_document_in_english(server):
    result = check_domain("example.com", nameserver=server.nameserver)[0]
    document = result.to_dict("en")
    assert document["check"] == "mx"
    assert document["verdict"] == "ok"
    assert "mx1.example.com" in document["explanation"]


# Bad input


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1", ("127.0.0.1", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)),
    ("[::1]:5353", ("::1", 5353)),
    (" 192.0.2.53 ", ("192.0.2.53", 53)),
])
def test_parse_nameserver(text, expected):
    assert parse_nameserver(text) == expected


def test_parse_nameserver_ambiguous_ipv6():
    with pytest.raises(InputError) as caught:
        parse_nameserver("::1:5353")
    assert caught.value.key == "smtp.input.ipv6_ambiguous"
    assert "[::1]:5353" in str(caught.value)


@pytest.mark.parametrize("text", ["ns1.example.com", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:dns",
                                  "[::1", "[::1]5353", "", "300.1.1.1"])
def test_parse_nameserver_rejects(text):
    with pytest.raises(InputError) as caught:
        parse_nameserver(text)
    assert caught.value.exit_status == 2
    assert "--nameserver" in str(caught.value)


@pytest.mark.parametrize("text", ["", "exa mple.com", "user@example.com", "a" * 64 + ".example.com", "a..b"])
def test_checked_domain_rejects(text):
    with pytest.raises(InputError) as caught:
        checked_domain(text)
    assert "example.com" in str(caught.value)


def test_checked_domain_normalises():
    assert checked_domain("Example.COM.") == "example.com"
    assert checked_domain("測試.example") == "xn--g6w251d.example"


@pytest.mark.parametrize("text", ["127.0.0", "example.com", "::g", ""])
def test_checked_ip_rejects(text):
    with pytest.raises(InputError) as caught:
        checked_ip(text)
    assert "192.0.2.25" in str(caught.value)


@pytest.mark.parametrize("value", [0, -1, "soon", 3601, float("nan")])
def test_checked_timeout_rejects(value):
    with pytest.raises(InputError) as caught:
        checked_timeout(value)
    assert "--timeout" in str(caught.value)


@pytest.mark.parametrize("text", ["dnsbl.test=10.0.0.2", "dnsbl.test=127.0.0.9-127.0.0.2", "dnsbl.test=code",
                                  "dnsbl.test=127.0.0.0-127.255.255.255"])
def test_parse_dnsbl_rejects_codes(text):
    with pytest.raises(InputError) as caught:
        parse_dnsbl(text)
    assert "127.0.0.0/8" in str(caught.value)


def test_dnsbl_needs_ip(server):
    with pytest.raises(InputError) as caught:
        check_domain("example.com", nameserver=server.nameserver, dnsbl=["dnsbl.test"])
    assert "--ip" in str(caught.value)


# Each failure kind told apart by every check

# (check, the query name that the server answers with SERVFAIL or never answers)
FAILURE_CASES = [
    (lambda client: check_mx(client, "example.com")[0], "example.com"),
    (lambda client: check_address(client, "mx1.example.com"), "mx1.example.com"),
    (lambda client: check_ptr(client, "127.0.0.25"), "25.0.0.127.in-addr.arpa"),
    (lambda client: check_fcrdns(client, "127.0.0.25"), "25.0.0.127.in-addr.arpa"),
    (lambda client: check_fcrdns(client, "127.0.0.25"), "out.example.com"),
    (lambda client: check_dmarc(client, "example.com"), "_dmarc.example.com"),
    (lambda client: check_dnsbl(client, "127.0.0.27", "dnsbl.test"), "27.0.0.127.dnsbl.test"),
    (lambda client: check_spf(client, "example.com"), "example.com"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("run, name", FAILURE_CASES,
                         ids=["mx", "address", "ptr", "fcrdns-ptr", "fcrdns-forward", "dmarc", "dnsbl", "spf-record"])
def test_failure_kinds_distinct_per_check(server, servfail, silent, run, name):
    healthy = run(DnsClient(server.address, server.port, timeout=3))
    assert healthy.verdict != "unknown", healthy.to_dict("en")

    servfail(name)
    failed = run(DnsClient(server.address, server.port, timeout=3))
    server.servfail_names.discard(dns.name.from_text(name))
    silent(name)
    started = time.monotonic()
    timed_out = run(DnsClient(server.address, server.port, timeout=0.5))
    elapsed = time.monotonic() - started

    assert failed.verdict == "unknown"
    assert timed_out.verdict == "unknown"
    assert elapsed < 0.5 + OVERSHOOT
    # The records seen name the failed lookup, as in "example.com MX: SERVFAIL".
    assert failed.records
    assert timed_out.records
    assert any(line.startswith(name) and line.endswith(": SERVFAIL") for line in failed.records), failed.records
    assert any(line.startswith(name) and line.endswith(": TIMEOUT") for line in timed_out.records), timed_out.records
    # The SPF record check names the failure inside its reason; the others in the outcome.
    if failed.check == "spf":
        assert failed.outcome == timed_out.outcome == "record_unknown"
        assert "SERVFAIL" in failed.explanation("en")
        assert "TIMEOUT" in timed_out.explanation("en")
    else:
        assert failed.outcome == "servfail"
        assert timed_out.outcome == "timeout"


def test_lookup_records_in_fixed_order(client):
    # dnspython's server code shuffles a record set in every answer, so the order seen is sorted.
    seen = {tuple(client.lookup("example.com", "MX").texts()) for _ in range(20)}
    assert seen == {("10 mx1.example.com.", "20 mx2.example.com.")}
