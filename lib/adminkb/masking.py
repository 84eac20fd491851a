"""Mask e-mail local parts, host names and IP addresses in text before it travels.

Recorded runs and HTML exports go to colleagues and vendors, so `--mask` replaces the values
that identify people and machines with placeholders. One `Masker` gives the same value the
same placeholder every time, so a reader can still follow "host-2 refused user-1" through a
whole document:

    user-N           an e-mail local part (the part before "@")
    host-N.invalid   a host or domain name (".invalid" is reserved by RFC 2606)
    ipv4-N, ipv6-N   an IP address

Loopback and unspecified addresses (127.0.0.0/8, ::1, 0.0.0.0, ::) and the name `localhost`
identify no one, so they stay as they are. So do the hosts in `keep_hosts` and their
subdomains, by default the public documentation sites the runbooks link to.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

# Public documentation sites that runbooks and reply explanations link to. Masking them would
# only break the links, and they reveal nothing about the reader's own systems.
PUBLIC_REFERENCE_HOSTS = (
    "learn.microsoft.com",
    "support.microsoft.com",
    "docs.microsoft.com",
    "www.rfc-editor.org",
    "datatracker.ietf.org",
    "www.iana.org",
)

# Top-level domains that mark a dotted word as a host name. A dotted word ending in anything
# else (README.md, sysprep.inf, adminkb.smtp) is taken for a file or module name and kept.
# NOTE: a host name under a TLD missing here (for example a two-label name under a country
# code such as "example.tw") is not masked unless it appears after "@" in an e-mail address.
# Names of three labels or more under a two-letter country code ("mail.example.com.tw") are.
HOST_TLDS = frozenset({
    "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "name", "pro", "mobi",
    "io", "cloud", "online", "site", "app", "dev",
    "test", "example", "invalid", "local", "localdomain", "lan", "corp", "internal", "intranet",
    "home", "arpa",
})

# One DNS label: letters, digits and inner hyphens (RFC 1123), at most 63 characters.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A word that starts with an SMTP reply code and a hyphen ("250-mail.example.com") is a reply
# line's continuation mark followed by the name, so the match starts after the hyphen.
_HOST = re.compile(rf"(?:(?<![\w.@-])|(?<=\b\d{{3}}-))(?!\d{{3}}-)(?:{_LABEL}\.)+[A-Za-z]{{2,63}}\.?(?![\w-]|\.\w)")

# An e-mail address: the usual local-part characters, "@", then a host name or an address
# literal. NOTE: rarer local-part characters (`!#$&'*/=?^{|}~` and quoted local parts) end the
# match, so the part of the local part before such a character stays visible.
_EMAIL = re.compile(rf"(?<![\w.%+-])([A-Za-z0-9._%+-]+)@((?:{_LABEL}\.)*{_LABEL}\.?|\[[^\]\s]+\])")

# Candidates only: each match is confirmed by the ipaddress module before it is replaced.
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%\w+)?")
_IPV4_CANDIDATE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")

# Placeholders this module writes, so that masking masked text changes nothing.
_PLACEHOLDER = re.compile(r"^(?:user-\d+|host-\d+\.invalid|ipv4-\d+|ipv6-\d+)$", re.IGNORECASE)


class Masker:
    """Replace identifying values in text with numbered placeholders, the same value each time.

    Use one Masker per document: the numbering starts at 1 and follows the order in which
    values first appear. `keep_hosts` lists host names kept as they are, with their subdomains.
    """

    def __init__(self, keep_hosts: Iterable[str] = PUBLIC_REFERENCE_HOSTS) -> None:
        self.keep_hosts = tuple(host.lower().rstrip(".") for host in keep_hosts)
        self.local_parts: dict[str, str] = {}
        self.hosts: dict[str, str] = {}
        self.ipv4_addresses: dict[str, str] = {}
        self.ipv6_addresses: dict[str, str] = {}

    def mask(self, text: str) -> str:
        """Replace the e-mail local parts, host names and IP addresses in `text` and return the result."""
        if not text:
            return text
        text = _EMAIL.sub(self._replace_email, text)
        text = _IPV6_CANDIDATE.sub(self._replace_ipv6, text)
        text = _IPV4_CANDIDATE.sub(self._replace_ipv4, text)
        return _HOST.sub(self._replace_host, text)

    def mapping(self) -> dict[str, str]:
        """Return every original value masked so far with its placeholder."""
        return {**self.local_parts, **self.hosts, **self.ipv4_addresses, **self.ipv6_addresses}

    # E-mail addresses mask the local part here and the domain as a host name, so that
    # "user@mail.example.com" and a later "mail.example.com" share one placeholder.
    def _replace_email(self, match: re.Match[str]) -> str:
        local, domain = match.group(1), match.group(2)
        if _PLACEHOLDER.match(local):
            masked_local = local
        else:
            masked_local = self._placeholder(self.local_parts, local, "user-{}")
        if domain.startswith("["):
            literal = domain[1:-1]
            address = literal[5:] if literal.lower().startswith("ipv6:") else literal
            masked_domain = f"[{literal[: len(literal) - len(address)]}{self._mask_address(address)}]"
        else:
            masked_domain = self._mask_host(domain, require_known_tld=False)
        return f"{masked_local}@{masked_domain}"

    def _replace_ipv6(self, match: re.Match[str]) -> str:
        candidate = match.group(0)
        # A candidate may end with the punctuation of the sentence around it ("at ::1.").
        core = candidate.rstrip(".:") if not candidate.endswith("::") else candidate
        trailing = candidate[len(core):]
        scope = ""
        if "%" in core:
            core, scope = core.split("%", 1)
            scope = "%" + scope
        try:
            address = ipaddress.IPv6Address(core)
        except ValueError:
            return candidate
        return self._mask_parsed(address, core) + scope + trailing

    def _replace_ipv4(self, match: re.Match[str]) -> str:
        return self._mask_address(match.group(0))

    def _replace_host(self, match: re.Match[str]) -> str:
        return self._mask_host(match.group(0), require_known_tld=True)

    def _mask_address(self, text: str) -> str:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return text
        return self._mask_parsed(address, text)

    def _mask_parsed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> str:
        if address.is_loopback or address.is_unspecified:
            return text
        if address.version == 4:
            return self._placeholder(self.ipv4_addresses, str(address), "ipv4-{}")
        return self._placeholder(self.ipv6_addresses, str(address), "ipv6-{}")

    def _mask_host(self, name: str, require_known_tld: bool) -> str:
        trailing_dot = name.endswith(".")
        bare = name.rstrip(".")
        key = bare.lower()
        labels = key.split(".")
        if _PLACEHOLDER.match(bare) or key == "localhost" or self._is_kept(key):
            return name
        if require_known_tld:
            tld = labels[-1]
            known = tld in HOST_TLDS or (len(tld) == 2 and len(labels) >= 3)
            if not known:
                return name
        masked = self._placeholder(self.hosts, key, "host-{}.invalid")
        # A trailing dot ending the name is the end of a sentence more often than an
        # absolute DNS name, so it stays in the text after the placeholder.
        return masked + ("." if trailing_dot else "")

    def _is_kept(self, key: str) -> bool:
        return any(key == kept or key.endswith("." + kept) for kept in self.keep_hosts)

    @staticmethod
    def _placeholder(table: dict[str, str], value: str, pattern: str) -> str:
        if value not in table:
            table[value] = pattern.format(len(table) + 1)
        return table[value]


def mask_text(text: str, masker: Masker | None = None) -> str:
    """Mask one piece of text, with a fresh Masker unless one is given."""
    return (masker or Masker()).mask(text)


# Output formats whose text is masked, besides any "+json" format. Image outputs (image/png,
# image/svg+xml) may show text that cannot be masked, so mask_notebook drops them.
_TEXT_FORMATS = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")
_IMAGE_PREFIX = "image/"


def mask_notebook(notebook: Any, masker: Masker | None = None, *, markdown: bool = False) -> Any:
    """Return a masked copy of an nbformat notebook; the notebook passed in is not changed.

    Code cell sources and their outputs (streams, rich outputs, errors) are masked with one
    Masker, so placeholders agree across the notebook. Image outputs are dropped, because text
    drawn in a picture (a plot label, a screenshot) cannot be masked. Markdown cells are the
    runbook's own prose and stay as they are unless `markdown` is True. The widget state saved in
    the notebook metadata is masked too, so that an exported page still draws a progress bar or a
    checklist as it was saved. Its binary buffers (the pixels of an image widget) are dropped.
    """
    masker = masker or Masker()
    masked = copy.deepcopy(notebook)
    for cell in masked.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["source"] = masker.mask(_joined(cell.get("source", "")))
            for output in cell.get("outputs", []):
                _mask_output(output, masker)
        elif cell.get("cell_type") == "markdown" and markdown:
            cell["source"] = masker.mask(_joined(cell.get("source", "")))
    metadata = masked.get("metadata", {})
    if "widgets" in metadata:
        metadata["widgets"] = _mask_widget_state(metadata["widgets"], masker)
    return masked


def _mask_output(output: Any, masker: Masker) -> None:
    kind = output.get("output_type")
    if kind == "stream":
        output["text"] = masker.mask(_joined(output.get("text", "")))
    elif kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        for mime in list(data):
            if mime.startswith(_IMAGE_PREFIX):
                del data[mime]
            elif mime in _TEXT_FORMATS or mime.endswith("+json"):
                data[mime] = _mask_value(data[mime], masker)
    elif kind == "error":
        output["evalue"] = masker.mask(output.get("evalue", ""))
        output["traceback"] = [masker.mask(line) for line in output.get("traceback", [])]


def _mask_value(value: Any, masker: Masker) -> Any:
    if isinstance(value, str):
        return masker.mask(value)
    if isinstance(value, list):
        return [_mask_value(item, masker) for item in value]
    if isinstance(value, dict):
        return {key: _mask_value(item, masker) for key, item in value.items()}
    return value


# Widget state keys that name the widget's model and view classes and their packages, never user data.
_WIDGET_CLASS_KEYS = frozenset({"model_module", "model_module_version", "model_name"})
# The prefix of a reference to another widget in saved widget state ("IPY_MODEL_" and the model id).
_WIDGET_REFERENCE = "IPY_MODEL_"


def _mask_widget_state(value: Any, masker: Masker) -> Any:
    """Mask every string in saved widget state except class names and references between widgets.

    Keys that start with "_" (`_model_name`, `_view_module`) and the keys in _WIDGET_CLASS_KEYS
    are the widget protocol's own names. Any other string, at any depth, may be a value the user
    typed or the kernel wrote, so it is masked. "buffers" contains base64 binary data that cannot
    be masked, so it is dropped.
    """
    if isinstance(value, str):
        return value if value.startswith(_WIDGET_REFERENCE) else masker.mask(value)
    if isinstance(value, list):
        return [_mask_widget_state(item, masker) for item in value]
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            if key == "buffers":
                continue
            if key.startswith("_") or key in _WIDGET_CLASS_KEYS:
                masked[key] = item
            else:
                masked[key] = _mask_widget_state(item, masker)
        return masked
    return value


def _joined(source: str | list[str]) -> str:
    return "".join(source) if isinstance(source, list) else source
