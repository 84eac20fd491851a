"""Display helpers shared by the analyses: catalog column names, translated codes, joined values."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from adminkb.i18n import message
from adminkb.w3c.frame import SOURCE_FILE, SOURCE_LINE

# At most this many values are listed in one cell (addresses tried, HELO names); the count
# columns still count them all.
LISTED_VALUES = 5

# Columns whose values are codes to translate: column key to catalog prefix.
_TRANSLATED_VALUES = {"direction": "smtplog.direction", "result": "smtplog.result", "auth": "smtplog.auth",
                      "reason": "smtplog.reason", "stage": "smtplog.stage"}


def label(key: str, **values: object) -> str:
    """Return the displayed name of an internal column key."""
    return message(f"smtplog.column.{key}", **values)


def listed(values: Iterable[object], limit: int = LISTED_VALUES) -> str:
    """Join distinct values in sorted order for one table cell, ending with a count when cut."""
    distinct = sorted({str(value) for value in values if value is not None and not pd.isna(value)})
    shown = ", ".join(distinct[:limit])
    if len(distinct) > limit:
        shown = message("smtplog.more_values", shown=shown, more=len(distinct) - limit)
    return shown


def format_reply(code: object, text: object) -> object:
    """Return a reply as `code text`, the code alone when there is no text, NA without a code."""
    if code is None or pd.isna(code):
        return pd.NA
    if text is None or pd.isna(text) or not str(text):
        return str(int(code))
    return f"{int(code)} {text}"


def source_of(table: pd.DataFrame) -> pd.Series:
    """Return `file:line` for each row, so that a finding can be traced back to the log.

    Only the file's own name is kept (`ex260302.log:41`), because the folder is the one the
    admin read and a full path would fill the table.
    """
    names = table[SOURCE_FILE].astype("string").str.replace(r"^.*[/\\]", "", regex=True)
    return names + ":" + table[SOURCE_LINE].astype("string")


def localize_table(table: pd.DataFrame, zone: str) -> pd.DataFrame:
    """Rename internal columns to their catalog names and translate code values."""
    result = table.copy()
    for column, prefix in _TRANSLATED_VALUES.items():
        if column in result.columns:
            result[column] = result[column].map(
                lambda code, prefix=prefix: code if pd.isna(code) else message(f"{prefix}.{code}"))
    names = {column: label(column, zone=zone) for column in result.columns}
    return result.rename(columns=names)
