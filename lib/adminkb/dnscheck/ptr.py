"""Reverse DNS of a sending IP address: its PTR records, and whether they are forward-confirmed.

Forward-confirmed reverse DNS (FCrDNS): a host name from the PTR records has an A or AAAA
record that is the same address. Many receivers reject or distrust mail from an address
without it.
"""

from __future__ import annotations

import ipaddress

import dns.reversename

from adminkb.dnscheck.resolver import DnsClient, Lookup, checked_ip
from adminkb.dnscheck.result import OK, PROBLEM, CheckResult, failed_lookup_result

# Host names from PTR records checked for a forward match, the same cap RFC 7208 section 4.6.4
# puts on the names its "ptr" mechanism examines.
MAX_PTR_NAMES = 10


def reverse_name(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Return the in-addr.arpa or ip6.arpa name of `address`."""
    return dns.reversename.from_address(str(address)).to_text(omit_final_dot=True)


def lookup_ptr(client: DnsClient, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Lookup:
    return client.lookup(reverse_name(address), "PTR")


def ptr_names(lookup: Lookup) -> list[str]:
    return sorted(rdata.target.to_text(omit_final_dot=True).lower() for rdata in lookup.records)


def check_ptr(client: DnsClient, ip: str, *, ptr: Lookup | None = None) -> CheckResult:
    """Check that `ip` has PTR records; `ptr` reuses a lookup already made."""
    address = checked_ip(ip)
    ptr = ptr or lookup_ptr(client, address)
    subject = str(address)
    if ptr.failed:
        return failed_lookup_result("ptr", subject, ptr)
    if not ptr.ok:
        return CheckResult("ptr", subject, PROBLEM, "missing", [ptr.describe()], {"name": ptr.name})
    names = ptr_names(ptr)
    return CheckResult("ptr", subject, OK, "found", ptr.describe().splitlines(), {"names": ", ".join(names)},
                       details={"names": names})


def check_fcrdns(client: DnsClient, ip: str, *, ptr: Lookup | None = None) -> CheckResult:
    """Check that a PTR name of `ip` resolves back to `ip`; `ptr` reuses a lookup already made."""
    address = checked_ip(ip)
    subject = str(address)
    ptr = ptr or lookup_ptr(client, address)
    if ptr.failed:
        return failed_lookup_result("fcrdns", subject, ptr)
    if not ptr.ok:
        return CheckResult("fcrdns", subject, PROBLEM, "no_ptr", [ptr.describe()])
    names = ptr_names(ptr)
    rdtype = "A" if address.version == 4 else "AAAA"
    records: list[str] = ptr.describe().splitlines()
    failed = None
    for name in names[:MAX_PTR_NAMES]:
        forward = client.lookup(name, rdtype)
        records.extend(forward.describe().splitlines())
        if forward.failed:
            failed = failed or forward
            continue
        if any(ipaddress.ip_address(text) == address for text in forward.texts()):
            return CheckResult("fcrdns", subject, OK, "confirmed", records, {"host": name}, details={"host": name})
    if failed is not None:
        return failed_lookup_result("fcrdns", subject, failed, records)
    return CheckResult("fcrdns", subject, PROBLEM, "mismatch", records, {"names": ", ".join(names)},
                       details={"names": names})
