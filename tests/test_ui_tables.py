"""Runbook tables: catalog headers, procedure order and the values each result carries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adminkb.imaging import Machine, check_intelppm, lint_sysprep, plan_split
from adminkb.imaging.unattend import check_unattend, generate_unattend
from adminkb.ui.tables import hal_table, intelppm_table, lint_table, rows_table, split_table, unattend_table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


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


# Full cell text: pandas would cut cells after 50 characters and end them in "...".

def table_texts(table) -> tuple[str, str]:
    return repr(table), table._repr_html_()


def test_split_table_shows_whole_commands():
    plan = plan_split(6_400_000_000, "cd80")
    text, html = table_texts(split_table(plan))
    for value in (plan.capture_command, plan.restore_command, ", ".join(plan.parts)):
        assert len(value) > 50
        assert value in text
        assert value.replace("&", "&amp;") in html
    assert "..." not in text
    assert "..." not in html


def test_lint_table_shows_whole_problem():
    result = lint_sysprep(DATA / "sysprep" / "bad_timezone_hex.inf")
    text, html = table_texts(lint_table(result))
    problem = result.findings[0].problem
    assert len(problem) > 50
    assert problem in text
    assert problem in html


def test_hal_table_shows_whole_reason():
    text, html = table_texts(hal_table([("UP to MP", Machine(True, True, 1), Machine(True, True, 2))]))
    assert "..." not in text
    assert "..." not in html
    assert 'UpdateHAL = "ACPIAPIC_MP,%WINDIR%\\Inf\\Hal.inf"' in text


def test_empty_lint_table_says_no_findings():
    text, html = table_texts(lint_table(lint_sysprep(DATA / "sysprep" / "clean_minimal.inf")))
    assert text == "沒有發現問題。"
    assert html == "<p>沒有發現問題。</p>"


def test_empty_unattend_table_says_no_findings():
    text, _ = table_texts(unattend_table(check_unattend(generate_unattend())))
    assert text == "沒有發現問題。"
    assert "Empty DataFrame" not in text


def test_split_table_size_in_chinese():
    values = dict(zip(*[split_table(plan_split(3_200_000_000, "cd80"))[column] for column in ("項目", "值")]))
    assert values["映像檔大小"] == "3,200,000,000 位元組"


def test_split_table_dism_row_is_split():
    table = split_table(plan_split(6_000_000_000, "usb-fat32"))
    labels = dict(zip(table["值"], table["項目"]))
    split_row = next(value for value in labels if value.startswith("Dism /Split-Image"))
    assert labels[split_row].startswith("分割命令")
    assert "擷取命令" not in list(table["項目"])


def test_ghost_capture_row_is_capture():
    table = split_table(plan_split(3_200_000_000, "cd80"))
    assert "擷取命令" in list(table["項目"])


def test_english_split_bytes(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    table = split_table(plan_split(1_000, "cd80"))
    assert table.iloc[0]["Value"] == "1,000 bytes"



def test_hal_table_board_maker_verdict():
    table = hal_table([("ASUS to MSI", Machine(True, True, 1, board_maker="ASUS"),
                        Machine(True, True, 2, board_maker="MSI"))])
    assert table.iloc[0]["判斷"] == "微軟不支援：主機板製造商不同"
    assert "KB 828287" in table.iloc[0]["原因"]


def test_runbook_tables_not_cut():
    notebook = json.loads((ROOT / "notebooks" / "10_xp_universal_image.ipynb").read_text("utf-8"))
    checked = 0
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            html = "".join(data.get("text/html", ""))
            for cell_text in re.findall(r"<td>(.*?)</td>", html, flags=re.DOTALL):
                checked += 1
                assert not cell_text.strip().endswith("..."), cell_text
            if "text/html" in data and "<table" in html:
                for line in "".join(data.get("text/plain", "")).splitlines():
                    assert not line.rstrip(" \\").endswith("..."), line
    assert checked > 0
