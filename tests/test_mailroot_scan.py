"""The mailroot inventory and its summaries, on the sample mailroot and on trees built here."""

import base64
import binascii
import hashlib
import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

import adminkb.cli
from adminkb import mailroot, mailroot_read, mailroot_scan, pickup
from adminkb.errors import InputError
from adminkb.lab import FixedClock, MailLab
from adminkb.mailroot_scan import badmail_reasons, folder_summary, scan_mailroot, stuck_domains

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "mailroot_sample"
NOW = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def sample(tmp_path, monkeypatch):
    """A copy of the sample mailroot whose files were modified 1 hour before NOW, Queue files 2 days before."""
    monkeypatch.setenv("ADMINKB_LANG", "en")
    root = tmp_path / "mailroot"
    shutil.copytree(SAMPLE, root)
    for path in root.rglob("*"):
        if path.is_file():
            age = timedelta(days=2) if path.parent.name == "Queue" else timedelta(hours=1)
            stamp = (NOW - age).timestamp()
            os.utime(path, (stamp, stamp))
    oldest = root / "Queue" / "NTFS_00a1b2c301dca9e200000001.EML"
    stamp = (NOW - timedelta(days=3, hours=4)).timestamp()
    os.utime(oldest, (stamp, stamp))
    return root


def deny_listing(monkeypatch, folder_name):
    """Make os.scandir in the scan fail with "Permission denied" for folders called `folder_name`."""
    real_scandir = os.scandir

    def denied_scandir(path):
        if str(path).endswith(folder_name):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(mailroot_scan.os, "scandir", denied_scandir)


def row_of(inventory, name):
    matches = inventory[inventory["name"] == name]
    assert len(matches) == 1, f"{name} appears {len(matches)} times"
    return matches.iloc[0]


def snapshot(root):
    return {str(path.relative_to(root)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in root.rglob("*") if path.is_file()}


def test_every_file_has_a_row(sample):
    inventory = scan_mailroot(sample, now=NOW)
    assert list(inventory.columns) == list(mailroot_scan.COLUMNS)
    assert len(inventory) == 16
    assert inventory["role"].tolist()[:8] == ["Badmail"] * 8
    assert set(inventory["role"]) == {"Badmail", "Drop", "Pickup", "Queue", "Mailbox"}


def test_scan_leaves_tree_unchanged(sample):
    before = snapshot(sample)
    scan_mailroot(sample, now=NOW)
    assert snapshot(sample) == before


def test_envelope_and_big5_subject(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_00a1b2c301dca9e200000001.EML")
    assert row["role"] == "Queue"
    assert row["kind"] == "message"
    assert row["sender"] == "orders@example.com"
    assert row["recipients"] == ["buyer@example.net", "audit@partner.example.net"]
    # 碁 exists only in cp950, not in Python's big5 codec.
    assert row["subject"] == "訂單通知：碁峰"
    assert row["from"] == "orders@example.com"
    assert row["to"] == "buyer@example.net"
    assert row["date"] == "Mon, 2 Mar 2026 09:15:07 +0800"
    assert row["message_id"] == "<order-1001@example.com>"
    assert row["notes"] == ""


def test_age_and_modified_time(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_00a1b2c301dca9e200000001.EML")
    assert row["age"] == pd.Timedelta(days=3, hours=4)
    assert row["modified"] == pd.Timestamp(NOW - timedelta(days=3, hours=4))


def test_adjacent_encoded_words_join(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_00d1b2c301dca9e200000004.EML")
    assert row["subject"] == "會議通知"
    assert row["from"] == "李大華 <partner@example.net>"


def test_raw_cp950_header_is_noted(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_00e1b2c301dca9e200000005.EML")
    assert row["subject"] == "舊系統通知"
    assert "unencoded Big5" in row["notes"]


def test_malformed_encoded_word_is_kept(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_01d1b2c301dca9e200000009.BAD")
    assert row["subject"] == "=?big5?B?not*base64?= broken"
    assert "invalid RFC 2047 encoded word =?big5?B?not*base64?=" in row["notes"]


def test_empty_file_is_noted(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_00c1b2c301dca9e200000003.EML")
    assert row["size"] == 0
    assert row["notes"] == "empty file (0 bytes)"


def test_file_that_is_not_mail(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "notes.txt")
    assert row["role"] == "Pickup"
    assert row["kind"] == "other"
    assert "not a mail message" in row["notes"]


def test_pickup_file_without_envelope(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "3f2504e0-4f89-41d3-9a0c-0305e82c3301.eml")
    assert row["sender"] == ""
    assert row["recipients"] == []
    assert row["to"] == "visitor@example.net"
    assert row["notes"] == ""


def test_ansi_bdr_reason(sample):
    inventory = scan_mailroot(sample, now=NOW)
    reason = row_of(inventory, "NTFS_01a1b2c301dca9e200000006.BDR")
    assert reason["kind"] == "badmail_reason"
    assert reason["reason"] == "Unknown Error"
    assert reason["error_code"] == "0xC00402C7"
    assert reason["reason_sender"] == "orders@example.com"
    bad = row_of(inventory, "NTFS_01a1b2c301dca9e200000006.BAD")
    assert bad["reason"] == "Unknown Error"
    assert bad["error_code"] == "0xC00402C7"
    assert bad["subject"] == "Invoice 42"
    envelope = row_of(inventory, "NTFS_01a1b2c301dca9e200000006.BDP")
    assert envelope["kind"] == "badmail_envelope"
    assert envelope["size"] == 64
    assert envelope["notes"] == ""


def test_utf16_bdr_reason(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_01b1b2c301dca9e200000007.BDR")
    assert row["reason"] == "Unknown Error"
    assert row["error_code"] == "0xC00402C7"
    assert row["reason_sender"] == "<>"


def test_orphan_bdr_is_noted(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_01c1b2c301dca9e200000008.BDR")
    assert "orphan .BDR" in row["notes"]
    assert row["reason"] == "Unknown Error"


def test_mailbox_owner(sample):
    row = row_of(scan_mailroot(sample, now=NOW), "NTFS_02a1b2c301dca9e20000000a.eml")
    assert row["role"] == "Mailbox"
    assert row["mailbox_domain"] == "example.com"
    assert row["mailbox_user"] == "user"


def test_bdr_in_unknown_format(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Badmail").mkdir()
    (tmp_path / "Badmail" / "NTFS_000000000000000000000001.BAD").write_bytes(b"Subject: x\r\n\r\n")
    (tmp_path / "Badmail" / "NTFS_000000000000000000000001.BDR").write_bytes(b"something else entirely")
    row = row_of(scan_mailroot(tmp_path, now=NOW), "NTFS_000000000000000000000001.BDR")
    assert "no reason text or error code" in row["notes"]


def test_ansi_encoding_option(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Badmail").mkdir()
    text = 'Unable to deliver this message because the follow error was encountered: "Café".\r\n'
    (tmp_path / "Badmail" / "a.BDR").write_bytes(text.encode("cp1252"))
    row = row_of(scan_mailroot(tmp_path, now=NOW, ansi_encoding="cp1252"), "a.BDR")
    assert row["reason"] == "Café"


def test_unreadable_file_is_noted(sample, monkeypatch):
    real_open = mailroot_read._open_read_only

    def denied_open(path):
        if Path(path).name == "NTFS_00b1b2c301dca9e200000002.EML":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    monkeypatch.setattr(mailroot_read, "_open_read_only", denied_open)
    inventory = scan_mailroot(sample, now=NOW)
    row = row_of(inventory, "NTFS_00b1b2c301dca9e200000002.EML")
    assert row["notes"] == "cannot be read: Permission denied"
    assert row["size"] == 230
    assert len(inventory) == 16


def test_overlong_header_is_noted(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Queue").mkdir()
    long_header = b"X-Sender: a@example.com\r\nX-Receiver: b@example.net\r\nSubject: " + b"x" * (300 * 1024)
    (tmp_path / "Queue" / "long.EML").write_bytes(long_header + b"\r\n\r\nbody\r\n")
    row = row_of(scan_mailroot(tmp_path, now=NOW), "long.EML")
    assert row["sender"] == "a@example.com"
    assert "longer than 262144 bytes" in row["notes"]


def test_header_just_over_limit_is_noted(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Queue").mkdir()
    # Ends inside the last read chunk, a little past the limit.
    header = b"X-Sender: a@example.com\r\nSubject: " + b"x" * (mailroot_read.MAX_HEADER_BYTES + 1800)
    (tmp_path / "Queue" / "long.EML").write_bytes(header + b"\r\n\r\nbody\r\n")
    row = row_of(scan_mailroot(tmp_path, now=NOW), "long.EML")
    assert "longer than 262144 bytes" in row["notes"]
    assert len(row["subject"]) < mailroot_read.MAX_HEADER_BYTES


def test_header_at_limit_is_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Queue").mkdir()
    start = b"X-Sender: a@example.com\r\nSubject: "
    header = start + b"x" * (mailroot_read.MAX_HEADER_BYTES - len(start))
    (tmp_path / "Queue" / "limit.EML").write_bytes(header + b"\r\n\r\nbody\r\n")
    row = row_of(scan_mailroot(tmp_path, now=NOW), "limit.EML")
    assert row["notes"] == ""
    assert len(row["subject"]) == mailroot_read.MAX_HEADER_BYTES - len(start)


def scan_one_queue_file(root, headers):
    """Write one Queue file with an envelope and `headers`, scan the tree and return that file's row."""
    (root / "Queue").mkdir(exist_ok=True)
    content = b"X-Sender: a@example.com\r\nX-Receiver: b@example.net\r\n" + headers + b"\r\n\r\nbody\r\n"
    (root / "Queue" / "charset.EML").write_bytes(content)
    return row_of(scan_mailroot(root, now=NOW), "charset.EML")


def test_undecodable_header_shown_as_latin1(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    # 0xE9 followed by a space is no cp950 character, and neither byte run is UTF-8.
    raw = b"R\xe9sum\xe9 \xff\xfe"
    with pytest.raises(UnicodeDecodeError):
        raw.decode("cp950")
    row = scan_one_queue_file(tmp_path, b"From: a@example.com\r\nSubject: " + raw)
    assert row["subject"] == "R\u00e9sum\u00e9 \u00ff\u00fe"
    assert row["from"] == "a@example.com"
    assert row["notes"] == "a header contains bytes that are neither UTF-8 nor cp950, shown as Latin-1"


def test_unknown_charset_word_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    row = scan_one_queue_file(tmp_path, b"Subject: =?x-unknown?B?YWJj?= report")
    assert row["subject"] == "=?x-unknown?B?YWJj?= report"
    assert row["notes"] == "invalid RFC 2047 encoded word =?x-unknown?B?YWJj?=, kept as it is"


@pytest.mark.parametrize("charset, encoding, text", [
    ("gb2312", "B", "中文报表"),
    ("GB18030", "B", "简体中文"),
    ("iso-2022-jp", "B", "テスト"),
    ("shift_jis", "B", "日本語"),
    ("euc-kr", "B", "한국어"),
    ("iso-8859-1", "Q", "Café"),
    ("windows-1252", "Q", "naïve €5"),
])
def test_other_charset_words_decode(tmp_path, monkeypatch, charset, encoding, text):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    encoded = text.encode(charset)
    if encoding == "B":
        payload = base64.b64encode(encoded)
    else:
        payload = binascii.b2a_qp(encoded, header=True)
    word = b"=?" + charset.encode("ascii") + b"?" + encoding.encode("ascii") + b"?" + payload + b"?="
    row = scan_one_queue_file(tmp_path, b"Subject: " + word)
    assert row["subject"] == text
    assert row["notes"] == ""


@pytest.mark.parametrize("header, subject, notes", [
    # UTF-7 can spell a lone surrogate, which no output (Arrow, JSON, a console) can encode.
    (b"Subject: =?utf-7?Q?+2AA-?=", "=?utf-7?Q?+2AA-?=",
     "invalid RFC 2047 encoded word =?utf-7?Q?+2AA-?=, kept as it is"),
    ("Subject: 回覆: =?utf-8?B?5ris6Kmm?=".encode(), "回覆: 測試", ""),
    # 測 is E6 B8 AC in UTF-8; the first word carries E6 B8, the second AC and all of 試.
    (b"Subject: =?UTF-8?B?5rg=?= =?UTF-8?B?rOippg==?=", "測試", ""),
    # A malformed word keeps the white space on both sides.
    (b"Subject: =?utf-8?B?5ris?= =?utf-8?B?@@@?= =?utf-8?B?6Kmm?=", "測 =?utf-8?B?@@@?= 試",
     "invalid RFC 2047 encoded word =?utf-8?B?@@@?=, kept as it is"),
], ids=["utf7-surrogate", "beside-raw-utf8", "split-character", "malformed-middle"])
def test_encoded_word_edge_cases(tmp_path, monkeypatch, header, subject, notes):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    row = scan_one_queue_file(tmp_path, header)
    assert row["subject"] == subject
    assert row["notes"] == notes


def test_missing_root_is_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        scan_mailroot(tmp_path / "absent")
    assert caught.value.exit_status == 2
    assert "does not exist" in str(caught.value)


def test_unknown_encoding_is_input_error(tmp_path, monkeypatch):
    mailroot.create_mailroot(tmp_path)
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        scan_mailroot(tmp_path, ansi_encoding="no-such-codepage")
    assert "no-such-codepage" in str(caught.value)


@pytest.mark.parametrize("codec", ["rot13", "hex", "base64", "zlib", "idna"])
def test_non_text_encoding_is_input_error(tmp_path, monkeypatch, codec):
    mailroot.create_mailroot(tmp_path)
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        scan_mailroot(tmp_path, ansi_encoding=codec)
    assert f'"{codec}" is unknown' in str(caught.value)


def test_unreadable_root_is_input_error(tmp_path, monkeypatch):
    mailroot.create_mailroot(tmp_path)
    monkeypatch.setenv("ADMINKB_LANG", "en")

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(InputError) as caught:
        scan_mailroot(tmp_path)
    assert f"Cannot list the mailroot folder {tmp_path}" in str(caught.value)
    assert "Permission denied" in str(caught.value)
    assert "Run as an account that can read it" in str(caught.value)


@pytest.mark.parametrize("workers", [2.5, "2", True])
def test_workers_of_wrong_type_rejected(sample, workers):
    with pytest.raises(ValueError, match="invalid workers value"):
        scan_mailroot(sample, workers=workers)


@pytest.mark.parametrize("command", ["scan", "summary"])
def test_cli_reports_unlisted_folder(tmp_path, cli, capsys, monkeypatch, command):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    mailroot.create_mailroot(tmp_path)
    clean = b"X-Sender: a@example.com\r\nX-Receiver: b@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    (tmp_path / "Drop" / "a.eml").write_bytes(clean)
    (tmp_path / "Pickup" / "b.eml").write_bytes(clean)
    arguments = ["mailroot", command, str(tmp_path), "--format", "json", "--no-progress"]
    assert cli(arguments) == 0
    assert "could not be listed" not in capsys.readouterr().err
    deny_listing(monkeypatch, "Drop")
    status = cli(arguments)
    captured = capsys.readouterr()
    assert status == 1
    assert "these folders could not be listed" in captured.err
    assert captured.err.rstrip().endswith("Drop")


def test_unlisted_folders_in_frame_attrs(sample, monkeypatch):
    deny_listing(monkeypatch, "Drop")
    assert scan_mailroot(sample, now=NOW).attrs["unlisted_folders"] == ["Drop"]
    monkeypatch.undo()
    assert scan_mailroot(sample, now=NOW).attrs["unlisted_folders"] == []


def test_progress_bar_on_request(sample, capsys):
    scan_mailroot(sample, now=NOW, progress=True)
    assert "Scanning mailroot" in capsys.readouterr().err


def test_no_progress_bar_on_small_tree(sample, capsys):
    scan_mailroot(sample, now=NOW)
    assert capsys.readouterr().err == ""


def test_folder_summary(sample):
    summary = folder_summary(scan_mailroot(sample, now=NOW)).set_index("role")
    assert summary.index.tolist() == ["Badmail", "Drop", "Pickup", "Queue", "Route", "SortTemp", "Mailbox"]
    assert summary.loc["Queue", "messages"] == 3
    assert summary.loc["Queue", "oldest_age"] == pd.Timedelta(days=3, hours=4)
    assert summary.loc["Badmail", "messages"] == 3
    assert summary.loc["Drop", "messages"] == 2
    assert summary.loc["Route", "messages"] == 0
    assert pd.isna(summary.loc["Route", "oldest_age"])


def test_folder_summary_skips_files_that_are_not_mail(sample):
    (sample / "Queue" / "desktop.ini").write_bytes(b"[.ShellClassInfo]\r\nIconResource=x\r\n")
    (sample / "Queue" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
    (sample / "Drop" / "empty").write_bytes(b"")
    (sample / "Pickup" / "from-app.txt").write_bytes(b"X-Receiver: user@example.net\r\nSubject: x\r\n\r\nbody\r\n")
    summary = folder_summary(scan_mailroot(sample, now=NOW)).set_index("role")
    assert summary.loc["Queue", "messages"] == 3
    assert summary.loc["Drop", "messages"] == 2
    # A file without the .eml suffix still counts when it has an envelope.
    assert summary.loc["Pickup", "messages"] == 2


def test_same_note_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Queue").mkdir()
    raw = "From: 王小明 <a@example.com>\r\nSubject: 會議通知\r\n\r\nbody\r\n".encode("cp950")
    (tmp_path / "Queue" / "raw.EML").write_bytes(b"X-Receiver: b@example.net\r\n" + raw)
    row = row_of(scan_mailroot(tmp_path, now=NOW), "raw.EML")
    assert row["subject"] == "會議通知"
    assert row["notes"] == "a header contains unencoded Big5 (cp950) text"


def test_unreadable_bdr_reason_labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Badmail").mkdir()
    (tmp_path / "Badmail" / "a.BDR").write_bytes(b"")
    (tmp_path / "Badmail" / "b.BDR").write_bytes(b"garbage")
    (tmp_path / "Badmail" / "c.BDR").write_bytes(b"The specific error code was 0xC00402C7.")
    real_open = mailroot_read._open_read_only

    def denied_open(path):
        if path.endswith("c.BDR"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path)

    monkeypatch.setattr(mailroot_read, "_open_read_only", denied_open)
    reasons = badmail_reasons(scan_mailroot(tmp_path, now=NOW))
    assert reasons.to_dict("records") == [
        {"reason": "(the .BDR is empty, could not be read, or is in a layout that was not recognised)",
         "error_code": "", "count": 3}]


def test_stuck_domains(sample):
    domains = stuck_domains(scan_mailroot(sample, now=NOW))
    assert domains["domain"].tolist() == ["example.net", "partner.example.net"]
    assert domains["messages"].tolist() == [2, 1]
    assert domains["oldest_age"].tolist() == [pd.Timedelta(days=3, hours=4)] * 2


def test_stuck_domains_count_recipients_and_messages(tmp_path):
    (tmp_path / "Queue").mkdir()
    envelope = {"one.EML": ["a@Example.NET", "b@example.net.", "localuser"], "two.EML": ["c@example.net"],
                "three.EML": ["d@partner.example.org"]}
    for name, recipients in envelope.items():
        lines = "".join(f"X-Receiver: {address}\r\n" for address in recipients)
        (tmp_path / "Queue" / name).write_bytes(f"X-Sender: s@example.com\r\n{lines}Subject: x\r\n\r\nbody\r\n".encode())
    for age, name in ((5, "one.EML"), (2, "two.EML"), (1, "three.EML")):
        stamp = (NOW - timedelta(hours=age)).timestamp()
        os.utime(tmp_path / "Queue" / name, (stamp, stamp))
    domains = stuck_domains(scan_mailroot(tmp_path, now=NOW)).to_dict("records")
    # Domains ignore case and a trailing dot; an address without "@" counts as its own destination.
    assert domains == [
        {"domain": "example.net", "messages": 2, "recipients": 3, "oldest_age": pd.Timedelta(hours=5)},
        {"domain": "localuser", "messages": 1, "recipients": 1, "oldest_age": pd.Timedelta(hours=5)},
        {"domain": "partner.example.org", "messages": 1, "recipients": 1, "oldest_age": pd.Timedelta(hours=1)}]


def _pool_other_than_system():
    import pyarrow as pa

    for make in (pa.mimalloc_memory_pool, pa.jemalloc_memory_pool):
        try:
            return make()
        except NotImplementedError:
            continue
    pytest.skip("this pyarrow has no allocator besides the system one")


def test_scan_restores_the_arrow_memory_pool(sample):
    import pyarrow as pa

    original = pa.default_memory_pool()
    chosen = _pool_other_than_system()
    pa.set_memory_pool(chosen)
    try:
        assert not scan_mailroot(sample, now=NOW).empty
        assert pa.default_memory_pool().backend_name == chosen.backend_name
        # An error inside the block restores the pool too.
        with pytest.raises(ZeroDivisionError):
            with mailroot_scan.system_memory_pool():
                assert pa.default_memory_pool().backend_name == "system"
                raise ZeroDivisionError
        assert pa.default_memory_pool().backend_name == chosen.backend_name
    finally:
        pa.set_memory_pool(original)


def test_badmail_reasons(sample):
    reasons = badmail_reasons(scan_mailroot(sample, now=NOW))
    assert reasons.to_dict(orient="records") == [{"reason": "Unknown Error", "error_code": "0xC00402C7", "count": 4}]


def test_empty_mailroot_summaries(tmp_path):
    mailroot.create_mailroot(tmp_path)
    inventory = scan_mailroot(tmp_path, now=NOW)
    assert inventory.empty
    assert folder_summary(inventory)["messages"].sum() == 0
    assert stuck_domains(inventory).empty
    assert badmail_reasons(inventory).empty


def test_scan_of_lab_mailroot(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(NOW), pickup_interval=None) as lab:
        message = pickup.compose_message(("王小明", "app@example.com"), ["partner@example.net"], "月報", "body\n")
        pickup.write_pickup_file(lab.pickup_dir, message)
        lab.process_pickup()
        inventory = scan_mailroot(lab.mailroot, now=NOW)
    row = inventory[inventory["role"] == "Queue"].iloc[0]
    assert row["subject"] == "月報"
    assert row["from"] == "王小明 <app@example.com>"
    assert row["recipients"] == ["partner@example.net"]


# The command line.

@pytest.fixture
def cli():
    return adminkb.cli.main


def test_cli_scan_table(sample, cli, capsys):
    status = cli(["mailroot", "scan", str(sample), "--no-progress"])
    output = capsys.readouterr().out
    assert status == 1
    assert "16 files" in output
    assert "訂單通知：碁峰" in output


def test_cli_scan_json(sample, cli, capsys):
    status = cli(["mailroot", "scan", str(sample), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert len(document["files"]) == 16
    queued = [entry for entry in document["files"] if entry["name"] == "NTFS_00a1b2c301dca9e200000001.EML"][0]
    assert queued["recipients"] == "buyer@example.net\naudit@partner.example.net"
    assert queued["subject"] == "訂單通知：碁峰"


def test_cli_scan_csv_has_bom(sample, cli, capsys):
    cli(["mailroot", "scan", str(sample), "--format", "csv"])
    output = capsys.readouterr().out
    assert output.startswith("\ufeffrole,path,name,kind,size")
    assert output.count("\r\n") == 17


def test_cli_scan_clean_tree_exits_zero(tmp_path, cli, capsys):
    (tmp_path / "Drop").mkdir()
    (tmp_path / "Drop" / "a.EML").write_bytes(b"X-Sender: a@example.net\r\nX-Receiver: b@example.com\r\nSubject: ok\r\n\r\n")
    assert cli(["mailroot", "scan", str(tmp_path)]) == 0


def test_cli_missing_path_exits_two(tmp_path, cli, capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert cli(["mailroot", "scan", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_summary_table(sample, cli, capsys):
    status = cli(["mailroot", "summary", str(sample)])
    output = capsys.readouterr().out
    assert status == 1
    assert "Messages in each folder" in output
    assert "partner.example.net" in output
    assert "Unknown Error" in output


def test_cli_summary_json(sample, cli, capsys):
    cli(["mailroot", "summary", str(sample), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    folders = {entry["role"]: entry["messages"] for entry in document["folders"]}
    assert folders["Queue"] == 3
    assert document["badmail_reasons"][0]["count"] == 4
    assert document["stuck_domains"][0]["domain"] == "example.net"


def test_cli_summary_empty_exits_zero(tmp_path, cli, capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    mailroot.create_mailroot(tmp_path)
    assert cli(["mailroot", "summary", str(tmp_path)]) == 0
    assert "（無）" in capsys.readouterr().out


def test_scan_rejects_folder_without_mailroot_folders(tmp_path):
    (tmp_path / "etc").mkdir()
    with pytest.raises(InputError) as caught:
        scan_mailroot(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_cli_summary_of_non_mailroot_exits_2(tmp_path, cli, capsys):
    assert cli(["mailroot", "summary", str(tmp_path)]) == 2


def test_name_not_utf8_is_noted(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    queue = tmp_path / "Queue"
    queue.mkdir()
    raw_name = os.fsencode(str(queue)) + b"/bad\xffname.EML"
    with open(raw_name, "wb") as handle:
        handle.write(b"X-Sender: a@example.com\r\nX-Receiver: b@example.net\r\n\r\nSubject: x\r\n\r\nbody\r\n")
    frame = scan_mailroot(tmp_path, progress=False)
    assert frame["name"].tolist() == ["bad\\xffname.EML"]
    assert "not UTF-8" in frame["notes"].iloc[0]


def test_names_not_utf8_keep_badmail_sets_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    badmail = os.fsencode(str(tmp_path / "Badmail"))
    os.mkdir(badmail)
    for byte, reason in ((b"\xff", "Reason FF."), (b"\xfe", "Reason FE.")):
        with open(badmail + b"/M" + byte + b".BAD", "wb") as handle:
            handle.write(b"X-Sender: a@example.com\r\nX-Receiver: b@example.net\r\nSubject: x\r\n\r\nbody\r\n")
        with open(badmail + b"/M" + byte + b".BDR", "wb") as handle:
            handle.write(f"Unable to deliver this message because the follow error was encountered: "
                         f"\"{reason}\".\r\n\r\nThe specific error code was 0xC00402C7.\r\n".encode("cp950"))
    frame = scan_mailroot(tmp_path, now=NOW).set_index("name")
    assert frame.index.is_unique
    assert frame.loc["M\\xff.BAD", "reason"] == "Reason FF."
    assert frame.loc["M\\xfe.BAD", "reason"] == "Reason FE."


def test_equal_recipient_lists_stay_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Queue").mkdir()
    for number in range(3):
        (tmp_path / "Queue" / f"m{number}.EML").write_bytes(
            f"X-Sender: a@example.com\r\nX-Receiver: b{number}@example.net\r\nX-Receiver: c@example.net\r\n"
            f"Subject: s{number}\r\n\r\nbody\r\n".encode())
    inventory = scan_mailroot(tmp_path, now=NOW)
    assert inventory["recipients"].tolist() == [[f"b{number}@example.net", "c@example.net"] for number in range(3)]
    assert inventory["subject"].tolist() == ["s0", "s1", "s2"]


def test_bdr_surrogate_from_chosen_codec(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "Badmail").mkdir()
    (tmp_path / "Badmail" / "a.BDR").write_bytes(
        b"Unable to deliver this message because the follow error was encountered: \"x +2AA- y\".\r\n"
        b"The specific error code was 0xC00402C7.\r\n")
    row = row_of(scan_mailroot(tmp_path, now=NOW, ansi_encoding="utf-7"), "a.BDR")
    assert row["error_code"] == "0xC00402C7"
    assert row["reason"] == "x ? y"


def test_two_bracketed_addresses_read_alike(tmp_path):
    (tmp_path / "Queue").mkdir()
    data = b"X-Sender: a@example.com\r\nX-Receiver: <good@example.net> <evil@example.net>\r\nSubject: x\r\n\r\nbody\r\n"
    (tmp_path / "Queue" / "two.EML").write_bytes(data)
    _sender, recipients, _offset = mailroot.split_envelope(data)
    # Neither address is chosen silently, and the inventory shows what delivery would use.
    assert recipients == ["good@example.net> <evil@example.net"]
    assert row_of(scan_mailroot(tmp_path, now=NOW), "two.EML")["recipients"] == recipients
