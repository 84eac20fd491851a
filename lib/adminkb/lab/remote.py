"""Remote mail servers for the lab's outbound delivery: small SMTP receivers on loopback.

Each receiver stands for the mail server of a domain in the lab zones (`data/lab-*.zone`) and
behaves like a kind of real receiver:

- `accept` stores every message it receives (`RemoteLab.received()` returns them), except for
  recipients whose local part is `nosuchuser`, which get `550 5.1.1`;
- `fcrdns` rejects clients whose address has no forward-confirmed reverse DNS, checked through
  the lab DNS (`550 5.7.1` at RCPT TO, with the reason);
- `greylist` replies `451 4.7.1` to the first attempt of each (client address, sender,
  recipient) and accepts a retry that comes at least `greylist_delay` later on the lab clock;
- `esmtp_only` stands for a large mail provider that talks only to ESMTP clients: it answers
  HELO with `421 4.7.0` and closes the connection, so a client that does not send EHLO never
  delivers;
- `smarthost` is the company's mail gateway: it accepts everything, offers STARTTLS and AUTH
  LOGIN, and can require authentication.

An address in `UNREACHABLE` has no receiver at all, as when a firewall blocks port 25 on the way.

Ports: an unprivileged process cannot listen on port 25 everywhere, so the lab maps "port 25 of
host X" to one ephemeral port that every receiver shares, each on its own loopback address.
`RemoteLab.port_for(address, 25)` returns that port. Nothing listens on it at an unreachable
address, so a connection there is refused.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import logging
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from adminkb.dnscheck.ptr import check_fcrdns
from adminkb.dnscheck.resolver import FAILED_STATUSES, DnsClient
from adminkb.dnscheck.result import OK
from adminkb.errors import InputError, LabError
from adminkb.lab.clock import Clock
from adminkb.lab.loop_thread import LoopThread
from adminkb.lab.service import find_message_id
from adminkb.lab.tls import LabCertificate, server_context, write_certificate

log = logging.getLogger("adminkb.lab.remote")

SMTP_PORT = 25

ACCEPT = "accept"
FCRDNS = "fcrdns"
GREYLIST = "greylist"
ESMTP_ONLY = "esmtp_only"
SMART_HOST = "smarthost"
KINDS = (ACCEPT, FCRDNS, GREYLIST, ESMTP_ONLY, SMART_HOST)


@dataclass(frozen=True)
class ReceiverSpec:
    """One remote receiver: the address it listens on, its host name and its behaviour."""

    address: str
    hostname: str
    kind: str


# The receivers of the lab zones, by the A record of their MX host.
RECEIVERS = (
    ReceiverSpec("127.0.0.23", "mx.example.net", ACCEPT),
    ReceiverSpec("127.0.0.24", "implicit.lab.test", ACCEPT),
    ReceiverSpec("127.0.0.34", "mx.strict.lab.test", FCRDNS),
    ReceiverSpec("127.0.0.35", "mx.grey.lab.test", GREYLIST),
    ReceiverSpec("127.0.0.37", "mx.bigmail.lab.test", ESMTP_ONLY),
    ReceiverSpec("127.0.0.40", "smarthost.lab.test", SMART_HOST),
)
# MX addresses in the lab zones where nothing listens (mx.blocked.lab.test).
UNREACHABLE = ("127.0.0.36",)

SMART_HOST_ADDRESS = "127.0.0.40"
SMART_HOST_NAME = "smarthost.lab.test"
# The account the lab's smart host accepts for AUTH LOGIN. A lab-only secret, never a real one.
SMART_HOST_USER = "relay-lab"
SMART_HOST_PASSWORD = "lab-only-relay-password"

# A local part that the accepting receivers do not know, for permanent failures (550 5.1.1).
UNKNOWN_LOCAL_PART = "nosuchuser"

DEFAULT_GREYLIST_DELAY = timedelta(minutes=5)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
BIND_ATTEMPTS = 10
# Seconds a receiver waits for the next command before it closes the connection.
SESSION_TIMEOUT = 30.0
# Seconds the reverse DNS check of a client may take in total.
DNS_TIMEOUT = 2.0


@dataclass(frozen=True)
class ReceivedMessage:
    """A message a remote receiver accepted, with the session facts it was sent with."""

    receiver: str
    address: str
    client_ip: str
    helo: str
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    message_id: str | None
    tls: bool
    user: str | None


class RemoteLab:
    """The remote receivers of the lab, on one shared port, in a thread with its own event loop.

    `dns_server` is `HOST:PORT` of the lab DNS, which the `fcrdns` receiver queries. `clock` is
    the lab clock that greylisting measures retries with. `folder` receives the smart host's
    self-signed certificate.
    """

    def __init__(self, *, dns_server: str, clock: Clock, folder: Path,
                 receivers: tuple[ReceiverSpec, ...] = RECEIVERS,
                 greylist_delay: timedelta = DEFAULT_GREYLIST_DELAY) -> None:
        for spec in receivers:
            if spec.kind not in KINDS:
                raise InputError("lab.remote.unknown_kind", value=spec.kind, kinds=", ".join(KINDS))
        self.dns_server = dns_server
        self.clock = clock
        self.folder = Path(folder)
        self.receivers = {spec.address: spec for spec in receivers}
        self.greylist_delay = greylist_delay
        # Lab seconds per real second when the lab runs on the real clock and a delivery runner
        # compresses the retry schedule, so that greylisting waits in the same compressed time.
        self.time_compression = 1.0
        # Smart host settings, read by each new connection.
        self.smart_host_requires_auth = False
        self.smart_host_accounts: dict[str, str] = {SMART_HOST_USER: SMART_HOST_PASSWORD}
        self._certificate: LabCertificate | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._received: list[ReceivedMessage] = []
        self._greylist: dict[tuple[str, str, str], datetime] = {}
        # Port 25 of these addresses maps to the given port instead of the shared one.
        self._port_table: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop_thread = LoopThread("adminkb-lab-remote")
        self._servers: list[asyncio.base_events.Server] = []
        self._port: int | None = None

    # Life cycle

    @property
    def running(self) -> bool:
        return self._loop_thread.alive and self._port is not None

    @property
    def port(self) -> int:
        """The port that stands for port 25 on every receiver's address."""
        if self._port is None:
            raise LabError("lab.remote.not_running", next_key="lab.not_started_next")
        return self._port

    def port_for(self, address: str, port: int = SMTP_PORT) -> int:
        """Return the port to connect to for `port` on `address`.

        Port 25 maps to the port of an entry added with `map_port25()`, else to the shared port
        of the lab's receivers. Other ports stay as they are.
        """
        if port != SMTP_PORT:
            return port
        with self._lock:
            mapped = self._port_table.get(address)
        return mapped if mapped is not None else self.port

    def map_port25(self, address: str, port: int) -> None:
        """Add a port table entry: port 25 of the loopback `address` is `port` (another server, such as Postfix)."""
        if not _is_loopback(address):
            raise LabError("lab.remote.not_loopback", value=address, next_key="lab.remote.not_loopback_next")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InputError("lab.invalid_port", value=port, next_key="lab.invalid_port_next")
        with self._lock:
            self._port_table[address] = port
        log.info("port 25 of %s maps to port %d", address, port)

    @property
    def certificate_file(self) -> Path:
        """The smart host's self-signed certificate (PEM), for a client to trust explicitly."""
        if self._certificate is None:
            raise LabError("lab.remote.not_running", next_key="lab.not_started_next")
        return self._certificate.certificate_file

    def start(self) -> RemoteLab:
        """Bind every receiver to the shared port and start serving."""
        if self.running:
            return self
        self._certificate = write_certificate(self.folder, [SMART_HOST_NAME, SMART_HOST_ADDRESS])
        self._tls_context = server_context(self._certificate)
        try:
            self._loop_thread.start(self._open, START_TIMEOUT)
        except TimeoutError:
            self.stop()
            raise LabError("lab.remote.start_timed_out", value=START_TIMEOUT,
                           next_key="lab.start_timed_out_next") from None
        except OSError as error:
            raise LabError("lab.remote.bind_failed", value=", ".join(self.receivers), detail=str(error),
                           next_key="lab.bind_failed_next") from error
        log.info("remote lab receivers listening on port %s for port 25 of %s", self._port,
                 ", ".join(f"{spec.hostname} ({spec.address}, {spec.kind})" for spec in self.receivers.values()))
        return self

    def stop(self) -> None:
        """Close every receiver and end the thread; stopping a stopped RemoteLab does nothing."""
        if self._loop_thread.loop is None:
            return
        try:
            self._loop_thread.stop(self._close, STOP_TIMEOUT)
        except Exception:
            log.exception("the remote lab receivers did not close cleanly")
        self._port = None
        log.info("remote lab receivers stopped after %d messages", len(self._received))

    async def _open(self) -> None:
        # The first receiver picks an ephemeral port and the others take the same number on
        # their own addresses. Another program may hold that number on one of them, so try again.
        for attempt in range(1, BIND_ATTEMPTS + 1):
            try:
                await self._bind_all()
                return
            except OSError as error:
                await self._close()
                if error.errno != errno.EADDRINUSE or attempt == BIND_ATTEMPTS:
                    raise
                log.info("remote lab receivers retry binding after: %s", error)

    async def _bind_all(self) -> None:
        loop = asyncio.get_running_loop()
        port = 0
        for spec in self.receivers.values():
            server = await loop.create_server(lambda spec=spec: self._new_session(spec), host=spec.address,
                                              port=port, family=socket.AF_INET)
            self._servers.append(server)
            port = server.sockets[0].getsockname()[1]
        self._port = port

    async def _close(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    def __enter__(self) -> RemoteLab:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Sessions

    def _new_session(self, spec: ReceiverSpec) -> SMTP:
        handler = _ReceiverHandler(self, spec)
        options: dict[str, object] = {}
        if spec.kind == SMART_HOST:
            assert self._tls_context is not None
            options = dict(tls_context=self._tls_context, authenticator=self._authenticate,
                           auth_required=self.smart_host_requires_auth, auth_require_tls=False,
                           auth_exclude_mechanism=["PLAIN"])
        with warnings.catch_warnings():
            # aiosmtpd warns when AUTH may run without TLS; the smart host allows it on purpose,
            # like a mail gateway that accepts Basic authentication from the internal network.
            warnings.simplefilter("ignore", UserWarning)
            # hostname= keeps aiosmtpd from calling socket.getfqdn(), which stalls without DNS.
            return SMTP(handler, hostname=spec.hostname, ident="ESMTP lab receiver", timeout=SESSION_TIMEOUT,
                        decode_data=False, loop=self._loop_thread.loop, **options)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: object) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        expected = self.smart_host_accounts.get(user)
        accepted = expected is not None and hmac.compare_digest(expected.encode("utf-8"), password.encode("utf-8"))
        log.info("smart host AUTH %s as %s from %s: %s", mechanism, user, session.peer[0],
                 "accepted" if accepted else "rejected")
        # handled=False lets aiosmtpd send the 235 or 535 reply itself.
        return AuthResult(success=accepted, handled=False, auth_data=user if accepted else None)

    # What arrived

    def received(self, receiver: str | None = None) -> list[ReceivedMessage]:
        """Return the messages accepted so far, oldest first; `receiver` filters by host name or address."""
        with self._lock:
            messages = list(self._received)
        if receiver is None:
            return messages
        return [item for item in messages if receiver in (item.receiver, item.address)]

    def _store(self, item: ReceivedMessage) -> None:
        with self._lock:
            self._received.append(item)
        log.info("%s accepted %s from %s for %s", item.receiver, item.message_id or "a message without Message-ID",
                 item.client_ip, ", ".join(item.recipients))

    def greylist_passes(self, client_ip: str, sender: str, recipient: str) -> bool:
        """Record a delivery attempt and return whether greylisting lets it through now."""
        key = (client_ip, sender.lower(), recipient.lower())
        now = self.clock.now()
        with self._lock:
            first_seen = self._greylist.setdefault(key, now)
        return (now - first_seen) * self.time_compression >= self.greylist_delay

    def fcrdns_verdict(self, client_ip: str) -> tuple[str, str]:
        """Check the client's reverse DNS through the lab DNS; return ("ok"|"temporary"|"rejected", detail)."""
        result = check_fcrdns(DnsClient(self.dns_server, timeout=DNS_TIMEOUT), client_ip)
        detail = "; ".join(result.records) or result.outcome
        if result.verdict == OK:
            return "ok", detail
        if result.outcome in FAILED_STATUSES:
            return "temporary", detail
        return "rejected", detail


class _ReceiverHandler:
    """aiosmtpd hooks that give one receiver its behaviour."""

    def __init__(self, remote: RemoteLab, spec: ReceiverSpec) -> None:
        self.remote = remote
        self.spec = spec

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        if self.spec.kind != ESMTP_ONLY:
            session.host_name = hostname
            return f"250 {server.hostname}"
        log.info("%s closes the connection from %s after HELO", self.spec.hostname, session.peer[0])
        # The reply is written before the close runs, and closing a transport sends what it buffered.
        asyncio.get_running_loop().call_soon(server.transport.close)
        return f"421 4.7.0 {self.spec.hostname} accepts only ESMTP clients: send EHLO, closing connection"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        client_ip = session.peer[0]
        kind = self.spec.kind
        if kind == FCRDNS:
            loop = asyncio.get_running_loop()
            verdict, detail = await loop.run_in_executor(None, self.remote.fcrdns_verdict, client_ip)
            if verdict == "temporary":
                return f"450 4.7.1 Client host [{client_ip}] rejected: reverse DNS lookup failed, try again later"
            if verdict == "rejected":
                return (f"550 5.7.1 Client host [{client_ip}] rejected: no forward-confirmed reverse DNS "
                        f"({_one_line(detail)})")
        if kind == GREYLIST and not self.remote.greylist_passes(client_ip, envelope.mail_from or "", address):
            seconds = int(self.remote.greylist_delay.total_seconds())
            return f"451 4.7.1 <{address}>: Recipient address rejected: Greylisted, try again in {seconds} seconds"
        if kind != SMART_HOST and address.partition("@")[0].lower() == UNKNOWN_LOCAL_PART:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message_id = find_message_id(content)
        # aiosmtpd keeps the null reverse-path of a bounce as "<>".
        sender = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        item = ReceivedMessage(
            receiver=self.spec.hostname, address=self.spec.address, client_ip=session.peer[0],
            helo=session.host_name or "", sender=sender, recipients=tuple(envelope.rcpt_tos),
            content=content, message_id=message_id.strip() if message_id else None,
            tls=session.ssl is not None, user=session.auth_data if session.authenticated else None)
        self.remote._store(item)
        return f"250 2.0.0 Ok: queued as {len(self.remote.received()):06X}"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())

