"""The questions admins ask of SMTP logs, each answered by a table with zh-TW column names.

`SmtpLogAnalysis(frame, tz=...)` builds the events, sessions and transactions of a `read_w3c`
frame once, and each method returns one table. Internal column names are English keys. The
tables that users see take their column names from the catalog (`smtplog.column.<key>`),
which also translates the values that are codes (direction, result, reason).
"""

from __future__ import annotations

import pandas as pd

from adminkb.i18n import message
from adminkb.plotting import RenderedFigure
from adminkb.smtplog.events import INBOUND, OUTBOUND, flag, smtp_events
from adminkb.smtplog.labels import checked_top, format_reply, listed, localize_table, source_of
from adminkb.smtplog.outbound import outbound_replies_data, outbound_servers_data
from adminkb.smtplog.plots import plot_hourly, plot_top
from adminkb.smtplog.sessions import ACCEPTED, DELIVERED, sessions, transactions
from adminkb.smtplog.trace import TraceResult, trace_message
from adminkb.smtplog.unusual import unusual_data

# The default number of rows of a top-N table.
DEFAULT_TOP = 10

# The tables of a full report, in the order the report shows them.
REPORT_TABLES = ("hourly", "top_clients", "top_helo", "top_senders", "top_recipients", "relay_denials",
                 "auth_failures", "outbound_servers", "outbound_replies", "slowest", "unusual")


class SmtpLogAnalysis:
    """Analyses of one set of IIS SMTP logs, read with `adminkb.w3c.read_w3c`.

    `tz` is the zone for the times shown (for example "Asia/Taipei"). None keeps the frame's
    zone, which is UTC unless the frame was read with `tz`. Each table method returns a new
    DataFrame with catalog column names. The `*_data` methods return the same rows with the
    internal English keys, for code that works on the values.
    """

    def __init__(self, frame: pd.DataFrame, *, tz: str | None = None) -> None:
        self.frame = frame
        self.events = smtp_events(frame, tz=tz)
        self.zone = tz or frame.attrs.get("tz") or "UTC"
        self.transactions_data = transactions(self.events)
        self.sessions_data = sessions(self.events, self.transactions_data)

    def _localized(self, table: pd.DataFrame) -> pd.DataFrame:
        return localize_table(table, self.zone)

    def _inbound_sessions(self) -> pd.DataFrame:
        return self.sessions_data[self.sessions_data["direction"] == INBOUND]

    def _inbound_transactions(self) -> pd.DataFrame:
        return self.transactions_data[self.transactions_data["direction"] == INBOUND]

    def _inbound_events(self, command: str) -> pd.DataFrame:
        events = self.events
        return events[(events["direction"] == INBOUND) & flag(events["command"] == command)]

    # Sessions and transactions

    def sessions(self) -> pd.DataFrame:
        """Return the connections rebuilt from the log, one row each, in the order they started."""
        table = self.sessions_data.copy()
        table["reply"] = [format_reply(code, text) for code, text in zip(table["reply_code"], table["reply_text"])]
        table["source"] = source_of(table)
        columns = ["session", "direction", "peer", "helo", "start", "end", "duration", "commands",
                   "transactions", "messages", "auth", "closed", "reply", "source"]
        return self._localized(table[columns])

    def transactions(self) -> pd.DataFrame:
        """Return the mail transactions (from MAIL to the end of the message), in time order."""
        return self._localized(self._transaction_view(self.transactions_data))

    @staticmethod
    def _transaction_view(table: pd.DataFrame) -> pd.DataFrame:
        view = table.copy()
        view["recipients"] = view["recipients"].map(listed)
        view["rejected_recipients"] = view["rejected_recipients"].map(listed)
        view["reply"] = [format_reply(code, text) for code, text in zip(view["reply_code"], view["reply_text"])]
        view["source"] = source_of(view)
        columns = ["start", "session", "direction", "peer", "helo", "sender", "recipients", "rejected_recipients",
                   "message_id", "result", "reply", "time_taken", "duration", "source"]
        return view[columns]

    # Traffic over time

    def hourly_data(self) -> pd.DataFrame:
        """Return connections and messages per hour, each way, with every hour in the range."""
        sessions_table = self.sessions_data.dropna(subset=["start"])
        done = self.transactions_data.dropna(subset=["start"])
        counts = {
            "connections": sessions_table[sessions_table["direction"] == INBOUND]["start"],
            "messages_received": done[done["result"] == ACCEPTED]["start"],
            "outbound_connections": sessions_table[sessions_table["direction"] == OUTBOUND]["start"],
            "messages_sent": done[done["result"] == DELIVERED]["start"],
        }
        columns = {}
        for name, times in counts.items():
            # An empty table's column has the object dtype, which has no .dt accessor. A filled one
            # is already timestamped in the analysis' zone, so it is not converted to UTC.
            if not pd.api.types.is_datetime64_any_dtype(times):
                times = pd.to_datetime(times, utc=True)
            columns[name] = times.dt.floor("h").value_counts()
        table = pd.DataFrame(columns)
        if table.empty:
            return pd.DataFrame(columns=["hour", *counts])
        hours = pd.date_range(table.index.min(), table.index.max(), freq="h")
        table = table.reindex(hours).fillna(0).astype(int)
        table.index.name = "hour"
        return table.reset_index()

    def hourly(self) -> pd.DataFrame:
        """Return connections and messages per hour in the analysis' zone."""
        return self._localized(self.hourly_data())

    # Who connects

    def top_clients_data(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        top = checked_top(top)
        inbound = self._inbound_sessions()
        accepted = self._inbound_transactions()
        accepted = accepted[accepted["result"] == ACCEPTED]
        denials = self._inbound_events("RCPT")
        denials = denials[flag(denials["reply_code"] == 550)]
        grouped = inbound.groupby("peer")
        table = pd.DataFrame({
            "connections": grouped.size(),
            "messages": accepted.groupby("peer").size(),
            "relay_denials": denials.groupby("peer").size(),
            "helo_names": grouped["helo"].agg(listed),
            "first": grouped["start"].min(),
            "last": grouped["end"].max(),
        })
        table[["messages", "relay_denials"]] = table[["messages", "relay_denials"]].fillna(0).astype(int)
        table.index.name = "peer"
        table = table.reset_index().sort_values(["connections", "peer"], ascending=[False, True])
        return table.head(top).reset_index(drop=True)

    def top_clients(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        """Return the client addresses with the most connections."""
        return self._localized(self.top_clients_data(top))

    def top_helo_data(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        top = checked_top(top)
        inbound = self._inbound_sessions().dropna(subset=["helo"])
        grouped = inbound.groupby("helo")
        table = pd.DataFrame({
            "connections": grouped.size(),
            "clients": grouped["peer"].nunique(),
            "client_addresses": grouped["peer"].agg(listed),
            "messages": grouped["messages"].sum(),
        })
        table.index.name = "helo"
        table = table.reset_index().sort_values(["connections", "helo"], ascending=[False, True])
        return table.head(top).reset_index(drop=True)

    def top_helo(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        """Return the HELO/EHLO names clients gave most often, with the addresses that gave them."""
        return self._localized(self.top_helo_data(top))

    # Who sends to whom

    def top_senders_data(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        top = checked_top(top)
        inbound = self._inbound_transactions().dropna(subset=["sender"])
        grouped = inbound.groupby("sender")
        table = pd.DataFrame({
            "transactions": grouped.size(),
            "messages": grouped["result"].agg(lambda results: int((results == ACCEPTED).sum())),
            "recipient_count": grouped["recipients"].agg(lambda sets: len(set().union(*sets))),
            "client_addresses": grouped["peer"].agg(listed),
        })
        table.index.name = "sender"
        table = table.reset_index().sort_values(["transactions", "sender"], ascending=[False, True])
        return table.head(top).reset_index(drop=True)

    def top_senders(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        """Return the MAIL FROM addresses with the most transactions."""
        return self._localized(self.top_senders_data(top))

    def top_recipients_data(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        top = checked_top(top)
        inbound = self._inbound_transactions()
        exploded = inbound[["recipients", "result", "sender"]].explode("recipients").dropna(subset=["recipients"])
        grouped = exploded.groupby("recipients")
        table = pd.DataFrame({
            "transactions": grouped.size(),
            "messages": grouped["result"].agg(lambda results: int((results == ACCEPTED).sum())),
            "senders": grouped["sender"].agg(listed),
        })
        table.index.name = "recipient"
        table = table.reset_index().sort_values(["transactions", "recipient"], ascending=[False, True])
        return table.head(top).reset_index(drop=True)

    def top_recipients(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        """Return the RCPT TO addresses accepted most often."""
        return self._localized(self.top_recipients_data(top))

    # Refusals

    def relay_denials_data(self) -> pd.DataFrame:
        # NOTE: the log keeps only the code 550, not the reply text. The IIS SMTP Service rejects
        # RCPT TO with 550 for relay (550 5.7.1 Unable to relay), so 550 is read as a relay denial.
        denials = self._inbound_events("RCPT")
        denials = denials[flag(denials["reply_code"] == 550)]
        senders = self.events[flag(self.events["command"] == "MAIL")][["session", "transaction", "address"]]
        denials = denials.merge(senders.rename(columns={"address": "sender"}), on=["session", "transaction"],
                                how="left")
        grouped = denials.groupby("peer")
        table = pd.DataFrame({
            "attempts": grouped.size(),
            "address_count": grouped["address"].nunique(),
            "addresses": grouped["address"].agg(listed),
            "senders": grouped["sender"].agg(listed),
            "helo_names": grouped["helo"].agg(listed),
            "first": grouped["timestamp"].min(),
            "last": grouped["timestamp"].max(),
        })
        table.index.name = "peer"
        table = table.reset_index().sort_values(["attempts", "peer"], ascending=[False, True])
        return table.reset_index(drop=True)

    def relay_denials(self) -> pd.DataFrame:
        """Return the clients refused relay (550 on RCPT TO), with the addresses they tried."""
        return self._localized(self.relay_denials_data())

    def auth_failures_data(self) -> pd.DataFrame:
        auth = self._inbound_events("AUTH")
        auth = auth[auth["reply_code"].notna()]
        failed = auth[flag(auth["reply_code"] >= 400)]
        succeeded = auth[flag(auth["reply_code"].between(200, 299))]
        grouped = failed.groupby("peer")
        table = pd.DataFrame({
            "failures": grouped.size(),
            "successes": succeeded.groupby("peer").size(),
            "mechanisms": grouped["argument"].agg(lambda values: listed(
                str(value).split()[0].upper() for value in values.dropna() if str(value).split())),
            "helo_names": grouped["helo"].agg(listed),
            "first": grouped["timestamp"].min(),
            "last": grouped["timestamp"].max(),
        })
        table = table[table["failures"].notna()]
        table["failures"] = table["failures"].astype(int)
        table["successes"] = table["successes"].fillna(0).astype(int)
        table.index.name = "peer"
        table = table.reset_index().sort_values(["failures", "peer"], ascending=[False, True])
        return table.reset_index(drop=True)

    def auth_failures(self) -> pd.DataFrame:
        """Return the clients whose AUTH failed, with their failures and successes."""
        return self._localized(self.auth_failures_data())

    # The outbound side

    def outbound_servers_data(self) -> pd.DataFrame:
        return outbound_servers_data(self.sessions_data, self.transactions_data)

    def outbound_servers(self) -> pd.DataFrame:
        """Return the remote servers the service delivered to, with delivered, deferred and rejected counts."""
        return self._localized(self.outbound_servers_data())

    def outbound_replies_data(self, *, failures_only: bool = True) -> pd.DataFrame:
        return outbound_replies_data(self.events, failures_only=failures_only)

    def outbound_replies(self, *, failures_only: bool = True) -> pd.DataFrame:
        """Return the replies of remote servers with their meaning: only 4xx and 5xx with `failures_only`."""
        return self._localized(self.outbound_replies_data(failures_only=failures_only))

    # Slow and odd

    def slowest_data(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        top = checked_top(top)
        table = self.transactions_data.sort_values(["time_taken", "duration", "start"],
                                                   ascending=[False, False, True], na_position="last")
        return self._transaction_view(table.head(top)).reset_index(drop=True)

    def slowest(self, top: int = DEFAULT_TOP) -> pd.DataFrame:
        """Return the transactions with the largest total time-taken (milliseconds), then the longest."""
        return self._localized(self.slowest_data(top))

    def unusual_data(self) -> pd.DataFrame:
        return unusual_data(self.events)

    def unusual(self) -> pd.DataFrame:
        """Return inbound lines that are HTTP requests or commands the service refused, by client."""
        return self._localized(self.unusual_data())

    # Tracing one message

    def trace(self, *, sender: str | None = None, recipient: str | None = None,
              message_id: str | None = None) -> TraceResult:
        """Trace the message from `sender` to `recipient` (or with `message_id`): did it leave, and when."""
        return trace_message(self.transactions_data, sender=sender, recipient=recipient, message_id=message_id,
                             zone=self.zone)

    # Figures

    def plot_hourly(self) -> RenderedFigure:
        """Draw connections and messages per hour."""
        return plot_hourly(self.hourly_data(), self.zone)

    def plot_top_clients(self, top: int = DEFAULT_TOP) -> RenderedFigure:
        """Draw the clients with the most connections."""
        return plot_top(self.top_clients_data(top), "peer", "connections", _top_title("top_clients", top))

    def plot_top_senders(self, top: int = DEFAULT_TOP) -> RenderedFigure:
        """Draw the senders with the most transactions."""
        return plot_top(self.top_senders_data(top), "sender", "transactions", _top_title("top_senders", top))

    def plot_top_recipients(self, top: int = DEFAULT_TOP) -> RenderedFigure:
        """Draw the recipients accepted most often."""
        return plot_top(self.top_recipients_data(top), "recipient", "transactions",
                        _top_title("top_recipients", top))

    def plot_relay_denials(self, top: int = DEFAULT_TOP) -> RenderedFigure:
        """Draw the clients refused relay most often."""
        top = checked_top(top)
        return plot_top(self.relay_denials_data().head(top), "peer", "attempts", _top_title("relay_denials", top))

    # The whole report

    def report_data(self, top: int = DEFAULT_TOP) -> dict[str, pd.DataFrame]:
        """Return every report table with internal keys, by name, in REPORT_TABLES order."""
        top = checked_top(top)
        tables = {
            "hourly": self.hourly_data(),
            "top_clients": self.top_clients_data(top),
            "top_helo": self.top_helo_data(top),
            "top_senders": self.top_senders_data(top),
            "top_recipients": self.top_recipients_data(top),
            "relay_denials": self.relay_denials_data(),
            "auth_failures": self.auth_failures_data(),
            "outbound_servers": self.outbound_servers_data(),
            "outbound_replies": self.outbound_replies_data(),
            "slowest": self.slowest_data(top),
            "unusual": self.unusual_data(),
        }
        return {name: tables[name] for name in REPORT_TABLES}

    def report(self, top: int = DEFAULT_TOP) -> dict[str, pd.DataFrame]:
        """Return every report table with catalog column names, by name, in REPORT_TABLES order."""
        return {name: self._localized(table) for name, table in self.report_data(top).items()}


def table_title(name: str) -> str:
    """Return the displayed title of a report table."""
    return message(f"smtplog.title.{name}")


def _top_title(name: str, top: int) -> str:
    return message("smtplog.plot.top_title", title=table_title(name), top=checked_top(top))


def analyze(frame: pd.DataFrame, *, tz: str | None = None) -> SmtpLogAnalysis:
    """Analyse a `read_w3c` frame; `tz` sets the zone of the times shown (None keeps the frame's)."""
    return SmtpLogAnalysis(frame, tz=tz)
