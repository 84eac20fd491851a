"""Display helpers shared by the analyses: catalog column names, translated codes, joined values.

The analyses return `LogTable`s, which a runbook shows with `-` in missing cells and one line in
the user's language in place of a table without rows, instead of pandas' `NaN`, `<NA>` and
"Empty DataFrame".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

import pandas as pd

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.w3c.frame import SOURCE_FILE, SOURCE_LINE

# At most this many values are listed in one cell (addresses tried, HELO names); the count
# columns still count them all.
LISTED_VALUES = 5

# Columns whose values are codes to translate: column key to catalog prefix.
_TRANSLATED_VALUES = {"direction": "smtplog.direction", "result": "smtplog.result", "auth": "smtplog.auth",
                      "reason": "smtplog.reason", "stage": "smtplog.stage"}


# The text of a missing cell in a shown table: `-`, the mark the log itself writes for no value.
MISSING_TEXT = "-"


class LogTable(pd.DataFrame):
    """A DataFrame shown with `-` in missing cells and, without rows, one line in the user's language.

    Only the text and HTML forms change. The cells keep their missing values (NaN, None, NA or
    NaT), so code that works on the table gets the values pandas would return.
    """

    _metadata = ["empty_text"]
    # The line shown in place of a table without rows. None keeps pandas' own form.
    empty_text: str | None = None

    @property
    def _constructor(self) -> type[LogTable]:
        return LogTable

    def display_copy(self) -> pd.DataFrame:
        """Return a plain DataFrame copy with `-` in every missing cell, for printing."""
        plain = pd.DataFrame(self).copy()
        for position in range(plain.shape[1]):
            column = plain.iloc[:, position]
            missing = column.isna()
            if missing.any():
                plain.isetitem(position, column.astype(object).where(~missing, MISSING_TEXT))
        return plain

    def __repr__(self) -> str:
        if len(self.index) == 0 and self.empty_text:
            return self.empty_text
        return repr(self.display_copy())

    def _repr_html_(self) -> str | None:
        if len(self.index) == 0 and self.empty_text:
            return f"<p>{escape(self.empty_text)}</p>"
        return self.display_copy()._repr_html_()


def log_table(table: pd.DataFrame) -> LogTable:
    """Return `table` as a LogTable that shows the catalog's "no rows" line when it is empty."""
    result = LogTable(table)
    result.empty_text = message("smtplog.no_rows")
    return result


def checked_top(top: object) -> int:
    """Return `top` as a row count, or raise InputError when it is not a whole number of 1 or more."""
    if isinstance(top, bool) or not isinstance(top, (int, str)):
        raise InputError("smtplog.invalid_top", value=top, next_key="smtplog.invalid_top_next")
    try:
        count = int(top)
    except ValueError:
        raise InputError("smtplog.invalid_top", value=top, next_key="smtplog.invalid_top_next") from None
    if count < 1:
        raise InputError("smtplog.invalid_top", value=top, next_key="smtplog.invalid_top_next")
    return count


def first_rows(frame: pd.DataFrame, columns: Sequence[str], count: int = 10) -> LogTable:
    """Return the first `count` rows of `columns` of a `read_w3c` frame, shown with `-` for missing values.

    A column that no block of the log recorded is left out rather than shown as all `-`.
    """
    count = checked_top(count)
    present = [column for column in columns if column in frame.columns]
    return log_table(frame[present].head(count))


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


def localize_table(table: pd.DataFrame, zone: str) -> LogTable:
    """Rename internal columns to their catalog names, translate code values and return a LogTable."""
    result = table.copy()
    for column, prefix in _TRANSLATED_VALUES.items():
        if column in result.columns:
            result[column] = result[column].map(
                lambda code, prefix=prefix: code if pd.isna(code) else message(f"{prefix}.{code}"))
    names = {column: label(column, zone=zone) for column in result.columns}
    return log_table(result.rename(columns=names))
