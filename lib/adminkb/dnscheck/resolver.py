"""A resolver for chosen nameservers, and lookups that share a time budget.

The caller names the nameserver (`HOST[:PORT]`), or passes None to use the servers of this
machine's DNS configuration, which dnspython reads from /etc/resolv.conf on Linux and from the
registry on Windows. Only the server list is taken from that configuration: no search list,
no cache and none of its timeouts.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.resolver

from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.smtp.addresses import reject_ambiguous_ipv6

log = logging.getLogger("adminkb.dnscheck.resolver")

DNS_PORT = 53
# The file dnspython reads this machine's DNS servers from on Linux and other POSIX systems.
# Windows keeps them in the registry instead.
RESOLV_CONF = "/etc/resolv.conf"
# Seconds a whole check (every lookup it makes) may take unless the caller sets another budget.
DEFAULT_TIMEOUT = 5.0

# Lookup outcomes. NXDOMAIN and NODATA are answers from the server; the others mean that no
# usable answer came back. UNREACHABLE means that no server could be reached at all: the
# network reported an error (no route, connection refused) before any reply, so the problem is
# on this side, not at the domain that was looked up.
ANSWER = "answer"
NXDOMAIN = "nxdomain"
NODATA = "nodata"
SERVFAIL = "servfail"
REFUSED = "refused"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
FAILED_STATUSES = (SERVFAIL, REFUSED, TIMEOUT, UNREACHABLE)
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


def system_configuration_source() -> str:
    """Return where this machine's DNS servers are configured, for messages: a file or the registry."""
    if sys.platform == "win32":
        return message("dnscheck.nameserver.windows_registry")
    return RESOLV_CONF


def read_system_configuration() -> dns.resolver.Resolver:
    """Return a dnspython resolver configured from this machine's DNS settings.

    Raises dns.resolver.NoResolverConfiguration when the settings cannot be read or name no
    server.
    """
    # NOTE: on Windows dnspython reads the registry and ignores RESOLV_CONF. Only the Linux path
    # runs in this project's tests.
    return dns.resolver.Resolver(filename=RESOLV_CONF, configure=True)


def system_nameservers() -> list[tuple[str, int]]:
    """Return the DNS servers this machine is configured to use, as (address, port) pairs.

    Servers that dnspython cannot query over plain DNS (DNS-over-HTTPS URLs) are left out.
    Raises InputError, before any query, when no usable server is configured.
    """
    source = system_configuration_source()
    try:
        configured = read_system_configuration()
    except (dns.resolver.NoResolverConfiguration, OSError) as error:
        log.info("no DNS server configured in %s: %s", source, error)
        raise InputError("dnscheck.nameserver.none_configured", value=source,
                         next_key="dnscheck.nameserver.none_configured_next") from error
    servers = []
    for entry in configured.nameservers:
        if isinstance(entry, dns.nameserver.Do53Nameserver):
            servers.append((str(entry.address), int(entry.port)))
        elif isinstance(entry, str) and _is_ip_address(entry):
            servers.append((entry, configured.nameserver_ports.get(entry, configured.port)))
        else:
            log.info("skipping the configured DNS server %s: not a plain DNS server address", entry)
    if not servers:
        raise InputError("dnscheck.nameserver.none_configured", value=source,
                         next_key="dnscheck.nameserver.none_configured_next")
    return servers


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def nameservers_for(nameserver: str | Sequence[tuple[str, int]] | None,
                    port: int | None = None) -> list[tuple[str, int]]:
    """Return the servers to query as (address, port) pairs.

    `nameserver` is `HOST[:PORT]` (a `port` argument overrides the port in it), a list of
    (address, port) pairs, or None for the servers of this machine's DNS configuration.
    """
    if nameserver is None:
        return system_nameservers()
    if isinstance(nameserver, str):
        address, parsed_port = parse_nameserver(nameserver)
        return [(address, parsed_port if port is None else port)]
    servers = [(str(address), int(server_port)) for address, server_port in nameserver]
    if not servers:
        raise ValueError("nameserver must name at least one server")
    return servers


def format_nameserver(address: str, port: int) -> str:
    """Return `ADDRESS:PORT`, with an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class ConnectedDo53Nameserver(dns.nameserver.Do53Nameserver):
    """A plain DNS server asked over a connected UDP socket.

    dnspython sends UDP queries from an unconnected socket, on which the system does not
    report an ICMP "port unreachable" reply, so a server address with nothing listening looks
    like a silent server and the lookup waits for its whole timeout. A connected socket gets
    that reply as ConnectionRefusedError (ConnectionResetError on Windows), and the lookup ends
    at once with the network error. TCP queries (after a truncated UDP answer) are dnspython's own.

    NOTE: only the Linux behaviour runs in this project's tests. The Windows error named above
    has not been checked on Windows.
    """

    def query(self, request: dns.message.QueryMessage, timeout: float, source: str | None, source_port: int,
              max_size: bool, one_rr_per_rrset: bool = False, ignore_trailing: bool = False) -> dns.message.Message:
        if max_size:
            return super().query(request, timeout, source, source_port, max_size, one_rr_per_rrset, ignore_trailing)
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            if source:
                sock.bind((source, source_port))
            # connect() on a UDP socket sends nothing. It sets the peer, and it fails at once when
            # no route leads there.
            sock.connect((self.address, self.port))
            return dns.query.udp(request, self.address, timeout=timeout, port=self.port, sock=sock,
                                 raise_on_truncation=True, one_rr_per_rrset=one_rr_per_rrset,
                                 ignore_trailing=ignore_trailing, ignore_errors=True, ignore_unexpected=True)


def make_resolver(nameserver: str | Sequence[tuple[str, int]] | None, port: int | None = None, *,
                  timeout: float = DEFAULT_TIMEOUT) -> dns.resolver.Resolver:
    """Create a resolver that queries only the given servers, with no cache and no search list.

    `nameserver` is `HOST[:PORT]`, a list of (address, port) pairs, or None for this machine's
    configured servers (see nameservers_for()). `timeout` is the default lifetime of one
    resolve() call, in seconds.
    """
    servers = nameservers_for(nameserver, port)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [ConnectedDo53Nameserver(address, server_port) for address, server_port in servers]
    resolver.port = servers[0][1]
    resolver.lifetime = checked_timeout(timeout)
    # Each server gets an equal share of the time for one try, so a silent first server leaves
    # time to ask the next one.
    resolver.timeout = resolver.lifetime / len(servers)
    resolver.cache = None
    resolver.use_search_by_default = False
    return resolver


@dataclass(frozen=True)
class ServerFailure:
    """A DNS server that could not be reached: `ADDRESS:PORT`, "UDP" or "TCP", and the network error."""

    server: str
    transport: str
    error: OSError

    def reason(self, language: str | None = None) -> str:
        """Return the network error in the user's language."""
        # On Windows a UDP socket reports an ICMP "port unreachable" reply as a connection reset.
        refused = isinstance(self.error, ConnectionRefusedError) or (
            self.transport == "UDP" and isinstance(self.error, ConnectionResetError))
        if refused:
            return message("errors.os.connection_refused", language)
        return os_error_text(self.error, language)


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
    # For UNREACHABLE, each server asked and the network error that ended the query to it.
    unreachable: tuple[ServerFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == ANSWER

    @property
    def failed(self) -> bool:
        """Whether no usable answer came back (SERVFAIL, REFUSED, timeout, or no server reachable)."""
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
    """Lookups against the chosen nameservers that together take at most `timeout` seconds.

    Each lookup gets the time left in the budget as its lifetime, so a silent server ends a
    whole check in about `timeout` seconds. dnspython 2.9 overshoots a lifetime by roughly
    0.1-0.4 s, measured on loopback. Once the budget is spent, lookups return TIMEOUT without a
    query.
    """

    def __init__(self, nameserver: str | Sequence[tuple[str, int]] | None, port: int | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = checked_timeout(timeout)
        # (address, port) of each server asked, in order; see nameservers_for() for `nameserver`.
        self.nameservers = nameservers_for(nameserver, port)
        self.nameserver, self.port = self.nameservers[0]
        self.resolver = make_resolver(self.nameservers, timeout=self.timeout)
        self.query_count = 0
        self.deadline = time.monotonic() + self.timeout

    def describe_nameservers(self) -> str:
        """Return the servers asked as `ADDRESS:PORT` text, separated by commas."""
        return ", ".join(format_nameserver(address, port) for address, port in self.nameservers)

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
            failures = self._network_failures(error)
            status = UNREACHABLE if failures else _failure_status(error)
            log.info("lookup of %s %s at %s failed: %s", text, rdtype, self.describe_nameservers(), status)
            return Lookup(text, rdtype, status, detail=str(error), unreachable=failures)
        except dns.exception.Timeout as error:
            log.info("lookup of %s %s at %s timed out", text, rdtype, self.describe_nameservers())
            return Lookup(text, rdtype, TIMEOUT, detail=str(error))
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong) as error:
            # An invalid name is never sent, so the server did not say NXDOMAIN, but no such name can exist.
            return Lookup(text, rdtype, NXDOMAIN, detail=str(error))
        except dns.exception.DNSException as error:
            log.warning("lookup of %s %s at %s failed: %s", text, rdtype, self.describe_nameservers(), error)
            return Lookup(text, rdtype, SERVFAIL, detail=str(error))
        canonical = answer.canonical_name.to_text()
        # A record set has no order, and servers (dnspython's among them) shuffle it in every
        # answer, so the records are sorted to make results and runbook outputs repeatable.
        records = sorted(answer.rrset or (), key=_record_order)
        return Lookup(text, rdtype, ANSWER, records, canonical_name=canonical)


    def _network_failures(self, error: dns.resolver.NoNameservers) -> tuple[ServerFailure, ...]:
        """Return each server's network error when every server failed with one, else ().

        dnspython lists one entry per attempt. A server's last attempt decides: a truncated UDP
        answer followed by a refused TCP connection means that the server could not be used.
        """
        last_attempts: dict[str, tuple] = {}
        for entry in error.kwargs.get("errors", ()):
            last_attempts[entry[0]] = entry
        failures = []
        for server_text, tcp, _port, exception, _response in last_attempts.values():
            if not isinstance(exception, OSError):
                return ()
            failures.append(ServerFailure(self._server_address(server_text), "TCP" if tcp else "UDP", exception))
        return tuple(failures)

    def _server_address(self, server_text: str) -> str:
        """Return `ADDRESS:PORT` for dnspython's name of a server (`Do53:ADDRESS@PORT`)."""
        for address, port in self.nameservers:
            if server_text == str(ConnectedDo53Nameserver(address, port)):
                return format_nameserver(address, port)
        return server_text


def _record_order(rdata: dns.rdata.Rdata) -> tuple[int, str]:
    """Return the sort key of a record: MX preference first, then the record's text."""
    return getattr(rdata, "preference", 0), rdata.to_text()


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
