"""The lab's STARTTLS and AUTH LOGIN through real sockets, with the project's own session client."""

import base64
import logging
import smtplib
import ssl
import stat
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509

from adminkb.errors import InputError, LabError
from adminkb.lab import STRANGER_ADDRESS, MailLab, can_bind_source_address
from adminkb.smtp import SmtpSession

pytestmark = pytest.mark.timeout(60)

USER = "relayuser"
# A made-up lab password; the tests check it never shows up in transcripts or logs.
PASSWORD = "Lab-Only-7f3a9c"
REMOTE = "someone@remote.test"
SENDER = "app@example.net"


def lab_with(**settings) -> MailLab:
    settings.setdefault("pickup_interval", None)
    return MailLab(**settings)


def session_for(lab: MailLab) -> SmtpSession:
    session = SmtpSession("127.0.0.1", lab.port, timeout=5, ehlo_name="client.example.net")
    session.connect()
    session.read_banner()
    session.ehlo()
    return session


def log_text(lab: MailLab) -> str:
    return "".join(path.read_text(encoding="cp950") for path in lab.log_files())


def test_tls_off_by_default():
    with lab_with() as lab, session_for(lab) as session:
        assert not session.supports("STARTTLS")
        assert session.auth_mechanisms() == ()
        assert session.command("STARTTLS", step="tls").code == 554
        with pytest.raises(LabError):
            lab.certificate_file


def test_starttls_offered_and_handshake():
    with lab_with(tls=True) as lab, session_for(lab) as session:
        assert session.supports("STARTTLS")
        reply = session.starttls(verify=False)
        assert reply.code == 220
        assert session.tls is not None
        assert session.tls.version in ("TLSv1.2", "TLSv1.3")
        again = session.ehlo()
        assert again.code == 250
        assert not session.supports("STARTTLS")


def test_certificate_in_lab_folder_only():
    with lab_with(tls=True) as lab:
        certificate_file = lab.certificate_file
        assert certificate_file.is_relative_to(lab.root)
        key_files = list(certificate_file.parent.glob("*key*"))
        assert len(key_files) == 1
        assert stat.S_IMODE(key_files[0].stat().st_mode) == 0o600
        certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "mail01.example.com" in names.get_values_for_type(x509.DNSName)
        assert certificate.not_valid_after_utc > datetime.now(timezone.utc)


def test_certificate_verifies_with_lab_ca():
    with lab_with(tls=True) as lab:
        context = ssl.create_default_context(cafile=str(lab.certificate_file))
        with smtplib.SMTP("127.0.0.1", lab.port, local_hostname="client.example.net", timeout=5) as client:
            client.starttls(context=context)
            assert client.sock.version() in ("TLSv1.2", "TLSv1.3")


def test_certificate_expiry_setting():
    expired = datetime.now(timezone.utc) - timedelta(days=2)
    with lab_with(tls=True, certificate_not_after=expired) as lab:
        certificate = x509.load_pem_x509_certificate(lab.certificate_file.read_bytes())
        assert certificate.not_valid_after_utc < datetime.now(timezone.utc)


def test_auth_hidden_before_tls():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        assert session.auth_mechanisms() == ()
        reply = session.authenticate(USER, PASSWORD, mechanism="LOGIN")
        assert reply.code == 538


def test_auth_login_after_tls_offers_service_lines():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        session.starttls(verify=False)
        ehlo = session.ehlo()
        assert "AUTH GSSAPI NTLM LOGIN" in ehlo.texts
        assert "AUTH=LOGIN" in ehlo.texts
        assert ehlo.texts.index("AUTH GSSAPI NTLM LOGIN") == 1
        reply = session.authenticate(USER, PASSWORD, mechanism="LOGIN")
        assert reply.code == 235
        assert list(reply.raw) == ["235 2.7.0 Authentication successful"]


def test_auth_wrong_password_rejected():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        session.starttls(verify=False)
        session.ehlo()
        reply = session.authenticate(USER, "not-the-password", mechanism="LOGIN")
        assert reply.code == 535
        assert session.mail_from(SENDER).code == 250
        assert session.rcpt_to(REMOTE).code == 550


def test_auth_plain_not_offered():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        session.starttls(verify=False)
        session.ehlo()
        assert "PLAIN" not in session.auth_mechanisms()
        assert session.authenticate(USER, PASSWORD, mechanism="PLAIN").code == 504


def test_auth_cancel_and_bad_base64():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        session.starttls(verify=False)
        session.ehlo()
        assert session.command("AUTH LOGIN", step="auth").code == 334
        assert session.command("*", step="auth").code == 501
        assert session.command("AUTH LOGIN", step="auth").code == 334
        assert session.command("not base64!", step="auth").code == 501


def test_auth_initial_response():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        session.starttls(verify=False)
        session.ehlo()
        token = base64.b64encode(USER.encode()).decode()
        reply = session.command(f"AUTH LOGIN {token}", step="auth", shown="AUTH LOGIN <redacted>")
        assert list(reply.raw) == ["334 UGFzc3dvcmQ6"]
        final = session.command(base64.b64encode(PASSWORD.encode()).decode(), step="auth", shown="<redacted>")
        assert final.code == 235


def test_auth_before_tls_when_allowed():
    with lab_with(tls=True, basic_auth=True, auth_requires_tls=False,
                  accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        assert "LOGIN" in session.auth_mechanisms()
        assert session.authenticate(USER, PASSWORD, mechanism="LOGIN").code == 235


def test_authenticated_client_may_relay():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        session.starttls(verify=False)
        session.ehlo()
        assert session.mail_from(SENDER).code == 250
        assert session.rcpt_to(REMOTE).code == 550
        session.command("RSET", step="mail")
        session.authenticate(USER, PASSWORD, mechanism="LOGIN")
        assert session.mail_from(SENDER).code == 250
        assert session.rcpt_to(REMOTE).code == 250


def test_authenticated_relay_turned_off():
    with lab_with(tls=True, basic_auth=True, relay_for_authenticated=False,
                  accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        session.starttls(verify=False)
        session.ehlo()
        assert session.authenticate(USER, PASSWORD, mechanism="LOGIN").code == 235
        session.mail_from(SENDER)
        assert session.rcpt_to(REMOTE).code == 550


def test_w3c_log_records_account_and_relay_decision():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab:
        with session_for(lab) as session:
            session.starttls(verify=False)
            session.ehlo()
            session.mail_from(SENDER)
            session.rcpt_to(REMOTE)
            session.command("RSET", step="mail")
            session.authenticate(USER, PASSWORD, mechanism="LOGIN")
            session.mail_from(SENDER)
            session.rcpt_to(REMOTE)
            session.quit()
        lines = [line.split(" ") for line in log_text(lab).splitlines() if not line.startswith("#")]
        rcpt_lines = [line for line in lines if line[8] == "RCPT"]
        assert [(line[3], line[11]) for line in rcpt_lines] == [("client.example.net", "550"), (USER, "250")]
        auth_lines = [line for line in lines if line[8] == "AUTH"]
        assert [(line[10], line[11]) for line in auth_lines] == [("+LOGIN", "235")]


def test_credentials_absent_from_transcript_and_logs(caplog):
    caplog.set_level(logging.DEBUG)
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab:
        with session_for(lab) as session:
            session.starttls(verify=False)
            session.ehlo()
            session.authenticate(USER, "wrong-" + PASSWORD, mechanism="LOGIN")
            session.authenticate(USER, PASSWORD, mechanism="LOGIN")
            session.quit()
            transcript = session.transcript.to_text()
        written = log_text(lab)
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    for place in (transcript, written, caplog.text):
        assert PASSWORD not in place
        assert encoded not in place
        assert base64.b64encode(USER.encode()).decode() not in place


def test_vrfy_reveals_users_setting():
    with lab_with(basic_auth=True, accounts={USER: PASSWORD}, vrfy_reveals_users=True) as lab, \
            session_for(lab) as session:
        assert session.command(f"VRFY {USER}", step="ehlo").code == 250
        assert session.command("VRFY nobody-here", step="ehlo").code == 550
    with lab_with(basic_auth=True, accounts={USER: PASSWORD}) as lab, session_for(lab) as session:
        assert session.command(f"VRFY {USER}", step="ehlo").code == 252


def test_connect_response_replaces_banner():
    with lab_with(connect_response="ESMTP ready") as lab:
        session = SmtpSession("127.0.0.1", lab.port, timeout=5)
        with session:
            session.connect()
            assert list(session.read_banner().raw) == ["220 mail01.example.com ESMTP ready"]


def test_old_tls_versions_setting():
    with lab_with(tls=True, tls_minimum_version="TLSv1") as lab, session_for(lab) as session:
        session.command("STARTTLS", step="tls")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        wrapped = context.wrap_socket(session._sock, server_hostname="127.0.0.1")
        assert wrapped.version() == "TLSv1"
        wrapped.close()


@pytest.mark.skipif(not can_bind_source_address(STRANGER_ADDRESS), reason="no loopback alias 127.0.0.66")
def test_stranger_without_auth_cannot_relay():
    with lab_with(tls=True, basic_auth=True, accounts={USER: PASSWORD}) as lab:
        session = SmtpSession("127.0.0.1", lab.port, timeout=5, source_address=STRANGER_ADDRESS)
        with session:
            session.connect()
            session.read_banner()
            session.ehlo()
            session.mail_from(SENDER)
            assert session.rcpt_to(REMOTE).code == 550


@pytest.mark.parametrize("settings, key", [
    ({"tls_minimum_version": "SSLv3"}, "lab.invalid_tls_version"),
    ({"accounts": {USER: ""}}, "lab.invalid_account_password"),
    ({"accounts": [USER]}, "lab.invalid_accounts"),
    ({"accounts": {"two words": PASSWORD}}, "lab.invalid_name"),
    ({"connect_response": "line\r\nbreak"}, "lab.invalid_connect_response"),
    ({"certificate_names": []}, "lab.invalid_name"),
])
def test_bad_tls_and_auth_settings(settings, key):
    with pytest.raises(InputError) as raised:
        MailLab(**settings)
    assert raised.value.key == key
    assert PASSWORD not in str(raised.value)


def test_bad_cipher_string_rejected_at_start():
    lab = lab_with(tls=True, tls_ciphers="NO-SUCH-CIPHER")
    with pytest.raises(InputError) as raised:
        lab.start()
    assert raised.value.key == "lab.invalid_tls_ciphers"
    lab.stop()
