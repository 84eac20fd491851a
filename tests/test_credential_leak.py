"""The lab account's password must never show in transcripts, logs, runbook outputs or their HTML.

AUTH LOGIN sends the user name and password as separate base64 lines, and AUTH PLAIN sends
`\\0user\\0password` as one base64 token. Each test searches for the password itself, those
base64 forms, and the `user:password` pair that people paste into tools.
"""

import base64
import contextlib
import io
import json
import logging
import secrets
import socket
from pathlib import Path

import nbformat
import pytest

from adminkb import securitylab
from adminkb.cli import build_parser
from adminkb.lab import MailLab, can_bind_source_address
from adminkb.securitylab import LAB_ACCOUNT, open_security_target
from adminkb.smtp.session import SmtpSession

pytestmark = pytest.mark.timeout(300)

RUNBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_security.ipynb"
TIMEOUT = 5


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def secret_forms(user: str, password: str) -> dict[str, str]:
    """Return every spelling of the credential a leak could take, by name."""
    return {
        "password": password,
        "base64 password": b64(password),
        "base64 user": b64(user),
        "base64 PLAIN token": b64(f"\0{user}\0{password}"),
        "user:password": f"{user}:{password}",
        "base64 user:password": b64(f"{user}:{password}"),
    }


def assert_no_secret(text: str, where: str, user: str, password: str) -> None:
    for form, value in secret_forms(user, password).items():
        assert value not in text, f"{form} found in {where}"
        # W3C logs write unrecognized commands in lower case, so search without regard to case.
        assert value.lower() not in text.lower(), f"{form} (any case) found in {where}"


@pytest.fixture
def password(monkeypatch):
    # A fresh password per test, so that an old file cannot make a search pass or fail.
    value = f"Leak-Check-{secrets.token_hex(6)}"
    monkeypatch.setenv(securitylab.PASSWORD_VARIABLE, value)
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", value)
    return value


def read_logs(files: list[Path]) -> str:
    return "".join(path.read_text(encoding="cp950") for path in files)


def test_runbook_scenario_leaks_nothing(password, caplog):
    caplog.set_level(logging.DEBUG)
    if not can_bind_source_address(securitylab.ROAMING_ADDRESS):
        pytest.skip("this machine cannot use 127.0.0.x source addresses")
    target = open_security_target(timeout=TIMEOUT)
    try:
        # AUTH in clear first, then under TLS, as the runbook does.
        clear = target.send_as("roaming")
        clear_transcript = target.last_transcript.to_text()
        target.guess_passwords(attempts=3)
        target.require_tls_for_auth()
        under_tls = target.send_as("roaming")
        tls_transcript = target.last_transcript.to_text()
        logs = read_logs(target.log_files())
        frame_text = target.read_logs().to_string()
    finally:
        target.close()

    assert clear.iloc[-1, -1].startswith("250 2.6.0")
    assert under_tls.iloc[-1, -1].startswith("250 2.6.0")
    assert "C: <redacted>" in clear_transcript
    assert "C: <redacted>" in tls_transcript
    places = {"transcript in clear": clear_transcript, "transcript under TLS": tls_transcript,
              "tables": clear.to_string() + under_tls.to_string(), "W3C log": logs, "log frame": frame_text,
              "Python log": caplog.text}
    for where, text in places.items():
        assert_no_secret(text, where, LAB_ACCOUNT, password)


def test_probe_cli_leaks_nothing(password, caplog):
    caplog.set_level(logging.DEBUG)
    with MailLab(basic_auth=True, auth_requires_tls=False, accounts={LAB_ACCOUNT: password},
                 relay_grant=["127.0.0.1"], pickup_interval=None) as lab:
        outputs = {}
        for output_format in ("table", "json"):
            output = io.StringIO()
            with contextlib.redirect_stdout(output):
                parsed = build_parser().parse_args([
                    "smtp", "probe", f"127.0.0.1:{lab.port}", "--from", "app@example.com",
                    "--to", "user@example.org", "--auth-user", LAB_ACCOUNT, "--format", output_format,
                    "--timeout", str(TIMEOUT)])
                status = parsed.handler(parsed)
            assert status == 0, output.getvalue()
            outputs[output_format] = output.getvalue()
        logs = read_logs(lab.log_files())
    assert "<redacted>" in outputs["table"]
    assert json.loads(outputs["json"])
    for where, text in {**outputs, "W3C log": logs, "Python log": caplog.text}.items():
        assert_no_secret(text, where, LAB_ACCOUNT, password)


def test_plain_token_leaks_nothing(password, caplog):
    caplog.set_level(logging.DEBUG)
    # The lab offers only LOGIN, as the service does, so AUTH PLAIN with its token is refused
    # and the token must still stay out of the transcript and the log.
    with MailLab(basic_auth=True, auth_requires_tls=False, accounts={LAB_ACCOUNT: password},
                 pickup_interval=None) as lab:
        with SmtpSession("127.0.0.1", lab.port, timeout=TIMEOUT) as session:
            session.connect()
            session.read_banner()
            session.ehlo()
            reply = session.authenticate(LAB_ACCOUNT, password, "PLAIN")
            session.quit()
        logs = read_logs(lab.log_files())
    assert reply.code == 504
    for where, text in {"transcript": session.transcript.to_text(), "W3C log": logs,
                        "Python log": caplog.text}.items():
        assert_no_secret(text, where, LAB_ACCOUNT, password)


def test_credentials_after_refused_auth_stay_out_of_log(password):
    with MailLab(basic_auth=True, tls=True, accounts={LAB_ACCOUNT: password}, pickup_interval=None) as lab:
        with socket.create_connection(("127.0.0.1", lab.port), timeout=TIMEOUT) as client:
            reader = client.makefile("rb")
            reader.readline()
            # A careless client that does not wait for 334: the lab refuses AUTH before TLS with 538.
            for line in ("EHLO careless.test", "AUTH LOGIN", b64(LAB_ACCOUNT), b64(password), "QUIT"):
                client.sendall(line.encode("ascii") + b"\r\n")
                while True:
                    reply = reader.readline()
                    if reply[3:4] != b"-":
                        break
        logs = read_logs(lab.log_files())
    assert_no_secret(logs, "W3C log", LAB_ACCOUNT, password)


def test_runbook_outputs_and_html_leak_nothing(password, tmp_path):
    if not can_bind_source_address(securitylab.ROAMING_ADDRESS):
        pytest.skip("this machine cannot use 127.0.0.x source addresses")
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import ExecutePreprocessor

    notebook = nbformat.read(RUNBOOK, as_version=4)
    # The kernel inherits this process's environment, so it reads the test's password. The
    # extra cell proves that by its length, without showing the password.
    notebook.cells.append(nbformat.v4.new_code_cell(
        "from adminkb.securitylab import lab_password\nlen(lab_password())"))
    ExecutePreprocessor(timeout=180, kernel_name="python3").preprocess(
        notebook, {"metadata": {"path": str(RUNBOOK.parent)}})
    assert notebook.cells[-1].outputs[0]["data"]["text/plain"] == str(len(password))
    executed = tmp_path / "06_security.ipynb"
    nbformat.write(notebook, executed)
    html, _ = HTMLExporter().from_notebook_node(notebook)
    (tmp_path / "06_security.html").write_text(html, encoding="utf-8")

    stored = executed.read_text(encoding="utf-8")
    assert "<redacted>" in stored
    assert "235 2.7.0 Authentication successful" in stored
    assert_no_secret(stored, "executed notebook", LAB_ACCOUNT, password)
    assert_no_secret(html, "nbconvert HTML", LAB_ACCOUNT, password)


def test_stored_runbook_has_no_user_token():
    # The stored runbook ran with a random password unknown to the tests, but the user name's base64 form is fixed.
    stored = RUNBOOK.read_text(encoding="utf-8")
    assert "<redacted>" in stored
    assert b64(LAB_ACCOUNT) not in stored


@pytest.mark.parametrize("form", list(secret_forms(LAB_ACCOUNT, "Check-Self-1").values()))
def test_search_finds_each_form(form):
    with pytest.raises(AssertionError):
        assert_no_secret(f"S: 250 ok\nC: {form.upper()}\n", "sample", LAB_ACCOUNT, "Check-Self-1")


def test_transcript_masks_auth_lines_sent_by_hand(password):
    # A caller that bypasses SmtpSession.authenticate() and sends AUTH lines itself.
    with MailLab(basic_auth=True, auth_requires_tls=False, accounts={LAB_ACCOUNT: password},
                 pickup_interval=None) as lab:
        with SmtpSession("127.0.0.1", lab.port, timeout=TIMEOUT) as session:
            session.connect()
            session.read_banner()
            session.ehlo()
            assert session.command(f"AUTH LOGIN {b64(LAB_ACCOUNT)}", step="auth").code == 334
            assert session.command(b64(password), step="auth").code == 235
            session.quit()
    text = session.transcript.to_text()
    assert "C: AUTH LOGIN <redacted>" in text
    assert "C: <redacted>" in text
    assert "S: 235 2.7.0 Authentication successful" in text
    assert_no_secret(text, "transcript", LAB_ACCOUNT, password)
    assert_no_secret(json.dumps(session.transcript.to_dicts()), "transcript JSON", LAB_ACCOUNT, password)


@pytest.mark.parametrize("line, shown", [
    ("AUTH LOGIN", "AUTH LOGIN"),
    ("AUTH PLAIN AHJlbGF5dXNlcgBzZWNyZXQ=", "AUTH PLAIN <redacted>"),
    ("auth login cmVsYXl1c2Vy", "auth login <redacted>"),
    ("cmVsYXl1c2Vy", "<redacted>"),
    ("*", "*"),
    ("<redacted>", "<redacted>"),
])
def test_mask_auth_line(line, shown):
    from adminkb.smtp.transcript import mask_auth_line

    assert mask_auth_line(line) == shown
