"""Archive and resubmit on real mailroot trees: dry runs, journals, bad input, faults and the lab."""

import email
import email.policy
import errno
import json
import os
import shutil
import zipfile
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from adminkb import mailroot, mailroot_ops, pickup
from adminkb.cli import main
from adminkb.errors import InputError
from adminkb.lab import FixedClock, MailLab
from adminkb.lab.pickup import parse_pickup_file
from clirun import run_area

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "mailroot_sample"
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=40)
YOUNG = NOW - timedelta(days=2)


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")


@pytest.fixture
def root(tmp_path):
    """A copy of the sample mailroot whose Badmail files are 40 days old, except one young triple."""
    copy = tmp_path / "mailroot"
    shutil.copytree(SAMPLE, copy)
    for path in (copy / "Badmail").iterdir():
        stamp = (YOUNG if "01d1" in path.name else OLD).timestamp()
        os.utime(path, (stamp, stamp))
    return copy


@pytest.fixture
def journals(tmp_path):
    return tmp_path / "journals"


def tree(folder):
    """Return {relative path: bytes} for every file under `folder`."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def journal_events(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ndr_for(original: EmailMessage, failed=("gone@example.net",), delivered=("ok@example.net",)) -> bytes:
    """Build a delivery status notification (RFC 3464) in the service's layout that carries `original`."""
    boundary = b"9B095B5ADSN=_01D1A2B3C4D5E6F7MAIL01"
    status = [b"Reporting-MTA: dns;mail.example.com", b"Arrival-Date: Mon, 2 Mar 2026 09:00:01 +0800", b""]
    for address in failed:
        status += [b"Original-Recipient: rfc822;" + address.encode(), b"Final-Recipient: rfc822;" + address.encode(),
                   b"Action: failed", b"Status: 5.0.0", b""]
    for address in delivered:
        status += [b"Final-Recipient: rfc822;" + address.encode(), b"Action: delivered", b"Status: 2.0.0", b""]
    lines = [b"From: postmaster@mail.example.com", b"To: orders@example.com",
             b"Subject: Delivery Status Notification (Failure)", b"MIME-Version: 1.0",
             b'Content-Type: multipart/report; report-type=delivery-status; boundary="' + boundary + b'"', b"",
             b"This is a MIME-formatted message.", b"", b"--" + boundary,
             b"Content-Type: text/plain; charset=unicode-1-1-utf-7", b"",
             b"This is an automatically generated Delivery Status Notification.", b"", b"--" + boundary,
             b"Content-Type: message/delivery-status", b"", *status, b"--" + boundary,
             b"Content-Type: message/rfc822", b"", original.as_bytes(policy=pickup.MESSAGE_POLICY).rstrip(b"\r\n"),
             b"", b"--" + boundary + b"--", b""]
    return b"\r\n".join(lines)


def chinese_original() -> EmailMessage:
    return pickup.compose_message(("王小明", "orders@example.com"), ["gone@example.net", "ok@example.net"],
                                  "訂單通知：碁峰", "第一行\n.\n.hidden\n最後一行\n",
                                  date=datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc),
                                  message_id="<order-7@example.com>")


# Archive.

def test_archive_plan_changes_nothing(root):
    before = tree(root)
    plan = mailroot_ops.plan_archive(root, 30, now=NOW)
    assert tree(root) == before
    names = [Path(step.source).name for step in plan.steps]
    assert "NTFS_01a1b2c301dca9e200000006.BDP" in names
    assert not any("01d1" in name for name in names)
    assert plan.destination == root / "BadmailArchive" / "2026-03-20"
    assert list(plan.table().columns) == ["action", "source", "target", "size"]


def test_archive_keeps_partly_young_triple(root):
    stamp = YOUNG.timestamp()
    os.utime(root / "Badmail" / "NTFS_01a1b2c301dca9e200000006.BDR", (stamp, stamp))
    plan = mailroot_ops.plan_archive(root, 30, now=NOW)
    assert not any("01a1" in step.source for step in plan.steps)
    assert any("01b1" in step.source for step in plan.steps)


def test_archive_moves_files_with_journal(root, tmp_path, journals):
    before = tree(root / "Badmail")
    plan = mailroot_ops.plan_archive(root, 30, to=tmp_path / "archive", now=NOW)
    outcome = mailroot_ops.execute(plan, journals)
    archived = tree(tmp_path / "archive" / "2026-03-20")
    remaining = tree(root / "Badmail")
    assert outcome.done == len(plan.steps) == len(archived)
    assert set(remaining) == {"NTFS_01d1b2c301dca9e200000009.BAD", "NTFS_01d1b2c301dca9e200000009.BDR"}
    for name, data in before.items():
        assert (archived.get(name) or remaining.get(name)) == data
    events = journal_events(outcome.journal)
    assert events[0]["event"] == "plan"
    assert [event["step"] for event in events[1:-1]] == list(range(len(plan.steps)))
    assert events[-1] == {"event": "finished"}


def test_archive_into_zip(root, tmp_path, journals):
    before = tree(root / "Badmail")
    target = tmp_path / "badmail.zip"
    plan = mailroot_ops.plan_archive(root, 30, zip_file=target, now=NOW)
    mailroot_ops.execute(plan, journals)
    with zipfile.ZipFile(target) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    assert len(members) == 6
    for name, data in members.items():
        assert before[Path(name).name] == data
        assert not (root / name).exists()
    assert not target.with_name("badmail.zip.partial").exists()


def test_archive_nothing_old_enough(root, journals, capsys):
    assert run_area("mailroot", "archive", str(root), "--older-than", "400", "--confirm",
                    "--state-dir", str(journals)) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert not journals.exists()


def test_cli_archive_dry_run_then_confirm(root, journals, capsys):
    # The command measures ages from the real clock, so the young triple is made young today.
    for path in (root / "Badmail").glob("*01d1*"):
        os.utime(path)
    before = tree(root)
    assert run_area("mailroot", "archive", str(root), "--older-than", "30", "--state-dir", str(journals)) == 0
    output = capsys.readouterr().out
    assert "dry run" in output
    assert "NTFS_01a1b2c301dca9e200000006.BDP" in output
    assert tree(root) == before
    assert run_area("mailroot", "archive", str(root), "--older-than", "30", "--state-dir", str(journals),
                    "--confirm", "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["done"] == 6
    assert Path(document["journal"]).is_file()
    assert len(list((root / "Badmail").iterdir())) == 2


@pytest.mark.parametrize("arguments, key", [
    (("--older-than", "-1"), "mailroot_ops.bad_age"),
    (("--older-than", "nan"), "mailroot_ops.bad_age"),
])
def test_archive_bad_age(root, arguments, key):
    with pytest.raises(InputError) as raised:
        run_area("mailroot", "archive", str(root), *arguments)
    assert raised.value.key == key


def test_archive_missing_folder(tmp_path):
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(tmp_path / "absent", 30)
    assert raised.value.key == "mailroot.scan_root_missing"
    assert "absent" in str(raised.value)


def test_archive_without_badmail(tmp_path):
    (tmp_path / "Drop").mkdir()
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(tmp_path, 30)
    assert raised.value.key == "mailroot_ops.no_badmail"


def test_archive_queue_path_refused(root):
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root / "Queue", 30)
    assert raised.value.key == "mailroot_ops.queue_refused"
    assert "net stop smtpsvc" in str(raised.value)


def test_archive_existing_zip_kept(root, tmp_path):
    target = tmp_path / "old.zip"
    target.write_bytes(b"an earlier archive")
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, zip_file=target, now=NOW)
    assert raised.value.key == "mailroot_ops.target_exists"
    assert target.read_bytes() == b"an earlier archive"


def test_archive_name_taken_in_folder(root, tmp_path):
    taken = tmp_path / "archive" / "2026-03-20" / "NTFS_01b1b2c301dca9e200000007.BAD"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"someone else's file")
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, to=tmp_path / "archive", now=NOW)
    assert raised.value.key == "mailroot_ops.target_exists"
    assert taken.read_bytes() == b"someone else's file"


class FaultyFile:
    """A file object that writes `limit` bytes and then fails like a full disk."""

    def __init__(self, handle, limit):
        self.handle = handle
        self.limit = limit

    def write(self, data):
        if self.handle.tell() + len(data) > self.limit:
            self.handle.write(data[: max(0, self.limit - self.handle.tell())])
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def full_disk_for(monkeypatch, marker, limit=40):
    """Make files whose name contains `marker`, opened by mailroot_ops, fail after `limit` bytes."""
    def faulty_open(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        if marker in str(path) and "w" in mode:
            return FaultyFile(handle, limit)
        return handle
    monkeypatch.setattr(mailroot_ops, "open", faulty_open, raising=False)


def test_zip_full_disk_keeps_sources(root, tmp_path, journals, monkeypatch):
    before = tree(root)
    target = tmp_path / "badmail.zip"
    plan = mailroot_ops.plan_archive(root, 30, zip_file=target, now=NOW)
    full_disk_for(monkeypatch, ".partial")
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, journals)
    assert raised.value.key == "mailroot_ops.disk_full"
    assert tree(root) == before
    assert list(tmp_path.glob("badmail.zip*")) == []
    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    [journal] = mailroot_ops.unfinished_journals(root, "archive", journals)
    mailroot_ops.resume(journal)
    with zipfile.ZipFile(target) as archive:
        assert len(archive.namelist()) == 6


def test_journal_folder_unwritable(root, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    before = tree(root)
    plan = mailroot_ops.plan_archive(root, 30, now=NOW)
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, blocker / "journals")
    assert raised.value.key == "mailroot_ops.journal_failed"
    assert "No file was archived yet, so every original is still in Badmail." in str(raised.value)
    assert "another folder with --state-dir" in str(raised.value)
    assert tree(root) == before


def fail_nth_open(monkeypatch, marker, mode_letter, failing):
    """Make the `failing`-th open by mailroot_ops of a path containing `marker`, in a mode with `mode_letter`, fail with ENOSPC."""
    real_open = open
    count = 0

    def faulty_open(path, mode="r", *arguments, **options):
        nonlocal count
        if marker in str(path) and mode_letter in mode:
            count += 1
            if count == failing:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *arguments, **options)
    monkeypatch.setattr(mailroot_ops, "open", faulty_open, raising=False)


def cross_volume(monkeypatch, folder):
    """Make os.rename from outside `folder` into it fail with EXDEV, as if `folder` were on another volume."""
    real_rename = os.rename

    def rename(source, target):
        if str(target).startswith(str(folder)) and not str(source).startswith(str(folder)):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(source), None, str(target))
        return real_rename(source, target)
    monkeypatch.setattr(os, "rename", rename)


def archive_command(root, archive, journals):
    return ["mailroot", "archive", str(root), "--older-than", "30", "--to", str(archive), "--confirm",
            "--state-dir", str(journals)]


def test_journal_full_partway_then_rerun(root, tmp_path, journals, monkeypatch):
    archive = tmp_path / "archive"
    plan = mailroot_ops.plan_archive(root, 30, to=archive, now=NOW)
    # Appends after the plan line: "done" for steps 0, 1 and 2 work, the one for step 3 fails.
    fail_nth_open(monkeypatch, str(journals), "a", 4)
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, journals)
    text = str(raised.value)
    [journal] = journals.iterdir()
    assert raised.value.key == "mailroot_ops.journal_failed"
    assert f"Cannot write the operation journal {journal}" in text
    assert f"3 of 6 files were already archived to {plan.destination}" in text
    assert "the step that was running when it failed may be done as well" in text
    assert "with the same --state-dir" in text
    assert "no file is changed" not in text
    assert "another folder with --state-dir" not in text
    assert len(list(plan.destination.iterdir())) == 4

    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert run_area(*archive_command(root, archive, journals)) == 0
    assert len(list(plan.destination.iterdir())) == 6
    assert {path.name for path in (root / "Badmail").iterdir()} == {
        "NTFS_01d1b2c301dca9e200000009.BAD", "NTFS_01d1b2c301dca9e200000009.BDR"}
    assert mailroot_ops.unfinished_journals(root, "archive", journals) == []


@pytest.mark.parametrize("failing, archived", [(1, 0), (4, 3)])
def test_target_full_partway_then_rerun(root, tmp_path, journals, monkeypatch, failing, archived):
    archive = tmp_path / "archive"
    plan = mailroot_ops.plan_archive(root, 30, to=archive, now=NOW)
    cross_volume(monkeypatch, archive)
    fail_nth_open(monkeypatch, ".adminkb-copy-", "w", failing)
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, journals)
    text = str(raised.value)
    assert raised.value.key == "mailroot_ops.disk_full"
    assert "Every original is still in place" not in text
    assert "run the same command again, and it finishes the job from the journal" in text
    if archived:
        [journal] = journals.iterdir()
        assert f"{archived} of 6 files were already archived to {plan.destination}" in text
        assert f"The journal {journal} records which." in text
    else:
        assert "No file was archived yet, so every original is still in Badmail." in text
    assert len(list((root / "Badmail").iterdir())) == 8 - archived

    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert run_area(*archive_command(root, archive, journals)) == 0
    assert len(list(plan.destination.iterdir())) == 6
    assert len(list((root / "Badmail").iterdir())) == 2


def deny_removal(monkeypatch, folder):
    """Make Path.unlink of files in `folder` fail as in a read-only folder."""
    real_unlink = Path.unlink

    def unlink(path, missing_ok=False):
        if path.parent == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_unlink(path, missing_ok=missing_ok)
    monkeypatch.setattr(Path, "unlink", unlink)


@pytest.mark.parametrize("into_zip", [False, True])
def test_read_only_badmail_is_removal_failure(root, tmp_path, journals, monkeypatch, into_zip):
    archive = tmp_path / "archive"
    target = tmp_path / "badmail.zip"
    if into_zip:
        plan = mailroot_ops.plan_archive(root, 30, zip_file=target, now=NOW)
        copy = target
    else:
        plan = mailroot_ops.plan_archive(root, 30, to=archive, now=NOW)
        copy = plan.destination / plan.steps[0].target
        cross_volume(monkeypatch, archive)
    deny_removal(monkeypatch, root / "Badmail")
    before = tree(root)
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, journals)
    text = str(raised.value)
    assert raised.value.key == "mailroot_ops.remove_failed"
    assert f"Cannot remove the original {root / plan.steps[0].source} after copying it to {copy}" in text
    assert "Failed to write" not in text
    assert "may delete files in Badmail" in text
    assert tree(root) == before
    assert copy.is_file()

    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    [journal] = mailroot_ops.unfinished_journals(root, "archive", journals)
    assert mailroot_ops.resume(journal).done == 6
    assert len(list((root / "Badmail").iterdir())) == 2


def interrupt_rename(monkeypatch, interrupted_call):
    """Make the `interrupted_call`-th os.rename raise KeyboardInterrupt, as Ctrl+C at that moment does."""
    real_rename = os.rename
    count = 0

    def rename(source, target):
        nonlocal count
        count += 1
        if count == interrupted_call:
            raise KeyboardInterrupt
        return real_rename(source, target)
    monkeypatch.setattr(os, "rename", rename)


def test_cli_archive_interrupted_names_journal(root, tmp_path, journals, monkeypatch, capsys):
    for path in (root / "Badmail").glob("*01d1*"):
        os.utime(path)
    archive = tmp_path / "archive"
    command = archive_command(root, archive, journals)
    interrupt_rename(monkeypatch, 3)
    assert main(command) == 130
    [journal] = journals.iterdir()
    error_output = capsys.readouterr().err
    assert f"The archive stopped before it finished, and its journal {journal} is unfinished." in error_output
    assert "Run the same command again, and it finishes the job from that journal." in error_output
    assert error_output.rstrip().endswith("Interrupted.")

    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert main(command) == 0
    [dated] = archive.iterdir()
    assert len(list(dated.iterdir())) == 6
    assert mailroot_ops.unfinished_journals(root, "archive", journals) == []


def test_cli_resubmit_interrupted_names_journal(root, journals, monkeypatch, capsys):
    command = ["mailroot", "resubmit", str(root), str(root / DROP_SOURCE), "--confirm", "--state-dir", str(journals)]
    interrupt_rename(monkeypatch, 1)
    assert main(command) == 130
    [journal] = journals.iterdir()
    error_output = capsys.readouterr().err
    assert f"The resubmission stopped before it finished, and its journal {journal} is unfinished." in error_output
    assert "without sending any message twice" in error_output
    assert pickup_names(root) == []

    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert main(command) == 0
    assert pickup_names(root) == ["resubmit-NTFS_00d1b2c301dca9e200000004.eml"]


def test_vanished_source_is_reported(root, journals):
    plan = mailroot_ops.plan_archive(root, 30, now=NOW)
    (root / plan.steps[0].source).unlink()
    outcome = mailroot_ops.execute(plan, journals)
    assert outcome.missing == [plan.steps[0].source]
    assert outcome.done == len(plan.steps) - 1
    assert "gone before" in mailroot_ops.describe_outcome(outcome)


# Resubmit.

def test_resubmit_plain_bad_keeps_original(root, journals):
    source = root / "Badmail" / "NTFS_01a1b2c301dca9e200000006.BAD"
    original = source.read_bytes()
    plan = mailroot_ops.plan_resubmit(root, [source])
    assert plan.steps[0].recipients == ("gone@example.net",)
    mailroot_ops.execute(plan, journals)
    assert source.read_bytes() == original
    written = (root / "Pickup" / "resubmit-NTFS_01a1b2c301dca9e200000006.eml").read_bytes()
    envelope = parse_pickup_file(written)
    assert envelope.sender == "orders@example.com"
    assert envelope.recipients == ("gone@example.net",)
    assert envelope.content == pickup.crlf_lines(original)


def test_resubmit_ndr_extracts_original(root, journals):
    bad = root / "Badmail" / "NTFS_01e1b2c301dca9e20000000b.BAD"
    bad.write_bytes(mailroot.envelope_lines("", ["orders@example.com"]) + ndr_for(chinese_original()))
    plan = mailroot_ops.plan_resubmit(root, [bad.name])
    [step] = plan.steps
    assert step.sender == "orders@example.com"
    assert step.recipients == ("gone@example.net",)
    mailroot_ops.execute(plan, journals)
    envelope = parse_pickup_file((root / "Pickup" / step.target).read_bytes())
    resent = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert resent["Subject"] == "訂單通知：碁峰"
    assert resent["Message-ID"] == "<order-7@example.com>"
    # The SMTP policy encoded the text with CRLF line ends inside its base64.
    assert resent.get_content().replace("\r\n", "\n") == "第一行\n.\n.hidden\n最後一行\n"


def test_resubmit_ndr_through_lab(journals):
    with MailLab(clock=FixedClock(NOW), pickup_interval=None) as lab:
        bad = lab.mailroot / "Badmail" / "NTFS_01e1b2c301dca9e20000000b.BAD"
        original = chinese_original()
        original.replace_header("To", "user@example.com")
        bad.write_bytes(ndr_for(original, failed=("user@example.com",), delivered=()))
        plan = mailroot_ops.plan_resubmit(lab.mailroot, [bad])
        mailroot_ops.execute(plan, journals)
        lab.process_pickup()
        [dropped] = lab.drop_files()
        sender, recipients, parsed = mailroot.read_envelope(dropped)
        body = email.message_from_bytes(dropped.read_bytes().split(b"\r\n", 2)[2], policy=email.policy.default)
        assert bad.is_file()
    assert recipients == ["user@example.com"]
    assert str(parsed["Subject"]) == "訂單通知：碁峰"
    assert body.get_content().replace("\r\n", "\n") == "第一行\n.\n.hidden\n最後一行\n"


def test_resubmit_drop_file(root, journals):
    source = root / "Drop" / "NTFS_00d1b2c301dca9e200000004.EML"
    plan = mailroot_ops.plan_resubmit(root, [source])
    mailroot_ops.execute(plan, journals)
    assert source.is_file()
    written = parse_pickup_file((root / "Pickup" / plan.steps[0].target).read_bytes())
    sender, recipients, _ = mailroot.read_envelope(source)
    assert written.sender == sender
    assert list(written.recipients) == recipients


def test_resubmit_twice_gets_second_name(root, journals):
    source = root / "Drop" / "NTFS_00d1b2c301dca9e200000004.EML"
    mailroot_ops.execute(mailroot_ops.plan_resubmit(root, [source]), journals)
    second = mailroot_ops.plan_resubmit(root, [source])
    assert second.steps[0].target == "resubmit-NTFS_00d1b2c301dca9e200000004-2.eml"


def test_cli_resubmit_dry_run(root, journals, capsys):
    before = tree(root)
    assert run_area("mailroot", "resubmit", str(root), "NTFS_01a1b2c301dca9e200000006.BAD",
                    "--state-dir", str(journals)) == 0
    output = capsys.readouterr().out
    assert "gone@example.net" in output
    assert "dry run" in output
    assert tree(root) == before


@pytest.mark.parametrize("relative, key", [
    ("Queue/NTFS_00a1b2c301dca9e200000001.EML", "mailroot_ops.queue_refused"),
    ("Badmail/NTFS_01a1b2c301dca9e200000006.BDR", "mailroot_ops.reason_file"),
    ("Pickup/3f2504e0-4f89-41d3-9a0c-0305e82c3301.eml", "mailroot_ops.not_resubmittable"),
    ("Badmail/NTFS_ffffffffffffffffffffffff.BAD", "mailroot_ops.file_missing"),
])
def test_resubmit_bad_file(root, relative, key):
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, [root / relative])
    assert raised.value.key == key
    assert Path(relative).name in str(raised.value)


@pytest.mark.parametrize("relative, key", [
    ("Queue/NTFS_00a1b2c301dca9e200000001.EML", "mailroot_ops.queue_refused"),
    ("Badmail/NTFS_01a1b2c301dca9e200000006.BDR", "mailroot_ops.reason_file"),
    ("Badmail/NTFS_ffffffffffffffffffffffff.BAD", "mailroot_ops.file_missing"),
])
def test_resubmit_path_relative_to_mailroot_checked(root, relative, key, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, [relative])
    assert raised.value.key == key


def test_resubmit_path_relative_to_mailroot(root, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    plan = mailroot_ops.plan_resubmit(root, ["Badmail/NTFS_01a1b2c301dca9e200000006.BAD"])
    assert [step.source for step in plan.steps] == ["Badmail/NTFS_01a1b2c301dca9e200000006.BAD"]


def test_resubmit_unreadable_file(root, monkeypatch):
    source = root / "Badmail" / "NTFS_01a1b2c301dca9e200000006.BAD"
    real_read = Path.read_bytes

    def denied(path):
        if path == source:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_read(path)
    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, [source])
    assert raised.value.key == "mailroot_ops.unreadable"
    assert "Permission denied" in str(raised.value)


def test_resubmit_headers_only_ndr(root):
    bad = root / "Badmail" / "NTFS_01e1b2c301dca9e20000000c.BAD"
    text = ndr_for(chinese_original()).replace(b"message/rfc822", b"text/rfc822-headers")
    bad.write_bytes(text)
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, [bad])
    assert raised.value.key == "mailroot_ops.ndr_without_original"


@pytest.mark.parametrize("change, detail", [
    ((b"Action: failed", b"Action: delayed"),
     "its message/delivery-status part lists only recipients whose Action is not failed (delayed, delivered)"),
    ((b"Content-Type: message/delivery-status", b"Content-Type: text/plain"), "it has no message/delivery-status part"),
])
def test_resubmit_ndr_without_failed_recipient(root, change, detail):
    bad = root / "Badmail" / "NTFS_01e1b2c301dca9e20000000e.BAD"
    report = ndr_for(chinese_original(), failed=("late@example.net",)).replace(*change)
    bad.write_bytes(mailroot.envelope_lines("", ["orders@example.com"]) + report)
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, [bad])
    text = str(raised.value)
    assert raised.value.key == "mailroot_ops.ndr_no_failed_recipient"
    assert f"{bad} is a non-delivery report (NDR), but {detail}" in text
    assert "no X-Receiver line" not in text
    assert "Do not put the report itself into Pickup" in text
    assert "the service is still retrying" in text


def test_resubmit_without_recipients(root):
    bad = root / "Badmail" / "NTFS_01e1b2c301dca9e20000000d.BAD"
    bad.write_bytes(b"Subject: no one\r\n\r\nbody\r\n")
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, [bad])
    assert raised.value.key == "mailroot_ops.no_recipients"


def test_resubmit_full_disk_then_rerun(root, journals, monkeypatch):
    source = root / "Badmail" / "NTFS_01a1b2c301dca9e200000006.BAD"
    before = tree(root)
    plan = mailroot_ops.plan_resubmit(root, [source])
    full_disk_for(monkeypatch, ".adminkb-resubmit-")
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, journals)
    assert raised.value.key == "mailroot_ops.disk_full"
    assert "No message was copied into Pickup yet, and every original is kept." in str(raised.value)
    assert tree(root) == before
    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert run_area("mailroot", "resubmit", str(root), str(source), "--confirm", "--state-dir", str(journals)) == 0
    assert sorted(path.name for path in (root / "Pickup").iterdir() if "resubmit" in path.name) == [
        "resubmit-NTFS_01a1b2c301dca9e200000006.eml"]
    assert mailroot_ops.unfinished_journals(root, "resubmit", journals) == []


def test_cut_last_journal_line_is_ignored(root, journals):
    plan = mailroot_ops.plan_archive(root, 30, now=NOW)
    outcome = mailroot_ops.execute(plan, journals)
    lines = outcome.journal.read_text(encoding="utf-8").splitlines()
    outcome.journal.write_text("\n".join(lines[:3]) + "\n" + lines[3][:5], encoding="utf-8")
    assert mailroot_ops.unfinished_journals(root, "archive", journals) == [outcome.journal]
    resumed = mailroot_ops.resume(outcome.journal)
    assert resumed.done == len(plan.steps)


def test_journal_without_plan_rejected(tmp_path):
    journal = tmp_path / "archive-x.jsonl"
    journal.write_text('{"event": "done", "step": 0}\n', encoding="utf-8")
    with pytest.raises(InputError) as raised:
        mailroot_ops.resume(journal)
    assert raised.value.key == "mailroot_ops.journal_unreadable"


def test_cli_dry_run_mentions_unfinished_journal(root, journals, monkeypatch, capsys):
    source = root / "Badmail" / "NTFS_01a1b2c301dca9e200000006.BAD"
    plan = mailroot_ops.plan_resubmit(root, [source])
    full_disk_for(monkeypatch, ".adminkb-resubmit-")
    with pytest.raises(InputError):
        mailroot_ops.execute(plan, journals)
    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert run_area("mailroot", "resubmit", str(root), str(source), "--state-dir", str(journals)) == 0
    captured = capsys.readouterr()
    assert "interrupted operation" in captured.err
    assert "dry run" in captured.out
    assert [path.name for path in (root / "Pickup").iterdir() if "resubmit" in path.name] == []


def test_archive_folder_and_zip_rejected(root, tmp_path):
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, to=tmp_path / "a", zip_file=tmp_path / "b.zip", now=NOW)
    assert raised.value.key == "mailroot_ops.folder_and_zip"


def test_archive_destination_is_file(root, tmp_path):
    blocker = tmp_path / "archive"
    blocker.write_text("not a folder")
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, to=blocker, now=NOW)
    assert raised.value.key == "mailroot_ops.destination_not_folder"


def test_zip_folder_missing(root, tmp_path):
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, zip_file=tmp_path / "absent" / "badmail.zip", now=NOW)
    assert raised.value.key == "mailroot_ops.destination_missing"
    assert "absent" in str(raised.value)


def test_resubmit_without_files(root):
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, [])
    assert raised.value.key == "mailroot_ops.no_files"


def test_resubmit_name_taken_after_plan(root, journals):
    source = root / "Drop" / "NTFS_00d1b2c301dca9e200000004.EML"
    plan = mailroot_ops.plan_resubmit(root, [source])
    taken = root / "Pickup" / plan.steps[0].target
    taken.write_bytes(b"another program's file")
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, journals)
    assert raised.value.key == "mailroot_ops.target_exists"
    assert taken.read_bytes() == b"another program's file"
    staged = [path.name for path in root.iterdir() if path.name.startswith(".adminkb-resubmit-")]
    assert len(staged) == 1


def test_resubmit_write_failure_is_reported(root, journals, monkeypatch):
    source = root / "Drop" / "NTFS_00d1b2c301dca9e200000004.EML"
    plan = mailroot_ops.plan_resubmit(root, [source])
    real_rename = os.rename

    def denied(source_path, target_path):
        if "Pickup" in str(target_path):
            raise PermissionError(errno.EACCES, "Access is denied", str(target_path))
        return real_rename(source_path, target_path)
    monkeypatch.setattr(mailroot_ops.os, "rename", denied)
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, journals)
    assert raised.value.key == "mailroot_ops.write_failed"
    assert "Permission denied" in str(raised.value)
    assert not (root / "Pickup" / plan.steps[0].target).exists()


def _zip_runner(root, target, journals):
    plan = mailroot_ops.plan_archive(root, 30, zip_file=target, now=NOW)
    return plan, mailroot_ops._Runner(plan, journals / "manual.jsonl")


def test_zip_unwritable_is_write_failure(root, tmp_path, journals, monkeypatch):
    target = tmp_path / "badmail.zip"
    _, runner = _zip_runner(root, target, journals)
    real_open = open

    def denied(path, *arguments, **options):
        if Path(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *arguments, **options)
    monkeypatch.setattr(mailroot_ops, "open", denied, raising=False)
    with pytest.raises(InputError) as raised:
        runner._write_zip(target)
    assert raised.value.key == "mailroot_ops.write_failed"
    assert str(target) in str(raised.value)


def test_zip_unreadable_source_is_read_failure(root, tmp_path, journals, monkeypatch):
    target = tmp_path / "badmail.zip"
    plan, runner = _zip_runner(root, target, journals)
    source = root / plan.steps[0].source

    def denied(archive, filename, *arguments, **options):
        raise PermissionError(errno.EACCES, "Permission denied", str(filename))
    monkeypatch.setattr(mailroot_ops.zipfile.ZipFile, "write", denied)
    with pytest.raises(InputError) as raised:
        runner._write_zip(target)
    assert raised.value.key == "mailroot_ops.unreadable"
    assert str(source) in str(raised.value)
    assert not target.exists()


def test_zip_mismatch_keeps_original(root, tmp_path, journals):
    target = tmp_path / "badmail.zip"
    plan = mailroot_ops.plan_archive(root, 30, zip_file=target, now=NOW)
    runner = mailroot_ops._Runner(plan, journals / "manual.jsonl")
    journals.mkdir()
    runner.append({"event": "plan", "version": mailroot_ops.JOURNAL_VERSION, "operation": plan.operation,
                   "mailroot": str(plan.mailroot), "destination": str(plan.destination),
                   "steps": [{"action": step.action, "source": step.source, "target": step.target, "size": step.size,
                              "sender": "", "recipients": []} for step in plan.steps]})
    runner._write_zip(target)
    runner.append({"event": "zip_written"})
    runner.append({"event": "zip_closed"})
    changed = root / plan.steps[0].source
    changed.write_bytes(changed.read_bytes() + b"changed after zipping\r\n")
    with pytest.raises(InputError) as raised:
        mailroot_ops.resume(journals / "manual.jsonl")
    assert raised.value.key == "mailroot_ops.zip_mismatch"
    assert changed.is_file()


# A second resubmission of the same source.

DROP_SOURCE = "Drop/NTFS_00d1b2c301dca9e200000004.EML"


def pickup_names(root):
    return sorted(path.name for path in (root / "Pickup").iterdir() if path.name.startswith("resubmit-"))


def test_cli_resubmit_twice_rejected(root, journals):
    source = str(root / DROP_SOURCE)
    assert run_area("mailroot", "resubmit", str(root), source, "--confirm", "--state-dir", str(journals)) == 0
    before = tree(root)
    with pytest.raises(InputError) as caught:
        run_area("mailroot", "resubmit", str(root), source, "--confirm", "--state-dir", str(journals))
    assert caught.value.key == "mailroot_ops.already_resubmitted"
    assert DROP_SOURCE in str(caught.value)
    assert " UTC, " in str(caught.value)
    assert "--again" in str(caught.value)
    assert tree(root) == before
    assert pickup_names(root) == ["resubmit-NTFS_00d1b2c301dca9e200000004.eml"]
    assert len(list(journals.glob("resubmit-*.jsonl"))) == 1


def test_cli_resubmit_again_sends(root, journals):
    source = str(root / DROP_SOURCE)
    run_area("mailroot", "resubmit", str(root), source, "--confirm", "--state-dir", str(journals))
    assert run_area("mailroot", "resubmit", str(root), source, "--confirm", "--again",
                    "--state-dir", str(journals)) == 0
    assert pickup_names(root) == ["resubmit-NTFS_00d1b2c301dca9e200000004-2.eml",
                                  "resubmit-NTFS_00d1b2c301dca9e200000004.eml"]


def test_cli_resubmit_dry_run_warns(root, journals, capsys):
    source = str(root / DROP_SOURCE)
    run_area("mailroot", "resubmit", str(root), source, "--confirm", "--state-dir", str(journals))
    capsys.readouterr()
    before = tree(root)
    assert run_area("mailroot", "resubmit", str(root), source, "--state-dir", str(journals)) == 0
    output = capsys.readouterr().out
    assert "already resubmitted" in output
    assert DROP_SOURCE in output
    assert "dry run" in output
    assert tree(root) == before


def test_cli_resubmit_dry_run_json_lists_earlier(root, journals, capsys):
    source = str(root / DROP_SOURCE)
    run_area("mailroot", "resubmit", str(root), source, "--confirm", "--state-dir", str(journals))
    capsys.readouterr()
    run_area("mailroot", "resubmit", str(root), source, "--state-dir", str(journals), "--format", "json")
    document = json.loads(capsys.readouterr().out)
    [earlier] = document["already_resubmitted"]
    assert earlier["source"] == DROP_SOURCE
    assert earlier["journal"].startswith(str(journals))


def test_resubmit_same_message_id_rejected(root, journals):
    source = root / DROP_SOURCE
    mailroot_ops.execute(mailroot_ops.plan_resubmit(root, [source]), journals)
    later = datetime(2026, 3, 21, tzinfo=timezone.utc).timestamp()
    os.utime(source, (later, later))
    plan = mailroot_ops.plan_resubmit(root, [source])
    assert plan.steps[0].message_id != ""
    [earlier] = mailroot_ops.earlier_resubmits(plan, journals)
    assert earlier.source == DROP_SOURCE
    with pytest.raises(InputError):
        mailroot_ops.execute(plan, journals)


def test_resubmit_changed_file_accepted(root, journals):
    source = root / "Badmail" / "NTFS_01a1b2c301dca9e200000006.BAD"
    mailroot_ops.execute(mailroot_ops.plan_resubmit(root, [source]), journals)
    source.write_bytes(source.read_bytes().replace(b"Message-ID:", b"X-Old-Message-ID:") + b"\r\n")
    plan = mailroot_ops.plan_resubmit(root, [source])
    assert mailroot_ops.earlier_resubmits(plan, journals) == []


def test_unfinished_journal_not_counted(root, journals, monkeypatch):
    source = root / DROP_SOURCE
    plan = mailroot_ops.plan_resubmit(root, [source])
    monkeypatch.setattr(mailroot_ops._Runner, "run", lambda self: None)
    mailroot_ops.execute(plan, journals)
    assert mailroot_ops.earlier_resubmits(plan, journals) == []


# Duplicates, spellings of one mailroot, damaged journals, and where files may go.

def test_same_file_named_three_ways_sent_once(root, journals, monkeypatch):
    monkeypatch.chdir(root.parent)
    name = "NTFS_01a1b2c301dca9e200000006.BAD"
    plan = mailroot_ops.plan_resubmit(root, [name, f"Badmail/{name}", f"{root.name}/Badmail/{name}"])
    assert [step.source for step in plan.steps] == [f"Badmail/{name}"]
    mailroot_ops.execute(plan, journals)
    assert pickup_names(root) == ["resubmit-NTFS_01a1b2c301dca9e200000006.eml"]


def test_two_ndrs_same_message_rejected(root):
    for stem in ("NTFS_01e1b2c301dca9e20000000b", "NTFS_01f1b2c301dca9e20000000c"):
        (root / "Badmail" / f"{stem}.BAD").write_bytes(ndr_for(chinese_original()))
    before = tree(root)
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, ["NTFS_01e1b2c301dca9e20000000b.BAD", "NTFS_01f1b2c301dca9e20000000c.BAD"])
    assert raised.value.key == "mailroot_ops.same_message_twice"
    assert "NTFS_01e1b2c301dca9e20000000b.BAD" in str(raised.value)
    assert "NTFS_01f1b2c301dca9e20000000c.BAD" in str(raised.value)
    assert tree(root) == before


def test_two_ndrs_different_recipients_both_sent(root):
    (root / "Badmail" / "NTFS_01e1b2c301dca9e20000000b.BAD").write_bytes(ndr_for(chinese_original()))
    (root / "Badmail" / "NTFS_01f1b2c301dca9e20000000c.BAD").write_bytes(
        ndr_for(chinese_original(), failed=("ok@example.net",), delivered=()))
    plan = mailroot_ops.plan_resubmit(root, ["NTFS_01e1b2c301dca9e20000000b.BAD", "NTFS_01f1b2c301dca9e20000000c.BAD"])
    assert [step.recipients for step in plan.steps] == [("gone@example.net",), ("ok@example.net",)]


def test_other_spelling_of_mailroot_rejected(root, journals, tmp_path):
    link = tmp_path / "link-to-mailroot"
    link.symlink_to(root, target_is_directory=True)
    assert run_area("mailroot", "resubmit", str(root), DROP_SOURCE, "--confirm", "--state-dir", str(journals)) == 0
    for spelling in (link, root / ".." / root.name):
        with pytest.raises(InputError) as raised:
            run_area("mailroot", "resubmit", str(spelling), DROP_SOURCE, "--confirm", "--state-dir", str(journals))
        assert raised.value.key == "mailroot_ops.already_resubmitted"
    assert pickup_names(root) == ["resubmit-NTFS_00d1b2c301dca9e200000004.eml"]


def test_unfinished_journal_found_by_other_spelling(root, journals, tmp_path, monkeypatch):
    link = tmp_path / "link-to-mailroot"
    link.symlink_to(root, target_is_directory=True)
    plan = mailroot_ops.plan_resubmit(root, [root / DROP_SOURCE])
    monkeypatch.setattr(mailroot_ops._Runner, "run", lambda self: None)
    mailroot_ops.execute(plan, journals)
    [journal] = journals.glob("resubmit-*.jsonl")
    assert mailroot_ops.unfinished_journals(link, "resubmit", journals) == [journal]


def test_resume_after_cut_line_leaves_readable_journal(root, journals):
    plan = mailroot_ops.plan_archive(root, 30, now=NOW)
    outcome = mailroot_ops.execute(plan, journals)
    lines = outcome.journal.read_text(encoding="utf-8").splitlines()
    outcome.journal.write_text("\n".join(lines[:3]) + "\n" + lines[3][:5], encoding="utf-8")
    mailroot_ops.resume(outcome.journal)
    # Every line parses: the cut line was dropped before the resumed run appended.
    events = journal_events(outcome.journal)
    assert events[-1] == {"event": "finished"}
    assert mailroot_ops.unfinished_journals(root, "archive", journals) == []


def test_damaged_journal_stops_resubmit(root, journals):
    journals.mkdir()
    (journals / "resubmit-20260301T000000000000Z-1.jsonl").write_text('{"event": "plan", "ver', encoding="utf-8")
    before = tree(root)
    with pytest.raises(InputError) as raised:
        run_area("mailroot", "resubmit", str(root), DROP_SOURCE, "--confirm", "--state-dir", str(journals))
    assert raised.value.key == "mailroot_ops.journal_unreadable"
    assert "resubmit-20260301T000000000000Z-1.jsonl" in str(raised.value)
    assert "Move the damaged journal out of" in str(raised.value)
    assert tree(root) == before


def test_empty_journal_is_skipped(root, journals):
    journals.mkdir()
    (journals / "resubmit-20260301T000000000000Z-1.jsonl").write_bytes(b"")
    assert run_area("mailroot", "resubmit", str(root), DROP_SOURCE, "--confirm", "--state-dir", str(journals)) == 0
    assert pickup_names(root) == ["resubmit-NTFS_00d1b2c301dca9e200000004.eml"]


def test_pickup_link_stages_beside_real_pickup(root, journals, tmp_path, monkeypatch):
    elsewhere = tmp_path / "other-disk"
    elsewhere.mkdir()
    shutil.move(str(root / "Pickup"), str(elsewhere / "Pickup"))
    (root / "Pickup").symlink_to(elsewhere / "Pickup", target_is_directory=True)
    renames = []
    real_rename = os.rename

    def recording_rename(source, target):
        renames.append((Path(source), Path(target)))
        return real_rename(source, target)

    monkeypatch.setattr(mailroot_ops.os, "rename", recording_rename)
    mailroot_ops.execute(mailroot_ops.plan_resubmit(root, [root / DROP_SOURCE]), journals)
    [(staging, target)] = renames
    # The staging file sat next to the real Pickup, on its volume, and never in the mailroot.
    assert staging.parent == elsewhere
    assert target.name == "resubmit-NTFS_00d1b2c301dca9e200000004.eml"
    assert (elsewhere / "Pickup" / target.name).is_file()
    assert not list(root.glob(".adminkb-resubmit-*"))


@pytest.mark.parametrize("folder", ["Pickup", "Queue", "Badmail", "Drop"])
def test_zip_in_service_folder_refused(root, folder):
    before = tree(root)
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, zip_file=root / folder / "old.zip", now=NOW)
    assert raised.value.key in ("mailroot_ops.service_folder_refused", "mailroot_ops.queue_refused")
    assert tree(root) == before


@pytest.mark.parametrize("folder", ["Pickup", "Drop", "SortTemp"])
def test_folder_archive_in_service_folder_refused(root, folder):
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, to=root / folder, now=NOW)
    assert raised.value.key == "mailroot_ops.service_folder_refused"
    assert f"mailroot's {folder} folder" in str(raised.value)


def test_zip_partial_name_taken_refused(root, tmp_path):
    notes = tmp_path / "report.zip.partial"
    notes.write_text("my important notes", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, zip_file=tmp_path / "report.zip", now=NOW)
    assert raised.value.key == "mailroot_ops.target_exists"
    assert str(notes) in str(raised.value)
    assert notes.read_text(encoding="utf-8") == "my important notes"


# File names with bytes that are not UTF-8, as a mailroot copied to Linux can have.

UNDECODABLE = b"NTFS_\xff\xfe.BAD"
UNDECODABLE_SHOWN = "NTFS_\\xff\\xfe.BAD"


def write_undecodable(folder: Path) -> str:
    """Write a 40-day-old message file named UNDECODABLE into `folder` and return its path as a str."""
    path = os.fsencode(folder) + b"/" + UNDECODABLE
    with open(path, "wb") as handle:
        handle.write(b"From: app@example.com\r\nTo: user@example.net\r\nMessage-ID: <ff@example.com>\r\n\r\nbody\r\n")
    os.utime(path, (OLD.timestamp(), OLD.timestamp()))
    return os.fsdecode(path)


def test_archive_undecodable_name(root, tmp_path, journals, capsys):
    write_undecodable(root / "Badmail")
    for path in (root / "Badmail").glob("*01d1*"):
        os.utime(path)
    archive = tmp_path / "archive"
    command = ["mailroot", "archive", str(root), "--older-than", "30", "--to", str(archive),
               "--state-dir", str(journals)]
    assert run_area(*command) == 0
    assert UNDECODABLE_SHOWN in capsys.readouterr().out
    assert UNDECODABLE in os.listdir(os.fsencode(root / "Badmail"))

    assert run_area(*command, "--confirm") == 0
    assert "Archived 7 files" in capsys.readouterr().out
    [dated] = archive.iterdir()
    assert UNDECODABLE in os.listdir(os.fsencode(dated))
    assert UNDECODABLE not in os.listdir(os.fsencode(root / "Badmail"))
    [journal] = journals.iterdir()
    plan_line = journal.read_bytes().splitlines()[0]
    assert plan_line.isascii()
    sources = [step["source"] for step in json.loads(plan_line)["steps"]]
    assert "Badmail/" + os.fsdecode(UNDECODABLE) in sources


def test_archive_undecodable_name_into_zip(root, tmp_path, journals):
    write_undecodable(root / "Badmail")
    target = tmp_path / "badmail.zip"
    mailroot_ops.execute(mailroot_ops.plan_archive(root, 30, zip_file=target, now=NOW), journals)
    with zipfile.ZipFile(target) as archive:
        assert archive.read("Badmail/" + UNDECODABLE_SHOWN).startswith(b"From: app@example.com")
    assert UNDECODABLE not in os.listdir(os.fsencode(root / "Badmail"))


def test_archive_undecodable_name_resumed(root, tmp_path, journals, monkeypatch):
    write_undecodable(root / "Badmail")
    archive = tmp_path / "archive"
    plan = mailroot_ops.plan_archive(root, 30, to=archive, now=NOW)
    # The run stops right after the journal's plan line, as after a kill at that point.
    monkeypatch.setattr(mailroot_ops._Runner, "run", lambda self: None)
    mailroot_ops.execute(plan, journals)
    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    [journal] = mailroot_ops.unfinished_journals(root, "archive", journals)
    assert "Badmail/" + os.fsdecode(UNDECODABLE) in [step.source for step in mailroot_ops._read_journal(journal)[0].steps]

    outcome = mailroot_ops.resume(journal)
    assert outcome.done == len(plan.steps)
    assert UNDECODABLE in os.listdir(os.fsencode(archive / "2026-03-20"))
    table = mailroot_ops.journal_table(journal)
    assert "Badmail/" + UNDECODABLE_SHOWN in list(table["source"])


def test_resubmit_undecodable_name(root, journals, capsys):
    source = write_undecodable(root / "Badmail")
    command = ["mailroot", "resubmit", str(root), source, "--state-dir", str(journals)]
    assert run_area(*command) == 0
    output = capsys.readouterr().out
    assert UNDECODABLE_SHOWN in output
    assert "resubmit-NTFS_\\xff\\xfe.eml" in output

    assert run_area(*command, "--confirm") == 0
    assert "Copied 1 messages" in capsys.readouterr().out
    written = os.fsencode(root / "Pickup") + b"/resubmit-NTFS_\xff\xfe.eml"
    with open(written, "rb") as handle:
        envelope = parse_pickup_file(handle.read())
    assert envelope.recipients == ("user@example.net",)
    with pytest.raises(InputError) as raised:
        run_area(*command, "--confirm")
    assert raised.value.key == "mailroot_ops.already_resubmitted"
    assert "Badmail/" + UNDECODABLE_SHOWN in str(raised.value)


def test_resubmit_undecodable_name_resumed(root, journals, monkeypatch):
    source = write_undecodable(root / "Badmail")
    plan = mailroot_ops.plan_resubmit(root, [source])
    monkeypatch.setattr(mailroot_ops._Runner, "run", lambda self: None)
    mailroot_ops.execute(plan, journals)
    monkeypatch.undo()
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert run_area("mailroot", "resubmit", str(root), source, "--confirm", "--state-dir", str(journals)) == 0
    assert b"resubmit-NTFS_\xff\xfe.eml" in os.listdir(os.fsencode(root / "Pickup"))
    assert mailroot_ops.unfinished_journals(root, "resubmit", journals) == []


# Names near the file systems' limit of 255 bytes.

@pytest.mark.parametrize("stem_character", ["a", "碁"])
def test_resubmit_long_name_fits(root, journals, stem_character):
    # 9 + 3 * 79 + 4 = 250 bytes with 碁 (three bytes in UTF-8), 9 + 237 + 4 with "a".
    stem = "NTFS_abcd" + stem_character * (79 if stem_character == "碁" else 237)
    source = root / "Drop" / f"{stem}.EML"
    assert len(source.name.encode()) == 250
    source.write_bytes((root / DROP_SOURCE).read_bytes())
    targets = []
    for run in range(3):
        plan = mailroot_ops.plan_resubmit(root, [source])
        targets.append(plan.steps[0].target)
        mailroot_ops.execute(plan, journals, again=run > 0)
    assert targets[0].endswith(".eml")
    assert targets[1].endswith("-2.eml")
    assert targets[2].endswith("-3.eml")
    for target in targets:
        assert len(target.encode()) <= 255
        assert stem.startswith(target[len("resubmit-"):].removesuffix(".eml").split("-")[0])
    assert set(pickup_names(root)) == set(targets)


def test_resubmit_long_undecodable_name_fits(root, journals):
    name = b"NTFS_" + b"\xff" * 241 + b".BAD"
    assert len(name) == 250
    path = os.fsencode(root / "Badmail") + b"/" + name
    with open(path, "wb") as handle:
        handle.write((root / DROP_SOURCE).read_bytes())
    plan = mailroot_ops.plan_resubmit(root, [os.fsdecode(path)])
    [step] = plan.steps
    assert len(os.fsencode(step.target)) <= 255
    mailroot_ops.execute(plan, journals)
    assert os.fsencode(step.target) in os.listdir(os.fsencode(root / "Pickup"))


def test_resubmit_twice_lists_ten_files(root, journals, capsys):
    sources = []
    for number in range(25):
        path = root / "Drop" / f"NTFS_{number:024x}.EML"
        path.write_bytes(f"X-Receiver: user{number}@example.com\r\nMessage-ID: <m{number}@example.com>\r\n\r\n"
                         f"body {number}\r\n".encode())
        sources.append(str(path))
    command = ["mailroot", "resubmit", str(root), *sources, "--state-dir", str(journals)]
    assert run_area(*command, "--confirm") == 0
    capsys.readouterr()

    with pytest.raises(InputError) as raised:
        run_area(*command, "--confirm")
    text = str(raised.value)
    assert raised.value.key == "mailroot_ops.already_resubmitted"
    listed = [line for line in text.splitlines() if line.startswith("  Drop/")]
    assert [line.split()[0] for line in listed] == [f"Drop/NTFS_{number:024x}.EML" for number in range(10)]
    assert "\n  and 15 more\n" in text
    assert f"NTFS_{10:024x}.EML" not in text

    assert run_area(*command) == 0
    output = capsys.readouterr().out
    note = output[output.index("Note: these files were already resubmitted"):]
    assert len([line for line in note.splitlines() if line.startswith("  Drop/")]) == 10
    assert "\n  and 15 more\n" in note


def test_dangling_partial_link_refused(root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "S.zip.partial").symlink_to(root / "Pickup" / "injected.eml")
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_archive(root, 30, zip_file=out / "S.zip", now=NOW)
    assert raised.value.key == "mailroot_ops.target_exists"
    assert not (root / "Pickup" / "injected.eml").exists()


def test_hard_link_sent_once(root, journals):
    source = root / "Badmail" / "NTFS_01a1b2c301dca9e200000006.BAD"
    os.link(source, root / "Badmail" / "NTFS_01a1b2c301dca9e2000000ff.BAD")
    plan = mailroot_ops.plan_resubmit(root, [source.name, "NTFS_01a1b2c301dca9e2000000ff.BAD"])
    assert [step.source for step in plan.steps] == [f"Badmail/{source.name}"]


def test_pickup_at_volume_root_refused(root, monkeypatch):
    real_stat = os.stat
    staging = os.path.realpath(root)

    def other_device(path, *args, **kwargs):
        status = real_stat(path, *args, **kwargs)
        if os.fspath(path) == staging:
            return os.stat_result((status.st_mode, status.st_ino, status.st_dev + 1, *tuple(status)[3:]))
        return status

    monkeypatch.setattr(mailroot_ops.os, "stat", other_device)
    before = tree(root)
    with pytest.raises(InputError) as raised:
        mailroot_ops.plan_resubmit(root, [root / DROP_SOURCE])
    assert raised.value.key == "pickup.staging_other_volume"
    assert "PickupDirectory" in str(raised.value)
    assert tree(root) == before


@pytest.mark.parametrize("line", ["null", "[]", "42"])
def test_journal_line_not_object_rejected(root, journals, line):
    plan = mailroot_ops.plan_archive(root, 30, now=NOW)
    outcome = mailroot_ops.execute(plan, journals)
    lines = outcome.journal.read_text(encoding="utf-8").splitlines()
    outcome.journal.write_text("\n".join([lines[0], line, *lines[1:]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        mailroot_ops.unfinished_journals(root, "archive", journals)
    assert raised.value.key == "mailroot_ops.journal_unreadable"


def test_partial_link_after_planning_refused(root, tmp_path, journals):
    out = tmp_path / "out"
    out.mkdir()
    plan = mailroot_ops.plan_archive(root, 30, zip_file=out / "S.zip", now=NOW)
    (out / "S.zip.partial").symlink_to(root / "Pickup" / "injected.eml")
    before = tree(root)
    with pytest.raises(InputError) as raised:
        mailroot_ops.execute(plan, journals)
    assert raised.value.key == "mailroot_ops.target_exists"
    assert not (root / "Pickup" / "injected.eml").exists()
    assert tree(root) == before
