"""SMTP replies: parsing, and a knowledge base that explains them in the user's language.

A reply is a three-digit code (RFC 5321 section 4.2), optionally followed on each line by an
enhanced status code `class.subject.detail` (RFC 3463, carried as RFC 2034 describes) and text.
`explain()` combines three layers. The first is the RFC 5321 meaning of the code, the second
the RFC 3463 meaning of the enhanced code. The third applies when the text matches a wording
that a known server writes (IIS SMTP Service, Exchange, Microsoft 365, Postfix, Exim,
sendmail): what it means in practice, the likely cause and the next step. Every text comes
from the `smtp` area of the catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence

from adminkb.i18n import catalog, message

# A reply line: three digits, then "-" (more lines follow), " " or nothing (last line).
_REPLY_LINE = re.compile(r"^(?P<code>\d{3})(?P<separator>[ -]|$)(?P<text>.*)$", re.DOTALL)
# RFC 3463 status-code = class "." subject "." detail, at the start of the text (RFC 2034).
_ENHANCED = re.compile(r"^(?P<class>[245])\.(?P<subject>\d{1,3})\.(?P<detail>\d{1,3})(?=\s|$)\s*")


class ReplyFormatError(ValueError):
    """A line from the server is not an SMTP reply line (`NNN`, `NNN text` or `NNN-text`)."""

    def __init__(self, line: str, reason: str) -> None:
        super().__init__(f"{reason}: {line!r}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class ReplyLine:
    """One parsed line of a reply: the code, whether it is the last line, and its text."""

    code: int
    last: bool
    text: str


def parse_reply_line(line: str) -> ReplyLine:
    """Parse one reply line; raise ReplyFormatError when it does not start with `NNN[ -]`."""
    match = _REPLY_LINE.match(line)
    if match is None:
        raise ReplyFormatError(line, "not an SMTP reply line")
    return ReplyLine(code=int(match["code"]), last=match["separator"] != "-", text=match["text"])


def split_enhanced(text: str) -> tuple[str | None, str]:
    """Split an RFC 3463 enhanced status code off the start of `text`, if there is one."""
    match = _ENHANCED.match(text)
    if match is None:
        return None, text
    return f"{match['class']}.{match['subject']}.{match['detail']}", text[match.end():]


@dataclass(frozen=True)
class Reply:
    """A complete SMTP reply: the code, the enhanced status code if any, and the text lines.

    `raw` keeps the lines exactly as received (without CRLF). `texts` contains each line's
    text without the code and without the enhanced status code.
    """

    code: int
    enhanced: str | None
    texts: tuple[str, ...]
    raw: tuple[str, ...]

    @classmethod
    def from_lines(cls, lines: Sequence[str]) -> Reply:
        """Parse the lines of one reply; raise ReplyFormatError when they do not form one."""
        if not lines:
            raise ReplyFormatError("", "empty reply")
        parsed = [parse_reply_line(line) for line in lines]
        code = parsed[0].code
        for index, item in enumerate(parsed):
            if item.code != code:
                raise ReplyFormatError(lines[index], "reply code changes inside a multi-line reply")
            if item.last != (index == len(parsed) - 1):
                raise ReplyFormatError(lines[index], "continuation marker out of place")
        enhanced, _ = split_enhanced(parsed[0].text)
        texts = tuple(split_enhanced(item.text)[1] if enhanced else item.text for item in parsed)
        return cls(code=code, enhanced=enhanced, texts=texts, raw=tuple(lines))

    @classmethod
    def from_text(cls, text: str) -> Reply:
        """Parse a reply written as one string, its lines separated by CRLF or LF."""
        return cls.from_lines([line for line in re.split(r"\r?\n", text.strip("\r\n"))])

    @property
    def text(self) -> str:
        """The reply text without codes, lines joined with LF."""
        return "\n".join(self.texts)

    @property
    def reply_class(self) -> int:
        """The first digit of the code: 2 success, 3 intermediate, 4 transient, 5 permanent."""
        return self.code // 100

    @property
    def positive(self) -> bool:
        return self.reply_class in (2, 3)

    @property
    def transient(self) -> bool:
        return self.reply_class == 4

    @property
    def permanent(self) -> bool:
        return self.reply_class == 5

    def __str__(self) -> str:
        return "\n".join(self.raw)


@dataclass(frozen=True)
class KnownReply:
    """A reply wording that a particular server writes, and what it means in practice.

    `key` names the catalog entries `smtp.known.<key>.meaning`, `.cause` and `.next`. The
    pattern is searched in the reply text (enhanced code removed); its named groups fill the
    messages' placeholders. `enhanced` restricts the match to replies with that enhanced code.
    """

    key: str
    server: str
    codes: frozenset[int]
    pattern: re.Pattern[str]
    category: str
    enhanced: str | None = None

    def match(self, reply: Reply) -> dict[str, str] | None:
        if reply.code not in self.codes:
            return None
        if self.enhanced is not None and reply.enhanced != self.enhanced:
            return None
        found = self.pattern.search(reply.text)
        if found is None:
            return None
        return {name: value for name, value in found.groupdict().items() if value is not None}


def _known(key: str, server: str, codes: Iterable[int], pattern: str, category: str,
           enhanced: str | None = None, flags: int = 0) -> KnownReply:
    return KnownReply(key=key, server=server, codes=frozenset(codes), pattern=re.compile(pattern, flags),
                      category=category, enhanced=enhanced)


# Windows versions that wrote each IIS SMTP Service banner version (build number prefix).
IIS_VERSIONS = (
    ("5.0.2195", "Windows 2000"),
    ("6.0.3790", "Windows Server 2003"),
    ("10.0.14393", "Windows Server 2016"),
    ("10.0.17763", "Windows Server 2019"),
)

# Order matters: the first pattern that matches wins, so specific wordings come before
# general ones. Where a server's own text is public, the wording was checked there: the
# strings of Postfix 3.7.11 and its replies on this machine, Microsoft's Exchange Online NDR
# reference, the Exim test suite and sendmail's source. The other wordings come from
# transcripts that administrators published.
KNOWN_REPLIES: tuple[KnownReply, ...] = (
    # IIS SMTP Service (SMTPSVC) and Exchange 2000/2003, which is built on it.
    _known("iis_banner", "iis", [220],
           r"Microsoft ESMTP MAIL Service, Version: (?P<version>\d+\.\d+\.\d+(?:\.\d+)?) ready at",
           "accepted"),
    _known("exchange_banner", "exchange", [220], r"Microsoft ESMTP MAIL Service ready at", "accepted"),
    _known("iis_ehlo", "microsoft", [250], r"^\S+ Hello \[(?P<client>[0-9A-Fa-f:.]+)\]", "accepted"),
    _known("iis_sender_ok", "iis", [250], r"^<?(?P<address>[^>\s]*)>?\.{4}Sender OK", "accepted"),
    _known("iis_unable_to_relay", "iis", [550], r"^Unable to relay for (?P<address>\S+)", "relay_denied",
           enhanced="5.7.1"),
    _known("iis_start_mail_input", "iis", [354], r"^Start mail input; end with <CRLF>\.<CRLF>", "accepted"),
    _known("iis_queued", "iis", [250], r"Queued mail for delivery", "accepted", enhanced="2.6.0"),
    _known("iis_resetting", "iis", [250], r"^Resetting", "accepted", enhanced="2.0.0"),
    _known("iis_closing", "iis", [221], r"Service closing transmission channel", "accepted"),
    _known("iis_unrecognized_command", "iis", [500], r"^Unrecognized command", "command_rejected",
           enhanced="5.3.3"),
    _known("iis_size_exceeded", "iis", [552], r"^Message size exceeds fixed maximum message size",
           "size_exceeded"),
    # NOTE: these 503 texts are reported for Microsoft's SMTP stack, not confirmed from an IIS transcript.
    _known("iis_bad_sequence", "iis", [503],
           r"^(?:Send hello first|Need mail command|Need rcpt command|Sender already specified)", "command_rejected",
           enhanced="5.5.2"),
    _known("iis_invalid_address", "iis", [501], r"^Invalid Address", "command_rejected", enhanced="5.5.4"),
    _known("microsoft_tls_unavailable", "microsoft", [554], r"^Unable to initialize security subsystem",
           "tls_failed"),
    _known("auth_successful", "microsoft", [235], r"^Authentication successful", "accepted"),
    _known("auth_mechanism_unrecognized", "microsoft", [504], r"^Unrecognized authentication type",
           "auth_unavailable"),
    _known("auth_unsuccessful", "microsoft", [535], r"^Authentication unsuccessful", "auth_failed",
           enhanced="5.7.3"),
    # Exchange Server 2007 and later, and Microsoft 365 (Exchange Online).
    _known("exchange_nonaccepted_domain", "exchange", [550],
           r"Unable to relay recipient in non-accepted domain", "relay_denied", enhanced="5.7.54"),
    _known("exchange_unable_to_relay", "exchange", [550], r"^Unable to relay\b", "relay_denied",
           enhanced="5.7.1"),
    _known("exchange_client_not_authenticated", "exchange", [530, 550], r"^Client was not authenticated\b",
           "auth_required", enhanced="5.7.1"),
    _known("m365_client_not_authenticated", "microsoft365", [530, 550],
           r"^Client (?:was )?not authenticated\b", "auth_required", enhanced="5.7.57"),
    _known("m365_tenant_attribution", "microsoft365", [550], r"TenantAttribution; Relay Access Denied",
           "relay_denied", enhanced="5.7.64"),
    _known("m365_banned_ip", "microsoft365", [550, 554],
           r"Access denied, banned sending IP \[(?P<ip>[0-9A-Fa-f:.]+)\]", "blocklisted"),
    _known("m365_traffic_not_accepted", "microsoft365", [550], r"Access denied, traffic not accepted from this IP",
           "blocklisted", enhanced="5.7.708"),
    _known("m365_recipient_access_denied", "microsoft365", [550], r"Recipient address rejected: Access denied",
           "mailbox_unavailable", enhanced="5.4.1"),
    # Postfix (texts as Postfix 3.7 writes them) and the postgrey greylisting policy service.
    _known("postfix_relay_denied", "postfix", [454, 554],
           r"^<(?P<address>[^>]*)>: (?:Recipient address rejected: )?Relay access denied", "relay_denied"),
    _known("postfix_user_unknown", "postfix", [550, 450],
           r"^<(?P<address>[^>]*)>: Recipient address rejected: User unknown(?: in (?P<table>[a-z ]+table))?",
           "mailbox_unavailable"),
    _known("postgrey_greylisted", "postfix", [450, 451], r"Recipient address rejected: Greylisted", "greylisted"),
    _known("postfix_rbl", "postfix", [450, 454, 550, 554],
           r"Service unavailable; (?:Client host|Sender address|Helo command|Recipient address)"
           r" \[(?P<ip>[^\]]*)\] blocked using (?P<blocklist>[A-Za-z0-9.-]+)",
           "blocklisted"),
    _known("postfix_unknown_client", "postfix", [450, 550], r"Client host rejected: cannot find your hostname",
           "client_rejected"),
    _known("postfix_tls_required", "postfix", [530], r"^Must issue a STARTTLS command first", "tls_required"),
    _known("postfix_size_exceeded", "postfix", [552], r"^Message size exceeds fixed limit", "size_exceeded"),
    _known("postfix_message_file_too_big", "postfix", [552], r"^Error: message file too big", "size_exceeded"),
    # Exim's default configuration and sendmail.
    _known("exim_relay_not_permitted", "exim", [550], r"^relay not permitted", "relay_denied"),
    _known("sendmail_user_unknown", "sendmail", [550], r"^<?(?P<address>[^>\s]*)>?\.\.\. User unknown",
           "mailbox_unavailable", flags=re.IGNORECASE),
    _known("sendmail_try_later", "sendmail", [451], r"^Please try again later", "greylisted",
           enhanced="4.7.1"),
    # Standard texts (RFC 4954) and wordings shared by many servers.
    _known("auth_required", "standard", [530], r"^Authentication required", "auth_required"),
    _known("starttls_required", "standard", [530], r"STARTTLS", "tls_required", flags=re.IGNORECASE),
    _known("generic_greylisting", "standard", [450, 451, 452], r"greylist", "greylisted", flags=re.IGNORECASE),
    _known("generic_blocklist", "standard", [421, 450, 550, 554],
           r"spamhaus|spamcop|barracudacentral|\bblocked using\b|\bDNSBL\b|\bRBL\b|block ?list|black ?list",
           "blocklisted", flags=re.IGNORECASE),
    _known("generic_relay_denied", "standard", [450, 454, 550, 551, 553, 554],
           r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited|disallowed)",
           "relay_denied", flags=re.IGNORECASE),
    _known("generic_user_unknown", "standard", [550, 551, 553],
           r"user unknown|unknown user|no such user|mailbox (?:unavailable|not found)|does not exist",
           "mailbox_unavailable", flags=re.IGNORECASE),
)

# Categories that a code or an enhanced code implies when no known wording matched.
_ENHANCED_CATEGORIES = {
    "1.1": "mailbox_unavailable",
    "1.10": "mailbox_unavailable",
    "2.1": "mailbox_unavailable",
    "2.2": "mailbox_unavailable",
    "2.3": "size_exceeded",
    "3.4": "size_exceeded",
    "7.8": "auth_failed",
    "7.11": "tls_required",
}
_CODE_CATEGORIES = {
    421: "service_unavailable",
    500: "command_rejected",
    501: "command_rejected",
    502: "command_rejected",
    503: "command_rejected",
    504: "command_rejected",
    530: "auth_required",
    535: "auth_failed",
    538: "tls_required",
    552: "size_exceeded",
}


@dataclass(frozen=True)
class Explanation:
    """The explanation of one reply, rendered from the catalog when a text is read.

    The texts are properties so that they follow the current language (`ADMINKB_LANG`).
    """

    reply: Reply
    category: str
    known: KnownReply | None = None
    values: dict[str, str] = field(default_factory=dict)

    @property
    def code_meaning(self) -> str:
        """The RFC 5321 meaning of the reply code."""
        key = f"smtp.code.{self.reply.code}"
        if key in catalog():
            return message(key)
        return message(f"smtp.code_class.{self.reply.reply_class}" if 2 <= self.reply.reply_class <= 5
                       else "smtp.code_class.other", code=self.reply.code)

    @property
    def enhanced_meaning(self) -> str | None:
        """The RFC 3463 meaning of the enhanced status code: its class, then subject and detail."""
        if self.reply.enhanced is None:
            return None
        status_class, subject, detail = self.reply.enhanced.split(".")
        class_text = message(f"smtp.enhanced_class.{status_class}")
        detail_key = f"smtp.enhanced_detail.{subject}.{detail}"
        subject_key = f"smtp.enhanced_subject.{subject}"
        if detail_key in catalog():
            detail_text = message(detail_key)
        elif subject_key in catalog():
            detail_text = message("smtp.enhanced_unregistered", subject=message(subject_key),
                                  detail=f"{subject}.{detail}")
        else:
            detail_text = message("smtp.enhanced_unknown_subject", detail=f"{subject}.{detail}")
        return message("smtp.enhanced_meaning", code=self.reply.enhanced, status_class=class_text,
                       detail=detail_text)

    @property
    def server(self) -> str | None:
        """The server family whose wording matched, as a display name, or None."""
        if self.known is None:
            return None
        return message(f"smtp.server.{self.known.server}")

    @property
    def meaning(self) -> str | None:
        """What a known wording means in practice, or None when no wording matched."""
        return self._known_text("meaning")

    @property
    def cause(self) -> str | None:
        """The likely cause of a known wording, or None."""
        return self._known_text("cause")

    @property
    def next_step(self) -> str | None:
        """The next step for a known wording, or None."""
        return self._known_text("next")

    def _known_text(self, part: str) -> str | None:
        if self.known is None:
            return None
        key = f"smtp.known.{self.known.key}.{part}"
        if key not in catalog():
            return None
        return message(key, **self._placeholders())

    def _placeholders(self) -> dict[str, str]:
        values = {"code": str(self.reply.code), "enhanced": self.reply.enhanced or "-",
                  "version": "-", "windows": "-", "address": "-", "client": "-", "ip": "-",
                  "blocklist": "-", "table": "-"}
        values.update(self.values)
        return values

    def lines(self, *, advice: bool = True) -> list[str]:
        """Return the explanation as display lines: code, enhanced code, meaning, and with
        `advice` the cause and next step of a known wording."""
        out = [message("smtp.explain.code", code=self.reply.code, meaning=self.code_meaning)]
        if self.enhanced_meaning is not None:
            out.append(self.enhanced_meaning)
        if self.known is not None:
            out.append(message("smtp.explain.server", server=self.server, meaning=self.meaning))
        if self.known is not None and advice:
            if self.cause:
                out.append(message("smtp.explain.cause", text=self.cause))
            if self.next_step:
                out.append(message("smtp.explain.next", text=self.next_step))
        return out

    def to_dict(self) -> dict[str, object]:
        """Return the explanation as plain data for JSON output."""
        return {
            "code": self.reply.code,
            "enhanced": self.reply.enhanced,
            "category": self.category,
            "code_meaning": self.code_meaning,
            "enhanced_meaning": self.enhanced_meaning,
            "known": self.known.key if self.known else None,
            "server": self.server,
            "meaning": self.meaning,
            "cause": self.cause,
            "next_step": self.next_step,
        }


def match_known(reply: Reply) -> tuple[KnownReply, dict[str, str]] | None:
    """Return the first known wording that matches `reply`, with its captured values."""
    for known in KNOWN_REPLIES:
        values = known.match(reply)
        if values is not None:
            return known, values
    return None


def _windows_for(version: str) -> str | None:
    for prefix, windows in IIS_VERSIONS:
        if version == prefix or version.startswith(prefix + "."):
            return windows
    return None


def categorize(reply: Reply) -> str:
    """Return the category a reply implies by its codes alone, without a known wording."""
    if reply.reply_class in (2, 3):
        return "accepted"
    if reply.enhanced is not None:
        _, subject, detail = reply.enhanced.split(".")
        category = _ENHANCED_CATEGORIES.get(f"{subject}.{detail}")
        if category is not None:
            return category
    category = _CODE_CATEGORIES.get(reply.code)
    if category is not None:
        return category
    if reply.reply_class == 4:
        return "temporary_failure"
    if reply.reply_class == 5:
        return "permanent_failure"
    return "unknown_reply"


def explain(reply: Reply) -> Explanation:
    """Explain a reply: its code, its enhanced code and, when known, the server's wording."""
    found = match_known(reply)
    if found is None:
        return Explanation(reply=reply, category=categorize(reply))
    known, values = found
    if known.key == "iis_banner":
        windows = _windows_for(values.get("version", ""))
        values = {**values, "windows": windows or message("smtp.windows_unknown")}
    return Explanation(reply=reply, category=known.category, known=known, values=values)


# Other protocols that can reply on a port where an SMTP banner was expected.
_FOREIGN_PROTOCOLS = (
    (re.compile(r"^SSH-\d"), "ssh"),
    (re.compile(r"^HTTP/\d"), "http"),
    (re.compile(r"^(?:\+OK|-ERR)\b"), "pop3"),
    (re.compile(r"^\* (?:OK|PREAUTH|BYE)\b"), "imap"),
    (re.compile(r"^<!DOCTYPE|^<html", re.IGNORECASE), "http"),
    (re.compile(r"^[\x14-\x17]\x03[\x00-\x04]"), "tls"),
)


def identify_protocol(line: str) -> str | None:
    """Name the protocol a non-SMTP line belongs to (ssh, http, pop3, imap, tls), or None."""
    for pattern, name in _FOREIGN_PROTOCOLS:
        if pattern.search(line):
            return name
    return None
