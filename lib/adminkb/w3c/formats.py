"""Format recognition for the three log formats, and `read_log`, which reads any of them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import tzinfo

import pandas as pd

from adminkb.errors import InputError
from adminkb.w3c.iislog import read_iis
from adminkb.w3c.ncsa import read_ncsa
from adminkb.w3c.reader import DEFAULT_ENCODING, read_w3c
from adminkb.w3c.sources import LogSource, PathInput, expand_paths, iter_line_chunks

W3C, IIS, NCSA = "w3c", "iis", "ncsa"
LOG_FORMATS = (W3C, IIS, NCSA)
AUTO = "auto"
READERS = {W3C: read_w3c, IIS: read_iis, NCSA: read_ncsa}

# The first lines of each format: a directive; `ip, user, m/d/yy, h:mm:ss,`; `host - user [date]`.
_IIS_START = re.compile(rb"[^,\r\n]*, ?[^,\r\n]*, ?\d{1,2}/\d{1,2}/\d{2,4}, ?\d{1,2}:\d{2}:\d{2},")
_NCSA_START = re.compile(rb"\S+ \S+ \S+ \[\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} ")
_LINES_TO_TRY = 50


def detect_format(source: LogSource) -> str | None:
    """Return the format of a log from its first lines, or None when it is empty or unrecognised."""
    for chunk, _ in iter_line_chunks(source, size=64 * 1024):
        lines = chunk.removeprefix(b"\xef\xbb\xbf").split(b"\n")[:_LINES_TO_TRY]
        for line in lines:
            line = line.strip(b"\r\x00 ")
            if not line:
                continue
            if line.startswith(b"#"):
                return W3C
            if _IIS_START.match(line):
                return IIS
            if _NCSA_START.match(line):
                return NCSA
        return None
    return None


def read_log(paths: PathInput | Iterable[PathInput], *, log_format: str = AUTO, tz: str | tzinfo | None = None,
             encoding: str = DEFAULT_ENCODING) -> pd.DataFrame:
    """Read logs in one of the three formats; with `log_format="auto"` the first lines decide.

    Every file must be in the same format. Raises InputError for an unknown `log_format`, a
    file whose format cannot be recognised, files in different formats, and what the format's
    reader raises.
    """
    if log_format != AUTO and log_format not in LOG_FORMATS:
        raise InputError("w3c.unknown_log_format", value=log_format, formats=", ".join((AUTO, *LOG_FORMATS)),
                         next_key="w3c.unknown_log_format_next")
    if log_format == AUTO:
        log_format = _common_format(expand_paths(paths))
    return READERS[log_format](paths, tz=tz, encoding=encoding)


def _common_format(sources: list[LogSource]) -> str:
    chosen: str | None = None
    first_name = ""
    for source in sources:
        found = detect_format(source)
        if found is None:
            if _is_empty(source):
                continue
            raise InputError("w3c.unrecognised_format", value=source.name, next_key="w3c.unrecognised_format_next")
        if chosen is None:
            chosen, first_name = found, source.name
        elif found != chosen:
            raise InputError("w3c.mixed_formats", value=source.name, found=found, expected=chosen,
                             first=first_name, next_key="w3c.mixed_formats_next")
    return chosen or W3C


def _is_empty(source: LogSource) -> bool:
    return all(not chunk.strip(b"\r\n\x00 ") for chunk, _ in iter_line_chunks(source, size=64 * 1024))
