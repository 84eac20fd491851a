"""The NCSA Common log format, which the SMTP service can write instead of W3C Extended.

Each line contains these fields, separated by spaces (Microsoft, "NCSA Common Log File Format
(IIS 6.0)"): remote host address, remote log name (always `-`) and user name (for SMTP, the
HELO/EHLO name). Then come the local date and time with the offset from GMT in brackets, the
request in double quotes, the status code and the bytes sent:

    192.0.2.7 - app01 [11/Oct/2006:13:16:40 -0600] "HELO -?+app01 SMTP" 250 0

The request of an SMTP line is the command, the target, `?` and the argument (with `+` for
spaces), then the protocol. The reader keeps `request` as written and also splits it into
`cs-method`, `cs-uri-stem`, `cs-uri-query` (with `+` decoded as in W3C logs) and `cs-version`
when it has that shape. Microsoft's Exchange example writes `- 0800` with a space after the
sign; the reader accepts both spellings.

`timestamp` is the local time as written, without a zone, and `utc_offset` the offset as
written (`-0600`). With `tz`, each timestamp becomes a time in that zone, computed from the
line's own offset, so a daylight-saving change cannot make it ambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, tzinfo

import pandas as pd
import pyarrow as pa

from adminkb.w3c import skipped as reasons
from adminkb.w3c.columns import decode_query_value
from adminkb.w3c.fixed import LineDefect, integer, read_fixed, value_or_none
from adminkb.w3c.frame import (
    CATEGORY_TYPE,
    INTEGER_TYPE,
    TEXT_TYPE,
    TIMESTAMP,
    TIMESTAMP_LOCAL_TYPE,
    checked_encoding,
)
from adminkb.w3c.sources import PathInput

LOG_FORMAT = "ncsa"
DEFAULT_ENCODING = "cp950"
UTC_OFFSET = "utc_offset"

SCHEMA = pa.schema([
    (TIMESTAMP, TIMESTAMP_LOCAL_TYPE), (UTC_OFFSET, CATEGORY_TYPE), ("c-ip", CATEGORY_TYPE),
    ("remote-logname", CATEGORY_TYPE), ("cs-username", CATEGORY_TYPE), ("request", TEXT_TYPE),
    ("cs-method", CATEGORY_TYPE), ("cs-uri-stem", CATEGORY_TYPE), ("cs-uri-query", TEXT_TYPE),
    ("cs-version", CATEGORY_TYPE), ("sc-status", INTEGER_TYPE), ("sc-bytes", INTEGER_TYPE),
])

_LINE = re.compile(r'(?P<host>\S+) (?P<logname>\S+) (?P<user>\S+) \[(?P<when>[^\]]*)\] "(?P<request>.*)" '
                   r'(?P<status>\S+) (?P<bytes>\S+)')
_WHEN = re.compile(r"(?P<local>\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}) (?P<sign>[+-]) ?(?P<hours>\d{2})(?P<minutes>\d{2})")
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}


def parse_ncsa_line(text: str) -> dict[str, object]:
    """Return the values of one NCSA line; raise LineDefect when it has another shape."""
    match = _LINE.fullmatch(text.rstrip(" "))
    if match is None:
        raise LineDefect(reasons.NOT_IN_FORMAT)
    when = _WHEN.fullmatch(match.group("when"))
    if when is None:
        raise LineDefect(reasons.INVALID_VALUE, f"date={match.group('when')}")
    row: dict[str, object] = {
        TIMESTAMP: _local_time(when.group("local")),
        UTC_OFFSET: f"{when.group('sign')}{when.group('hours')}{when.group('minutes')}",
        "c-ip": value_or_none(match.group("host")),
        "remote-logname": value_or_none(match.group("logname")),
        "cs-username": value_or_none(match.group("user")),
        "request": match.group("request"),
        "sc-status": integer("sc-status", match.group("status")),
        "sc-bytes": integer("sc-bytes", match.group("bytes")),
    }
    row.update(split_request(match.group("request")))
    return row


def _local_time(text: str) -> datetime:
    day_text, month_name, rest = text.split("/", 2)
    month = _MONTHS.get(month_name.capitalize())
    if month is None:
        raise LineDefect(reasons.INVALID_VALUE, f"date={text}")
    try:
        return datetime.strptime(f"{rest[:4]}-{month:02d}-{int(day_text):02d} {rest[5:]}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise LineDefect(reasons.INVALID_VALUE, f"date={text}") from None


def split_request(request: str) -> dict[str, str | None]:
    """Split `METHOD TARGET?ARGUMENT PROTOCOL` into W3C-named parts; missing parts are None.

    The method may contain a space (`MAIL FROM`), so the protocol is the last word and the
    target the word before `?`.
    """
    parts: dict[str, str | None] = {"cs-method": None, "cs-uri-stem": None, "cs-uri-query": None,
                                    "cs-version": None}
    head, space, version = request.rpartition(" ")
    if not space or not head:
        return parts
    parts["cs-version"] = value_or_none(version)
    target_part, question, query = head.partition("?")
    method, space, stem = target_part.rpartition(" ")
    if not space:
        method, stem = target_part, ""
    parts["cs-method"] = value_or_none(method)
    parts["cs-uri-stem"] = value_or_none(stem)
    if question:
        parts["cs-uri-query"] = value_or_none(decode_query_value(query)) if query not in ("-", "") else None
    return parts


def _localize_with_offset(frame: pd.DataFrame, zone: tzinfo) -> pd.Series:
    """Convert each local time to `zone` through the offset written on its own line."""
    offsets = frame[UTC_OFFSET].astype("string")
    sign = offsets.str[0].map({"+": 1, "-": -1})
    minutes = offsets.str[1:3].astype("Int64") * 60 + offsets.str[3:5].astype("Int64")
    shift = pd.to_timedelta((sign * minutes).astype("float64"), unit="m")
    return (frame[TIMESTAMP] - shift).dt.tz_localize("UTC").dt.tz_convert(zone)


def read_ncsa(paths: PathInput | Iterable[PathInput], *, tz: str | tzinfo | None = None,
              encoding: str = DEFAULT_ENCODING) -> pd.DataFrame:
    """Read NCSA Common format logs (files, folders, .gz, .zip) into one DataFrame.

    Without `tz`, `timestamp` is the local time as written and `utc_offset` its offset; with
    `tz`, timestamps are times in that zone. Lines that are not rows are listed in
    `df.attrs["skipped"]`. Raises InputError for a missing path, a file in another format, an
    unknown time zone.
    """
    return read_fixed(paths, log_format=LOG_FORMAT, schema=SCHEMA, parse_line=parse_ncsa_line,
                      not_format_key="w3c.not_ncsa", encoding=checked_encoding(encoding), tz=tz,
                      localize=_localize_with_offset)
