"""Relay control against a real MTA: swaks and the session client against a private Postfix.

Postfix denies relay in its own words (`554 5.7.1 <addr>: Relay access denied`), unlike the
IIS SMTP Service's `550 5.7.1 Unable to relay for <addr>`; the session client must classify
both as the same relay denial.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import STRANGER_CLIENT, TRUSTED_CLIENT, run_swaks, swaks_arguments

pytestmark = [
    pytest.mark.peer("postfix"),
    pytest.mark.peer("swaks"),
    pytest.mark.peer("loopback-aliases"),
    pytest.mark.timeout(60),
]

REMOTE_RECIPIENT = "user@remote.test"
STRANGER_SENDER = "stranger@example.net"
APPLICATION_SENDER = "app@example.com"
SYSTEM_CONFIG_DIRECTORY = Path("/etc/postfix")


def test_swaks_stranger_relay_denied(private_postfix):
    completed = run_swaks(*swaks_arguments(port=private_postfix.port, source_address=STRANGER_CLIENT,
                                           mail_from=STRANGER_SENDER, rcpt_to=REMOTE_RECIPIENT))

    assert completed.returncode == 24, completed.stdout + completed.stderr
    assert f"<** 554 5.7.1 <{REMOTE_RECIPIENT}>: Relay access denied" in completed.stdout
    logged = private_postfix.wait_for_log(
        rf"NOQUEUE: reject: RCPT from \S+\[{STRANGER_CLIENT}\]: 554 5\.7\.1 <{REMOTE_RECIPIENT}>")
    assert logged is not None, private_postfix.maillog()


def test_swaks_trusted_client_rcpt_accepted(private_postfix):
    completed = run_swaks(*swaks_arguments(port=private_postfix.port, source_address=TRUSTED_CLIENT,
                                           mail_from=APPLICATION_SENDER, rcpt_to=REMOTE_RECIPIENT))

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "<-  250 2.1.5 Ok" in completed.stdout
    assert "<**" not in completed.stdout


def test_swaks_stranger_local_domain_accepted(private_postfix):
    local_recipient = f"user@{private_postfix.local_domain}"
    completed = run_swaks(*swaks_arguments(port=private_postfix.port, source_address=STRANGER_CLIENT,
                                           mail_from=STRANGER_SENDER, rcpt_to=local_recipient))

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "<-  250 2.1.5 Ok" in completed.stdout


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


def test_empty_mynetworks_denies_trusted_client(start_postfix):
    instance = start_postfix(mynetworks=())

    completed = run_swaks(*swaks_arguments(port=instance.port, source_address=TRUSTED_CLIENT,
                                           mail_from=APPLICATION_SENDER, rcpt_to=REMOTE_RECIPIENT))

    assert instance.postconf("mynetworks") == {"mynetworks": ""}
    assert completed.returncode == 24, completed.stdout + completed.stderr
    assert f"<** 554 5.7.1 <{REMOTE_RECIPIENT}>: Relay access denied" in completed.stdout


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
