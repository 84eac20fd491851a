"""Find every resource an HTML page would load from outside its own folder.

An offline page may load only inline content, `data:` URLs and files beside it. Ordinary links
(`<a href>`, `<area href>`) are not loads, so links to Microsoft Learn or an RFC are allowed.

NOTE: script code is not read. A script or an event handler attribute (`onload=`) that fetches a
URL at run time is not found here; the browser test, which blocks the network and records every
request, covers that.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

# Attributes whose URL the browser fetches while it renders the page, by element. HTMLParser
# gives element and attribute names in lower case, so SVG's <feImage> is "feimage" here.
_LOADING_ATTRIBUTES = {
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "link": ("imagesrcset",),
    "iframe": ("src",),
    "frame": ("src",),
    "portal": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
    "script": ("src",),
    "html": ("manifest",),
    # MathML's glyph element.
    "mglyph": ("src",),
}
# Attributes that load on whatever element carries them. `background` is the legacy background
# image of <body>, <table>, <tr>, <td> and <th>, which Chromium still fetches.
_LOADING_ON_ANY_ELEMENT = ("background",)
# `href` and `xlink:href` are loads on every element except the links <a> and <area>: on <link>
# and <base>, and in SVG on <use>, <image>, <feImage>, <script> and the elements that refer to a
# pattern, gradient or path.
_LINK_ELEMENTS = frozenset({"a", "area"})
_HREF_ATTRIBUTES = ("href", "xlink:href")
_SRCSET_ATTRIBUTES = frozenset({"srcset", "imagesrcset"})
# SVG presentation attributes that take a url() reference, such as fill="url(other.svg#gradient)".
_SVG_URL_ATTRIBUTES = ("fill", "stroke", "filter", "mask", "clip-path", "marker-start", "marker-mid",
                       "marker-end", "cursor")

# CSS loads: url(...) in any form of quoting, @import with a bare string, and image-set() or
# image() with bare strings ("image-set('a.png' 1x, 'b.png' 2x)"), with or without -webkit-.
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT = re.compile(r"""@import\s*(['"])(.*?)\1""", re.IGNORECASE)
_CSS_IMAGE_FUNCTION = re.compile(r"(?<![\w-])(?:-webkit-)?image(?:-set)?\(", re.IGNORECASE)
_CSS_STRING = re.compile(r"""(['"])(.*?)\1""", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
# A CSS escape: a backslash and one to six hex digits (with one optional white space after
# them), or a backslash and any other character, which stands for itself.
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\r\n\f]?|\\(.)", re.DOTALL)
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
    # Browsers read "%2e%2e" as "..", so the path is decoded before its segments are compared.
    return ".." not in re.split(r"[/\\]", unquote(parts.path))


def _css_unescape(css: str) -> str:
    """Replace CSS escapes with the characters they stand for, so "u\\72l(" reads as "url("."""
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(2)
        code_point = int(match.group(1), 16)
        if code_point == 0 or code_point > 0x10FFFF or 0xD800 <= code_point <= 0xDFFF:
            return "\ufffd"
        return chr(code_point)

    return _CSS_ESCAPE.sub(replace, css)


def _css_image_function_strings(css: str) -> list[str]:
    """Return the quoted strings inside every image-set() and image() call of `css`."""
    found = []
    for match in _CSS_IMAGE_FUNCTION.finditer(css):
        depth = 1
        end = match.end()
        while end < len(css) and depth:
            depth += {"(": 1, ")": -1}.get(css[end], 0)
            end += 1
        found.extend(string.group(2) for string in _CSS_STRING.finditer(css, match.end(), end))
    return found


def css_resources(css: str) -> list[str]:
    """List the URLs that a stylesheet or a style attribute loads from outside the page's folder."""
    css = _CSS_COMMENT.sub(" ", _css_unescape(css))
    urls = [match.group(2) for pattern in (_CSS_URL, _CSS_IMPORT) for match in pattern.finditer(css)]
    urls += _css_image_function_strings(css)
    return [url for url in urls if not is_local_url(url)]


class _ResourceFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        attributes = list(_LOADING_ATTRIBUTES.get(tag, ())) + list(_LOADING_ON_ANY_ELEMENT)
        if tag not in _LINK_ELEMENTS:
            attributes += _HREF_ATTRIBUTES
        for attribute in attributes:
            if attribute in values:
                self._check_url_attribute(tag, attribute, values[attribute])
        if tag == "iframe" and "srcdoc" in values:
            # The frame's document is this attribute's text, and it is checked as a page of its own.
            self.found.extend(f"<iframe srcdoc> {found}" for found in external_resources(values["srcdoc"]))
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            target = _META_REFRESH_URL.search(values.get("content", ""))
            if target and not is_local_url(target.group(1).strip("'\" ")):
                self.found.append(f"<meta http-equiv=refresh {target.group(1)}>")
        if "style" in values:
            self._check_css(values["style"], f"<{tag} style>")
        for attribute in _SVG_URL_ATTRIBUTES:
            if "url(" in values.get(attribute, "").lower():
                self._check_css(values[attribute], f"<{tag} {attribute}>")
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

    def _check_url_attribute(self, tag: str, attribute: str, value: str) -> None:
        urls = [value]
        if attribute in _SRCSET_ATTRIBUTES:
            urls = [candidate.strip().split(" ")[0] for candidate in value.split(",")]
        for url in urls:
            if not is_local_url(url):
                self.found.append(f"<{tag} {attribute}={url}>")

    def _check_css(self, css: str, where: str) -> None:
        self.found.extend(f"{where} {url}" for url in css_resources(css))


def external_resources(html: str) -> list[str]:
    """List every load in `html` that would reach outside the page's folder, in page order."""
    finder = _ResourceFinder()
    finder.feed(html)
    finder.close()
    return finder.found
