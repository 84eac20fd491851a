"""`adminkb.smtp.audit` and `adminkb smtp audit` against mail lab configurations that pass and fail each item."""

import contextlib
import io
import json
import logging
import socket
import ssl
from datetime import datetime, timedelta, timezone

import pytest

from adminkb.cli import build_parser
from adminkb.cli import smtp as smtp_cli
from adminkb.errors import InputError
from adminkb.lab import STRANGER_ADDRESS, TRUSTED_CLIENT_ADDRESS, MailLab, can_bind_source_address
from adminkb.output import display_width
from adminkb.smtp.audit import ITEMS, MAX_CONNECTIONS, WEAK_CIPHERS, Outcome, audit

from fakeservers import FakeServer, ScriptedSmtp

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
