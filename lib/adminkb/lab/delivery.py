"""Outbound delivery from the lab's Queue, as the IIS SMTP Service delivers remote mail.

For each message file in Queue the agent groups the recipients by domain. It finds the mail
exchangers through the lab DNS (MX records in preference order, else the domain's own address,
the implicit MX of RFC 5321 section 5.1) or takes the Smart Host. It connects from the lab's
outbound loopback address and sends EHLO (HELO when EHLO is rejected), MAIL FROM with SIZE,
RCPT TO and DATA. Every command and reply goes to the W3C log as the service's outbound lines.

Transient failures keep the message in Queue and retry on the service's schedule
(SmtpRemoteProgressiveRetry 15, 30, 60 and then every 240 minutes), with a delay notification
after 720 minutes and a non-delivery report (NDR) after 2880 minutes. Permanent failures get an
NDR at once. An NDR goes to the sender like any other mail, and one that cannot be delivered
ends in Badmail as a `.BAD`/`.BDP`/`.BDR` triple, as does a failed message with a null sender.

Time comes from the lab clock. With a fixed clock nothing happens on its own: `run_due()` runs
one pass for the messages that are due, and `MailLab.advance()` moves the clock to each retry
time in turn.

Every message ends delivered, waiting in Queue, returned in an NDR or in Badmail. The agent
writes the NDR or Badmail files before it removes recipients from the queue file, so a crash in
between can repeat a notification or a delivery but never loses a message.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from adminkb import mailroot
from adminkb.dnscheck.resolver import ANSWER, FAILED_STATUSES, NODATA, NXDOMAIN, DnsClient
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import dsn
from adminkb.lab.remote import SMTP_PORT
from adminkb.lab.service import VirtualServer, find_message_id, split_header_block
from adminkb.lab.w3clog import LogEntry
from adminkb.smtp.replies import Reply
from adminkb.smtp.session import REDACTED, SessionError, SmtpSession, describe_tls
from adminkb.smtp.transcript import Direction

log = logging.getLogger("adminkb.lab.delivery")

# SmtpRemoteProgressiveRetry: minutes between attempts; the last value repeats.
RETRY_INTERVALS = (15, 30, 60, 240)
DELAY_NOTIFICATION_MINUTES = 720
EXPIRATION_MINUTES = 2880

# SmartHostType values of the virtual server's metabase.
SMART_HOST_NONE = 0
SMART_HOST_TRY_DIRECT_FIRST = 1
SMART_HOST_ALWAYS = 2
SMART_HOST_TYPES = (SMART_HOST_NONE, SMART_HOST_TRY_DIRECT_FIRST, SMART_HOST_ALWAYS)

# The outbound addresses of the lab zones: one whose reverse DNS is forward-confirmed
# (out.example.com) and one without a PTR record.
OUTBOUND_ADDRESS = "127.0.0.25"
OUTBOUND_ADDRESS_WITHOUT_PTR = "127.0.0.26"

# Seconds for connect and for each reply, and for the whole session.
STEP_TIMEOUT = 10.0
SESSION_TIMEOUT = 30.0
DNS_TIMEOUT = 5.0

# Outcomes in the delivery records.
DELIVERED = "delivered"
DEFERRED = "deferred"
FAILED = "failed"
EXPIRED = "expired"
DELAY_NOTICE = "delay_notice"
NDR_SENT = "ndr"
BADMAIL = "badmail"

# The language of the reasons the lab writes into NDRs and Badmail files.
# NOTE: whether a server with a localized Windows writes these texts in its own language is not
# confirmed, so the lab writes English.
FILE_LANGUAGE = "en"


@dataclass(frozen=True)
class LabReason:
    """A delivery failure that the lab words itself, because no SMTP reply gave a text.

    `status` is the RFC 3463 status code. `key` names the catalog message
    `lab.delivery.reason.<key>`, filled from `values`, where a LabReason value is rendered in the
    same language. Files get `text(FILE_LANGUAGE)`, tables `text()` in the reader's language.
    """

    status: str
    key: str
    values: Mapping[str, object] = field(default_factory=dict)

    def text(self, language: str | None = None) -> str:
        values = {name: value.text(language) if isinstance(value, LabReason) else value
                  for name, value in self.values.items()}
        return message(f"lab.delivery.reason.{self.key}", language, **values)


# Failures that have no SMTP reply.
_NO_ANSWER = LabReason("4.4.1", "no_answer")
_CONNECTION_LOST = LabReason("4.4.2", "connection_lost")
_PORT_BLOCKED = LabReason("4.4.1", "port_blocked")
_DNS_TEMPORARY = LabReason("4.4.3", "dns_temporary")
_NO_SUCH_DOMAIN = LabReason("5.1.2", "no_such_domain")
_NULL_MX = LabReason("5.1.10", "null_mx")
_NO_ADDRESS = LabReason("5.4.4", "no_address")
# No status is reported for this one; 5.0.0 is RFC 3463's "other permanent failure".
_NO_RECIPIENTS = LabReason("5.0.0", "no_recipients")
# NOTE: the error codes in .BDR files for these cases are not confirmed from real Badmail files.
_EXPIRED_CODE = "0xC00402CE"
_FAILED_CODE = "0xC00402C7"


@dataclass(frozen=True)
class SmartHost:
    """The Smart Host setting: a host name resolved through DNS, or `[IP]` taken as it is.

    `type` is SmartHostType: 1 tries direct delivery first, 2 always uses the smart host.
    `user` and `password` enable AUTH LOGIN ("Basic authentication" under Outbound Security);
    `tls` sends STARTTLS first ("TLS encryption").
    """

    host: str
    type: int = SMART_HOST_ALWAYS
    user: str | None = None
    password: str | None = None
    tls: bool = False

    @property
    def literal_address(self) -> str | None:
        """The address inside `[...]`, or None for a host name."""
        if self.host.startswith("[") and self.host.endswith("]"):
            return self.host[1:-1]
        return None


@dataclass
class DeliveryRecord:
    """One event of outbound delivery for one recipient, as `delivery_table()` lists it."""

    time: datetime
    queue_file: str
    message_id: str
    sender: str
    recipient: str
    outcome: str
    host: str = ""
    address: str = ""
    reply: str = ""
    attempt: int = 0
    next_attempt: datetime | None = None
    files: tuple[str, ...] = ()
    # The lab's own wording of a failure that had no SMTP reply. `reply` then contains its English text.
    reason: LabReason | None = None

    def reply_text(self, language: str | None = None) -> str:
        """Return the remote server's reply as it was sent, or the lab's own reason in `language`."""
        return self.reason.text(language) if self.reason is not None else self.reply


@dataclass(frozen=True)
class QueueStatus:
    """The retry state of one message file in Queue."""

    queue_file: str
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    arrival: datetime
    attempts: int
    next_attempt: datetime
    expires: datetime
    last_reply: str
    last_reason: LabReason | None = None

    def last_reply_text(self, language: str | None = None) -> str:
        """Return the last remote reply as it was sent, or the lab's own reason in `language`."""
        return self.last_reason.text(language) if self.last_reason is not None else self.last_reply


@dataclass
class _QueueState:
    arrival: datetime
    attempts: int = 0
    next_attempt: datetime | None = None
    delay_notified: bool = False


@dataclass
class _RecipientResult:
    recipient: str
    outcome: str  # DELIVERED, DEFERRED or FAILED
    status: str
    text: str
    host: str = ""
    address: str = ""
    reason: LabReason | None = None


def _lab_result(recipient: str, outcome: str, reason: LabReason, host: str = "", address: str = "") -> _RecipientResult:
    return _RecipientResult(recipient, outcome, reason.status, reason.text(FILE_LANGUAGE), host, address, reason)


@dataclass
class _QueuedMessage:
    path: Path
    sender: str
    recipients: list[str]
    content: bytes
    message_id: str


@dataclass
class _Hop:
    hostname: str
    address: str
    smart_host: bool = False


@dataclass
class _Route:
    hops: list[_Hop] = field(default_factory=list)
    # Set when no hop exists: (outcome, reason).
    failure: tuple[str, LabReason] | None = None


class DeliveryAgent:
    """Delivers the lab's Queue to the remote lab receivers, with retries, NDRs and Badmail.

    `dns_server` is `HOST:PORT` of the lab DNS. `port_for(address, port)` maps port 25 of a
    remote address to the port the lab listens on there. `smart_host_certificate` is the CA
    file the agent trusts for STARTTLS to the smart host.
    """

    def __init__(self, server: VirtualServer, *, dns_server: str, port_for: Callable[[str, int], int],
                 smart_host_certificate: Path | None = None, outbound_address: str | None = OUTBOUND_ADDRESS,
                 step_timeout: float = STEP_TIMEOUT) -> None:
        self.server = server
        self.dns_server = dns_server
        self.port_for = port_for
        self.smart_host_certificate = smart_host_certificate
        self.outbound_address = outbound_address
        self.step_timeout = step_timeout
        self.smart_host: SmartHost | None = None
        self.port25_blocked = False
        # Send EHLO (SmtpOutboundCommandSupportOptions 7697601) or only HELO (7). The service
        # really starts with 7, although Microsoft's documentation names 7697601 as the default
        # (https://centauricw.com/2024/06/iis-smtp-server-smtpoutboundcommandsupportoptions-bug).
        # The lab starts with EHLO, as on a server where an admin has fixed the value.
        self.outbound_esmtp = True
        # Divides the retry, delay and expiry times; 1 is the service's schedule.
        self.time_compression = 1.0
        self.records: list[DeliveryRecord] = []
        self._states: dict[str, _QueueState] = {}
        self._lock = threading.RLock()

    # Settings

    def set_smart_host(self, smart_host: SmartHost | None) -> None:
        if smart_host is not None:
            if smart_host.type not in SMART_HOST_TYPES:
                raise InputError("lab.delivery.invalid_smart_host_type", value=smart_host.type,
                                 next_key="lab.delivery.invalid_smart_host_type_next")
            if not smart_host.host.strip() or any(character.isspace() for character in smart_host.host):
                raise InputError("lab.delivery.invalid_smart_host", value=smart_host.host,
                                 next_key="lab.delivery.invalid_smart_host_next")
            if (smart_host.user is None) != (smart_host.password is None):
                raise InputError("lab.delivery.smart_host_credentials", value=smart_host.user or "-",
                                 next_key="lab.delivery.smart_host_credentials_next")
        with self._lock:
            self.smart_host = smart_host
        log.info("smart host set to %s", "none" if smart_host is None else
                 f"{smart_host.host} (type {smart_host.type}, auth {smart_host.user is not None}, tls {smart_host.tls})")

    # Schedule

    def _minutes(self, minutes: float) -> timedelta:
        return timedelta(minutes=minutes / self.time_compression)

    def _retry_delay(self, attempts: int) -> timedelta:
        index = min(attempts, len(RETRY_INTERVALS)) - 1
        return self._minutes(RETRY_INTERVALS[max(index, 0)])

    def queue_status(self) -> list[QueueStatus]:
        """Return the retry state of each message file in Queue, sorted by file name."""
        with self._lock:
            self._sync_states()
            last_record: dict[str, DeliveryRecord] = {}
            for record in self.records:
                if record.outcome == DEFERRED:
                    last_record[record.queue_file] = record
            statuses = []
            for name, state in sorted(self._states.items()):
                try:
                    queued = _read_queue_file(self.server.mailroot / mailroot.QUEUE / name)
                except FileNotFoundError:
                    continue
                last = last_record.get(name)
                statuses.append(QueueStatus(
                    queue_file=name, message_id=queued.message_id, sender=queued.sender,
                    recipients=tuple(queued.recipients), arrival=state.arrival, attempts=state.attempts,
                    next_attempt=state.next_attempt or state.arrival,
                    expires=state.arrival + self._minutes(EXPIRATION_MINUTES),
                    last_reply=last.reply if last else "", last_reason=last.reason if last else None))
            return statuses

    def next_due(self) -> datetime | None:
        """Return the earliest time a queued message is due for an attempt, or None when the Queue is empty."""
        with self._lock:
            self._sync_states()
            times = [state.next_attempt or state.arrival for state in self._states.values()]
        return min(times) if times else None

    def _sync_states(self) -> None:
        names = {path.name: path for path in self._queue_files()}
        for name in list(self._states):
            if name not in names:
                del self._states[name]
        for name, path in names.items():
            if name not in self._states:
                arrival = _arrival_from_name(name) or self.server.clock.now()
                self._states[name] = _QueueState(arrival=min(arrival, self.server.clock.now()),
                                                 next_attempt=self.server.clock.now())

    def _queue_files(self) -> list[Path]:
        folder = self.server.mailroot / mailroot.QUEUE
        return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.upper() == ".EML")

    # Passes

    def run_due(self, max_passes: int = 5) -> list[DeliveryRecord]:
        """Attempt every queued message that is due now; return the records this call added.

        NDRs written to Queue during a pass are due at once, so passes repeat (at most
        `max_passes`) until no message is due.
        """
        with self._lock:
            first = len(self.records)
            for _ in range(max_passes):
                self._sync_states()
                now = self.server.clock.now()
                due = [name for name, state in sorted(self._states.items())
                       if state.next_attempt is None or state.next_attempt <= now]
                if not due:
                    break
                for name in due:
                    try:
                        self._attempt(name, now)
                    except Exception:
                        # One message that fails (a file that cannot be read or written, a report
                        # that cannot be built) must not stop the others. Its file stays in Queue
                        # without the recipients already delivered to, and the next retry tries
                        # the rest again.
                        state = self._states.get(name)
                        if state is not None:
                            state.next_attempt = now + self._retry_delay(max(state.attempts, 1))
                        log.exception("delivery attempt for queue file %s failed", name)
            return self.records[first:]

    def _attempt(self, name: str, now: datetime) -> None:
        """Deliver one queue file, then return failures to the sender and keep the deferred recipients."""
        state = self._states[name]
        path = self.server.mailroot / mailroot.QUEUE / name
        try:
            queued = _read_queue_file(path)
        except FileNotFoundError:
            self._states.pop(name, None)
            return
        if not queued.recipients:
            text = _NO_RECIPIENTS.text(FILE_LANGUAGE)
            files = self._to_badmail(queued, text, _FAILED_CODE)
            self._record(now, queued, "", BADMAIL, reply=text, reason=_NO_RECIPIENTS, files=files)
            path.unlink()
            self._states.pop(name, None)
            return

        state.attempts += 1
        results = self._deliver(queued)
        delivered = [item for item in results if item.outcome == DELIVERED]
        failed = [item for item in results if item.outcome == FAILED]
        deferred = [item for item in results if item.outcome == DEFERRED]
        expired = now - state.arrival >= self._minutes(EXPIRATION_MINUTES)
        if expired and deferred:
            for item in deferred:
                # The expiry text ends with the last attempt's result: the lab's reason or the server's reply.
                reason = LabReason("4.4.7", "expired", {"last": item.reason or item.text})
                failed.append(_lab_result(item.recipient, EXPIRED, reason, item.host, item.address))
            deferred = []

        for item in delivered:
            self._record(now, queued, item.recipient, DELIVERED, host=item.host, address=item.address,
                         reply=item.text, reason=item.reason, attempt=state.attempts)
        if delivered and (failed or deferred):
            # The delivered recipients leave the queue file before the report is built, so that
            # a retry after an error there does not deliver to them again.
            # NOTE: if this rewrite itself fails, the retry still delivers to them a second time.
            undelivered = [item.recipient for item in results if item.outcome != DELIVERED]
            _replace_file(path, mailroot.envelope_lines(queued.sender, undelivered) + queued.content)
        if failed:
            self._return_to_sender(queued, failed, state, now)
        if deferred:
            state.next_attempt = now + self._retry_delay(state.attempts)
            for item in deferred:
                self._record(now, queued, item.recipient, DEFERRED, host=item.host, address=item.address,
                             reply=item.text, reason=item.reason, attempt=state.attempts,
                             next_attempt=state.next_attempt)
            if (not state.delay_notified and now - state.arrival >= self._minutes(DELAY_NOTIFICATION_MINUTES)
                    and queued.sender and not dsn.is_dsn(queued.content)):
                self._notify_delay(queued, deferred, state, now)

        remaining = [item.recipient for item in deferred]
        if remaining:
            if remaining != queued.recipients:
                _replace_file(path, mailroot.envelope_lines(queued.sender, remaining) + queued.content)
        else:
            path.unlink()
            self._states.pop(name, None)

    # Routing

    def _route(self, domain: str, client: DnsClient) -> _Route:
        smart_host = self.smart_host
        if smart_host is not None and smart_host.type == SMART_HOST_ALWAYS:
            return self._smart_host_route(smart_host, client)
        route = self._mx_route(domain, client)
        if smart_host is not None and smart_host.type == SMART_HOST_TRY_DIRECT_FIRST:
            fallback = self._smart_host_route(smart_host, client)
            if route.failure is not None and route.failure[0] == FAILED:
                return route
            route.hops.extend(fallback.hops)
            if route.hops:
                route.failure = None
        return route

    def _smart_host_route(self, smart_host: SmartHost, client: DnsClient) -> _Route:
        literal = smart_host.literal_address
        if literal is not None:
            return _Route([_Hop(smart_host.host, literal, smart_host=True)])
        addresses = client.lookup(smart_host.host, "A")
        if addresses.status in FAILED_STATUSES:
            return _Route(failure=(DEFERRED, _DNS_TEMPORARY))
        if not addresses.ok:
            return _Route(failure=(DEFERRED, LabReason("4.1.2", "smart_host_not_found", {"host": smart_host.host})))
        return _Route([_Hop(smart_host.host, record.to_text(), smart_host=True) for record in addresses.records])

    def _mx_route(self, domain: str, client: DnsClient) -> _Route:
        mx = client.lookup(domain, "MX")
        if mx.status in FAILED_STATUSES:
            return _Route(failure=(DEFERRED, _DNS_TEMPORARY))
        if mx.status == NXDOMAIN:
            return _Route(failure=(FAILED, _NO_SUCH_DOMAIN))
        if mx.status == ANSWER:
            exchangers = sorted(((record.preference, record.exchange.to_text().rstrip("."))
                                 for record in mx.records), key=lambda item: item[0])
            if any(name == "" for _, name in exchangers):
                return _Route(failure=(FAILED, _NULL_MX))
            names = [name for _, name in exchangers]
        else:
            names = [domain]
        hops: list[_Hop] = []
        temporary = False
        for name in names:
            # NOTE: the lab sends from IPv4 loopback addresses, so it looks up A records only.
            addresses = client.lookup(name, "A")
            if addresses.ok:
                hops.extend(_Hop(name, record.to_text()) for record in addresses.records)
            elif addresses.status in FAILED_STATUSES:
                temporary = True
        if hops:
            return _Route(hops)
        if temporary:
            return _Route(failure=(DEFERRED, _DNS_TEMPORARY))
        if mx.status == NODATA:
            return _Route(failure=(FAILED, _NO_ADDRESS))
        return _Route(failure=(DEFERRED, LabReason("4.4.4", "no_mx_address", {"domain": domain})))

    # Delivery

    def _deliver(self, queued: _QueuedMessage) -> list[_RecipientResult]:
        by_domain: dict[str, list[str]] = {}
        always_smart_host = self.smart_host is not None and self.smart_host.type == SMART_HOST_ALWAYS
        for recipient in queued.recipients:
            # Every recipient takes the same route to an "always" smart host, so one session carries them all.
            domain = "" if always_smart_host else recipient.rpartition("@")[2].lower()
            by_domain.setdefault(domain, []).append(recipient)
        client = DnsClient(self.dns_server, timeout=DNS_TIMEOUT)
        results = []
        for domain, recipients in sorted(by_domain.items()):
            client.restart()
            route = self._route(domain, client)
            if route.failure is not None:
                outcome, reason = route.failure
                results.extend(_lab_result(recipient, outcome, reason) for recipient in recipients)
                continue
            results.extend(self._deliver_to_hops(queued, recipients, route.hops))
        return results

    def _deliver_to_hops(self, queued: _QueuedMessage, recipients: list[str],
                         hops: list[_Hop]) -> list[_RecipientResult]:
        """Try the hops in order until one returns a final result (delivered or failed) for some recipient."""
        results: list[_RecipientResult] = []
        for hop in hops:
            results = self._deliver_to_hop(queued, recipients, hop)
            if any(item.outcome != DEFERRED for item in results):
                return results
        return results

    def _deliver_to_hop(self, queued: _QueuedMessage, recipients: list[str], hop: _Hop) -> list[_RecipientResult]:
        """Run one SMTP session to `hop` and return each recipient's result."""
        if self.port25_blocked and not hop.smart_host:
            log.info("outbound connection to %s (%s) port 25 blocked by the lab firewall", hop.hostname, hop.address)
            return self._all_deferred(recipients, hop, _PORT_BLOCKED)
        session = SmtpSession(hop.address, self.port_for(hop.address, SMTP_PORT), timeout=self.step_timeout,
                              total_timeout=SESSION_TIMEOUT, source_address=self.outbound_address,
                              ehlo_name=self.server.hostname)
        try:
            return self._converse(session, queued, recipients, hop)
        except SessionError as error:
            log.info("delivery of %s to %s (%s) failed at %s: %s", queued.message_id, hop.hostname, hop.address,
                     error.step, error.category)
            reason = _NO_ANSWER if error.step == "connect" else _CONNECTION_LOST
            return self._all_deferred(recipients, hop, reason)
        finally:
            session.close()
            self._log_session(session, hop)

    @staticmethod
    def _all_deferred(recipients: list[str], hop: _Hop,
                      reason: LabReason | tuple[str, str]) -> list[_RecipientResult]:
        """Defer every recipient with the lab's own reason or a (status, reply text) pair from the server."""
        if isinstance(reason, LabReason):
            return [_lab_result(recipient, DEFERRED, reason, hop.hostname, hop.address) for recipient in recipients]
        status, text = reason
        return [_RecipientResult(recipient, DEFERRED, status, text, hop.hostname, hop.address)
                for recipient in recipients]

    def _converse(self, session: SmtpSession, queued: _QueuedMessage, recipients: list[str],
                  hop: _Hop) -> list[_RecipientResult]:
        session.connect()
        banner = session.read_banner()
        if banner.code != 220:
            session.quit()
            return self._all_deferred(recipients, hop, (_status_of(banner), _reply_text(banner)))
        hello = session.ehlo() if self.outbound_esmtp else session.command(f"HELO {session.ehlo_name}", step="ehlo")
        if hello.code != 250:
            session.quit()
            return self._all_deferred(recipients, hop, (_status_of(hello), _reply_text(hello)))
        smart_host = self.smart_host if hop.smart_host else None
        if smart_host is not None and smart_host.tls:
            failure = self._start_tls(session, hop)
            if failure is not None:
                return self._all_deferred(recipients, hop, failure)
        if smart_host is not None and smart_host.user is not None:
            reply = session.authenticate(smart_host.user, smart_host.password or "", mechanism="LOGIN")
            if reply.code != 235:
                session.quit()
                return self._all_deferred(recipients, hop, (_status_of(reply), _reply_text(reply)))
        mail = f"MAIL FROM:<{queued.sender}>"
        if session.supports("SIZE"):
            mail += f" SIZE={len(queued.content)}"
        reply = session.command(mail, step="mail")
        if reply.code != 250:
            session.quit()
            return self._all(recipients, reply, hop)
        results: dict[str, _RecipientResult] = {}
        accepted = []
        for recipient in recipients:
            reply = session.rcpt_to(recipient)
            if reply.code in (250, 251):
                accepted.append(recipient)
            else:
                results[recipient] = self._result(recipient, reply, hop)
        if accepted:
            reply = session.start_data()
            if reply.code == 354:
                reply = session.send_message(queued.content)
            for recipient in accepted:
                results[recipient] = self._result(recipient, reply, hop)
        session.quit()
        return [results[recipient] for recipient in recipients]

    def _start_tls(self, session: SmtpSession, hop: _Hop) -> LabReason | tuple[str, str] | None:
        """Send STARTTLS to the smart host and switch to TLS; return the reply's (status, text) or the reason on failure."""
        reply = session.command("STARTTLS", step="tls")
        if reply.code != 220:
            session.quit()
            return _status_of(reply), _reply_text(reply)
        context = ssl.create_default_context(cafile=str(self.smart_host_certificate)) \
            if self.smart_host_certificate else ssl.create_default_context()
        try:
            wrapped = session.wrap_tls(context, server_hostname=hop.hostname if hop.hostname[:1] != "[" else hop.address)
        except (ssl.SSLError, OSError) as error:
            return LabReason("4.7.5", "tls_failed", {"error": str(error)})
        session.tls = describe_tls(wrapped, verified=True)
        session.ehlo()
        return None

    def _all(self, recipients: list[str], reply: Reply, hop: _Hop) -> list[_RecipientResult]:
        return [self._result(recipient, reply, hop) for recipient in recipients]

    @staticmethod
    def _result(recipient: str, reply: Reply, hop: _Hop) -> _RecipientResult:
        if 200 <= reply.code < 300:
            outcome = DELIVERED
        elif reply.code >= 500:
            outcome = FAILED
        else:
            outcome = DEFERRED
        return _RecipientResult(recipient, outcome, _status_of(reply), _reply_text(reply), hop.hostname, hop.address)

    def _log_session(self, session: SmtpSession, hop: _Hop) -> None:
        """Write the session's commands and replies as the service's outbound W3C lines."""
        now = self.server.clock.now()
        pending_reply: list[str] = []

        def flush_reply() -> None:
            if pending_reply:
                # NOTE: the lab logs a multi-line reply once, with its first line. Whether the
                # service logs every line of an EHLO reply is not confirmed.
                self._write_log(LogEntry(
                    when=now, client_ip=hop.address, server_ip="", method="", server_port=SMTP_PORT,
                    cs_uri_query=pending_reply[0], username="OutboundConnectionResponse",
                    sc_bytes=sum(len(line) + 2 for line in pending_reply)))
                pending_reply.clear()

        for entry in session.transcript:
            if entry.direction == Direction.SERVER:
                pending_reply.append(entry.text)
                continue
            if entry.direction != Direction.CLIENT:
                continue
            flush_reply()
            # The message lines after DATA and the AUTH lines that carry credentials get no log line.
            if entry.step == "message" or entry.text == REDACTED:
                continue
            verb, _, argument = entry.text.partition(" ")
            # NOTE: public samples put the command's argument in cs-uri-query and a small
            # number in sc-bytes; that this number is the verb's length is not confirmed.
            self._write_log(LogEntry(when=now, client_ip=hop.address, server_ip="", method=verb.upper(),
                                     server_port=SMTP_PORT, cs_uri_query=argument,
                                     username="OutboundConnectionCommand", sc_bytes=len(verb)))
        flush_reply()

    def _write_log(self, entry: LogEntry) -> None:
        try:
            self.server.log_writer.write(entry)
        except OSError:
            log.exception("failed to write an outbound W3C log line for %s", entry.client_ip)

    # Returning mail

    def _return_to_sender(self, queued: _QueuedMessage, failed: list[_RecipientResult], state: _QueueState,
                          now: datetime) -> None:
        reply = "; ".join(sorted({item.text for item in failed}))
        if not queued.sender:
            is_report = dsn.is_dsn(queued.content)
            text = dsn.DSN_UNDELIVERABLE_TEXT if is_report else _one_line(failed[0].text)
            code = dsn.DSN_UNDELIVERABLE_CODE if is_report else _EXPIRED_CODE if failed[0].outcome == EXPIRED \
                else _FAILED_CODE
            files = self._to_badmail(queued, text, code, recipients=[item.recipient for item in failed])
            for item in failed:
                self._record(now, queued, item.recipient, BADMAIL, host=item.host, address=item.address,
                             reply=item.text, reason=item.reason, attempt=state.attempts, files=files)
            return
        statuses = [dsn.RecipientStatus(item.recipient, item.status, item.text,
                                        item.host or None) for item in failed]
        report = self._build_report("failed", queued, statuses, state, now)
        stored = self.server.store_generated(sender="", recipients=[queued.sender], content=report)
        files = tuple(f"{path.parent.name}\\{path.name}" for path in stored.files)
        for item in failed:
            self._record(now, queued, item.recipient, item.outcome if item.outcome == EXPIRED else FAILED,
                         host=item.host, address=item.address, reply=item.text, reason=item.reason,
                         attempt=state.attempts)
            self._record(now, queued, item.recipient, NDR_SENT, reply=stored.message_id, files=files)
        log.info("NDR %s for %s to %s about %s", stored.message_id, queued.message_id, queued.sender or "<>", reply)

    def _notify_delay(self, queued: _QueuedMessage, deferred: list[_RecipientResult], state: _QueueState,
                      now: datetime) -> None:
        statuses = [dsn.RecipientStatus(item.recipient, item.status, item.text, item.host or None)
                    for item in deferred]
        report = self._build_report("delayed", queued, statuses, state, now)
        stored = self.server.store_generated(sender="", recipients=[queued.sender], content=report)
        state.delay_notified = True
        files = tuple(f"{path.parent.name}\\{path.name}" for path in stored.files)
        for item in deferred:
            self._record(now, queued, item.recipient, DELAY_NOTICE, reply=stored.message_id, files=files)

    def _build_report(self, action: str, queued: _QueuedMessage, statuses: list[dsn.RecipientStatus],
                      state: _QueueState, now: datetime) -> bytes:
        message_id = self.server.next_message_id()
        boundary = f"9B095B5ADSN={message_id.strip('<>').partition('@')[0]}"
        return dsn.build_dsn(
            action=action, postmaster=f"postmaster@{self.server.default_domain}", reporting_mta=self.server.hostname,
            sender=queued.sender, arrival=state.arrival, now=now, zone=self.server.zone, message_id=message_id,
            boundary=boundary, original=queued.content, recipients=statuses,
            received_from=_received_from(queued.content),
            retry_until=state.arrival + self._minutes(EXPIRATION_MINUTES))

    def _to_badmail(self, queued: _QueuedMessage, text: str, code: str,
                    recipients: list[str] | None = None) -> tuple[str, ...]:
        reason = dsn.badmail_reason(text=text, code=code, sender=queued.sender, dsn=dsn.is_dsn(queued.content))
        paths = self.server.store_badmail(content=queued.content, reason=reason,
                                          envelope=(queued.sender, recipients or queued.recipients))
        log.warning("%s from %s went to Badmail as %s: %s", queued.message_id, queued.sender or "<>",
                    paths[0].name, text)
        return tuple(f"{path.parent.name}\\{path.name}" for path in paths)

    def _record(self, now: datetime, queued: _QueuedMessage, recipient: str, outcome: str, **values: object) -> None:
        self.records.append(DeliveryRecord(time=now, queue_file=queued.path.name, message_id=queued.message_id,
                                           sender=queued.sender, recipient=recipient, outcome=outcome, **values))


def _read_queue_file(path: Path) -> _QueuedMessage:
    """Split a queue file into its X-Sender/X-Receiver envelope and the message bytes."""
    data = path.read_bytes()
    envelope_sender, recipients, offset = mailroot.split_envelope(data)
    sender = envelope_sender or ""
    content = data[offset:]
    message_id = find_message_id(content)
    return _QueuedMessage(path, sender, recipients, content, message_id.strip() if message_id else "-")


def _replace_file(path: Path, data: bytes) -> None:
    """Replace `path` with `data` through a temporary file in the same folder, so no reader sees half a file."""
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _arrival_from_name(name: str) -> datetime | None:
    """Return the arrival time a `NTFS_<low><high><counter>.EML` name carries, or None for other names."""
    if not mailroot.is_ntfs_file_name(name):
        return None
    low, high = int(name[5:13], 16), int(name[13:21], 16)
    filetime = (high << 32) | low
    return datetime(1601, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=filetime // 10)


def _received_from(content: bytes) -> str | None:
    """Return the HELO name in the first `Received: from NAME` line that the service added."""
    header, _ = split_header_block(content)
    if header.lower().startswith(b"received: from "):
        return header[len(b"received: from "):].split(b" ", 1)[0].decode("ascii", "replace")
    return None


def _status_of(reply: Reply) -> str:
    if reply.enhanced:
        return reply.enhanced
    return f"{reply.code // 100}.0.0"


def _reply_text(reply: Reply) -> str:
    return " ".join(reply.raw)


def _one_line(text: str) -> str:
    return " ".join(text.split())

