"""Tests for `adminkb export`: the offline site, its pages, and the safety of its output folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from adminkb.errors import InputError
from adminkb.export import export_site, external_resources, is_local_url
from adminkb.export.render import render_saved_widget
from adminkb.runbooks import NOTEBOOKS_DIR, RUNBOOKS
from tests.clirun import run_area
from tests.unprivileged import needs_mode_bits, run_python

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


# --- the external-resource check --------------------------------------------------------------

@pytest.mark.parametrize("html", [
    '<script src="https://cdnjs.example.com/require.js"></script>',
    '<link rel="stylesheet" href="http://example.com/site.css">',
    '<img src="//example.net/logo.png">',
    '<img srcset="local.png 1x, https://example.com/big.png 2x">',
    '<iframe src="https://example.com/frame"></iframe>',
    '<object data="https://example.com/plugin"></object>',
    '<embed src="https://example.com/movie">',
    '<video poster="https://example.com/poster.jpg"></video>',
    '<source src="https://example.com/clip.mp4">',
    '<base href="https://example.com/">',
    '<meta http-equiv="refresh" content="0; url=https://example.com/">',
    '<style>body { background: url("https://example.com/bg.png"); }</style>',
    "<style>@import 'https://example.com/more.css';</style>",
    '<style>@import url(https://example.com/more.css);</style>',
    '<div style="background-image: url(https://example.com/bg.png)"></div>',
    '<script src="/usr/share/javascript/jquery.js"></script>',
    '<img src="../outside.png">',
    '<link rel="icon" href="file:///etc/icon.png">',
    # Legacy background attributes.
    '<table background="https://example.com/bg.png"><tr><td>x</td></tr></table>',
    '<body background="//example.com/bg.png">',
    '<table><tr><td background="https://example.com/cell.png">x</td></tr></table>',
    # CSS image-set() and image() with bare strings, and CSS that hides url( or @import.
    """<div style="background-image: image-set('https://example.com/a.png' 1x)"></div>""",
    '<style>.x { background: -webkit-image-set("https://example.com/a.png" 1x, "b.png" 2x); }</style>',
    '<style>.x { background: image-set(url(https://example.com/a.png) 1x); }</style>',
    """<style>.x { background: image('https://example.com/a.png'); }</style>""",
    r'<style>body { background: u\72l(https://example.com/bg.png); }</style>',
    """<style>@import"https://example.com/more.css";</style>""",
    """<style>@import /* more rules */ 'https://example.com/more.css';</style>""",
    """<div style="background: url('https://example.com/bg.png')"></div>""",
    # <link> preloads and icons, and the other elements that load a URL.
    '<link rel="preload" as="image" href="https://example.com/hero.png">',
    '<link rel="preload" as="image" imagesrcset="local.png 1x, https://example.com/hero.png 2x">',
    '<link rel="icon" href="https://example.com/favicon.ico">',
    '<picture><source srcset="https://example.com/big.webp"></picture>',
    '<audio src="https://example.com/a.mp3"></audio>',
    '<video><track src="https://example.com/subtitles.vtt"></video>',
    '<input type="image" src="https://example.com/go.png">',
    '<frameset><frame src="https://example.com/"></frameset>',
    '<portal src="https://example.com/"></portal>',
    '<html manifest="https://example.com/app.appcache"><body></body></html>',
    '<iframe srcdoc="<img src=&quot;https://example.com/x.png&quot;>"></iframe>',
    # SVG and MathML.
    '<svg><image href="https://example.com/pic.png"/></svg>',
    '<svg><image xlink:href="https://example.com/pic.png"/></svg>',
    '<svg><use href="https://example.com/icons.svg#mail"/></svg>',
    '<svg><filter id="f"><feImage href="https://example.com/texture.png"/></filter></svg>',
    '<svg><script href="https://example.com/app.js"></script></svg>',
    '<svg><rect fill="url(https://example.com/paint.svg#gradient)"/></svg>',
    '<svg><style>@import url(https://example.com/svg.css);</style></svg>',
    '<math><mglyph src="https://example.com/glyph.png"/></math>',
    # A path that leaves the folder once the browser decodes it.
    '<img src="%2e%2e/outside.png">',
])
def test_external_resource_found(html):
    assert external_resources(f"<html><body>{html}</body></html>") != []


@pytest.mark.parametrize("html", [
    '<a href="https://learn.microsoft.com/en-us/troubleshoot/">KB</a>',
    '<a href="https://www.rfc-editor.org/rfc/rfc5321">RFC 5321</a>',
    '<img src="data:image/png;base64,iVBORw0KGgo=">',
    '<img src="images/plot.png">',
    '<a href="#step-1">step</a>',
    '<style>body { font-family: "Noto Sans CJK TC"; }</style>',
    '<script>var x = "https://example.com/ is only a string";</script>',
    '<map><area href="https://www.rfc-editor.org/rfc/rfc5321" alt="RFC"></map>',
    '<table background="images/bg.png"><tr><td>x</td></tr></table>',
    '<style>.x { background: image-set("a.png" 1x, "b.png" 2x); }</style>',
    '<style>.x { background-image: url(data:image/png;base64,iVBORw0KGgo=); }</style>',
    '<svg><use href="#icon-mail"/><rect fill="url(#gradient)"/></svg>',
    '<iframe srcdoc="<p>本機內容</p>"></iframe>',
    """<p title="image-set('https://example.com/a.png')">text, not CSS</p>""",
    '<img srcset="data:image/png;base64,iVBORw0KGgo= 1x, images/big.png 2x">',
])
def test_local_or_link_not_flagged(html):
    assert external_resources(f"<html><body>{html}</body></html>") == []


@pytest.mark.parametrize(("url", "local"), [
    ("", True), ("#top", True), ("page.html", True), ("sub/page.html#x", True),
    ("data:text/css,body{}", True), ("https://example.com/", False), ("//example.com/x", False),
    ("/etc/passwd", False), ("../up.html", False), ("sub/../../up.html", False), ("FILE:///x", False),
])
def test_is_local_url(url, local):
    assert is_local_url(url) is local


# --- fixture notebooks ------------------------------------------------------------------------

def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = list(cells)
    return notebook


def _write(folder: Path, name: str, notebook: nbformat.NotebookNode) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(notebook, path)
    return path


def _widget_notebook() -> nbformat.NotebookNode:
    """A notebook whose cells show widgets the three ways a page can meet them."""
    own_fallback = nbformat.v4.new_code_cell("checklist", outputs=[nbformat.v4.new_output(
        "display_data", data={
            WIDGET_VIEW: {"model_id": "a1", "version_major": 2, "version_minor": 0},
            "text/plain": "VBox(children=(Checkbox(value=True),))",
            "text/html": '<ul class="checklist"><li>☑ 備份登錄檔（已完成）</li><li>☐ 執行 sysprep</li></ul>',
        })])
    separate_fallback = nbformat.v4.new_code_cell("form", outputs=[
        nbformat.v4.new_output("display_data", data={
            WIDGET_VIEW: {"model_id": "b2", "version_major": 2, "version_minor": 0},
            "text/plain": "Text(value='mail.example.com')",
        }),
        nbformat.v4.new_output("display_data", data={
            "text/html": '<p class="form-fallback">伺服器：mail.example.com</p>',
            "text/plain": "伺服器：mail.example.com",
        }),
    ])
    no_fallback = nbformat.v4.new_code_cell("slider", outputs=[nbformat.v4.new_output(
        "display_data", data={
            WIDGET_VIEW: {"model_id": "c3", "version_major": 2, "version_minor": 0},
            "text/plain": "IntSlider(value=7)",
        })])
    # A tqdm bar as the widget state saves it: a row of a label, the bar and the counts.
    progress = nbformat.v4.new_code_cell("tqdm", outputs=[nbformat.v4.new_output(
        "display_data", data={
            WIDGET_VIEW: {"model_id": "d4", "version_major": 2, "version_minor": 0},
            "text/plain": "分批寄送:   0%|          | 0/60 [00:00<?, ?封/s]",
        })])
    notebook = _notebook(nbformat.v4.new_markdown_cell("# 90 互動元件測試\n\n## 檢查清單"),
                         own_fallback, separate_fallback, no_fallback, progress)
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {
            "d4": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_d5", "IPY_MODEL_d6", "IPY_MODEL_d7"]}},
            "d5": {"model_name": "HTMLModel", "state": {"value": "分批寄送:\u2007100%"}},
            "d6": {"model_name": "FloatProgressModel", "state": {"value": 60.0, "min": 0.0, "max": 60.0}},
            "d7": {"model_name": "HTMLModel", "state": {"value": "\u200760/60\u2007[00:02&lt;00:00]"}},
            "c3": {"model_name": "IntSliderModel", "state": {"value": 7}},
        }, "version_major": 2, "version_minor": 0}}
    return notebook


def _plain_notebook(title: str, code: str, output_text: str | None = None) -> nbformat.NotebookNode:
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=output_text)] if output_text else []
    return _notebook(
        nbformat.v4.new_markdown_cell(f"# {title}\n\n## 步驟 1：計算\n\n說明文字。"
                                      "參考 [RFC 5321](https://www.rfc-editor.org/rfc/rfc5321) 與"
                                      " [下一篇](92_second.ipynb)、[不存在的一篇](99_missing.ipynb)。"),
        nbformat.v4.new_code_cell(code, outputs=outputs, execution_count=1 if outputs else None),
    )


@pytest.fixture
def small_collection(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    _write(folder, "91_first.ipynb", _plain_notebook(
        "91 第一篇", 'print("alice@mail.example.com from 192.0.2.7")',
        "alice@mail.example.com from 192.0.2.7\n"))
    _write(folder, "92_second.ipynb", _plain_notebook("92 第二篇", "print(6 * 7)", "42\n"))
    return folder


@pytest.fixture(scope="module")
def stored_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of the repository's runbooks with their stored outputs."""
    out_dir = tmp_path_factory.mktemp("site") / "html"
    export_site(out_dir, use_stored_outputs=True, progress=False)
    return out_dir


def _main(text: str) -> str:
    """Return the page's <main> element, without the inline stylesheet and script."""
    return re.search(r"<main.*?</main>", text, re.DOTALL).group(0)


def _page_files(site: Path) -> list[Path]:
    return sorted(site.glob("*.html"))


class _RelLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("rel"):
            self.links.setdefault(values["rel"], []).append(values.get("href") or "")


def _rel_links(text: str) -> dict[str, list[str]]:
    """Return the href of every <a rel=...> in the page, by rel value (prev, next)."""
    parser = _RelLinks()
    parser.feed(text)
    return parser.links


# --- the site of the real runbooks ------------------------------------------------------------

def test_site_has_page_per_notebook(stored_site):
    expected = {path.stem + ".html" for path in NOTEBOOKS_DIR.glob("*.ipynb")}
    written = {path.name for path in _page_files(stored_site)}
    assert written == expected | {"index.html"}


def test_site_pages_load_nothing_external(stored_site):
    for page in _page_files(stored_site):
        assert external_resources(page.read_text(encoding="utf-8")) == [], page.name


def test_site_pages_language_and_title(stored_site):
    for page in _page_files(stored_site):
        text = page.read_text(encoding="utf-8")
        assert '<html lang="zh-Hant-TW">' in text, page.name
        assert re.search(r"<title>[^<]+</title>", text), page.name
        assert "<script src" not in text, page.name


def test_site_css_has_cjk_fonts_and_print(stored_site):
    text = (stored_site / "01_smtp_session.html").read_text(encoding="utf-8")
    assert '"Noto Sans CJK TC"' in text
    assert '"Microsoft JhengHei"' in text
    assert "@media print" in text


def test_site_navigation_follows_collection_order(stored_site):
    order = [runbook.filename for runbook in RUNBOOKS if (NOTEBOOKS_DIR / runbook.filename).is_file()]
    pages = [name.removesuffix(".ipynb") + ".html" for name in order]
    for index, name in enumerate(pages):
        text = (stored_site / name).read_text(encoding="utf-8")
        links = _rel_links(text)
        assert 'href="index.html"' in text, name
        # The navigation bar is shown above and below the page, so each link appears twice.
        expected_previous = [pages[index - 1]] * 2 if index > 0 else []
        expected_next = [pages[index + 1]] * 2 if index + 1 < len(pages) else []
        assert links.get("prev", []) == expected_previous, name
        assert links.get("next", []) == expected_next, name


def test_site_links_point_to_pages(stored_site):
    for page in _page_files(stored_site):
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r'href="([^"#:]+\.ipynb)', text):
            assert not (NOTEBOOKS_DIR / target).is_file(), f"{page.name} links to {target}"
        for target in re.findall(r'href="([^"#:/]+\.html)', text):
            assert (stored_site / target).is_file(), f"{page.name} links to missing {target}"


def test_site_reference_links_stay_links(stored_site):
    text = (stored_site / "01_smtp_session.html").read_text(encoding="utf-8")
    assert re.search(r'<a href="https://(learn\.microsoft\.com|www\.rfc-editor\.org|datatracker\.ietf\.org)/', text)


def test_site_index_lists_and_indexes_pages(stored_site):
    text = (stored_site / "index.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="adminkb-search-data">(.*?)</script>',
                                text, re.DOTALL).group(1))
    urls = [page["url"] for page in data["pages"]]
    assert set(urls) == {path.name for path in _page_files(stored_site)} - {"index.html"}
    for url in urls:
        assert f'<a href="{url}">' in text
    # The list shows the number in its own column, so the link text leaves it out.
    assert '<a href="01_smtp_session.html">SMTP 工作階段與轉送（Relay）診斷</a>' in text
    session = next(page for page in data["pages"] if page["url"] == "01_smtp_session.html")
    headings = [section["heading"] for section in session["sections"]]
    assert any(heading.startswith("步驟 1") for heading in headings)
    assert any("RCPT TO" in section["text"] for section in session["sections"])


def test_site_marker_written(stored_site):
    assert (stored_site / ".adminkb-export").is_file()


# --- options ----------------------------------------------------------------------------------

def test_no_input_hides_code(small_collection, tmp_path):
    export_site(tmp_path / "out", notebooks_dir=small_collection, use_stored_outputs=True, no_input=True,
                progress=False)
    text = _main((tmp_path / "out" / "92_second.html").read_text(encoding="utf-8"))
    assert "print" not in text
    assert "input_area" not in text
    assert "42" in text
    assert "說明文字" in text


def test_code_shown_by_default(small_collection, tmp_path):
    export_site(tmp_path / "out", notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    text = _main((tmp_path / "out" / "92_second.html").read_text(encoding="utf-8"))
    assert "input_area" in text
    assert "print" in text


def test_mask_hides_addresses(small_collection, tmp_path):
    export_site(tmp_path / "out", notebooks_dir=small_collection, use_stored_outputs=True, mask=True,
                progress=False)
    page = (tmp_path / "out" / "91_first.html").read_text(encoding="utf-8")
    index = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "alice" not in page
    assert "192.0.2.7" not in page
    assert "user-1@host-1.invalid from ipv4-1" in page
    assert "alice" not in index
    assert "https://www.rfc-editor.org/rfc/rfc5321" in page


def _intro(site: Path) -> list[str]:
    """Return the opening paragraphs of the site's index page."""
    text = (site / "index.html").read_text(encoding="utf-8")
    return re.findall(r'<p class="adminkb-intro">([^<]*)</p>', text)


def test_intro_says_outputs_stored(small_collection, tmp_path):
    export_site(tmp_path / "out", notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    intro = _intro(tmp_path / "out")
    assert len(intro) == 2
    assert intro[0].startswith("這是操作手冊的離線網頁版")
    assert "已儲存的輸出" in intro[1]
    assert "匯出時沒有重新執行" in intro[1]
    assert not any("郵件實驗室" in paragraph for paragraph in intro)


def test_intro_says_code_hidden_and_masked(small_collection, tmp_path):
    export_site(tmp_path / "out", notebooks_dir=small_collection, use_stored_outputs=True, no_input=True,
                mask=True, progress=False)
    intro = _intro(tmp_path / "out")
    assert len(intro) == 4
    assert "已儲存的輸出" in intro[1]
    assert "隱藏了程式碼" in intro[2]
    assert "user-1" in intro[3]


def test_intro_in_english(small_collection, tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    export_site(tmp_path / "out", notebooks_dir=small_collection, use_stored_outputs=True, no_input=True,
                progress=False)
    intro = _intro(tmp_path / "out")
    assert intro[1] == ("The outputs on each page are the ones stored in the runbook when it was last run and "
                        "saved. The export did not run it again.")
    assert intro[2] == "This edition hides the code and keeps the explanations and outputs."


def test_progress_bar_in_chinese(small_collection, tmp_path, capsys):
    export_site(tmp_path / "out", notebooks_dir=small_collection, use_stored_outputs=True, progress=True)
    bar = capsys.readouterr().err
    assert "讀取手冊" in bar
    assert "2/2" in bar
    assert re.search(r"份/s|s/份", bar), bar


def test_links_to_exported_notebooks_rewritten(small_collection, tmp_path):
    export_site(tmp_path / "out", notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    text = (tmp_path / "out" / "91_first.html").read_text(encoding="utf-8")
    assert 'href="92_second.html"' in text
    assert 'href="99_missing.ipynb"' in text


def test_execution_fills_outputs(tmp_path):
    folder = tmp_path / "notebooks"
    _write(folder, "93_run.ipynb", _plain_notebook("93 執行", "print(sum(range(10)) * 1000)"))
    export_site(tmp_path / "out", notebooks_dir=folder, progress=False, cell_timeout=60)
    assert "45000" in (tmp_path / "out" / "93_run.html").read_text(encoding="utf-8")
    intro = _intro(tmp_path / "out")
    assert len(intro) == 2
    assert "匯出時重新執行" in intro[1]
    assert "郵件實驗室" in intro[1]


def test_execution_runs_lab_runbook(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(NOTEBOOKS_DIR / "01_smtp_session.ipynb", folder)
    export_site(tmp_path / "out", notebooks_dir=folder, progress=False, cell_timeout=120)
    text = (tmp_path / "out" / "01_smtp_session.html").read_text(encoding="utf-8")
    assert "5.7.1" in text
    assert "output_error" not in _main(text)


# --- widgets ----------------------------------------------------------------------------------

def test_widgets_show_static_fallback(tmp_path):
    folder = tmp_path / "notebooks"
    _write(folder, "90_widgets.ipynb", _widget_notebook())
    result = export_site(tmp_path / "out", notebooks_dir=folder, use_stored_outputs=True, progress=False)
    text = (tmp_path / "out" / "90_widgets.html").read_text(encoding="utf-8")
    assert "☑ 備份登錄檔（已完成）" in text
    assert '<p class="form-fallback">' in text
    assert "Text(value=" not in text
    assert "IntSlider(value=7)" in text
    assert WIDGET_VIEW not in text
    assert "widget-state+json" not in text
    assert len(result.warnings) == 1
    assert "90_widgets.ipynb" in result.warnings[0]


def test_progress_widget_drawn_from_saved_state(tmp_path):
    folder = tmp_path / "notebooks"
    _write(folder, "90_widgets.ipynb", _widget_notebook())
    export_site(tmp_path / "out", notebooks_dir=folder, use_stored_outputs=True, progress=False)
    text = (tmp_path / "out" / "90_widgets.html").read_text(encoding="utf-8")
    bar = re.search(r"<progress([^>]*)>([^<]*)</progress>", text)
    assert bar is not None
    assert 'value="60"' in bar.group(1)
    assert 'max="60"' in bar.group(1)
    assert bar.group(2) == "100%"
    assert "分批寄送:\u2007100%" in text
    assert "60/60\u2007[00:02&lt;00:00]" in text
    assert "0/60 [00:00" not in text


def test_masked_widgets_keep_saved_state(tmp_path):
    folder = tmp_path / "notebooks"
    notebook = _widget_notebook()
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    state["d5"]["state"]["value"] = "寄到 mail.example.com:\u2007100%"
    _write(folder, "90_widgets.ipynb", notebook)
    plain = export_site(tmp_path / "plain", notebooks_dir=folder, use_stored_outputs=True, progress=False)
    masked = export_site(tmp_path / "masked", notebooks_dir=folder, use_stored_outputs=True, mask=True,
                         progress=False)
    text = (tmp_path / "masked" / "90_widgets.html").read_text(encoding="utf-8")
    bar = re.search(r"<progress([^>]*)>([^<]*)</progress>", text)
    assert bar is not None
    assert 'value="60"' in bar.group(1)
    assert bar.group(2) == "100%"
    assert "60/60\u2007[00:02&lt;00:00]" in text
    assert "0/60 [00:00" not in text
    # The text in the saved state is masked like the outputs around it.
    assert "mail.example.com" not in text
    assert "寄到 host-1.invalid:\u2007100%" in text
    # Only the slider, which has no static form, warns, as without --mask.
    assert masked.warnings == plain.warnings
    assert len(masked.warnings) == 1


def test_saved_widget_with_unknown_child_not_drawn():
    models = {"box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_text", "IPY_MODEL_slider"]}},
              "text": {"model_name": "LabelModel", "state": {"value": "a < b"}},
              "slider": {"model_name": "IntSliderModel", "state": {"value": 3}}}
    assert render_saved_widget("box", models) is None
    assert render_saved_widget("missing", models) is None
    assert render_saved_widget("text", models) == '<span class="widget-static-text">a &lt; b</span>'


# A 1x1 transparent PNG.
TINY_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")


def test_figure_alt_text_from_title(tmp_path):
    folder = tmp_path / "notebooks"
    figure = nbformat.v4.new_code_cell("figure", execution_count=1, outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": TINY_PNG, "text/plain": "〔圖表：每小時郵件數〕"})])
    untitled = nbformat.v4.new_code_cell("image", execution_count=2, outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": TINY_PNG})])
    _write(folder, "94_figure.ipynb", _notebook(nbformat.v4.new_markdown_cell("# 94 圖表"), figure, untitled))
    export_site(tmp_path / "out", notebooks_dir=folder, use_stored_outputs=True, progress=False)
    text = (tmp_path / "out" / "94_figure.html").read_text(encoding="utf-8")
    images = re.findall(r"<img [^>]*>", _main(text))
    assert len(images) == 2
    assert 'alt="〔圖表：每小時郵件數〕"' in images[0]
    assert f"data:image/png;base64,{TINY_PNG}" in images[0]
    # Without text/plain there is nothing to describe it with, so nbconvert's own default stays.
    assert "No description has been provided" in images[1]


@pytest.mark.skipif(os.name == "nt", reason="SIGINT and SIGTERM to a child process are POSIX only")
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_export_exits_130(tmp_path, stop_signal):
    folder = tmp_path / "notebooks"
    marker = tmp_path / "cell-started"
    # The cell creates the marker, then sleeps long enough for the signal to arrive while it runs.
    _write(folder, "95_slow.ipynb", _plain_notebook(
        "95 慢", f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(60)"))
    out_dir = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "adminkb", "export", "--out", str(out_dir), "--notebooks",
                              str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, ADMINKB_LANG="en"))
    try:
        deadline = time.monotonic() + 90
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the notebook's cell never started"
        child.send_signal(stop_signal)
        _, errors = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    text = errors.decode("utf-8", "replace")
    assert child.returncode == 130, text
    assert "Interrupted." in text
    assert "Traceback" not in text
    assert not out_dir.exists()
    assert list(tmp_path.glob(".adminkb-export-*")) == []


def test_interrupted_write_removes_staging(small_collection, tmp_path, monkeypatch):
    def interrupted(staging, out_dir):
        assert (staging / "index.html").is_file()
        raise KeyboardInterrupt

    monkeypatch.setattr("adminkb.export.site._swap_into_place", interrupted)
    out_dir = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export_site(out_dir, notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    assert not out_dir.exists()
    assert list(tmp_path.glob(".adminkb-export-*")) == []


# --- the output folder ------------------------------------------------------------------------

def test_out_file_rejected(small_collection, tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("keep me", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        export_site(target, notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    assert caught.value.key == "export.error.out_is_file"
    assert str(target) in str(caught.value)
    assert target.read_text(encoding="utf-8") == "keep me"


def test_out_under_file_rejected(small_collection, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        export_site(blocker / "html", notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    assert caught.value.key == "export.error.out_is_file"
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_out_with_user_files_rejected(small_collection, tmp_path):
    out_dir = tmp_path / "html"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        export_site(out_dir, notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    assert caught.value.key == "export.error.out_not_empty"
    assert sorted(path.name for path in out_dir.iterdir()) == ["notes.txt"]


@needs_mode_bits
def test_out_unwritable_rejected(small_collection, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run_python("-m", "adminkb", "export", "--out", str(locked / "html"),
                            "--notebooks", str(small_collection), "--use-stored-outputs",
                            env=dict(os.environ, ADMINKB_LANG="en"))
    finally:
        locked.chmod(0o700)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Error: Cannot write to the output path {locked}: permission denied" in result.stderr
    assert "--out" in result.stderr
    assert list(locked.iterdir()) == []


@needs_mode_bits
def test_out_unwritable_during_write_rejected(small_collection, tmp_path):
    # The child skips check_out_dir, so the export fails at the write itself, as it does when the
    # folder becomes read-only after the check.
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run_python(
             "-c",
             "import os, sys\n"
             "from adminkb.errors import InputError\n"
             "from adminkb.export import site\n"
             "site.check_out_dir = lambda out_dir: None\n"
             "try:\n"
             "    site.export_site(sys.argv[1], notebooks_dir=sys.argv[2], use_stored_outputs=True, progress=False)\n"
             "except InputError as error:\n"
             "    print(error.key, error.values['reason'])\n",
             str(locked / "html"), str(small_collection), env=dict(os.environ, ADMINKB_LANG="en"))
    finally:
        locked.chmod(0o700)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "export.error.out_unwritable Permission denied"
    assert list(locked.iterdir()) == []


def test_empty_out_folder_used(small_collection, tmp_path):
    out_dir = tmp_path / "html"
    out_dir.mkdir()
    export_site(out_dir, notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    assert (out_dir / "index.html").is_file()


def test_earlier_export_replaced(small_collection, tmp_path):
    out_dir = tmp_path / "html"
    export_site(out_dir, notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    (small_collection / "92_second.ipynb").unlink()
    export_site(out_dir, notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    assert sorted(path.name for path in _page_files(out_dir)) == ["91_first.html", "index.html"]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".adminkb-export")] == []


def test_failed_run_keeps_earlier_export(small_collection, tmp_path):
    out_dir = tmp_path / "html"
    export_site(out_dir, notebooks_dir=small_collection, use_stored_outputs=True, progress=False)
    before = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    _write(small_collection, "93_broken.ipynb", _plain_notebook("93 壞掉", 'raise ValueError("lab step failed")'))
    with pytest.raises(InputError) as caught:
        export_site(out_dir, notebooks_dir=small_collection, progress=False, cell_timeout=60)
    assert caught.value.key == "export.error.execution_failed"
    assert "93_broken.ipynb" in str(caught.value)
    assert "lab step failed" in str(caught.value)
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == before
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".adminkb-export")] == []


def _kernel_notebook(kernel: str) -> nbformat.NotebookNode:
    notebook = _plain_notebook("96 核心", "print(1)")
    notebook.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    return notebook


def test_unknown_kernel_rejected(tmp_path):
    folder = tmp_path / "notebooks"
    _write(folder, "96_kernel.ipynb", _kernel_notebook("nosuchkernel"))
    with pytest.raises(InputError) as caught:
        export_site(tmp_path / "out", notebooks_dir=folder, progress=False, cell_timeout=60)
    assert caught.value.key == "export.error.no_such_kernel"
    text = str(caught.value)
    assert "96_kernel.ipynb" in text
    assert "nosuchkernel" in text
    # The installed kernels are listed, and python3 runs every other test here.
    assert "python3" in text
    assert "Kernel → Change Kernel" in text
    assert "--use-stored-outputs" in text
    assert not (tmp_path / "out").exists()


@pytest.fixture
def broken_kernel(tmp_path, monkeypatch) -> str:
    """Install the kernel "broken" for this test only: its program exits at once with a message on
    stderr, as a python without ipykernel does."""
    spec_folder = tmp_path / "jupyter" / "kernels" / "broken"
    spec_folder.mkdir(parents=True)
    (spec_folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", "import sys; sys.exit('No module named ipykernel_launcher')",
                 "{connection_file}"],
        "display_name": "Broken", "language": "python"}), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "broken"


def test_kernel_start_failure_rejected(tmp_path, broken_kernel):
    folder = tmp_path / "notebooks"
    _write(folder, "96_kernel.ipynb", _kernel_notebook(broken_kernel))
    with pytest.raises(InputError) as caught:
        export_site(tmp_path / "out", notebooks_dir=folder, progress=False, cell_timeout=60)
    assert caught.value.key == "export.error.kernel_start_failed"
    assert caught.value.values["reason"] == "No module named ipykernel_launcher"
    text = str(caught.value)
    assert "96_kernel.ipynb" in text
    assert "broken" in text
    assert "jupyter kernelspec list" in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("kernel", "expected"), [
    ("nosuchkernel", "Error: The runbook 96_kernel.ipynb names the Jupyter kernel nosuchkernel"),
    ("broken", "Error: The Jupyter kernel broken of the runbook 96_kernel.ipynb failed to start"),
])
def test_cli_kernel_failure_exits_2(tmp_path, broken_kernel, kernel, expected):
    folder = tmp_path / "notebooks"
    _write(folder, "96_kernel.ipynb", _kernel_notebook(kernel))
    result = subprocess.run([sys.executable, "-m", "adminkb", "export", "--out", str(tmp_path / "out"),
                             "--notebooks", str(folder)], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, ADMINKB_LANG="en"))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Next step:" in result.stderr
    # Neither the failure nor nbclient's exit handler may print a traceback.
    assert "Traceback" not in result.stderr
    assert "AssertionError" not in result.stderr


def test_kernel_program_missing_rejected(tmp_path, monkeypatch):
    spec_folder = tmp_path / "jupyter" / "kernels" / "gone"
    spec_folder.mkdir(parents=True)
    missing = tmp_path / "no-such-python"
    (spec_folder / "kernel.json").write_text(json.dumps({
        "argv": [str(missing), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Gone", "language": "python"}), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    folder = tmp_path / "notebooks"
    _write(folder, "96_kernel.ipynb", _kernel_notebook("gone"))
    with pytest.raises(InputError) as caught:
        export_site(tmp_path / "out", notebooks_dir=folder, progress=False, cell_timeout=60)
    assert caught.value.key == "export.error.kernel_start_failed"
    assert str(missing) in caught.value.values["reason"]


def test_cell_timeout_names_cell(tmp_path):
    folder = tmp_path / "notebooks"
    notebook = _plain_notebook("97 逾時", "print('fast')")
    notebook.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(30)"))
    _write(folder, "97_slow.ipynb", notebook)
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        export_site(tmp_path / "out", notebooks_dir=folder, progress=False, cell_timeout=2)
    assert time.monotonic() - started < 25
    assert caught.value.key == "export.error.cell_timeout"
    assert caught.value.values["cell"] == 3
    assert caught.value.values["seconds"] == 2
    text = str(caught.value)
    assert "97_slow.ipynb" in text
    assert "第 3 格（import time）" in text
    assert "2 秒" in text
    assert "--cell-timeout 4" in text
    assert "---" not in text
    assert not (tmp_path / "out").exists()


def test_external_output_rejected(tmp_path):
    folder = tmp_path / "notebooks"
    notebook = _notebook(nbformat.v4.new_markdown_cell("# 94 外部"), nbformat.v4.new_code_cell(
        "show()", execution_count=1, outputs=[nbformat.v4.new_output("display_data", data={
            "text/html": '<script src="https://cdn.example.com/plot.js"></script>', "text/plain": "plot"})]))
    _write(folder, "94_external.ipynb", notebook)
    with pytest.raises(InputError) as caught:
        export_site(tmp_path / "out", notebooks_dir=folder, use_stored_outputs=True, progress=False)
    assert caught.value.key == "export.error.external_resource"
    assert "cdn.example.com" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_missing_notebooks_folder_rejected(tmp_path):
    with pytest.raises(InputError) as caught:
        export_site(tmp_path / "out", notebooks_dir=tmp_path / "nowhere", progress=False)
    assert caught.value.key == "export.error.notebooks_missing"
    assert "--notebooks" in str(caught.value)


def test_empty_notebooks_folder_rejected(tmp_path):
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(InputError) as caught:
        export_site(tmp_path / "out", notebooks_dir=tmp_path / "notebooks", progress=False)
    assert caught.value.key == "export.error.no_notebooks"


def test_corrupt_notebook_rejected(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "95_cut.ipynb").write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        export_site(tmp_path / "out", notebooks_dir=folder, use_stored_outputs=True, progress=False)
    assert caught.value.key == "export.error.notebook_unreadable"
    assert "95_cut.ipynb" in str(caught.value)
    assert not (tmp_path / "out").exists()


# --- the command line -------------------------------------------------------------------------

def test_cli_export_writes_site(small_collection, tmp_path, capsys):
    status = run_area("export", "--out", str(tmp_path / "out"), "--notebooks", str(small_collection),
                      "--use-stored-outputs")
    assert status == 0
    assert (tmp_path / "out" / "index.html").is_file()
    assert str(tmp_path / "out" / "index.html") in capsys.readouterr().out


def test_cli_progress_lines_without_terminal(small_collection, tmp_path, capsys):
    # pytest's captured stderr is not a terminal, as in a scheduled task or a CI log.
    status = run_area("export", "--out", str(tmp_path / "out"), "--notebooks", str(small_collection),
                      "--use-stored-outputs")
    assert status == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["讀取手冊 1/2：91_first.ipynb", "讀取手冊 2/2：92_second.ipynb"]


def test_cli_progress_lines_name_running(small_collection, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert run_area("export", "--out", str(tmp_path / "out"), "--notebooks", str(small_collection)) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["Running runbooks 1/2: 91_first.ipynb", "Running runbooks 2/2: 92_second.ipynb"]


def test_cli_default_out_under_cwd(small_collection, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_area("export", "--notebooks", str(small_collection), "--use-stored-outputs") == 0
    assert (tmp_path / "build" / "html" / "91_first.html").is_file()


def test_cli_out_file_raises(small_collection, tmp_path):
    target = tmp_path / "taken"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        run_area("export", "--out", str(target), "--notebooks", str(small_collection), "--use-stored-outputs")
    assert caught.value.exit_status == 2


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_cli_bad_cell_timeout(value, capsys):
    with pytest.raises(SystemExit) as caught:
        run_area("export", "--cell-timeout", value)
    assert caught.value.code == 2
    assert value in capsys.readouterr().err
