"""DataFrame conventions shared by the three log readers: column names, dtypes, time zones, attrs."""

from __future__ import annotations

import codecs
import zoneinfo
from collections.abc import Sequence
from datetime import tzinfo

import numpy as np
import pandas as pd
import pyarrow as pa

from adminkb.errors import InputError

TIMESTAMP = "timestamp"
SOURCE_FILE = "source_file"
SOURCE_LINE = "source_line"

# The Arrow types the readers build columns with, and the pandas dtypes they become:
# nullable Int64, strings kept in Arrow memory, and categoricals from dictionary columns.
INTEGER_TYPE = pa.int64()
TEXT_TYPE = pa.string()
CATEGORY_TYPE = pa.dictionary(pa.int32(), pa.string())
TIMESTAMP_UTC_TYPE = pa.timestamp("s", tz="UTC")
TIMESTAMP_LOCAL_TYPE = pa.timestamp("s")

_PANDAS_TYPES = {INTEGER_TYPE: pd.Int64Dtype(), TEXT_TYPE: pd.StringDtype("pyarrow")}


def resolve_timezone(tz: str | tzinfo | None) -> tzinfo | None:
    """Return the time zone `tz` names (an IANA name such as `Asia/Taipei`), or None for no zone.

    Raises InputError for a name the time zone database does not know.
    """
    if tz is None or isinstance(tz, tzinfo):
        return tz
    name = str(tz).strip()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: an absolute or `..` path; OSError: a folder of zones such as `Asia`.
        raise InputError("w3c.unknown_time_zone", value=str(tz), next_key="w3c.unknown_time_zone_next") from None


def checked_encoding(encoding: str) -> str:
    """Return the codec name of `encoding`; raise InputError when Python has no such codec."""
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise InputError("w3c.unknown_encoding", value=str(encoding), next_key="w3c.unknown_encoding_next") from None


def timezone_name(zone: tzinfo | None) -> str | None:
    """Return the name to record for `zone` in `df.attrs` (`Asia/Taipei`), or None."""
    if zone is None:
        return None
    return getattr(zone, "key", None) or str(zone)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Convert a reader's Arrow table into its DataFrame: Int64, Arrow strings, categoricals.

    Columns are converted one at a time and each Arrow column is released once converted, so
    the Arrow table and the DataFrame are never both whole in memory.
    """
    columns: dict[str, object] = {}
    for name in table.column_names:
        column = table.column(name)
        table = table.drop_columns([name])
        columns[name] = _to_pandas_column(name, column)
        del column
    return pd.DataFrame(columns, copy=False)


def _to_pandas_column(name: str, column: pa.ChunkedArray) -> object:
    if column.type == INTEGER_TYPE:
        values = _concatenated_values(column, np.int64)
        if name == SOURCE_LINE:
            # The line number is never missing, so it keeps the plain int64 dtype.
            return values
        mask = np.concatenate([chunk.is_null().to_numpy(zero_copy_only=False) for chunk in column.chunks]) \
            if column.null_count else np.zeros(len(values), dtype=bool)
        return pd.arrays.IntegerArray(values, mask)
    if column.type == TEXT_TYPE:
        return pd.array(column, dtype=_PANDAS_TYPES[TEXT_TYPE])
    return column.to_pandas()


def _concatenated_values(column: pa.ChunkedArray, dtype: type) -> np.ndarray:
    """Return the values of a fixed-width column in one numpy array; missing slots hold any value."""
    parts = []
    for chunk in column.chunks:
        data = chunk.buffers()[1]
        parts.append(np.frombuffer(data, dtype=dtype)[chunk.offset:chunk.offset + len(chunk)] if data is not None
                     else np.zeros(len(chunk), dtype=dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def attach_attrs(frame: pd.DataFrame, *, log_format: str, files: Sequence[str], blocks: Sequence[dict],
                 skipped: Sequence[dict], zone: tzinfo | None) -> pd.DataFrame:
    """Record how the frame was read in `frame.attrs`, which `adminkb.w3c.summarize` reads.

    `files` lists the sources read, `blocks` one dict per block of lines sharing a layout, and
    `skipped` one dict per line that is not a row (`file`, `line`, `reason`, `detail`).
    """
    frame.attrs["format"] = log_format
    frame.attrs["files"] = list(files)
    frame.attrs["blocks"] = list(blocks)
    frame.attrs["skipped"] = list(skipped)
    frame.attrs["tz"] = timezone_name(zone)
    return frame
