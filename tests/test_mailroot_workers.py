"""The mailroot scan in worker processes: the same inventory as in one process, and a safe fallback."""

import csv
import io
import logging
import multiprocessing
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adminkb.cli
from adminkb import mailroot_read, mailroot_scan
from adminkb.mailroot_read import scan_chunk
from adminkb.mailroot_scan import scan_mailroot

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "mailroot_sample"
NOW = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """The sample mailroot plus messages with notes, in chunks of 3 files so that Badmail sets straddle chunks."""
    monkeypatch.setenv("ADMINKB_LANG", "en")
    monkeypatch.setattr(mailroot_scan, "CHUNK_FILES", 3)
    root = tmp_path / "mailroot"
    shutil.copytree(SAMPLE, root)
    # Distinct reasons, so that a reason copied to the wrong .BAD shows.
    for stem, reason, code in (("NTFS_01b1b2c301dca9e200000007", "The destination server does not exist.", "0xC00402C7"),
                               ("NTFS_01d1b2c301dca9e200000009", "Maximum hop count was exceeded.", "0xC00402CE")):
        text = (f"Unable to deliver this message because the follow error was encountered: \"{reason}\".\r\n\r\n"
                f"The specific error code was {code}.\r\n")
        (root / "Badmail" / f"{stem}.BDR").write_bytes(text.encode("cp950"))
    (root / "Queue" / "empty.EML").write_bytes(b"")
    (root / "Queue" / "binary.EML").write_bytes(b"\x00\x01 not mail at all\r\n\r\n")
    (root / "Drop" / "big5.eml").write_bytes("X-Sender: a@example.com\r\nX-Receiver: b@example.com\r\n"
                                             "Subject: 會議通知\r\n\r\nbody\r\n".encode("cp950"))
    return root


def test_workers_give_the_same_inventory(tree, caplog):
    alone = scan_mailroot(tree, now=NOW, workers=1)
    with caplog.at_level(logging.INFO, logger="adminkb.mailroot_scan"):
        spread = scan_mailroot(tree, now=NOW, workers=2)
    pd.testing.assert_frame_equal(spread, alone)
    assert "in 2 worker processes" in caplog.text
    assert "starts over in this process" not in caplog.text
    # The notes are written in the workers, in the language the parent set.
    assert spread.loc[spread["name"] == "big5.eml", "notes"].item() == "a header contains unencoded Big5 (cp950) text"
    # Each .BAD carries the reason of its own .BDR, also where chunks of 3 split the set.
    badmail = spread[spread["role"] == "Badmail"].set_index("name")
    for stem in ("NTFS_01a1b2c301dca9e200000006", "NTFS_01b1b2c301dca9e200000007", "NTFS_01d1b2c301dca9e200000009"):
        bad, reason = badmail.loc[f"{stem}.BAD"], badmail.loc[f"{stem}.BDR"]
        assert (bad["reason"], bad["error_code"]) == (reason["reason"], reason["error_code"])
    assert badmail.loc["NTFS_01d1b2c301dca9e200000009.BAD", "error_code"] == "0xC00402CE"
    assert badmail.loc["NTFS_01b1b2c301dca9e200000007.BAD", "reason"] == "The destination server does not exist."
    assert badmail.loc["NTFS_01a1b2c301dca9e200000006.BDP", "reason"] == ""
    assert badmail.loc["NTFS_01c1b2c301dca9e200000008.BDR", "notes"] == "orphan .BDR: its .BAD is gone (common after a clean-up script deleted .BAD files)"


def test_orphan_note_joins_other_notes(tree):
    (tree / "Badmail" / "NTFS_01e1b2c301dca9e20000000a.BDR").write_bytes(b"")
    (tree / "Badmail" / "NTFS_01e1b2c301dca9e20000000a.BDP").write_bytes(b"\x00" * 8)
    inventory = scan_mailroot(tree, now=NOW, workers=2).set_index("name")
    orphan = "orphan .{}: its .BAD is gone (common after a clean-up script deleted .BAD files)"
    assert inventory.loc["NTFS_01e1b2c301dca9e20000000a.BDR", "notes"] == "empty file (0 bytes); " + orphan.format("BDR")
    assert inventory.loc["NTFS_01e1b2c301dca9e20000000a.BDP", "notes"] == orphan.format("BDP")
    assert inventory.loc["NTFS_01a1b2c301dca9e200000006.BDP", "notes"] == ""


def test_unlistable_folder_logged_once(tree, monkeypatch, caplog):
    real_scandir = os.scandir

    def denied_scandir(path):
        if str(path).endswith("Drop"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(mailroot_scan.os, "scandir", denied_scandir)
    with caplog.at_level(logging.WARNING, logger="adminkb.mailroot_scan"):
        inventory = scan_mailroot(tree, now=NOW, workers=1)
    assert caplog.text.count("cannot list folder") == 1
    assert "Drop" not in set(inventory["role"])


def _die_in_worker(files, ansi_encoding):
    """scan_chunk that ends any worker process abruptly, as a crash or an unimportable script would."""
    if multiprocessing.current_process().name != "MainProcess":
        os._exit(3)
    return scan_chunk(files, ansi_encoding)


def test_broken_workers_fall_back(tree, monkeypatch, caplog):
    expected = scan_mailroot(tree, now=NOW, workers=1)
    monkeypatch.setattr(mailroot_scan, "scan_chunk", _die_in_worker)
    with caplog.at_level(logging.WARNING, logger="adminkb.mailroot_scan"):
        inventory = scan_mailroot(tree, now=NOW, workers=2)
    pd.testing.assert_frame_equal(inventory, expected)
    assert "starts over in this process" in caplog.text


def test_small_trees_stay_in_one_process(tree, caplog):
    with caplog.at_level(logging.INFO, logger="adminkb.mailroot_scan"):
        scan_mailroot(tree, now=NOW)
    assert "worker processes" not in caplog.text


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_below_one_are_refused(tree, workers):
    with pytest.raises(ValueError, match=f"invalid workers value {workers}"):
        scan_mailroot(tree, workers=workers)


@pytest.mark.parametrize("value", ["0", "9", "two"])
def test_cli_workers_out_of_range(tree, value, capsys):
    with pytest.raises(SystemExit) as stopped:
        adminkb.cli.main(["mailroot", "summary", str(tree), "--workers", value])
    assert stopped.value.code == 2
    errors = capsys.readouterr().err
    assert "--workers" in errors
    assert value in errors


def test_cli_workers_option_scans(tree, capsys):
    status = adminkb.cli.main(["mailroot", "scan", str(tree), "--workers", "2", "--format", "csv", "--no-progress"])
    output = capsys.readouterr().out
    assert status in (0, 1)
    assert "big5.eml" in output
    records = list(csv.reader(io.StringIO(output.lstrip("\ufeff"))))
    assert len(records) == 1 + len(scan_mailroot(tree, workers=1))


def test_cli_bar_only_on_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    queue = tmp_path / "Queue"
    queue.mkdir()
    for number in range(mailroot_scan.PROGRESS_THRESHOLD + 10):
        (queue / f"NTFS_{number:024x}.EML").write_bytes(b"X-Receiver: user@example.net\r\n\r\nbody\r\n")
    adminkb.cli.main(["mailroot", "summary", str(tmp_path), "--workers", "1"])
    assert "%|" not in capsys.readouterr().err
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    adminkb.cli.main(["mailroot", "summary", str(tmp_path), "--workers", "1"])
    assert "%|" in capsys.readouterr().err


def _reference_header_end(data: bytes) -> int | None:
    """Where the header section ends, by the plain definition: the first CRLF CRLF or LF LF."""
    if data.startswith((b"\r\n", b"\n")):
        return 0
    found = [position for position in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if position >= 0]
    return min(found) if found else None


@given(st.binary(max_size=60).map(lambda raw: bytes(b"\r\na"[value % 3] for value in raw)))
def test_header_end_matches_reference(data):
    assert mailroot_read._header_end(data, 0) == _reference_header_end(data)


def test_header_end_from_start_offset():
    data = b"Subject: x\r\n" + b"Received: y\r\n" * 400 + b"\r\nbody"
    start = len(data) - 40
    assert mailroot_read._header_end(data, start) == data.index(b"\r\n\r\n")
    assert mailroot_read._header_end(data, data.index(b"body")) is None
