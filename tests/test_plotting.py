"""adminkb.plotting: Chinese labels render with the installed CJK font, and missing glyphs are caught.

The CJK font is a peer like Postfix or swaks: without it the tests skip with the reason, unless
ADMINKB_REQUIRE_PEERS=1, which makes a missing font a failure. The `cjk_font` fixture in
conftest.py applies that rule here and in the smtplog plot tests.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from adminkb import plotting
from adminkb.errors import InputError
from adminkb.i18n import message
from cjkfont import require_cjk_font

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A private-use character: no font in the fallback list has a glyph for it.
PRIVATE_USE_CHARACTER = "\ue000"


def zh_tw_figure(title: str):
    figure = plotting.new_figure()
    axes = figure.add_subplot()
    axes.bar(["用戶端", "寄件者", "收件者"], [3, 5, 2])
    axes.set_title(title)
    axes.set_xlabel("轉送遭拒（Relay）")
    axes.set_ylabel("郵件數")
    return figure


def test_zh_tw_labels_have_no_missing_glyph(cjk_font):
    title = "每小時連線數（台北時間）"
    rendered = plotting.render_png(zh_tw_figure(title))
    assert rendered.missing_glyphs == ()
    assert rendered.png.startswith(PNG_SIGNATURE)
    assert rendered.title == title


def test_apply_cjk_font_puts_font_first(cjk_font):
    family = plotting.apply_cjk_font()
    assert family == cjk_font
    assert matplotlib.rcParams["font.sans-serif"][0] == cjk_font
    assert matplotlib.rcParams["font.family"] == ["sans-serif"]


def test_latin_only_font_misses_chinese(cjk_font):
    # The detector must see the very failure it exists for: Chinese drawn with a Latin font.
    figure = plotting.new_figure()
    axes = figure.add_subplot()
    axes.set_title("郵件", fontfamily="DejaVu Sans")
    rendered = plotting.render_png(figure, strict=False)
    assert set(rendered.missing_glyphs) == {"郵", "件"}


def test_missing_glyph_raises_when_strict(cjk_font):
    figure = zh_tw_figure(f"記錄 {PRIVATE_USE_CHARACTER}")
    with pytest.raises(plotting.MissingGlyphsError) as raised:
        plotting.render_png(figure)
    assert raised.value.value == PRIVATE_USE_CHARACTER
    assert PRIVATE_USE_CHARACTER in str(raised.value)


def test_missing_glyph_listed_once(cjk_font):
    figure = zh_tw_figure(f"{PRIVATE_USE_CHARACTER}{PRIVATE_USE_CHARACTER}")
    rendered = plotting.render_png(figure, strict=False)
    assert rendered.missing_glyphs == (PRIVATE_USE_CHARACTER,)
    assert rendered.png.startswith(PNG_SIGNATURE)


def test_repr_names_title_only(cjk_font):
    rendered = plotting.render_png(zh_tw_figure("每小時郵件數"))
    assert repr(rendered) == message("plotting.figure_repr", title="每小時郵件數")
    assert rendered._repr_png_() == rendered.png


def test_save_png_writes_file(cjk_font, tmp_path: Path):
    target = tmp_path / "hourly.png"
    plotting.save_png(zh_tw_figure("每小時郵件數"), target)
    assert target.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hourly.png"]


def test_save_png_keeps_existing_file(cjk_font, tmp_path: Path):
    target = tmp_path / "hourly.png"
    target.write_bytes(b"the admin's own file")
    with pytest.raises(InputError) as raised:
        plotting.save_png(zh_tw_figure("每小時郵件數"), target)
    assert raised.value.value == str(target)
    assert target.read_bytes() == b"the admin's own file"


def test_save_png_overwrite_replaces(cjk_font, tmp_path: Path):
    target = tmp_path / "hourly.png"
    target.write_bytes(b"old")
    plotting.save_png(zh_tw_figure("每小時郵件數"), target, overwrite=True)
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_save_png_missing_glyph_writes_nothing(cjk_font, tmp_path: Path):
    target = tmp_path / "hourly.png"
    with pytest.raises(plotting.MissingGlyphsError):
        plotting.save_png(zh_tw_figure(PRIVATE_USE_CHARACTER), target)
    assert list(tmp_path.iterdir()) == []


def test_save_png_missing_folder(cjk_font, tmp_path: Path):
    target = tmp_path / "absent" / "hourly.png"
    with pytest.raises(InputError) as raised:
        plotting.save_png(zh_tw_figure("每小時郵件數"), target)
    assert raised.value.value == str(target.parent)


def test_no_cjk_font_raises(monkeypatch):
    monkeypatch.setattr(plotting, "CJK_FONT_FAMILIES", ("No Such Font Family 1",))
    assert plotting.find_cjk_font() is None
    with pytest.raises(plotting.FontNotFoundError) as raised:
        plotting.apply_cjk_font()
    assert "No Such Font Family 1" in str(raised.value)
    assert "fonts-noto-cjk" in str(raised.value)


def test_missing_font_fails_when_peers_required(monkeypatch):
    monkeypatch.setattr(plotting, "CJK_FONT_FAMILIES", ("No Such Font Family 1",))
    monkeypatch.setenv("ADMINKB_REQUIRE_PEERS", "1")
    with pytest.raises(pytest.fail.Exception) as raised:
        require_cjk_font()
    assert "No Such Font Family 1" in str(raised.value)
    assert "ADMINKB_REQUIRE_PEERS=1" in str(raised.value)


def test_missing_font_skips_otherwise(monkeypatch):
    monkeypatch.setattr(plotting, "CJK_FONT_FAMILIES", ("No Such Font Family 1",))
    monkeypatch.delenv("ADMINKB_REQUIRE_PEERS", raising=False)
    with pytest.raises(pytest.skip.Exception) as raised:
        require_cjk_font()
    assert "fonts-noto-cjk" in str(raised.value)
