"""DNS blocklist (DNSBL) lookups in the layout of RFC 5782.

An IPv4 address is looked up with its octets reversed under the list's zone (127.0.0.2 in
dnsbl.example becomes 2.0.0.127.dnsbl.example), an IPv6 address as reversed nibbles. An answer
means "listed" only when it is one of the codes the list documents. Several lists answer
127.255.255.252-255 when they refuse the query (for example one sent through a public
resolver), so those codes mean "unknown". NXDOMAIN means "not listed".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from adminkb.dnscheck.resolver import DnsClient, checked_domain, checked_ip
from adminkb.dnscheck.result import OK, PROBLEM, UNKNOWN, CheckResult, failed_lookup_result
from adminkb.errors import InputError

# Codes that mean "listed" when a zone is given without its own list: 127.0.0.2-127.0.0.254.
# NOTE: this default is a convention (127.0.0.2 is the usual generic listing), not any one
# list's documentation, so give a list's documented codes (ZONE=CODE,CODE) to be exact.
DEFAULT_LISTED = frozenset(ipaddress.ip_address(f"127.0.0.{last}") for last in range(2, 255))
REFUSED_CODES = ipaddress.ip_network("127.255.255.252/30")
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True)
class DnsblZone:
    """A blocklist: its DNS zone and the answer codes that mean "listed"."""

    zone: str
    listed_codes: frozenset = DEFAULT_LISTED

    def query_name(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        if address.version == 4:
            labels = reversed(str(address).split("."))
        else:
            labels = reversed(address.exploded.replace(":", ""))
        return ".".join([*labels, self.zone])


def parse_dnsbl(text: str) -> DnsblZone:
    """Parse `ZONE` or `ZONE=CODE,FIRST-LAST,...` (codes are IPv4 addresses in 127.0.0.0/8)."""
    zone_text, equals, codes_text = str(text).partition("=")
    zone = checked_domain(zone_text)
    if not equals:
        return DnsblZone(zone)
    codes = set()
    for item in codes_text.split(","):
        first, dash, last = item.strip().partition("-")
        try:
            start = ipaddress.IPv4Address(first)
            end = ipaddress.IPv4Address(last) if dash else start
        except ValueError as error:
            raise InputError("dnscheck.dnsbl.invalid_codes", value=text, item=item,
                             next_key="dnscheck.dnsbl.invalid_codes_next") from error
        if start not in LOOPBACK or end not in LOOPBACK or end < start or int(end) - int(start) > 65535:
            raise InputError("dnscheck.dnsbl.invalid_codes", value=text, item=item,
                             next_key="dnscheck.dnsbl.invalid_codes_next")
        codes.update(ipaddress.IPv4Address(number) for number in range(int(start), int(end) + 1))
    return DnsblZone(zone, frozenset(codes))


def check_dnsbl(client: DnsClient, ip: str, blocklist: DnsblZone | str) -> CheckResult:
    """Look `ip` up in one blocklist and return listed (problem), not listed (ok) or unknown."""
    address = checked_ip(ip)
    zone = blocklist if isinstance(blocklist, DnsblZone) else parse_dnsbl(blocklist)
    subject = f"{address} @ {zone.zone}"
    lookup = client.lookup(zone.query_name(address), "A")
    records = lookup.describe().splitlines()
    if lookup.failed:
        return failed_lookup_result("dnsbl", subject, lookup, records, zone=zone.zone)
    values = {"ip": str(address), "zone": zone.zone}
    if not lookup.ok:
        return CheckResult("dnsbl", subject, OK, "not_listed", records, values, details={"zone": zone.zone})
    codes = sorted(ipaddress.ip_address(text) for text in lookup.texts())
    details = {"zone": zone.zone, "codes": [str(code) for code in codes]}
    values["codes"] = ", ".join(details["codes"])
    if any(code in REFUSED_CODES for code in codes):
        return CheckResult("dnsbl", subject, UNKNOWN, "query_refused", records, values, details=details)
    if any(code not in LOOPBACK for code in codes):
        return CheckResult("dnsbl", subject, UNKNOWN, "not_a_code", records, values, details=details)
    if not all(code in zone.listed_codes for code in codes):
        return CheckResult("dnsbl", subject, UNKNOWN, "undocumented", records, values, details=details)
    reason = client.lookup(zone.query_name(address), "TXT")
    if reason.ok:
        records.extend(reason.describe().splitlines())
    texts = [b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in reason.records]
    details["reason"] = " ".join(texts)
    values["reason"] = details["reason"] or "-"
    return CheckResult("dnsbl", subject, PROBLEM, "listed", records, values, details=details)
