"""SMTP sessions done right: a recording client, a reply knowledge base and a probe with a verdict.

- `probe()` runs a session step by step (stopping after RCPT TO unless asked to send) and
  returns a `ProbeResult` with the transcript, the replies, a `Verdict` and a swaks-style
  exit code.
- `SmtpSession` is the client underneath, for runbooks that need single steps.
- `Reply.from_text()` and `explain()` parse and explain any reply a server wrote.
"""

from adminkb.smtp.addresses import parse_host_port, validate_address
from adminkb.smtp.probe import ProbeResult, build_test_message, probe
from adminkb.smtp.replies import KNOWN_REPLIES, Explanation, KnownReply, Reply, ReplyFormatError, explain
from adminkb.smtp.session import (DEFAULT_EHLO_NAME, REDACTED, STEPS, EhloInfo, SessionError, SmtpSession, TlsInfo,
                                  prepare_data)
from adminkb.smtp.transcript import Direction, RecordedReply, Transcript, TranscriptEntry
from adminkb.smtp.verdict import EXIT_CODES, EXIT_INPUT, EXIT_OK, Level, Verdict

__all__ = [
    "DEFAULT_EHLO_NAME",
    "EXIT_CODES",
    "EXIT_INPUT",
    "EXIT_OK",
    "KNOWN_REPLIES",
    "REDACTED",
    "STEPS",
    "Direction",
    "EhloInfo",
    "Explanation",
    "KnownReply",
    "Level",
    "ProbeResult",
    "RecordedReply",
    "Reply",
    "ReplyFormatError",
    "SessionError",
    "SmtpSession",
    "TlsInfo",
    "Transcript",
    "TranscriptEntry",
    "Verdict",
    "build_test_message",
    "explain",
    "parse_host_port",
    "prepare_data",
    "probe",
    "validate_address",
]
