"""Find every resource an HTML page would load from outside its own folder.

An offline page may load only inline content, `data:` URLs and files beside it. Ordinary links
(`<a href>`) are not loads, so links to Microsoft Learn or an RFC are allowed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

# Attributes whose URL the browser fetches while it renders the page, by element.
_LOADING_ATTRIBUTES = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
    "base": ("href",),
}

# CSS loads: url(...) in any form of quoting, and @import with a bare string.
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT = re.compile(r"""@import\s+(['"])(.*?)\1""", re.IGNORECASE)
_META_REFRESH_URL = re.compile(r"url\s*=\s*(.+)", re.IGNORECASE)


def is_local_url(url: str) -> bool:
    """Return True for a `data:` URL, a fragment, or a relative path that stays inside the folder."""
    url = url.strip()
    if not url or url.startswith("#"):
        return True
    parts = urlsplit(url)
    if parts.scheme:
        return parts.scheme.lower() == "data"
    if url.startswith(("/", "\\")):
        # An absolute path (or "//host", which browsers read as another host).
        return False
    return ".." not in re.split(r"[/\\]", parts.path)


class _ResourceFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        for attribute in _LOADING_ATTRIBUTES.get(tag, ()):
            if attribute not in values:
                continue
            urls = [values[attribute]]
            if attribute == "srcset":
                urls = [candidate.strip().split(" ")[0] for candidate in values[attribute].split(",")]
            for url in urls:
                if not is_local_url(url):
                    self.found.append(f"<{tag} {attribute}={url}>")
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            target = _META_REFRESH_URL.search(values.get("content", ""))
            if target and not is_local_url(target.group(1).strip("'\" ")):
                self.found.append(f"<meta http-equiv=refresh {target.group(1)}>")
        if "style" in values:
            self._check_css(values["style"], f"<{tag} style>")
        if tag == "style":
            self._in_style = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "style":
            self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._check_css(data, "<style>")

    def _check_css(self, css: str, where: str) -> None:
        for pattern in (_CSS_URL, _CSS_IMPORT):
            for match in pattern.finditer(css):
                if not is_local_url(match.group(2)):
                    self.found.append(f"{where} {match.group(0)}")


def external_resources(html: str) -> list[str]:
    """List every load in `html` that would reach outside the page's folder, in page order."""
    finder = _ResourceFinder()
    finder.feed(html)
    finder.close()
    return finder.found
