"""The message catalog: every user-facing message in Traditional Chinese (Taiwan) and English.

Messages live in `messages/*.toml`, one file per area, loaded into one catalog. Each entry is a
table with a `zh-TW` and an `en` string; placeholders use `str.format` names (`{host}`).
Traditional Chinese is the default; `ADMINKB_LANG=en` switches to English.
"""

from __future__ import annotations

import logging
import os
import string
import tomllib
from functools import lru_cache
from importlib import resources

LANGUAGES = ("zh-TW", "en")
DEFAULT_LANGUAGE = "zh-TW"


def current_language() -> str:
    """Return the language chosen by `ADMINKB_LANG`, falling back to zh-TW for unknown values.

    Locale-style spellings are accepted: `EN`, `en_US.UTF-8` and `en-GB` mean English, and
    `zh_TW`, `zh-Hant` and `zh` mean Traditional Chinese. Another value logs one warning.
    """
    raw = os.environ.get("ADMINKB_LANG", "").strip()
    if not raw:
        return DEFAULT_LANGUAGE
    normalized = raw.split(".")[0].replace("_", "-").lower()
    if normalized == "en" or normalized.startswith("en-"):
        return "en"
    if normalized in ("zh", "zh-tw", "zh-hant", "zh-hant-tw"):
        return "zh-TW"
    _warn_unknown_language(raw)
    return DEFAULT_LANGUAGE


@lru_cache(maxsize=8)
def _warn_unknown_language(value: str) -> None:
    logging.getLogger("adminkb.i18n").warning(
        "ADMINKB_LANG=%r is not a supported language (zh-TW, en); using zh-TW", value)


def _flatten(table: dict, prefix: str, out: dict[str, dict[str, str]]) -> None:
    if any(lang in table for lang in LANGUAGES):
        out[prefix] = {lang: table.get(lang) for lang in LANGUAGES}
        return
    for name, value in table.items():
        if isinstance(value, dict):
            _flatten(value, f"{prefix}.{name}" if prefix else name, out)


@lru_cache(maxsize=None)
def _area_messages(area: str) -> dict[str, dict[str, str | None]]:
    """Load `messages/<area>.toml` into a mapping of key to {language: text}; {} when there is no such file.

    A command needs only the areas it uses, so messages are loaded one area at a time: parsing
    all 42 files took about 0.05 s at every start of the CLI and of every scan worker.
    """
    item = resources.files("adminkb") / "messages" / f"{area}.toml"
    if not item.is_file():
        return {}
    with item.open("rb") as handle:
        data = tomllib.load(handle)
    found: dict[str, dict[str, str | None]] = {}
    _flatten(data, area, found)
    return found


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, str | None]]:
    """Load every `messages/*.toml` file into one mapping of key to {language: text}."""
    entries: dict[str, dict[str, str | None]] = {}
    folder = resources.files("adminkb") / "messages"
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.name.endswith(".toml"):
            entries.update(_area_messages(item.name[: -len(".toml")]))
    return entries


def placeholders(text: str) -> set[str]:
    """Return the `str.format` field names used in a message."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def message(key: str, language: str | None = None, **values: object) -> str:
    """Return the message `key` in the current language, with `values` filled in.

    A missing key raises KeyError so that a typo fails in the tests, not in front of a user.
    """
    # Keys start with the name of the file that defines them, so one area's file is enough.
    entry = _area_messages(key.split(".", 1)[0])[key]
    text = entry.get(language or current_language()) or entry["en"] or ""
    return text.format(**values) if values else text


# The conventional short name, as gettext uses it.
_ = message
