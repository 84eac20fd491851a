"""DataFrame conventions shared by the three log readers: column names, dtypes, time zones, attrs."""

from __future__ import annotations

import codecs
import zoneinfo
from collections.abc import Sequence
from datetime import tzinfo

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
    """Convert a reader's Arrow table into its DataFrame: Int64, Arrow strings, categoricals."""
    frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get, split_blocks=True, self_destruct=True)
    if SOURCE_LINE in frame.columns:
        # The line number is never missing, so it keeps the plain int64 dtype.
        frame[SOURCE_LINE] = frame[SOURCE_LINE].astype("int64")
    return frame


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
