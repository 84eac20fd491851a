"""MX check: the domain's mail exchangers in preference order, then each one's addresses.

With no MX records, RFC 5321 section 5.1 has senders use the domain's own A/AAAA records (the
implicit MX). A single MX record with the root name "." is a null MX (RFC 7505): the domain
accepts no mail.
"""

from __future__ import annotations

from dataclasses import dataclass

from adminkb.dnscheck.resolver import NXDOMAIN, DnsClient, Lookup, checked_domain
from adminkb.dnscheck.result import OK, PROBLEM, UNKNOWN, WARNING, CheckResult, failed_lookup_result


@dataclass(frozen=True)
class MailExchanger:
    preference: int
    host: str

    def __str__(self) -> str:
        return f"{self.preference} {self.host}"


def lookup_addresses(client: DnsClient, host: str) -> tuple[Lookup, Lookup]:
    """Look up the A and AAAA records of `host`."""
    return client.lookup(host, "A"), client.lookup(host, "AAAA")


def check_address(client: DnsClient, host: str) -> CheckResult:
    """Check that a mail host has an A or AAAA record, and that `host` is not an alias (CNAME)."""
    host = checked_domain(host)
    a, aaaa = lookup_addresses(client, host)
    answered = [lookup for lookup in (a, aaaa) if lookup.ok]
    records = [line for lookup in (a, aaaa) for line in lookup.describe().splitlines()]
    addresses = [text for lookup in answered for text in lookup.texts()]
    details = {"addresses": addresses}
    if answered:
        canonical = answered[0].canonical_name.rstrip(".") if answered[0].canonical_name else host
        if canonical.lower() != host:
            # RFC 2181 section 10.3: an MX record must name a host, not an alias.
            return CheckResult("address", host, WARNING, "alias", records, {"target": canonical}, details=details)
        return CheckResult("address", host, OK, "found", records, {"addresses": ", ".join(addresses)},
                           details=details)
    failed = next((lookup for lookup in (a, aaaa) if lookup.failed), None)
    if failed is not None:
        return failed_lookup_result("address", host, failed, records)
    outcome = "nxdomain" if a.status == NXDOMAIN else "no_address"
    return CheckResult("address", host, PROBLEM, outcome, records, details=details)


def check_mx(client: DnsClient, domain: str) -> list[CheckResult]:
    """Check the MX records of `domain`; return the MX result, then one address result per host."""
    domain = checked_domain(domain)
    mx = client.lookup(domain, "MX")
    if mx.failed:
        return [failed_lookup_result("mx", domain, mx)]
    if mx.status == NXDOMAIN:
        return [CheckResult("mx", domain, PROBLEM, "nxdomain", [mx.describe()])]
    if not mx.ok:
        return [_check_implicit_mx(client, domain, mx)]

    exchangers = sorted((MailExchanger(rdata.preference, rdata.exchange.to_text(omit_final_dot=True).lower() or ".")
                         for rdata in mx.records), key=lambda entry: (entry.preference, entry.host))
    records = [f"{domain} MX {entry}" for entry in exchangers]
    details = {"exchangers": [{"preference": entry.preference, "host": entry.host} for entry in exchangers]}
    hosts = [entry.host for entry in exchangers if entry.host != "."]
    if not hosts:
        return [CheckResult("mx", domain, PROBLEM, "null_mx", records, details=details)]
    if len(hosts) != len(exchangers):
        return [CheckResult("mx", domain, PROBLEM, "null_mx_mixed", records, details=details)]

    address_results = [check_address(client, host) for host in hosts]
    usable = [result for result in address_results if result.verdict in (OK, WARNING)]
    unknown = [result for result in address_results if result.verdict == UNKNOWN]
    values = {"count": len(hosts), "hosts": ", ".join(hosts), "first": hosts[0]}
    if len(usable) == len(hosts):
        mx_result = CheckResult("mx", domain, OK, "found", records, values, details=details)
    elif usable:
        broken = ", ".join(result.subject for result in address_results if result not in usable)
        mx_result = CheckResult("mx", domain, WARNING, "some_unusable", records, {**values, "broken": broken},
                                details=details)
    elif unknown:
        mx_result = CheckResult("mx", domain, UNKNOWN, "hosts_unknown", records, values, details=details)
    else:
        mx_result = CheckResult("mx", domain, PROBLEM, "none_usable", records, values, details=details)
    return [mx_result, *address_results]


def _check_implicit_mx(client: DnsClient, domain: str, mx: Lookup) -> CheckResult:
    a, aaaa = lookup_addresses(client, domain)
    records = [mx.describe(), *(line for lookup in (a, aaaa) for line in lookup.describe().splitlines())]
    addresses = [text for lookup in (a, aaaa) if lookup.ok for text in lookup.texts()]
    if addresses:
        return CheckResult("mx", domain, WARNING, "implicit", records, {"addresses": ", ".join(addresses)},
                           details={"exchangers": [], "implicit_addresses": addresses})
    failed = next((lookup for lookup in (a, aaaa) if lookup.failed), None)
    if failed is not None:
        return failed_lookup_result("mx", domain, failed, records)
    return CheckResult("mx", domain, PROBLEM, "no_mail_host", records, details={"exchangers": []})
