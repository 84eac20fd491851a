"""Runbook tables: catalog headers, procedure order and the values each result carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from adminkb.imaging import Machine, check_intelppm, lint_sysprep, plan_split
from adminkb.imaging.unattend import check_unattend, generate_unattend
from adminkb.ui.tables import hal_table, intelppm_table, lint_table, rows_table, split_table, unattend_table

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def test_hal_table_verdicts():
    table = hal_table([("UP to MP", Machine(True, True, 1), Machine(True, True, 2)),
                       ("PIC to APIC", Machine(True, False, 1), Machine(True, True, 1))])
    assert list(table.columns) == ["移動", "主機的 HAL", "目標電腦的 HAL", "判斷", "sysprep.inf 需要的設定", "原因"]
    assert table.iloc[0]["判斷"].startswith("微軟支援")
    assert table.iloc[0]["sysprep.inf 需要的設定"] == 'UpdateHAL = "ACPIAPIC_MP,%WINDIR%\\Inf\\Hal.inf"'
    assert table.iloc[1]["判斷"].startswith("微軟不支援")
    assert table.iloc[1]["sysprep.inf 需要的設定"] == ""


def test_lint_table_rows():
    table = lint_table(lint_sysprep(DATA / "sysprep" / "bad_timezone_hex.inf"))
    assert "timezone-hex" in list(table["規則"])
    assert list(table.index) == list(range(1, len(table) + 1))


def test_split_table_ghost_spans():
    table = split_table(plan_split(3_200_000_000, "cd80"))
    values = dict(zip(table["項目"], table["值"]))
    assert values["分割檔名稱"].startswith("XP.GHO, XP001.GHS")
    assert values["需要的媒體數量"] == "5"


def test_intelppm_table():
    table = intelppm_table(check_intelppm(DATA / "reg" / "intelppm_intel_master.reg"))
    assert list(table["控制集"]) == ["ControlSet001", "ControlSet002"]


def test_unattend_table_empty_for_good_file():
    table = unattend_table(check_unattend(generate_unattend()))
    assert table.empty
    assert list(table.columns) == ["行", "規則", "問題", "修正方式"]


def test_rows_table_uses_catalog_headers():
    table = rows_table([{"setting": "a", "value": "1"}], ("setting", "value"))
    assert list(table.columns) == ["設定", "值"]
