"""The outbound side: the service as a client of remote servers, and the replies it received."""

from __future__ import annotations

import pandas as pd

from adminkb.smtp.replies import Reply, ReplyFormatError, explain
from adminkb.smtplog.events import OUTBOUND, flag
from adminkb.smtplog.labels import format_reply
from adminkb.smtplog.sessions import DEFERRED, DELIVERED, REJECTED


def reply_meaning(code: object, text: object) -> object:
    """Return what a reply means, from the SMTP reply knowledge base, or NA without a code.

    A known wording (such as a greylisting reply) gives its meaning in practice. Otherwise the
    meaning of the enhanced status code is used, or else that of the reply code.
    """
    if code is None or pd.isna(code):
        return pd.NA
    line = f"{int(code)} {'' if text is None or pd.isna(text) else text}".rstrip()
    try:
        explanation = explain(Reply.from_text(line))
    except ReplyFormatError:
        return pd.NA
    return explanation.meaning or explanation.enhanced_meaning or explanation.code_meaning


def outbound_servers_data(sessions: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """Return one row per remote server: sessions, messages by result, and the last reply."""
    outbound = sessions[sessions["direction"] == OUTBOUND]
    moves = transactions[transactions["direction"] == OUTBOUND]
    columns = ["peer", "sessions", "delivered", "deferred", "rejected", "failed_sessions", "last_reply",
               "first", "last"]
    if outbound.empty:
        return pd.DataFrame(columns=columns)
    grouped = outbound.groupby("peer")
    table = pd.DataFrame({"sessions": grouped.size()})
    for result in (DELIVERED, DEFERRED, REJECTED):
        table[result] = moves[moves["result"] == result].groupby("peer").size()
    # A session that failed before MAIL FROM (a 421 greeting, a HELO rejected) has no transaction.
    failed = outbound[(outbound["transactions"] == 0) & flag(outbound["reply_code"] >= 400)]
    table["failed_sessions"] = failed.groupby("peer").size()
    ordered = outbound.sort_values(["start", "session"])
    last = ordered.groupby("peer").last()
    table["last_reply"] = [format_reply(code, text) for code, text in zip(last["reply_code"], last["reply_text"])]
    table["first"] = grouped["start"].min()
    table["last"] = grouped["end"].max()
    counts = ["delivered", "deferred", "rejected", "failed_sessions"]
    table[counts] = table[counts].fillna(0).astype(int)
    table.index.name = "peer"
    table = table.reset_index().sort_values(["sessions", "peer"], ascending=[False, True])
    return table[columns].reset_index(drop=True)


def outbound_replies_data(events: pd.DataFrame, *, failures_only: bool = True) -> pd.DataFrame:
    """Return the replies remote servers gave, grouped by server, command, code and text.

    With `failures_only`, only 4xx and 5xx replies are kept: deferrals and rejections.
    """
    replies = events[(events["direction"] == OUTBOUND) & events["is_response"] & events["reply_code"].notna()]
    if failures_only:
        replies = replies[flag(replies["reply_code"] >= 400)]
    columns = ["peer", "answers", "reply", "count", "first", "last", "meaning"]
    if replies.empty:
        return pd.DataFrame(columns=columns)
    replies = replies.assign(reply=[format_reply(code, text)
                                    for code, text in zip(replies["reply_code"], replies["reply_text"])],
                             answers=replies["answers"].fillna(""))
    grouped = replies.groupby(["peer", "answers", "reply", "reply_code", "reply_text"], dropna=False)
    table = pd.DataFrame({
        "count": grouped.size(),
        "first": grouped["timestamp"].min(),
        "last": grouped["timestamp"].max(),
    }).reset_index()
    table = table[table["count"] > 0]
    table["meaning"] = [reply_meaning(code, text) for code, text in zip(table["reply_code"], table["reply_text"])]
    # The greeting replies to no command, so it is shown as the reply to the connection itself.
    table["answers"] = table["answers"].replace("", "CONNECT")
    table = table.sort_values(["first", "peer", "reply"]).reset_index(drop=True)
    return table[columns]
