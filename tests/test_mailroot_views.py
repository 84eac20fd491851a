"""Views of a mailroot for people: file times from names, roles, readable tables and the age chart."""

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from adminkb import mailroot, mailroot_ops, mailroot_scan

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "mailroot_sample"
ARRIVAL = datetime(2026, 3, 2, 1, 15, 7, 123456, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")


def test_arrival_time_round_trip():
    name = mailroot.ntfs_file_name(mailroot.filetime_from_datetime(ARRIVAL), 7)
    assert mailroot.arrival_time_from_name(name) == ARRIVAL
    assert mailroot.arrival_time_from_name(name.replace(".EML", ".BDR")) == ARRIVAL


@pytest.mark.parametrize("name", ["order-1.eml", "NTFS_xyz.EML", "NTFS_0123.EML", ""])
def test_arrival_time_of_other_names(name):
    assert mailroot.arrival_time_from_name(name) is None


def test_set_times_from_names(tmp_path):
    root = mailroot.create_mailroot(tmp_path / "mailroot")
    name = mailroot.ntfs_file_name(mailroot.filetime_from_datetime(ARRIVAL), 1)
    queued = root / "Queue" / name
    queued.write_bytes(b"Subject: x\r\n\r\n")
    other = root / "Pickup" / "order-1.eml"
    other.write_bytes(b"Subject: y\r\n\r\n")
    other_time = other.stat().st_mtime
    assert mailroot.set_times_from_names(root) == 1
    assert datetime.fromtimestamp(queued.stat().st_mtime, timezone.utc) == ARRIVAL
    assert other.stat().st_mtime == other_time


def test_roles_table_lists_every_folder():
    table = mailroot.roles_table()
    assert table["Folder"].tolist() == list(mailroot.FOLDER_NAMES)
    assert table["Purpose"].str.len().min() > 10


def test_readable_inventory(tmp_path):
    root = tmp_path / "mailroot"
    shutil.copytree(SAMPLE, root)
    now = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)
    stamp = (now - timedelta(days=1, hours=2, minutes=3)).timestamp()
    for path in root.rglob("*"):
        os.utime(path, (stamp, stamp))
    inventory = mailroot_scan.scan_mailroot(root, now=now)
    view = mailroot_scan.readable(inventory, ["name", "kind", "age", "recipients"])
    assert list(view.columns) == ["File", "Kind", "Age", "Recipients (X-Receiver)"]
    row = view[view["File"] == "NTFS_00a1b2c301dca9e200000001.EML"].iloc[0]
    assert row["Kind"] == "message"
    assert row["Age"] == "1 d 02:03"
    assert row["Recipients (X-Receiver)"] == "buyer@example.net\naudit@partner.example.net"


def test_readable_fills_missing_sizes():
    changes = pd.DataFrame({"change": ["new"], "old_size": pd.array([None], dtype="Int64")})
    view = mailroot_scan.readable(changes)
    assert view.iloc[0].tolist() == ["new", "-"]


def test_age_figure_renders(tmp_path):
    root = tmp_path / "mailroot"
    shutil.copytree(SAMPLE, root)
    inventory = mailroot_scan.scan_mailroot(root)
    rendered = mailroot_scan.age_figure(inventory)
    assert rendered.png.startswith(b"\x89PNG")
    assert rendered.missing_glyphs == ()
    assert rendered.title == "Messages per folder by age"


def test_journal_table(tmp_path):
    root = tmp_path / "mailroot"
    shutil.copytree(SAMPLE, root)
    plan = mailroot_ops.plan_resubmit(root, [root / "Drop" / "NTFS_00d1b2c301dca9e200000004.EML"])
    outcome = mailroot_ops.execute(plan, tmp_path / "journals")
    table = mailroot_ops.journal_table(outcome.journal)
    assert table["event"].tolist() == ["staged", "done", "finished"]
    assert table["source"].tolist()[:2] == ["Drop/NTFS_00d1b2c301dca9e200000004.EML"] * 2
    assert mailroot_scan.readable(table)["Journal event"].tolist() == ["staged", "done", "finished"]
