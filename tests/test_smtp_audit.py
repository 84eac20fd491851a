"""`adminkb.smtp.audit` and `adminkb smtp audit` against mail lab configurations that pass and fail each item."""

import contextlib
import io
import json
import logging
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from adminkb.cli import build_parser
from adminkb.cli import smtp as smtp_cli
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import STRANGER_ADDRESS, TRUSTED_CLIENT_ADDRESS, MailLab, can_bind_source_address
from adminkb.output import display_width
from adminkb.smtp.audit import ITEMS, MAX_CONNECTIONS, WEAK_CIPHERS, Outcome, audit

from fakeservers import IIS_EHLO, Connection, FakeServer, ScriptedSmtp, self_signed_context

pytestmark = pytest.mark.timeout(120)

# A made-up lab password; the audit never receives it, and the tests check it stays that way.
PASSWORD = "Lab-Only-4e8b21"
TIMEOUT = 5


def lab_with(**settings) -> MailLab:
    settings.setdefault("pickup_interval", None)
    return MailLab(**settings)


def audit_lab(lab: MailLab, **options):
    options.setdefault("timeout", TIMEOUT)
    if lab.tls_enabled and "cafile" not in options:
        options["cafile"] = lab.certificate_file
    return audit("127.0.0.1", lab.port, **options)


def assert_nothing_delivered(lab: MailLab) -> None:
    assert lab.queue_files() == []
    assert lab.drop_files() == []
    logged = "".join(path.read_text(encoding="cp950") for path in lab.log_files())
    assert " DATA " not in logged
    assert " BDAT " not in logged


# EHLO of a server that offers STARTTLS and no AUTH.
TLS_EHLO = ["250-mail01.example.com Hello [{client}]", "250-STARTTLS", "250 OK"]
RELAY_DENIED = "550 5.7.1 Unable to relay for {address}"


@dataclass
class TroubledSmtp(ScriptedSmtp):
    """A scripted server whose STARTTLS goes wrong in one way, chosen by `starttls`.

    "reject" replies 454, "stall" replies 220 and then never completes the handshake, "close"
    replies 220 and closes the connection. `good_handshakes` STARTTLS commands are served with
    `tls_context` first. `busy_connection` (1-based) gets a 421 banner instead of 220.
    """

    starttls: str = "reject"
    good_handshakes: int = 0
    busy_connection: int | None = None
    starttls_count: int = 0
    connection_count: int = 0

    def __call__(self, connection: Connection) -> None:
        self.connection_count += 1
        if self.connection_count == self.busy_connection:
            connection.send("421 4.3.2 The maximum number of concurrent connections has been exceeded")
            return
        super().__call__(connection)

    def respond(self, connection: Connection, verb: str, line: str) -> bool:
        if verb != "STARTTLS":
            return super().respond(connection, verb, line)
        self.starttls_count += 1
        if self.starttls_count <= self.good_handshakes:
            return super().respond(connection, verb, line)
        if self.starttls == "reject":
            connection.send("454 4.7.0 TLS not available due to temporary reason")
            return True
        connection.send("220 2.0.0 SMTP server ready")
        if self.starttls == "stall":
            # Read the ClientHello and whatever follows until the client gives up and closes.
            while connection.sock.recv(4096):
                pass
        return False


def data_sent(script: ScriptedSmtp) -> bool:
    return any(command.upper().startswith(("DATA", "BDAT")) for command in script.commands)


def run_cli(*arguments: str) -> tuple[int, str, str]:
    parser = build_parser()
    output, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
        try:
            parsed = parser.parse_args(["smtp", "audit", *arguments])
            status = parsed.handler(parsed)
        except SystemExit as stop:
            status = stop.code
    return status, output.getvalue(), errors.getvalue()


# Whole audits ------------------------------------------------------------------------------

def test_secure_lab_only_banner_problem():
    with lab_with(tls=True, basic_auth=True, accounts={"relayuser": PASSWORD}) as lab:
        report = audit_lab(lab, local_domain="example.com")
        assert_nothing_delivered(lab)
    assert [item.name for item in report.items] == list(ITEMS)
    assert [item.name for item in report.problems] == ["banner_version"]
    assert report.exit_code == 1
    assert report.connections <= MAX_CONNECTIONS


def test_hardened_lab_passes_everything():
    with lab_with(tls=True, basic_auth=True, accounts={"relayuser": PASSWORD}, connect_response="ESMTP ready") as lab:
        report = audit_lab(lab)
        assert_nothing_delivered(lab)
    assert report.problems == []
    assert report.exit_code == 0


def test_open_relay_lab_fails_without_delivery():
    with lab_with(relay_open=True) as lab:
        report = audit_lab(lab)
        assert_nothing_delivered(lab)
    relay = report.item("relay")
    assert relay.outcome is Outcome.PROBLEM
    assert relay.finding == "open"
    assert "relay-check@relay-audit.test" in relay.explanation
    assert report.exit_code == 1


def test_closed_relay_lab_passes():
    with lab_with() as lab:
        report = audit_lab(lab)
    relay = report.item("relay")
    assert relay.outcome is Outcome.PASS
    assert "550 5.7.1 Unable to relay" in relay.explanation


def test_relay_granted_to_other_client_passes():
    if not can_bind_source_address(STRANGER_ADDRESS):
        pytest.skip("this machine cannot use 127.0.0.66 as a source address")
    with lab_with(relay_grant=[TRUSTED_CLIENT_ADDRESS]) as lab:
        stranger = audit_lab(lab, source_address=STRANGER_ADDRESS)
        trusted = audit_lab(lab, source_address=TRUSTED_CLIENT_ADDRESS)
        assert_nothing_delivered(lab)
    assert stranger.item("relay").outcome is Outcome.PASS
    # The audit reports what its own source address may do, so a listed client sees an open relay.
    assert trusted.item("relay").outcome is Outcome.PROBLEM


def test_relay_for_authenticated_only_passes():
    with lab_with(tls=True, basic_auth=True, accounts={"relayuser": PASSWORD}) as lab:
        report = audit_lab(lab)
        assert_nothing_delivered(lab)
    assert report.item("relay").outcome is Outcome.PASS
    assert report.item("relay").values["reply"].startswith("550 5.7.1")


def test_relay_temporary_reply_is_note():
    script = ScriptedSmtp(ehlo=["250-mail01.example.com", "250 OK"],
                          recipient_reply="451 4.3.0 Temporary local problem")
    with FakeServer(script) as server:
        report = audit("127.0.0.1", server.port, timeout=TIMEOUT)
    relay = report.item("relay")
    assert relay.outcome is Outcome.INFO
    assert relay.finding == "temporary"
    assert not any(command.upper().startswith("DATA") for command in script.commands)


def test_sender_rejected_leaves_relay_unchecked():
    script = ScriptedSmtp(ehlo=["250-mail01.example.com", "250 OK"],
                          mail_reply="550 5.7.1 Sender {address} rejected")
    with FakeServer(script) as server:
        report = audit("127.0.0.1", server.port, local_domain="example.com", timeout=TIMEOUT)
    for name in ("relay", "percent_relay"):
        assert report.item(name).outcome is Outcome.NOT_CHECKED
        assert report.item(name).finding == "sender_rejected"
    assert not any(command.upper().startswith("RCPT") for command in script.commands)


# One item at a time ------------------------------------------------------------------------

def test_percent_form_accepted_is_note():
    with lab_with() as lab:
        report = audit_lab(lab, local_domain="example.com")
    item = report.item("percent_relay")
    assert item.outcome is Outcome.INFO
    assert "304897" in item.explanation
    assert report.item("relay").outcome is Outcome.PASS


def test_percent_form_rejected_passes():
    # example.net is no local domain of the lab, so the percent form is a plain relay attempt there.
    with lab_with() as lab:
        report = audit_lab(lab, local_domain="example.net")
    item = report.item("percent_relay")
    assert item.outcome is Outcome.PASS
    assert item.values["reply"].startswith("550 5.7.1")


def test_percent_form_needs_local_domain():
    with lab_with() as lab:
        report = audit_lab(lab)
    assert report.item("percent_relay").outcome is Outcome.NOT_CHECKED
    assert report.item("percent_relay").finding == "no_local_domain"


def test_starttls_missing_is_problem():
    with lab_with() as lab:
        report = audit_lab(lab)
    assert report.item("starttls").outcome is Outcome.PROBLEM
    for name in ("tls_versions", "weak_ciphers", "certificate_trust", "certificate_expiry"):
        assert report.item(name).outcome is Outcome.NOT_CHECKED
    assert report.connections == 1


def test_starttls_offered_passes():
    with lab_with(tls=True) as lab:
        report = audit_lab(lab)
    assert report.item("starttls").outcome is Outcome.PASS


def test_tls_versions_current_only_pass():
    with lab_with(tls=True) as lab:
        report = audit_lab(lab)
    item = report.item("tls_versions")
    assert item.outcome is Outcome.PASS
    assert "TLSv1.2" in item.values["accepted"]
    assert "TLSv1.1" not in item.values["accepted"]


def test_tls_versions_deprecated_problem():
    with lab_with(tls=True, tls_minimum_version="TLSv1") as lab:
        report = audit_lab(lab)
    item = report.item("tls_versions")
    assert item.outcome is Outcome.PROBLEM
    assert item.finding == "deprecated"
    assert item.values["deprecated"] == "TLSv1, TLSv1.1"


def test_weak_ciphers_refused_pass():
    with lab_with(tls=True) as lab:
        report = audit_lab(lab)
    assert report.item("weak_ciphers").outcome is Outcome.PASS


def test_weak_ciphers_accepted_problem():
    with lab_with(tls=True, tls_ciphers="ALL:eNULL:@SECLEVEL=0") as lab:
        report = audit_lab(lab)
    item = report.item("weak_ciphers")
    assert item.outcome is Outcome.PROBLEM
    weak_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    weak_context.set_ciphers(WEAK_CIPHERS)
    assert item.values["cipher"] in {entry["name"] for entry in weak_context.get_ciphers()}


def test_certificate_trusted_with_lab_ca():
    with lab_with(tls=True) as lab:
        report = audit_lab(lab)
    item = report.item("certificate_trust")
    assert item.outcome is Outcome.PASS
    assert "127.0.0.1" in item.values["names"]


def test_certificate_untrusted_without_lab_ca():
    with lab_with(tls=True) as lab:
        report = audit("127.0.0.1", lab.port, timeout=TIMEOUT)
    item = report.item("certificate_trust")
    assert item.outcome is Outcome.PROBLEM
    assert item.finding == "not_trusted"
    assert "self-signed" in item.values["reason"] or "self signed" in item.values["reason"]
    assert report.item("certificate_expiry").outcome is Outcome.PASS
    assert report.connections <= MAX_CONNECTIONS


def test_certificate_name_mismatch():
    with lab_with(tls=True) as lab:
        report = audit_lab(lab, tls_name="other.example.com")
    item = report.item("certificate_trust")
    assert item.outcome is Outcome.PROBLEM
    assert "mismatch" in item.values["reason"].lower()


def test_certificate_expired_problem():
    expired = datetime.now(timezone.utc) - timedelta(days=3)
    with lab_with(tls=True, certificate_not_after=expired) as lab:
        report = audit_lab(lab)
    assert report.item("certificate_expiry").outcome is Outcome.PROBLEM
    assert report.item("certificate_expiry").finding == "expired"
    assert report.item("certificate_trust").outcome is Outcome.PROBLEM


def test_certificate_expiring_soon_note():
    soon = datetime.now(timezone.utc) + timedelta(days=10)
    with lab_with(tls=True, certificate_not_after=soon) as lab:
        report = audit_lab(lab)
    assert report.item("certificate_expiry").outcome is Outcome.INFO
    assert report.item("certificate_trust").outcome is Outcome.PASS


def test_auth_before_tls_problem():
    with lab_with(tls=True, basic_auth=True, auth_requires_tls=False, accounts={"relayuser": PASSWORD}) as lab:
        report = audit_lab(lab)
        assert_nothing_delivered(lab)
    item = report.item("auth_before_tls")
    assert item.outcome is Outcome.PROBLEM
    assert item.values["mechanism"] == "LOGIN"


def test_auth_only_after_tls_passes():
    with lab_with(tls=True, basic_auth=True, accounts={"relayuser": PASSWORD}) as lab:
        report = audit_lab(lab)
    assert report.item("auth_before_tls").outcome is Outcome.PASS


def test_auth_without_tls_at_all_problem():
    with lab_with(basic_auth=True, auth_requires_tls=False, accounts={"relayuser": PASSWORD}) as lab:
        report = audit_lab(lab)
    assert report.item("auth_before_tls").outcome is Outcome.PROBLEM
    assert report.item("starttls").outcome is Outcome.PROBLEM


def test_banner_version_problem_and_pass():
    with lab_with() as lab:
        revealing = audit_lab(lab)
    with lab_with(connect_response="ESMTP ready") as lab:
        hidden = audit_lab(lab)
    assert revealing.item("banner_version").outcome is Outcome.PROBLEM
    assert revealing.item("banner_version").values["version"] == "6.0.3790.4675"
    assert hidden.item("banner_version").outcome is Outcome.PASS


def test_banner_address_is_no_version():
    with lab_with(connect_response="ESMTP ready on 192.0.2.25") as lab:
        report = audit_lab(lab)
    assert report.item("banner_version").outcome is Outcome.PASS


def test_vrfy_revealing_users_problem():
    with lab_with(basic_auth=True, accounts={"postmaster": PASSWORD}, vrfy_reveals_users=True) as lab:
        report = audit_lab(lab)
    item = report.item("vrfy")
    assert item.outcome is Outcome.PROBLEM
    assert item.values["known_reply"].startswith("250")
    assert item.values["unknown_reply"].startswith("550")


def test_vrfy_252_passes():
    with lab_with() as lab:
        report = audit_lab(lab)
    assert report.item("vrfy").outcome is Outcome.PASS


def test_vrfy_user_option():
    with lab_with(basic_auth=True, accounts={"webapp": PASSWORD}, vrfy_reveals_users=True) as lab:
        default_user = audit_lab(lab)
        named_user = audit_lab(lab, vrfy_user="webapp")
    assert default_user.item("vrfy").outcome is Outcome.PASS
    assert named_user.item("vrfy").outcome is Outcome.PROBLEM


def test_auth_listed_but_refused_before_tls_note():
    class EncryptionRequired(ScriptedSmtp):
        def respond(self, connection, verb, line):
            if verb == "AUTH":
                connection.send("538 5.7.11 Encryption required for requested authentication mechanism")
                return True
            return super().respond(connection, verb, line)

    script = EncryptionRequired(recipient_reply=RELAY_DENIED)
    with FakeServer(script) as server:
        report = audit("127.0.0.1", server.port, timeout=TIMEOUT)
    item = report.item("auth_before_tls")
    assert item.outcome is Outcome.INFO
    assert item.finding == "offered_but_refused"
    assert item.values["mechanism"] == "LOGIN"
    assert item.values["reply"].startswith("538 5.7.11")
    assert "538 5.7.11" in item.explanation
    assert item.fix != "-"
    assert "*" not in script.commands


def test_auth_without_clear_text_passes():
    ehlo = [line for line in IIS_EHLO if "AUTH" not in line]
    ehlo.insert(1, "250-AUTH GSSAPI NTLM")
    script = ScriptedSmtp(ehlo=ehlo, recipient_reply=RELAY_DENIED)
    with FakeServer(script) as server:
        report = audit("127.0.0.1", server.port, timeout=TIMEOUT)
    item = report.item("auth_before_tls")
    assert item.outcome is Outcome.PASS
    assert item.finding == "no_clear_text"
    assert item.values["mechanisms"] == "GSSAPI NTLM"
    assert not any(command.upper().startswith("AUTH") for command in script.commands)


def test_vrfy_same_reply_for_everyone_note():
    class VrfyAnswersAll(ScriptedSmtp):
        def respond(self, connection, verb, line):
            if verb == "VRFY":
                connection.send(f"250 2.1.5 <{line.split(' ', 1)[1]}@example.com>")
                return True
            return super().respond(connection, verb, line)

    script = VrfyAnswersAll(ehlo=TLS_EHLO[:1] + ["250 OK"], recipient_reply=RELAY_DENIED)
    with FakeServer(script) as server:
        report = audit("127.0.0.1", server.port, timeout=TIMEOUT)
    item = report.item("vrfy")
    assert item.outcome is Outcome.INFO
    assert item.finding == "accepts_all"
    assert item.values["known_reply"].startswith("250")
    assert item.values["unknown_reply"].startswith("250")


def test_tls_refusing_every_handshake(tmp_path):
    # An EC certificate with RSA-only suites and no TLS 1.3: every handshake ends in a TLS alert.
    context = self_signed_context(tmp_path)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    script = ScriptedSmtp(ehlo=TLS_EHLO, recipient_reply=RELAY_DENIED, tls_context=context)
    with FakeServer(script, connections=MAX_CONNECTIONS) as server:
        report = audit("127.0.0.1", server.port, cafile=tmp_path / "server.pem", timeout=TIMEOUT)
    versions = report.item("tls_versions")
    assert versions.outcome is Outcome.PROBLEM
    assert versions.finding == "no_current"
    assert versions.values["accepted"] == "-"
    assert versions.values["untested"] == "-"
    for name in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
        assert name in versions.values["refused"]
    trust = report.item("certificate_trust")
    assert trust.outcome is Outcome.PROBLEM
    assert trust.finding == "handshake_failed"
    assert report.item("certificate_expiry").outcome is Outcome.NOT_CHECKED
    assert report.item("weak_ciphers").outcome is Outcome.PASS
    # Plain, certificate, four versions, weak suites; no second certificate session after an alert.
    assert report.connections == 7


# TLS probes without a result ---------------------------------------------------------------

def test_starttls_rejected_stops_tls_probes():
    script = TroubledSmtp(ehlo=TLS_EHLO, recipient_reply=RELAY_DENIED, starttls="reject")
    with FakeServer(script, connections=MAX_CONNECTIONS) as server:
        report = audit("127.0.0.1", server.port, timeout=TIMEOUT)
    starttls = report.item("starttls")
    assert starttls.outcome is Outcome.PROBLEM
    assert starttls.finding == "rejected"
    assert starttls.values["reply"].startswith("454 4.7.0")
    assert starttls.fix != message("smtp_audit.item.starttls.fix")
    for name in ("tls_versions", "weak_ciphers", "certificate_trust", "certificate_expiry"):
        item = report.item(name)
        assert item.outcome is Outcome.NOT_CHECKED, name
        assert item.finding == "starttls_rejected", name
        assert "454 4.7.0" in item.explanation, name
    assert report.connections == 2
    assert script.starttls_count == 1
    assert report.exit_code == 1
    assert not data_sent(script)


def test_starttls_rejected_later_skips_rest(tmp_path):
    # The certificate session gets TLS, the first version probe gets 454, and no probe follows it.
    script = TroubledSmtp(ehlo=TLS_EHLO, recipient_reply=RELAY_DENIED, tls_context=self_signed_context(tmp_path),
                          starttls="reject", good_handshakes=1)
    with FakeServer(script, connections=MAX_CONNECTIONS) as server:
        report = audit("127.0.0.1", server.port, cafile=tmp_path / "server.pem", timeout=TIMEOUT)
    assert report.item("certificate_trust").outcome is Outcome.PASS
    assert report.item("starttls").outcome is Outcome.PROBLEM
    assert report.item("starttls").finding == "rejected"
    versions = report.item("tls_versions")
    assert versions.outcome is Outcome.NOT_CHECKED
    assert versions.finding == "untested"
    assert versions.values["refused"] == "-"
    assert "TLSv1（STARTTLS 得到「454 4.7.0" in versions.values["untested"]
    assert versions.values["untested"].count("先前的 STARTTLS 已被拒絕") == 3
    weak = report.item("weak_ciphers")
    assert weak.outcome is Outcome.NOT_CHECKED
    assert weak.finding == "untested"
    assert weak.values["reason"] == "先前的 STARTTLS 已被拒絕"
    assert report.connections == 3
    assert script.starttls_count == 2


def test_untrusted_then_starttls_rejected(tmp_path):
    # Without the CA file the certificate fails verification, and the session that should read it gets 454.
    script = TroubledSmtp(ehlo=TLS_EHLO, recipient_reply=RELAY_DENIED, tls_context=self_signed_context(tmp_path),
                          starttls="reject", good_handshakes=1)
    with FakeServer(script, connections=MAX_CONNECTIONS) as server:
        report = audit("127.0.0.1", server.port, timeout=TIMEOUT)
    trust = report.item("certificate_trust")
    assert trust.outcome is Outcome.PROBLEM
    assert trust.finding == "not_trusted"
    assert trust.values["names"] == "-"
    expiry = report.item("certificate_expiry")
    assert expiry.outcome is Outcome.NOT_CHECKED
    assert expiry.finding == "starttls_rejected"
    assert report.item("starttls").finding == "rejected"
    assert report.item("tls_versions").finding == "untested"
    assert report.connections == 3


def test_stalled_handshake_leaves_tls_untested():
    script = TroubledSmtp(ehlo=TLS_EHLO, recipient_reply=RELAY_DENIED, starttls="stall")
    with FakeServer(script, connections=MAX_CONNECTIONS) as server:
        report = audit("127.0.0.1", server.port, timeout=1)
    versions = report.item("tls_versions")
    assert versions.outcome is Outcome.NOT_CHECKED
    assert versions.finding == "untested"
    assert versions.values["refused"] == "-"
    for name in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
        assert f"{name}（1 秒後逾時）" in versions.values["untested"]
    weak = report.item("weak_ciphers")
    assert weak.outcome is Outcome.NOT_CHECKED
    assert weak.finding == "untested"
    assert weak.values["reason"] == "1 秒後逾時"
    trust = report.item("certificate_trust")
    assert trust.outcome is Outcome.PROBLEM
    assert trust.finding == "handshake_failed"
    assert "1 秒後逾時" in trust.explanation
    assert report.item("starttls").outcome is Outcome.PASS
    assert report.connections == 7
    assert not data_sent(script)


def test_stalled_handshake_reason_in_english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    script = TroubledSmtp(ehlo=TLS_EHLO, recipient_reply=RELAY_DENIED, starttls="stall")
    with FakeServer(script, connections=MAX_CONNECTIONS) as server:
        report = audit("127.0.0.1", server.port, timeout=1)
    versions = report.item("tls_versions")
    assert "TLSv1.2 (timed out after 1 s)" in versions.values["untested"]
    assert versions.explanation.startswith("The TLS version tests did not complete")
    assert "neither" not in versions.explanation
    assert report.item("weak_ciphers").explanation.startswith(
        "The handshake offering only")


def test_dropped_handshakes_leave_tls_untested():
    # No handshake with this server ever completes, so a closed connection is no refusal.
    script = TroubledSmtp(ehlo=TLS_EHLO, recipient_reply=RELAY_DENIED, starttls="close")
    with FakeServer(script, connections=MAX_CONNECTIONS) as server:
        report = audit("127.0.0.1", server.port, timeout=TIMEOUT)
    versions = report.item("tls_versions")
    assert versions.outcome is Outcome.NOT_CHECKED
    assert versions.finding == "untested"
    assert versions.values["untested"].count("伺服器在交握中關閉了連線") == 4
    weak = report.item("weak_ciphers")
    assert weak.outcome is Outcome.NOT_CHECKED
    assert weak.values["reason"] == "伺服器在交握中關閉了連線"
    assert report.item("certificate_trust").finding == "handshake_failed"
    assert report.connections == 7


def test_lab_close_counts_as_refusal():
    # The lab's TLS closes the connection for TLS 1.0 and 1.1 instead of sending an alert.
    with lab_with(tls=True) as lab:
        report = audit_lab(lab)
    versions = report.item("tls_versions")
    assert versions.outcome is Outcome.PASS
    assert versions.values["untested"] == "-"
    assert "TLSv1（" in versions.values["refused"]
    assert "TLSv1.1（" in versions.values["refused"]


@pytest.mark.parametrize("busy_connection, name, finding", [
    (2, "certificate_trust", "session_failed"),
    (2, "certificate_expiry", "session_failed"),
    (7, "weak_ciphers", "untested"),
])
def test_busy_server_leaves_item_untested(tmp_path, busy_connection, name, finding):
    script = TroubledSmtp(ehlo=TLS_EHLO, recipient_reply=RELAY_DENIED, tls_context=self_signed_context(tmp_path),
                          good_handshakes=MAX_CONNECTIONS, busy_connection=busy_connection)
    with FakeServer(script, connections=MAX_CONNECTIONS) as server:
        report = audit("127.0.0.1", server.port, cafile=tmp_path / "server.pem", timeout=TIMEOUT)
    item = report.item(name)
    assert item.outcome is Outcome.NOT_CHECKED
    assert item.finding == finding
    assert "421" in item.explanation


# What the probes verify --------------------------------------------------------------------

def test_probes_say_certificate_unverified():
    with lab_with(tls=True) as lab:
        report = audit_lab(lab)
    for name in ("tls_versions", "weak_ciphers"):
        assert "不驗證憑證" in report.item(name).explanation, name
    assert "不驗證憑證" not in report.item("certificate_trust").explanation
    headings = [line for line in report.transcript_text().splitlines() if line.startswith("--- ")]
    probe_headings = [line for line in headings if "TLS 1." in line or "弱加密套件" in line]
    assert len(probe_headings) == 5
    assert all("不驗證憑證" in line for line in probe_headings)


def test_probes_say_certificate_unverified_english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with lab_with(tls=True) as lab:
        report = audit_lab(lab)
    assert "skip certificate verification" in report.item("tls_versions").explanation
    assert "skips certificate verification" in report.item("weak_ciphers").explanation
    assert "session: handshake with TLS 1.0 only, certificate not verified" in report.transcript_text()


@pytest.mark.parametrize("language, words", [("zh-TW", "內部憑證授權單位"), ("en", "internal certification authority")])
def test_untrusted_hint_names_internal_ca(monkeypatch, language, words):
    monkeypatch.setenv("ADMINKB_LANG", language)
    with lab_with(tls=True) as lab:
        report = audit("127.0.0.1", lab.port, timeout=TIMEOUT)
    explanation = report.item("certificate_trust").explanation
    assert words in explanation
    assert "--lab-ca" in explanation


def test_connection_control_denied_is_problem():
    with lab_with(connection_control={"deny": ["127.0.0.1"]}) as lab:
        report = audit_lab(lab)
    assert report.items[0].name == "connect"
    assert report.items[0].outcome is Outcome.PROBLEM
    assert all(item.outcome is Outcome.NOT_CHECKED for item in report.items[1:])
    assert report.exit_code == 1


def test_closed_port_is_problem():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    report = audit("127.0.0.1", port, timeout=TIMEOUT)
    assert report.items[0].outcome is Outcome.PROBLEM
    assert report.connections == 1


def test_credentials_absent_everywhere(caplog):
    caplog.set_level(logging.DEBUG)
    with lab_with(tls=True, basic_auth=True, auth_requires_tls=False, accounts={"relayuser": PASSWORD}) as lab:
        report = audit_lab(lab)
        logged = "".join(path.read_text(encoding="cp950") for path in lab.log_files())
    places = {"transcript": report.transcript_text(), "json": json.dumps(report.to_dict(), ensure_ascii=False),
              "w3c": logged, "log": caplog.text}
    for name, text in places.items():
        assert PASSWORD not in text, name
        assert "relayuser" not in text, name
    assert "C: *" in places["transcript"]


def test_english_catalog(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with lab_with(relay_open=True) as lab:
        report = audit_lab(lab)
    assert report.item("relay").title == "Open relay"
    assert report.item("relay").outcome_label == "problem"
    assert report.item("relay").fix.startswith("In IIS Manager")


# Bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options, key", [
    ({"local_domain": "not a domain"}, "smtp_audit.input.invalid_domain"),
    ({"local_domain": "user@example.com"}, "smtp_audit.input.invalid_domain"),
    ({"vrfy_user": "two words"}, "smtp_audit.input.invalid_vrfy_user"),
    ({"vrfy_user": ""}, "smtp_audit.input.invalid_vrfy_user"),
    ({"cafile": "/nonexistent/lab-ca.pem"}, "smtp_audit.input.invalid_cafile"),
    ({"timeout": -1}, None),
    ({"tls_name": "bad name!"}, None),
])
def test_bad_input_rejected_before_connecting(options, key):
    with pytest.raises(InputError) as raised:
        audit("127.0.0.1", 25, **options)
    if key is not None:
        assert raised.value.key == key


def test_cafile_not_pem_rejected(tmp_path):
    not_pem = tmp_path / "not-a-certificate.pem"
    not_pem.write_text("this is no certificate\n", encoding="ascii")
    with pytest.raises(InputError) as raised:
        audit("127.0.0.1", 25, cafile=not_pem)
    assert raised.value.key == "smtp_audit.input.invalid_cafile"
    assert str(not_pem) in str(raised.value)
    assert "-----BEGIN CERTIFICATE-----" in str(raised.value)
    # The command line has no lab certificate, so the advice names none.
    assert "certificate_file" not in str(raised.value)


@pytest.mark.parametrize("language, expected, english_text", [
    ("zh-TW", "找不到這個檔案或資料夾", "No such file"),
    ("en", "No such file or directory", None),
])
def test_missing_cafile_reason_in_language(monkeypatch, tmp_path, language, expected, english_text):
    monkeypatch.setenv("ADMINKB_LANG", language)
    missing = tmp_path / "internal-ca.pem"
    with pytest.raises(InputError) as raised:
        audit("127.0.0.1", 25, cafile=missing)
    text = str(raised.value)
    assert str(missing) in text
    assert expected in text
    if english_text is not None:
        assert english_text not in text


def test_cafile_folder_reason_in_chinese(tmp_path):
    with pytest.raises(InputError) as raised:
        audit("127.0.0.1", 25, cafile=tmp_path)
    assert "這是資料夾，不是檔案" in str(raised.value)


def test_cafile_not_pem_reason_in_chinese(tmp_path):
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("no certificate here\n", encoding="ascii")
    with pytest.raises(InputError) as raised:
        audit("127.0.0.1", 25, cafile=not_pem)
    assert "檔案中沒有 PEM 格式的憑證" in str(raised.value)


# The command line --------------------------------------------------------------------------

def test_cli_exit_zero_when_clean():
    with lab_with(tls=True, connect_response="ESMTP ready") as lab:
        status, output, errors = run_cli(f"127.0.0.1:{lab.port}", "--lab-ca", str(lab.certificate_file),
                                         "--timeout", str(TIMEOUT))
    assert status == 0, output + errors
    assert "127.0.0.1" in output


def test_cli_exit_one_on_problem_json():
    with lab_with(relay_open=True) as lab:
        status, output, _ = run_cli(f"127.0.0.1:{lab.port}", "--format", "json", "--local-domain", "example.com")
        assert_nothing_delivered(lab)
    document = json.loads(output)
    assert status == 1
    assert document["exit_code"] == 1
    outcomes = {item["item"]: item["outcome"] for item in document["items"]}
    assert outcomes["relay"] == "problem"
    assert outcomes["percent_relay"] == "info"


def test_cli_csv_has_bom():
    with lab_with() as lab:
        status, output, _ = run_cli(f"127.0.0.1:{lab.port}", "--format", "csv")
    assert status == 1
    assert output.startswith("\ufeff")
    assert len(output.strip().splitlines()) == len(ITEMS) + 1


def test_cli_transcript_option():
    with lab_with() as lab:
        _, output, _ = run_cli(f"127.0.0.1:{lab.port}", "--transcript")
    assert "C: MAIL FROM:<relay-audit@example.net>" in output
    assert "C: QUIT" in output


@pytest.mark.parametrize("arguments", [
    ["127.0.0.1:99999"],
    ["127.0.0.1", "--lab-ca", "/nonexistent/lab-ca.pem"],
    ["127.0.0.1", "--local-domain", "bad domain"],
    ["127.0.0.1", "--timeout", "soon"],
    ["127.0.0.1", "--format", "xml"],
])
def test_cli_bad_input_exit_two(arguments):
    status, _, errors = run_cli(*arguments)
    assert status == 2
    assert errors.strip()


@pytest.mark.parametrize("text", [
    "In IIS Manager, open the SMTP virtual server's Properties → Access → Relay restrictions.",
    "在 IIS 管理員的虛擬 SMTP 伺服器內容 → 存取 → 轉送限制，選「僅允許下列清單」，只加入需要寄信的應用程式伺服器。",
    "averyveryverylongwordwithoutanyspacesthatmustbebrokenbetweencharacters",
])
def test_wrap_cell_keeps_width_and_text(text):
    wrapped = smtp_cli.wrap_cell(text, 20)
    for line in wrapped.splitlines():
        assert display_width(line) <= 20, line
    assert wrapped.replace("\n", "").replace(" ", "") == text.replace(" ", "")


def test_table_lines_stay_narrow():
    with lab_with(relay_open=True) as lab:
        _, output, _ = run_cli(f"127.0.0.1:{lab.port}")
    lines = output.splitlines()
    separator = next(line for line in lines if line.startswith("---"))
    assert display_width(separator) <= 140
    for line in lines:
        assert display_width(line) <= display_width(separator), line


def test_cli_help_states_limits():
    status, output, _ = run_cli("--help")
    assert status == 0
    assert f"{MAX_CONNECTIONS}" in output
    assert "--lab-ca" in output
    assert "內部" in output


def test_report_table_columns_and_rows():
    with lab_with(relay_open=True) as lab:
        report = audit_lab(lab)
    table = report.table()
    short = report.table(with_explanation=False)
    assert list(table.columns) == ["項目", "結果", "說明", "修正方式"]
    assert list(short.columns) == ["項目", "結果", "修正方式"]
    assert len(table) == len(ITEMS)
    assert table.iloc[0]["結果"] == "問題"
    assert table.iloc[0]["項目"] == report.item("relay").title
