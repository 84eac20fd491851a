"""The transcript of an SMTP session: every line in order, who wrote it, and when.

Entries record the seconds since connect, the writer (client, server, or a local note), the
session step and the text exactly as it crossed the wire. `Transcript.to_text()` renders it
with telnet-style (`S:`/`C:`) or swaks-style (`<-`/`->`) markers.

Client lines of the AUTH step are masked when they are added: the base64 lines become
`<redacted>` and an AUTH command keeps only its mechanism. The session client already passes
them masked. The transcript masks them again, so that a caller that sends AUTH lines by hand
with `step="auth"` does not record a credential either.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from adminkb.smtp.replies import Reply


REDACTED = "<redacted>"
# The client's line that cancels an AUTH exchange (RFC 4954 section 4); it carries no secret.
AUTH_CANCEL = "*"


class Direction(str, enum.Enum):
    """The writer of a transcript line: the client, the server, or this program (a local note)."""

    CLIENT = "client"
    SERVER = "server"
    NOTE = "note"


@dataclass(frozen=True)
class TranscriptEntry:
    """One transcript line: seconds since connect, who wrote it, the step, and the text."""

    elapsed: float
    direction: Direction
    step: str
    text: str
    tls: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"elapsed": round(self.elapsed, 3), "direction": self.direction.value, "step": self.step,
                "tls": self.tls, "text": self.text}


# Markers before each line: telnet style (S:/C:) or swaks style (<-/->, <~/~> under TLS).
_MARKERS = {
    "telnet": {Direction.SERVER: ("S:", "S:"), Direction.CLIENT: ("C:", "C:"), Direction.NOTE: ("*", "*")},
    "swaks": {Direction.SERVER: ("<-", "<~"), Direction.CLIENT: ("->", "~>"), Direction.NOTE: ("===", "===")},
}
MARKER_STYLES = tuple(_MARKERS)


@dataclass
class Transcript:
    """The ordered record of a session; elapsed times count from `start()`."""

    entries: list[TranscriptEntry] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    started: float | None = None

    def start(self) -> None:
        self.started = self.clock()

    def add(self, direction: Direction, text: str, *, step: str, tls: bool = False) -> TranscriptEntry:
        if self.started is None:
            self.start()
        if direction is Direction.CLIENT and step == "auth":
            text = mask_auth_line(text)
        entry = TranscriptEntry(elapsed=self.clock() - self.started, direction=direction, step=step,
                                text=text, tls=tls)
        self.entries.append(entry)
        return entry

    def __iter__(self) -> Iterator[TranscriptEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_text(self, *, timing: bool = True, markers: str = "telnet") -> str:
        """Render the transcript, one line per entry, with elapsed seconds unless `timing=False`."""
        if markers not in _MARKERS:
            raise ValueError(f"markers must be one of {MARKER_STYLES}, not {markers!r}")
        width = max((len(marker) for pair in _MARKERS[markers].values() for marker in pair), default=2)
        lines = []
        for entry in self.entries:
            plain, under_tls = _MARKERS[markers][entry.direction]
            marker = (under_tls if entry.tls else plain).ljust(width)
            prefix = f"{entry.elapsed:8.3f}s " if timing else ""
            lines.append(f"{prefix}{marker} {entry.text}")
        return "\n".join(lines)

    def to_dicts(self) -> list[dict[str, object]]:
        return [entry.to_dict() for entry in self.entries]


@dataclass(frozen=True)
class RecordedReply:
    """A reply with its step and the command it replied to (as shown, secrets redacted)."""

    step: str
    command: str | None
    reply: Reply


def mask_auth_line(text: str) -> str:
    """Return a client line of the AUTH step with any credential replaced by `<redacted>`.

    `AUTH LOGIN` stays as it is, `AUTH PLAIN <token>` keeps the mechanism only, `*` stays,
    and any other line (a base64 user name, password or token) becomes `<redacted>`.
    """
    if text in (REDACTED, AUTH_CANCEL):
        return text
    verb, _, rest = text.partition(" ")
    if verb.upper() != "AUTH":
        return REDACTED
    mechanism, _, initial_response = rest.strip().partition(" ")
    if initial_response.strip() and initial_response.strip() != REDACTED:
        return f"{verb} {mechanism} {REDACTED}"
    return text
