"""Problems that check results list for `adminkb run` when a runbook is aimed at a real server."""

from __future__ import annotations

import socket

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from adminkb import findings
from adminkb.diagnose import DiagnoseRequest, diagnose
from adminkb.dnscheck import DnsClient, check_mx, results_table
from adminkb.findings import FINDING_MIME, finding_bundle, problems_in_output
from adminkb.findings.table import FindingTable, finding_table
from adminkb.lab import MailLab
from adminkb.lab.dns import LabDns, lab_zone_files
from adminkb.smtp import probe
from adminkb.smtp.audit import audit
from adminkb.target import open_target

TIMEOUT = 5


@pytest.fixture(autouse=True)
def reporting_off_afterwards():
    yield
    findings.report_findings(False)


@pytest.fixture
def refused_port():
    """A loopback port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def displayed(value) -> dict:
    """Return the display data IPython makes of `value` as a cell's result."""
    data, _ = InteractiveShell.instance().display_formatter.format(value)
    return data


def test_bundle_empty_while_reporting_off():
    assert finding_bundle(["relay denied"]) == {}


def test_bundle_lists_problems_when_on():
    findings.report_findings(True)
    assert finding_bundle(["relay denied", ""]) == {FINDING_MIME: {"problems": ["relay denied"]}}
    assert finding_bundle([]) == {}


@pytest.mark.parametrize(("output", "problems"), [
    ({"output_type": "execute_result", "data": {FINDING_MIME: {"problems": ["a", "b"]}}}, ["a", "b"]),
    ({"output_type": "display_data", "data": {FINDING_MIME: {"problems": ["a"]}, "text/plain": "x"}}, ["a"]),
    ({"output_type": "stream", "name": "stdout", "text": FINDING_MIME}, []),
    ({"output_type": "execute_result", "data": {"text/plain": "x"}}, []),
    ({"output_type": "execute_result", "data": {FINDING_MIME: "not an object"}}, []),
    ({"output_type": "execute_result", "data": {FINDING_MIME: {"problems": "a"}}}, []),
], ids=["result", "display", "stream", "no-entry", "not-object", "not-list"])
def test_problems_in_output(output, problems):
    assert problems_in_output(output) == problems


def test_finding_table_displays_as_frame():
    table = finding_table(pd.DataFrame({"項目": ["轉送"]}), ["轉送：開放"])
    findings.report_findings(True)
    data = displayed(table)
    assert data[FINDING_MIME] == {"problems": ["轉送：開放"]}
    assert "<table" in data["text/html"]
    assert "轉送" in data["text/plain"]


def test_filtered_finding_table_is_plain():
    table = finding_table(pd.DataFrame({"a": [1, 2]}), ["x"])
    assert isinstance(table, FindingTable)
    assert type(table[table["a"] > 1]) is pd.DataFrame


def test_refused_probe_lists_problem(refused_port):
    result = probe("127.0.0.1", refused_port, mail_from="app@example.com", rcpt_to=["user@example.net"],
                   timeout=TIMEOUT)
    assert FINDING_MIME not in displayed(result)
    findings.report_findings(True)
    data = displayed(result)
    assert data[FINDING_MIME] == {"problems": [result.verdict.summary]}
    assert f"127.0.0.1:{refused_port}" in result.verdict.summary
    assert "text/html" in data


def test_accepted_probe_lists_nothing():
    findings.report_findings(True)
    with MailLab(pickup_interval=None, local_domains=("example.com",)) as lab:
        result = probe(lab.host, lab.port, mail_from="app@example.com", rcpt_to=["helpdesk@example.com"],
                       timeout=TIMEOUT)
    assert result.ok
    assert FINDING_MIME not in displayed(result)


def test_refused_diagnosis_lists_cause(refused_port):
    findings.report_findings(True)
    result = diagnose(DiagnoseRequest(host="127.0.0.1", port=refused_port, mail_from="app@example.com",
                                      rcpt_to="user@example.net", timeout=TIMEOUT))
    assert displayed(result)[FINDING_MIME] == {"problems": [result.summary()]}


def test_undecided_dns_diagnosis_lists_cause():
    # The DNS server cannot be reached, so the DNS step cannot decide: still a finding to act on.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        closed = probe_socket.getsockname()[1]
    with MailLab(pickup_interval=None, relay_grant=["127.0.0.1"]) as lab:
        result = diagnose(DiagnoseRequest(host=lab.host, port=lab.port, mail_from="app@example.com",
                                          rcpt_to="user@example.net", check_outbound=True,
                                          dns=f"127.0.0.1:{closed}", timeout=TIMEOUT))
    assert result.cause == "dns_unreachable"
    findings.report_findings(True)
    assert displayed(result)[FINDING_MIME] == {"problems": [result.summary()]}


def test_dns_table_lists_problem_rows():
    with LabDns.from_files(lab_zone_files()) as server:
        client = DnsClient(server.address, server.port, timeout=3)
        results = check_mx(client, "example.net") + check_mx(client, "nullmx.lab.test")
    findings.report_findings(True)
    (problem,) = displayed(results_table(results))[FINDING_MIME]["problems"]
    assert problem.startswith("MX 記錄（nullmx.lab.test）：")


def test_audit_table_lists_open_relay():
    findings.report_findings(True)
    with MailLab(pickup_interval=None, relay_open=True) as lab:
        report = audit("127.0.0.1", lab.port, timeout=TIMEOUT)
    problems = displayed(report.table())[FINDING_MIME]["problems"]
    assert len(problems) == len(report.problems)
    assert any(report.item("relay").explanation in problem for problem in problems)


def test_open_target_switches_reporting(refused_port):
    target = open_target(f"127.0.0.1:{refused_port}")
    assert findings.reporting()
    lab = open_target("lab")
    try:
        assert not findings.reporting()
    finally:
        lab.close()
    assert not target.is_lab
