"""A resolver for one chosen nameserver, and lookups that share a time budget.

No resolver here reads /etc/resolv.conf or the Windows network settings: the caller always
names the nameserver, so a check never queries a server it did not intend to.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from adminkb.errors import InputError
from adminkb.smtp.addresses import reject_ambiguous_ipv6

log = logging.getLogger("adminkb.dnscheck.resolver")

DNS_PORT = 53
# Seconds a whole check (every lookup it makes) may take unless the caller sets another budget.
DEFAULT_TIMEOUT = 5.0

# Lookup outcomes. NXDOMAIN and NODATA are answers from the server; the others mean that no
# usable answer came back.
ANSWER = "answer"
NXDOMAIN = "nxdomain"
NODATA = "nodata"
SERVFAIL = "servfail"
REFUSED = "refused"
TIMEOUT = "timeout"
FAILED_STATUSES = (SERVFAIL, REFUSED, TIMEOUT)
VOID_STATUSES = (NXDOMAIN, NODATA)


def parse_nameserver(text: str) -> tuple[str, int]:
    """Split `HOST[:PORT]` into an IP address and a port; IPv6 with a port is `[ADDRESS]:PORT`.

    Raises InputError for a host name (dnspython queries only IP addresses) or a bad port.
    """
    text = text.strip()
    host, port_text = text, None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise InputError("dnscheck.nameserver.invalid", value=text, next_key="dnscheck.nameserver.invalid_next")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        reject_ambiguous_ipv6(text, DNS_PORT)
    try:
        address = ipaddress.ip_address(host)
    except ValueError as error:
        raise InputError("dnscheck.nameserver.invalid", value=text,
                         next_key="dnscheck.nameserver.invalid_next") from error
    port = DNS_PORT
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InputError("dnscheck.nameserver.invalid_port", value=text, port=port_text,
                             next_key="dnscheck.nameserver.invalid_next")
        port = int(port_text)
    return str(address), port


def checked_timeout(timeout: float) -> float:
    """Return `timeout` as seconds, or raise InputError unless it is a positive finite number."""
    try:
        seconds = float(timeout)
    except (TypeError, ValueError) as error:
        raise InputError("dnscheck.timeout.invalid", value=timeout, next_key="dnscheck.timeout.invalid_next") from error
    if not 0 < seconds <= 3600:
        raise InputError("dnscheck.timeout.invalid", value=timeout, next_key="dnscheck.timeout.invalid_next")
    return seconds


def make_resolver(nameserver: str, port: int | None = None, *,
                  timeout: float = DEFAULT_TIMEOUT) -> dns.resolver.Resolver:
    """Create a resolver that queries only `nameserver`, with no cache and no search list.

    `nameserver` is `HOST[:PORT]`; a `port` argument overrides the port in it. `timeout` is the
    default lifetime of one resolve() call, in seconds.
    """
    address, parsed_port = parse_nameserver(nameserver)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [address]
    resolver.port = parsed_port if port is None else port
    resolver.lifetime = checked_timeout(timeout)
    resolver.timeout = resolver.lifetime
    resolver.cache = None
    resolver.use_search_by_default = False
    return resolver


@dataclass
class Lookup:
    """The outcome of one DNS query: its status and the records of the answer."""

    name: str
    rdtype: str
    status: str
    records: list = field(default_factory=list)
    # The name the answer is for once CNAMEs are followed; differs from `name` behind an alias.
    canonical_name: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == ANSWER

    @property
    def failed(self) -> bool:
        """Whether the server gave no usable answer (SERVFAIL, REFUSED or timeout)."""
        return self.status in FAILED_STATUSES

    @property
    def void(self) -> bool:
        """Whether the answer was NXDOMAIN or NODATA (a void lookup in RFC 7208 terms)."""
        return self.status in VOID_STATUSES

    def texts(self) -> list[str]:
        return [rdata.to_text() for rdata in self.records]

    def describe(self) -> str:
        """Return `NAME TYPE: STATUS`, for the records seen by a check."""
        if self.ok:
            return "\n".join(f"{self.name} {self.rdtype} {text}" for text in self.texts())
        return f"{self.name} {self.rdtype}: {self.status.upper()}"


class DnsClient:
    """Lookups against one nameserver that together take at most `timeout` seconds.

    Each lookup gets the time left in the budget as its lifetime, so a silent server ends a
    whole check in about `timeout` seconds. dnspython 2.9 overshoots a lifetime by roughly
    0.1-0.4 s, measured on loopback. Once the budget is spent, lookups return TIMEOUT without a
    query.
    """

    def __init__(self, nameserver: str, port: int | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        address, parsed_port = parse_nameserver(nameserver)
        self.nameserver = address
        self.port = parsed_port if port is None else port
        self.timeout = checked_timeout(timeout)
        self.resolver = make_resolver(address, self.port, timeout=self.timeout)
        self.query_count = 0
        self.deadline = time.monotonic() + self.timeout

    def restart(self) -> None:
        """Start a fresh budget of `timeout` seconds."""
        self.deadline = time.monotonic() + self.timeout

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def lookup(self, name: str | dns.name.Name, rdtype: str) -> Lookup:
        """Query `name` for `rdtype` and return the outcome, with DNS failures as statuses instead of exceptions."""
        text = name.to_text() if isinstance(name, dns.name.Name) else str(name)
        remaining = self.remaining()
        if remaining <= 0:
            return Lookup(text, rdtype, TIMEOUT, detail="budget spent")
        self.query_count += 1
        try:
            answer = self.resolver.resolve(text, rdtype, lifetime=remaining, search=False)
        except dns.resolver.NXDOMAIN:
            return Lookup(text, rdtype, NXDOMAIN)
        except dns.resolver.NoAnswer:
            return Lookup(text, rdtype, NODATA)
        except dns.resolver.NoNameservers as error:
            status = _failure_status(error)
            log.info("lookup of %s %s at %s failed: %s", text, rdtype, self.nameserver, status)
            return Lookup(text, rdtype, status, detail=str(error))
        except dns.exception.Timeout as error:
            log.info("lookup of %s %s at %s port %s timed out", text, rdtype, self.nameserver, self.port)
            return Lookup(text, rdtype, TIMEOUT, detail=str(error))
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong) as error:
            # An invalid name is never sent, so the server did not say NXDOMAIN, but no such name can exist.
            return Lookup(text, rdtype, NXDOMAIN, detail=str(error))
        except dns.exception.DNSException as error:
            log.warning("lookup of %s %s at %s failed: %s", text, rdtype, self.nameserver, error)
            return Lookup(text, rdtype, SERVFAIL, detail=str(error))
        canonical = answer.canonical_name.to_text()
        return Lookup(text, rdtype, ANSWER, list(answer.rrset or ()), canonical_name=canonical)


def _failure_status(error: dns.resolver.NoNameservers) -> str:
    for entry in error.kwargs.get("errors", ()):
        response = entry[4] if len(entry) > 4 else None
        if response is not None and response.rcode() == dns.rcode.REFUSED:
            return REFUSED
    return SERVFAIL


def checked_domain(text: str) -> str:
    """Return `text` as a lower-case domain name without the final dot, or raise InputError.

    Names in Chinese (IDN) become their ASCII (`xn--`) form, as they appear in DNS.
    """
    stripped = str(text).strip().rstrip(".")
    if not stripped or any(character.isspace() for character in stripped) or "@" in stripped:
        raise InputError("dnscheck.domain.invalid", value=text, next_key="dnscheck.domain.invalid_next")
    try:
        name = dns.name.from_text(stripped)
    except (dns.exception.DNSException, UnicodeError) as error:
        raise InputError("dnscheck.domain.invalid", value=text, next_key="dnscheck.domain.invalid_next") from error
    return name.to_text(omit_final_dot=True).lower()


def checked_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Return `text` as an IP address, or raise InputError; an IPv4-mapped IPv6 address becomes IPv4."""
    try:
        address = ipaddress.ip_address(str(text).strip())
    except ValueError as error:
        raise InputError("dnscheck.ip.invalid", value=text, next_key="dnscheck.ip.invalid_next") from error
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
