"""`audit()`: read-only security checks of an SMTP server, each with a verdict and a fix.

The audit looks for the usual mistakes: relay open to a client that did not authenticate,
the `user%domain@local` form, STARTTLS missing, old TLS versions and weak cipher suites, a
certificate that is untrusted or expired, AUTH that takes credentials before TLS, a banner
that names the software version, and VRFY that reveals which accounts exist.

It is safe to point at a production server:
- it opens at most MAX_CONNECTIONS connections, each with a timeout on every step and a
  deadline for the whole session;
- it tries only reserved example addresses (RFC 2606 and RFC 6761 names) and never sends
  DATA, so no message can be delivered;
- it sends no credentials: an AUTH offer is tested by starting AUTH and cancelling it with
  `*` (RFC 4954 section 4) at the first prompt.
Certificates are verified against the system's CAs unless a CA file is given, such as the
mail lab's own certificate or an internal CA. The TLS version and weak-cipher probes do not
verify the certificate, because they only ask which versions and suites the server accepts.
A probe counts as refused after a TLS alert, or after a closed connection when another
handshake with the server completed. A timeout never counts as a refusal, and after a
rejected STARTTLS no further TLS probe runs.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import re
import ssl
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from adminkb.errors import InputError, os_error_text
from adminkb.findings.table import FindingTable, finding_table
from adminkb.i18n import catalog, message
from adminkb.smtp.addresses import (is_domain, validate_ehlo_name, validate_host, validate_port,
                                    validate_source_address, validate_timeout)
from adminkb.smtp.replies import Reply
from adminkb.smtp.session import DEFAULT_EHLO_NAME, SessionError, SmtpSession, TlsInfo, host_port
from adminkb.smtp.transcript import Transcript

logger = logging.getLogger("adminkb.smtp.audit")

# One plain session, one verified TLS session, one more to read a certificate that failed
# verification, four single-version handshakes and one weak-cipher handshake.
MAX_CONNECTIONS = 8
DEFAULT_TIMEOUT = 10.0

# Reserved names only, so that an open relay accepts nothing that could reach a real mailbox.
AUDIT_SENDER = "relay-audit@example.net"
REMOTE_DOMAIN = "relay-audit.test"
REMOTE_RECIPIENT = f"relay-check@{REMOTE_DOMAIN}"
# A local part that no real server should know, for comparison with an expected account.
UNKNOWN_USER = "adminkb-no-such-user-7d1e"
DEFAULT_VRFY_USER = "postmaster"
# A certificate that expires within this many days is reported so it can be renewed in time.
EXPIRY_WARNING_DAYS = 30

# The TLS versions tried one by one. RFC 8996 deprecates TLS 1.0 and 1.1.
TLS_VERSIONS = (("TLSv1", ssl.TLSVersion.TLSv1), ("TLSv1.1", ssl.TLSVersion.TLSv1_1),
                ("TLSv1.2", ssl.TLSVersion.TLSv1_2), ("TLSv1.3", ssl.TLSVersion.TLSv1_3))
DEPRECATED_VERSIONS = ("TLSv1", "TLSv1.1")
CURRENT_VERSIONS = ("TLSv1.2", "TLSv1.3")
# Suites without encryption or authentication, export-grade, single DES, 3DES, RC4 and MD5.
# OpenSSL keeps those it was built with. Debian 12's OpenSSL 3.0 has only the NULL and anonymous ones.
WEAK_CIPHERS = "NULL:aNULL:eNULL:EXPORT:DES:3DES:RC4:MD5:@SECLEVEL=0"

ITEMS = ("relay", "percent_relay", "starttls", "tls_versions", "weak_ciphers", "certificate_trust",
         "certificate_expiry", "auth_before_tls", "banner_version", "vrfy")
# The items that need a TLS session; none of them is checked when STARTTLS is missing or rejected.
_TLS_ITEMS = ("tls_versions", "weak_ciphers", "certificate_trust", "certificate_expiry")

# A version number such as 6.0.3790.4675 or 3.7.11 in a banner, else a "Version: 6" phrase.
_DOTTED_VERSION = re.compile(r"\b\d+\.\d+(?:\.\d+)+\b")
_VERSION_PHRASE = re.compile(r"\bVersion:?\s*\d\S*", re.IGNORECASE)


class Outcome(str, enum.Enum):
    """The result of one audit item."""

    PASS = "pass"
    INFO = "info"
    PROBLEM = "problem"
    NOT_CHECKED = "not_checked"


@dataclass
class AuditItem:
    """One check: its outcome, the catalog finding that explains it, and the evidence seen."""

    name: str
    outcome: Outcome
    finding: str
    values: dict[str, object] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return message(f"smtp_audit.item.{self.name}.title")

    @property
    def outcome_label(self) -> str:
        return message(f"smtp_audit.outcome.{self.outcome.value}")

    @property
    def explanation(self) -> str:
        return message(f"smtp_audit.item.{self.name}.{self.finding}", **self.values)

    @property
    def fix(self) -> str:
        """The fix for a problem or a note; "-" when the item passed or was not checked.

        A finding with a fix of its own (`fix_<finding>` in the catalog) uses it instead of the item's.
        """
        if self.outcome not in (Outcome.PROBLEM, Outcome.INFO):
            return "-"
        specific = f"smtp_audit.item.{self.name}.fix_{self.finding}"
        return message(specific if specific in catalog() else f"smtp_audit.item.{self.name}.fix")

    def to_dict(self) -> dict[str, object]:
        return {"item": self.name, "title": self.title, "outcome": self.outcome.value,
                "finding": self.finding, "explanation": self.explanation, "fix": self.fix,
                "values": {key: value for key, value in self.values.items()}}


@dataclass
class AuditReport:
    """Every item of one audit, the transcripts of its sessions and the connections used."""

    host: str
    port: int
    items: list[AuditItem]
    transcripts: list[tuple[str, Transcript]]
    connections: int

    @property
    def problems(self) -> list[AuditItem]:
        return [item for item in self.items if item.outcome is Outcome.PROBLEM]

    @property
    def exit_code(self) -> int:
        """0 when no problem was found, 1 when at least one was."""
        return 1 if self.problems else 0

    def item(self, name: str) -> AuditItem:
        """Return the item called `name`; KeyError when the audit has none."""
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def rows(self) -> list[dict[str, str]]:
        return [{"item": item.title, "outcome": item.outcome_label, "explanation": item.explanation,
                 "fix": item.fix} for item in self.items]

    def table(self, *, with_explanation: bool = True) -> FindingTable:
        """Return the items as a table with the catalog's column names, for a notebook to show.

        In a runbook aimed at a real server, the table's display also lists the problems for the
        record of `adminkb run` (see `adminkb.findings`).
        """
        columns = ("item", "outcome", "explanation", "fix") if with_explanation else ("item", "outcome", "fix")
        rows = self.rows()
        frame = pd.DataFrame({message(f"smtp_audit.render.column_{name}"): [row[name] for row in rows]
                              for name in columns})
        problems = [message("findings.audit_problem", item=item.title, explanation=item.explanation)
                    for item in self.problems]
        return finding_table(frame, problems)

    def transcript_text(self, *, timing: bool = True) -> str:
        parts = []
        for purpose, transcript in self.transcripts:
            parts.append(message("smtp_audit.render.session_heading", purpose=message(f"smtp_audit.session.{purpose}")))
            parts.append(transcript.to_text(timing=timing))
        return "\n".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "exit_code": self.exit_code,
                "connections": self.connections, "items": [item.to_dict() for item in self.items],
                "sessions": [{"purpose": purpose, "transcript": transcript.to_dicts()}
                             for purpose, transcript in self.transcripts]}


@dataclass
class _PlainFindings:
    """The findings of the first session, before any TLS."""

    banner: Reply | None = None
    starttls_offered: bool = False
    auth_mechanisms: tuple[str, ...] = ()


class _Auditor:
    """Runs the sessions of one audit and collects the items; counts every connection."""

    def __init__(self, host: str, port: int, *, local_domain: str | None, cafile: Path | None, tls_name: str,
                 vrfy_user: str, timeout: float, source_address: str | None, ehlo_name: str) -> None:
        self.host = host
        self.port = port
        self.local_domain = local_domain
        self.cafile = cafile
        self.tls_name = tls_name
        self.vrfy_user = vrfy_user
        self.timeout = timeout
        self.source_address = source_address
        self.ehlo_name = ehlo_name
        self.items: dict[str, AuditItem] = {}
        # The first reply other than 220 to STARTTLS; once set, no further TLS probe runs.
        self.starttls_rejection: str | None = None
        self.completed_handshakes = 0
        self.transcripts: list[tuple[str, Transcript]] = []
        self.connections = 0

    # Sessions ---------------------------------------------------------------------------

    def _open(self, purpose: str) -> SmtpSession:
        """Connect, read the banner and send EHLO; SessionError when any of it fails."""
        if self.connections >= MAX_CONNECTIONS:
            raise RuntimeError(f"the audit would exceed its limit of {MAX_CONNECTIONS} connections")
        self.connections += 1
        session = SmtpSession(self.host, self.port, timeout=self.timeout, source_address=self.source_address,
                              ehlo_name=self.ehlo_name)
        self.transcripts.append((purpose, session.transcript))
        session.connect()
        banner = session.read_banner()
        if banner.code != 220:
            session.quit()
            raise SessionError("service_unavailable", step="banner", host=self.host, port=self.port,
                               detail=banner.raw[0] if banner.raw else "")
        session.ehlo()
        return session

    def _set(self, item_name: str, outcome: Outcome, finding: str, /, **values: object) -> None:
        self.items[item_name] = AuditItem(item_name, outcome, finding, values)

    def run(self) -> AuditReport:
        plain = self._plain_session()
        if plain is not None and plain.starttls_offered:
            self._tls_sessions()
        ordered = [self.items.get(name) or AuditItem(name, Outcome.NOT_CHECKED, "not_checked") for name in ITEMS]
        if "connect" in self.items:
            ordered.insert(0, self.items["connect"])
        return AuditReport(host=self.host, port=self.port, items=ordered, transcripts=self.transcripts,
                           connections=self.connections)

    # The plain session: banner, AUTH in clear, relay, percent form, VRFY -----------------

    def _plain_session(self) -> _PlainFindings | None:
        try:
            session = self._open("plain")
        except SessionError as error:
            self._set("connect", Outcome.PROBLEM, "failed", target=host_port(self.host, self.port),
                      detail=error.describe().splitlines()[0])
            return None
        findings = _PlainFindings()
        with session:
            try:
                findings.banner = session.replies[0].reply if session.replies else None
                findings.starttls_offered = session.supports("STARTTLS")
                findings.auth_mechanisms = session.auth_mechanisms()
                self._judge_banner(findings.banner)
                self._judge_starttls(findings.starttls_offered)
                self._check_auth_in_clear(session, findings)
                self._check_relay(session)
                self._check_vrfy(session)
                session.quit()
            except SessionError as error:
                logger.info("the plain session with %s ended early: %s", host_port(self.host, self.port),
                            error.category)
        return findings

    def _judge_banner(self, banner: Reply | None) -> None:
        text = " ".join(banner.texts) if banner is not None else ""
        version = _find_version(text)
        if version:
            self._set("banner_version", Outcome.PROBLEM, "reveals", banner=text, version=version)
        else:
            self._set("banner_version", Outcome.PASS, "hidden", banner=text)

    def _judge_starttls(self, offered: bool) -> None:
        if offered:
            self._set("starttls", Outcome.PASS, "offered")
        else:
            self._set("starttls", Outcome.PROBLEM, "missing")
            for name in _TLS_ITEMS:
                self._set(name, Outcome.NOT_CHECKED, "no_starttls")

    def _check_auth_in_clear(self, session: SmtpSession, findings: _PlainFindings) -> None:
        """Start AUTH before TLS and cancel it at the first prompt, so no credential is ever sent."""
        mechanisms = findings.auth_mechanisms
        clear_text = [name for name in ("LOGIN", "PLAIN") if name in mechanisms]
        if not mechanisms:
            self._set("auth_before_tls", Outcome.PASS, "not_offered")
            return
        if not clear_text:
            self._set("auth_before_tls", Outcome.PASS, "no_clear_text", mechanisms=" ".join(mechanisms))
            return
        mechanism = clear_text[0]
        reply = session.command(f"AUTH {mechanism}", step="auth")
        if reply.code == 334:
            session.command("*", step="auth")
            self._set("auth_before_tls", Outcome.PROBLEM, "accepts_in_clear", mechanism=mechanism,
                      mechanisms=" ".join(mechanisms))
        else:
            self._set("auth_before_tls", Outcome.INFO, "offered_but_refused", mechanism=mechanism,
                      mechanisms=" ".join(mechanisms), reply=reply.raw[0])

    def _check_relay(self, session: SmtpSession) -> None:
        reply = session.mail_from(AUDIT_SENDER)
        if reply.code != 250:
            for name in ("relay", "percent_relay"):
                self._set(name, Outcome.NOT_CHECKED, "sender_rejected", reply=reply.raw[0])
            return
        reply = session.rcpt_to(REMOTE_RECIPIENT)
        if reply.positive:
            self._set("relay", Outcome.PROBLEM, "open", recipient=REMOTE_RECIPIENT, reply=reply.raw[0])
        elif reply.code // 100 == 5:
            self._set("relay", Outcome.PASS, "closed", recipient=REMOTE_RECIPIENT, reply=reply.raw[0])
        else:
            self._set("relay", Outcome.INFO, "temporary", recipient=REMOTE_RECIPIENT, reply=reply.raw[0])

        if self.local_domain is None:
            self._set("percent_relay", Outcome.NOT_CHECKED, "no_local_domain")
        else:
            percent = f"relay-check%{REMOTE_DOMAIN}@{self.local_domain}"
            reply = session.rcpt_to(percent)
            if reply.positive:
                self._set("percent_relay", Outcome.INFO, "accepted", recipient=percent, reply=reply.raw[0])
            else:
                self._set("percent_relay", Outcome.PASS, "rejected", recipient=percent, reply=reply.raw[0])
        session.command("RSET", step="mail")

    def _check_vrfy(self, session: SmtpSession) -> None:
        known = session.command(f"VRFY {self.vrfy_user}", step="rcpt")
        unknown = session.command(f"VRFY {UNKNOWN_USER}", step="rcpt")
        values = {"user": self.vrfy_user, "known_reply": known.raw[0], "unknown_reply": unknown.raw[0]}
        if known.code in (250, 251) and unknown.code != known.code:
            self._set("vrfy", Outcome.PROBLEM, "reveals", **values)
        elif known.code in (250, 251):
            self._set("vrfy", Outcome.INFO, "accepts_all", **values)
        else:
            self._set("vrfy", Outcome.PASS, "hidden", **values)

    # The TLS sessions --------------------------------------------------------------------

    def _tls_sessions(self) -> None:
        self._check_certificate()
        if self.starttls_rejection is not None and "tls_versions" in self.items:
            # The first STARTTLS was rejected, so every TLS item is already set and the
            # remaining probes would only open connections that end the same way.
            return
        self._check_versions()
        self._check_weak_ciphers()

    def _handshake(self, purpose: str, context: ssl.SSLContext) -> _Handshake:
        """Run one STARTTLS handshake in a new session and return its TLS facts or how it failed.

        After a rejected STARTTLS no further session is opened, and the result is UNTESTED.
        """
        if self.starttls_rejection is not None:
            return _Handshake(failure=_Failure.UNTESTED, reason=message("smtp_audit.reason.skipped"))
        try:
            session = self._open(purpose)
        except SessionError as error:
            return _Handshake(failure=_Failure.SESSION_FAILED, reason=_session_reason(error))
        with session:
            try:
                reply = session.command("STARTTLS", step="tls")
            except SessionError as error:
                return _Handshake(failure=_Failure.UNTESTED, reason=_session_reason(error))
            if reply.code != 220:
                self._reject_starttls(reply.raw[0])
                session.quit()
                return _Handshake(failure=_Failure.STARTTLS_REJECTED,
                                  reason=message("smtp_audit.reason.starttls_rejected", reply=reply.raw[0]))
            try:
                facts = _wrap(session, context, self.tls_name)
            except ssl.SSLCertVerificationError as error:
                return _failed(session, _Failure.NOT_VERIFIED, str(error.verify_message or error))
            except TimeoutError:
                return _failed(session, _Failure.UNTESTED,
                               message("smtp_audit.reason.timeout", seconds=f"{self.timeout:g}"))
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError):
                return _failed(session, _Failure.CLOSED, message("smtp_audit.reason.closed"))
            except ssl.SSLError as error:
                # A TLS alert from the server, or no version or suite in common, so the server rejected the offer.
                return _failed(session, _Failure.REFUSED, str(error.reason or error))
            except OSError as error:
                return _failed(session, _Failure.UNTESTED,
                               message("smtp_audit.reason.network_error", detail=os_error_text(error)))
            try:
                # RFC 3207 requires a new EHLO after the handshake; the transcript shows what TLS unlocks.
                session.ehlo()
                session.quit()
            except SessionError as error:
                logger.info("the %s session with %s ended early: %s", purpose, host_port(self.host, self.port),
                            error.category)
            self.completed_handshakes += 1
            return _Handshake(facts=facts)

    def _is_refusal(self, result: _Handshake) -> bool:
        """Return whether a failed probe means that the server does not accept what it offered.

        A TLS alert is a refusal. A closed connection counts as one only when another handshake
        with the same server completed in this audit, because some servers close the connection
        instead of sending an alert (the mail lab's asyncio TLS does). A timeout, a rejected
        STARTTLS or a failed session never counts, so those probes stay untested.
        """
        if result.failure is _Failure.REFUSED:
            return True
        return result.failure is _Failure.CLOSED and self.completed_handshakes > 0

    def _reject_starttls(self, reply: str) -> None:
        """Record the first STARTTLS rejection: STARTTLS is listed but unusable, and no more TLS probes run."""
        if self.starttls_rejection is None:
            self.starttls_rejection = reply
            self._set("starttls", Outcome.PROBLEM, "rejected", reply=reply)

    def _check_certificate(self) -> None:
        # With a CA file (the lab's self-signed certificate or an internal CA) only that file is
        # trusted, not the system's CAs.
        if self.cafile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(cafile=str(self.cafile))
        else:
            context = ssl.create_default_context()
        verified = self._handshake("certificate", context)
        if verified.facts is not None:
            self._set("certificate_trust", Outcome.PASS, "trusted", names=verified.facts.names_text,
                      issuer=verified.facts.tls.issuer or "-", name=self.tls_name)
            self._judge_expiry(verified.facts)
            return
        if verified.failure is _Failure.STARTTLS_REJECTED:
            for name in _TLS_ITEMS:
                self._set(name, Outcome.NOT_CHECKED, "starttls_rejected", reply=self.starttls_rejection)
            return
        if verified.failure is _Failure.SESSION_FAILED:
            for name in ("certificate_trust", "certificate_expiry"):
                self._set(name, Outcome.NOT_CHECKED, "session_failed", reason=verified.reason)
            return
        if verified.failure is not _Failure.NOT_VERIFIED:
            # A client with standard settings could not complete the handshake, whether the
            # server refused it, stalled or closed the connection.
            self._set("certificate_trust", Outcome.PROBLEM, "handshake_failed", reason=verified.reason)
            self._set("certificate_expiry", Outcome.NOT_CHECKED, "handshake_failed")
            return
        # The certificate failed verification: read it once more without verification to show
        # its names, issuer and expiry.
        details = self._handshake("certificate_details", _unverified_context())
        if details.facts is None:
            self._set("certificate_trust", Outcome.PROBLEM, "not_trusted", reason=verified.reason, names="-",
                      issuer="-", name=self.tls_name)
            if details.failure is _Failure.STARTTLS_REJECTED:
                self._set("certificate_expiry", Outcome.NOT_CHECKED, "starttls_rejected", reply=self.starttls_rejection)
            else:
                self._set("certificate_expiry", Outcome.NOT_CHECKED, "handshake_failed")
            return
        self._set("certificate_trust", Outcome.PROBLEM, "not_trusted", reason=verified.reason,
                  names=details.facts.names_text, issuer=details.facts.tls.issuer or "-", name=self.tls_name)
        self._judge_expiry(details.facts)

    def _judge_expiry(self, info: _CertificateFacts) -> None:
        if info.not_after is None:
            self._set("certificate_expiry", Outcome.NOT_CHECKED, "unreadable")
            return
        days = (info.not_after - datetime.now(timezone.utc)).days
        not_after = info.not_after.strftime("%Y-%m-%d %H:%M UTC")
        if days < 0:
            self._set("certificate_expiry", Outcome.PROBLEM, "expired", not_after=not_after, days=-days)
        elif days < EXPIRY_WARNING_DAYS:
            self._set("certificate_expiry", Outcome.INFO, "expires_soon", not_after=not_after, days=days)
        else:
            self._set("certificate_expiry", Outcome.PASS, "valid", not_after=not_after, days=days)

    def _check_versions(self) -> None:
        results: dict[str, _Handshake] = {}
        for name, version in TLS_VERSIONS:
            try:
                context = _unverified_context(version=version)
            except (ssl.SSLError, ValueError):
                results[name] = _Handshake(failure=_Failure.UNTESTED, reason=message("smtp_audit.reason.local_openssl"))
                continue
            results[name] = self._handshake(f"version_{name.replace('.', '_')}", context)
        # Judged after every probe, so that a handshake completed later also counts for _is_refusal.
        accepted: dict[str, str] = {}
        refused: dict[str, str] = {}
        untested: dict[str, str] = {}
        for name, result in results.items():
            if result.facts is not None:
                accepted[name] = result.facts.tls.cipher or "-"
            elif self._is_refusal(result):
                refused[name] = result.reason
                logger.info("%s rejected %s: %s", host_port(self.host, self.port), name, result.reason)
            else:
                untested[name] = result.reason
        self._judge_versions(accepted, refused, untested)

    def _judge_versions(self, accepted: dict[str, str], refused: dict[str, str], untested: dict[str, str]) -> None:
        """Set the TLS version item. Only a version that the server refused counts as not accepted."""
        values = {"accepted": ", ".join(f"{name} ({cipher})" for name, cipher in accepted.items()) or "-",
                  "refused": _version_list(refused), "untested": _version_list(untested)}
        deprecated = [name for name in DEPRECATED_VERSIONS if name in accepted]
        if deprecated:
            self._set("tls_versions", Outcome.PROBLEM, "deprecated", deprecated=", ".join(deprecated), **values)
        elif not any(name in accepted for name in CURRENT_VERSIONS):
            if all(name in refused for name in CURRENT_VERSIONS):
                self._set("tls_versions", Outcome.PROBLEM, "no_current", **values)
            else:
                self._set("tls_versions", Outcome.NOT_CHECKED, "untested", **values)
        elif not all(name in refused for name in DEPRECATED_VERSIONS):
            self._set("tls_versions", Outcome.INFO, "deprecated_untested", **values)
        else:
            self._set("tls_versions", Outcome.PASS, "current_only", **values)

    def _check_weak_ciphers(self) -> None:
        try:
            context = _unverified_context(version=None, ciphers=WEAK_CIPHERS)
        except ssl.SSLError:
            self._set("weak_ciphers", Outcome.NOT_CHECKED, "none_available")
            return
        offered = [entry["name"] for entry in context.get_ciphers() if entry.get("protocol") != "TLSv1.3"]
        result = self._handshake("weak_ciphers", context)
        if result.facts is not None:
            self._set("weak_ciphers", Outcome.PROBLEM, "accepted", cipher=result.facts.tls.cipher or "-",
                      count=len(offered))
        elif self._is_refusal(result):
            self._set("weak_ciphers", Outcome.PASS, "refused", count=len(offered), reason=result.reason)
        else:
            self._set("weak_ciphers", Outcome.NOT_CHECKED, "untested", count=len(offered), reason=result.reason)


class _Failure(enum.Enum):
    """The cause of a STARTTLS attempt that ended without a TLS session."""

    STARTTLS_REJECTED = "starttls_rejected"  # a reply other than 220 to STARTTLS
    NOT_VERIFIED = "not_verified"            # the certificate failed verification
    REFUSED = "refused"                      # a TLS alert, or no version or suite in common
    CLOSED = "closed"                        # the server closed the connection during the handshake
    UNTESTED = "untested"                    # a timeout or another network error, so the probe has no result
    SESSION_FAILED = "session_failed"        # connect, banner or EHLO failed before STARTTLS


@dataclass(frozen=True)
class _Handshake:
    """The result of one STARTTLS attempt: the TLS facts, or the failure and its reason."""

    facts: _CertificateFacts | None = None
    failure: _Failure | None = None
    reason: str = ""


def _failed(session: SmtpSession, failure: _Failure, reason: str) -> _Handshake:
    session.note("smtp_audit.note.handshake_failed", step="tls", reason=reason)
    return _Handshake(failure=failure, reason=reason)


def _session_reason(error: SessionError) -> str:
    """Return the failure of a session in one line, with the server's reply when it sent one."""
    verdict = error.describe().splitlines()[0].rstrip("。.")
    if re.match(r"[2-5]\d\d\b", error.detail):
        return message("smtp_audit.reason.session", verdict=verdict, reply=error.detail)
    return verdict


def _version_list(reasons: dict[str, str]) -> str:
    """Return "TLSv1 (reason), ..." in the user's language, or "-" for none."""
    return ", ".join(message("smtp_audit.reason.entry", version=name, reason=reason)
                     for name, reason in reasons.items()) or "-"


@dataclass(frozen=True)
class _CertificateFacts:
    """The TLS facts of a handshake and the names and end date of the server certificate."""

    tls: TlsInfo
    names: tuple[str, ...]
    not_after: datetime | None

    @property
    def names_text(self) -> str:
        return ", ".join(self.names) or "-"


def _find_version(banner: str) -> str | None:
    """Return the first version number in a banner, skipping IPv4 addresses such as 192.0.2.1."""
    for found in _DOTTED_VERSION.finditer(banner):
        try:
            ipaddress.IPv4Address(found.group(0))
        except ValueError:
            return found.group(0)
    phrase = _VERSION_PHRASE.search(banner)
    return phrase.group(0) if phrase else None


def _unverified_context(*, version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    """Build a client context that accepts any certificate, for version and cipher probes.

    A single `version` pins both ends of the range. Old versions and `ciphers` need OpenSSL's
    security level 0, because OpenSSL 3 refuses TLS 1.0, 1.1 and weak suites above it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0 and 1.1; the audit names them to find servers that still accept them.
        warnings.simplefilter("ignore", DeprecationWarning)
        if version is not None:
            context.minimum_version = version
            context.maximum_version = version
        if ciphers is not None:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(ciphers)
        elif version is not None and version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _wrap(session: SmtpSession, context: ssl.SSLContext, server_hostname: str) -> _CertificateFacts:
    """Switch the session to TLS after a 220 to STARTTLS, with the audit's own context.

    The context trusts a CA file, pins one TLS version or offers weak suites only, which
    `SmtpSession.starttls()` does not, so the audit calls the session's `wrap_tls` directly.
    """
    wrapped = session.wrap_tls(context, server_hostname=server_hostname, timeout=session.timeout)
    der = wrapped.getpeercert(binary_form=True)
    names, not_after, subject, issuer = _read_certificate(der)
    cipher = wrapped.cipher()
    session.tls = TlsInfo(version=wrapped.version(), cipher=cipher[0] if cipher else None,
                          verified=context.verify_mode != ssl.CERT_NONE, subject=subject, issuer=issuer,
                          not_after=not_after.strftime("%Y-%m-%d %H:%M UTC") if not_after else None)
    session.note("smtp.note.tls_started", step="tls", version=session.tls.version or "-",
                 cipher=session.tls.cipher or "-")
    return _CertificateFacts(tls=session.tls, names=names, not_after=not_after)


def _read_certificate(der: bytes | None) -> tuple[tuple[str, ...], datetime | None, str | None, str | None]:
    """Return the subject alternative names, end date, subject and issuer of a DER certificate."""
    if not der:
        return (), None, None, None
    from cryptography import x509

    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as error:
        logger.info("the server certificate could not be read: %s", error)
        return (), None, None, None
    names: list[str] = []
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += alternative.get_values_for_type(x509.DNSName)
        names += [str(address) for address in alternative.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        common_names = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        names += [str(attribute.value) for attribute in common_names]
    return (tuple(names), certificate.not_valid_after_utc, certificate.subject.rfc4514_string(),
            certificate.issuer.rfc4514_string())


def audit(host: str, port: int = 25, *, local_domain: str | None = None, cafile: str | Path | None = None,
          tls_name: str | None = None, vrfy_user: str = DEFAULT_VRFY_USER, timeout: float = DEFAULT_TIMEOUT,
          source_address: str | None = None, ehlo_name: str = DEFAULT_EHLO_NAME) -> AuditReport:
    """Audit the SMTP server at `host`:`port` and return the report; nothing is ever delivered.

    `local_domain` enables the `user%domain@local` check. `cafile` replaces the system's CAs
    with one PEM file (the lab's certificate, for example). `tls_name` is the name the
    certificate must carry (default: `host`). `vrfy_user` is an account expected to exist.
    `timeout` bounds connect and each reply, in seconds. Bad input raises InputError before
    any connection is made.
    """
    host = validate_host(host)
    port = validate_port(port)
    timeout = validate_timeout(timeout)
    source_address = validate_source_address(source_address)
    ehlo_name = validate_ehlo_name(ehlo_name)
    if local_domain is not None and not is_domain(local_domain):
        raise InputError("smtp_audit.input.invalid_domain", value=local_domain,
                         next_key="smtp_audit.input.invalid_domain_next")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", vrfy_user or ""):
        raise InputError("smtp_audit.input.invalid_vrfy_user", value=vrfy_user,
                         next_key="smtp_audit.input.invalid_vrfy_user_next")
    ca_path = _checked_cafile(cafile)
    name = validate_host(tls_name) if tls_name is not None else host
    started = time.monotonic()
    auditor = _Auditor(host, port, local_domain=local_domain, cafile=ca_path, tls_name=name, vrfy_user=vrfy_user,
                       timeout=timeout, source_address=source_address, ehlo_name=ehlo_name)
    report = auditor.run()
    logger.info("audit of %s: %d problems, %d connections, %.1f s", host_port(host, port), len(report.problems),
                report.connections, time.monotonic() - started)
    return report


def _checked_cafile(cafile: str | Path | None) -> Path | None:
    if cafile is None:
        return None
    path = Path(cafile)
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as error:
        # Checked before OSError, its base class, because an SSLError's errno is OpenSSL's code.
        detail = message("smtp_audit.input.cafile_no_certificate", reason=error.reason or error)
    except OSError as error:
        detail = os_error_text(error)
    else:
        return path
    raise InputError("smtp_audit.input.invalid_cafile", value=str(path), detail=detail,
                     next_key="smtp_audit.input.invalid_cafile_next")

