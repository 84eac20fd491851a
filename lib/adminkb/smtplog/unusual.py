"""Inbound lines that show something unusual: HTTP requests on port 25 and commands the service refused."""

from __future__ import annotations

import pandas as pd

from adminkb.smtplog.events import HTTP_METHODS, INBOUND, flag
from adminkb.smtplog.labels import source_of

HTTP_REQUEST = "http_request"
UNRECOGNIZED_COMMAND = "unrecognized_command"
SYNTAX_ERROR = "syntax_error"
NOT_IMPLEMENTED = "not_implemented"
BAD_SEQUENCE = "bad_sequence"
PARAMETER_NOT_IMPLEMENTED = "parameter_not_implemented"
REASONS = (HTTP_REQUEST, UNRECOGNIZED_COMMAND, SYNTAX_ERROR, NOT_IMPLEMENTED, BAD_SEQUENCE,
           PARAMETER_NOT_IMPLEMENTED)
# RFC 5321 section 4.2.3: the replies to a command the server could not take.
_CODE_REASONS = {500: UNRECOGNIZED_COMMAND, 501: SYNTAX_ERROR, 502: NOT_IMPLEMENTED, 503: BAD_SEQUENCE,
                 504: PARAMETER_NOT_IMPLEMENTED}
_HTTP_VERSION = r"HTTP/\d"


def unusual_reasons(events: pd.DataFrame) -> pd.Series:
    """Return the unusual reason of each inbound event, or NA for an ordinary line.

    An HTTP request is recognised by its method (GET, POST...) or an `HTTP/1.x` version in its
    argument, whatever the service replied. Other lines count by their 50x reply code.
    """
    inbound = events["direction"] == INBOUND
    http = inbound & (flag(events["command"].isin(HTTP_METHODS))
                      | flag(events["argument"].str.contains(_HTTP_VERSION, regex=True)))
    reasons = pd.Series(pd.NA, index=events.index, dtype="object")
    for code, reason in _CODE_REASONS.items():
        reasons = reasons.mask(inbound & flag(events["reply_code"] == code), reason)
    return reasons.mask(http, HTTP_REQUEST)


def unusual_data(events: pd.DataFrame) -> pd.DataFrame:
    """Return the unusual inbound lines grouped by client and reason, with an example of each."""
    reasons = unusual_reasons(events)
    found = events[reasons.notna()].assign(reason=reasons[reasons.notna()])
    columns = ["peer", "reason", "count", "example", "first", "last", "source"]
    if found.empty:
        return pd.DataFrame(columns=columns)
    found["example"] = (found["command"].fillna("-") + " " + found["argument"].fillna("")).str.strip()
    found["source"] = source_of(found)
    grouped = found.groupby(["peer", "reason"], sort=False)
    table = pd.DataFrame({
        "count": grouped.size(),
        "example": grouped["example"].first(),
        "first": grouped["timestamp"].min(),
        "last": grouped["timestamp"].max(),
        "source": grouped["source"].first(),
    }).reset_index()
    order = {reason: position for position, reason in enumerate(REASONS)}
    table["_order"] = table["reason"].map(order)
    table = table.sort_values(["_order", "count", "peer"], ascending=[True, False, True])
    return table[columns].reset_index(drop=True)
