"""The diagnosis against a real MTA: a private Postfix that denies relay, and a port with nothing listening.

Postfix words its relay denial differently from the IIS SMTP Service, so the diagnosis must
reach the same cause from `554 5.7.1 <addr>: Relay access denied`.
"""

from __future__ import annotations

import json

import pytest

from adminkb.diagnose import EXIT_CODES, OK, SKIPPED, DiagnoseRequest, diagnose
from tests.clirun import run_area

from .conftest import STRANGER_CLIENT, TRUSTED_CLIENT
from .postfix import free_port

pytestmark = [pytest.mark.timeout(120)]

REMOTE_RECIPIENT = "user@remote.test"


@pytest.mark.peer("postfix")
@pytest.mark.peer("loopback-aliases")
def test_postfix_relay_denied_is_named(private_postfix):
    result = diagnose(DiagnoseRequest(host=private_postfix.host, port=private_postfix.port,
                                      mail_from="stranger@example.net", rcpt_to=REMOTE_RECIPIENT,
                                      source_address=STRANGER_CLIENT, timeout=10))
    assert result.cause == "relay_denied"
    assert result.exit_status == EXIT_CODES["relay"]
    assert "Relay access denied" in result.most_likely.evidence
    assert STRANGER_CLIENT in result.most_likely.cause_text()
    assert result.step("ehlo").verdict == OK


@pytest.mark.peer("postfix")
@pytest.mark.peer("loopback-aliases")
def test_postfix_trusted_client_passes(private_postfix):
    result = diagnose(DiagnoseRequest(host=private_postfix.host, port=private_postfix.port,
                                      mail_from="app@example.com", rcpt_to=REMOTE_RECIPIENT,
                                      source_address=TRUSTED_CLIENT, timeout=10))
    assert result.step("relay").verdict == OK
    assert result.cause is None
    assert result.exit_status == 0


@pytest.mark.peer("postfix")
@pytest.mark.peer("loopback-aliases")
def test_cli_against_postfix(private_postfix, capsys):
    code = run_area("diagnose", "--server", f"{private_postfix.host}:{private_postfix.port}", "--from",
                    "stranger@example.net", "--to", REMOTE_RECIPIENT, "--source", STRANGER_CLIENT,
                    "--format", "json")
    assert code == EXIT_CODES["relay"]
    document = json.loads(capsys.readouterr().out)
    assert document["cause"] == "relay_denied"
    assert document["outcome_class"] == "relay"


def test_port_without_listener_is_named():
    port = free_port()
    result = diagnose(DiagnoseRequest(host="127.0.0.1", port=port, mail_from="app@example.com",
                                      rcpt_to=REMOTE_RECIPIENT, timeout=3))
    assert result.cause == "connect_failed"
    assert result.exit_status == EXIT_CODES["connection"]
    assert f"127.0.0.1:{port}" in result.most_likely.evidence
    assert result.step("relay").verdict == SKIPPED
