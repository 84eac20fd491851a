"""Build the offline HTML site: run the runbooks, render a page each, write the folder safely."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import nbformat
from tqdm.auto import tqdm

from adminkb.errors import InputError, os_error_text
from adminkb.export.check import external_resources
from adminkb.export.execute import execute_notebook
from adminkb.export.render import (
    Page, PageLink, make_exporter, navigation_html, read_asset, render_page, site_css, templates_folder,
)
from adminkb.i18n import message
from adminkb.masking import Masker, mask_notebook
from adminkb.runbooks import NOTEBOOKS_DIR, RUNBOOKS

logger = logging.getLogger("adminkb.export")

# A file that marks a folder as written by `adminkb export`, so a later export may replace it.
MARKER_NAME = ".adminkb-export"
DEFAULT_CELL_TIMEOUT = 300  # seconds for one cell; the lab runbooks' cells take a few seconds each

_HEADING = re.compile(r"^#\s+(.+?)\s*$", re.MULTILINE)
_NUMBER_PREFIX = re.compile(r"^(\d{2})[\s_]")


@dataclass
class ExportResult:
    """The result of an export: the output folder, its pages in site order, and any warnings."""

    out_dir: Path
    pages: list[Page]
    warnings: list[str] = field(default_factory=list)


def default_out_dir() -> Path:
    """Return build/html under the current folder, the export's default output folder."""
    return Path.cwd() / "build" / "html"


def find_notebooks(notebooks_dir: Path) -> list[Path]:
    """List the runbooks in `notebooks_dir`: the known ones in collection order, then the rest by name."""
    if not notebooks_dir.is_dir():
        raise InputError("export.error.notebooks_missing", value=str(notebooks_dir),
                         next_key="export.error.notebooks_missing_next")
    known = [notebooks_dir / runbook.filename for runbook in RUNBOOKS]
    found = [path for path in known if path.is_file()]
    others = sorted(path for path in notebooks_dir.glob("*.ipynb") if path not in known)
    notebooks = found + others
    if not notebooks:
        raise InputError("export.error.no_notebooks", value=str(notebooks_dir),
                         next_key="export.error.notebooks_missing_next")
    return notebooks


def check_out_dir(out_dir: Path) -> None:
    """Raise InputError unless `out_dir` can be replaced by a new site without losing a user's file.

    The folder may be missing, empty, or an earlier export (it contains the marker file).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("export.error.out_is_file", value=str(out_dir), next_key="export.error.out_next")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER_NAME).is_file():
        raise InputError("export.error.out_not_empty", value=str(out_dir), next_key="export.error.out_not_empty_next")
    parent = out_dir.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError("export.error.out_is_file", value=str(folder), next_key="export.error.out_next")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise InputError("export.error.out_unwritable", value=str(folder),
                                 reason=message("export.error.no_permission"), next_key="export.error.out_next")
            break


def read_notebook(path: Path) -> Any:
    """Read a notebook file, or raise InputError naming the file and what is wrong with it."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError, nbformat.reader.NotJSONError) as error:
        raise InputError("export.error.notebook_unreadable", value=str(path), reason=str(error),
                         next_key="export.error.notebook_unreadable_next") from error


def page_title(notebook: Any, path: Path) -> str:
    """Return the first level-1 heading of the notebook, or the file name when it has none."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            match = _HEADING.search(cell.get("source", ""))
            if match:
                return match.group(1)
    return path.stem


def _page_for(path: Path, notebook: Any) -> Page:
    runbook = next((item for item in RUNBOOKS if item.filename == path.name), None)
    number_match = _NUMBER_PREFIX.match(path.name)
    if runbook:
        number = runbook.number
    elif number_match:
        number = number_match.group(1)
    else:
        number = ""
    # A known runbook is named as the collection's table of contents names it ("01 SMTP ..."),
    # which is shorter than the heading of some notebooks. Other notebooks use their heading.
    title = f"{runbook.number} {runbook.title}" if runbook else page_title(notebook, path)
    return Page(number=number, filename=path.name, url=f"{path.stem}.html", title=title,
                question=runbook.question if runbook else "")


def export_site(out_dir: Path | None = None, *, notebooks_dir: Path | None = None,
                use_stored_outputs: bool = False, no_input: bool = False, mask: bool = False,
                cell_timeout: int = DEFAULT_CELL_TIMEOUT, progress: bool = True,
                on_runbook: Callable[[int, int, Path], object] | None = None) -> ExportResult:
    """Write the offline site for every runbook in `notebooks_dir` to `out_dir`, and return what it wrote.

    The runbooks are executed first (against the lab, as their parameters set by default) unless
    `use_stored_outputs` is True. The site is built in a temporary folder beside `out_dir` and
    renamed into place only when every page is written and free of external resources, so a
    failed export leaves `out_dir` as it was. An existing `out_dir` is replaced only when it is
    empty or an earlier export. With `mask`, one Masker covers the whole site, so a host keeps one
    placeholder on every page. `progress` shows a progress bar on stderr, and `on_runbook` is
    called with (number, count, path) before each runbook is read or run.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
    out_dir = out_dir.absolute()
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    check_out_dir(out_dir)
    paths = find_notebooks(notebooks_dir)

    notebooks = []
    label = message("export.progress_read" if use_stored_outputs else "export.progress_run")
    for number, path in enumerate(tqdm(paths, desc=label, unit=message("export.progress_unit"),
                                       disable=not progress), start=1):
        if on_runbook is not None:
            on_runbook(number, len(paths), path)
        notebook = read_notebook(path)
        if not use_stored_outputs:
            execute_notebook(notebook, path, cell_timeout)
        notebooks.append(notebook)
    if mask:
        masker = Masker()
        notebooks = [mask_notebook(notebook, masker) for notebook in notebooks]

    pages = [_page_for(path, notebook) for path, notebook in zip(paths, notebooks)]
    exporter = make_exporter(no_input)
    css = site_css()
    exported = {page.filename for page in pages}
    for index, (page, notebook) in enumerate(zip(pages, notebooks)):
        previous = pages[index - 1] if index > 0 else None
        following = pages[index + 1] if index + 1 < len(pages) else None
        nav = navigation_html(PageLink(previous.url, previous.title) if previous else None,
                              PageLink(following.url, following.title) if following else None)
        render_page(exporter, notebook, page, nav, css, exported)
    intro = index_intro(use_stored_outputs=use_stored_outputs, no_input=no_input, mask=mask)
    index_html = render_index(pages, css, intro)

    for name, text in [("index.html", index_html), *((page.url, page.html) for page in pages)]:
        found = external_resources(text)
        if found:
            raise InputError("export.error.external_resource", value=name, reason=", ".join(found[:3]),
                             next_key="export.error.external_resource_next")

    _write_site(out_dir, {"index.html": index_html, **{page.url: page.html for page in pages}})
    warnings = [warning for page in pages for warning in page.warnings]
    logger.info("exported %d pages to %s", len(pages), out_dir)
    return ExportResult(out_dir=out_dir, pages=pages, warnings=warnings)


def index_intro(*, use_stored_outputs: bool, no_input: bool, mask: bool) -> list[str]:
    """Return the index page's opening paragraphs: what the site is and how this export made it."""
    paragraphs = [message("export.index.intro"),
                  message("export.index.outputs_stored" if use_stored_outputs else "export.index.outputs_executed")]
    if no_input:
        paragraphs.append(message("export.index.code_hidden"))
    if mask:
        paragraphs.append(message("export.index.masked"))
    return paragraphs


def render_index(pages: list[Page], css: str, intro: list[str]) -> str:
    """Render the index page: the `intro` paragraphs, the runbook list and the search box with its index."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_folder()), autoescape=True)
    template = environment.get_template("site_index.html.j2")
    search_data = {
        "labels": {"noResults": message("export.search.no_results"), "results": message("export.search.results")},
        "pages": [{"url": page.url, "title": page.title, "sections": page.sections} for page in pages],
    }
    # "</" would end the <script> element early, so it is written as "<\/" (same JSON value).
    search_json = json.dumps(search_data, ensure_ascii=False).replace("</", "<\\/")
    labels = {key: message(f"export.index.{key}") for key in (
        "search_label", "search_placeholder", "list_heading", "column_number", "column_title", "column_question")}
    first = PageLink(pages[0].url, pages[0].title)
    return template.render(
        site_title=message("export.index.site_title"), intro=intro, labels=labels,
        pages=pages, css=css, search_json=search_json, search_js=read_asset("search.js"),
        nav_html=navigation_html(None, first))


def _write_site(out_dir: Path, files: dict[str, str]) -> None:
    """Write `files` into a temporary folder beside `out_dir`, then swap it into place."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".adminkb-export-", dir=out_dir.parent))
    except OSError as error:
        raise InputError("export.error.out_unwritable", value=str(out_dir.parent), reason=os_error_text(error),
                         next_key="export.error.out_next") from error
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        (staging / MARKER_NAME).write_text("adminkb export\n", encoding="utf-8")
        staging.chmod(0o755)
        _swap_into_place(staging, out_dir)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise InputError("export.error.out_unwritable", value=str(out_dir), reason=os_error_text(error),
                         next_key="export.error.out_next") from error
    except BaseException:
        # Ctrl+C or SIGTERM while the pages are written.
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Rename `staging` to `out_dir`; an earlier export or an empty folder there is removed after."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    # check_out_dir ran before the pages were built; the folder may have changed since.
    check_out_dir(out_dir)
    retired = Path(tempfile.mkdtemp(prefix=".adminkb-export-old-", dir=out_dir.parent))
    retired.rmdir()
    out_dir.rename(retired)
    try:
        staging.rename(out_dir)
    except OSError:
        retired.rename(out_dir)
        raise
    shutil.rmtree(retired)
