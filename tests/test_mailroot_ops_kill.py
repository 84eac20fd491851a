"""Kill archive and resubmit runs with SIGKILL at chosen points, then check every message and rerun.

Each case plans and executes an operation in a subprocess on a few hundred files. The
ADMINKB_OPS_CRASH_AT hook makes it kill itself the n-th time it reaches a point. The points are
right after a journal line, after a rename but before its journal line, after a staging file
is written, after a member is added to a zip that is still being written, after a zip is
written or renamed into place, and, for an archive on another volume, after a copy is written
under its temporary name and after it is in place but before the original is removed. The tree
is then checked, and the same `adminkb mailroot` command is run again, which must finish the
job from the journal.
"""

import errno
import os
import shutil
import signal
import tempfile
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from adminkb import mailroot, mailroot_ops
from adminkb.lab.pickup import parse_pickup_file
from clirun import run_area

TRIPLES = 100
DROPPED = 200
SUBPROCESS_TIMEOUT = 120


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")


def build_badmail(root: Path) -> dict[str, bytes]:
    """Write TRIPLES .BAD/.BDP/.BDR sets, 10 days old, and return {file name: bytes}."""
    mailroot.create_mailroot(root)
    files = {}
    for number in range(TRIPLES):
        stem = f"NTFS_{number:024x}"
        files[f"{stem}.BAD"] = (f"From: app@example.com\r\nTo: user{number}@example.net\r\n"
                                f"Message-ID: <bad-{number}@example.com>\r\n\r\nbody {number}\r\n").encode()
        files[f"{stem}.BDP"] = bytes([number % 256]) * 64
        files[f"{stem}.BDR"] = (f"Unable to deliver this message because the follow error was encountered: "
                                f"\"The destination server does not exist.\".\r\n"
                                f"The specific error code was 0xC00402C7.\r\n"
                                f"The message sender was app{number}@example.com.\r\n").encode("cp950")
    for name, data in files.items():
        path = root / mailroot.BADMAIL / name
        path.write_bytes(data)
        os.utime(path, (path.stat().st_mtime - 10 * 86400,) * 2)
    return files


def build_drop(root: Path) -> dict[str, bytes]:
    """Write DROPPED Drop files with distinct Message-IDs and return {file name: bytes}."""
    mailroot.create_mailroot(root)
    files = {}
    for number in range(DROPPED):
        name = f"NTFS_{number:024x}.EML"
        files[name] = (f"X-Sender: partner@example.net\r\nX-Receiver: user{number}@example.com\r\n"
                       f"From: partner@example.net\r\nTo: user{number}@example.com\r\n"
                       f"Message-ID: <drop-{number}@example.net>\r\n\r\n.line with a dot {number}\r\n").encode()
        (root / mailroot.DROP / name).write_bytes(files[name])
    return files


# The subprocess calls the API the command calls, without the command's parser: building it
# imports every area of the adminkb command, which takes seconds a run on a loaded machine.
RUN_OPERATION = """
import sys
from adminkb import mailroot_ops
from test_mailroot_ops_kill import inject_cross_volume
inject_cross_volume()
operation, root, state, *rest = sys.argv[1:]
if operation == "archive":
    plan = mailroot_ops.plan_archive(root, 1, **{rest[0]: rest[1]})
else:
    plan = mailroot_ops.plan_resubmit(root, rest)
mailroot_ops.execute(plan, state)
"""


# A folder whose renames from elsewhere fail with EXDEV, as if it were on another volume, for a
# machine that has no second file system to archive to.
CROSS_VOLUME_ENV = "ADMINKB_TEST_CROSS_VOLUME"


def inject_cross_volume() -> None:
    """Make os.rename into the folder CROSS_VOLUME_ENV names fail with EXDEV when the source lies outside it."""
    folder = os.environ.get(CROSS_VOLUME_ENV)
    if not folder:
        return
    real_rename = os.rename

    def rename(source, target, *args, **kwargs):
        inside = os.path.abspath(target).startswith(folder + os.sep)
        if inside and not os.path.abspath(source).startswith(folder + os.sep):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(source), None, str(target))
        return real_rename(source, target, *args, **kwargs)

    os.rename = rename


def other_volume_candidates() -> list[str]:
    """Return folders that may be on another file system than pytest's temporary folder."""
    return [folder for folder in (os.environ.get("ADMINKB_TEST_OTHER_VOLUME"), "/dev/shm") if folder]


@pytest.fixture(params=["second file system", "injected EXDEV"])
def other_volume(request, tmp_path, monkeypatch):
    """A folder that a rename from the mailroot cannot reach: on a second file system, or with EXDEV injected."""
    if request.param == "injected EXDEV":
        folder = tmp_path / "other-volume"
        folder.mkdir()
        monkeypatch.setenv(CROSS_VOLUME_ENV, str(folder))
        # Registering the real os.rename lets monkeypatch restore it after the test has replaced it.
        monkeypatch.setattr(os, "rename", os.rename)
        inject_cross_volume()
        yield folder
        return
    device = tmp_path.stat().st_dev
    usable = [folder for folder in other_volume_candidates()
              if os.path.isdir(folder) and os.access(folder, os.W_OK) and os.stat(folder).st_dev != device]
    if not usable:
        pytest.skip("no writable folder on a second file system (set ADMINKB_TEST_OTHER_VOLUME); "
                    "the injected EXDEV case covers the same code")
    folder = Path(tempfile.mkdtemp(prefix="adminkb-archive-", dir=usable[0]))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_killed(arguments: list[str], crash_at: str) -> None:
    """Run an operation in a subprocess that kills itself at `crash_at`, and check that it did."""
    environment = {**os.environ, mailroot_ops.CRASH_ENV: crash_at, "ADMINKB_LANG": "en",
                   "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    finished = subprocess.run([sys.executable, "-c", RUN_OPERATION, *arguments], env=environment,
                              capture_output=True, timeout=SUBPROCESS_TIMEOUT)
    assert finished.returncode == -signal.SIGKILL, finished.stderr.decode(errors="replace")


def places(folders: list[Path]) -> Counter:
    """Count each file name across `folders` (temporary and staging files included)."""
    return Counter(path.name for folder in folders if folder.is_dir() for path in folder.iterdir() if path.is_file())


@pytest.mark.parametrize("crash_at", ["journal:1", "moved:150", "journal:200"])
def test_archive_folder_killed(tmp_path, crash_at):
    root = tmp_path / "mailroot"
    files = build_badmail(root)
    archive = tmp_path / "archive"
    journals = tmp_path / "journals"
    command = ["mailroot", "archive", str(root), "--older-than", "1", "--to", str(archive), "--confirm",
               "--state-dir", str(journals)]
    run_killed(["archive", str(root), str(journals), "to", str(archive)], crash_at)

    [dated] = list(archive.iterdir()) if archive.is_dir() else [archive / "none"]
    counts = places([root / mailroot.BADMAIL, dated])
    assert counts == Counter(files.keys()), "after the kill every file is in Badmail or the archive, exactly once"
    assert len(mailroot_ops.unfinished_journals(root, "archive", journals)) == 1

    assert run_area(*command) == 0
    [dated] = list(archive.iterdir())
    assert list((root / mailroot.BADMAIL).iterdir()) == []
    assert {path.name: path.read_bytes() for path in dated.iterdir()} == files
    assert mailroot_ops.unfinished_journals(root, "archive", journals) == []


@pytest.mark.parametrize("crash_at", ["copied:150", "copy_written:150"])
def test_archive_other_volume_killed(tmp_path, other_volume, crash_at):
    root = tmp_path / "mailroot"
    files = build_badmail(root)
    archive = other_volume / "archive"
    journals = tmp_path / "journals"
    command = ["mailroot", "archive", str(root), "--older-than", "1", "--to", str(archive), "--confirm",
               "--state-dir", str(journals)]
    run_killed(["archive", str(root), str(journals), "to", str(archive)], crash_at)

    [dated] = list(archive.iterdir())
    temporary = [path.name for path in dated.iterdir() if mailroot.is_temporary_file_name(path.name)]
    counts = places([root / mailroot.BADMAIL, dated]) - Counter(temporary)
    assert set(counts) == set(files), "after the kill no file is lost"
    doubled = sorted(name for name, count in counts.items() if count > 1)
    if crash_at.startswith("copied"):
        # The kill came after the copy was in place and before the original was removed.
        assert len(doubled) == 1
        assert (dated / doubled[0]).read_bytes() == files[doubled[0]]
        assert (root / mailroot.BADMAIL / doubled[0]).read_bytes() == files[doubled[0]]
        assert temporary == []
    else:
        # The kill came after the copy was written under its temporary name, before it was put in place.
        assert doubled == []
        assert len(temporary) == 1
    assert len(mailroot_ops.unfinished_journals(root, "archive", journals)) == 1

    assert run_area(*command) == 0
    assert list((root / mailroot.BADMAIL).iterdir()) == []
    assert {path.name: path.read_bytes() for path in dated.iterdir()} == files
    assert mailroot_ops.unfinished_journals(root, "archive", journals) == []


def test_archive_other_volume_without_hard_links(tmp_path, other_volume, monkeypatch):
    root = tmp_path / "mailroot"
    files = build_badmail(root)
    archive = other_volume / "archive"

    def no_hard_links(source, target, **options):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(source), None, str(target))

    monkeypatch.setattr(os, "link", no_hard_links)
    plan = mailroot_ops.plan_archive(root, 1, to=archive)
    outcome = mailroot_ops.execute(plan, tmp_path / "journals")
    assert outcome.done == len(files)
    [dated] = list(archive.iterdir())
    assert {path.name: path.read_bytes() for path in dated.iterdir()} == files
    assert list((root / mailroot.BADMAIL).iterdir()) == []


@pytest.mark.parametrize("crash_at", ["zipped:1", "zipped:150"])
def test_archive_zip_killed_while_writing(tmp_path, crash_at):
    root = tmp_path / "mailroot"
    files = build_badmail(root)
    target = tmp_path / "badmail.zip"
    partial = target.with_name("badmail.zip.partial")
    journals = tmp_path / "journals"
    command = ["mailroot", "archive", str(root), "--older-than", "1", "--zip", str(target), "--confirm",
               "--state-dir", str(journals)]
    run_killed(["archive", str(root), str(journals), "zip_file", str(target)], crash_at)

    assert not target.exists(), "a zip still being written is never put in place"
    assert partial.exists()
    assert {path.name: path.read_bytes() for path in (root / mailroot.BADMAIL).iterdir()} == files
    assert len(mailroot_ops.unfinished_journals(root, "archive", journals)) == 1

    assert run_area(*command) == 0
    assert list((root / mailroot.BADMAIL).iterdir()) == []
    with zipfile.ZipFile(target) as archive:
        assert {Path(name).name: archive.read(name) for name in archive.namelist()} == files
    assert not partial.exists()


@pytest.mark.parametrize("crash_at", ["zip_written:1", "zip_closed:1", "unlinked:100"])
def test_archive_zip_killed(tmp_path, crash_at):
    root = tmp_path / "mailroot"
    files = build_badmail(root)
    target = tmp_path / "badmail.zip"
    journals = tmp_path / "journals"
    command = ["mailroot", "archive", str(root), "--older-than", "1", "--zip", str(target), "--confirm",
               "--state-dir", str(journals)]
    run_killed(["archive", str(root), str(journals), "zip_file", str(target)], crash_at)

    in_badmail = {path.name for path in (root / mailroot.BADMAIL).iterdir()}
    in_zip = set()
    if target.exists():
        with zipfile.ZipFile(target) as archive:
            in_zip = {Path(name).name for name in archive.namelist()}
    # NOTE: between the zip's rename and the removal of the originals a file is in both places.
    assert in_badmail | in_zip == set(files), "after the kill no file is lost"

    assert run_area(*command) == 0
    assert list((root / mailroot.BADMAIL).iterdir()) == []
    with zipfile.ZipFile(target) as archive:
        assert {Path(name).name: archive.read(name) for name in archive.namelist()} == files
    assert not target.with_name("badmail.zip.partial").exists()


@pytest.mark.parametrize("crash_at", ["staged:50", "renamed:50", "journal:101"])
def test_resubmit_killed(tmp_path, crash_at):
    root = tmp_path / "mailroot"
    files = build_drop(root)
    journals = tmp_path / "journals"
    sources = [str(root / mailroot.DROP / name) for name in files]
    command = ["mailroot", "resubmit", str(root), *sources, "--confirm", "--state-dir", str(journals)]
    run_killed(["resubmit", str(root), str(journals), *sources], crash_at)

    pickup = root / mailroot.PICKUP
    assert {path.name: path.read_bytes() for path in (root / mailroot.DROP).iterdir()} == files
    first_run = sorted(pickup.iterdir())
    assert len(first_run) < len(files)
    assert all(path.name.startswith("resubmit-") for path in first_run)

    # The service picks up what reached Pickup before the rerun; those must not be sent again.
    delivered = tmp_path / "delivered"
    delivered.mkdir()
    for path in first_run:
        path.rename(delivered / path.name)
    assert run_area(*command) == 0

    sent = [*delivered.iterdir(), *pickup.iterdir()]
    message_ids = Counter(parse_pickup_file(path.read_bytes()).content.split(b"Message-ID: ")[1].split(b"\r\n")[0]
                          for path in sent)
    assert len(sent) == len(files)
    assert set(message_ids.values()) == {1}
    assert [path.name for path in root.iterdir() if path.is_file()] == [], "no staging file is left behind"
    assert {path.name: path.read_bytes() for path in (root / mailroot.DROP).iterdir()} == files


def long_name(stem_character: str, size: int, suffix: str) -> str:
    """Return a file name of exactly `size` UTF-8 bytes: "NTFS_", `stem_character` repeated, "a"s, then `suffix`."""
    room = size - len("NTFS_") - len(suffix)
    width = len(stem_character.encode())
    return "NTFS_" + stem_character * (room // width) + "a" * (room % width) + suffix


@pytest.mark.parametrize("stem_character", ["a", "碁"])
def test_archive_other_volume_long_names(tmp_path, other_volume, stem_character):
    root = tmp_path / "mailroot"
    mailroot.create_mailroot(root)
    files = {}
    for suffix in (".BAD", ".BDR"):
        name = long_name(stem_character, 250, suffix)
        assert len(name.encode()) == 250
        files[name] = f"content of {suffix}\r\n".encode()
        path = root / mailroot.BADMAIL / name
        path.write_bytes(files[name])
        os.utime(path, (path.stat().st_mtime - 10 * 86400,) * 2)
    journals = tmp_path / "journals"
    plan = mailroot_ops.plan_archive(root, 1, to=other_volume / "archive")

    outcome = mailroot_ops.execute(plan, journals)

    assert outcome.done == 2
    assert {path.name: path.read_bytes() for path in plan.destination.iterdir()} == files
    assert list((root / mailroot.BADMAIL).iterdir()) == []
    assert mailroot_ops.unfinished_journals(root, "archive", journals) == []


def test_archive_other_volume_keeps_times(tmp_path, other_volume):
    root = tmp_path / "mailroot"
    files = build_badmail(root)
    times = {}
    for number, name in enumerate(files):
        path = root / mailroot.BADMAIL / name
        # Distinct times for every file: modified 10 days and `number` minutes ago, read 5 days later.
        modified = path.stat().st_mtime - number * 60
        accessed = modified + 5 * 86400
        os.utime(path, (accessed, modified))
        times[name] = (accessed, modified)
    plan = mailroot_ops.plan_archive(root, 1, to=other_volume / "archive")

    mailroot_ops.execute(plan, tmp_path / "journals")

    copied = {path.name: path.stat() for path in plan.destination.iterdir()}
    assert set(copied) == set(files)
    # FAT stores modification times in 2-second steps, so a copy there may be up to 2 s off.
    for name, (accessed, modified) in times.items():
        assert abs(copied[name].st_mtime - modified) <= 2, name
        assert abs(copied[name].st_atime - accessed) <= 2, name
