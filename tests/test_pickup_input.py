"""The Pickup writer's input checks: envelope lines at the start of the message."""

from email.message import EmailMessage

import pytest

from adminkb import pickup
from adminkb.errors import InputError

SENDER = "app@example.com"
RECIPIENTS = ["user@example.net"]


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")


def pickup_files(folder):
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("first_line", [
    b"X-Receiver: evil@example.net",
    b"x-receiver: evil@example.net",
    b" X-Receiver: evil@example.net",
    b"\tX-RECEIVER:evil@example.net",
    b"X-Receiver : evil@example.net",
    b"x-sender: evil@example.net",
    b"X-SENDER: <>",
])
def test_raw_envelope_line_is_rejected(tmp_path, first_line):
    raw = first_line + b"\r\nSubject: report\r\n\r\nbody\r\n"
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path, raw, sender=SENDER, recipients=RECIPIENTS)
    assert caught.value.key == "pickup.envelope_line_in_message"
    assert caught.value.value == first_line.decode("ascii").replace("\t", "\\t")
    assert "Remove the X-Sender and X-Receiver lines" in str(caught.value)
    assert pickup_files(tmp_path) == []


def test_raw_envelope_line_after_bare_lf_is_rejected():
    with pytest.raises(InputError) as caught:
        pickup.pickup_bytes(b"X-Receiver: evil@example.net\nSubject: s\n\nbody\n", SENDER, RECIPIENTS)
    assert caught.value.key == "pickup.envelope_line_in_message"


def test_envelope_line_in_built_message_is_rejected():
    message = EmailMessage(policy=pickup.MESSAGE_POLICY)
    message["X-Sender"] = "evil@example.net"
    message["Subject"] = "report"
    message.set_content("body\n")
    with pytest.raises(InputError) as caught:
        pickup.pickup_bytes(message, SENDER, RECIPIENTS)
    assert caught.value.key == "pickup.envelope_line_in_message"


@pytest.mark.parametrize("first_line", [
    b"X-Receivers: a@example.net",
    b"X-Sender-Note: a@example.net",
    b"Subject: X-Receiver: evil@example.net",
    b"X-Receiver evil@example.net",
])
def test_other_first_lines_are_kept(first_line):
    raw = first_line + b"\r\n\r\nbody\r\n"
    data = pickup.pickup_bytes(raw, SENDER, RECIPIENTS)
    assert data == b"X-Sender: app@example.com\r\nX-Receiver: user@example.net\r\n" + raw


def test_envelope_line_later_in_headers_is_kept():
    raw = b"Subject: s\r\nX-Receiver: note@example.net\r\n\r\nbody\r\n"
    data = pickup.pickup_bytes(raw, SENDER, RECIPIENTS)
    assert data.endswith(raw)
