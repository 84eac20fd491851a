"""The mailroot module: folder names and roles, NTFS_ file names, envelope lines, atomic writes."""

from datetime import datetime, timedelta, timezone

import pytest

from adminkb import mailroot
from adminkb.errors import InputError


def test_folder_names_are_the_services():
    assert mailroot.FOLDER_NAMES == ("Badmail", "Drop", "Pickup", "Queue", "Route", "SortTemp", "Mailbox")


def test_folder_role_in_zh_tw(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    assert "本機網域" in mailroot.folder_role("Drop")
    assert "轉送" in mailroot.folder_role("pickup")


def test_folder_role_in_english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert mailroot.folder_role("BADMAIL").startswith("Messages that could not be delivered")


def test_every_folder_has_a_role(monkeypatch):
    for language in ("zh-TW", "en"):
        monkeypatch.setenv("ADMINKB_LANG", language)
        roles = [mailroot.folder_role(name) for name in mailroot.FOLDER_NAMES]
        assert all(roles)
        assert len(set(roles)) == len(roles)


def test_unknown_folder_is_input_error(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        mailroot.folder_role("Outbox")
    assert caught.value.value == "Outbox"
    assert "Badmail, Drop, Pickup" in str(caught.value)


def test_create_mailroot_makes_every_folder(tmp_path):
    root = mailroot.create_mailroot(tmp_path / "mailroot")
    assert sorted(path.name for path in root.iterdir()) == sorted(mailroot.FOLDER_NAMES)
    (root / "Drop" / "keep.EML").write_bytes(b"x")
    mailroot.create_mailroot(root)
    assert (root / "Drop" / "keep.EML").read_bytes() == b"x"


def test_create_mailroot_on_a_file_is_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    target = tmp_path / "mailroot"
    target.write_text("not a folder")
    with pytest.raises(InputError) as caught:
        mailroot.create_mailroot(target)
    assert "is a file, not a folder" in str(caught.value)
    assert caught.value.exit_status == 2


def test_filetime_matches_a_service_header():
    # X-OriginalArrivalTime: 02 Oct 2008 14:18:52.0941 (UTC) FILETIME=[CC16C3D0:01C92499]
    instant = datetime(2008, 10, 2, 14, 18, 52, 941000, tzinfo=timezone.utc)
    filetime = mailroot.filetime_from_datetime(instant)
    assert filetime & 0xFFFFFFFF == 0xCC16C3D0
    assert filetime >> 32 == 0x01C92499


def test_filetime_of_local_time_equals_utc():
    utc = datetime(2026, 3, 2, 1, 15, 7, tzinfo=timezone.utc)
    taipei = utc.astimezone(timezone(timedelta(hours=8)))
    assert mailroot.filetime_from_datetime(taipei) == mailroot.filetime_from_datetime(utc)


def test_filetime_needs_aware_datetime():
    with pytest.raises(ValueError):
        mailroot.filetime_from_datetime(datetime(2026, 3, 2))


def test_ntfs_file_name_layout():
    name = mailroot.ntfs_file_name(0x01DCA9E201AB9F80, 0x1E05)
    assert name == "NTFS_01ab9f8001dca9e200001e05.EML"
    assert mailroot.is_ntfs_file_name(name)


def test_ntfs_file_name_pattern():
    assert mailroot.is_ntfs_file_name("NTFS_e0a8e1ad01c5a4b800000001.eml")
    assert not mailroot.is_ntfs_file_name("NTFS_e0a8e1ad01c5a4b8000001.EML")
    assert not mailroot.is_ntfs_file_name("NTFS_e0a8e1ad01c5a4b80000000g.EML")
    assert not mailroot.is_ntfs_file_name("3f2504e0-4f89-11d3-9a0c-0305e82c3301.eml")


def test_envelope_lines_have_crlf():
    lines = mailroot.envelope_lines("web@example.net", ["a@example.com", "b@example.com"])
    assert lines == b"X-Sender: web@example.net\r\nX-Receiver: a@example.com\r\nX-Receiver: b@example.com\r\n"


def test_null_sender_written_as_brackets():
    assert mailroot.envelope_lines("", ["a@example.com"]).startswith(b"X-Sender: <>\r\n")


def test_envelope_needs_recipients():
    with pytest.raises(InputError):
        mailroot.envelope_lines("web@example.net", [])


def test_line_break_in_address_is_input_error(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        mailroot.envelope_lines("web@example.net", ["a@example.com\r\nX-Receiver: evil@example.org"])
    assert "line break" in str(caught.value)
    assert "\\r\\n" in str(caught.value)


def test_write_message_file_content(tmp_path):
    content = b"Subject: test\r\n\r\nbody\r\n"
    path = mailroot.write_message_file(tmp_path, "NTFS_000000000000000000000001.EML", "web@example.net",
                                       ["user@example.com"], content)
    assert path == tmp_path / "NTFS_000000000000000000000001.EML"
    assert path.read_bytes() == (b"X-Sender: web@example.net\r\nX-Receiver: user@example.com\r\n" + content)


def test_write_message_file_leaves_no_temporary(tmp_path):
    mailroot.write_message_file(tmp_path, "one.EML", "a@example.net", ["b@example.com"], b"x\r\n")
    assert [path.name for path in tmp_path.iterdir()] == ["one.EML"]


def test_write_message_file_never_overwrites(tmp_path):
    mailroot.write_message_file(tmp_path, "one.EML", "a@example.net", ["b@example.com"], b"first\r\n")
    with pytest.raises(FileExistsError):
        mailroot.write_message_file(tmp_path, "one.EML", "a@example.net", ["b@example.com"], b"second\r\n")
    assert (tmp_path / "one.EML").read_bytes().endswith(b"first\r\n")
    assert [path.name for path in tmp_path.iterdir()] == ["one.EML"]


@pytest.mark.parametrize("name", ["", "..", "sub/one.EML", "../one.EML"])
def test_write_message_file_rejects_paths(tmp_path, name):
    with pytest.raises(InputError):
        mailroot.write_message_file(tmp_path, name, "a@example.net", ["b@example.com"], b"x\r\n")


def test_write_message_file_keeps_bytes(tmp_path):
    content = "Subject: =?big5?B?pKSk5Q==?=\r\n\r\n中文內容\r\n".encode("cp950")
    path = mailroot.write_message_file(tmp_path, "big5.EML", "a@example.net", ["b@example.com"], content)
    assert path.read_bytes().endswith(content)


def test_default_windows_mailroot():
    assert str(mailroot.DEFAULT_WINDOWS_MAILROOT / "Pickup") == r"C:\inetpub\mailroot\Pickup"


def test_read_envelope_decodes_chinese_subject(tmp_path):
    content = ("Subject: =?utf-8?b?5ris6Kmm6YO15Lu2?=\r\nFrom: app@example.com\r\n\r\nbody\r\n").encode("ascii")
    path = mailroot.write_message_file(tmp_path, "NTFS_000000000000000000000001.EML", "app@example.com",
                                       ["a@example.net", "b@example.net"], content)
    sender, recipients, parsed = mailroot.read_envelope(path)
    assert sender == "app@example.com"
    assert recipients == ["a@example.net", "b@example.net"]
    assert parsed["Subject"] == "測試郵件"


def test_read_envelope_without_envelope_lines(tmp_path):
    path = tmp_path / "pickup.eml"
    path.write_bytes(b"From: app@example.com\r\nSubject: plain\r\n\r\nbody\r\n")
    sender, recipients, parsed = mailroot.read_envelope(path)
    assert sender is None
    assert recipients == []
    assert parsed["Subject"] == "plain"


def test_message_table_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    content = b"Subject: hello\r\n\r\nbody\r\n"
    path = mailroot.write_message_file(tmp_path, "a.eml", "app@example.com", ["x@example.net"], content)
    table = mailroot.message_table([path])
    assert list(table.columns) == ["File", "Size (bytes)", "Sender (X-Sender)", "Recipients (X-Receiver)", "Subject"]
    assert table.iloc[0].tolist() == ["a.eml", path.stat().st_size, "app@example.com", "x@example.net", "hello"]
