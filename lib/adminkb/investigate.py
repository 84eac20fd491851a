"""Investigate relay abuse and password guessing in the SMTP service's W3C Extended logs.

The functions take the DataFrame of `adminkb.w3c.read_w3c` and return tables with column
names in the user's language:

- `relay_report`: who sent mail to remote domains through the server (accepted `RCPT TO`
  outside the local domains), from which client addresses, as which authenticated account,
  to how many recipients, and how many relay attempts the server rejected;
- `auth_failures`: failed AUTH per client address and time window, with bursts marked;
- `abuse_timeline` and `abuse_overview`: the counts per hour and the first and last sighting
  of one client address or account;
- `plot_timeline`: the hourly counts as a figure.

The service logs one line per command with no session id. Each line records its client address,
and after a successful AUTH the lab writes the account in `cs-username` where it otherwise
writes the HELO name. So a row counts as authenticated when the same client address got a 235
reply to AUTH since its last QUIT or STARTTLS.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adminkb.errors import InputError
from adminkb.i18n import message

if TYPE_CHECKING:
    from adminkb.plotting import RenderedFigure

log = logging.getLogger("adminkb.investigate")

# Columns of read_w3c's frame that every analysis needs. Recipients also need cs-uri-query,
# and accounts need cs-username.
TIMESTAMP = "timestamp"
REQUIRED_FIELDS = ("c-ip", "cs-method", "sc-status")
QUERY_FIELD = "cs-uri-query"
# The service's own outbound lines put these in cs-username; they are not client sessions.
OUTBOUND_USERNAMES = ("OutboundConnectionCommand", "OutboundConnectionResponse")

AUTH_SUCCEEDED = 235
# 535 5.7.3 "Authentication unsuccessful" is the reply to a wrong user name or password
# (RFC 4954 section 6 gives 535 5.7.8 for the same case).
AUTH_FAILED = 535
RECIPIENT_ACCEPTED = (250, 251)
MESSAGE_ACCEPTED = 250

# The functions that show the tables a suspect is picked from, as an error names them.
SUMMARY_FUNCTIONS = "relay_report(), auth_failures()"
DEFAULT_WINDOW = "10min"
DEFAULT_BURST_THRESHOLD = 5
DEFAULT_FREQUENCY = "1h"

_ANGLE_ADDRESS = re.compile(r"<([^<>]*)>")
_BARE_ADDRESS = re.compile(r"^\s*(?:TO|FROM)\s*:\s*(\S+)", re.IGNORECASE)


def _column(name: str) -> str:
    return message(f"investigate.column.{name}")


# Events ----------------------------------------------------------------------------------


def _check_frame(frame: pd.DataFrame, *extra_fields: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InputError("investigate.input.not_a_frame", value=type(frame).__name__,
                         next_key="investigate.input.not_a_frame_next")
    missing = [name for name in (TIMESTAMP, *REQUIRED_FIELDS, *extra_fields) if name not in frame.columns]
    if missing:
        raise InputError("investigate.input.missing_fields", value=", ".join(missing),
                         next_key="investigate.input.missing_fields_next")


def _clean_text(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _mapped(values: pd.Series, function) -> np.ndarray:
    """Apply `function` to each distinct value once and return an object array in row order.

    Log columns repeat few values (addresses, methods, recipients), so this is faster
    than a call per row. Missing values become None without calling `function`.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    results = np.empty(len(uniques) + 1, dtype=object)
    results[:-1] = [function(value) for value in uniques]
    results[-1] = None
    return results[codes]


def _text_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Return a column as an object array of str, with None where the log had `-` or no such field."""
    if name not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    return _mapped(frame[name], _clean_text)


def _upper_method(value: object) -> str:
    text = _clean_text(value)
    return text.upper() if text else ""


def _events(frame: pd.DataFrame, *extra_fields: str) -> pd.DataFrame:
    """Return the inbound rows in log order as plain columns, each with its session's HELO name and account.

    A session of a client address runs up to its QUIT. A row is authenticated when an AUTH
    with reply 235 came earlier in the same session and no STARTTLS came in between, because
    after STARTTLS the client starts over (RFC 3207 section 4.2).

    NOTE: the log has no session id, so two sessions from one client address at the same
    time share one state here. An AUTH in one of them marks the other's rows as
    authenticated until a QUIT from that address.
    """
    _check_frame(frame, *extra_fields)
    usernames = _text_column(frame, "cs-username")
    clients = _text_column(frame, "c-ip")
    inbound = np.array([client is not None for client in clients], dtype=bool) \
        & ~np.isin(usernames, OUTBOUND_USERNAMES)
    selected = frame[inbound]
    events = pd.DataFrame({
        "time": selected[TIMESTAMP].reset_index(drop=True),
        "client": clients[inbound],
        "method": _mapped(selected["cs-method"], _upper_method),
        "status": selected["sc-status"].astype("Int64").fillna(-1).to_numpy(dtype=np.int64),
        "query": _text_column(selected, QUERY_FIELD),
    })
    usernames = pd.Series(usernames[inbound], dtype=object)
    if events.empty:
        return events.assign(helo=pd.Series(dtype=object), account=pd.Series(dtype=object))

    method = events["method"]
    # Rows up to and including a QUIT belong to one session; STARTTLS also ends the authenticated part.
    ends_session = method == "QUIT"
    session = ends_session.groupby(events["client"]).cumsum() - ends_session
    ends_auth = ends_session | (method == "STARTTLS")
    part = ends_auth.groupby(events["client"]).cumsum() - ends_auth
    succeeded = (method == "AUTH") & (events["status"] == AUTH_SUCCEEDED)
    earlier_successes = succeeded.groupby([events["client"], part]).cumsum() - succeeded
    authenticated = (earlier_successes > 0) & ~ends_session

    hello = method.isin(["EHLO", "HELO"])
    hello_names = pd.Series(_mapped(events["query"], lambda query: query.strip() or None), dtype=object)
    hello_names = hello_names.where(hello_names.notna(), usernames)
    helo = hello_names.where(hello).groupby([events["client"], session]).ffill()

    if "cs-username" in frame.columns:
        # Without a cs-username value the log shows that AUTH succeeded, not for which account.
        account = usernames.where(usernames.notna(), message("investigate.unknown_account"))
    else:
        account = pd.Series(message("investigate.unknown_account"), index=events.index, dtype=object)
    events["helo"] = helo.where(helo.notna(), None)
    events["account"] = account.where(authenticated, None)
    return events


def recipient_of(query: str | None) -> str | None:
    """Return the address in a logged `RCPT` argument such as `TO:<user@example.com> NOTIFY=NEVER`."""
    if not isinstance(query, str) or not query:
        return None
    found = _ANGLE_ADDRESS.search(query)
    if found is not None:
        return found.group(1).strip() or None
    bare = _BARE_ADDRESS.match(query)
    return bare.group(1) if bare is not None else None


def _domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rpartition("@")[2].strip().rstrip(".").lower() or None


def _recipient_column(queries: pd.Series) -> np.ndarray:
    return _mapped(queries, recipient_of)


def _domain_column(addresses: np.ndarray) -> pd.Series:
    return pd.Series(_mapped(pd.Series(addresses, dtype=object), _domain_of), dtype=object)


def _checked_domains(local_domains: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(local_domains, str):
        local_domains = [local_domains]
    domains = tuple(str(domain).strip().rstrip(".").lower() for domain in local_domains)
    if not domains or any(not domain or "@" in domain or " " in domain for domain in domains):
        raise InputError("investigate.input.invalid_local_domains", value=", ".join(domains) or "-",
                         next_key="investigate.input.invalid_local_domains_next")
    return domains


def _recipients(events: pd.DataFrame, local_domains: tuple[str, ...]) -> pd.DataFrame:
    """Return the RCPT rows to remote domains with their recipient, domain and whether it was accepted."""
    rcpt = events[events["method"] == "RCPT"].copy()
    rcpt["recipient"] = _recipient_column(rcpt["query"])
    rcpt["domain"] = _domain_column(rcpt["recipient"].to_numpy()).to_numpy()
    remote = rcpt["domain"].notna() & ~rcpt["domain"].isin(local_domains)
    rcpt = rcpt[remote].copy()
    rcpt["accepted"] = rcpt["status"].isin(RECIPIENT_ACCEPTED)
    # A 5xx to a remote recipient is the relay restriction at work (550 5.7.1 Unable to relay).
    rcpt["rejected"] = (rcpt["status"] >= 500) & (rcpt["status"] < 600)
    return rcpt


def relayed_recipients(frame: pd.DataFrame, local_domains: Iterable[str] | str) -> pd.DataFrame:
    """Return one row per recipient in a remote domain that the server accepted, in log order."""
    domains = _checked_domains(local_domains)
    rcpt = _recipients(_events(frame, QUERY_FIELD), domains)
    accepted = rcpt[rcpt["accepted"]]
    no_account = message("investigate.no_account")
    return pd.DataFrame({
        _column("time"): accepted["time"].to_numpy(),
        _column("client"): accepted["client"].to_numpy(),
        _column("account"): accepted["account"].fillna(no_account).to_numpy(),
        _column("helo"): accepted["helo"].fillna("-").to_numpy(),
        _column("recipient"): accepted["recipient"].to_numpy(),
    })


def relay_report(frame: pd.DataFrame, local_domains: Iterable[str] | str) -> pd.DataFrame:
    """Summarize relay per client address and account: recipients accepted, domains, rejections, first and last seen.

    A client that only had relay attempts rejected is listed too, because that is how an
    attacker probes for an open relay. Rows are sorted by accepted recipients, then address.
    """
    domains = _checked_domains(local_domains)
    rcpt = _recipients(_events(frame, QUERY_FIELD), domains)
    rcpt["account"] = rcpt["account"].where(rcpt["account"].notna(), message("investigate.no_account"))
    keys = ["client", "account"]
    names = ("client", "account", "helo", "relayed", "domains", "rejected", "first_seen", "last_seen")
    columns = [_column(name) for name in names]
    if rcpt.empty:
        return pd.DataFrame(columns=columns)

    report = rcpt.groupby(keys, sort=True).agg(relayed=("accepted", "sum"), rejected=("rejected", "sum"),
                                               first_seen=("time", "min"), last_seen=("time", "max"))
    accepted = rcpt[rcpt["accepted"]]
    report["domains"] = accepted.groupby(keys)["domain"].nunique().reindex(report.index, fill_value=0)
    helo_names = rcpt.dropna(subset=["helo"]).drop_duplicates(subset=[*keys, "helo"]).sort_values("helo")
    report["helo"] = helo_names.groupby(keys)["helo"].agg(", ".join).reindex(report.index).fillna("-")
    report = report.reset_index()
    report[["relayed", "rejected", "domains"]] = report[["relayed", "rejected", "domains"]].astype(int)
    report = report.sort_values(["relayed", "client", "account"], ascending=[False, True, True], kind="stable")
    report = report[list(names)].reset_index(drop=True)
    report.columns = columns
    return report


# Failed authentication -----------------------------------------------------------------


def _checked_offset(text: str, option: str) -> pd.Timedelta:
    try:
        offset = pd.Timedelta(pd.tseries.frequencies.to_offset(text))
    except (ValueError, TypeError):
        raise InputError("investigate.input.invalid_window", value=text, option=option,
                         next_key="investigate.input.invalid_window_next") from None
    if offset <= pd.Timedelta(0):
        raise InputError("investigate.input.invalid_window", value=text, option=option,
                         next_key="investigate.input.invalid_window_next")
    return offset


def auth_failures(frame: pd.DataFrame, *, window: str = DEFAULT_WINDOW,
                  threshold: int = DEFAULT_BURST_THRESHOLD) -> pd.DataFrame:
    """Count failed and successful AUTH per client address and time window, and mark the bursts.

    Windows are fixed intervals of length `window` (a pandas offset such as "10min" or "1h")
    counted from midnight, so a burst that spans a window boundary is split in two. A window
    with at least `threshold` failures is a burst. A success that follows at least `threshold`
    failures in the same window is marked as a guess that may have worked. A success after
    fewer failures gets a milder verdict that asks to confirm with the user, because one or two
    failures are often a mistyped password.
    """
    length = _checked_offset(window, "window")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise InputError("investigate.input.invalid_threshold", value=threshold,
                         next_key="investigate.input.invalid_threshold_next")
    events = _events(frame)
    auth = events[(events["method"] == "AUTH") & events["time"].notna()].copy()
    auth["window"] = auth["time"].dt.floor(length)
    auth["failed"] = auth["status"] == AUTH_FAILED
    auth["succeeded"] = auth["status"] == AUTH_SUCCEEDED
    names = ("client", "window_start", "window_end", "failures", "successes", "first_seen", "last_seen", "verdict")
    columns = [_column(name) for name in names]
    keys = ["client", "window"]

    # The failures up to the window's last success are the guesses made before a login that worked.
    # The log has whole seconds, so a failure in the same second as the success counts as before it.
    last_success = auth[auth["succeeded"]].groupby(keys)["time"].max().rename("last_success")
    auth = auth.join(last_success, on=keys)
    auth["failed_before_success"] = auth["failed"] & (auth["time"] <= auth["last_success"])

    table = auth.groupby(keys, sort=True).agg(failures=("failed", "sum"), successes=("succeeded", "sum"),
                                              failures_before_success=("failed_before_success", "sum"),
                                              first_seen=("time", "min"), last_seen=("time", "max"))
    table = table[table["failures"] > 0]
    first_failure = auth[auth["failed"]].groupby(keys)["time"].min().reindex(table.index)
    success_after_failure = (last_success.reindex(table.index) >= first_failure).fillna(False).to_numpy(dtype=bool)
    guessed = (table["failures_before_success"] >= threshold).to_numpy(dtype=bool)
    burst = (table["failures"] >= threshold).to_numpy(dtype=bool)
    table["verdict"] = np.select(
        [guessed, burst, success_after_failure],
        [message("investigate.verdict.success_after_failures"), message("investigate.verdict.burst"),
         message("investigate.verdict.success_after_few_failures")],
        default=message("investigate.verdict.occasional"))
    table = table.reset_index().rename(columns={"window": "window_start"})
    table["window_end"] = table["window_start"] + length
    table[["failures", "successes"]] = table[["failures", "successes"]].astype(int)
    table["_burst"] = burst
    table = table.sort_values(["failures", "client", "window_start"], ascending=[False, True, True], kind="stable")
    table = table[[*names, "_burst"]].reset_index(drop=True)
    bursts = int(table.pop("_burst").sum())
    table.columns = columns
    table.attrs["bursts"] = bursts
    return table


def count_bursts(failures: pd.DataFrame) -> int:
    """Return how many windows of an `auth_failures` table are bursts."""
    return int(failures.attrs.get("bursts", 0))


# Timeline of one suspect -----------------------------------------------------------------


def _suspect_rows(frame: pd.DataFrame, client: str | None, account: str | None) -> pd.DataFrame:
    events = _events(frame, QUERY_FIELD)
    selected = events
    if client is not None:
        selected = selected[selected["client"] == str(client)]
    if account is not None:
        selected = selected[selected["account"].fillna("").str.lower() == str(account).lower()]
    if selected.empty and (client is not None or account is not None):
        raise InputError("investigate.input.suspect_not_found", value=client or account, option=SUMMARY_FUNCTIONS,
                         next_key="investigate.input.suspect_not_found_next")
    return selected[selected["time"].notna()]


def _counts(rows: pd.DataFrame, local_domains: tuple[str, ...]) -> pd.DataFrame:
    """Return per-row indicator columns: session, relayed, rejected relay, AUTH failure, message."""
    method, status = rows["method"], rows["status"]
    rcpt = method == "RCPT"
    domains = _domain_column(_recipient_column(rows["query"].where(rcpt, None)))
    remote = pd.Series((domains.notna() & ~domains.isin(local_domains)).to_numpy(), index=rows.index)
    return pd.DataFrame({
        "sessions": method.isin(["EHLO", "HELO"]),
        "relayed": rcpt & remote & status.isin(RECIPIENT_ACCEPTED),
        "rejected": rcpt & remote & (status >= 500) & (status < 600),
        "auth_failures": (method == "AUTH") & (status == AUTH_FAILED),
        "messages": method.isin(["DATA", "BDAT"]) & (status == MESSAGE_ACCEPTED),
    }, index=rows.index)


TIMELINE_COUNTS = ("sessions", "relayed", "rejected", "auth_failures", "messages")


def abuse_timeline(frame: pd.DataFrame, local_domains: Iterable[str] | str, *, client: str | None = None,
                   account: str | None = None, frequency: str = DEFAULT_FREQUENCY) -> pd.DataFrame:
    """Count sessions, relayed and rejected recipients, failed AUTH and messages per interval.

    `client` and `account` narrow the rows to one suspect (both: rows matching both). Every
    interval from the first row to the last is listed, including empty ones, so gaps show.
    Times are in the frame's time zone (UTC unless `read_w3c` was given `tz`).
    """
    domains = _checked_domains(local_domains)
    length = _checked_offset(frequency, "frequency")
    rows = _suspect_rows(frame, client, account)
    counts = _counts(rows, domains).astype(int)
    counts.index = rows["time"].dt.floor(length)
    columns = {name: _column(name) for name in TIMELINE_COUNTS}
    if counts.empty:
        empty = pd.DataFrame(columns=list(columns.values()), dtype=int)
        empty.index.name = _column("interval")
        return empty
    grouped = counts.groupby(level=0).sum()
    full_range = pd.date_range(grouped.index.min(), grouped.index.max(), freq=length)
    timeline = grouped.reindex(full_range, fill_value=0).rename(columns=columns)
    timeline.index.name = _column("interval")
    return timeline


def abuse_overview(frame: pd.DataFrame, local_domains: Iterable[str] | str, *, client: str | None = None,
                   account: str | None = None) -> pd.DataFrame:
    """Return a two-column table for one suspect: first and last seen, totals, addresses and HELO names."""
    domains = _checked_domains(local_domains)
    rows = _suspect_rows(frame, client, account)
    counts = _counts(rows, domains)
    first = rows["time"].min() if not rows.empty else None
    last = rows["time"].max() if not rows.empty else None
    items = [
        ("first_seen", "-" if first is None else str(first)),
        ("last_seen", "-" if last is None else str(last)),
        ("clients", ", ".join(sorted(set(rows["client"].dropna()))) or "-"),
        ("accounts", ", ".join(sorted(set(rows["account"].dropna()))) or message("investigate.no_account")),
        ("helo", ", ".join(sorted(set(rows["helo"].dropna()))) or "-"),
        *((name, str(int(counts[name].sum()))) for name in TIMELINE_COUNTS),
    ]
    return pd.DataFrame({_column("fact"): [_column(name) for name, _ in items],
                         _column("value"): [value for _, value in items]})


def plot_timeline(timeline: pd.DataFrame, *, title: str | None = None) -> RenderedFigure:
    """Draw an `abuse_timeline` table as bars per interval and return the rendered PNG figure.

    Raises MissingGlyphsError when a label has characters that no installed font can draw.
    """
    # matplotlib loads only here, so that the adminkb command starts without it.
    from matplotlib.ticker import MaxNLocator

    from adminkb import plotting

    figure = plotting.new_figure(9.0, 4.0)
    axes = figure.add_subplot()
    shown = [_column(name) for name in ("relayed", "rejected", "auth_failures") if _column(name) in timeline]
    labels = [_interval_label(stamp) for stamp in timeline.index]
    positions = np.arange(len(labels))
    width = 0.8 / max(len(shown), 1)
    for offset, name in enumerate(shown):
        axes.bar(positions + offset * width, timeline[name].to_numpy(), width=width, label=name)
    axes.set_xticks(positions + width * (len(shown) - 1) / 2, labels, rotation=45, ha="right")
    axes.set_xlabel(_column("interval"))
    axes.set_ylabel(message("investigate.plot.count"))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title or message("investigate.plot.title"))
    if shown:
        axes.legend()
    return plotting.render_png(figure)


def _interval_label(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%m-%d %H:%M")
