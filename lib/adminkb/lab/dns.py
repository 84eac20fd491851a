"""`LabDns`: a small authoritative DNS server for the mail lab, on loopback, built on dnspython.

It serves zones given as zone-file text (one zone per origin) over UDP and TCP on an ephemeral
port and answers as an authoritative server does: the records asked for, NODATA (NOERROR with
the zone's SOA and no answer) when the name exists without that type, NXDOMAIN when the name
does not exist, and REFUSED for names outside its zones. Switches make it misbehave on purpose:
SERVFAIL for chosen names, and silence (the query is read and never answered) for chosen names
or for every query, as a dead or firewalled server appears to a client.

    with LabDns.from_files(lab_zone_files()) as server:
        resolver = make_resolver(server.address, server.port)

It runs its event loop in a thread of its own, so a notebook can use it between cells.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

from adminkb.errors import InputError, LabError
from adminkb.lab.loop_thread import LoopThread

log = logging.getLogger("adminkb.lab.dns")

DEFAULT_ADDRESS = "127.0.0.1"
# Seconds that start() waits for the server's thread to bind its sockets.
START_TIMEOUT = 5.0
# The largest UDP response to a query without EDNS (RFC 1035 section 4.2.1).
CLASSIC_UDP_SIZE = 512
# CNAME chains longer than this are cut, so a loop in a zone cannot loop the server.
MAX_CNAME_CHAIN = 8
# Ephemeral ports tried before start() gives up, when the UDP port is taken on TCP.
BIND_ATTEMPTS = 10
# Seconds a TCP client may stay idle before the server closes the connection.
TCP_IDLE_TIMEOUT = 10.0

DATA_FOLDER = Path(__file__).resolve().parents[3] / "data"


def lab_zone_files(folder: Path = DATA_FOLDER) -> list[Path]:
    """Return the lab's zone files (`data/lab*.zone`), sorted by name."""
    return sorted(folder.glob("lab*.zone"))


def _absolute(name: str | dns.name.Name) -> dns.name.Name:
    if isinstance(name, dns.name.Name):
        return name if name.is_absolute() else name.concatenate(dns.name.root)
    return dns.name.from_text(name)


class LabDns:
    """An authoritative DNS server for lab zones, listening on a loopback address.

    `zones` are zone-file texts; each must contain a `$ORIGIN` line unless it is the only zone
    and `origin` is given. `servfail` and `silent` are names that get SERVFAIL or no answer at
    all; `silent_all` silences every query. All three may be changed while the server runs.
    """

    def __init__(self, zones: Iterable[str] = (), *, address: str = DEFAULT_ADDRESS, port: int = 0,
                 servfail: Iterable[str] = (), silent: Iterable[str] = (), silent_all: bool = False) -> None:
        self._address = _checked_loopback(address)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise InputError("dnscheck.lab.invalid_port", value=port)
        self._requested_port = port
        self._zones: dict[dns.name.Name, dns.zone.Zone] = {}
        self._names: dict[dns.name.Name, set[dns.name.Name]] = {}
        for text in zones:
            self.add_zone(text)
        self.servfail_names: set[dns.name.Name] = {_absolute(name) for name in servfail}
        self.silent_names: set[dns.name.Name] = {_absolute(name) for name in silent}
        self.silent_all = bool(silent_all)
        self.query_count = 0
        self._lock = threading.Lock()
        self._loop_thread = LoopThread("adminkb-lab-dns")
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.base_events.Server | None = None
        self._port: int | None = None

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], **options: object) -> LabDns:
        """Create a server for the zone files at `paths`; each file needs a `$ORIGIN` line."""
        texts = []
        for path in paths:
            try:
                texts.append(Path(path).read_text(encoding="utf-8"))
            except OSError as error:
                raise InputError("dnscheck.lab.zone_unreadable", value=str(path), reason=error.strerror or error,
                                 next_key="dnscheck.lab.zone_unreadable_next") from error
        return cls(texts, **options)

    # Zones

    def add_zone(self, text: str, origin: str | None = None) -> dns.name.Name:
        """Parse one zone from zone-file text and serve it; return its origin."""
        try:
            zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=True)
        except (dns.exception.DNSException, ValueError) as error:
            first_line = text.strip().splitlines()[0] if text.strip() else ""
            raise InputError("dnscheck.lab.zone_invalid", value=first_line, reason=error,
                             next_key="dnscheck.lab.zone_invalid_next") from error
        # dnspython drops records outside the origin without a word, so look for them first.
        outside = _names_outside(text, zone.origin)
        if outside:
            raise InputError("dnscheck.lab.zone_outside_origin", value=zone.origin.to_text(),
                             names=", ".join(outside), next_key="dnscheck.lab.zone_invalid_next")
        if zone.origin in self._zones:
            raise InputError("dnscheck.lab.zone_twice", value=zone.origin.to_text())
        names: set[dns.name.Name] = set()
        for name in zone.nodes:
            # Every ancestor up to the origin exists too (an empty non-terminal gets NODATA).
            while name != zone.origin and name.is_subdomain(zone.origin):
                names.add(name)
                name = name.parent()
        names.add(zone.origin)
        self._zones[zone.origin] = zone
        self._names[zone.origin] = names
        return zone.origin

    @property
    def origins(self) -> list[str]:
        """The origins of the zones served, as text."""
        return sorted(origin.to_text() for origin in self._zones)

    # Life cycle

    @property
    def address(self) -> str:
        """The loopback address the server listens on."""
        return self._address

    @property
    def port(self) -> int:
        """The bound port (UDP and TCP) while the server runs."""
        if self._port is None:
            raise LabError("dnscheck.lab.not_running")
        return self._port

    @property
    def nameserver(self) -> str:
        """The server as `HOST:PORT` text, as `adminkb dns check --nameserver` takes it."""
        host = f"[{self._address}]" if ":" in self._address else self._address
        return f"{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._loop_thread.alive

    def start(self) -> LabDns:
        """Bind the UDP and TCP sockets, start answering and return the server."""
        if self.running:
            return self
        try:
            self._loop_thread.start(self._open, START_TIMEOUT)
        except TimeoutError:
            self.stop()
            raise LabError("dnscheck.lab.start_timeout", value=START_TIMEOUT) from None
        except OSError as error:
            raise LabError("dnscheck.lab.bind_failed", value=f"{self._address}:{self._requested_port}",
                           reason=error) from error
        log.info("lab DNS server listening on %s port %s with zones %s", self._address, self._port, self.origins)
        return self

    def stop(self) -> None:
        """Close both sockets and end the server's thread."""
        if self._loop_thread.loop is None:
            return
        self._loop_thread.stop(self._close, START_TIMEOUT)
        log.info("lab DNS server on %s port %s stopped after %d queries", self._address, self._port,
                 self.query_count)
        self._port = None

    def __enter__(self) -> LabDns:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _open(self) -> None:
        # An ephemeral UDP port may be taken on TCP by another program, so try a few ports.
        attempts = BIND_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            try:
                await self._bind()
                return
            except OSError as error:
                if attempt == attempts:
                    raise
                log.info("lab DNS server retries binding after: %s", error)

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self._address else socket.AF_INET
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self),
                                                           local_addr=(self._address, self._requested_port),
                                                           family=family)
        port = transport.get_extra_info("sockname")[1]
        try:
            self._tcp_server = await asyncio.start_server(self._serve_tcp, self._address, port)
        except OSError:
            transport.close()
            raise
        self._transport = transport
        self._port = port

    async def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._tcp_server is not None:
            self._tcp_server.close()
            await self._tcp_server.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                prefix = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                (length,) = struct.unpack("!H", prefix)
                wire = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                reply = self.respond(wire, max_size=65535)
                if reply is not None:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    # Answers

    def respond(self, wire: bytes, max_size: int | None = None) -> bytes | None:
        """Return the wire-format response to the query `wire`, or None to stay silent.

        `max_size` is the largest response the transport allows; a UDP response that does not
        fit goes out empty with the TC flag set, so the client retries over TCP.
        """
        with self._lock:
            self.query_count += 1
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException as error:
            log.warning("lab DNS server dropped a query it could not parse: %s", error)
            return None
        if not query.question:
            return self._error(query, dns.rcode.FORMERR)
        question = query.question[0]
        if self.silent_all or question.name in self.silent_names:
            log.debug("lab DNS server stays silent for %s", question.name)
            return None
        if question.name in self.servfail_names:
            return self._error(query, dns.rcode.SERVFAIL)
        if query.opcode() != dns.opcode.QUERY:
            return self._error(query, dns.rcode.NOTIMP)
        response = self.build_response(query)
        if max_size is None:
            max_size = max(query.payload, CLASSIC_UDP_SIZE) if query.edns >= 0 else CLASSIC_UDP_SIZE
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC | dns.flags.AA
            return truncated.to_wire()

    def _error(self, query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        return response.to_wire()

    def build_response(self, query: dns.message.Message) -> dns.message.Message:
        """Build the authoritative response to `query` from the zones."""
        response = dns.message.make_response(query)
        question = query.question[0]
        origin = self._zone_origin(question.name)
        if origin is None or question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        name, rdtype = question.name, question.rdtype
        for _ in range(MAX_CNAME_CHAIN):
            zone = self._zones[origin]
            node = self._find_node(origin, name)
            if node is None:
                if name == question.name:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(response, zone)
                return response
            if rdtype == dns.rdatatype.ANY:
                for rdataset in node.rdatasets:
                    response.find_rrset(response.answer, name, rdataset.rdclass, rdataset.rdtype,
                                        create=True).update(rdataset)
                return response
            rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if rdataset is not None:
                response.find_rrset(response.answer, name, dns.rdataclass.IN, rdtype, create=True).update(rdataset)
                return response
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                self._add_soa(response, zone)
                return response
            response.find_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME,
                                create=True).update(cname)
            name = cname[0].target
            origin = self._zone_origin(name)
            if origin is None:
                # The target is outside these zones: the client resolves it itself.
                return response
        log.warning("lab DNS server cut a CNAME chain longer than %d at %s", MAX_CNAME_CHAIN, name)
        response.set_rcode(dns.rcode.SERVFAIL)
        return response

    def _zone_origin(self, name: dns.name.Name) -> dns.name.Name | None:
        best = None
        for origin in self._zones:
            if name.is_subdomain(origin) and (best is None or len(origin) > len(best)):
                best = origin
        return best

    def _find_node(self, origin: dns.name.Name, name: dns.name.Name):
        """Return the node for `name`, an empty node for an empty non-terminal, or a wildcard match."""
        zone = self._zones[origin]
        node = zone.get_node(name)
        if node is not None:
            return node
        if name in self._names[origin]:
            return dns.node.Node()
        # RFC 4592: a wildcard applies only below the closest encloser that exists.
        encloser = name.parent()
        while encloser not in self._names[origin]:
            encloser = encloser.parent()
        return zone.get_node(dns.name.Name((b"*",)).concatenate(encloser))

    @staticmethod
    def _add_soa(response: dns.message.Message, zone: dns.zone.Zone) -> None:
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        if soa is not None:
            response.find_rrset(response.authority, zone.origin, dns.rdataclass.IN, dns.rdatatype.SOA,
                                create=True).update(soa)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: LabDns) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        reply = self._server.respond(data)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)


def _names_outside(text: str, origin: dns.name.Name) -> list[str]:
    """Return the `$ORIGIN` values and absolute owner names in `text` that lie outside `origin`."""
    outside = set()
    for line in text.splitlines():
        line = line.split(";", 1)[0]
        if not line or line[0].isspace():
            continue
        first, *rest = line.split()
        if first.upper() == "$ORIGIN" and rest:
            first = rest[0]
        elif first.startswith("$") or not first.endswith("."):
            continue
        try:
            name = dns.name.from_text(first)
        except dns.exception.DNSException:
            continue
        if not name.is_subdomain(origin):
            outside.add(name.to_text())
    return sorted(outside)


def _checked_loopback(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError as error:
        raise InputError("dnscheck.lab.invalid_address", value=address,
                         next_key="dnscheck.lab.loopback_only_next") from error
    if not parsed.is_loopback:
        raise LabError("dnscheck.lab.not_loopback", value=address, next_key="dnscheck.lab.loopback_only_next")
    return str(parsed)

