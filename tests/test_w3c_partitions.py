"""adminkb.w3c.partitions: one layout for every partition, and dask's from_map over log files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adminkb.w3c import read_w3c
from adminkb.w3c.partitions import SMTP_FIELDS, conform, partition_columns, read_w3c_dask, read_w3c_partition

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"


def test_partition_has_fixed_columns():
    partition = read_w3c_partition(LOGS / "w3c_fields_change_midfile.log")
    assert list(partition.columns) == partition_columns(SMTP_FIELDS)
    assert str(partition["timestamp"].dtype) == "datetime64[s, UTC]"
    assert str(partition["sc-status"].dtype) == "Int64"
    assert str(partition["c-ip"].dtype) == "string"


def test_partition_keeps_values():
    frame = read_w3c(LOGS / "smtp_relay_denials.log")
    partition = read_w3c_partition(LOGS / "smtp_relay_denials.log")
    assert partition["cs-uri-query"].tolist() == frame["cs-uri-query"].tolist()
    assert partition["source_line"].tolist() == frame["source_line"].tolist()
    assert partition["timestamp"].tolist() == frame["timestamp"].tolist()


def test_conform_fills_missing_fields():
    frame = read_w3c(LOGS / "w3c_default_fields_no_date.log")
    partition = conform(frame)
    assert "cs-username" not in frame.columns
    assert partition["cs-username"].isna().all()


def test_conform_converts_zone_to_utc():
    frame = read_w3c(LOGS / "smtp_relay_denials.log", tz="Asia/Taipei")
    partition = conform(frame)
    assert partition["timestamp"].iloc[0] == pd.Timestamp("2026-03-02 01:00:00", tz="UTC")


def test_dask_from_map_one_partition_per_file():
    # dask is in the test extras, so a missing dask fails here instead of skipping.
    files = [LOGS / "smtp_relay_denials.log", LOGS / "smtp_auth_failures.log", LOGS / "w3c_fields_change_midfile.log"]
    lazy = read_w3c_dask(files)
    assert lazy.npartitions == 3
    frame = lazy.compute(scheduler="synchronous")
    expected = sum(len(read_w3c(path)) for path in files)
    assert len(frame) == expected
    assert list(frame.columns) == partition_columns(SMTP_FIELDS)
    assert set(frame["source_file"].str.rsplit("/", n=1).str[-1]) == {path.name for path in files}
