"""DNS checks for mail delivery, built on dnspython: MX, addresses, PTR, forward-confirmed
reverse DNS, SPF, DMARC and DNS blocklists.

Each check returns `CheckResult` objects with a verdict (ok, warning, problem, unknown), the
records seen, and an explanation and next step in the user's language. All lookups of one
`check_domain()` run share one time budget, so a silent DNS server ends the run in about
`timeout` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from adminkb.dnscheck.dmarc import check_dmarc, parse_dmarc
from adminkb.dnscheck.dnsbl import DnsblZone, check_dnsbl, parse_dnsbl
from adminkb.dnscheck.mx import check_address, check_mx
from adminkb.dnscheck.ptr import check_fcrdns, check_ptr, lookup_ptr
from adminkb.dnscheck.resolver import (
    DEFAULT_TIMEOUT, DnsClient, Lookup, checked_domain, checked_ip, make_resolver, parse_nameserver,
    system_nameservers,
)
from adminkb.dnscheck.result import OK, PROBLEM, UNKNOWN, VERDICTS, WARNING, CheckResult, worst_verdict
from adminkb.dnscheck.spf import RESULTS as SPF_RESULTS
from adminkb.dnscheck.spf import SpfOutcome, check_spf, evaluate_spf, parse_record
from adminkb.dnscheck.table import results_table
from adminkb.errors import InputError

__all__ = [
    "CheckResult", "DEFAULT_TIMEOUT", "DnsClient", "DnsblZone", "Lookup", "OK", "PROBLEM", "SPF_RESULTS",
    "SpfOutcome", "UNKNOWN", "VERDICTS", "WARNING", "check_address", "check_dmarc", "check_dnsbl",
    "check_domain", "check_fcrdns", "check_mx", "check_ptr", "check_spf", "checked_domain", "checked_ip",
    "evaluate_spf", "make_resolver", "parse_dmarc", "parse_dnsbl", "parse_nameserver", "parse_record",
    "results_table", "system_nameservers", "worst_verdict",
]


def check_domain(domain: str, *, nameserver: str | Sequence[tuple[str, int]] | None, port: int | None = None,
                 ip: str | None = None, dnsbl: Iterable[DnsblZone | str] = (),
                 timeout: float = DEFAULT_TIMEOUT) -> list[CheckResult]:
    """Run every check for mail from `domain` (and from `ip`, when given) against `nameserver`.

    `nameserver` is `HOST[:PORT]`, a list of (address, port) pairs, or None for the servers of
    this machine's DNS configuration. Order: MX and each exchanger's addresses, SPF, DMARC,
    then for `ip` its PTR, forward-confirmed reverse DNS and each blocklist. Raises InputError
    for an unusable domain, IP address, nameserver, blocklist or timeout, and when no server is
    configured, before any query is sent.
    """
    domain = checked_domain(domain)
    address = str(checked_ip(ip)) if ip is not None else None
    zones = [zone if isinstance(zone, DnsblZone) else parse_dnsbl(zone) for zone in dnsbl]
    if zones and address is None:
        raise InputError("dnscheck.dnsbl.needs_ip", next_key="dnscheck.dnsbl.needs_ip_next")
    client = DnsClient(nameserver, port, timeout=timeout)
    results = [*check_mx(client, domain), check_spf(client, domain, address), check_dmarc(client, domain)]
    if address is not None:
        ptr = lookup_ptr(client, checked_ip(address))
        results.append(check_ptr(client, address, ptr=ptr))
        results.append(check_fcrdns(client, address, ptr=ptr))
        results.extend(check_dnsbl(client, address, zone) for zone in zones)
    return results
