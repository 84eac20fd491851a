"""swaks against the mail lab: relay denial, granted relay and delivery to a local domain.

swaks is the reference client here: its exit code and transcript show that the lab replies as
the IIS SMTP Service does, and the session client's exit code must equal swaks's for the same
situation.
"""

from __future__ import annotations

import uuid

import pytest

from adminkb.lab import MailLab
from adminkb.smtp import probe

from .conftest import STRANGER_CLIENT, TRUSTED_CLIENT, run_swaks, swaks_arguments
from .postfix import free_port

pytestmark = [
    pytest.mark.peer("swaks"),
    pytest.mark.peer("loopback-aliases"),
    pytest.mark.timeout(120),
]

REMOTE_RECIPIENT = "user@remote.test"
LOCAL_RECIPIENT = "user@example.com"
STRANGER_SENDER = "stranger@example.net"
APPLICATION_SENDER = "app@example.com"
# The body and mailer header swaks writes when no --body is given (swaks 20201014.0).
SWAKS_BODY = b"This is a test mailing"
SWAKS_MAILER = b"X-Mailer: swaks v"


@pytest.fixture
def mail_lab(tmp_path):
    with MailLab(root=tmp_path / "lab") as lab:
        yield lab


def _unique_subject() -> str:
    return f"adminkb swaks check {uuid.uuid4().hex}"


def test_swaks_relay_denied_by_lab(mail_lab):
    completed = run_swaks(*swaks_arguments(server=mail_lab.host, port=mail_lab.port,
                                           source_address=STRANGER_CLIENT,
                                           mail_from=STRANGER_SENDER, rcpt_to=REMOTE_RECIPIENT))

    assert completed.returncode == 24, completed.stdout + completed.stderr
    assert f"<** 550 5.7.1 Unable to relay for {REMOTE_RECIPIENT}" in completed.stdout
    assert mail_lab.queue_files() == []
    assert mail_lab.drop_files() == []


def test_swaks_granted_relay_reaches_queue(mail_lab):
    mail_lab.allow_relay(TRUSTED_CLIENT)
    subject = _unique_subject()

    completed = run_swaks(*swaks_arguments(server=mail_lab.host, port=mail_lab.port,
                                           source_address=TRUSTED_CLIENT,
                                           mail_from=APPLICATION_SENDER, rcpt_to=REMOTE_RECIPIENT,
                                           quit_after=None, subject=subject))

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "<**" not in completed.stdout
    queued = mail_lab.queue_files()
    assert len(queued) == 1
    content = queued[0].read_bytes()
    assert f"Subject: {subject}".encode() in content
    assert SWAKS_BODY in content
    assert SWAKS_MAILER in content
    assert mail_lab.drop_files() == []


def test_swaks_stranger_local_mail_in_drop(mail_lab):
    subject = _unique_subject()

    completed = run_swaks(*swaks_arguments(server=mail_lab.host, port=mail_lab.port,
                                           source_address=STRANGER_CLIENT,
                                           mail_from=STRANGER_SENDER, rcpt_to=LOCAL_RECIPIENT,
                                           quit_after=None, subject=subject))

    assert completed.returncode == 0, completed.stdout + completed.stderr
    dropped = mail_lab.drop_files()
    assert len(dropped) == 1
    content = dropped[0].read_bytes()
    assert f"Subject: {subject}".encode() in content
    assert SWAKS_BODY in content
    assert SWAKS_MAILER in content
    assert mail_lab.queue_files() == []


def test_probe_relay_denial_matches_swaks(mail_lab):
    completed = run_swaks(*swaks_arguments(server=mail_lab.host, port=mail_lab.port,
                                           source_address=STRANGER_CLIENT,
                                           mail_from=STRANGER_SENDER, rcpt_to=REMOTE_RECIPIENT))
    result = probe(mail_lab.host, mail_lab.port, mail_from=STRANGER_SENDER, rcpt_to=REMOTE_RECIPIENT,
                   source_address=STRANGER_CLIENT, timeout=10.0)

    assert completed.returncode == 24
    assert result.exit_code == completed.returncode
    assert result.verdict.category == "relay_denied"
    assert result.verdict.step == "rcpt"


# Each case: whether the trusted client may relay, the source address, the recipient, and
# whether the session stops after RCPT TO.
MATCHING_CASES = {
    "stranger to remote domain": (False, STRANGER_CLIENT, REMOTE_RECIPIENT, True),
    "trusted client to remote domain": (True, TRUSTED_CLIENT, REMOTE_RECIPIENT, True),
    "stranger to local domain": (False, STRANGER_CLIENT, LOCAL_RECIPIENT, True),
    "trusted client sends to remote domain": (True, TRUSTED_CLIENT, REMOTE_RECIPIENT, False),
    "stranger sends to local domain": (False, STRANGER_CLIENT, LOCAL_RECIPIENT, False),
}


@pytest.mark.parametrize(("grant", "source_address", "recipient", "stop_after_rcpt"),
                         list(MATCHING_CASES.values()), ids=list(MATCHING_CASES))
def test_probe_exit_code_matches_swaks(mail_lab, grant, source_address, recipient, stop_after_rcpt):
    if grant:
        mail_lab.allow_relay(TRUSTED_CLIENT)
    sender = APPLICATION_SENDER if source_address == TRUSTED_CLIENT else STRANGER_SENDER

    completed = run_swaks(*swaks_arguments(server=mail_lab.host, port=mail_lab.port,
                                           source_address=source_address, mail_from=sender,
                                           rcpt_to=recipient,
                                           quit_after="RCPT" if stop_after_rcpt else None))
    result = probe(mail_lab.host, mail_lab.port, mail_from=sender, rcpt_to=recipient,
                   source_address=source_address, send=not stop_after_rcpt, timeout=10.0)

    assert result.exit_code == completed.returncode, completed.stdout + "\n" + result.to_text()


def test_probe_connect_failure_matches_swaks():
    # A free port has no listener, so both clients see the connection refused at once.
    closed_port = free_port()

    completed = run_swaks(*swaks_arguments(port=closed_port, source_address=STRANGER_CLIENT,
                                           mail_from=STRANGER_SENDER, rcpt_to=REMOTE_RECIPIENT))
    result = probe("127.0.0.1", closed_port, mail_from=STRANGER_SENDER, rcpt_to=REMOTE_RECIPIENT,
                   source_address=STRANGER_CLIENT, timeout=5.0)

    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert result.exit_code == completed.returncode
