"""The lab DNS server: authoritative answers, misbehaviour switches, TCP, and bad settings."""

from __future__ import annotations

import socket
import time

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from adminkb.dnscheck import make_resolver
from adminkb.errors import InputError, LabError
from adminkb.lab.dns import LabDns, lab_zone_files

QUERY_TIMEOUT = 2.0

WILDCARD_ZONE = """$ORIGIN wild.test.
$TTL 60
@ SOA ns1 hostmaster 1 3600 600 86400 60
@ NS ns1
ns1 A 127.0.0.53
* TXT "wildcard"
exact TXT "exact"
deep.below.tree A 127.0.0.8
"""

BIG_ZONE = "$ORIGIN big.test.\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.53\n" + "".join(
    f'many TXT "{index:03d} {"x" * 60}"\n' for index in range(40))


@pytest.fixture(scope="module")
def server():
    with LabDns.from_files(lab_zone_files()) as running:
        running.add_zone(WILDCARD_ZONE)
        running.add_zone(BIG_ZONE)
        yield running


def ask(server: LabDns, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, server.address, port=server.port, timeout=QUERY_TIMEOUT)
    return dns.query.udp(query, server.address, port=server.port, timeout=QUERY_TIMEOUT)


def answer_texts(response: dns.message.Message) -> list[str]:
    return sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)


def test_lab_zone_files_found():
    names = [path.name for path in lab_zone_files()]
    assert "lab-example.com.zone" in names
    assert "lab-127.in-addr.arpa.zone" in names
    assert "lab-dnsbl.test.zone" in names


def test_serves_every_lab_origin(server):
    for origin in ("example.com.", "example.net.", "lab.test.", "127.in-addr.arpa.", "dnsbl.test."):
        assert origin in server.origins


def test_answer_is_authoritative(server):
    response = ask(server, "example.com", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert answer_texts(response) == ["10 mx1.example.com.", "20 mx2.example.com."]


def test_nodata_has_soa_and_no_answer(server):
    response = ask(server, "example.com", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


def test_nxdomain_has_soa(server):
    response = ask(server, "missing.example.com", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


def test_empty_non_terminal_is_nodata(server):
    response = ask(server, "alias.lab.test", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    below = ask(server, "below.tree.wild.test", "A")
    assert below.rcode() == dns.rcode.NOERROR
    assert below.answer == []


def test_name_outside_zones_refused(server):
    response = ask(server, "www.example.org", "A")
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.AA


def test_names_match_without_case(server):
    response = ask(server, "EXAMPLE.Com", "MX")
    assert len(answer_texts(response)) == 2


def test_cname_followed_across_zones(server):
    response = ask(server, "mail.alias.lab.test", "A")
    types = [rrset.rdtype for rrset in response.answer]
    assert types == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert "127.0.0.21" in answer_texts(response)


def test_wildcard_synthesises_answer(server):
    response = ask(server, "anything.wild.test", "TXT")
    assert answer_texts(response) == ['"wildcard"']
    assert response.answer[0].name == dns.name.from_text("anything.wild.test")
    exact = ask(server, "exact.wild.test", "TXT")
    assert answer_texts(exact) == ['"exact"']


def test_wildcard_not_applied_below_existing_name(server):
    # RFC 4592: "tree.wild.test" exists (an empty non-terminal), so the wildcard at the apex
    # does not cover names below it.
    response = ask(server, "other.tree.wild.test", "TXT")
    assert response.rcode() == dns.rcode.NXDOMAIN


def test_reverse_and_dnsbl_records(server):
    assert answer_texts(ask(server, "25.0.0.127.in-addr.arpa", "PTR")) == ["out.example.com."]
    assert answer_texts(ask(server, "27.0.0.127.dnsbl.test", "A")) == ["127.0.0.2"]
    assert answer_texts(ask(server, "26.0.0.127.dnsbl.test", "A")) == ["127.255.255.254"]
    assert ask(server, "25.0.0.127.dnsbl.test", "A").rcode() == dns.rcode.NXDOMAIN


def test_tcp_answer(server):
    response = ask(server, "example.com", "MX", tcp=True)
    assert answer_texts(response) == ["10 mx1.example.com.", "20 mx2.example.com."]


def test_large_udp_answer_truncated(server):
    udp = ask(server, "many.big.test", "TXT")
    assert udp.flags & dns.flags.TC
    assert udp.answer == []
    tcp = ask(server, "many.big.test", "TXT", tcp=True)
    assert len(answer_texts(tcp)) == 40


def test_servfail_switch(server):
    name = dns.name.from_text("example.net")
    server.servfail_names.add(name)
    try:
        assert ask(server, "example.net", "MX").rcode() == dns.rcode.SERVFAIL
        assert ask(server, "mx.example.net", "A").rcode() == dns.rcode.NOERROR
    finally:
        server.servfail_names.discard(name)
    assert ask(server, "example.net", "MX").rcode() == dns.rcode.NOERROR


@pytest.mark.timeout(10)
def test_silent_name_gets_no_answer(server):
    name = dns.name.from_text("example.net")
    server.silent_names.add(name)
    try:
        started = time.monotonic()
        with pytest.raises(dns.exception.Timeout):
            dns.query.udp(dns.message.make_query("example.net", "MX"), server.address, port=server.port,
                          timeout=0.5)
        assert time.monotonic() - started < 1.5
        assert ask(server, "example.com", "MX").rcode() == dns.rcode.NOERROR
    finally:
        server.silent_names.discard(name)


@pytest.mark.timeout(10)
def test_silent_all_switch(server):
    server.silent_all = True
    try:
        with pytest.raises(dns.exception.Timeout):
            dns.query.udp(dns.message.make_query("example.com", "MX"), server.address, port=server.port,
                          timeout=0.5)
    finally:
        server.silent_all = False
    assert ask(server, "example.com", "MX").rcode() == dns.rcode.NOERROR


@pytest.mark.timeout(10)
def test_garbage_datagram_ignored(server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(0.5)
        client.sendto(b"\x00\x01not a dns message", (server.address, server.port))
        with pytest.raises(TimeoutError):
            client.recvfrom(4096)
    assert ask(server, "example.com", "MX").rcode() == dns.rcode.NOERROR


def test_counts_queries(server):
    before = server.query_count
    ask(server, "example.com", "A")
    assert server.query_count == before + 1


def test_nameserver_text(server):
    assert server.nameserver == f"127.0.0.1:{server.port}"


def test_stop_releases_port():
    server = LabDns.from_files(lab_zone_files()).start()
    port = server.port
    server.stop()
    assert not server.running
    with pytest.raises(LabError):
        server.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", port))


def test_fixed_port_in_use_reported():
    with LabDns.from_files(lab_zone_files()) as first:
        taken = first.port
        with pytest.raises(LabError) as caught:
            LabDns([WILDCARD_ZONE], port=taken).start()
    assert str(taken) in str(caught.value)


def test_non_loopback_address_rejected():
    with pytest.raises(LabError) as caught:
        LabDns([WILDCARD_ZONE], address="192.0.2.53")
    assert "192.0.2.53" in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_host_name_address_rejected():
    with pytest.raises(InputError) as caught:
        LabDns([WILDCARD_ZONE], address="localhost")
    assert "localhost" in str(caught.value)


def test_invalid_port_rejected():
    with pytest.raises(InputError):
        LabDns([WILDCARD_ZONE], port=70000)


def test_zone_without_origin_rejected():
    with pytest.raises(InputError) as caught:
        LabDns(["@ SOA ns1 hostmaster 1 2 3 4 5\n"])
    assert "$ORIGIN" in str(caught.value)


def test_two_zones_in_one_text_rejected():
    text = WILDCARD_ZONE + "$ORIGIN other.test.\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n"
    with pytest.raises(InputError) as caught:
        LabDns([text])
    assert "other.test." in str(caught.value)


def test_record_outside_origin_rejected():
    with pytest.raises(InputError) as caught:
        LabDns([WILDCARD_ZONE + "host.example.org. A 127.0.0.9\n"])
    assert "host.example.org." in str(caught.value)


def test_same_origin_twice_rejected():
    with pytest.raises(InputError) as caught:
        LabDns([WILDCARD_ZONE, WILDCARD_ZONE])
    assert "wild.test." in str(caught.value)


def test_missing_zone_file_reported(tmp_path):
    missing = tmp_path / "lab-none.zone"
    with pytest.raises(InputError) as caught:
        LabDns.from_files([missing])
    assert str(missing) in str(caught.value)


def test_resolver_retries_truncated_answer_over_tcp(server):
    resolver = make_resolver(server.address, server.port, timeout=QUERY_TIMEOUT)
    answer = resolver.resolve("many.big.test", "TXT")
    assert len(answer) == 40


def test_ipv6_loopback_server():
    try:
        server = LabDns([WILDCARD_ZONE], address="::1").start()
    except LabError as error:
        pytest.skip(f"::1 is not available here: {error}")
    try:
        assert server.nameserver == f"[::1]:{server.port}"
        response = dns.query.udp(dns.message.make_query("exact.wild.test", "TXT"), "::1", port=server.port,
                                 timeout=QUERY_TIMEOUT)
        assert answer_texts(response) == ['"exact"']
    finally:
        server.stop()
