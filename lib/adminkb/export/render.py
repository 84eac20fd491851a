"""Render one notebook as an offline HTML page, and collect its headings and text for search."""

from __future__ import annotations

import copy
import html
import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import resources
from typing import Any

from nbconvert import HTMLExporter
from pygments.formatters import HtmlFormatter
from traitlets.config import Config

from adminkb.i18n import message

logger = logging.getLogger("adminkb.export")

TEMPLATE_NAME = "adminkb_offline"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# Output formats the page shows, best first. Script outputs (application/javascript, widget
# views) are missing on purpose: they need a kernel or a script from a CDN.
DISPLAY_PRIORITY = [
    "text/html", "image/svg+xml", "image/png", "image/jpeg", "text/markdown", "text/latex", "text/plain",
]


def templates_folder() -> str:
    """Return the folder of the export's templates and inlined assets."""
    return str(resources.files("adminkb.export") / "templates")


def read_asset(name: str) -> str:
    """Read one file from the templates folder as text."""
    return (resources.files("adminkb.export") / "templates" / name).read_text(encoding="utf-8")


def site_css() -> str:
    """Return the site stylesheet followed by the code highlighting rules nbconvert's markup uses."""
    highlight = HtmlFormatter(style="default").get_style_defs(".highlight")
    return read_asset("site.css") + "\n/* Code highlighting (Pygments, default style). */\n" + highlight + "\n"


@dataclass
class PageLink:
    """A link to another page of the site, as the navigation shows it."""

    url: str
    title: str


@dataclass
class Page:
    """One runbook as a page of the site; `title` starts with the runbook's number when it has one."""

    number: str
    filename: str
    url: str
    title: str
    question: str
    html: str = ""
    sections: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def short_title(self) -> str:
        """Return the title without its leading number, for lists that show the number apart."""
        prefix = f"{self.number} "
        return self.title[len(prefix):] if self.number and self.title.startswith(prefix) else self.title


def use_widget_fallbacks(notebook: Any, name: str) -> list[str]:
    """Replace widget views with static HTML in place and return the warnings.

    A widget output whose own bundle has text/html keeps that HTML. Otherwise, when the same
    cell has another output with text/html (the fallback a widget helper displays next to its
    view), the widget output is dropped and that HTML remains. Otherwise the widget is drawn
    from the state saved with the notebook, where its model and its children's models are of
    the kinds `render_saved_widget` can draw (a tqdm progress bar is). A widget with none of these
    keeps its text/plain, and a warning names the cell. The saved widget state is then removed
    from the notebook metadata, because only a widget manager script could read it.
    """
    warnings: list[str] = []
    saved = notebook.get("metadata", {}).pop("widgets", None) or {}
    models = saved.get(WIDGET_STATE, {}).get("state", {})
    for index, cell in enumerate(notebook.get("cells", [])):
        outputs = cell.get("outputs", [])
        widget_outputs = [output for output in outputs if WIDGET_VIEW in output.get("data", {})]
        if not widget_outputs:
            continue
        cell_has_html = any("text/html" in output.get("data", {}) for output in outputs
                            if WIDGET_VIEW not in output.get("data", {}))
        remaining = []
        for output in outputs:
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                remaining.append(output)
                continue
            view = data.pop(WIDGET_VIEW)
            if "text/html" in data:
                remaining.append(output)
                continue
            if cell_has_html:
                continue
            drawn = render_saved_widget(str(view.get("model_id", "")), models)
            if drawn is not None:
                data["text/html"] = drawn
            else:
                warnings.append(message("export.widget_without_fallback", name=name, cell=index + 1))
                logger.warning("%s cell %d: widget output has no text/html fallback; showing its text", name, index + 1)
            remaining.append(output)
        cell["outputs"] = remaining
    return warnings


# Image outputs that describe_images turns into <img> elements with alternative text.
_IMAGE_TYPES = ("image/png", "image/jpeg")


def describe_images(notebook: Any) -> None:
    """Give every PNG or JPEG output alternative text from its own text/plain, in place.

    nbconvert otherwise adds alt="No description has been provided for this image" in English.
    An adminkb figure's text/plain is its title in the user's language, so the page carries
    that. The image becomes an <img> element with a data: URL, which stays inside the page. An
    output that already has text/html, or has no text/plain, is left as it is.
    """
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            description = str(data.get("text/plain") or "").strip()
            if "text/html" in data or not description:
                continue
            for image_type in _IMAGE_TYPES:
                if image_type in data:
                    payload = "".join(str(data.pop(image_type)).split())
                    data["text/html"] = (f'<img alt="{html.escape(description, quote=True)}" '
                                         f'src="data:{image_type};base64,{payload}"/>')
                    break


# Widget models that a page can draw from their saved state without a widget manager.
_TEXT_MODELS = {"HTMLModel": True, "HTMLMathModel": True, "LabelModel": False}
_PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}
_BOX_MODELS = {"HBoxModel": "hbox", "VBoxModel": "vbox", "BoxModel": "vbox"}
_MODEL_REFERENCE = "IPY_MODEL_"
# Boxes nested deeper than this are not drawn, so a saved state whose boxes contain each other
# cannot recurse without end.
_MAX_BOX_DEPTH = 8


def render_saved_widget(model_id: str, models: dict[str, Any], depth: int = 0) -> str | None:
    """Draw one widget and its children as static HTML from the notebook's saved widget state.

    Text widgets become their text (HTML widgets keep their markup, which the kernel wrote),
    progress widgets a <progress> element at their final value, and boxes a row or column of
    their children. Return None when the model is missing or of any other kind, so that the
    caller can fall back to the output's text.
    """
    model = models.get(model_id)
    if model is None or depth > _MAX_BOX_DEPTH:
        return None
    kind = model.get("model_name", "")
    state = model.get("state", {})
    description = html.escape(str(state.get("description") or ""))
    label = f'<span class="widget-static-label">{description}</span>' if description else ""
    if kind in _TEXT_MODELS:
        value = str(state.get("value", ""))
        text = value if _TEXT_MODELS[kind] else html.escape(value)
        return f'<span class="widget-static-text">{label}{text}</span>'
    if kind in _PROGRESS_MODELS:
        minimum = float(state.get("min", 0) or 0)
        maximum = float(state.get("max", 100) or 100)
        value = min(max(float(state.get("value", 0) or 0), minimum), maximum)
        share = 100 * (value - minimum) / (maximum - minimum) if maximum > minimum else 0
        return (f'{label}<progress class="widget-static-progress" value="{value - minimum:g}" '
                f'max="{maximum - minimum:g}">{share:.0f}%</progress>')
    if kind in _BOX_MODELS:
        parts = []
        for child in state.get("children", []):
            reference = str(child)
            drawn = render_saved_widget(reference.removeprefix(_MODEL_REFERENCE), models, depth + 1)
            if drawn is None:
                return None
            parts.append(drawn)
        return f'<div class="widget-static widget-static-{_BOX_MODELS[kind]}">{"".join(parts)}</div>'
    return None


# Relative links to another notebook ("01_smtp_session.ipynb#step"), as runbook prose writes them.
_NOTEBOOK_LINK = re.compile(r'href="([^"/:#?]+)\.ipynb((?:#[^"]*)?)"')


def rewrite_notebook_links(page_html: str, exported: set[str]) -> str:
    """Point links at exported notebooks to their pages; links to other notebooks stay as written."""
    def replace(match: re.Match[str]) -> str:
        if f"{match.group(1)}.ipynb" in exported:
            return f'href="{match.group(1)}.html{match.group(2)}"'
        return match.group(0)

    return _NOTEBOOK_LINK.sub(replace, page_html)


def navigation_html(previous: PageLink | None, following: PageLink | None) -> str:
    """Build the navigation bar: the site index, then the previous and next runbook."""
    parts = [f'<nav class="adminkb-nav" aria-label="{html.escape(message("export.nav.label"))}">',
             f'<a class="adminkb-site" href="index.html">{html.escape(message("export.nav.index"))}</a>',
             '<span class="adminkb-spacer"></span>']
    if previous:
        text = message("export.nav.previous", title=previous.title)
        parts.append(f'<a rel="prev" href="{html.escape(previous.url)}">{html.escape(text)}</a>')
    if following:
        text = message("export.nav.next", title=following.title)
        parts.append(f'<a rel="next" href="{html.escape(following.url)}">{html.escape(text)}</a>')
    parts.append("</nav>")
    return "\n".join(parts)


def make_exporter(no_input: bool) -> HTMLExporter:
    """Build the HTML exporter with the offline template; `no_input` hides code cells."""
    config = Config()
    config.HTMLExporter.extra_template_basedirs = [templates_folder()]
    config.HTMLExporter.template_name = TEMPLATE_NAME
    config.HTMLExporter.exclude_input = no_input
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    config.HTMLExporter.sanitize_html = False
    config.NbConvertBase.display_data_priority = DISPLAY_PRIORITY
    return HTMLExporter(config=config)


def render_page(exporter: HTMLExporter, notebook: Any, page: Page, nav_html: str, css: str,
                exported: set[str]) -> None:
    """Render `notebook` into page.html and fill page.sections for the search index."""
    notebook = copy.deepcopy(notebook)
    page.warnings.extend(use_widget_fallbacks(notebook, page.filename))
    describe_images(notebook)
    extra = {"adminkb": {"title": page.title, "css": css, "nav_html": nav_html}}
    body, _ = exporter.from_notebook_node(notebook, resources=extra)
    page.html = rewrite_notebook_links(body, exported)
    page.sections = extract_sections(page.html)


class _SectionCollector(HTMLParser):
    """Split a page's <main> text into sections at each h1, h2 and h3 heading."""

    _SKIPPED = {"script", "style", "nav"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[dict[str, Any]] = []
        self._in_main = False
        self._skip_depth = 0
        self._heading: dict[str, Any] | None = None
        self._in_anchor = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "main":
            self._in_main = True
        elif tag in self._SKIPPED:
            self._skip_depth += 1
        elif tag in ("h1", "h2", "h3") and self._in_main:
            self._heading = {"id": values.get("id") or "", "heading": [], "text": []}
            self.sections.append(self._heading)
        elif tag == "a" and "anchor-link" in (values.get("class") or ""):
            self._in_anchor = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self._in_main = False
        elif tag in self._SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in ("h1", "h2", "h3"):
            self._heading = None
        elif tag == "a":
            self._in_anchor = False

    def handle_data(self, data: str) -> None:
        if not self._in_main or self._skip_depth or self._in_anchor:
            return
        if not self.sections:
            self.sections.append({"id": "", "heading": [], "text": []})
        target = self.sections[-1]
        (target["heading"] if self._heading is not None else target["text"]).append(data)


def extract_sections(page_html: str) -> list[dict[str, str]]:
    """Return the page's sections as {id, heading, text} with whitespace collapsed."""
    collector = _SectionCollector()
    collector.feed(page_html)
    collector.close()
    sections = []
    for section in collector.sections:
        heading = " ".join("".join(section["heading"]).split())
        text = " ".join("".join(section["text"]).split())
        if heading or text:
            sections.append({"id": section["id"], "heading": heading, "text": text})
    return sections
