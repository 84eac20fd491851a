"""Keep secrets out of recorded runs: find them in the environment and replace every spelling of them.

Runbooks read credentials from environment variables, and a cell may print one, return it as a
value or show it in a table. The record then contains the secret as typed, escaped by `repr()`
(`\\` doubled, a quote escaped), escaped by JSON or escaped for HTML. Replacing the raw text in
the notebook's JSON file misses all of these, so `Redactor` works on the parsed notebook, one
string at a time, and replaces each spelling that `secret_forms` lists:

    redactor = Redactor(secret_values())
    clean = redactor.notebook(executed)        # every string in sources, outputs and metadata
    page = redactor.text(html_page)            # the rendered page, HTML-escaped spellings too
"""

from __future__ import annotations

import html
import json
import os
import re
from typing import Any

import nbformat

# Environment variable names that hold secrets, by the words such names use. PWD is left out on
# purpose: shells set PWD and OLDPWD to the working folder.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|PRIVATE_?KEY|(^|_)PASS($|_)",
                         re.IGNORECASE)
# Values shorter than this are not redacted: replacing "1" or "on" everywhere would garble the record.
MIN_SECRET_LENGTH = 4
REDACTED = "REDACTED"


def secret_values(environment: dict[str, str] | None = None) -> list[str]:
    """Return the values of environment variables whose names look like secrets, longest first."""
    environment = dict(os.environ if environment is None else environment)
    values = {value for name, value in environment.items()
              if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=lambda value: (-len(value), value))


def _html_forms(text: str) -> set[str]:
    """Return `text` as HTML escapers write it: Python's html.escape, and markupsafe's numeric quotes."""
    markup = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {html.escape(text), html.escape(text, quote=False), markup,
            markup.replace('"', "&#34;").replace("'", "&#39;")}


def secret_forms(secret: str) -> list[str]:
    """Return the spellings of `secret` a notebook or page may contain, longest first.

    The spellings are the secret as typed, the secret inside a `repr()` (backslashes doubled,
    either quote escaped, control and other characters as `\\x..`) and inside a JSON string
    (with and without `\\u` escapes). Each of these is also escaped for HTML, because a
    notebook page shows text and tables as HTML.
    """
    doubled = secret.replace("\\", "\\\\")
    python_forms = {secret, doubled, doubled.replace("'", "\\'"), doubled.replace('"', '\\"'),
                    repr(secret)[1:-1], secret.encode("unicode_escape").decode("ascii")}
    json_forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms = python_forms | json_forms
    for form in list(forms):
        forms |= _html_forms(form)
    return sorted(forms, key=lambda form: (-len(form), form))


class Redactor:
    """Replace every spelling of the given secrets by REDACTED, in text and in whole notebooks."""

    def __init__(self, secrets: list[str]) -> None:
        forms = {form for secret in secrets for form in secret_forms(secret) if len(form) >= MIN_SECRET_LENGTH}
        # Longest first, so that an escaped spelling is replaced before a shorter one inside it.
        self.forms = sorted(forms, key=lambda form: (-len(form), form))

    def text(self, text: str) -> str:
        """Return `text` with each secret spelling replaced."""
        for form in self.forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def data(self, value: Any) -> Any:
        """Return a copy of a JSON-like value (dicts, lists, strings) with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.data(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.data(item) for item in value]
        return value

    def notebook(self, notebook: Any) -> Any:
        """Return a redacted copy of an nbformat notebook: sources, outputs and all metadata.

        Consecutive outputs of one stream are joined first, because a secret written in two
        pieces would arrive as two outputs and match neither of them.
        """
        data = json.loads(json.dumps(notebook))
        for cell in data.get("cells", []):
            if "outputs" in cell:
                cell["outputs"] = _joined_streams(cell["outputs"])
        return nbformat.from_dict(self.data(data))


def _joined_streams(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    joined: list[dict[str, Any]] = []
    for output in outputs:
        previous = joined[-1] if joined else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] = _text(previous.get("text", "")) + _text(output.get("text", ""))
            continue
        joined.append(output)
    return joined


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value
