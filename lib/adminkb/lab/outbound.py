"""The lab's outbound side: lab DNS, remote receivers, the delivery agent and their controls.

`MailLab` inherits these methods. The outbound side starts on first use (`deliver_queue()`,
`advance()`, a Smart Host or firewall change, `remote`), so a lab that only receives mail
starts no extra threads. It stops with the lab.

    lab.deliver_queue()              # one delivery pass for the messages that are due
    lab.advance(minutes=15)          # move the fixed lab clock, running each retry as it falls due
    lab.set_smart_host("[127.0.0.40]")
    lab.block_port25()
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from adminkb.errors import InputError, LabError
from adminkb.lab.clock import FixedClock
from adminkb.lab.delivery import SMART_HOST_ALWAYS, DeliveryAgent, DeliveryRecord, QueueStatus, SmartHost
from adminkb.lab.dns import LabDns, lab_zone_files
from adminkb.lab.remote import RemoteLab

log = logging.getLogger("adminkb.lab")

# advance() runs at most this many delivery passes, so a schedule error cannot loop forever.
MAX_ADVANCE_PASSES = 10_000
RUNNER_STOP_TIMEOUT = 10.0


class OutboundControls:
    """Outbound delivery methods of `MailLab`; they need the lab's mailroot, clock and virtual server."""

    _outbound_lock: threading.RLock
    _lab_dns: LabDns | None
    _remote: RemoteLab | None
    _delivery: DeliveryAgent | None
    _runner: DeliveryRunner | None
    _outbound_address: str | None
    outbound_note: str | None

    def _init_outbound(self, outbound_address: str | None) -> None:
        self._outbound_lock = threading.RLock()
        self._lab_dns = None
        self._remote = None
        self._delivery = None
        self._runner = None
        self._outbound_address = outbound_address
        self.outbound_note = None

    # Life cycle

    def start_outbound(self) -> DeliveryAgent:
        """Start the lab DNS, the remote receivers and the delivery agent, once; return the agent."""
        from adminkb.lab.server import can_bind_source_address

        with self._outbound_lock:
            if self._delivery is not None:
                return self._delivery
            if not self.running or self._service is None:
                raise LabError("lab.not_started", next_key="lab.not_started_next")
            address = self._outbound_address
            if address is not None and not can_bind_source_address(address):
                # Only 127.0.0.1 exists here (macOS without aliases): reverse DNS checks lose their meaning.
                self.outbound_note = address
                log.warning("outbound address %s is not available here; the lab sends from 127.0.0.1", address)
                address = None
            lab_dns = LabDns.from_files(lab_zone_files()).start()
            try:
                remote = RemoteLab(dns_server=lab_dns.nameserver, clock=self._clock,
                                   folder=self._require_root() / "remote").start()
            except BaseException:
                lab_dns.stop()
                raise
            self._lab_dns, self._remote = lab_dns, remote
            self._delivery = DeliveryAgent(self._service, dns_server=lab_dns.nameserver, port_for=remote.port_for,
                                           smart_host_certificate=remote.certificate_file, outbound_address=address)
            log.info("outbound delivery started: lab DNS %s, remote receivers on port %s, sending from %s",
                     lab_dns.nameserver, remote.port, address or "127.0.0.1")
            return self._delivery

    def _stop_outbound(self) -> None:
        # The runner's passes take the outbound lock, so it stops before the lock is held here.
        self.stop_delivery_runner()
        with self._outbound_lock:
            if self._remote is not None:
                self._remote.stop()
            if self._lab_dns is not None:
                self._lab_dns.stop()
            self._remote = self._lab_dns = self._delivery = None

    @property
    def remote(self) -> RemoteLab:
        """The remote receivers (started on first use); `remote.received()` lists what arrived."""
        self.start_outbound()
        assert self._remote is not None
        return self._remote

    @property
    def lab_dns(self) -> LabDns:
        """The lab DNS server that outbound delivery resolves MX and smart host names with."""
        self.start_outbound()
        assert self._lab_dns is not None
        return self._lab_dns

    # Delivery

    def deliver_queue(self) -> list[DeliveryRecord]:
        """Run one delivery pass now for the queued messages that are due; return what happened."""
        return self.start_outbound().run_due()

    def advance(self, *, minutes: float = 0, seconds: float = 0) -> list[DeliveryRecord]:
        """Move the fixed lab clock forward, running each retry at the moment it falls due.

        Raises LabError for a lab on the real clock, which cannot be moved.
        """
        delta = timedelta(minutes=minutes, seconds=seconds)
        if delta < timedelta(0):
            raise InputError("lab.delivery.negative_advance", value=delta.total_seconds(),
                             next_key="lab.delivery.negative_advance_next")
        clock = self._clock
        if not isinstance(clock, FixedClock):
            raise LabError("lab.delivery.clock_not_fixed", next_key="lab.delivery.clock_not_fixed_next")
        agent = self.start_outbound()
        target = clock.now() + delta
        records: list[DeliveryRecord] = []
        for _ in range(MAX_ADVANCE_PASSES):
            due = agent.next_due()
            if due is None or due > target:
                break
            if due > clock.now():
                clock.set(due)
            records.extend(agent.run_due())
        else:
            log.error("advance() stopped after %d delivery passes", MAX_ADVANCE_PASSES)
        clock.set(max(target, clock.now()))
        return records

    @property
    def delivery_records(self) -> list[DeliveryRecord]:
        """Every delivery event so far, oldest first."""
        return list(self.start_outbound().records)

    def queue_status(self) -> list[QueueStatus]:
        """Return the retry state of each queued message: attempts, next attempt, expiry, last reply."""
        return self.start_outbound().queue_status()

    def next_delivery_attempt(self) -> datetime | None:
        """Return the lab time of the next delivery attempt, or None when the Queue is empty."""
        return self.start_outbound().next_due()

    # Settings

    def set_smart_host(self, host: str, *, type: int = SMART_HOST_ALWAYS, user: str | None = None,
                       password: str | None = None, tls: bool = False) -> None:
        """Set the Smart Host: a name (resolved through the lab DNS) or `[IP]`, with the SmartHostType."""
        self.start_outbound().set_smart_host(SmartHost(str(host).strip(), int(type), user, password, bool(tls)))

    def clear_smart_host(self) -> None:
        """Deliver directly by MX again (SmartHostType 0)."""
        self.start_outbound().set_smart_host(None)

    @property
    def smart_host(self) -> SmartHost | None:
        return self.start_outbound().smart_host

    def require_smart_host_auth(self, required: bool = True) -> None:
        """Make the lab's smart host reject MAIL FROM with 530 until the client authenticates."""
        self.remote.smart_host_requires_auth = bool(required)

    def block_port25(self) -> None:
        """Block outbound port 25 to every host but the smart host, as a company firewall does."""
        self.start_outbound().port25_blocked = True
        log.info("outbound port 25 blocked by the lab firewall")

    def unblock_port25(self) -> None:
        self.start_outbound().port25_blocked = False
        log.info("outbound port 25 open again")

    @property
    def port25_blocked(self) -> bool:
        return self.start_outbound().port25_blocked

    def set_outbound_address(self, address: str) -> None:
        """Send from `address`: 127.0.0.25 has forward-confirmed reverse DNS, 127.0.0.26 has no PTR."""
        from adminkb.lab.server import can_bind_source_address

        agent = self.start_outbound()
        if not can_bind_source_address(address):
            raise InputError("lab.delivery.outbound_address_unusable", value=address,
                             next_key="lab.delivery.outbound_address_unusable_next")
        agent.outbound_address = address
        log.info("outbound address set to %s", address)

    @property
    def outbound_address(self) -> str:
        return self.start_outbound().outbound_address or "127.0.0.1"

    def set_outbound_esmtp(self, enabled: bool) -> None:
        """Send EHLO (True) or only HELO (False), like SmtpOutboundCommandSupportOptions 7697601 or 7."""
        self.start_outbound().outbound_esmtp = bool(enabled)

    # Background runner

    def start_delivery_runner(self, *, compression: float = 60.0, interval: float = 1.0) -> None:
        """Deliver in the background: every `interval` real seconds, `interval * compression` lab seconds pass.

        On a fixed clock the runner moves the clock. On the real clock it divides the retry
        schedule and the greylisting delay of the remote receivers by `compression` instead.
        """
        if not 1 <= compression <= 100_000 or not 0.05 <= interval <= 60:
            raise InputError("lab.delivery.invalid_runner", value=f"{compression}, {interval}",
                             next_key="lab.delivery.invalid_runner_next")
        self.stop_delivery_runner()
        agent = self.start_outbound()
        if not isinstance(self._clock, FixedClock):
            agent.time_compression = float(compression)
            self.remote.time_compression = float(compression)
        self._runner = DeliveryRunner(self, compression, interval)
        self._runner.start()

    def stop_delivery_runner(self) -> None:
        if self._runner is not None:
            self._runner.stop(RUNNER_STOP_TIMEOUT)
            self._runner = None


class DeliveryRunner:
    """A thread that runs delivery passes until stopped, moving a fixed clock by `compression`."""

    def __init__(self, lab: OutboundControls, compression: float, interval: float) -> None:
        self.lab = lab
        self.compression = compression
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adminkb-lab-delivery", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("delivery runner started: %.1f lab seconds every %.2f s", self.interval * self.compression,
                 self.interval)

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the delivery runner did not stop within %s s", timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if isinstance(self.lab._clock, FixedClock):
                    self.lab.advance(seconds=self.interval * self.compression)
                else:
                    self.lab.deliver_queue()
            except Exception:
                # One failed pass must not end the runner; the next pass tries again.
                log.exception("a background delivery pass failed in the lab")
