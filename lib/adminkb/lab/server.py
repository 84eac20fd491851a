"""`MailLab`: an IIS 6.0 SMTP Service stand-in on loopback, running in a thread of its own.

A runbook starts the lab in one cell and talks to it with any SMTP client in the next. It
changes relay restrictions or connection control the way an admin would in IIS Manager,
reads the mailroot and the W3C logs, and stops the lab later:

    lab = MailLab(clock=FixedClock(datetime(2026, 3, 2, 1, 15, 7, tzinfo=timezone.utc)))
    lab.start()
    lab.allow_relay("127.0.0.10")
    ...
    lab.stop()

or `with MailLab() as lab:`. The asyncio loop and the listening socket live in the lab's own
thread, so the lab keeps serving between cells while the kernel runs its own event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from pathlib import Path

from adminkb import mailroot
from adminkb.errors import InputError, LabError
from adminkb.lab.clock import TAIWAN_TIME, Clock, resolve_clock
from adminkb.lab.delivery import OUTBOUND_ADDRESS
from adminkb.lab.loop_thread import cancel_pending
from adminkb.lab.outbound import OutboundControls
from adminkb.lab.pickup import DEFAULT_POLL_INTERVAL, PickupProcessor, PickupResult, PickupWatcher
from adminkb.lab.policy import DENY, GRANT, AccessList, parse_address
from adminkb.lab.service import VirtualServer
from adminkb.lab.session import IisSmtpSession
from adminkb.lab.tls import LabCertificate, checked_tls_version, server_context, write_certificate
from adminkb.lab.w3clog import DEFAULT_ENCODING, FULL_FIELDS, W3CLogWriter, validate_encoding, validate_fields

log = logging.getLogger("adminkb.lab")

# The loopback addresses the runbooks use: the lab listens on the first, a trusted application
# connects from the second and a stranger from the third, so that relay restrictions and
# connection control act on real source addresses. Linux and Windows route all of 127.0.0.0/8
# to loopback; macOS has only 127.0.0.1 unless aliases are added.
LAB_ADDRESS = "127.0.0.1"
TRUSTED_CLIENT_ADDRESS = "127.0.0.10"
STRANGER_ADDRESS = "127.0.0.66"

# Windows Server 2003 SP2 with later updates, as public banners and Received headers show it.
DEFAULT_VERSION = "6.0.3790.4675"
DEFAULT_HOSTNAME = "mail01.example.com"
DEFAULT_COMPUTER_NAME = "MAIL01"
DEFAULT_SITE_NAME = "SMTPSVC1"
# "Limit message size to" defaults to 2048 KB in the virtual server's Messages tab.
DEFAULT_MAX_MESSAGE_SIZE = 2_097_152
# The virtual server's connection time-out defaults to 10 minutes.
DEFAULT_CONNECTION_TIMEOUT = 600.0

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

ConnectionControl = AccessList | Mapping[str, Iterable[str]] | None


def can_bind_source_address(address: str = TRUSTED_CLIENT_ADDRESS) -> bool:
    """Return whether a client socket can use `address` as its source on this machine.

    Linux can bind any address in 127.0.0.0/8; macOS has only 127.0.0.1 unless an alias is
    configured. Callers fall back to 127.0.0.1 when this returns False, and tell the reader.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


class MailLab(OutboundControls):
    """An in-process SMTP server that behaves like the IIS 6.0 SMTP Service (SMTPSVC).

    See the module documentation for use. Settings are keyword arguments with the service's
    defaults. An empty `relay_grant` denies relay to everyone, like the service's default
    "Only the list below" with an empty list.

    Security settings, all off unless given: `tls` binds a self-signed certificate made at
    start (`certificate_file`), so STARTTLS is offered. `basic_auth` offers AUTH LOGIN against
    `accounts` (user name to password), accepted only under TLS unless `auth_requires_tls` is
    False. `relay_for_authenticated` is "Allow all computers which successfully authenticate
    to relay" (on, as in the service). `tls_minimum_version`, `tls_ciphers`,
    `certificate_names`, `certificate_not_after`, `vrfy_reveals_users` and `connect_response`
    (a banner without product and version) set up the weak or hardened servers that the
    security runbook audits.

    Outbound delivery (`deliver_queue()`, `advance()`, `set_smart_host()`...) sends from
    `outbound_address`; see `adminkb.lab.outbound`.
    """

    def __init__(self, *, root: str | os.PathLike[str] | None = None, hostname: str = DEFAULT_HOSTNAME,
                 computer_name: str = DEFAULT_COMPUTER_NAME, site_name: str = DEFAULT_SITE_NAME,
                 listen: str = LAB_ADDRESS, port: int = 0, local_domains: Iterable[str] = ("example.com",),
                 relay_grant: Iterable[str] = (), relay_open: bool = False,
                 connection_control: ConnectionControl = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, clock: Clock | datetime | None = None,
                 timezone: tzinfo = TAIWAN_TIME, allow_non_loopback: bool = False,
                 version: str = DEFAULT_VERSION, log_fields: Sequence[str] | str = FULL_FIELDS,
                 log_encoding: str = DEFAULT_ENCODING,
                 connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT,
                 pickup_interval: float | None = DEFAULT_POLL_INTERVAL, tls: bool = False,
                 tls_minimum_version: str | None = None, tls_ciphers: str | None = None,
                 certificate_names: Sequence[str] | None = None, certificate_not_after: datetime | None = None,
                 basic_auth: bool = False, accounts: Mapping[str, str] | None = None,
                 auth_requires_tls: bool = True, relay_for_authenticated: bool = True,
                 vrfy_reveals_users: bool = False, connect_response: str | None = None,
                 outbound_address: str | None = OUTBOUND_ADDRESS) -> None:
        self._listen = parse_address(listen)
        self._requested_port = _checked_port(port)
        self._allow_non_loopback = bool(allow_non_loopback)
        self._given_root = _checked_root(root)
        self._settings = dict(hostname=_checked_name(hostname, "hostname"),
                              computer_name=_checked_name(computer_name, "computer_name").upper(),
                              site_name=_checked_name(site_name, "site_name"), version=str(version),
                              zone=timezone)
        self._local_domains = _checked_domains(local_domains)
        relay_grant = [relay_grant] if isinstance(relay_grant, str) else list(relay_grant)
        if relay_open and relay_grant:
            raise InputError("lab.relay_open_with_grant", next_key="lab.relay_open_with_grant_next")
        self._relay = AccessList.of(DENY, ()) if relay_open else AccessList.of(GRANT, relay_grant)
        self._connection = _access_list_from(connection_control)
        self._max_message_size = _checked_size(max_message_size)
        self._clock = resolve_clock(clock)
        self._log_fields = validate_fields(log_fields)
        self._log_encoding = validate_encoding(log_encoding)
        self._connection_timeout = float(connection_timeout)
        self._pickup_interval = _checked_interval(pickup_interval)
        self._check_exposure(self._relay)
        self._tls = bool(tls)
        self._tls_minimum_version = checked_tls_version(tls_minimum_version)
        self._tls_ciphers = tls_ciphers
        self._certificate_names = _checked_certificate_names(certificate_names)
        self._certificate_not_after = certificate_not_after
        self._certificate: LabCertificate | None = None
        self._basic_auth = bool(basic_auth)
        self._accounts = _checked_accounts(accounts)
        self._auth_requires_tls = bool(auth_requires_tls)
        self._relay_for_authenticated = bool(relay_for_authenticated)
        self._vrfy_reveals_users = bool(vrfy_reveals_users)
        self._connect_response = _checked_connect_response(connect_response)

        self._lock = threading.RLock()
        self._root: Path | None = None
        self._created_root = False
        # Undo steps that a caller registered for stop(), such as lifting a staged fault that
        # would keep the temporary root from being removed (see add_stop_callback).
        self._stop_callbacks: list[Callable[[], None]] = []
        self._service: VirtualServer | None = None
        self._log_writer: W3CLogWriter | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._port: int | None = None
        self._thread_error: BaseException | None = None
        self._pickup: PickupProcessor | None = None
        self._pickup_watcher: PickupWatcher | None = None
        self._init_outbound(outbound_address)

    # Life cycle

    def start(self) -> MailLab:
        """Create the mailroot and log folder, start listening and return the lab.

        Raises LabError when the address cannot be bound (in use, not on this machine) or when
        the lab's thread does not come up within START_TIMEOUT seconds.
        """
        with self._lock:
            if self.running:
                raise LabError("lab.already_running", value=self.address, next_key="lab.already_running_next")
            began = time.perf_counter()
            self._prepare_root()
            self._thread_error = None
            ready = threading.Event()
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run_loop, args=(ready,), name="adminkb-mail-lab",
                                            daemon=True)
            self._thread.start()
            if not ready.wait(START_TIMEOUT):
                self._abandon_loop()
                self._remove_created_root()
                raise LabError("lab.start_timed_out", value=START_TIMEOUT, next_key="lab.start_timed_out_next")
            if self._thread_error is not None:
                error = self._thread_error
                self._abandon_loop()
                self._remove_created_root()
                if getattr(error, "errno", None) == errno.EADDRINUSE:
                    # The operating system's text for this error is often English, so the catalog words it.
                    raise LabError("lab.port_in_use", value=self._listen_text(self._requested_port),
                                   port=self._requested_port, next_key="lab.port_in_use_next") from error
                raise LabError("lab.bind_failed", value=self._listen_text(self._requested_port), detail=str(error),
                               next_key="lab.bind_failed_next") from error
            assert self._log_writer is not None and self._service is not None
            self._log_writer.start_new_block()
            if self._pickup is None or self._pickup.server is not self._service:
                self._pickup = PickupProcessor(self._service)
            if self._pickup_interval is not None:
                self._pickup_watcher = PickupWatcher(self._pickup, self._pickup_interval)
                self._pickup_watcher.start()
            log.info("mail lab started on %s in %.1f ms: mailroot %s, logs %s, relay %s, connection control %s",
                     self.address, (time.perf_counter() - began) * 1000, self.mailroot, self.log_dir,
                     self._describe(self._relay), self._describe(self._connection))
            return self

    def stop(self) -> None:
        """Close every session and the listening socket, end the thread, and remove a temporary root.

        Stopping a lab that is not running does nothing.
        """
        with self._lock:
            if not self.running:
                return
            assert self._loop is not None and self._thread is not None
            if self._pickup_watcher is not None:
                self._pickup_watcher.stop(STOP_TIMEOUT)
                self._pickup_watcher = None
            self._stop_outbound()
            future = asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop)
            try:
                future.result(STOP_TIMEOUT)
            except Exception:
                log.exception("the mail lab did not close its sockets cleanly")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                log.error("the mail lab thread did not end within %s s", STOP_TIMEOUT)
            else:
                self._loop.close()
            address = self.address
            self._thread = None
            self._loop = None
            self._server = None
            self._port = None
            if self._log_writer is not None:
                # Release the open log file; a later entry (a delivery run after stop) opens it again.
                self._log_writer.close()
            self._run_stop_callbacks()
            self._remove_created_root()
            log.info("mail lab on %s stopped", address)

    def add_stop_callback(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the lab stops, before its temporary root is removed (once, in order)."""
        with self._lock:
            self._stop_callbacks.append(callback)

    def _run_stop_callbacks(self) -> None:
        callbacks, self._stop_callbacks = self._stop_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a stop callback of the mail lab failed")

    def _remove_created_root(self) -> None:
        """Delete the temporary root this lab made; a root the caller gave is never touched."""
        if self._created_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> MailLab:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:
        # A lab dropped without stop() would keep its thread and socket until the process ends.
        if getattr(self, "_thread", None) is not None:
            try:
                self.stop()
            except Exception:
                pass

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._port is not None

    def _prepare_root(self) -> None:
        if self._given_root is not None:
            root = _checked_root(self._given_root)
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise LabError("lab.root_unusable", value=str(root), detail=str(error),
                               next_key="lab.root_unusable_next") from error
            self._created_root = False
        elif self._root is not None and self._root.exists():
            root = self._root
        else:
            root = Path(tempfile.mkdtemp(prefix="adminkb-lab-"))
            self._created_root = True
            # A kernel shut down while a runbook's lab runs (an interrupted export, say) exits
            # without stop(), so the interpreter's exit removes the temporary root too.
            atexit.register(shutil.rmtree, root, ignore_errors=True)
        self._root = root
        mailroot.create_mailroot(root / "mailroot")
        log_dir = root / "LogFiles" / self._settings["site_name"]
        log_dir.mkdir(parents=True, exist_ok=True)
        if self._log_writer is None or self._log_writer.folder != log_dir:
            self._log_writer = W3CLogWriter(log_dir, self._settings["site_name"], self._settings["computer_name"],
                                            fields=self._log_fields, encoding=self._log_encoding)
        if self._service is None or self._service.mailroot != root / "mailroot":
            self._service = VirtualServer(
                hostname=self._settings["hostname"], computer_name=self._settings["computer_name"],
                version=self._settings["version"], zone=self._settings["zone"], clock=self._clock,
                mailroot_path=root / "mailroot", log_writer=self._log_writer, local_domains=self._local_domains,
                relay=self._relay, connection=self._connection, max_message_size=self._max_message_size,
                relay_for_authenticated=self._relay_for_authenticated)
        service = self._service
        service.basic_auth = self._basic_auth
        service.auth_requires_tls = self._auth_requires_tls
        service.set_accounts(self._accounts.items())
        service.vrfy_reveals_users = self._vrfy_reveals_users
        service.connect_response = self._connect_response
        service.tls_context = None
        if self._tls:
            names = self._certificate_names or (self._settings["hostname"], str(self._listen))
            self._certificate = write_certificate(root / "tls", names, not_after=self._certificate_not_after)
            service.tls_context = server_context(self._certificate, minimum_version=self._tls_minimum_version,
                                                 ciphers=self._tls_ciphers)

    def _run_loop(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None and self._service is not None
        asyncio.set_event_loop(loop)
        service = self._service
        timeout = self._connection_timeout

        def new_session() -> IisSmtpSession:
            return IisSmtpSession(service, loop=loop, timeout=timeout)

        try:
            self._server = loop.run_until_complete(
                loop.create_server(new_session, host=str(self._listen), port=self._requested_port,
                                   reuse_address=os.name != "nt"))
            self._port = self._server.sockets[0].getsockname()[1]
        except BaseException as error:  # reported to start(), which raises LabError
            self._thread_error = error
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            cancel_pending(loop)

    async def _shut_down(self) -> None:
        assert self._server is not None and self._service is not None
        self._server.close()
        for session in list(self._service.sessions):
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        # Give the closed sessions one turn of the loop to log their last line.
        await asyncio.sleep(0)

    def _abandon_loop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT)
            if not self._thread.is_alive():
                self._loop.close()
        self._thread = None
        self._loop = None
        self._server = None
        self._port = None

    # Where it listens and writes

    @property
    def host(self) -> str:
        return str(self._listen)

    @property
    def port(self) -> int | None:
        """The bound TCP port while the lab runs (an ephemeral one unless `port=` was given), else None."""
        return self._port

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT` (IPv6 in brackets), the form SMTP clients and swaks accept."""
        return self._listen_text(self._port)

    def _listen_text(self, port: int | None) -> str:
        host = f"[{self._listen}]" if self._listen.version == 6 else str(self._listen)
        return f"{host}:{port if port is not None else '-'}"

    @property
    def root(self) -> Path | None:
        """The folder holding `mailroot` and `LogFiles`; None before the first start."""
        return self._root

    @property
    def certificate_file(self) -> Path:
        """The PEM file of the lab's self-signed certificate, for a client to trust explicitly.

        Raises LabError when TLS is off or the lab has not started, because no certificate exists then.
        """
        if self._certificate is None:
            raise LabError("lab.no_certificate", next_key="lab.no_certificate_next")
        return self._certificate.certificate_file

    @property
    def tls_enabled(self) -> bool:
        return self._tls

    @property
    def mailroot(self) -> Path:
        return self._require_root() / "mailroot"

    @property
    def log_dir(self) -> Path:
        return self._require_root() / "LogFiles" / self._settings["site_name"]

    def _require_root(self) -> Path:
        if self._root is None:
            raise LabError("lab.not_started", next_key="lab.not_started_next")
        return self._root

    def queue_files(self) -> list[Path]:
        """Return the message files in Queue, sorted by name."""
        return self._folder_files(mailroot.QUEUE)

    def drop_files(self) -> list[Path]:
        """Return the message files in Drop, sorted by name."""
        return self._folder_files(mailroot.DROP)

    def pickup_files(self) -> list[Path]:
        """Return every file waiting in Pickup, sorted by name; the lab's Pickup pass takes all of them."""
        return sorted(path for path in (self.mailroot / mailroot.PICKUP).iterdir() if path.is_file())

    def badmail_files(self) -> list[Path]:
        """Return the files in Badmail (.BAD, .BDP, .BDR), sorted by name."""
        return sorted(path for path in (self.mailroot / mailroot.BADMAIL).iterdir() if path.is_file())

    @property
    def pickup_dir(self) -> Path:
        return self.mailroot / mailroot.PICKUP

    def process_pickup(self) -> list[PickupResult]:
        """Process the Pickup folder now, in the caller's thread, and return what became of each file.

        Runbooks call this with `pickup_interval=None`, so that no watcher takes a file first
        and their output stays the same on every run.
        """
        if not self.running or self._pickup is None:
            raise LabError("lab.not_started", next_key="lab.not_started_next")
        return self._pickup.process()

    def _folder_files(self, folder: str) -> list[Path]:
        return sorted(path for path in (self.mailroot / folder).iterdir()
                      if path.is_file() and path.suffix.upper() == ".EML")

    def log_files(self) -> list[Path]:
        """Return the W3C log files, oldest first."""
        return sorted(path for path in self.log_dir.glob("ex*.log") if path.is_file())

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def hostname(self) -> str:
        return self._settings["hostname"]

    @property
    def timezone(self) -> tzinfo:
        """The time zone of the lab's banner and Date headers (Taiwan time by default)."""
        return self._settings["zone"]

    @property
    def local_domains(self) -> list[str]:
        return list(self._local_domains)

    # Relay restrictions

    @property
    def relay_for_authenticated(self) -> bool:
        """Whether "Allow all computers which successfully authenticate to relay" is ticked."""
        return self._relay_for_authenticated

    @property
    def relay_grant(self) -> list[str]:
        """The computers allowed to relay ("Only the list below"); empty when relay is open to all."""
        return self._relay.entries() if self._relay.mode == GRANT else []

    @property
    def relay_open(self) -> bool:
        """Whether relay is "All except the list below" (open relay, minus the listed computers)."""
        return self._relay.mode == DENY

    def allow_relay(self, address_or_network: str) -> None:
        """Let a computer or subnet relay: add it to the grant list, or take it off the deny list."""
        current = self._relay
        if current.mode == GRANT:
            self._set_relay(current.with_added(address_or_network))
        else:
            self._set_relay(current.with_removed(address_or_network))

    def deny_relay(self, address_or_network: str) -> None:
        """Stop a computer or subnet from relaying: drop it from the grant list, or add it to the deny list.

        An address that is only covered by a granted subnet cannot be taken out of it (the IIS
        list has no exceptions): InputError names the subnet to remove instead.
        """
        current = self._relay
        if current.mode == DENY:
            self._set_relay(current.with_added(address_or_network))
            return
        covering = current.covering(address_or_network)
        if covering:
            raise InputError("lab.covered_by_subnet", value=str(address_or_network),
                             subnets=", ".join(str(network) for network in covering),
                             next_key="lab.covered_by_subnet_next")
        self._set_relay(current.with_removed(address_or_network))

    def set_relay_grant(self, entries: Iterable[str]) -> None:
        """Replace the relay list with "Only the list below" and these entries (empty: no computer may relay)."""
        self._set_relay(AccessList.of(GRANT, entries))

    def set_relay_open(self, except_entries: Iterable[str] = ()) -> None:
        """Make relay "All except the list below": an open relay apart from `except_entries`.

        Refused with LabError while the lab listens on an address other than loopback.
        """
        self._set_relay(AccessList.of(DENY, except_entries))

    def _set_relay(self, relay: AccessList) -> None:
        self._check_exposure(relay)
        self._relay = relay
        if self._service is not None:
            self._service.relay = relay
        log.info("relay restrictions set to %s", self._describe(relay))

    # Connection control

    @property
    def connection_control(self) -> dict[str, list[str]] | None:
        """None when every computer may connect, else `{"grant": [...]}` or `{"deny": [...]}`."""
        control = self._connection
        return None if control is None else {control.mode: control.entries()}

    def allow_connection(self, address_or_network: str) -> None:
        """Let a computer or subnet connect: add it to a grant list, or take it off a deny list."""
        current = self._connection
        if current is None:
            AccessList.of(GRANT, [address_or_network])  # still reject a malformed entry
            return
        if current.mode == GRANT:
            self._set_connection(current.with_added(address_or_network))
        else:
            self._set_connection(current.with_removed(address_or_network))

    def deny_connection(self, address_or_network: str) -> None:
        """Keep a computer or subnet out: add it to a deny list (creating one), or drop it from a grant list."""
        current = self._connection
        if current is None:
            self._set_connection(AccessList.of(DENY, [address_or_network]))
        elif current.mode == DENY:
            self._set_connection(current.with_added(address_or_network))
        else:
            covering = current.covering(address_or_network)
            if covering:
                raise InputError("lab.covered_by_subnet", value=str(address_or_network),
                                 subnets=", ".join(str(network) for network in covering),
                                 next_key="lab.covered_by_subnet_next")
            self._set_connection(current.with_removed(address_or_network))

    def set_connection_control(self, control: ConnectionControl) -> None:
        """Replace connection control: None (all computers), a mapping {"grant"|"deny": [...]}, or an AccessList."""
        self._set_connection(_access_list_from(control))

    def _set_connection(self, control: AccessList | None) -> None:
        self._connection = control
        if self._service is not None:
            self._service.connection = control
        log.info("connection control set to %s", self._describe(control))

    # Logging

    @property
    def log_fields(self) -> tuple[str, ...]:
        return self._log_fields

    def set_log_fields(self, fields: Sequence[str] | str) -> None:
        """Change the W3C fields; the log starts a new block with the new `#Fields` line."""
        self._log_fields = validate_fields(fields)
        if self._log_writer is not None:
            self._log_writer.set_fields(self._log_fields)

    # Checks

    def _check_exposure(self, relay: AccessList) -> None:
        """Refuse settings that would expose the lab: non-loopback without consent, or open relay on it."""
        if self._listen.is_loopback:
            return
        if not self._allow_non_loopback:
            raise LabError("lab.non_loopback", value=str(self._listen), option="allow_non_loopback=True",
                           next_key="lab.non_loopback_next")
        if relay.opens_to_unlisted():
            raise LabError("lab.open_relay_exposed", value=str(self._listen),
                           next_key="lab.open_relay_exposed_next")

    @staticmethod
    def _describe(control: AccessList | None) -> str:
        if control is None:
            return "all computers"
        label = "only" if control.mode == GRANT else "all except"
        return f"{label} [{', '.join(control.entries())}]"

    def __repr__(self) -> str:
        state = f"running on {self.address}" if self.running else "stopped"
        return f"<MailLab {self._settings['hostname']} {state}>"


def _access_list_from(control: ConnectionControl) -> AccessList | None:
    if control is None or isinstance(control, AccessList):
        return control
    if isinstance(control, Mapping) and len(control) == 1:
        (mode, entries), = control.items()
        return AccessList.of(str(mode), entries)
    raise InputError("lab.invalid_connection_control", value=repr(control),
                     next_key="lab.invalid_connection_control_next")


def _checked_certificate_names(names: Sequence[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    checked = tuple(_checked_name(name, "certificate_names") for name in names)
    if not checked:
        raise InputError("lab.invalid_name", value="", option="certificate_names", next_key="lab.invalid_name_next")
    return checked


def _checked_accounts(accounts: Mapping[str, str] | None) -> dict[str, str]:
    """Check the lab's account list; the error names the account, never the password."""
    if accounts is None:
        return {}
    if not isinstance(accounts, Mapping):
        raise InputError("lab.invalid_accounts", value=type(accounts).__name__, next_key="lab.invalid_accounts_next")
    checked: dict[str, str] = {}
    for user, password in accounts.items():
        name = _checked_name(user, "accounts")
        if not isinstance(password, str) or not password:
            raise InputError("lab.invalid_account_password", value=name,
                             next_key="lab.invalid_account_password_next")
        checked[name] = password
    return checked


def _checked_connect_response(text: str | None) -> str | None:
    if text is None:
        return None
    value = str(text)
    if not value.strip() or not value.isascii() or any(character in value for character in "\r\n"):
        raise InputError("lab.invalid_connect_response", value=value, next_key="lab.invalid_connect_response_next")
    return value


def _checked_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError("lab.invalid_port", value=port, next_key="lab.invalid_port_next")
    return port


def _checked_root(root: str | os.PathLike[str] | None) -> Path | None:
    if root is None:
        return None
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise InputError("lab.root_is_file", value=str(path), next_key="lab.root_is_file_next")
    if path.is_dir() and not (path / "mailroot").exists():
        # The lab keeps its mailroot in ROOT/mailroot. A copied mailroot given as the root
        # would get an empty mailroot nested inside it while its own Queue was ignored.
        folders = {entry.name.lower() for entry in path.iterdir() if entry.is_dir()}
        found = [name for name in mailroot.FOLDER_NAMES if name.lower() in folders]
        if found:
            raise InputError("lab.root_is_mailroot", value=str(path), folders=", ".join(found),
                             parent=str(path.parent) if path.name.lower() == "mailroot" else "",
                             next_key="lab.root_is_mailroot_next" if path.name.lower() != "mailroot"
                             else "lab.root_is_mailroot_parent_next")
    return path


def _checked_interval(interval: object) -> float | None:
    if interval is None:
        return None
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0.01 <= interval <= 3600:
        raise InputError("lab.invalid_pickup_interval", value=interval, next_key="lab.invalid_pickup_interval_next")
    return float(interval)


def _checked_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1024:
        raise InputError("lab.invalid_size", value=size, next_key="lab.invalid_size_next")
    return size


def _checked_name(value: object, option: str, next_key: str = "lab.invalid_name_next") -> str:
    text = str(value).strip()
    if not text or any(character.isspace() for character in text) or not text.isascii():
        raise InputError("lab.invalid_name", value=value, option=option, next_key=next_key)
    return text


def _checked_domains(domains: Iterable[str]) -> tuple[str, ...]:
    if isinstance(domains, str):
        domains = [domains]
    checked = tuple(_checked_name(domain, "local_domains", "lab.invalid_domain_next").lower().rstrip(".")
                    for domain in domains)
    for domain in checked:
        try:
            ipaddress.ip_address(domain)
        except ValueError:
            continue
        raise InputError("lab.invalid_name", value=domain, option="local_domains", next_key="lab.invalid_domain_next")
    return checked
