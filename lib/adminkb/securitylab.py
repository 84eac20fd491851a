"""The security runbook's target: a mail lab set up as an open relay on purpose, and the attacks on it.

`open_security_target("lab")` starts the mail lab with the usual mistakes: relay open to
everyone ("All except the list below" with an empty list), AUTH LOGIN accepted before TLS,
and a banner that names the version. The runbook then lets a scripted attacker abuse the
relay and guess passwords, closes each hole the way IIS Manager would, and audits the lab
before and after. The attacks use only loopback addresses and reserved domains, and they run
only against the lab. With a real `HOST[:PORT]` the read-only audit runs against that server
and every step that would attack or change it shows what to do in IIS Manager instead.

The lab account's password comes from the environment variable ADMINKB_LAB_PASSWORD. Without
it, adminkb makes a random one once per process, so no password is ever written in a notebook.
"""

from __future__ import annotations

import html
import logging
import os
import secrets
import shutil
import ssl
import tempfile
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pandas as pd

from adminkb import findings, mailroot
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import STRANGER_ADDRESS, TRUSTED_CLIENT_ADDRESS, FixedClock, MailLab, can_bind_source_address
from adminkb.smtp.addresses import validate_timeout
from adminkb.smtp.audit import AuditReport, audit
from adminkb.smtp import parse_host_port
from adminkb.smtp.session import SessionError, SmtpSession, describe_tls, host_port
from adminkb.smtp.transcript import Transcript
from adminkb.w3c import read_w3c

log = logging.getLogger("adminkb.securitylab")

PASSWORD_VARIABLE = "ADMINKB_LAB_PASSWORD"
LAB_ACCOUNT = "relayuser"
LAB = "lab"
# The lab clock of the security runbook; fixed so that every run writes the same logs.
LAB_START = datetime(2026, 3, 2, 1, 0, 0, tzinfo=timezone.utc)
LOCAL_DOMAIN = "example.com"
LOG_TIME_ZONE = "Asia/Taipei"

# Loopback source addresses of the scenario: the application server on the relay list, a
# notebook computer elsewhere that authenticates, the spammer, and the password guesser.
APP_ADDRESS = TRUSTED_CLIENT_ADDRESS
ROAMING_ADDRESS = "127.0.0.20"
ATTACKER_ADDRESS = STRANGER_ADDRESS
GUESSER_ADDRESS = "127.0.0.77"
# The administrator's workstation, from which the runbook runs the audit.
AUDITOR_ADDRESS = "127.0.0.30"

# The spammer's envelope: reserved names only (RFC 2606 and RFC 6761), so nothing can reach a mailbox.
SPAM_SENDER = "promo@example.net"
SPAM_DOMAINS = ("victims.test", "example.org", "mailbox.test")
# The password guesser's word list: common weak passwords. The random default password is
# never one of them, but ADMINKB_LAB_PASSWORD set to a weak one can be guessed, as it should.
GUESSES = ("123456", "password", "Passw0rd", "qwerty", "admin", "letmein", "welcome", "P@ssw0rd",
           "relayuser", "smtp2026")
BANNER_WITHOUT_VERSION = "ESMTP ready"

_generated_password: str | None = None


def lab_password() -> str:
    """Return the lab account's password: ADMINKB_LAB_PASSWORD, else a random one made once per process.

    The random password has a fixed length (16 characters), so the W3C log's byte counts of
    AUTH lines are the same on every run.
    """
    global _generated_password
    configured = os.environ.get(PASSWORD_VARIABLE)
    if configured:
        return configured
    if _generated_password is None:
        _generated_password = secrets.token_urlsafe(12)
    return _generated_password


class Notice(str):
    """A message shown in place of a step that runs only in the lab or is done by hand on a real server."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<div style='border-left:4px solid #9a6700;padding:0.3em 0.8em'>{html.escape(self)}</div>"


class SecurityTarget:
    """The server the security runbook works on: the lab with its weak settings, or a real server.

    Lab settings that the service applies at once (relay restrictions, connection control)
    change on the running lab. The others (AUTH only under TLS, the banner) start the lab again
    on the same folder, port and clock, so its logs and mailroot carry on.
    """

    def __init__(self, server: str = LAB, *, timeout: float = 10.0) -> None:
        self.server = server
        self.timeout = validate_timeout(timeout)
        self.lab: MailLab | None = None
        # The transcript of the last send_as() session, with AUTH lines shown as <redacted>.
        self.last_transcript: Transcript | None = None
        self._root: Path | None = None
        self.clock: FixedClock | None = None
        if server.strip().lower() != LAB:
            self.host, self.port = parse_host_port(server)
            return
        unusable = [address for address in (APP_ADDRESS, ROAMING_ADDRESS, ATTACKER_ADDRESS, GUESSER_ADDRESS, AUDITOR_ADDRESS)
                    if not can_bind_source_address(address)]
        if unusable:
            # The scenario distinguishes clients by their source address, which needs more than 127.0.0.1.
            raise InputError("securitylab.no_loopback_aliases", value=", ".join(unusable),
                             next_key="securitylab.no_loopback_aliases_next")
        self._root = Path(tempfile.mkdtemp(prefix="adminkb-security-"))
        self.clock = FixedClock(LAB_START)
        self._settings: dict[str, object] = dict(
            root=self._root, clock=self.clock, local_domains=(LOCAL_DOMAIN,), pickup_interval=None,
            relay_open=True, tls=True, basic_auth=True, accounts={LAB_ACCOUNT: lab_password()},
            auth_requires_tls=False, relay_for_authenticated=True, connect_response=None)
        self.lab = MailLab(**self._settings).start()
        self.host, self.port = self.lab.host, self.lab.port
        self._settings["port"] = self.port

    @property
    def is_lab(self) -> bool:
        return self.lab is not None

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)

    def _restart(self, **changes: object) -> None:
        """Start the lab again with `changes`, as restarting the virtual server applies a setting."""
        lab = self._require_lab()
        self._settings.update(changes)
        relay_open, grant = lab.relay_open, lab.relay_grant
        control = lab.connection_control
        lab.stop()
        self._settings.update(relay_open=relay_open, relay_grant=grant, connection_control=control)
        self.lab = MailLab(**self._settings).start()
        log.info("security lab restarted on %s with %s", self.address, ", ".join(sorted(changes)))

    def _require_lab(self) -> MailLab:
        if self.lab is None:
            raise RuntimeError("this step needs the mail lab")
        return self.lab

    # Settings ---------------------------------------------------------------------------

    def settings_table(self) -> pd.DataFrame | Notice:
        """Return the lab's security settings as the IIS Manager dialogs name them."""
        if self.lab is None:
            return Notice(message("securitylab.settings_by_hand"))
        lab = self.lab
        yes, no = message("securitylab.yes"), message("securitylab.no")
        if lab.relay_open:
            relay = message("securitylab.relay_all_except", entries=", ".join(lab.relay_grant) or "-")
        else:
            relay = message("securitylab.relay_only", entries=", ".join(lab.relay_grant) or "-")
        control = lab.connection_control
        if control is None:
            connection = message("securitylab.connection_all")
        elif "deny" in control:
            connection = message("securitylab.connection_all_except", entries=", ".join(control["deny"]))
        else:
            connection = message("securitylab.connection_only", entries=", ".join(control["grant"]))
        rows = [
            ("relay", relay),
            ("relay_for_authenticated", yes if self._settings["relay_for_authenticated"] else no),
            ("auth_requires_tls", yes if self._settings["auth_requires_tls"] else no),
            ("connection", connection),
            ("banner", message("securitylab.banner_hidden") if self._settings["connect_response"]
             else message("securitylab.banner_version")),
        ]
        return pd.DataFrame({message("securitylab.column.setting"): [message(f"securitylab.setting.{key}")
                                                                    for key, _ in rows],
                             message("securitylab.column.value"): [value for _, value in rows]})

    def restrict_relay(self, grant: list[str] | tuple[str, ...] = (APP_ADDRESS,)) -> pd.DataFrame | Notice:
        """Switch relay to "Only the list below" with `grant`, as in the Relay Restrictions dialog."""
        if self.lab is None:
            return Notice(message("securitylab.relay_by_hand"))
        self.lab.set_relay_grant(list(grant))
        return self.settings_table()

    def require_tls_for_auth(self) -> pd.DataFrame | Notice:
        """Accept AUTH only after STARTTLS ("Requires TLS encryption" under Basic authentication)."""
        if self.lab is None:
            return Notice(message("securitylab.tls_by_hand"))
        self._restart(auth_requires_tls=True)
        return self.settings_table()

    def deny_connection(self, address: str = ATTACKER_ADDRESS) -> pd.DataFrame | Notice:
        """Add `address` to connection control's "All except the list below"."""
        if self.lab is None:
            return Notice(message("securitylab.connection_by_hand", address=address))
        self.lab.deny_connection(address)
        return self.settings_table()

    def hide_version(self) -> pd.DataFrame | Notice:
        """Replace the banner's product and version with a neutral text (the ConnectResponse property)."""
        if self.lab is None:
            return Notice(message("securitylab.banner_by_hand"))
        self._restart(connect_response=BANNER_WITHOUT_VERSION)
        return self.settings_table()

    # Sessions ---------------------------------------------------------------------------

    def _session(self, source: str | None, ehlo_name: str) -> SmtpSession:
        return SmtpSession(self.host, self.port, timeout=self.timeout, source_address=source, ehlo_name=ehlo_name)

    def attack_relay(self, sessions: int = 6, recipients: int = 4, spacing_minutes: int = 25) -> pd.DataFrame | Notice:
        """Let the spammer at 127.0.0.66 send one message per session to remote recipients.

        The lab clock moves `spacing_minutes` between sessions, so the attack spreads over hours
        in the log. Returns one row per session: its time, recipients accepted and rejected, and
        whether the server took the message.
        """
        if self.lab is None:
            return Notice(message("securitylab.lab_only"))
        _check_count(sessions, "sessions", 1, 50)
        _check_count(recipients, "recipients", 1, 20)
        _check_count(spacing_minutes, "spacing_minutes", 0, 240)
        rows = []
        for number in range(1, sessions + 1):
            addresses = [f"user{number:02d}{index}@{SPAM_DOMAINS[index % len(SPAM_DOMAINS)]}"
                         for index in range(recipients)]
            rows.append(self._spam_session(number, addresses))
            self._advance(spacing_minutes)
        return pd.DataFrame(rows)

    def _spam_session(self, number: int, addresses: list[str]) -> dict[str, object]:
        assert self.clock is not None
        row: dict[str, object] = {message("securitylab.column.session"): number,
                                  message("securitylab.column.time"): _local_time(self.clock.now())}
        accepted = rejected = 0
        outcome = message("securitylab.outcome.refused")
        session = self._session(ATTACKER_ADDRESS, "bulk-mailer.test")
        try:
            with session:
                session.connect()
                banner = session.read_banner()
                if banner.code == 220:
                    session.ehlo()
                    session.mail_from(SPAM_SENDER)
                    for address in addresses:
                        reply = session.rcpt_to(address)
                        accepted += reply.positive
                        rejected += not reply.positive
                    if accepted and session.start_data().code == 354:
                        reply = session.send_message(_spam_message(number, addresses, self.clock.now()))
                        if reply.code == 250:
                            outcome = message("securitylab.outcome.queued")
                    session.quit()
        except SessionError as error:
            outcome = message("securitylab.outcome.connection_failed", category=error.category)
        row[message("securitylab.column.accepted")] = accepted
        row[message("securitylab.column.rejected")] = rejected
        row[message("securitylab.column.outcome")] = outcome
        return row

    def guess_passwords(self, attempts: int = len(GUESSES), *, with_tls: bool = True) -> pd.DataFrame | Notice:
        """Let the guesser at 127.0.0.77 try the word list against the lab account, one second apart.

        Returns one row per attempt with the server's reply. A guess that matches
        ADMINKB_LAB_PASSWORD succeeds, as it would on a real server. Guesses are sent like any
        credential, so transcripts show them only as `<redacted>`.
        """
        if self.lab is None:
            return Notice(message("securitylab.lab_only"))
        _check_count(attempts, "attempts", 1, len(GUESSES))
        rows = []
        session = self._session(GUESSER_ADDRESS, "guesser.test")
        try:
            with session:
                session.connect()
                session.read_banner()
                session.ehlo()
                if with_tls and session.supports("STARTTLS"):
                    # The guesser does not care whose certificate it is; TLS only hides its guesses.
                    session.starttls(verify=False)
                    session.ehlo()
                for number, guess in enumerate(GUESSES[:attempts], start=1):
                    when = _local_time(self._require_lab().clock.now())
                    if "LOGIN" not in session.auth_mechanisms():
                        rows.append(_guess_row(number, when, message("securitylab.outcome.auth_hidden")))
                        break
                    reply = session.authenticate(LAB_ACCOUNT, guess, "LOGIN")
                    rows.append(_guess_row(number, when, reply.raw[0]))
                    self._advance(seconds=1)
                session.quit()
        except SessionError as error:
            rows.append(_guess_row(len(rows) + 1, "-", message("securitylab.outcome.connection_failed",
                                                               category=error.category)))
        return pd.DataFrame(rows)

    def send_as(self, who: str) -> pd.DataFrame | Notice:
        """Send one message to a remote recipient as `app` (from the relay list) or `roaming` (with AUTH).

        `roaming` authenticates with the lab account's password from lab_password(). It starts
        TLS first whenever the lab offers STARTTLS, trusting the lab's certificate only.
        """
        if self.lab is None:
            return Notice(message("securitylab.lab_only"))
        if who not in ("app", "roaming"):
            raise InputError("securitylab.unknown_sender", value=who, next_key="securitylab.unknown_sender_next")
        source = APP_ADDRESS if who == "app" else ROAMING_ADDRESS
        session = self._session(source, f"{who}.example.com")
        steps = []
        self.last_transcript = session.transcript
        with session:
            try:
                session.connect()
                session.read_banner()
                session.ehlo()
                if who == "roaming":
                    if session.supports("STARTTLS"):
                        self._start_tls(session)
                        steps.append(("STARTTLS", session.tls.version if session.tls else "-"))
                    reply = session.authenticate(LAB_ACCOUNT, lab_password(), "LOGIN")
                    steps.append(("AUTH LOGIN", reply.raw[0]))
                steps.append(("MAIL FROM", session.mail_from(f"{who}@example.com").raw[0]))
                reply = session.rcpt_to("customer@example.org")
                steps.append(("RCPT TO", reply.raw[0]))
                if reply.positive and session.start_data().code == 354:
                    reply = session.send_message(_business_message(who, self.clock.now()))
                    steps.append(("DATA", reply.raw[0]))
                session.quit()
            except SessionError as error:
                steps.append(("-", error.describe().splitlines()[0]))
        return pd.DataFrame({message("securitylab.column.step"): [step for step, _ in steps],
                             message("securitylab.column.reply"): [reply for _, reply in steps]})

    def _start_tls(self, session: SmtpSession) -> None:
        """Start TLS, trusting only the lab's certificate in the lab and the system's CAs elsewhere, then send EHLO again."""
        if self.lab is not None:
            context = ssl.create_default_context(cafile=str(self.lab.certificate_file))
        else:
            context = ssl.create_default_context()
        reply = session.command("STARTTLS", step="tls")
        if reply.code == 220:
            wrapped = session.wrap_tls(context, server_hostname=self.host, timeout=self.timeout)
            session.tls = describe_tls(wrapped, verified=True)
            session.ehlo()

    def ehlo_keywords(self) -> pd.DataFrame:
        """Return the AUTH mechanisms the EHLO reply lists before and after STARTTLS (read-only).

        In the lab the session comes from the roaming computer's address; on a real server from
        this computer, with the certificate checked against the system's CAs.
        """
        source = ROAMING_ADDRESS if self.lab is not None else None
        session = self._session(source, "roaming.example.com")
        with session:
            session.connect()
            session.read_banner()
            session.ehlo()
            before = _auth_keywords(session)
            after = "-"
            if session.supports("STARTTLS"):
                self._start_tls(session)
                after = _auth_keywords(session)
            session.quit()
        return pd.DataFrame({message("securitylab.column.stage"): [message("securitylab.stage.before_tls"),
                                                                  message("securitylab.stage.after_tls")],
                             message("securitylab.column.auth_offer"): [before, after]})

    def try_connect(self, source: str = ATTACKER_ADDRESS) -> str:
        """Connect to the lab from `source`, read the banner and return its first line or the failure."""
        if self.lab is None:
            return Notice(message("securitylab.lab_only"))
        session = self._session(source, "bulk-mailer.test")
        with session:
            try:
                session.connect()
                banner = session.read_banner()
                session.quit()
                return banner.raw[0]
            except SessionError as error:
                return error.describe().splitlines()[0]

    def _advance(self, minutes: float = 0, seconds: float = 0) -> None:
        if self.clock is not None:
            self.clock.advance(timedelta(minutes=minutes, seconds=seconds))

    # Audit and logs ---------------------------------------------------------------------

    def audit(self, *, source_address: str | None = None) -> AuditReport:
        """Run `adminkb.smtp.audit` against the target; in the lab it trusts the lab's certificate only."""
        if self.lab is None:
            return audit(self.host, self.port, timeout=self.timeout, source_address=source_address)
        return audit(self.host, self.port, local_domain=LOCAL_DOMAIN, cafile=self.lab.certificate_file,
                     timeout=self.timeout, source_address=source_address or AUDITOR_ADDRESS)

    def queue_table(self) -> pd.DataFrame | Notice:
        """Return the messages waiting in the lab's Queue folder: what the open relay will deliver."""
        if self.lab is None:
            return Notice(message("securitylab.lab_only"))
        return mailroot.message_table(self.lab.queue_files())

    def log_files(self) -> list[Path]:
        return self._require_lab().log_files()

    def read_logs(self, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
        """Read the lab's W3C logs, or the logs at `path` on a real server, in Taiwan time."""
        if self.lab is None:
            if not path:
                raise InputError("securitylab.log_path_missing", next_key="securitylab.log_path_missing_next")
            return read_w3c(path, tz=LOG_TIME_ZONE)
        return read_w3c(self.lab.log_files(), tz=LOG_TIME_ZONE)

    def close(self) -> Notice:
        """Stop the lab and remove its folder; a real server is left alone."""
        if self.lab is None:
            return Notice(message("securitylab.nothing_to_stop", address=self.address))
        self.lab.stop()
        self.lab = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        return Notice(message("securitylab.stopped"))


def _check_count(value: object, option: str, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InputError("securitylab.invalid_count", value=value, option=option, minimum=minimum, maximum=maximum,
                         next_key="securitylab.invalid_count_next")


def _local_time(instant: datetime) -> str:
    return pd.Timestamp(instant).tz_convert(LOG_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def _guess_row(number: int, when: str, reply: str) -> dict[str, object]:
    return {message("securitylab.column.attempt"): number, message("securitylab.column.time"): when,
            message("securitylab.column.reply"): reply}


def _auth_keywords(session: SmtpSession) -> str:
    mechanisms = session.auth_mechanisms()
    return "AUTH " + " ".join(mechanisms) if mechanisms else message("securitylab.no_auth_offered")


def _spam_message(number: int, addresses: list[str], when: datetime) -> bytes:
    date = format_datetime(when)
    lines = [f"From: <{SPAM_SENDER}>", f"To: {', '.join(f'<{address}>' for address in addresses)}",
             f"Subject: Special offer {number}", f"Date: {date}", f"Message-ID: <spam.{number}@example.net>", "",
             "This test message shows what an open relay forwards for anyone.", ""]
    return "\r\n".join(lines).encode("ascii")


def _business_message(who: str, when: datetime) -> bytes:
    lines = [f"From: <{who}@example.com>", "To: <customer@example.org>", f"Subject: Order confirmation ({who})",
             f"Date: {format_datetime(when)}", f"Message-ID: <{who}.order@example.com>", "",
             "Legitimate mail that the relay settings must keep working.", ""]
    return "\r\n".join(lines).encode("ascii")


def open_security_target(server: str = LAB, *, timeout: float = 10.0) -> SecurityTarget:
    """Start the security lab for `server="lab"`, or point at a real `HOST[:PORT]`, and return the target.

    For a real server, the audit tables the runbook displays from now on list their problems for
    the record of `adminkb run` (see `adminkb.findings`). The lab's weak settings do not count.
    """
    target = SecurityTarget(server, timeout=timeout)
    findings.report_findings(not target.is_lab)
    log.info("security runbook target %s (lab: %s)", target.address, target.is_lab)
    return target
