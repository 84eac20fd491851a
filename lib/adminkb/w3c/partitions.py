"""W3C logs as partitions of one layout, for `dask.dataframe.from_map` and other per-file readers.

`read_w3c` gives each call's frame the fields its blocks logged, so frames of different files
can differ in columns and categories. A distributed reader needs every partition in one
layout: `read_w3c_partition` reads one source and conforms it to a fixed field list, and
`read_w3c_dask` maps it over many files, one partition per file. The same call runs on a
`distributed.LocalCluster` or on a real cluster, because each task reads its own file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import pandas as pd

from adminkb.w3c.columns import DATE_FIELD, TIME_FIELD
from adminkb.w3c.frame import SOURCE_FILE, SOURCE_LINE, TIMESTAMP
from adminkb.w3c.reader import DEFAULT_ENCODING, INTEGER_FIELDS, read_w3c

# The full field list of the IIS SMTP Service's W3C Extended log, in the order it writes them.
SMTP_FIELDS = ("date", "time", "c-ip", "cs-username", "s-sitename", "s-computername", "s-ip", "s-port",
               "cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-win32-status", "sc-bytes",
               "cs-bytes", "time-taken", "cs-version", "cs-host", "cs(User-Agent)", "cs(Cookie)", "cs(Referer)")


def _column_dtype(name: str) -> str:
    # Categories differ between files, so text fields become plain strings in every partition.
    return "Int64" if name in INTEGER_FIELDS else "string"


def partition_columns(fields: Sequence[str] = SMTP_FIELDS) -> list[str]:
    """Return the columns of a conformed partition: timestamp, the fields, source file and line."""
    return [TIMESTAMP, *(name for name in fields if name not in (DATE_FIELD, TIME_FIELD)), SOURCE_FILE, SOURCE_LINE]


def conform(frame: pd.DataFrame, fields: Sequence[str] = SMTP_FIELDS) -> pd.DataFrame:
    """Return `frame` with exactly the columns of `partition_columns(fields)` and fixed dtypes.

    A field the frame lacks becomes a column of missing values; a field outside `fields` is
    dropped. Timestamps are converted to UTC, so partitions read with different zones agree.
    """
    result = {}
    timestamps = frame[TIMESTAMP] if TIMESTAMP in frame.columns else pd.Series(pd.NaT, index=frame.index)
    result[TIMESTAMP] = pd.to_datetime(timestamps, utc=True).astype("datetime64[s, UTC]")
    for name in partition_columns(fields)[1:-1]:
        dtype = _column_dtype(name)
        if name in frame.columns:
            result[name] = frame[name].astype(dtype)
        else:
            result[name] = pd.Series(pd.NA, index=frame.index, dtype=dtype)
    result[SOURCE_LINE] = frame[SOURCE_LINE].astype("int64") if SOURCE_LINE in frame.columns \
        else pd.Series(0, index=frame.index, dtype="int64")
    return pd.DataFrame(result, index=frame.index)


def read_w3c_partition(path: str | os.PathLike[str], fields: Sequence[str] = SMTP_FIELDS,
                       encoding: str = DEFAULT_ENCODING) -> pd.DataFrame:
    """Read one log source with `read_w3c` and conform it to `fields` (see `conform`).

    The skipped-line list stays in the partition's `attrs`, which dask does not carry over.
    """
    frame = read_w3c(path, encoding=encoding)
    conformed = conform(frame, fields)
    conformed.attrs["skipped"] = frame.attrs.get("skipped", [])
    return conformed


def read_w3c_dask(paths: Iterable[str | os.PathLike[str]], fields: Sequence[str] = SMTP_FIELDS,
                  encoding: str = DEFAULT_ENCODING):  # noqa: ANN201 - dask is an optional import
    """Return a dask DataFrame with one partition per log file, each conformed to `fields`.

    Needs `dask[dataframe]`, which the project's `test` extra installs. Compute it on any
    scheduler. A `distributed.Client` connected to a `LocalCluster` also needs the `distributed`
    package, which the `bench` extra installs.
    """
    import dask.dataframe as dd

    files = [os.fspath(path) for path in paths]
    meta = conform(pd.DataFrame({TIMESTAMP: pd.Series([], dtype="datetime64[s, UTC]"),
                                 SOURCE_LINE: pd.Series([], dtype="int64")}), fields)
    return dd.from_map(read_w3c_partition, files, fields=tuple(fields), encoding=encoding, meta=meta,
                       enforce_metadata=False)
