"""SMTP analyses over IIS SMTP Service logs read with `adminkb.w3c.read_w3c`.

`analyze(frame, tz="Asia/Taipei")` returns a `SmtpLogAnalysis`. Its methods return tables in
the user's language for the usual questions: traffic per hour, top clients, HELO names,
senders and recipients, relay denials, AUTH failures, the outbound side, the slowest
transactions and unusual lines. Other methods draw those tables and trace one message.
The tables are `LogTable`s, shown with `-` for missing values, and `first_rows` shows the first
rows of a `read_w3c` frame the same way.
"""

from adminkb.smtplog.analyses import DEFAULT_TOP, REPORT_TABLES, SmtpLogAnalysis, analyze, checked_top, table_title
from adminkb.smtplog.events import IDLE_TIMEOUT_SECONDS, INBOUND, OUTBOUND, smtp_events
from adminkb.smtplog.labels import MISSING_TEXT, LogTable, first_rows
from adminkb.smtplog.sessions import RESULTS, sessions, transactions
from adminkb.smtplog.trace import VERDICTS, TraceResult, trace_message

__all__ = [
    "DEFAULT_TOP",
    "IDLE_TIMEOUT_SECONDS",
    "INBOUND",
    "MISSING_TEXT",
    "OUTBOUND",
    "REPORT_TABLES",
    "RESULTS",
    "VERDICTS",
    "LogTable",
    "SmtpLogAnalysis",
    "TraceResult",
    "analyze",
    "checked_top",
    "first_rows",
    "sessions",
    "smtp_events",
    "table_title",
    "trace_message",
    "transactions",
]
