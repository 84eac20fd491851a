"""`adminkb smtp probe` end to end: output, JSON, swaks exit codes, the password variable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from adminkb.cli import main
from adminkb.errors import InputError
from adminkb.smtp import parse_host_port
from fakeservers import FakeServer, ScriptedSmtp

pytestmark = pytest.mark.timeout(120)

SECRET = "Cli-S3cret!"


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    monkeypatch.delenv("ADMINKB_SMTP_PASSWORD", raising=False)


def run(capsys, *arguments: str) -> tuple[int, str, str]:
    status = main(["smtp", "probe", *arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_probe_prints_transcript_explanations_and_verdict(capsys):
    with FakeServer(ScriptedSmtp()) as server:
        status, out, _ = run(capsys, f"127.0.0.1:{server.port}", "--from", "app@example.com", "--to",
                             "user@example.com", "--timeout", "5")
    assert status == 0
    assert f"SMTP transcript with 127.0.0.1:{server.port}:" in out
    assert "S: 220 mail01.example.com Microsoft ESMTP MAIL Service" in out
    assert "C: RCPT TO:<user@example.com>" in out
    assert "What each reply means" in out
    assert "Windows Server 2019" in out
    assert "Result: [OK]" in out
    assert "Exit code: 0" in out


def test_relay_denied_exits_24(capsys):
    script = ScriptedSmtp(recipient_reply="550 5.7.1 Unable to relay for {address}")
    with FakeServer(script) as server:
        status, out, _ = run(capsys, f"127.0.0.1:{server.port}", "--from", "app@example.com", "--to",
                             "far@example.net", "--timeout", "5")
    assert status == 24
    assert "Result: [Problem] The server refuses to relay." in out
    assert "Relay restrictions" in out


def test_json_is_one_document(capsys):
    script = ScriptedSmtp(recipient_reply="550 5.7.1 Unable to relay for {address}")
    with FakeServer(script) as server:
        status, out, _ = run(capsys, f"127.0.0.1:{server.port}", "--from", "app@example.com", "--to",
                             "far@example.net", "--format", "json", "--timeout", "5")
    document = json.loads(out)
    assert status == 24
    assert document["exit_code"] == 24
    assert document["verdict"]["category"] == "relay_denied"
    assert document["verdict"]["level"] == "problem"
    assert document["verdict"]["explanation"]["known"] == "iis_unable_to_relay"
    assert document["recipients"]["refused"][0]["address"] == "far@example.net"
    assert document["transcript"][0]["direction"] == "note"
    assert {entry["direction"] for entry in document["transcript"]} == {"note", "server", "client"}
    assert document["replies"][-2]["lines"] == ["550 5.7.1 Unable to relay for far@example.net"]


def test_auth_password_from_environment_is_redacted(capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_SMTP_PASSWORD", SECRET)
    script = ScriptedSmtp(ehlo=["250-mail01.example.com", "250 AUTH LOGIN"], auth=("app01", SECRET))
    with FakeServer(script) as server:
        status, out, err = run(capsys, f"127.0.0.1:{server.port}", "--from", "app@example.com", "--to",
                               "user@example.com", "--auth-user", "app01", "--format", "json", "--timeout", "5")
    assert status == 0
    document = json.loads(out)
    assert any(entry["text"] == "<redacted>" for entry in document["transcript"])
    assert SECRET not in out + err
    import base64

    assert base64.b64encode(SECRET.encode()).decode() not in out + err


def test_auth_without_password_variable_exits_1(capsys):
    status, _, err = run(capsys, "127.0.0.1:2525", "--from", "app@example.com", "--to", "user@example.com",
                         "--auth-user", "app01")
    assert status == 1
    assert "ADMINKB_SMTP_PASSWORD" in err
    assert "app01" in err


def test_invalid_address_exits_1_naming_it(capsys):
    status, out, err = run(capsys, "127.0.0.1:2525", "--from", "app@example.com", "--to", "not an address")
    assert status == 1
    assert out == ""
    assert "not an address" in err


@pytest.mark.parametrize("target", ["127.0.0.1:99999", "127.0.0.1:abc", "bad host:25", "[::1", "[::1]x"])
def test_invalid_target_exits_1(capsys, target):
    status, _, err = run(capsys, target, "--from", "app@example.com", "--to", "user@example.com")
    assert status == 1
    assert "Error: " in err


def test_usage_error_exits_1(capsys):
    status = None
    with pytest.raises(SystemExit) as caught:
        run(capsys, "127.0.0.1:2525", "--to", "user@example.com")
    status = caught.value.code
    assert status == 1
    assert "--from" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--timeout", "soon"), ("--format", "xml"), ("--markers", "morse"),
                                           ("--quit-after", "never")])
def test_bad_option_value_exits_1(capsys, option, value):
    with pytest.raises(SystemExit) as caught:
        run(capsys, "127.0.0.1:2525", "--from", "app@example.com", "--to", "user@example.com", option, value)
    assert caught.value.code == 1
    assert value in capsys.readouterr().err


def test_connection_refused_exits_2(capsys):
    status, out, _ = run(capsys, f"127.0.0.1:{free_port()}", "--from", "app@example.com", "--to",
                         "user@example.com", "--timeout", "3")
    assert status == 2
    assert "refused the connection" in out


def test_send_and_swaks_markers(capsys):
    script = ScriptedSmtp()
    with FakeServer(script) as server:
        status, out, _ = run(capsys, f"127.0.0.1:{server.port}", "--from", "app@example.com", "--to",
                             "user@example.com", "--to", "second@example.com", "--send", "--markers", "swaks",
                             "--timeout", "5")
    assert status == 0
    assert len(script.messages) == 1
    assert "->  DATA" in out
    assert "accepted the message (2 of 2 recipients)" in out


def test_quit_after_data_without_send_exits_1(capsys):
    status, _, err = run(capsys, "127.0.0.1:2525", "--from", "app@example.com", "--to", "user@example.com",
                         "--quit-after", "data")
    assert status == 1
    assert "--send" in err


def test_traditional_chinese_output(capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    script = ScriptedSmtp(recipient_reply="550 5.7.1 Unable to relay for {address}")
    with FakeServer(script) as server:
        status, out, _ = run(capsys, f"127.0.0.1:{server.port}", "--from", "app@example.com", "--to",
                             "far@example.net", "--timeout", "5")
    assert status == 24
    assert "結果：[問題] 伺服器拒絕轉送（Relay）。" in out
    assert "結束代碼：24" in out


def test_ipv6_target(capsys):
    try:
        server = FakeServer(ScriptedSmtp(), host="::1")
    except OSError:
        pytest.skip("IPv6 loopback (::1) is not available on this machine")
    with server:
        status, out, _ = run(capsys, f"[::1]:{server.port}", "--from", "app@example.com", "--to",
                             "user@example.com", "--timeout", "5")
    assert status == 0
    assert f"[::1]:{server.port}" in out


@pytest.mark.parametrize("text, expected", [
    ("mail.example.com", ("mail.example.com", 25)),
    ("mail.example.com:587", ("mail.example.com", 587)),
    ("192.0.2.25", ("192.0.2.25", 25)),
    ("192.0.2.25:2525", ("192.0.2.25", 2525)),
    ("[::1]:2525", ("::1", 2525)),
    ("[2001:db8::25]", ("2001:db8::25", 25)),
    ("2001:db8::a", ("2001:db8::a", 25)),
    ("::1", ("::1", 25)),
    ("1:2:3:4:5:6:7:8", ("1:2:3:4:5:6:7:8", 25)),
])
def test_parse_host_port(text, expected):
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text, head, port", [("::1:2525", "::1", "2525"), ("2001:db8::25", "2001:db8::", "25")])
def test_parse_host_port_ambiguous_ipv6(text, head, port):
    with pytest.raises(InputError) as caught:
        parse_host_port(text)
    assert caught.value.key == "smtp.input.ipv6_ambiguous"
    assert f"[{head}]:{port}" in str(caught.value)


@pytest.mark.parametrize("text", ["", ":25", "host:", "host:0", "[::1]:", "[not-ip]:25x"])
def test_parse_host_port_rejects(text):
    with pytest.raises(InputError):
        parse_host_port(text)


def test_help_documents_exit_codes_and_password_variable():
    environment = {**os.environ, "ADMINKB_LANG": "zh-TW"}
    completed = subprocess.run([sys.executable, "-m", "adminkb", "smtp", "probe", "--help"], capture_output=True,
                               text=True, encoding="utf-8", env=environment, timeout=60)
    assert completed.returncode == 0
    assert "ADMINKB_SMTP_PASSWORD" in completed.stdout
    assert "24  沒有任何收件者被接受" in completed.stdout
    assert "29  STARTTLS 或 TLS 失敗" in completed.stdout


def test_subprocess_exit_code_and_json():
    script = ScriptedSmtp(recipient_reply="550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain")
    environment = {**os.environ, "ADMINKB_LANG": "en"}
    with FakeServer(script) as server:
        completed = subprocess.run(
            [sys.executable, "-m", "adminkb", "smtp", "probe", f"127.0.0.1:{server.port}", "--from",
             "app@example.com", "--to", "far@example.net", "--format", "json", "--timeout", "5"],
            capture_output=True, text=True, encoding="utf-8", env=environment, timeout=60)
    assert completed.returncode == 24
    document = json.loads(completed.stdout)
    assert document["verdict"]["explanation"]["known"] == "exchange_nonaccepted_domain"


@pytest.mark.parametrize(("arguments", "option", "parameter"), [
    (["--from", "notanaddress", "--to", "b@example.com"], "--from", "mail_from"),
    (["--from", "a@example.com", "--to", "notanaddress"], "--to", "rcpt_to"),
])
def test_bad_address_names_cli_option(capsys, arguments, option, parameter):
    status, out, err = run(capsys, "127.0.0.1", *arguments)
    assert status == 1
    assert f"{option} " in err
    assert parameter not in err
    assert "notanaddress" in err


def test_source_not_local_names_source_ip(capsys):
    # 192.0.2.1 is a documentation address that no interface carries: binding fails locally.
    status, out, err = run(capsys, "127.0.0.1:2525", "--from", "a@example.com", "--to", "b@example.net",
                           "--source-ip", "192.0.2.1")
    assert status == 1
    assert out == ""
    assert "cannot use 192.0.2.1 as the source address of the connection (--source-ip)" in err
    assert "leave out --source-ip" in err


def test_send_required_names_options(capsys):
    status, _, err = run(capsys, "127.0.0.1:2525", "--from", "a@example.com", "--to", "b@example.net",
                         "--quit-after", "data")
    assert status == 1
    assert "needs --send as well" in err
    assert "drop --quit-after data" in err
    assert "send=True" not in err


def test_send_required_api_names_parameters():
    from adminkb.smtp import probe

    with pytest.raises(InputError) as raised:
        probe("127.0.0.1", 2525, mail_from="a@example.com", rcpt_to="b@example.net", quit_after="data")
    assert "needs send=True as well" in str(raised.value)


def test_bad_port_has_next_step(capsys):
    status, _, err = run(capsys, "127.0.0.1:99999", "--from", "a@example.com", "--to", "b@example.net")
    assert status == 1
    assert 'The port "99999" is invalid' in err
    assert "Next step: Use a port from 1 to 65535" in err


def test_empty_address_quoted(capsys):
    status, _, err = run(capsys, "127.0.0.1:2525", "--from", "a@example.com", "--to", "")
    assert status == 1
    assert 'The e-mail address "" given as --to cannot be used' in err
