"""The message catalog: both languages complete, same placeholders, switchable at run time."""

import ast
import re
from pathlib import Path

import pytest

from adminkb import i18n
from adminkb.i18n import LANGUAGES, catalog, message, placeholders

SIMPLIFIED_ONLY = set("们这说发务认为网络设数据证书远户录统应对没时间实现问题开关个与专业两严乱产从优会传体")


def test_catalog_not_empty():
    assert len(catalog()) >= 20


@pytest.mark.parametrize("key", sorted(catalog()))
def test_every_language_present(key):
    for language in LANGUAGES:
        text = catalog()[key][language]
        assert isinstance(text, str) and text.strip(), f"{key} has no {language} text"


@pytest.mark.parametrize("key", sorted(catalog()))
def test_same_placeholders(key):
    entry = catalog()[key]
    assert placeholders(entry["zh-TW"]) == placeholders(entry["en"]), key


@pytest.mark.parametrize("key", sorted(catalog()))
def test_zh_tw_reads_traditional(key):
    text = catalog()[key]["zh-TW"]
    assert not (set(text) & SIMPLIFIED_ONLY), f"{key}: simplified characters {set(text) & SIMPLIFIED_ONLY}"
    # A template of placeholders and punctuation only ("{name}: {value}") has no words to translate.
    english_words = re.sub(r"\{[^}]*\}|%\(\w+\)\w|%\w", "", catalog()[key]["en"])
    if re.search(r"[A-Za-z]{2,}", english_words):
        assert re.search(r"[\u4e00-\u9fff]", text), f"{key}: the zh-TW text has no Chinese"


ZHTW_CHECK = Path(__file__).resolve().parents[2] / "shared" / "tools" / "zhtw_check.py"
# Terms that the checker's mainland patterns match but that Taiwan's Windows itself uses:
# regedit's own message "不是登錄指令碼" and Microsoft 365's 租用戶 (tenant).
TAIWAN_WINDOWS_TERMS = ("登錄指令碼", "租用戶")


def _mainland_terms() -> list[re.Pattern]:
    """Return the mainland IT terms of the team's zh-TW checker, read from its source."""
    source = ZHTW_CHECK.read_text(encoding="utf-8")
    start = source.index("MAINLAND_TERMS = [")
    end = source.index("]", source.index("\n]", start)) + 1
    return [re.compile(term) for term in ast.literal_eval(source[start + len("MAINLAND_TERMS = "):end])]


@pytest.mark.skipif(not ZHTW_CHECK.is_file(),
                    reason="../shared/tools/zhtw_check.py (the team's zh-TW prose checker) is not beside this checkout")
def test_zh_tw_uses_taiwan_terms():
    terms = _mainland_terms()
    found = []
    for key, texts in sorted(catalog().items()):
        text = texts["zh-TW"]
        for allowed in TAIWAN_WINDOWS_TERMS:
            text = text.replace(allowed, "")
        found += [f"{key}: {match.group(0)}" for term in terms if (match := term.search(text))]
    assert not found, found


def test_default_language_is_zh_tw(monkeypatch):
    monkeypatch.delenv("ADMINKB_LANG", raising=False)
    assert i18n.current_language() == "zh-TW"
    assert message("cli.interrupted") == "已中斷。"


def test_english_by_variable(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert message("cli.interrupted") == "Interrupted."


def test_unknown_language_falls_back(monkeypatch, caplog):
    monkeypatch.setenv("ADMINKB_LANG", "fr")
    assert i18n.current_language() == "zh-TW"
    assert "ADMINKB_LANG='fr' is not a supported language" in caplog.text


@pytest.mark.parametrize("value", ["en", "EN", "en_US.UTF-8", "en-GB"])
def test_english_spellings(monkeypatch, value):
    monkeypatch.setenv("ADMINKB_LANG", value)
    assert i18n.current_language() == "en"


@pytest.mark.parametrize("value", ["zh-TW", "zh_TW.UTF-8", "zh-Hant", "ZH", ""])
def test_chinese_spellings(monkeypatch, value):
    monkeypatch.setenv("ADMINKB_LANG", value)
    assert i18n.current_language() == "zh-TW"


def test_values_filled_in(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert message("errors.invalid_input", value="abc") == "The input cannot be used: abc"


def test_message_loads_only_its_area(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    i18n._area_messages.cache_clear()
    try:
        assert message("mailroot.cli.none") == "(none)"
        assert i18n._area_messages.cache_info().currsize == 1
    finally:
        i18n._area_messages.cache_clear()


def test_missing_key_raises():
    with pytest.raises(KeyError):
        message("no.such.message")
