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

A Windows computer name has one label (`MAIL01`), so it cannot be told from a word by its
shape. A Masker masks such a name where its position shows it is a host: the host part of a
UNC path (`\\\\MAIL01\\share`), the name in an SMTP banner, EHLO greeting or closing reply, and
after `@`. It remembers the names those replies show and the ones given with `add_host` (the
server a runbook ran against). Such a name is also masked before `:port`, and anywhere else
when it is written the way computer names are and words are not: with a digit, hyphen or dot
(in any case), or in capitals (only where it is written in capitals, and not an SMTP keyword
such as MAIL or DATA). A lower-case name without digits, such as `mail`, stays visible there.
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

# A host name of one label or more, as SMTP replies and UNC paths write it.
_NAME = rf"{_LABEL}(?:\.{_LABEL})*"
# SMTP replies that name the server: the banner ("220 MAIL01 Microsoft ESMTP MAIL Service ..."
# or "220 mail.example.com ESMTP Postfix"), the EHLO greeting ("250-MAIL01 Hello [192.0.2.10]")
# and IIS's closing reply ("221 2.0.0 MAIL01 Service closing transmission channel").
_GREETING = re.compile(rf"(?<![0-9.])(?:220[ -](?P<banner>{_NAME})(?=[ \t][^\n]*\bE?SMTP\b)"
                       rf"|250[ -](?P<hello>{_NAME})(?= Hello\b)"
                       rf"|221 \d\.\d\.\d (?P<closing>{_NAME})(?= Service closing\b))")
# The host part of a UNC path: two backslashes, or four where repr() or JSON doubled them.
_UNC = re.compile(rf"(?<![\\\w])((?:\\\\){{1,2}})({_NAME})(?=\\|[\s\"'<>,;:)\]]|$)")
# SMTP commands and keywords written in capitals: an all-capital server name equal to one of
# them is masked only where its position shows it is a host.
_SMTP_WORDS = frozenset({
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "TURN", "ETRN",
    "BDAT", "AUTH", "STARTTLS", "SIZE", "DSN", "PIPELINING", "CHUNKING", "BINARYMIME", "ENHANCEDSTATUSCODES",
    "SMTP", "ESMTP", "LOGIN", "PLAIN", "NTLM", "GSSAPI", "TLS", "SSL", "OK", "DNS", "MX", "PTR", "SPF", "DMARC",
    "IIS", "FROM", "TO",
})


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
        # Server names seen in SMTP replies or given with add_host, as written.
        self.known_names: set[str] = set()
        self._name_patterns: tuple[re.Pattern[str] | None, re.Pattern[str]] | None = None

    def add_host(self, name: str) -> None:
        """Mask `name` from now on, also where nothing around it shows that it is a host."""
        name = name.strip().rstrip(".")
        if not re.fullmatch(_NAME, name) or _PLACEHOLDER.match(name) or name.lower() == "localhost":
            return
        if self._is_kept(name.lower()) or _looks_numeric(name):
            return
        if name not in self.known_names:
            self.known_names.add(name)
            self._name_patterns = None

    def learn(self, text: str) -> None:
        """Remember the server names that the SMTP replies in `text` show, so that `mask` hides them elsewhere too."""
        for match in _GREETING.finditer(text or ""):
            self.add_host(match.group("banner") or match.group("hello") or match.group("closing"))

    def mask(self, text: str) -> str:
        """Replace the e-mail local parts, host names and IP addresses in `text` and return the result."""
        if not text:
            return text
        self.learn(text)
        text = _EMAIL.sub(self._replace_email, text)
        text = _IPV6_CANDIDATE.sub(self._replace_ipv6, text)
        text = _IPV4_CANDIDATE.sub(self._replace_ipv4, text)
        text = _GREETING.sub(self._replace_greeting, text)
        text = _UNC.sub(self._replace_unc, text)
        text = _HOST.sub(self._replace_host, text)
        return self._mask_known_names(text)

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

    def _replace_greeting(self, match: re.Match[str]) -> str:
        group = next(name for name in ("banner", "hello", "closing") if match.group(name) is not None)
        start, end = match.span(group)
        offset = match.start()
        text = match.group(0)
        masked = self._mask_host(match.group(group), require_known_tld=False)
        return text[:start - offset] + masked + text[end - offset:]

    def _replace_unc(self, match: re.Match[str]) -> str:
        return match.group(1) + self._mask_host(match.group(2), require_known_tld=False)

    def _mask_known_names(self, text: str) -> str:
        """Mask the known server names: everywhere when written like a computer name, else before `:port`."""
        if not self.known_names:
            return text
        if self._name_patterns is None:
            self._name_patterns = self._compile_name_patterns()
        everywhere, before_port = self._name_patterns
        if everywhere is not None:
            text = everywhere.sub(self._replace_name, text)
        return before_port.sub(self._replace_name, text)

    def _replace_name(self, match: re.Match[str]) -> str:
        return self._mask_host(match.group(0), require_known_tld=False)

    def _compile_name_patterns(self) -> tuple[re.Pattern[str] | None, re.Pattern[str]]:
        # Longest first, so that "MAIL01-B" is tried before "MAIL01".
        names = sorted(self.known_names, key=lambda name: (-len(name), name))
        # A name is whole when no letter or digit touches it and no dot or "@" comes before it.
        # A dot after it may start a domain (MAIL01.corp.tw) or a file suffix (MAIL01.log), and
        # the name is masked in both: a full host name under a known TLD was masked before.
        edge_before, edge_after = r"(?<![A-Za-z0-9.@])", r"(?![A-Za-z0-9])"
        folded = [re.escape(name) for name in names if _computer_like(name) and not name.isalpha()]
        exact = [re.escape(name) for name in names if _computer_like(name) and name.isalpha()]
        parts = ([f"(?i:{'|'.join(folded)})"] if folded else []) + exact
        everywhere = re.compile(f"{edge_before}(?:{'|'.join(parts)}){edge_after}") if parts else None
        before_port = re.compile(f"{edge_before}(?i:{'|'.join(re.escape(name) for name in names)})(?=:\\d{{1,5}}\\b)")
        return everywhere, before_port

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


def _computer_like(name: str) -> bool:
    """Return whether `name` is written the way computer names are and ordinary words are not."""
    if any(character.isdigit() or character in "-." for character in name):
        return True
    return name.isupper() and len(name) >= 2 and name not in _SMTP_WORDS


def _looks_numeric(name: str) -> bool:
    return all(label.isdigit() for label in name.split("."))


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
    # Learn the server names of the whole notebook first, so that a name shown by a banner in a
    # late cell is masked in earlier cells too.
    for text in _texts(masked, markdown):
        masker.learn(text)
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


def _texts(notebook: Any, markdown: bool) -> Iterable[str]:
    """Yield the texts `mask_notebook` masks: code sources, outputs, and markdown when asked."""
    for cell in notebook.get("cells", []):
        kind = cell.get("cell_type")
        if kind == "markdown" and markdown:
            yield _joined(cell.get("source", ""))
        if kind != "code":
            continue
        yield _joined(cell.get("source", ""))
        for output in cell.get("outputs", []):
            yield _joined(output.get("text", ""))
            yield output.get("evalue", "")
            yield from output.get("traceback", [])
            for value in output.get("data", {}).values():
                if isinstance(value, str):
                    yield value
                elif isinstance(value, list) and all(isinstance(item, str) for item in value):
                    yield "".join(value)


def _joined(source: str | list[str]) -> str:
    return "".join(source) if isinstance(source, list) else source
