"""The W3C fields an IIS SMTP administrator can tick, what each holds, and which analyses use it."""

from __future__ import annotations

import pandas as pd

from adminkb.i18n import message
from adminkb.lab.w3clog import FULL_FIELDS, SERVICE_DEFAULT_FIELDS

# The names IIS Manager gives the fields on the Advanced tab of Logging Properties
# ("IIS 6.0 F1: Logging Properties - Advanced Tab", https://technet.microsoft.com/library/cc730953).
MANAGER_NAMES = {
    "date": "Date", "time": "Time", "c-ip": "Client IP Address", "cs-username": "User Name",
    "s-sitename": "Service Name", "s-computername": "Server Name", "s-ip": "Server IP", "s-port": "Server Port",
    "cs-method": "Method", "cs-uri-stem": "URI Stem", "cs-uri-query": "URI Query", "sc-status": "Protocol Status",
    "sc-win32-status": "Win32 Status", "sc-bytes": "Bytes Sent", "cs-bytes": "Bytes Received",
    "time-taken": "Time Taken", "cs-version": "Protocol Version", "cs-host": "Host", "cs(User-Agent)": "User Agent",
    "cs(Cookie)": "Cookie", "cs(Referer)": "Referrer",
}

# The fields adminkb.smtplog reads, and the analyses that need each one.
USED_BY = {
    "date": "dates", "time": "times", "c-ip": "everything", "cs-username": "helo_outbound",
    "cs-method": "everything", "cs-uri-query": "addresses", "sc-status": "results", "time-taken": "slowest",
}


def field_table() -> pd.DataFrame:
    """Return one row per W3C field: IIS Manager's name, what it holds for SMTP, default, use."""
    rows = []
    for name in FULL_FIELDS:
        rows.append({
            message("smtplog.field.column.field"): name,
            message("smtplog.field.column.manager_name"): MANAGER_NAMES[name],
            message("smtplog.field.column.meaning"): message(f"smtplog.field.meaning.{name}"),
            message("smtplog.field.column.default"): message("smtplog.field.yes") if name in SERVICE_DEFAULT_FIELDS
            else "",
            message("smtplog.field.column.used_by"): message(f"smtplog.field.used_by.{USED_BY[name]}")
            if name in USED_BY else "",
        })
    return pd.DataFrame(rows)
