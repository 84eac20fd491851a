"""The Microsoft IIS log format, which the SMTP service can write instead of W3C Extended.

Each line contains 15 fixed fields separated by a comma and a space, and ends with a comma
(Microsoft, "IIS Log File Format (IIS 6.0)", and the Exchange Server 2007 page "Microsoft IIS
Log File Format" with its SMTP example):

    192.0.2.7, example.net, 8/18/06, 13:17:37, SMTPSVC1, MAIL01, 192.0.2.10, 90, 42, 0, 250, 0, MAIL FROM, -, FROM:<web@example.net>,

The fields come in this order: client IP address, user name (for SMTP, the HELO/EHLO name),
date, time (local, with no zone), service and instance, server name, server IP address.
Then: time taken (ms), client bytes sent, server bytes sent, service status code, Windows
status code, request type, target of operation, parameters. Columns take the names of the
matching W3C fields, so the same analyses run on both formats. Spaces are written as they
are (`MAIL FROM`), so no `+` is decoded.

The date is month/day/year with a two- or four-digit year. The IIS 6.0 SDK documents four digits
from 2000 on, while Microsoft's SMTP examples show `8/18/06`. Two-digit years follow Python's `%y`:
00-68 are 2000-2068. NOTE: whether a server with other regional settings changes the date
order is not documented. Such dates either fail, and their lines are skipped, or are misread.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

import pandas as pd
import pyarrow as pa

from adminkb.w3c import skipped as reasons
from adminkb.w3c.fixed import LineDefect, integer, local_datetime, read_fixed, value_or_none
from adminkb.w3c.frame import CATEGORY_TYPE, checked_encoding, INTEGER_TYPE, TEXT_TYPE, TIMESTAMP, TIMESTAMP_LOCAL_TYPE
from adminkb.w3c.sources import PathInput

LOG_FORMAT = "iis"
DEFAULT_ENCODING = "cp950"

# The 15 fields in the order the format writes them, named after the matching W3C fields.
FIELDS = ("c-ip", "cs-username", "date", "time", "s-sitename", "s-computername", "s-ip", "time-taken", "cs-bytes",
          "sc-bytes", "sc-status", "sc-win32-status", "cs-method", "cs-uri-stem", "cs-uri-query")
INTEGER_FIELDS = ("time-taken", "cs-bytes", "sc-bytes", "sc-status", "sc-win32-status")


def _arrow_type(name: str) -> pa.DataType:
    if name in INTEGER_FIELDS:
        return INTEGER_TYPE
    if name == "cs-uri-query":
        return TEXT_TYPE
    return CATEGORY_TYPE


SCHEMA = pa.schema([(TIMESTAMP, TIMESTAMP_LOCAL_TYPE)] + [
    (name, _arrow_type(name)) for name in FIELDS if name not in ("date", "time")])
_DATE_FORMATS = ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S")


def parse_iis_line(text: str) -> dict[str, object]:
    """Return the values of one IIS format line; raise LineDefect when it has another shape.

    The last field (parameters) may itself contain commas, so the line is cut at the first 14.
    """
    body = text.rstrip(" ")
    parts = body[:-1].split(",", len(FIELDS) - 1)
    if not body.endswith(",") or len(parts) != len(FIELDS):
        raise LineDefect(reasons.NOT_IN_FORMAT, f"{len(FIELDS)}/{body.count(',')}")
    values = dict(zip(FIELDS, (part.strip(" ") for part in parts)))
    row: dict[str, object] = {TIMESTAMP: local_datetime("date", f"{values['date']} {values['time']}", _DATE_FORMATS)}
    for name in FIELDS:
        if name in ("date", "time"):
            continue
        row[name] = integer(name, values[name]) if name in INTEGER_FIELDS else value_or_none(values[name])
    return row


def read_iis(paths: PathInput | Iterable[PathInput], *, tz: str | tzinfo | None = None,
             encoding: str = DEFAULT_ENCODING) -> pd.DataFrame:
    """Read Microsoft IIS format logs (files, folders, .gz, .zip) into one DataFrame.

    `timestamp` is the local time written on the line, without a zone. With `tz` (the server's
    time zone, such as `Asia/Taipei`) it becomes a time in that zone, and a time that a
    daylight-saving change makes ambiguous or impossible becomes NaT. Lines that are not rows
    are listed in `df.attrs["skipped"]`. Raises InputError for a missing path, a file in
    another format or an unknown time zone.
    """
    return read_fixed(paths, log_format=LOG_FORMAT, schema=SCHEMA, parse_line=parse_iis_line,
                      not_format_key="w3c.not_iis", encoding=checked_encoding(encoding), tz=tz)
