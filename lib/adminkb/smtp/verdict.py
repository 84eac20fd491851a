"""The verdict on a whole SMTP session: level, failing step, category, explanation, exit code.

Exit codes follow swaks, so that scripts written for swaks read ours the same way. They are
0 all well, 1 unusable input, 2 connect, 21 banner, 22 HELO/EHLO, 23 MAIL, 24 no recipient
accepted, 25 DATA, 26 after DATA (the message itself), 28 AUTH and 29 TLS.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from adminkb.i18n import catalog, message
from adminkb.smtp.replies import Explanation, Reply, explain

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_CODES = {
    "connect": 2,
    "banner": 21,
    "ehlo": 22,
    "mail": 23,
    "rcpt": 24,
    "data": 25,
    "message": 26,
    "auth": 28,
    "tls": 29,
}


class Level(str, enum.Enum):
    """The overall result: ok, warning (worked partly or only for now), problem, or unknown."""

    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"
    UNKNOWN = "unknown"


# Categories that mean "try again later" or "worked for some": a warning, not a problem.
_WARNING_CATEGORIES = {"greylisted", "temporary_failure", "recipients_partly_refused"}
# Categories a reply gets from its codes alone; the failing step then names the category.
_GENERIC_CATEGORIES = {"accepted", "temporary_failure", "permanent_failure", "command_rejected"}
_STEP_CATEGORIES = {
    "banner": "service_unavailable",
    "ehlo": "ehlo_rejected",
    "tls": "tls_failed",
    "auth": "auth_failed",
    "mail": "sender_rejected",
    "rcpt": "recipient_rejected",
    "data": "data_rejected",
    "message": "message_rejected",
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of a session, with texts rendered from the catalog when read.

    `step` is the step that failed (None when the session went as far as asked).
    `reply` is the server reply that decided the verdict, if one did. `notes` are catalog
    keys of extra remarks (an unverified certificate, an implicit-TLS port...).
    `summary_key` overrides the catalog key of the summary (default `smtp.verdict.<category>`).
    """

    level: Level
    category: str
    step: str | None
    exit_code: int
    reply: Reply | None = None
    values: dict[str, object] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    summary_key: str | None = None

    @property
    def explanation(self) -> Explanation | None:
        return explain(self.reply) if self.reply is not None else None

    @property
    def level_label(self) -> str:
        return message(f"smtp.level.{self.level.value}")

    @property
    def step_name(self) -> str | None:
        return message(f"smtp.step.{self.step}") if self.step else None

    def _values(self) -> dict[str, object]:
        values: dict[str, object] = {"target": "-", "step_name": "-", "accepted": 0, "total": 0, "timeout": "-",
                                     "detail": "-", "code": "-", "limit": "-", "protocol": "-", "source": "-"}
        values.update(self.values)
        if self.step:
            values["step_name"] = self.step_name
        if self.reply is not None:
            values["code"] = self.reply.raw[0]
        return values

    @property
    def summary(self) -> str:
        """One sentence: what happened, in the user's language."""
        return message(self.summary_key or f"smtp.verdict.{self.category}", **self._values())

    @property
    def cause(self) -> str | None:
        """The likely cause: the known wording's, else the category's, else None."""
        explanation = self.explanation
        if explanation is not None and explanation.cause:
            return explanation.cause
        key = f"smtp.verdict_cause.{self.category}"
        return message(key, **self._values()) if key in catalog() else None

    @property
    def next_step(self) -> str | None:
        """What to do next: the known wording's advice, else the category's, else None."""
        explanation = self.explanation
        if explanation is not None and explanation.next_step:
            return explanation.next_step
        key = f"smtp.verdict_next.{self.category}"
        return message(key, **self._values()) if key in catalog() else None

    @property
    def note_texts(self) -> list[str]:
        return [message(key, **self._values()) for key in self.notes]

    def lines(self) -> list[str]:
        """Return the verdict as display lines, in the user's language."""
        out = [message("smtp.render.result", level=self.level_label, summary=self.summary)]
        if self.step:
            out.append(message("smtp.render.step", step_name=self.step_name))
        explanation = self.explanation
        if explanation is not None and self.level is not Level.OK:
            out.extend(f"  {line}" for line in explanation.lines(advice=False))
        if self.cause:
            out.append(message("smtp.render.cause", text=self.cause))
        if self.next_step:
            out.append(message("smtp.render.next", text=self.next_step))
        out.extend(message("smtp.render.note", text=text) for text in self.note_texts)
        out.append(message("smtp.render.exit_code", code=self.exit_code))
        return out

    def to_dict(self) -> dict[str, object]:
        explanation = self.explanation
        return {
            "level": self.level.value,
            "category": self.category,
            "step": self.step,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "cause": self.cause,
            "next_step": self.next_step,
            "notes": self.note_texts,
            "reply": None if self.reply is None else {"code": self.reply.code, "enhanced": self.reply.enhanced,
                                                      "lines": list(self.reply.raw)},
            "explanation": explanation.to_dict() if explanation is not None else None,
        }


def level_for(category: str, reply: Reply | None = None) -> Level:
    """Return the level a category implies; a 4xx reply of a step category is only a warning."""
    if category == "accepted":
        return Level.OK
    if category == "unknown_reply":
        return Level.UNKNOWN
    if category in _WARNING_CATEGORIES:
        return Level.WARNING
    if reply is not None and reply.transient and category in _STEP_CATEGORIES.values():
        return Level.WARNING
    return Level.PROBLEM


def category_for_reply(step: str, reply: Reply) -> str:
    """Return the verdict category of a negative reply at `step`.

    A known wording or a telling code decides first. A reply whose codes mean only "failed"
    gets the category of its step (sender_rejected at MAIL, recipient_rejected at RCPT).
    """
    category = explain(reply).category
    if category in _GENERIC_CATEGORIES:
        return _STEP_CATEGORIES.get(step, category)
    return category


def verdict_for_reply(step: str, reply: Reply, *, notes: tuple[str, ...] = (), **values: object) -> Verdict:
    """Build the verdict for a session that stopped on a negative reply at `step`."""
    category = category_for_reply(step, reply)
    return Verdict(level=level_for(category, reply), category=category, step=step,
                   exit_code=EXIT_CODES.get(step, 1), reply=reply, values=values, notes=notes)
