"""adminkb.smtplog.labtraffic: the runbook's lab morning, analysed from the lab's own log."""

from __future__ import annotations

import pandas as pd
import pytest

from adminkb.errors import InputError
from adminkb.lab import FULL_FIELDS, can_bind_source_address
from adminkb.smtplog import analyze
from adminkb.smtplog.labtraffic import (STRANGER, Notice, log_source, send_one_message, send_sample_traffic,
                                        switch_log_fields)
from adminkb.target import SmtpTarget, open_target
from adminkb.w3c import read_w3c

DEFAULT_FIELDS = "time c-ip cs-method cs-uri-stem sc-status"


@pytest.fixture(scope="module")
def lab_analysis():
    if not can_bind_source_address(STRANGER):
        pytest.skip(f"cannot bind {STRANGER}: this host has only 127.0.0.1 on loopback")
    target = open_target("lab")
    try:
        sent = send_sample_traffic(target, timeout=10)
        # Runbook 04's step 4: default fields for one message, then all fields for the next.
        switch_log_fields(target, DEFAULT_FIELDS)
        send_one_message(target, "web@example.com", "user@example.net", timeout=10)
        switch_log_fields(target, FULL_FIELDS)
        send_one_message(target, "web@example.com", "user@example.net", timeout=10)
        frame = read_w3c(log_source(target, None))
    finally:
        target.close()
    return sent, frame, analyze(frame, tz="Asia/Taipei")


def test_sample_traffic_rows(lab_analysis):
    sent, _, _ = lab_analysis
    assert len(sent) == 8
    assert isinstance(sent, pd.DataFrame)


def test_sample_traffic_shows_dash(lab_analysis):
    sent, _, _ = lab_analysis
    # The HTTP request row has no sender and no recipients.
    assert sent.isna().any().any()
    assert "NaN" not in repr(sent)
    assert "None" not in repr(sent)


def test_lab_log_has_three_blocks(lab_analysis):
    _, frame, _ = lab_analysis
    blocks = frame.attrs["blocks"]
    assert [block["fields"] for block in blocks] == [list(FULL_FIELDS), DEFAULT_FIELDS.split(), list(FULL_FIELDS)]
    assert all(block["rows"] > 0 for block in blocks)
    assert frame.attrs["skipped"] == []


def test_lab_relay_denials(lab_analysis):
    _, _, result = lab_analysis
    table = result.relay_denials_data()
    assert table["peer"].tolist() == [STRANGER]
    assert table["addresses"].tolist() == ["a@example.org, b@example.org, c@example.org"]


def test_lab_greylist_deferral(lab_analysis):
    _, _, result = lab_analysis
    replies = result.outbound_replies_data()
    assert replies["reply"].str.startswith("451 4.7.1").tolist() == [True]
    trace = result.trace(sender="report@example.com", recipient="ops@grey.lab.test")
    assert trace.timeline["stage"].tolist()[:2] == ["received", "deferred"]


def test_lab_http_request(lab_analysis):
    _, _, result = lab_analysis
    assert result.unusual_data()["reason"].tolist() == ["http_request"]


def test_real_server_sends_nothing():
    target = SmtpTarget("192.0.2.25:25")
    assert isinstance(send_sample_traffic(target), Notice)
    assert isinstance(switch_log_fields(target, DEFAULT_FIELDS), Notice)
    with pytest.raises(InputError) as raised:
        log_source(target, None)
    assert raised.value.key == "smtplog.lab.log_path_needed"
    assert log_source(target, "ex260302.log") == "ex260302.log"
