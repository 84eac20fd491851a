"""Saved inventories and the changes between two scans of a mailroot."""

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from adminkb.errors import InputError
from adminkb.mailroot_scan import diff_inventories, load_inventory, save_inventory, scan_mailroot
from clirun import run_area

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "mailroot_sample"
NOW = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)
QUEUED = "NTFS_00c1b2c301dca9e200000003"
DROPPED = "Drop/NTFS_00d1b2c301dca9e200000004.EML"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    copy = tmp_path / "mailroot"
    shutil.copytree(SAMPLE, copy)
    return copy


def change_the_tree(root):
    """Move one message from Queue to Badmail, grow one, add one and delete one file."""
    (root / "Queue" / f"{QUEUED}.EML").rename(root / "Badmail" / f"{QUEUED}.BAD")
    with open(root / DROPPED, "ab") as handle:
        handle.write(b"more body\r\n")
    (root / "Pickup" / "late.eml").write_bytes(b"X-Sender: app@example.com\r\nX-Receiver: a@example.net\r\n"
                                               b"Subject: late\r\nMessage-ID: <late@example.com>\r\n\r\nbody\r\n")
    (root / "Badmail" / "NTFS_01a1b2c301dca9e200000006.BDP").unlink()


def test_unchanged_tree_has_no_changes(root):
    first = scan_mailroot(root, now=NOW)
    assert diff_inventories(first, scan_mailroot(root, now=NOW)).empty


def test_diff_finds_each_kind_of_change(root):
    before = scan_mailroot(root, now=NOW)
    change_the_tree(root)
    changes = diff_inventories(before, scan_mailroot(root, now=NOW))
    by_change = {change: changes[changes["change"] == change] for change in ("new", "gone", "moved", "grown")}
    assert by_change["new"]["new_path"].tolist() == ["Pickup/late.eml"]
    assert by_change["gone"]["old_path"].tolist() == ["Badmail/NTFS_01a1b2c301dca9e200000006.BDP"]
    moved = by_change["moved"].iloc[0]
    assert (moved["old_role"], moved["new_role"]) == ("Queue", "Badmail")
    assert moved["new_path"] == f"Badmail/{QUEUED}.BAD"
    grown = by_change["grown"].iloc[0]
    assert grown["new_path"] == DROPPED
    assert grown["new_size"] - grown["old_size"] == len(b"more body\r\n")
    assert len(changes) == 4
    assert changes["change"].tolist() == ["new", "gone", "moved", "grown"]


def test_moved_pairs_by_message_id(root):
    before = scan_mailroot(root, now=NOW)
    source = root / DROPPED
    source.rename(root / "Pickup" / "renamed.eml")
    changes = diff_inventories(before, scan_mailroot(root, now=NOW))
    assert changes["change"].tolist() == ["moved"]
    assert changes.iloc[0]["message_id"] == "<meeting-3@example.net>"
    assert changes.iloc[0]["new_path"] == "Pickup/renamed.eml"


def test_second_copy_counts_as_new(root):
    before = scan_mailroot(root, now=NOW)
    shutil.copy(root / DROPPED, root / "Pickup" / "copy.eml")
    changes = diff_inventories(before, scan_mailroot(root, now=NOW))
    assert changes["change"].tolist() == ["new"]
    assert changes.iloc[0]["new_path"] == "Pickup/copy.eml"


def test_saved_inventory_round_trip(root, tmp_path):
    inventory = scan_mailroot(root, now=NOW)
    path = save_inventory(inventory, "before", tmp_path / "state")
    assert path == tmp_path / "state" / "before.parquet"
    loaded = load_inventory("before", tmp_path / "state")
    assert loaded["path"].tolist() == inventory["path"].tolist()
    assert loaded["recipients"].tolist() == inventory["recipients"].tolist()
    assert diff_inventories(loaded, inventory).empty


def test_save_keeps_existing_inventory(root, tmp_path):
    inventory = scan_mailroot(root, now=NOW)
    path = save_inventory(inventory, "before", tmp_path)
    before = path.read_bytes()
    with pytest.raises(InputError) as raised:
        save_inventory(inventory.head(2), "before", tmp_path)
    assert "--force" in str(raised.value)
    assert path.read_bytes() == before
    save_inventory(inventory.head(2), "before", tmp_path, replace=True)
    assert len(load_inventory("before", tmp_path)) == 2


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 101])
def test_inventory_name_rejected(tmp_path, name, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as raised:
        load_inventory(name, tmp_path)
    assert raised.value.key == "mailroot.inventory_bad_name"


def test_missing_inventory_lists_saved_names(root, tmp_path):
    save_inventory(scan_mailroot(root, now=NOW), "monday", tmp_path)
    with pytest.raises(InputError) as raised:
        load_inventory("tuesday", tmp_path)
    assert "tuesday" in str(raised.value)
    assert "monday" in str(raised.value)


def test_file_that_is_not_inventory(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError) as raised:
        load_inventory("broken", tmp_path)
    assert raised.value.key == "mailroot.inventory_unreadable"


def test_save_into_file_path_fails_clearly(root, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(InputError) as raised:
        save_inventory(scan_mailroot(root, now=NOW), "x", blocker / "inventories")
    assert raised.value.key == "mailroot.inventory_write_failed"
    assert blocker.read_text() == "a file where the folder should be"


def test_cli_save_then_diff(root, tmp_path, capsys):
    state = str(tmp_path / "state")
    assert run_area("mailroot", "scan", str(root), "--save", "before", "--state-dir", state, "--format", "json") == 1
    capsys.readouterr()
    assert run_area("mailroot", "diff", str(root), "--since", "before", "--state-dir", state) == 0
    assert "0 files" in capsys.readouterr().out
    change_the_tree(root)
    assert run_area("mailroot", "diff", str(root), "--since", "before", "--state-dir", state,
                    "--format", "json") == 1
    document = json.loads(capsys.readouterr().out)
    assert sorted(change["change"] for change in document["changes"]) == ["gone", "grown", "moved", "new"]
    assert run_area("mailroot", "diff", str(root), "--since", "before", "--state-dir", state) == 1
    table = capsys.readouterr().out
    assert "moved" in table
    assert f"Badmail/{QUEUED}.BAD" in table


def test_cli_scan_save_without_force(root, tmp_path, capsys):
    state = str(tmp_path / "state")
    run_area("mailroot", "scan", str(root), "--save", "before", "--state-dir", state)
    with pytest.raises(InputError):
        run_area("mailroot", "scan", str(root), "--save", "before", "--state-dir", state)
    assert run_area("mailroot", "scan", str(root), "--save", "before", "--state-dir", state, "--force") == 1
