"""`probe()`: run one SMTP session the way an administrator would by hand, and judge it.

By default the probe stops after RCPT TO, so nothing is delivered; `send=True` goes on
through DATA with a small test message and QUIT. Every input is checked before connecting.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from adminkb.errors import InputError
from adminkb.findings import finding_bundle
from adminkb.i18n import message
from adminkb.smtp.addresses import validate_address
from adminkb.smtp.replies import Reply, explain
from adminkb.smtp.session import (DEFAULT_EHLO_NAME, STEPS, EhloInfo, SessionError, SmtpSession, TlsInfo, host_port,
                                  is_loopback)
from adminkb.smtp.transcript import Direction, RecordedReply, Transcript
from adminkb.smtp.verdict import EXIT_CODES, EXIT_OK, Level, Verdict, level_for, verdict_for_reply

logger = logging.getLogger("adminkb.smtp.probe")


@dataclass
class ProbeResult:
    """The outcome of one probe: transcript, replies, verdict and swaks-style exit code.

    `show_timing` decides whether repr() and the notebook displays show elapsed times; set it
    to False where outputs are compared between runs.
    """

    host: str
    port: int
    transcript: Transcript
    replies: list[RecordedReply]
    verdict: Verdict
    accepted: list[str] = field(default_factory=list)
    refused: list[tuple[str, Reply]] = field(default_factory=list)
    ehlo: EhloInfo | None = None
    tls: TlsInfo | None = None
    sent: bool = False
    show_timing: bool = True

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    @property
    def ok(self) -> bool:
        return self.verdict.level is Level.OK

    def explanations(self) -> list[tuple[RecordedReply, object]]:
        """Return each recorded reply with its explanation, in order."""
        return [(recorded, explain(recorded.reply)) for recorded in self.replies]

    def to_text(self, *, timing: bool = True, markers: str = "telnet") -> str:
        """Render the transcript (telnet `S:`/`C:` or swaks `<-`/`->` markers) and the verdict."""
        heading = message("smtp.render.transcript_heading", target=host_port(self.host, self.port))
        return "\n".join([heading, self.transcript.to_text(timing=timing, markers=markers), "",
                          *self.verdict.lines()])

    def to_dict(self) -> dict[str, object]:
        """Return everything as plain data for one JSON document (secrets are already redacted)."""
        return {
            "host": self.host,
            "port": self.port,
            "exit_code": self.exit_code,
            "verdict": self.verdict.to_dict(),
            "recipients": {"accepted": list(self.accepted),
                           "refused": [{"address": address, "reply": list(reply.raw)}
                                       for address, reply in self.refused]},
            "sent": self.sent,
            "tls": None if self.tls is None else {"version": self.tls.version, "cipher": self.tls.cipher,
                                                  "verified": self.tls.verified, "subject": self.tls.subject,
                                                  "issuer": self.tls.issuer, "not_after": self.tls.not_after},
            "ehlo_extensions": dict(self.ehlo.extensions) if self.ehlo else {},
            "transcript": self.transcript.to_dicts(),
            "replies": [{"step": recorded.step, "command": recorded.command, "lines": list(recorded.reply.raw),
                         "explanation": explain(recorded.reply).to_dict()} for recorded in self.replies],
        }

    def __repr__(self) -> str:
        return self.to_text(timing=self.show_timing)

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(self.to_text(timing=self.show_timing))  # type: ignore[attr-defined]

    def _repr_html_(self) -> str:
        return render_html(self, timing=self.show_timing)

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, object]:
        # Lists the problem for `adminkb run` when the runbook is aimed at a real server.
        return finding_bundle([self.verdict.summary] if self.verdict.level is Level.PROBLEM else [])


_LEVEL_COLOURS = {Level.OK: "#1a7f37", Level.WARNING: "#9a6700", Level.PROBLEM: "#cf222e", Level.UNKNOWN: "#57606a"}
_DIRECTION_COLOURS = {Direction.SERVER: "#0550ae", Direction.CLIENT: "#1f2328", Direction.NOTE: "#6e7781"}


def render_html(result: ProbeResult, *, timing: bool = True) -> str:
    """Render the verdict, the transcript and the reply explanations as HTML that needs no JavaScript."""
    verdict = result.verdict
    colour = _LEVEL_COLOURS[verdict.level]
    escape = html.escape
    parts = [f'<div class="adminkb-smtp-probe" style="font-family: sans-serif; line-height: 1.4">',
             f'<div class="verdict verdict-{verdict.level.value}" style="border-left: 4px solid {colour};'
             f' padding: 0.3em 0.8em; margin-bottom: 0.6em">',
             f'<strong style="color: {colour}">{escape(verdict.level_label)}</strong> {escape(verdict.summary)}',
             "<ul style=\"margin: 0.3em 0\">"]
    for line in verdict.lines()[1:]:
        parts.append(f"<li>{escape(line)}</li>")
    parts.append("</ul></div>")
    parts.append(f"<div>{escape(message('smtp.render.transcript_heading', target=host_port(result.host, result.port)))}"
                 "</div>")
    parts.append('<pre class="transcript" style="background: #f6f8fa; padding: 0.5em; overflow-x: auto">')
    for line, entry in zip(result.transcript.to_text(timing=timing).splitlines(), result.transcript):
        parts.append(f'<span class="{entry.direction.value}" style="color: {_DIRECTION_COLOURS[entry.direction]}">'
                     f"{escape(line)}</span>")
    parts.append("</pre>")
    if result.replies:
        parts.append(f"<details><summary>{escape(message('smtp.render.explanations_heading'))}</summary><dl>")
        for recorded, explanation in result.explanations():
            parts.append(f"<dt><code>{escape(str(recorded.reply))}</code></dt>")
            parts.extend(f"<dd>{escape(line)}</dd>" for line in explanation.lines())
        parts.append("</dl></details>")
    parts.append("</div>")
    return "\n".join(parts)


def build_test_message(mail_from: str, recipients: Sequence[str], *, ehlo_name: str = DEFAULT_EHLO_NAME,
                       date: datetime.datetime | None = None, message_id: str | None = None) -> bytes:
    """Build the small zh-TW test message: an RFC 2047 encoded Subject, a UTF-8 base64 body.

    `date` and `message_id` default to now and a fresh id. Runbooks that compare outputs pass
    fixed values so that the message is the same on every run.
    """
    test_message = EmailMessage(policy=email.policy.SMTP)
    test_message["From"] = mail_from or f"postmaster@{ehlo_name}"
    test_message["To"] = ", ".join(recipients)
    test_message["Subject"] = message("smtp.test_message.subject", language="zh-TW")
    test_message["Date"] = (email.utils.format_datetime(date) if date is not None
                            else email.utils.formatdate(localtime=True))
    # make_msgid calls socket.getfqdn() unless given a domain, which can stall without DNS.
    test_message["Message-ID"] = message_id or email.utils.make_msgid(idstring="adminkb", domain=ehlo_name)
    body = "\n\n".join([message("smtp.test_message.body", language="zh-TW"),
                        message("smtp.test_message.body", language="en")])
    test_message.set_content(body + "\n", charset="utf-8", cte="base64")
    return test_message.as_bytes()


def _message_bytes(content: str | bytes | EmailMessage) -> bytes:
    if isinstance(content, EmailMessage):
        return content.as_bytes(policy=email.policy.SMTP)
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    raise InputError("smtp.input.invalid_message", value=type(content).__name__)


@dataclass(frozen=True)
class _Plan:
    """The checked inputs of one probe."""

    mail_from: str
    recipients: tuple[str, ...]
    last_step: str
    send: bool
    message: bytes | None
    starttls: bool
    tls_verify: bool
    auth_user: str | None


def _plan(*, mail_from: str, rcpt_to: str | Sequence[str], quit_after: str | None, send: bool,
          message_content: object, starttls: bool, tls_verify: bool, auth_user: str | None,
          auth_password: str | None, ehlo_name: str) -> _Plan:
    sender = validate_address(mail_from, option="mail_from", allow_null=True)
    recipients_in = [rcpt_to] if isinstance(rcpt_to, str) else list(rcpt_to or [])
    if not recipients_in:
        raise InputError("smtp.input.no_recipient", value="rcpt_to")
    recipients = tuple(validate_address(address, option="rcpt_to", allow_postmaster=True)
                       for address in recipients_in)
    if quit_after is not None and quit_after not in STEPS:
        raise InputError("smtp.input.invalid_quit_after", value=quit_after, steps=", ".join(STEPS))
    last_step = quit_after or ("quit" if send else "rcpt")
    if STEPS.index(last_step) >= STEPS.index("data") and not send:
        raise InputError("smtp.input.send_required", value=last_step, option="send=True", quit_option="quit_after",
                         next_key="smtp.input.send_required_next")
    if message_content is not None and not send:
        raise InputError("smtp.input.message_without_send", value="message")
    if auth_user is not None:
        if not isinstance(auth_user, str) or not auth_user or any(ch in auth_user for ch in "\r\n\0"):
            raise InputError("smtp.input.invalid_auth_user", value=repr(auth_user),
                             next_key="smtp.input.invalid_auth_user_next")
        if not auth_password:
            raise InputError("smtp.input.password_missing", value=auth_user, next_key="smtp.input.password_next")
    elif auth_password:
        raise InputError("smtp.input.password_without_user", value="auth_password")
    content = None
    if send:
        content = (build_test_message(sender, recipients, ehlo_name=ehlo_name) if message_content is None
                   else _message_bytes(message_content))  # type: ignore[arg-type]
    return _Plan(mail_from=sender, recipients=recipients, last_step=last_step, send=send, message=content,
                 starttls=starttls, tls_verify=tls_verify, auth_user=auth_user)


class _Stop(Exception):
    """An internal exception that ends the step sequence of one probe early with a verdict."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.category)
        self.verdict = verdict


class _ProbeRun:
    """The runner of one probe: it runs the steps on a session and collects the outcome."""

    def __init__(self, session: SmtpSession, plan: _Plan, auth_password: str | None) -> None:
        self.session = session
        self.plan = plan
        self._password = auth_password
        self.accepted: list[str] = []
        self.refused: list[tuple[str, Reply]] = []
        self.sent = False
        self.banner_read = False
        # Set after a transport failure: a server that timed out or sent garbage gets no QUIT.
        self.broken = False

    def _values(self, **extra: object) -> dict[str, object]:
        values: dict[str, object] = {"target": host_port(self.session.host, self.session.port),
                                     "accepted": len(self.accepted), "total": len(self.plan.recipients),
                                     "timeout": f"{self.session.timeout:g}"}
        values.update(extra)
        return values

    def _done(self, step: str) -> bool:
        return STEPS.index(step) >= STEPS.index(self.plan.last_step)

    def _fail(self, step: str, reply: Reply) -> _Stop:
        return _Stop(verdict_for_reply(step, reply, notes=self._notes(), **self._values()))

    def _success(self, step: str) -> Verdict:
        notes = self._notes(finished=True)
        if self.refused:
            return Verdict(level=Level.WARNING, category="recipients_partly_refused", step="rcpt", exit_code=EXIT_OK,
                           reply=self.refused[0][1], values=self._values(), notes=notes)
        return Verdict(level=Level.OK, category="accepted", step=None, exit_code=EXIT_OK,
                       values=self._values(step_name=message(f"smtp.step.{step}")), notes=notes,
                       summary_key="smtp.verdict.accepted_message" if self.sent else None)

    def _notes(self, *, finished: bool = False) -> tuple[str, ...]:
        notes = []
        if self.session.tls is not None and not self.session.tls.verified:
            notes.append("smtp.verdict_note.tls_not_verified")
        if self.plan.auth_user and self.session.tls is None and not is_loopback(self.session.host):
            notes.append("smtp.verdict_note.auth_without_tls")
        if finished and not self.sent and STEPS.index(self.plan.last_step) >= STEPS.index("mail"):
            notes.append("smtp.verdict_note.nothing_sent")
        return tuple(notes)

    def run(self) -> Verdict:
        try:
            return self._steps()
        except _Stop as stop:
            return stop.verdict
        except SessionError as error:
            # Only a missing AUTH mechanism leaves the connection in a state fit for QUIT.
            self.broken = error.category != "auth_unavailable"
            return self._failure_verdict(error)
        finally:
            self._finish()

    def _steps(self) -> Verdict:
        session, plan = self.session, self.plan
        session.connect()
        if self._done("connect"):
            return self._success("connect")

        banner = session.read_banner()
        self.banner_read = True
        if banner.code != 220:
            raise self._fail("banner", banner)
        if self._done("banner"):
            return self._success("banner")

        self._ehlo()
        if self._done("ehlo"):
            return self._success("ehlo")

        if plan.starttls:
            self._starttls()
        if self._done("tls"):
            return self._success("tls")

        if plan.auth_user:
            reply = session.authenticate(plan.auth_user, self._password or "")
            if reply.code != 235:
                raise self._fail("auth", reply)
        if self._done("auth"):
            return self._success("auth")

        reply = session.mail_from(plan.mail_from)
        if reply.reply_class != 2:
            raise self._fail("mail", reply)
        if self._done("mail"):
            return self._success("mail")

        self._recipients()
        if self._done("rcpt"):
            return self._success("rcpt")

        reply = session.start_data()
        if reply.code != 354:
            raise self._fail("data", reply)
        reply = session.send_message(plan.message or b"")
        if reply.reply_class != 2:
            raise self._fail("message", reply)
        self.sent = True
        return self._success(plan.last_step)

    def _ehlo(self) -> None:
        reply = self.session.ehlo()
        if reply.code != 250:
            raise self._fail("ehlo", reply)

    def _starttls(self) -> None:
        session = self.session
        if not session.supports("STARTTLS"):
            session.note("smtp.note.starttls_not_offered", step="tls")
            raise _Stop(Verdict(level=Level.PROBLEM, category="tls_unavailable", step="tls",
                                exit_code=EXIT_CODES["tls"], values=self._values()))
        reply = session.starttls(verify=self.plan.tls_verify)
        if reply.code != 220:
            raise self._fail("tls", reply)
        self._ehlo()

    def _recipients(self) -> None:
        for address in self.plan.recipients:
            reply = self.session.rcpt_to(address)
            if reply.reply_class == 2:
                self.accepted.append(address)
            else:
                self.refused.append((address, reply))
        if not self.accepted:
            raise self._fail("rcpt", self.refused[0][1])

    def _failure_verdict(self, error: SessionError) -> Verdict:
        category = error.category
        if category == "connection_closed" and error.step == "banner":
            category = "no_banner"
        notes = list(self._notes())
        if error.step == "banner" and category in ("timeout", "no_banner") and self.session.port == 465:
            notes.append("smtp.verdict_note.implicit_tls_port")
        if error.protocol:
            notes.append(f"smtp.verdict_note.protocol_{error.protocol}")
        return Verdict(level=level_for(category), category=category, step=error.step,
                       exit_code=EXIT_CODES.get(error.step, 1),
                       values=self._values(detail=error.detail or "-", limit=error.limit, timeout=f"{error.timeout:g}",
                                           source=error.source or "-"),
                       notes=tuple(notes))

    def _finish(self) -> None:
        session = self.session
        if session.connected and self.banner_read and not self.broken:
            session.quit()
        elif session.connected and not self.banner_read:
            session.note("smtp.note.closing_without_quit", step="quit")
        session.close()


def probe(host: str, port: int = 25, *, mail_from: str, rcpt_to: str | Sequence[str], quit_after: str | None = None,
          send: bool = False, message: str | bytes | EmailMessage | None = None, starttls: bool = False,
          tls_verify: bool = True, auth_user: str | None = None, auth_password: str | None = None,
          source_address: str | None = None, timeout: float = 10.0, ehlo_name: str = DEFAULT_EHLO_NAME,
          total_timeout: float | None = None) -> ProbeResult:
    """Probe an SMTP server and return the transcript, the replies and a verdict.

    Steps run in order (connect, banner, ehlo, tls, auth, mail, rcpt, data, quit); `quit_after`
    stops after one of them. Without it the probe stops after RCPT TO, unless `send=True`,
    which delivers `message` (default: a small zh-TW test message) and ends with QUIT.
    `timeout` bounds connect and each reply in seconds; `total_timeout` bounds the session
    (default four times `timeout`). Invalid input raises InputError before connecting.
    """
    plan = _plan(mail_from=mail_from, rcpt_to=rcpt_to, quit_after=quit_after, send=send,
                 message_content=message, starttls=starttls, tls_verify=tls_verify, auth_user=auth_user,
                 auth_password=auth_password, ehlo_name=ehlo_name)
    session = SmtpSession(host, port, timeout=timeout, total_timeout=total_timeout, source_address=source_address,
                          ehlo_name=ehlo_name)
    run = _ProbeRun(session, plan, auth_password)
    verdict = run.run()
    logger.info("probe of %s: %s (%s), exit %d", host_port(session.host, session.port), verdict.level.value,
                verdict.category, verdict.exit_code)
    return ProbeResult(host=session.host, port=session.port, transcript=session.transcript,
                       replies=list(session.replies), verdict=verdict, accepted=run.accepted, refused=run.refused,
                       ehlo=session.ehlo_info, tls=session.tls, sent=run.sent)
