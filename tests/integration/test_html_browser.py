"""Open the exported offline site in a real Chromium with the network blocked.

Debian's /usr/bin/chromium is driven by Playwright for Python (no browser download). Every
request that is not file:// is aborted and recorded, so a page that would fetch anything from
another host fails here. A screenshot of each page is saved under build/screenshots/.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from adminkb.export import export_site
from adminkb.runbooks import NOTEBOOKS_DIR

from .conftest import PEER_CHECKS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PAGE_TIMEOUT_MS = 15_000
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
FIXTURE_NAME = "90_checklist_fixture.ipynb"


def chromium_available() -> tuple[bool, str]:
    """Return whether Debian's Chromium and Playwright for Python are installed, and why not."""
    if not CHROMIUM.is_file():
        return False, f"{CHROMIUM} is missing (Debian package: chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return False, f"Playwright for Python cannot be imported: {error}"
    return True, ""


# NOTE: the shared peer table in conftest.py has no Chromium entry, so this module adds one
# before pytest sets up its tests. The entry can move into that table unchanged.
PEER_CHECKS.setdefault("chromium", chromium_available)

pytestmark = pytest.mark.peer("chromium")


def _checklist_fixture() -> nbformat.NotebookNode:
    """A runbook-shaped notebook holding a checklist widget output with its static HTML."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    checklist_html = (
        '<table class="checklist"><tr><td data-step="backup">☑</td><td>備份登錄檔</td><td>已完成：ops</td></tr>'
        '<tr><td data-step="sysprep">☐</td><td>執行 sysprep</td><td>尚未完成</td></tr></table>'
    )
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# 90 檢查清單測試\n\n## 步驟 1：勾選項目"),
        nbformat.v4.new_code_cell("open_checklist('fixture')", execution_count=1, outputs=[
            nbformat.v4.new_output("display_data", data={
                WIDGET_VIEW: {"model_id": "0f1e", "version_major": 2, "version_minor": 0},
                "text/plain": "ChecklistWidget(fixture)",
                "text/html": checklist_html,
            })]),
    ]
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"0f1e": {"model_name": "VBoxModel", "state": {}}}, "version_major": 2, "version_minor": 0}}
    return notebook


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runbooks with their stored outputs plus the checklist fixture, exported offline."""
    folder = tmp_path_factory.mktemp("notebooks")
    for path in NOTEBOOKS_DIR.glob("*.ipynb"):
        shutil.copy(path, folder)
    nbformat.write(_checklist_fixture(), folder / FIXTURE_NAME)
    out_dir = tmp_path_factory.mktemp("site") / "html"
    export_site(out_dir, notebooks_dir=folder, use_stored_outputs=True, progress=False)
    return out_dir


@dataclass
class BrowserLog:
    """Blocked requests and errors the browser reported while the tests opened pages."""

    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_files: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[object, BrowserLog]]:
    """A Chromium context with a fresh profile in which only file:// requests go through."""
    from playwright.sync_api import sync_playwright

    log = BrowserLog()
    profile = tempfile.mkdtemp(prefix="adminkb-chromium-")

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith("file://"):
            request_route.continue_()
        else:
            log.blocked.append(url)
            request_route.abort()

    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1200, "height": 900}, timeout=PAGE_TIMEOUT_MS)
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            context.route("**/*", route)
            try:
                yield context, log
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _open(browser: tuple[object, BrowserLog], path: Path, name: str):
    context, log = browser
    page = context.new_page()
    page.on("console", lambda entry: log.console_errors.append(f"{name}: {entry.text}")
            if entry.type == "error" else None)
    page.on("pageerror", lambda error: log.page_errors.append(f"{name}: {error}"))
    page.on("requestfailed", lambda request: log.failed_files.append(f"{name}: {request.url}")
            if request.url.startswith("file://") else None)
    page.goto(path.as_uri(), wait_until="load")
    return page


def test_every_page_loads_offline(site, browser):
    _, log = browser
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = sorted(site.glob("*.html"))
    assert len(pages) >= 4
    for path in pages:
        page = _open(browser, path, path.name)
        assert page.evaluate("document.documentElement.lang") == "zh-Hant-TW", path.name
        assert page.title(), path.name
        page.screenshot(path=str(SCREENSHOTS / f"{path.stem}.png"), full_page=True)
        page.close()
    assert log.blocked == []
    assert log.console_errors == []
    assert log.page_errors == []
    assert log.failed_files == []


def test_chinese_glyphs_drawn(site, browser):
    page = _open(browser, site / "01_smtp_session.html", "glyphs")
    # Without a CJK font Chromium draws the same empty box for every Chinese character, so two
    # different characters drawn in the page's font give identical pixels.
    result = page.evaluate("""() => {
        const family = getComputedStyle(document.body).fontFamily;
        const draw = (character) => {
            const canvas = document.createElement('canvas');
            canvas.width = 64; canvas.height = 64;
            const context = canvas.getContext('2d');
            context.font = '48px ' + family;
            context.fillText(character, 4, 52);
            return Array.from(context.getImageData(0, 0, 64, 64).data);
        };
        const first = draw('轉');
        const second = draw('送');
        const inked = first.filter((value, index) => index % 4 === 3 && value > 0).length;
        const differing = first.filter((value, index) => value !== second[index]).length;
        return {family, inked, differing};
    }""")
    page.close()
    assert "Noto Sans CJK TC" in result["family"]
    assert result["inked"] > 50
    assert result["differing"] > 50


def test_search_finds_known_term(site, browser):
    _, log = browser
    page = _open(browser, site / "index.html", "search")
    page.fill("#adminkb-search-input", "Pickup")
    results = page.locator("#adminkb-search-results li a")
    results.first.wait_for()
    texts = results.all_inner_texts()
    assert any("02" in text for text in texts)
    status = page.inner_text("#adminkb-search-status")
    assert "找到" in status
    page.fill("#adminkb-search-input", "不可能出現的字串 zzqx")
    assert "找不到" in page.inner_text("#adminkb-search-status")
    assert page.locator("#adminkb-search-results li").count() == 0
    page.close()
    assert log.blocked == []


def test_search_result_opens_section(site, browser):
    page = _open(browser, site / "index.html", "search-link")
    page.fill("#adminkb-search-input", "步驟 1")
    page.locator("#adminkb-search-results li a").first.click()
    page.wait_for_load_state("load")
    assert page.url.startswith("file://")
    assert "#" in page.url
    page.close()


def test_checklist_state_visible(site, browser):
    page = _open(browser, site / "90_checklist_fixture.html", "checklist")
    done = page.locator('td[data-step="backup"]')
    open_step = page.locator('td[data-step="sysprep"]')
    assert done.is_visible()
    assert done.inner_text() == "☑"
    assert open_step.inner_text() == "☐"
    assert page.get_by_text("已完成：ops").is_visible()
    body = page.inner_text("main")
    assert "ChecklistWidget" not in body
    assert "widget" not in body.lower()
    page.close()


def test_navigation_links_work(site, browser):
    page = _open(browser, site / "01_smtp_session.html", "navigation")
    page.locator('a[rel="next"]').first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("02_pickup_directory.html")
    page.locator("a.adminkb-site").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("index.html")
    page.close()


def test_runbook_checklist_state_visible(site, browser):
    page_path = site / "10_xp_universal_image.html"
    if not page_path.is_file():
        pytest.skip("runbook 10 (the imaging checklist) is not in notebooks/ yet")
    page = _open(browser, page_path, "runbook-10")
    checklists = page.locator(".adminkb-checklist")
    assert checklists.count() >= 1
    assert checklists.first.is_visible()
    done = page.locator(".adminkb-checklist .done")
    assert done.count() >= 1, "no ticked step is shown in the exported checklist"
    assert done.first.is_visible()
    assert done.first.inner_text().strip()
    assert "widget" not in page.inner_text("main").lower()
    page.close()
