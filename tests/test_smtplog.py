"""adminkb.smtplog on fixture logs named after their case, and on logs the mail lab wrote."""

from __future__ import annotations

import smtplib
import socket
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import MailLab, can_bind_source_address
from adminkb.smtplog import REPORT_TABLES, LogTable, analyze, first_rows, smtp_events, table_title
from adminkb.smtplog.labels import label
from adminkb.smtplog.sessions import _address_sets
from adminkb.w3c import read_w3c

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"
TAIPEI = "Asia/Taipei"


def analysis(name: str, tz: str | None = TAIPEI):
    return analyze(read_w3c(LOGS / name), tz=tz)


def taipei(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TAIPEI)


# Sessions and transactions


def test_sessions_split_at_quit():
    events = smtp_events(read_w3c(LOGS / "smtp_relay_denials.log"))
    assert events["session"].nunique() == 4
    per_session = events.groupby("session")["command"].agg(list)
    assert per_session[1] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert per_session[2] == ["EHLO", "MAIL", "RCPT", "RCPT", "RCPT", "QUIT"]


def test_session_split_after_idle_gap():
    result = analysis("smtp_busy_morning.log")
    scanner = result.sessions_data[result.sessions_data["peer"] == "198.51.100.12"]
    assert len(scanner) == 2
    assert scanner["closed"].tolist() == [False, True]
    assert scanner["messages"].tolist() == [0, 1]


def test_outbound_sessions_split_at_greeting():
    result = analysis("smtp_outbound_deferred_then_delivered.log")
    outbound = result.sessions_data[result.sessions_data["direction"] == "outbound"]
    assert len(outbound) == 2
    assert outbound["start"].tolist() == [taipei("2026-03-02 09:15:01"), taipei("2026-03-02 09:31:00")]
    assert outbound["helo"].tolist() == ["mail01.example.com", "mail01.example.com"]


def test_transaction_results():
    result = analysis("smtp_outbound_deferred_then_delivered.log")
    table = result.transactions_data
    assert table["result"].tolist() == ["accepted", "deferred", "delivered"]
    assert table["direction"].tolist() == ["inbound", "outbound", "outbound"]
    assert table["message_id"].iloc[0] == "<MAIL01bbbb00000002@mail01.example.com>"
    assert table["reply_code"].tolist() == [250, 421, 250]
    assert table["reply_text"].iloc[2] == "2.0.0 Ok: queued as 4FQ2x"


def test_inbound_stray_command_keeps_result():
    # A garbage command after MAIL must not turn the transaction into a rejection.
    result = analysis("w3c_fields_change_midfile.log")
    assert result.transactions_data["result"].tolist() == ["incomplete", "incomplete"]


def test_null_sender_reads_as_brackets():
    result = analysis("smtp_relay_denials.log")
    assert "<>" in result.transactions_data["sender"].tolist()


# Traffic and top-N tables


def test_hourly_counts_local_hours():
    hourly = analysis("smtp_busy_morning.log").hourly_data()
    assert hourly["hour"].tolist() == [taipei(f"2026-03-02 {hour:02d}:00") for hour in (8, 9, 10, 11)]
    # Timestamps compare by instant, so check the zone too: the hours must read as Taipei's.
    assert str(hourly["hour"].dt.tz) == TAIPEI
    assert hourly["connections"].tolist() == [3, 3, 0, 6]
    assert hourly["messages_received"].tolist() == [3, 3, 0, 5]
    assert hourly["messages_sent"].tolist() == [0, 0, 0, 0]


def test_hourly_in_utc_without_zone():
    hourly = analysis("smtp_busy_morning.log", tz=None).hourly_data()
    assert hourly["hour"].iloc[0] == pd.Timestamp("2026-03-02 00:00", tz="UTC")


def test_hourly_counts_outbound():
    hourly = analysis("smtp_outbound_deferred_then_delivered.log").hourly_data()
    assert hourly["outbound_connections"].tolist() == [2]
    assert hourly["messages_sent"].tolist() == [1]


def test_top_clients_order_and_counts():
    table = analysis("smtp_busy_morning.log").top_clients_data()
    assert table["peer"].tolist() == ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
    assert table["connections"].tolist() == [5, 5, 2]
    assert table["messages"].tolist() == [5, 5, 1]
    assert table["helo_names"].iloc[2] == "scanner.example.com"


def test_top_clients_respects_top():
    table = analysis("smtp_busy_morning.log").top_clients_data(top=1)
    assert table["peer"].tolist() == ["198.51.100.10"]


def test_top_helo_names():
    table = analysis("smtp_relay_denials.log").top_helo_data()
    assert table["helo"].tolist() == ["app01.example.com", "spammer"]
    assert table["client_addresses"].tolist() == ["198.51.100.10", "203.0.113.66"]


def test_top_senders_and_recipients():
    result = analysis("smtp_busy_morning.log")
    senders = result.top_senders_data()
    assert senders["sender"].iloc[0] == "report1@example.com"
    assert senders["transactions"].iloc[0] == 4
    recipients = result.top_recipients_data()
    assert recipients["recipient"].tolist() == ["user@example.com", "sales@example.com"]
    assert recipients["transactions"].tolist() == [7, 5]
    assert recipients["messages"].tolist() == [6, 5]


# Refusals


def test_relay_denials_by_client():
    table = analysis("smtp_relay_denials.log").relay_denials_data()
    assert table["peer"].tolist() == ["203.0.113.66", "198.51.100.10"]
    assert table["attempts"].tolist() == [5, 1]
    # a@example.org and A@example.org are one mailbox.
    assert table["address_count"].tolist() == [4, 1]
    assert table["addresses"].iloc[0] == "a@example.org, b@example.org, c@example.org, d@example.net"
    assert table["senders"].iloc[0] == "<>, offers@example.org"
    assert table["first"].iloc[0] == taipei("2026-03-02 09:01:00")
    assert table["last"].iloc[0] == taipei("2026-03-02 09:11:00")


def test_auth_failures_by_client():
    table = analysis("smtp_auth_failures.log").auth_failures_data()
    assert table["peer"].tolist() == ["203.0.113.77", "198.51.100.20"]
    assert table["failures"].tolist() == [3, 1]
    assert table["successes"].tolist() == [0, 1]
    assert table["mechanisms"].tolist() == ["LOGIN", "LOGIN"]


def test_session_auth_outcome():
    sessions_table = analysis("smtp_auth_failures.log").sessions_data
    assert sessions_table["auth"].tolist() == ["failed", "failed", "failed", "succeeded"]


# The outbound side


def test_outbound_servers_counts():
    table = analysis("smtp_outbound_helo_rejected.log").outbound_servers_data()
    assert table["peer"].tolist() == ["198.51.100.25", "203.0.113.9"]
    assert table["rejected"].tolist() == [1, 0]
    assert table["failed_sessions"].tolist() == [0, 1]
    assert table["last_reply"].iloc[1] == "421 4.3.2 Service not available"


def test_outbound_replies_fqdn_rejection():
    table = analysis("smtp_outbound_helo_rejected.log").outbound_replies_data()
    assert table["answers"].tolist() == ["RCPT", "CONNECT"]
    assert table["reply"].iloc[0] == "504 5.5.2 <MAIL01>: Helo command rejected: need fully-qualified hostname"
    assert "5.5.2" in table["meaning"].iloc[0]


def test_outbound_replies_deferral():
    table = analysis("smtp_outbound_deferred_then_delivered.log").outbound_replies_data()
    assert table["reply"].tolist() == ["421 4.7.0 Try again later, closing connection"]
    everything = analysis("smtp_outbound_deferred_then_delivered.log").outbound_replies_data(failures_only=False)
    assert len(everything) > len(table)


# Slow and unusual


def test_slowest_transaction_first():
    table = analysis("smtp_busy_morning.log").slowest_data(top=2)
    assert table["message_id"].iloc[0] == "<MAIL01dddd00000005@mail01.example.com>"
    assert table["time_taken"].iloc[0] == 45000
    assert table["source"].iloc[0].endswith("smtp_busy_morning.log:26")


def test_unusual_http_and_refused_commands():
    table = analysis("smtp_http_request_on_port_25.log").unusual_data()
    assert table["reason"].tolist() == ["http_request", "unrecognized_command", "unrecognized_command",
                                        "syntax_error", "bad_sequence"]
    assert table["example"].iloc[0] == "GET / HTTP/1.0"
    assert table["peer"].iloc[0] == "203.0.113.80"


def test_no_unusual_lines_in_clean_log():
    assert analysis("smtp_busy_morning.log").unusual_data().empty


# Tables as shown in a runbook


def test_missing_cells_shown_as_dash():
    table = analysis("smtp_http_request_on_port_25.log").sessions()
    helo = label("helo")
    assert table[helo].isna().all()
    shown = table.display_copy()
    assert shown[helo].tolist() == ["-", "-"]
    with pd.option_context("display.max_columns", None, "display.width", 1000):
        text = repr(table)
    assert "NaN" not in text
    assert "<NA>" not in text
    assert "None" not in text
    assert "<NA>" not in table._repr_html_()


def test_shown_keeps_columns_without_missing_values():
    table = analysis("smtp_http_request_on_port_25.log").sessions()
    shown = table.display_copy()
    assert shown[label("commands")].dtype == table[label("commands")].dtype
    assert shown[label("start", zone=TAIPEI)].tolist() == table[label("start", zone=TAIPEI)].tolist()


def test_empty_table_shows_no_rows_line():
    table = analysis("smtp_relay_denials.log").auth_failures()
    assert len(table) == 0
    assert repr(table) == message("smtplog.no_rows")
    assert table._repr_html_() == f"<p>{message('smtplog.no_rows')}</p>"
    assert "Empty DataFrame" not in repr(table)


def test_head_keeps_display_rules():
    table = analysis("smtp_http_request_on_port_25.log").sessions().head(1)
    assert isinstance(table, LogTable)
    assert table.empty_text == message("smtplog.no_rows")


def test_trace_shows_dash_for_missing_id():
    trace = analysis("smtp_outbound_deferred_then_delivered.log").trace(sender="web@example.com",
                                                                        recipient="user@example.net")
    assert trace.timeline["message_id"].isna().any()
    assert "<NA>" not in repr(trace)
    assert "<NA>" not in trace._repr_html_()


def test_first_rows_of_read_frame():
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    table = first_rows(frame, ["timestamp", "cs-username", "cs-method", "no-such-field"], 4)
    assert list(table.columns) == ["timestamp", "cs-username", "cs-method"]
    assert len(table) == 4
    assert table.display_copy()["cs-username"].tolist() == ["app01", "app01", "app01", "-"]
    assert pd.isna(table["cs-username"].iloc[3])


@pytest.mark.parametrize("count", [0, -3, "many"])
def test_first_rows_invalid_count(count):
    frame = read_w3c(LOGS / "w3c_fields_change_midfile.log")
    with pytest.raises(InputError) as raised:
        first_rows(frame, ["cs-method"], count)
    assert raised.value.key == "smtplog.invalid_top"


# Tracing a message


def test_trace_deferred_then_delivered():
    result = analysis("smtp_outbound_deferred_then_delivered.log")
    trace = result.trace(sender="web@example.com", recipient="<USER@example.net>")
    assert trace.verdict == "delivered"
    assert trace.left
    assert trace.timeline["stage"].tolist() == ["received", "deferred", "delivered"]
    assert trace.timeline["time"].iloc[2] == taipei("2026-03-02 09:31:00")
    assert "203.0.113.5" in trace.summary


def test_trace_by_message_id():
    result = analysis("smtp_outbound_deferred_then_delivered.log")
    trace = result.trace(message_id="MAIL01bbbb00000002@mail01.example.com")
    assert trace.verdict == "delivered"
    assert trace.timeline["stage"].tolist() == ["received", "delivered"]


def test_trace_rejected_by_remote():
    trace = analysis("smtp_outbound_helo_rejected.log").trace(sender="alerts@example.com",
                                                              recipient="ops@example.net")
    assert trace.verdict == "rejected"
    assert "need fully-qualified hostname" in trace.summary


def test_trace_received_only():
    trace = analysis("smtp_relay_denials.log").trace(sender="web@example.com", recipient="user@example.com")
    assert trace.verdict == "received_only"
    assert not trace.left


def test_trace_relay_denied():
    trace = analysis("smtp_relay_denials.log").trace(recipient="a@example.org")
    assert trace.verdict == "refused"
    assert trace.timeline["stage"].tolist() == ["refused", "refused"]


def test_trace_several_messages_says_so(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    trace = analysis("smtp_busy_morning.log").trace(sender="report1@example.com")
    received = trace.timeline[trace.timeline["stage"] == "received"]
    assert len(received) == 4
    assert trace.summary.endswith("4 messages match; the sentence above is about the latest one, "
                                  "and the timeline lists each of them.")


def test_trace_single_message_has_no_count(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    trace = analysis("smtp_relay_denials.log").trace(sender="web@example.com", recipient="user@example.com")
    assert "messages match" not in trace.summary


def test_trace_not_found():
    trace = analysis("smtp_relay_denials.log").trace(sender="nobody@example.com")
    assert trace.verdict == "not_found"
    assert trace.timeline.empty
    assert message("smtplog.verdict.not_found") in repr(trace)


def test_trace_needs_a_criterion():
    with pytest.raises(InputError) as raised:
        analysis("smtp_relay_denials.log").trace(sender="  ")
    assert raised.value.key == "smtplog.trace_needs_criteria"


# Labels, plots and bad input


def test_tables_have_catalog_columns():
    result = analysis("smtp_relay_denials.log")
    table = result.relay_denials()
    assert list(table.columns)[:3] == [message("smtplog.column.peer"), message("smtplog.column.attempts"),
                                       message("smtplog.column.address_count")]
    assert message("smtplog.column.first", zone=TAIPEI) in table.columns
    directions = result.transactions()[message("smtplog.column.direction")]
    assert set(directions) == {message("smtplog.direction.inbound")}


def test_english_labels(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    table = analysis("smtp_relay_denials.log").relay_denials()
    assert list(table.columns)[:2] == ["Peer IP", "Attempts"]


def test_report_lists_every_table():
    report = analysis("smtp_busy_morning.log").report(top=3)
    assert tuple(report) == REPORT_TABLES
    assert len(report["top_clients"]) == 3
    for name in REPORT_TABLES:
        assert table_title(name)


def test_plots_render_without_missing_glyphs(cjk_font):
    result = analysis("smtp_busy_morning.log")
    for figure in (result.plot_hourly(), result.plot_top_clients(), result.plot_top_senders(),
                   result.plot_top_recipients(), result.plot_relay_denials()):
        assert figure.missing_glyphs == ()
        assert figure.png.startswith(b"\x89PNG")
    assert repr(result.plot_hourly()) == message("plotting.figure_repr",
                                                 title=message("smtplog.plot.hourly_title", zone=TAIPEI))


def test_plot_with_no_rows(cjk_font):
    figure = analysis("smtp_busy_morning.log").plot_relay_denials()
    assert figure.png.startswith(b"\x89PNG")


@pytest.mark.parametrize("top", [0, -1, "many", 2.5, True])
def test_invalid_top_rejected(top):
    with pytest.raises(InputError) as raised:
        analysis("smtp_busy_morning.log").top_clients(top)
    assert raised.value.key == "smtplog.invalid_top"
    assert raised.value.value == top


def test_missing_fields_named():
    frame = read_w3c(LOGS / "smtp_busy_morning.log").drop(columns=["cs-method"])
    with pytest.raises(InputError) as raised:
        analyze(frame)
    assert raised.value.value == "cs-method"


def test_other_formats_rejected():
    from adminkb.w3c import read_iis
    with pytest.raises(InputError) as raised:
        analyze(read_iis(LOGS / "iis_format_sample.log"))
    assert raised.value.key == "smtplog.not_w3c"


def test_unknown_zone_rejected():
    with pytest.raises(InputError) as raised:
        analysis("smtp_busy_morning.log", tz="Mars/Olympus")
    assert raised.value.value == "Mars/Olympus"


def test_default_fields_log_analysed():
    # Default logging has no cs-username or cs-uri-query: sessions still come out, addresses do not.
    result = analysis("w3c_default_fields_no_date.log")
    assert len(result.sessions_data) >= 1
    assert result.transactions_data["sender"].isna().all()


# Logs the mail lab wrote over real SMTP sessions

LAB_START = datetime(2026, 3, 2, 1, 15, 0, tzinfo=timezone.utc)
TRUSTED = "127.0.0.10"
STRANGER = "127.0.0.66"


def _send(lab: MailLab, source: str, sender: str, recipients: list[str], *, data: bool = True) -> None:
    with smtplib.SMTP(lab.host, lab.port, local_hostname="client.example.net", source_address=(source, 0),
                      timeout=10) as client:
        client.ehlo("client.example.net")
        client.mail(sender)
        for recipient in recipients:
            client.rcpt(recipient)
        if data:
            client.data(b"Subject: test\r\n\r\nbody\r\n")


@pytest.fixture(scope="module")
def lab_log(tmp_path_factory: pytest.TempPathFactory):
    """The log files of a lab session: one message, a relay denial, an HTTP request, a field change."""
    if not can_bind_source_address(STRANGER):
        pytest.skip(f"cannot bind {STRANGER}: this host has only 127.0.0.1 on loopback")
    lab = MailLab(root=tmp_path_factory.mktemp("lab"), clock=LAB_START, pickup_interval=None, relay_grant=[TRUSTED]).start()
    try:
        _send(lab, TRUSTED, "web@example.com", ["user@example.net"])
        lab.clock.advance(3600)
        _send(lab, STRANGER, "spam@example.org", ["a@example.org", "b@example.org"], data=False)
        with socket.create_connection((lab.host, lab.port), timeout=10, source_address=(STRANGER, 0)) as raw:
            raw.recv(1024)
            raw.sendall(b"GET / HTTP/1.0\r\n")
            raw.recv(1024)
            raw.sendall(b"QUIT\r\n")
            raw.recv(1024)
        lab.set_log_fields("time c-ip cs-method cs-uri-stem sc-status")
        _send(lab, TRUSTED, "web@example.com", ["user@example.com"])
        files = lab.log_files()
    finally:
        lab.stop()
    return files


def test_lab_log_relay_denials(lab_log):
    result = analyze(read_w3c(lab_log), tz=TAIPEI)
    table = result.relay_denials_data()
    assert table["peer"].tolist() == [STRANGER]
    assert table["addresses"].tolist() == ["a@example.org, b@example.org"]
    assert table["senders"].tolist() == ["spam@example.org"]


def test_lab_log_field_change_midfile(lab_log):
    frame = read_w3c(lab_log)
    assert len(frame.attrs["blocks"]) == 2
    result = analyze(frame, tz=TAIPEI)
    trusted = result.sessions_data[result.sessions_data["peer"] == TRUSTED]
    assert len(trusted) == 2
    # The second session was logged with the default fields, so its addresses are unknown.
    senders = result.transactions_data[result.transactions_data["peer"] == TRUSTED]["sender"]
    assert senders.iloc[0] == "web@example.com"
    assert senders.isna().tolist() == [False, True]


def test_lab_log_http_request(lab_log):
    table = analyze(read_w3c(lab_log)).unusual_data()
    http = table[table["reason"] == "http_request"]
    assert http["peer"].tolist() == [STRANGER]


def test_lab_log_trace_received(lab_log):
    trace = analyze(read_w3c(lab_log), tz=TAIPEI).trace(sender="web@example.com", recipient="user@example.net")
    assert trace.verdict == "received_only"
    assert trace.timeline["time"].tolist() == [taipei("2026-03-02 09:15:00")]


def test_outbound_without_final_reply_unconfirmed():
    result = analysis("smtp_outbound_no_final_reply.log")
    outbound = result.transactions_data[result.transactions_data["direction"] == "outbound"]
    assert outbound["result"].tolist() == ["unconfirmed"]
    trace = result.trace(sender="web@example.com", recipient="user@example.net")
    assert trace.verdict == "unconfirmed"
    assert not trace.left


def test_field_table_lists_every_field():
    from adminkb.smtplog.fields import field_table
    table = field_table()
    fields = table[message("smtplog.field.column.field")].tolist()
    assert len(fields) == 21
    assert fields[:2] == ["date", "time"]
    defaults = table[table[message("smtplog.field.column.default")] != ""]
    assert defaults[message("smtplog.field.column.field")].tolist() == ["time", "c-ip", "cs-method",
                                                                         "cs-uri-stem", "sc-status"]


def test_source_keeps_file_name_only():
    from adminkb.smtplog.labels import source_of
    table = pd.DataFrame({"source_file": ["/var/log/ex260302.log", "C:\\LogFiles\\SMTPSVC1\\ex260303.log"],
                          "source_line": [7, 9]})
    assert source_of(table).tolist() == ["ex260302.log:7", "ex260303.log:9"]


def test_address_sets_sorted_distinct_per_transaction():
    rows = pd.DataFrame({"session": [1, 1, 1, 1, 2, 3], "transaction": [1, 1, 1, 2, 1, 1],
                         "address": ["b@example.net", "a@example.net", "b@example.net", None, "c@example.net", None]})
    sets = _address_sets(rows, ["session", "transaction"])
    assert sets.to_dict() == {(1, 1): ("a@example.net", "b@example.net"), (2, 1): ("c@example.net",)}
    assert list(sets.index.names) == ["session", "transaction"]


def test_address_sets_without_addresses():
    rows = pd.DataFrame({"session": [1], "transaction": [1], "address": [None]})
    sets = _address_sets(rows, ["session", "transaction"])
    assert sets.empty
    assert list(sets.index.names) == ["session", "transaction"]
