"""Matplotlib figures with Chinese labels that render, checked for missing glyphs.

A fresh Linux machine has no CJK font, and matplotlib then draws each Chinese character as an
empty box, warning "Glyph ... missing from font(s) ..." at draw time. This module picks a CJK
font that matplotlib's font manager has found (Microsoft JhengHei on Windows, Noto Sans CJK TC from
Debian's fonts-noto-cjk on Linux), puts it first in the sans-serif list, and renders figures to
PNG while turning those warnings into a list of the missing characters.

Figures are `matplotlib.figure.Figure` objects drawn with the Agg canvas, so nothing here
depends on pyplot's global state or on the backend a notebook chose.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adminkb.errors import AdminKbError, InputError
from adminkb.i18n import message

log = logging.getLogger("adminkb.plotting")

# CJK font families in order of preference. Microsoft JhengHei ships with zh-TW Windows;
# Noto Sans CJK TC comes from Debian's fonts-noto-cjk. Noto Sans TC is the Google Fonts
# build of the same design.
CJK_FONT_FAMILIES = ("Microsoft JhengHei", "Noto Sans CJK TC", "Noto Sans TC")

# Matplotlib's text for a glyph that no font in the list has, for example
# "Glyph 27599 (\N{CJK UNIFIED IDEOGRAPH-6BCF}) missing from font(s) DejaVu Sans."
# (matplotlib 3.11, matplotlib/_text_helpers.py).
_MISSING_GLYPH = re.compile(r"^Glyph (\d+) .*missing from font\(s\)")

# Pixels per inch of the PNG files.
PNG_DPI = 100


class FontNotFoundError(AdminKbError):
    """No CJK font is installed where matplotlib can find it."""

    key = "plotting.no_cjk_font"
    next_key = "plotting.no_cjk_font_next"


class MissingGlyphsError(AdminKbError):
    """A figure has characters that the chosen fonts cannot draw."""

    key = "plotting.missing_glyphs"
    next_key = "plotting.missing_glyphs_next"


def find_cjk_font() -> str | None:
    """Return the first family of CJK_FONT_FAMILIES that matplotlib can use, or None."""
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in CJK_FONT_FAMILIES:
        if family in installed:
            return family
    return None


def apply_cjk_font() -> str:
    """Put the CJK font first in matplotlib's sans-serif list and return its family name.

    Raises FontNotFoundError when none of CJK_FONT_FAMILIES is installed. The change is global
    to matplotlib in this process, which is what a notebook's plots need.
    """
    family = find_cjk_font()
    if family is None:
        raise FontNotFoundError(value=", ".join(CJK_FONT_FAMILIES))
    others = [name for name in matplotlib.rcParams["font.sans-serif"] if name != family]
    matplotlib.rcParams["font.sans-serif"] = [family, *others]
    matplotlib.rcParams["font.family"] = "sans-serif"
    # Negative numbers use the ASCII hyphen, so the sign is drawn even by a font without U+2212.
    matplotlib.rcParams["axes.unicode_minus"] = False
    return family


def new_figure(width: float = 8.0, height: float = 4.0) -> Figure:
    """Create a figure with the CJK font applied and an Agg canvas attached (size in inches)."""
    apply_cjk_font()
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


@dataclass(frozen=True)
class RenderedFigure:
    """A figure drawn to PNG, with the characters that no font could draw."""

    png: bytes
    title: str
    missing_glyphs: tuple[str, ...] = field(default=())

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        # Notebook tests compare this text, so it names only the title, never the PNG bytes.
        return message("plotting.figure_repr", title=self.title)


def _missing_character(warning_message: warnings.WarningMessage) -> str | None:
    match = _MISSING_GLYPH.match(str(warning_message.message))
    if match is None:
        return None
    return chr(int(match.group(1)))


def render_png(figure: Figure, *, strict: bool = True) -> RenderedFigure:
    """Draw `figure` to PNG bytes and collect the characters that no font could draw.

    With `strict`, missing characters raise MissingGlyphsError. Other warnings raised while
    drawing are passed on unchanged.
    """
    if figure.canvas is None or not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    buffer = BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(buffer, format="png", dpi=PNG_DPI)
    missing: list[str] = []
    for item in caught:
        character = _missing_character(item)
        if character is None:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
        elif character not in missing:
            missing.append(character)
    title = _figure_title(figure)
    if missing:
        log.warning("figure %r has %d characters no font could draw: %r", title, len(missing),
                    "".join(missing))
        if strict:
            raise MissingGlyphsError(value="".join(missing), title=title)
    return RenderedFigure(png=buffer.getvalue(), title=title, missing_glyphs=tuple(missing))


def _figure_title(figure: Figure) -> str:
    suptitle = figure.get_suptitle()
    if suptitle:
        return suptitle
    for axes in figure.axes:
        if axes.get_title():
            return axes.get_title()
    return ""


def save_png(figure: Figure, path: str | os.PathLike[str], *, overwrite: bool = False,
             strict: bool = True) -> RenderedFigure:
    """Render `figure` and write it to `path` as PNG, never leaving a partly written file.

    The PNG goes to a temporary file in the same folder, which then replaces `path`. An
    existing `path` raises InputError unless `overwrite` is set.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError("plotting.file_exists", value=str(target), next_key="plotting.file_exists_next")
    if not target.parent.is_dir():
        raise InputError("plotting.folder_not_found", value=str(target.parent),
                         next_key="plotting.folder_not_found_next")
    rendered = render_png(figure, strict=strict)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(rendered.png)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return rendered
