"""Tracing one message through a log: did the message from X to Y leave, and when?

The inbound transactions that match show when and from whom the service received the message.
The outbound transactions with the same sender and recipient (or the same Message-ID) show
each delivery attempt. The verdict comes from the last outbound attempt, else from the inbound
side.

NOTE: the log has no queue id that links an inbound message to its outbound attempts, so an
outbound attempt is matched by sender and recipient (or Message-ID) at or after the time the
message was received. Two messages with the same sender and recipient cannot be distinguished.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.smtplog.events import INBOUND, OUTBOUND
from adminkb.smtplog.labels import LogTable, format_reply, listed, localize_table, source_of
from adminkb.smtplog.sessions import ACCEPTED, DEFERRED, DELIVERED, INCOMPLETE, REJECTED, UNCONFIRMED

# Verdicts, from the best news to the worst.
# The parameters that select a message, as an error names them.
TRACE_PARAMETERS = "sender=, recipient=, message_id="
VERDICTS = ("delivered", "unconfirmed", "deferred", "rejected", "received_only", "refused", "incomplete",
            "not_found")

_INBOUND_STAGES = {ACCEPTED: "received", REJECTED: "refused", DEFERRED: "refused", INCOMPLETE: "incomplete"}
_OUTBOUND_STAGES = {DELIVERED: "delivered", DEFERRED: "deferred", REJECTED: "rejected", UNCONFIRMED: "unconfirmed",
                    INCOMPLETE: "attempted"}


@dataclass
class TraceResult:
    """The verdict of a trace, its sentence in the user's language, and the timeline behind it.

    `timeline` has internal column keys; `table()` returns it with catalog column names.
    """

    verdict: str
    summary: str
    criteria: str
    timeline: pd.DataFrame
    zone: str

    def table(self) -> LogTable:
        return localize_table(self.timeline, self.zone)

    @property
    def left(self) -> bool:
        """Whether the message was delivered to a remote server."""
        return self.verdict == "delivered"

    def __repr__(self) -> str:
        lines = [self.criteria, self.summary]
        if not self.timeline.empty:
            lines += ["", self.table().display_copy().to_string(index=False)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [f"<p>{html.escape(self.criteria)}</p>", f"<p><strong>{html.escape(self.summary)}</strong></p>"]
        if not self.timeline.empty:
            parts.append(self.table().display_copy().to_html(index=False))
        return "".join(parts)


def _normalized(address: str | None) -> str | None:
    if address is None:
        return None
    text = address.strip().strip("<>").strip().lower()
    return text or None


def _matches(table: pd.DataFrame, sender: str | None, recipient: str | None, message_id: str | None) -> pd.Series:
    keep = pd.Series(True, index=table.index)
    if sender is not None:
        keep &= table["sender"].fillna("").eq(sender)
    if recipient is not None:
        keep &= table["recipients"].map(lambda values: recipient in values) | \
            table["rejected_recipients"].map(lambda values: recipient in values)
    if message_id is not None:
        keep &= table["message_id"].fillna("").str.lower().eq(message_id)
    return keep


def trace_message(transactions: pd.DataFrame, *, sender: str | None = None, recipient: str | None = None,
                  message_id: str | None = None, zone: str = "UTC") -> TraceResult:
    """Trace the message from `sender` to `recipient` (or with `message_id`) through the log.

    Addresses and the Message-ID match without regard to case, with or without angle brackets.
    At least one of the three criteria is required, or InputError is raised.
    """
    sender, recipient = _normalized(sender), _normalized(recipient)
    shown_id = message_id.strip() if message_id and message_id.strip() else None
    if shown_id is not None and not shown_id.startswith("<"):
        shown_id = f"<{shown_id}>"
    message_id = shown_id.lower() if shown_id else None
    if sender is None and recipient is None and message_id is None:
        raise InputError("smtplog.trace_needs_criteria", option=TRACE_PARAMETERS,
                         next_key="smtplog.trace_needs_criteria_next")
    any_value = message("smtplog.any_value")
    criteria = message("smtplog.trace_criteria", sender=sender or any_value, recipient=recipient or any_value,
                       message_id=shown_id or any_value)

    inbound = transactions[(transactions["direction"] == INBOUND)
                           & _matches(transactions, sender, recipient, message_id)]
    outbound = transactions[transactions["direction"] == OUTBOUND]
    found_out = outbound[_matches(outbound, sender, recipient, message_id)]
    if message_id is not None and sender is None and recipient is None and not inbound.empty:
        # Outbound lines may not carry the Message-ID: follow the received message's envelope.
        received = inbound[inbound["result"] == ACCEPTED]
        by_envelope = pd.Series(False, index=outbound.index)
        for _, row in received.iterrows():
            by_envelope |= _matches(outbound, row["sender"], None, None) & outbound["recipients"].map(
                lambda values, wanted=set(row["recipients"]): bool(wanted & set(values)))
        found_out = outbound[_matches(outbound, sender, recipient, message_id) | by_envelope]
    accepted = inbound[inbound["result"] == ACCEPTED]
    if not accepted.empty:
        found_out = found_out[found_out["start"] >= accepted["start"].min()]

    timeline = _timeline(inbound, found_out)
    verdict, summary = _verdict(inbound, found_out)
    return TraceResult(verdict=verdict, summary=summary, criteria=criteria, timeline=timeline, zone=zone)


def _timeline(inbound: pd.DataFrame, outbound: pd.DataFrame) -> pd.DataFrame:
    rows = pd.concat([inbound.assign(stage=inbound["result"].map(_INBOUND_STAGES)),
                      outbound.assign(stage=outbound["result"].map(_OUTBOUND_STAGES))])
    columns = ["time", "stage", "direction", "peer", "sender", "recipient", "message_id", "reply", "source"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.sort_values(["start", "session", "transaction"], kind="stable")
    rows["time"] = rows["start"]
    rows["recipient"] = [listed((*accepted, *refused)) for accepted, refused in
                          zip(rows["recipients"], rows["rejected_recipients"])]
    rows["reply"] = [format_reply(code, text) for code, text in zip(rows["reply_code"], rows["reply_text"])]
    rows["source"] = source_of(rows)
    return rows[columns].reset_index(drop=True)


def _verdict(inbound: pd.DataFrame, outbound: pd.DataFrame) -> tuple[str, str]:
    verdict, summary = _last_verdict(inbound, outbound)
    received = int((inbound["result"] == ACCEPTED).sum())
    if received > 1:
        # The verdict is about the latest message, so the summary adds that several match.
        summary = f"{summary} {message('smtplog.verdict_several', count=received)}"
    return verdict, summary


def _last_verdict(inbound: pd.DataFrame, outbound: pd.DataFrame) -> tuple[str, str]:
    if not outbound.empty:
        delivered = outbound[outbound["result"] == DELIVERED]
        chosen = delivered.iloc[-1] if not delivered.empty else outbound.iloc[-1]
        verdict = {DELIVERED: "delivered", DEFERRED: "deferred", REJECTED: "rejected",
                   UNCONFIRMED: "unconfirmed"}.get(chosen["result"], "deferred")
        return verdict, _sentence(verdict, chosen)
    if inbound.empty:
        return "not_found", message("smtplog.verdict.not_found")
    received = inbound[inbound["result"] == ACCEPTED]
    if not received.empty:
        return "received_only", _sentence("received_only", received.iloc[-1])
    last = inbound.iloc[-1]
    verdict = "incomplete" if last["result"] == INCOMPLETE else "refused"
    return verdict, _sentence(verdict, last)


def _sentence(verdict: str, row: pd.Series) -> str:
    return message(f"smtplog.verdict.{verdict}", time=row["start"], peer=row["peer"],
                   reply=format_reply(row["reply_code"], row["reply_text"]))
