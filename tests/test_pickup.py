"""The Pickup writer: message layout, encoded words, attachments, dot-doubling and failed writes."""

import copy
import email
import email.policy
import errno
import os
from datetime import datetime, timedelta, timezone

import pytest

from adminkb import mailroot, pickup
from adminkb.errors import InputError

TAIPEI = timezone(timedelta(hours=8))
DATE = datetime(2026, 3, 2, 9, 15, 7, tzinfo=TAIPEI)


def sample_message(**overrides):
    arguments = dict(sender=("王小明", "app@example.com"), to=[("李大華", "lee@example.net")],
                     subject="每日報表：三月", body="第一行\n第二行\n", date=DATE,
                     message_id="<report-1@example.com>")
    arguments.update(overrides)
    return pickup.compose_message(**arguments)


def split_file(data):
    """Return the envelope lines and the message of a Pickup file, with the dot-doubling undone."""
    lines = data.split(b"\r\n")
    envelope = []
    while lines and lines[0].lower().startswith((b"x-sender:", b"x-receiver:")):
        envelope.append(lines.pop(0))
    message = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    return envelope, message


def test_chinese_headers_are_encoded_words():
    data = sample_message().as_bytes(policy=pickup.MESSAGE_POLICY)
    header = data.split(b"\r\n\r\n", 1)[0]
    assert header.isascii()
    assert b"=?utf-8?" in header
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == "每日報表：三月"
    assert parsed["From"].addresses[0].display_name == "王小明"
    assert parsed["To"].addresses[0].display_name == "李大華"
    assert parsed["To"].addresses[0].addr_spec == "lee@example.net"


def test_message_has_date_and_message_id():
    parsed = email.message_from_bytes(sample_message().as_bytes(), policy=email.policy.default)
    assert parsed["Date"] == "Mon, 02 Mar 2026 09:15:07 +0800"
    assert parsed["Message-ID"] == "<report-1@example.com>"
    assert parsed["MIME-Version"] == "1.0"


def test_default_message_id_uses_sender_domain():
    message = sample_message(message_id=None)
    assert message["Message-ID"].endswith("@example.com>")


def test_body_decodes_to_the_text():
    # Base64 text carries the canonical CRLF line ends of MIME (RFC 2045), which mail readers show as lines.
    parsed = email.message_from_bytes(sample_message().as_bytes(), policy=email.policy.default)
    assert parsed.get_content() == "第一行\r\n第二行\r\n"


def test_file_has_envelope_then_message(tmp_path):
    path = pickup.write_pickup_file(tmp_path, sample_message(cc=["boss@example.net"]), bcc=["audit@example.org"])
    envelope, message = split_file(path.read_bytes())
    assert envelope == [b"X-Sender: app@example.com", b"X-Receiver: lee@example.net",
                        b"X-Receiver: boss@example.net", b"X-Receiver: audit@example.org"]
    assert b"audit@example.org" not in message
    assert message.startswith(b"From: ")


def test_file_name_is_guid_eml(tmp_path):
    path = pickup.write_pickup_file(tmp_path, sample_message())
    stem, suffix = path.name.rsplit(".", 1)
    assert suffix == "eml"
    assert len(stem) == 36
    assert stem.count("-") == 4


def test_every_line_ends_in_crlf(tmp_path):
    message = b"From: a@example.com\nTo: b@example.net\rSubject: mixed\r\n\r\none\ntwo\rthree"
    path = pickup.write_pickup_file(tmp_path, message, sender="a@example.com", recipients=["b@example.net"])
    data = path.read_bytes()
    assert data.endswith(b"three\r\n")
    assert data.count(b"\n") == data.count(b"\r\n")
    assert data.count(b"\r") == data.count(b"\r\n")


def test_lone_dot_is_doubled(tmp_path):
    message = sample_message(body="before\n.\nafter\n")
    path = pickup.write_pickup_file(tmp_path, message)
    lines = path.read_bytes().split(b"\r\n")
    assert b"." not in lines
    assert b".." in lines
    assert b"after" in lines


def test_leading_dots_are_doubled_and_round_trip(tmp_path):
    body = ".hidden\n..two\nmiddle.dot\n"
    message = sample_message(body=body)
    path = pickup.write_pickup_file(tmp_path, message)
    data = path.read_bytes()
    assert b"\r\n..hidden\r\n" in data
    assert b"\r\n...two\r\n" in data
    assert b"\r\nmiddle.dot\r\n" in data
    _, restored = split_file(data)
    assert restored == message.as_bytes(policy=pickup.MESSAGE_POLICY)


def test_dot_stuff_first_line():
    assert pickup.dot_stuff(b".a\r\nb\r\n.\r\n") == b"..a\r\nb\r\n..\r\n"


def test_attachments_are_mime_parts(tmp_path):
    payload = bytes(range(256)) + b"\r\n.\r\n"
    attachments = [pickup.Attachment("報表.pdf", payload), pickup.Attachment("notes.txt", b"plain\n", "text/plain")]
    message = sample_message(attachments=attachments)
    path = pickup.write_pickup_file(tmp_path, message)
    _, restored = split_file(path.read_bytes())
    parsed = email.message_from_bytes(restored, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    found = {part.get_filename(): part for part in parsed.iter_attachments()}
    assert sorted(found) == ["notes.txt", "報表.pdf"]
    assert found["報表.pdf"].get_content_type() == "application/pdf"
    assert found["報表.pdf"].get_content() == payload
    assert found["notes.txt"].get_content() == "plain\n"
    assert parsed.get_body(("plain",)).get_content() == "第一行\r\n第二行\r\n"


def test_same_input_gives_same_bytes():
    first = sample_message(attachments=[pickup.Attachment("a.bin", b"\x00\x01")])
    second = sample_message(attachments=[pickup.Attachment("a.bin", b"\x00\x01")])
    assert first.as_bytes() == second.as_bytes()


def test_attachment_from_path(tmp_path):
    source = tmp_path / "data.csv"
    source.write_bytes(b"a,b\r\n1,2\r\n")
    attachment = pickup.Attachment.from_path(source)
    assert attachment.filename == "data.csv"
    assert attachment.data == b"a,b\r\n1,2\r\n"


def test_missing_attachment_is_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        pickup.Attachment.from_path(tmp_path / "absent.pdf")
    assert "absent.pdf" in str(caught.value)
    assert "Failed to read the attachment" in str(caught.value)


def test_missing_folder_is_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    folder = tmp_path / "Pickup"
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(folder, sample_message())
    assert caught.value.exit_status == 2
    assert str(folder) in str(caught.value)
    assert "does not exist" in str(caught.value)
    assert not folder.exists()


def test_missing_folder_in_zh_tw(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path / "Pickup", sample_message())
    assert "不存在" in str(caught.value)


class FailingFile:
    """A file object whose writes fail with one OSError, as a full disk or a lost share does."""

    def __init__(self, handle, error):
        self.handle = handle
        self.error = error

    def write(self, data):
        raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.handle.close()


def inject_write_error(monkeypatch, error):
    real_fdopen = os.fdopen

    def failing_fdopen(descriptor, *args, **kwargs):
        return FailingFile(real_fdopen(descriptor, *args, **kwargs), error)

    monkeypatch.setattr(os, "fdopen", failing_fdopen)


def files_under(folder):
    """Return every file below `folder`, relative to it, so a test can see what a failed write left."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_full_disk_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    folder = mailroot.create_mailroot(tmp_path / "mailroot") / "Pickup"
    inject_write_error(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(folder, sample_message())
    assert caught.value.key == "pickup.disk_full"
    assert "disk is full" in str(caught.value)
    assert "No space left on device" in str(caught.value)
    assert files_under(tmp_path) == []


def test_denied_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    folder = mailroot.create_mailroot(tmp_path / "mailroot") / "Pickup"
    inject_write_error(monkeypatch, PermissionError(errno.EACCES, "Permission denied"))
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(folder, sample_message())
    assert caught.value.key == "pickup.write_failed"
    assert "Permission denied" in str(caught.value)
    assert files_under(tmp_path) == []


def test_existing_name_is_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "report.eml").write_bytes(b"first")
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path, sample_message(), name="report.eml")
    assert "already exists" in str(caught.value)
    assert (tmp_path / "report.eml").read_bytes() == b"first"
    assert [path.name for path in tmp_path.iterdir()] == ["report.eml"]


@pytest.mark.parametrize("address", ["no-at-sign", "a b@example.com", "@example.com", "user@"])
def test_invalid_address_is_input_error(address, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        sample_message(to=[address])
    assert caught.value.value == address
    assert "not a valid e-mail address" in str(caught.value)


def test_line_break_in_subject_is_input_error(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        sample_message(subject="hello\r\nBcc: victim@example.org")
    assert "line break" in str(caught.value)
    assert "Subject" in str(caught.value)


def test_no_recipients_is_input_error(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        sample_message(to=[])
    assert "at least one To or Cc" in str(caught.value)


def test_raw_bytes_need_envelope(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(tmp_path, b"Subject: x\r\n\r\nbody\r\n")
    assert "sender (X-Sender)" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_invalid_content_type_is_input_error(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        sample_message(attachments=[pickup.Attachment("a.bin", b"x", "octet-stream")])
    assert "octet-stream" in str(caught.value)


def test_envelope_from_headers_prefers_sender():
    message = sample_message()
    message["Sender"] = "bulk@example.com"
    sender, recipients = pickup.envelope_from_headers(message)
    assert sender == "bulk@example.com"
    assert recipients == ["lee@example.net"]


def test_envelope_from_headers_removes_duplicates():
    message = sample_message(to=["a@example.net", "A@example.net"], cc=["b@example.net"])
    _, recipients = pickup.envelope_from_headers(message, bcc=["b@example.net", "c@example.net"])
    assert recipients == ["a@example.net", "b@example.net", "c@example.net"]


def attachment_parts(message):
    """Return the attachments of `message` after a round trip through its bytes, by file name."""
    parsed = email.message_from_bytes(message.as_bytes(policy=pickup.MESSAGE_POLICY), policy=email.policy.default)
    return {part.get_filename(): part for part in parsed.iter_attachments()}


def written_header(part, name):
    """Return the lines of header `name` as `part` is written, with its folded lines."""
    lines = part.as_bytes(policy=pickup.MESSAGE_POLICY).split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(index for index, line in enumerate(lines) if line.lower().startswith(name.lower() + b":"))
    end = start + 1
    while end < len(lines) and lines[end].startswith((b" ", b"\t")):
        end += 1
    return lines[start:end]


def test_utf8_text_attachment_has_charset():
    text = "說明：第一行\n第二行\n"
    found = attachment_parts(sample_message(attachments=[pickup.Attachment("說明.txt", text.encode("utf-8"))]))
    part = found["說明.txt"]
    assert part.get_content_type() == "text/plain"
    assert part.get_param("charset") == "utf-8"
    assert part.get_content() == text


def test_explicit_text_type_gets_charset():
    found = attachment_parts(sample_message(attachments=[pickup.Attachment("a.csv", "名稱,數量\n".encode(), "text/csv")]))
    assert found["a.csv"].get_content_type() == "text/csv"
    assert found["a.csv"].get_content() == "名稱,數量\n"


def test_non_utf8_text_attachment_is_octet_stream():
    big5 = "說明".encode("big5") + b"\r\n"
    found = attachment_parts(sample_message(attachments=[pickup.Attachment("說明.txt", big5)]))
    part = found["說明.txt"]
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_param("charset") is None
    assert part.get_content() == big5


def test_binary_attachment_has_no_charset():
    found = attachment_parts(sample_message(attachments=[pickup.Attachment("報表.pdf", b"%PDF-1.4\xff")]))
    assert found["報表.pdf"].get_content_type() == "application/pdf"
    assert found["報表.pdf"].get_param("charset") is None


def test_ascii_attachment_name_in_content_type():
    message = sample_message(attachments=[pickup.Attachment("notes.txt", b"plain\n")])
    content_type = b"".join(written_header(message.get_payload()[1], b"Content-Type"))
    assert b'name="notes.txt"' in content_type
    assert attachment_parts(message)["notes.txt"]["Content-Type"].params["name"] == "notes.txt"


@pytest.mark.parametrize("filename", ["說明.txt", "報表.pdf", "很長的檔案名稱" * 6 + ".xlsx", "Résumé.docx"],
                         ids=["text", "pdf", "folded", "latin"])
def test_content_type_name_encoded_word(filename):
    message = sample_message(attachments=[pickup.Attachment(filename, b"data")])
    assert message.as_bytes(policy=pickup.MESSAGE_POLICY).isascii()
    content_type = written_header(message.get_payload()[1], b"Content-Type")
    assert content_type[1].startswith(b' name="=?utf-8?b?')
    assert content_type[-1].endswith(b'?="')
    assert b"name*" not in b"".join(content_type)
    for line in content_type[1:]:
        assert len(line) <= 78
    assert b"filename*" in b"".join(written_header(message.get_payload()[1], b"Content-Disposition"))
    part = attachment_parts(message)[filename]
    assert part["Content-Type"].params["name"] == filename
    assert part.get_payload(decode=True) == b"data"


def test_encoded_name_survives_deepcopy():
    message = sample_message(attachments=[pickup.Attachment("說明.txt", "內容\n".encode())])
    copied = copy.deepcopy(message)
    assert copied.as_bytes(policy=pickup.MESSAGE_POLICY) == message.as_bytes(policy=pickup.MESSAGE_POLICY)


def test_subject_leading_spaces_are_written():
    # The writer keeps them. The email package's parsers drop white space at the start of
    # any header value when they read it back, which is what the assert below shows.
    data = sample_message(subject="  indented").as_bytes(policy=pickup.MESSAGE_POLICY)
    assert b"\r\nSubject:   indented\r\n" in data
    assert email.message_from_bytes(data, policy=email.policy.default)["Subject"] == "indented"
