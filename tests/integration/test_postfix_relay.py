"""Relay control against a real MTA: swaks and the session client against a private Postfix.

Postfix denies relay in its own words (`554 5.7.1 <addr>: Relay access denied`), unlike the
IIS SMTP Service's `550 5.7.1 Unable to relay for <addr>`; the session client must classify
both as the same relay denial.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adminkb.lab import MailLab
from adminkb.smtp import probe

from .conftest import (REQUIRE_PEERS_VARIABLE, STRANGER_CLIENT, TRUSTED_CLIENT, run_swaks,
                       swaks_arguments)
from . import postfix as postfix_module
from .postfix import PostfixStartError, PrivatePostfix, postfix_available

pytestmark = [
    pytest.mark.peer("postfix"),
    pytest.mark.peer("loopback-aliases"),
    pytest.mark.timeout(120),
]
needs_swaks = pytest.mark.peer("swaks")

REMOTE_RECIPIENT = "user@remote.test"
STRANGER_SENDER = "stranger@example.net"
APPLICATION_SENDER = "app@example.com"
SYSTEM_CONFIG_DIRECTORY = Path("/etc/postfix")
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SWAKS_NODE_ID = "tests/integration/test_postfix_relay.py::test_swaks_stranger_relay_denied"


@needs_swaks
def test_swaks_stranger_relay_denied(private_postfix):
    completed = run_swaks(*swaks_arguments(port=private_postfix.port, source_address=STRANGER_CLIENT,
                                           mail_from=STRANGER_SENDER, rcpt_to=REMOTE_RECIPIENT))

    assert completed.returncode == 24, completed.stdout + completed.stderr
    assert f"<** 554 5.7.1 <{REMOTE_RECIPIENT}>: Relay access denied" in completed.stdout
    logged = private_postfix.wait_for_log(
        rf"NOQUEUE: reject: RCPT from \S+\[{STRANGER_CLIENT}\]: 554 5\.7\.1 <{REMOTE_RECIPIENT}>")
    assert logged is not None, private_postfix.maillog()


@needs_swaks
def test_swaks_trusted_client_rcpt_accepted(private_postfix):
    completed = run_swaks(*swaks_arguments(port=private_postfix.port, source_address=TRUSTED_CLIENT,
                                           mail_from=APPLICATION_SENDER, rcpt_to=REMOTE_RECIPIENT))

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "<-  250 2.1.5 Ok" in completed.stdout
    assert "<**" not in completed.stdout


@needs_swaks
def test_swaks_stranger_local_domain_accepted(private_postfix):
    local_recipient = f"user@{private_postfix.local_domain}"
    completed = run_swaks(*swaks_arguments(port=private_postfix.port, source_address=STRANGER_CLIENT,
                                           mail_from=STRANGER_SENDER, rcpt_to=local_recipient))

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "<-  250 2.1.5 Ok" in completed.stdout


@needs_swaks
def test_swaks_relayed_message_discarded(private_postfix):
    completed = run_swaks(*swaks_arguments(port=private_postfix.port, source_address=TRUSTED_CLIENT,
                                           mail_from=APPLICATION_SENDER, rcpt_to=REMOTE_RECIPIENT,
                                           quit_after=None))

    assert completed.returncode == 0, completed.stdout + completed.stderr
    queued = [line for line in completed.stdout.splitlines() if "250 2.0.0 Ok: queued as " in line]
    assert len(queued) == 1, completed.stdout
    queue_id = queued[0].rsplit(" ", 1)[1]
    # The discard transport ends delivery on this machine: no relay host, status=sent.
    discarded = private_postfix.wait_for_log(
        rf"postfix-adminkb-test/discard\[\d+\]: {queue_id}: to=<{REMOTE_RECIPIENT}>, relay=none,.*status=sent")
    assert discarded is not None, private_postfix.maillog()


@needs_swaks
def test_empty_mynetworks_denies_trusted_client(start_postfix):
    instance = start_postfix(mynetworks=())

    completed = run_swaks(*swaks_arguments(port=instance.port, source_address=TRUSTED_CLIENT,
                                           mail_from=APPLICATION_SENDER, rcpt_to=REMOTE_RECIPIENT))

    assert instance.postconf("mynetworks") == {"mynetworks": ""}
    assert completed.returncode == 24, completed.stdout + completed.stderr
    assert f"<** 554 5.7.1 <{REMOTE_RECIPIENT}>: Relay access denied" in completed.stdout


def _rcpt_replies(result) -> list[str]:
    return [str(recorded.reply) for recorded in result.replies if recorded.step == "rcpt"]


def test_probe_stranger_relay_denied(private_postfix):
    result = probe(private_postfix.host, private_postfix.port, mail_from=STRANGER_SENDER,
                   rcpt_to=REMOTE_RECIPIENT, source_address=STRANGER_CLIENT, timeout=10.0)

    assert _rcpt_replies(result) == [f"554 5.7.1 <{REMOTE_RECIPIENT}>: Relay access denied"]
    assert result.verdict.category == "relay_denied"
    assert result.verdict.step == "rcpt"
    assert result.exit_code == 24
    assert result.accepted == []
    assert result.sent is False


def test_probe_relay_category_same_as_lab(private_postfix, tmp_path):
    postfix_result = probe(private_postfix.host, private_postfix.port, mail_from=STRANGER_SENDER,
                           rcpt_to=REMOTE_RECIPIENT, source_address=STRANGER_CLIENT, timeout=10.0)
    with MailLab(root=tmp_path / "lab") as lab:
        lab_result = probe(lab.host, lab.port, mail_from=STRANGER_SENDER, rcpt_to=REMOTE_RECIPIENT,
                           source_address=STRANGER_CLIENT, timeout=10.0)

    # Two wordings of one refusal: IIS's "550 5.7.1 Unable to relay" and Postfix's "554 5.7.1".
    assert _rcpt_replies(lab_result) == [f"550 5.7.1 Unable to relay for {REMOTE_RECIPIENT}"]
    assert _rcpt_replies(postfix_result)[0].startswith("554 5.7.1 ")
    assert postfix_result.verdict.category == lab_result.verdict.category == "relay_denied"
    assert postfix_result.exit_code == lab_result.exit_code == 24


def test_probe_trusted_client_rcpt_accepted(private_postfix):
    result = probe(private_postfix.host, private_postfix.port, mail_from=APPLICATION_SENDER,
                   rcpt_to=REMOTE_RECIPIENT, source_address=TRUSTED_CLIENT, timeout=10.0)

    assert _rcpt_replies(result) == ["250 2.1.5 Ok"]
    assert result.verdict.category == "accepted"
    assert result.exit_code == 0
    assert result.accepted == [REMOTE_RECIPIENT]
    assert result.sent is False


def test_probe_trusted_client_send_discarded(private_postfix):
    result = probe(private_postfix.host, private_postfix.port, mail_from=APPLICATION_SENDER,
                   rcpt_to=REMOTE_RECIPIENT, source_address=TRUSTED_CLIENT, send=True, timeout=10.0)

    assert result.exit_code == 0, result.to_text()
    assert result.sent is True
    data_replies = [str(recorded.reply) for recorded in result.replies if recorded.reply.code == 250
                    and "queued as" in recorded.reply.text]
    assert len(data_replies) == 1
    queue_id = data_replies[0].rsplit(" ", 1)[1]
    discarded = private_postfix.wait_for_log(rf"{queue_id}: to=<{REMOTE_RECIPIENT}>, relay=none,.*status=sent")
    assert discarded is not None, private_postfix.maillog()


@needs_swaks
def test_probe_exit_code_matches_swaks(private_postfix):
    for source_address, sender in ((STRANGER_CLIENT, STRANGER_SENDER), (TRUSTED_CLIENT, APPLICATION_SENDER)):
        completed = run_swaks(*swaks_arguments(port=private_postfix.port, source_address=source_address,
                                               mail_from=sender, rcpt_to=REMOTE_RECIPIENT))
        result = probe(private_postfix.host, private_postfix.port, mail_from=sender,
                       rcpt_to=REMOTE_RECIPIENT, source_address=source_address, timeout=10.0)

        assert result.exit_code == completed.returncode, completed.stdout + "\n" + result.to_text()


def test_private_instance_settings(private_postfix):
    settings = private_postfix.postconf(
        "config_directory", "queue_directory", "data_directory", "inet_interfaces",
        "mynetworks", "smtpd_relay_restrictions", "smtpd_peername_lookup",
        "smtp_dns_support_level", "default_transport", "relay_transport", "local_transport")
    base = str(private_postfix.base_directory)

    assert settings["config_directory"] == str(private_postfix.config_directory)
    assert settings["queue_directory"].startswith(base + os.sep)
    assert settings["data_directory"].startswith(base + os.sep)
    assert settings["inet_interfaces"] == "127.0.0.1"
    assert settings["mynetworks"] == f"{TRUSTED_CLIENT}/32"
    assert settings["smtpd_relay_restrictions"] == "permit_mynetworks, reject_unauth_destination"
    assert settings["smtpd_peername_lookup"] == "no"
    assert settings["smtp_dns_support_level"] == "disabled"
    assert settings["default_transport"] == "discard"
    assert settings["relay_transport"] == "discard"
    assert settings["local_transport"] == "discard"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Return size and modification time of every entry under `folder`, by relative path."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        status = path.lstat()
        entries[str(path.relative_to(folder))] = (status.st_size, status.st_mtime_ns)
    return entries


@needs_swaks
@pytest.mark.skipif(not SYSTEM_CONFIG_DIRECTORY.is_dir(), reason="no system Postfix configuration here")
def test_private_instance_leaves_system_config(start_postfix):
    before = _snapshot(SYSTEM_CONFIG_DIRECTORY)

    instance = start_postfix()
    completed = run_swaks(*swaks_arguments(port=instance.port, source_address=TRUSTED_CLIENT,
                                           mail_from=APPLICATION_SENDER, rcpt_to=REMOTE_RECIPIENT,
                                           quit_after=None))
    base = instance.base_directory
    instance.stop()

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert _snapshot(SYSTEM_CONFIG_DIRECTORY) == before
    assert not base.exists()


def _run_pytest_without_swaks(node_id: str, *, require_peers: bool) -> subprocess.CompletedProcess:
    """Run one test in a child pytest whose PATH has no swaks, and return its output."""
    environment = {key: value for key, value in os.environ.items() if key != REQUIRE_PEERS_VARIABLE}
    environment["PATH"] = "/nonexistent"
    if require_peers:
        environment[REQUIRE_PEERS_VARIABLE] = "1"
    command = [sys.executable, "-m", "pytest", "-p", "no:nbval", "-p", "no:cacheprovider",
               "-o", "addopts=", "-rs", node_id]
    return subprocess.run(command, cwd=REPOSITORY_ROOT, env=environment, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_missing_swaks_skips_with_reason():
    completed = _run_pytest_without_swaks(SWAKS_NODE_ID, require_peers=False)

    assert completed.returncode == 0, completed.stdout
    assert "1 skipped" in completed.stdout
    assert "integration peer 'swaks' is not available: the swaks command is not on PATH" in completed.stdout


def test_missing_swaks_fails_when_required():
    completed = _run_pytest_without_swaks(SWAKS_NODE_ID, require_peers=True)

    assert completed.returncode == 1, completed.stdout
    assert "1 error" in completed.stdout
    assert "skipped" not in completed.stdout
    assert f"{REQUIRE_PEERS_VARIABLE}=1 is set, so a missing peer is a failure" in completed.stdout


def test_postfix_peer_needs_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    found, reason = postfix_available()

    assert found is False
    assert "needs root" in reason


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.25"])
def test_private_postfix_rejects_non_loopback(host):
    with pytest.raises(ValueError, match="loopback only"):
        PrivatePostfix(host=host)


def test_private_postfix_unknown_parameter_rejected():
    instance = PrivatePostfix(settings={"mynetworkz": f"{TRUSTED_CLIENT}/32"})

    with pytest.raises(PostfixStartError, match="unused parameter: mynetworkz"):
        instance.start()

    assert instance.base_directory is None


def test_private_postfix_without_banner_times_out():
    # With its inet services disabled, the master runs but nothing listens on the port.
    instance = PrivatePostfix(settings={"master_service_disable": "inet"}, start_timeout=3.0)

    with pytest.raises(PostfixStartError, match=r"sent no 220 banner .* within 3\.0 s"):
        instance.start()

    assert instance.base_directory is None
    assert not instance.running


def test_private_postfix_retries_taken_port(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken_port = blocker.getsockname()[1]
        offered_ports = [taken_port]
        real_free_port = postfix_module.free_port
        monkeypatch.setattr(postfix_module, "free_port",
                            lambda host: offered_ports.pop() if offered_ports else real_free_port(host))

        with PrivatePostfix() as instance:
            port = instance.port
            log = instance.maillog()
            assert instance.running

    assert not instance.running
    assert port != taken_port
    assert f"bind 127.0.0.1 port {taken_port}: Address already in use" in log
