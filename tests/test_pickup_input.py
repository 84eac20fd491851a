"""The Pickup writer's input checks: envelope lines, addresses, header names and values, the body and file names."""

import email
import email.policy
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


def test_raw_envelope_line_after_lf_rejected():
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


def envelope_of(data):
    """Return the X-Sender and X-Receiver lines at the top of a Pickup file."""
    envelope = []
    for line in data.split(b"\r\n"):
        if not line.startswith((b"X-Sender:", b"X-Receiver:")):
            break
        envelope.append(line)
    return envelope


@pytest.mark.parametrize("recipients", [[""], ["   "], ["user@example.net", ""]])
def test_empty_recipient_is_rejected(tmp_path, recipients):
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path, b"Subject: s\r\n\r\nbody\r\n", sender=SENDER, recipients=recipients)
    assert caught.value.key == "pickup.empty_address"
    assert "The X-Receiver address is empty" in str(caught.value)
    assert pickup_files(tmp_path) == []


@pytest.mark.parametrize("address, shown", [
    ("us\x00er@example.net", "us\\x00er@example.net"),
    ("user@exa\x01mple.net", "user@exa\\x01mple.net"),
    ("user\x7f@example.net", "user\\x7f@example.net"),
    ("user@example.net\x1b[31m", "user@example.net\\x1b[31m"),
])
def test_control_character_in_recipient_is_rejected(address, shown):
    with pytest.raises(InputError) as caught:
        pickup.pickup_bytes(b"Subject: s\r\n\r\nbody\r\n", SENDER, [address])
    assert caught.value.key == "pickup.control_character"
    assert caught.value.value == shown
    assert "X-Receiver" in str(caught.value)


@pytest.mark.parametrize("address", ["us er@example.net", "user@exam ple.net", "user\u3000@example.net",
                                     "<user@example.net>", "a@b@example.net", "a.@example.net",
                                     "user@example..net", "user@", "@example.net", "user"])
def test_malformed_recipient_is_rejected(address):
    with pytest.raises(InputError) as caught:
        pickup.pickup_bytes(b"Subject: s\r\n\r\nbody\r\n", SENDER, [address])
    assert caught.value.key == "pickup.invalid_address"
    assert caught.value.value == address
    assert "not a valid e-mail address" in str(caught.value)


@pytest.mark.parametrize("sender, key", [
    ("a@b@example.net", "pickup.invalid_address"),
    ("web server@example.com", "pickup.invalid_address"),
    ("app\x00@example.com", "pickup.control_character"),
    (" ", "pickup.empty_address"),
])
def test_malformed_sender_is_rejected(sender, key):
    with pytest.raises(InputError) as caught:
        pickup.pickup_bytes(b"Subject: s\r\n\r\nbody\r\n", sender, RECIPIENTS)
    assert caught.value.key == key


def test_malformed_header_address_is_input_error():
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, ["a@b@example.net"], "s", "body\n")
    assert caught.value.key == "pickup.invalid_address"
    assert caught.value.value == "a@b@example.net"


def test_malformed_bcc_is_input_error(tmp_path):
    message = pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n")
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path, message, bcc=["audit\x00@example.org"])
    assert caught.value.key == "pickup.control_character"
    assert "Bcc" in str(caught.value)
    assert pickup_files(tmp_path) == []


def test_spaces_around_address_are_removed():
    data = pickup.pickup_bytes(b"Subject: s\r\n\r\nbody\r\n", " app@example.com\t", ["  user@example.net "])
    assert envelope_of(data) == [b"X-Sender: app@example.com", b"X-Receiver: user@example.net"]


def test_explicit_empty_sender_writes_null_sender(tmp_path):
    message = pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n")
    path = pickup.write_pickup_file(tmp_path, message, sender="")
    assert envelope_of(path.read_bytes()) == [b"X-Sender: <>", b"X-Receiver: user@example.net"]


def test_raw_bytes_empty_sender_null():
    data = pickup.pickup_bytes(b"Subject: bounce\r\n\r\nbody\r\n", "", RECIPIENTS)
    assert envelope_of(data) == [b"X-Sender: <>", b"X-Receiver: user@example.net"]


def test_message_without_from_needs_sender(tmp_path):
    message = EmailMessage(policy=pickup.MESSAGE_POLICY)
    message["To"] = "user@example.net"
    message["Subject"] = "no sender"
    message.set_content("body\n")
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path, message)
    assert caught.value.key == "pickup.sender_missing"
    assert "Pass sender=" in str(caught.value)
    assert pickup_files(tmp_path) == []


def test_message_without_from_takes_given_sender(tmp_path):
    message = EmailMessage(policy=pickup.MESSAGE_POLICY)
    message["To"] = "user@example.net"
    message.set_content("body\n")
    path = pickup.write_pickup_file(tmp_path, message, sender="app@example.com")
    assert envelope_of(path.read_bytes()) == [b"X-Sender: app@example.com", b"X-Receiver: user@example.net"]


def parsed(message):
    return email.message_from_bytes(message.as_bytes(policy=pickup.MESSAGE_POLICY), policy=email.policy.default)


def test_non_ascii_domain_becomes_idna_in_headers():
    message = pickup.compose_message(("王小明", "app@公司.台灣"), [("李大華", "user@例子.台灣")], "報表", "body\n",
                                     cc=["boss@例子。台灣"])
    headers = message.as_bytes(policy=pickup.MESSAGE_POLICY).split(b"\r\n\r\n", 1)[0]
    assert headers.isascii()
    assert b"user@xn--fsqu00a.xn--kpry57d" in headers
    assert b"=?utf-8?b?5L6L" not in headers
    reread = parsed(message)
    assert reread["From"].addresses[0].addr_spec == "app@xn--55qx5d.xn--kpry57d"
    assert reread["From"].addresses[0].display_name == "王小明"
    assert reread["To"].addresses[0].addr_spec == "user@xn--fsqu00a.xn--kpry57d"
    assert reread["To"].addresses[0].display_name == "李大華"
    assert reread["Cc"].addresses[0].addr_spec == "boss@xn--fsqu00a.xn--kpry57d"
    assert reread["Message-ID"].endswith("@xn--55qx5d.xn--kpry57d>")


def test_non_ascii_domain_becomes_idna_in_envelope(tmp_path):
    message = pickup.compose_message("app@公司.台灣", ["user@例子.台灣"], "報表", "body\n")
    path = pickup.write_pickup_file(tmp_path, message, bcc=["audit@例子.台灣"])
    data = path.read_bytes()
    assert data.isascii()
    assert envelope_of(data) == [b"X-Sender: app@xn--55qx5d.xn--kpry57d",
                                 b"X-Receiver: user@xn--fsqu00a.xn--kpry57d",
                                 b"X-Receiver: audit@xn--fsqu00a.xn--kpry57d"]


def test_raw_bytes_envelope_domain_becomes_idna():
    data = pickup.pickup_bytes(b"Subject: s\r\n\r\nbody\r\n", "app@公司.台灣", ["user@例子.台灣"])
    assert envelope_of(data) == [b"X-Sender: app@xn--55qx5d.xn--kpry57d", b"X-Receiver: user@xn--fsqu00a.xn--kpry57d"]


@pytest.mark.parametrize("domain", ["例子..台灣", "例" * 64 + ".台灣", "例子.\udce4"],
                         ids=["empty label", "label too long", "undecodable byte"])
def test_domain_idna_rejects_is_input_error(domain):
    with pytest.raises(InputError) as caught:
        pickup.pickup_bytes(b"Subject: s\r\n\r\nbody\r\n", SENDER, [f"user@{domain}"])
    assert caught.value.key == "pickup.invalid_domain"
    assert caught.value.value == domain.replace("\udce4", "\\udce4")
    assert "IDNA ASCII form" in str(caught.value)


def test_non_ascii_header_local_part_rejected():
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, ["用戶@example.net"], "s", "body\n")
    assert caught.value.key == "pickup.non_ascii_local_part"
    assert caught.value.value == "用戶@example.net"
    assert "does not support SMTPUTF8" in str(caught.value)
    assert "The To address" in str(caught.value)


@pytest.mark.parametrize("sender, recipients", [("用戶@example.com", RECIPIENTS), (SENDER, ["用戶@example.net"])])
def test_non_ascii_envelope_local_part_rejected(tmp_path, sender, recipients):
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path, b"Subject: s\r\n\r\nbody\r\n", sender=sender, recipients=recipients)
    assert caught.value.key == "pickup.non_ascii_local_part"
    assert pickup_files(tmp_path) == []


def test_non_ascii_local_part_in_zh_tw(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, ["用戶@example.net"], "s", "body\n")
    assert "SMTPUTF8" in str(caught.value)
    assert "本機部分" in str(caught.value)


@pytest.mark.parametrize("name", ["Reply-To: attacker@evil.example\tX-Y", "", "X Y", "X-Y:", "X-\x00Y",
                                  "X-\u5831\u8868", "X-Y\r\nBcc", "X-Y\x7f"])
def test_invalid_header_name_is_rejected(name):
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n", extra_headers=[(name, "v")])
    assert caught.value.key == "pickup.invalid_header_name"
    assert "is invalid" in str(caught.value)
    assert "X-Report-Id" in str(caught.value)


def test_invalid_header_name_shows_escapes():
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n",
                               extra_headers=[("Reply-To: a@evil.example\tX-Y", "v")])
    assert caught.value.value == "Reply-To: a@evil.example\\tX-Y"


@pytest.mark.parametrize("name", ["Bcc", "bcc", "BCC", "From", "To", "Cc", "Sender", "Subject", "Date", "Message-ID",
                                  "message-id", "MIME-Version", "Content-Type", "content-transfer-encoding",
                                  "X-Sender", "x-receiver", "Content-Disposition", "Content-Language",
                                  "Resent-To", "Resent-Bcc", "resent-cc"])
def test_writer_header_is_rejected(name):
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n", extra_headers=[(name, "victim@example.org")])
    assert caught.value.key == "pickup.writer_header"
    assert caught.value.value == name
    assert "extra_headers cannot set" in str(caught.value)


@pytest.mark.parametrize("name", ["X-Report-Id", "Reply-To", "In-Reply-To", "Importance", "X-Priority",
                                  "!#$%&'*+-.^_`|~", "X;Y"])
def test_valid_header_name_is_written(name):
    message = pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n", extra_headers=[(name, "1")])
    headers = message.as_bytes(policy=pickup.MESSAGE_POLICY).split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert f"{name}: 1".encode("ascii") in headers


def test_reply_to_header_parses_back():
    message = pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n",
                                     extra_headers=[("Reply-To", "helpdesk@example.com")])
    reread = parsed(message)
    assert reread["Reply-To"].addresses[0].addr_spec == "helpdesk@example.com"
    assert reread.get_all("Bcc") is None


CONTROL_CHARACTERS = ["\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", "\x7f", "\x85", "\u2028",
                      "\u2029"]


@pytest.mark.parametrize("character", CONTROL_CHARACTERS)
def test_control_character_in_subject_is_rejected(character):
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, f"月報{character}三月", "body\n")
    assert caught.value.key == "pickup.control_character"
    assert caught.value.values["field"] == "Subject"
    assert caught.value.values["character"] == f"U+{ord(character):04X}"
    assert "月報" in caught.value.value
    assert character not in caught.value.value


@pytest.mark.parametrize("character", CONTROL_CHARACTERS)
def test_control_character_in_header_value_is_rejected(character):
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n", extra_headers=[("X-Report", f"a{character}b")])
    assert caught.value.key == "pickup.control_character"
    assert caught.value.values["field"] == "X-Report"


@pytest.mark.parametrize("character", CONTROL_CHARACTERS)
def test_control_character_in_display_name_is_rejected(character):
    with pytest.raises(InputError) as caught:
        pickup.compose_message((f"王{character}小明", SENDER), RECIPIENTS, "s", "body\n")
    assert caught.value.key == "pickup.control_character"
    assert caught.value.values["field"] == "From"


@pytest.mark.parametrize("message_id, key", [
    ("<a\r\nb@example.com>", "pickup.line_break"),
    ("<a\nBcc: victim@example.org>", "pickup.line_break"),
    ("<a\x00b@example.com>", "pickup.control_character"),
    ("<a\x0bb@example.com>", "pickup.control_character"),
])
def test_bad_message_id_is_rejected(message_id, key):
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n", message_id=message_id)
    assert caught.value.key == key
    assert caught.value.values["field"] == "Message-ID"


@pytest.mark.parametrize("filename, key", [
    ("a\x00b.txt", "pickup.control_character"),
    ("a\x1cb.bin", "pickup.control_character"),
    ("a\r\nb.txt", "pickup.line_break"),
])
def test_control_character_in_attachment_name_is_rejected(filename, key):
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n", attachments=[pickup.Attachment(filename, b"x")])
    assert caught.value.key == key
    assert caught.value.values["field"] == "filename"


def test_tab_in_header_text_is_kept():
    message = pickup.compose_message(SENDER, RECIPIENTS, "a\tb", "body\n", extra_headers=[("X-Report", "c\td")])
    reread = parsed(message)
    assert reread["Subject"] == "a\tb"
    assert reread["X-Report"] == "c\td"


@pytest.mark.parametrize("body, line", [("a\x00b\n", 1), ("first\nsecond \x00\n", 2), ("中文\n\n\x00\n", 3)])
def test_nul_in_body_is_rejected(body, line):
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, "s", body)
    assert caught.value.key == "pickup.nul_in_body"
    assert caught.value.value == line
    assert f"Line {line} of the message body contains a NUL" in str(caught.value)


def test_other_controls_in_body_are_kept():
    message = pickup.compose_message(SENDER, RECIPIENTS, "s", "bell\x07 form\x0cfeed\n")
    assert parsed(message).get_content() == "bell\x07 form\x0cfeed\r\n"


@pytest.mark.parametrize("name", ["a\x00b.eml", "report\x1f.eml", "tab\there.eml"])
def test_control_character_in_file_name_is_rejected(tmp_path, name):
    message = pickup.compose_message(SENDER, RECIPIENTS, "s", "body\n")
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path, message, name=name)
    assert caught.value.key == "pickup.file_name_control_character"
    assert "\x00" not in str(caught.value)
    assert pickup_files(tmp_path) == []


def test_tab_inside_address_is_shown_escaped():
    with pytest.raises(InputError) as caught:
        pickup.pickup_bytes(b"Subject: s\r\n\r\nbody\r\n", SENDER, ["us\ter@example.net"])
    assert caught.value.key == "pickup.invalid_address"
    assert caught.value.value == "us\\ter@example.net"


def test_line_separator_error_names_it():
    with pytest.raises(InputError) as caught:
        pickup.compose_message(SENDER, RECIPIENTS, "a\u2028b", "body\n")
    assert "contains U+2028, a control character or line separator" in str(caught.value)
    assert "a\\u2028b" in str(caught.value)
