"""Kill archive and resubmit runs with SIGKILL at chosen points, then check every message and rerun.

Each case plans and executes an operation in a subprocess on a few hundred files. The
ADMINKB_OPS_CRASH_AT hook makes it kill itself the n-th time it reaches a point. The points are
right after a journal line, after a rename but before its journal line, after a staging file
is written, and after a zip is written or renamed into place. The tree is then checked, and the same
`adminkb mailroot` command is run again, which must finish the job from the journal.
"""

import os
import signal
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
operation, root, state, *rest = sys.argv[1:]
if operation == "archive":
    plan = mailroot_ops.plan_archive(root, 1, **{rest[0]: rest[1]})
else:
    plan = mailroot_ops.plan_resubmit(root, rest)
mailroot_ops.execute(plan, state)
"""


def run_killed(arguments: list[str], crash_at: str) -> None:
    """Run an operation in a subprocess that kills itself at `crash_at`, and check that it did."""
    environment = {**os.environ, mailroot_ops.CRASH_ENV: crash_at, "ADMINKB_LANG": "en"}
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
