"""SMTP events from a W3C log frame: direction, command, reply, addresses, sessions and transactions.

The IIS SMTP Service writes one W3C line per command it receives (inbound). When it delivers
mail itself, it writes one line per command it sends and one per reply it receives (outbound).
Outbound lines have `OutboundConnectionCommand` or `OutboundConnectionResponse` in
`cs-username`, the remote server in `c-ip`, and the reply text in `cs-uri-query`.

The log has no connection id, so `smtp_events` rebuilds connections from the order of the
lines of one address:
- an inbound session ends with its QUIT line;
- an outbound session ends with the reply to QUIT, and a new one starts at a `220` greeting
  that does not follow STARTTLS;
- either ends when the same address is silent for longer than `IDLE_TIMEOUT_SECONDS`.

NOTE: two connections open at the same time from one address interleave their lines, and the
log cannot tell them apart. They are read as one session, which then shows the commands of both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adminkb.errors import InputError
from adminkb.w3c.frame import SOURCE_FILE, SOURCE_LINE, TIMESTAMP, resolve_timezone

INBOUND = "inbound"
OUTBOUND = "outbound"
OUTBOUND_COMMAND = "OutboundConnectionCommand"
OUTBOUND_RESPONSE = "OutboundConnectionResponse"

# Seconds of silence from one address after which its next line starts a new session. The
# service closes a connection idle for its connection time-out, 10 minutes by default
# ("Setting Connections (IIS 6.0)", https://technet.microsoft.com/en-us/library/cc782956).
IDLE_TIMEOUT_SECONDS = 600

# The service writes its QUIT line with this status (it is no SMTP reply code).
QUIT_STATUS = 240

# Commands that carry the message: DATA, and BDAT for CHUNKING (RFC 3030).
MESSAGE_COMMANDS = ("DATA", "BDAT")

# Request methods of HTTP/1.1 (RFC 9110): one of them on port 25 is a web client or a scanner.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")

# The fields without which no analysis can run, and those that only some analyses need.
REQUIRED_FIELDS = ("c-ip", "cs-method")
ADDRESS_FIELD = "cs-uri-query"

_MAIL_ADDRESS = r"(?i)^\s*FROM\s*:\s*<?\s*([^<>\s]*)\s*>?"
_RCPT_ADDRESS = r"(?i)^\s*TO\s*:\s*<?\s*([^<>\s]*)\s*>?"
_MESSAGE_ID = r"(<[^<>\s]+>)"
_REPLY = r"^\s*(\d{3})[ -]?(.*)$"

# The columns of the events frame, in order.
EVENT_COLUMNS = (
    "timestamp", "direction", "peer", "helo", "command", "argument", "status", "reply_code",
    "reply_text", "is_response", "answers", "address", "message_id", "time_taken", "session", "transaction",
    SOURCE_FILE, SOURCE_LINE,
)


def flag(condition: pd.Series) -> pd.Series:
    """Return a condition as plain booleans, missing counting as False.

    pandas' `mask` and `where` treat a missing condition (pd.NA) as true, which would apply
    them to rows that lack the value.
    """
    return condition.fillna(False).astype(bool)


def require_fields(frame: pd.DataFrame, fields: tuple[str, ...], analysis: str) -> None:
    """Raise InputError naming the `fields` that `frame` lacks and that `analysis` needs."""
    if frame.attrs.get("format", "w3c") != "w3c":
        raise InputError("smtplog.not_w3c", value=frame.attrs.get("format"), next_key="smtplog.not_w3c_next")
    missing = [name for name in fields if name not in frame.columns]
    if missing:
        raise InputError("smtplog.missing_fields", value=" ".join(missing), analysis=analysis,
                         next_key="smtplog.missing_fields_next")


def _text(frame: pd.DataFrame, name: str) -> pd.Series:
    """Return a field as a string column; a field the frame lacks is all missing."""
    if name not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    return frame[name].astype("string")


def _integers(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="Int64")
    return frame[name].astype("Int64")


def _in_zone(timestamps: pd.Series, tz: str | None) -> pd.Series:
    zone = resolve_timezone(tz)
    if zone is None:
        return timestamps
    # W3C Extended timestamps are always aware (UTC), so converting them guesses nothing.
    return timestamps.dt.tz_convert(zone)


def smtp_events(frame: pd.DataFrame, *, tz: str | None = None,
                idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> pd.DataFrame:
    """Turn the rows of `read_w3c` into SMTP events with session and transaction numbers.

    `tz` converts the timestamps (for example "Asia/Taipei"); None keeps the frame's zone.
    Sessions are numbered from 1 in the order they start. Transactions are numbered from 1 at
    each MAIL command within their session, and 0 marks the lines before the first MAIL.
    For a command, `reply_code` is the reply it got: `sc-status` inbound, the next reply line
    outbound. Addresses are lower-cased so that one mailbox is counted once.
    """
    require_fields(frame, REQUIRED_FIELDS, "smtp_events")
    username = _text(frame, "cs-username")
    is_command_line = username == OUTBOUND_COMMAND
    is_response = (username == OUTBOUND_RESPONSE).fillna(False).astype(bool)
    outbound = (is_command_line.fillna(False) | is_response).astype(bool)

    method = _text(frame, "cs-method").str.strip()
    command = method.str.upper().mask(flag(method.isin(["-", ""])) | is_response)
    argument = _text(frame, ADDRESS_FIELD).str.strip()
    status = _integers(frame, "sc-status")

    events = pd.DataFrame({
        "timestamp": _in_zone(frame[TIMESTAMP], tz) if TIMESTAMP in frame.columns
        else pd.Series(pd.NaT, index=frame.index),
        "direction": np.where(outbound, OUTBOUND, INBOUND),
        "peer": _text(frame, "c-ip"),
        "helo": username.mask(outbound),
        "command": command,
        "argument": argument,
        "status": status,
        "is_response": is_response,
        "time_taken": _integers(frame, "time-taken"),
        SOURCE_FILE: _text(frame, SOURCE_FILE) if SOURCE_FILE in frame.columns else pd.NA,
        SOURCE_LINE: frame[SOURCE_LINE] if SOURCE_LINE in frame.columns else pd.NA,
    })
    # Stable: lines of the same second keep the order in which the service wrote them, and
    # files given out of date order are still read in time order.
    events = events.sort_values("timestamp", kind="stable", na_position="last").reset_index(drop=True)
    events["_order"] = np.arange(len(events))
    events = events.sort_values(["direction", "peer", "_order"], kind="stable", na_position="last")
    events = events.reset_index(drop=True)

    _add_replies(events)
    _add_addresses(events)
    _number_sessions(events, idle_timeout)
    _pair_outbound_replies(events)
    # For an outbound reply line, the command it replies to: the last command before it.
    last_command = events["command"].groupby(events["session"], sort=False).ffill()
    events["answers"] = last_command.where(events["is_response"])
    _number_transactions(events)
    events = events.sort_values("_order", kind="stable")
    return events.reset_index(drop=True)[list(EVENT_COLUMNS)]


def _add_replies(events: pd.DataFrame) -> None:
    """Split outbound reply lines (`421 4.7.0 Try again later`) into code and text."""
    parts = events["argument"].where(events["is_response"]).str.extract(_REPLY)
    events["reply_code"] = pd.to_numeric(parts[0], errors="coerce").astype("Int64")
    events["reply_text"] = parts[1].astype("string").str.strip()
    inbound = events["direction"] == INBOUND
    events.loc[inbound, "reply_code"] = events.loc[inbound, "status"]


def _add_addresses(events: pd.DataFrame) -> None:
    command = events["command"]
    argument = events["argument"]
    is_mail = flag(command == "MAIL")
    mail = argument.where(is_mail).str.extract(_MAIL_ADDRESS)[0]
    rcpt = argument.where(flag(command == "RCPT")).str.extract(_RCPT_ADDRESS)[0]
    address = mail.fillna(rcpt).astype("string").str.lower()
    # The null reverse-path of bounces and DSNs (RFC 5321 section 4.5.5).
    address = address.mask(is_mail & flag(address == ""), "<>")
    events["address"] = address.mask(flag(address == ""))
    with_id = flag(command.isin(MESSAGE_COMMANDS))
    events["message_id"] = argument.where(with_id).str.extract(_MESSAGE_ID)[0].astype("string")


def _number_sessions(events: pd.DataFrame, idle_timeout: float) -> None:
    key = events["direction"] + "\x00" + events["peer"].fillna("")
    new_group = key != key.shift(1)
    outbound = events["direction"] == OUTBOUND
    # The last command sent to each address up to and including each line.
    last_command = events["command"].where(outbound).groupby(key, sort=False).ffill()
    previous_command = last_command.shift(1)
    # Inbound, the QUIT line ends the session. Outbound, the reply right after QUIT does.
    closes = (flag(events["command"] == "QUIT") & ~outbound) | \
             (outbound & events["is_response"] & flag(events["command"].shift(1) == "QUIT") & ~new_group)
    gap = (events["timestamp"] - events["timestamp"].shift(1)).dt.total_seconds()
    greeting = outbound & events["is_response"] & flag(events["reply_code"] == 220) & \
        ~flag(previous_command == "STARTTLS")
    new = new_group | closes.shift(1, fill_value=False).astype(bool) | flag(gap > idle_timeout) | greeting
    raw = new.astype(int).cumsum()
    # Number sessions in the order they start, not by address.
    first_order = events.groupby(raw, sort=False)["_order"].transform("min")
    events["session"] = first_order.rank(method="dense").astype(int)


def _pair_outbound_replies(events: pd.DataFrame) -> None:
    """Give each outbound command the reply on the line after it, when that line is its reply."""
    same_session = events["session"].shift(-1) == events["session"]
    answered = (events["direction"] == OUTBOUND) & ~events["is_response"] & same_session & \
        events["is_response"].shift(-1, fill_value=False).astype(bool)
    events.loc[answered, "reply_code"] = events["reply_code"].shift(-1)[answered]
    events.loc[answered, "reply_text"] = events["reply_text"].shift(-1)[answered]


def _number_transactions(events: pd.DataFrame) -> None:
    starts = (events["command"] == "MAIL").fillna(False).astype(int)
    events["transaction"] = starts.groupby(events["session"], sort=False).cumsum()
