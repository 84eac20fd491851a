"""Readers for the IIS SMTP Service's logs (W3C Extended, Microsoft IIS and NCSA formats) into DataFrames.

`read_w3c` reads W3C Extended logs, `read_iis` and `read_ncsa` the two fixed formats, and
`read_log` any of them, recognising the format from the first lines. Every reader takes one
path or several (files, folders, `.gz` and `.zip` archives) and keeps each row's source file
and line. Lines that are not rows are listed in `df.attrs["skipped"]`, and `summarize` counts them.
"""

from adminkb.w3c.formats import AUTO, LOG_FORMATS, detect_format, read_log
from adminkb.w3c.iislog import read_iis
from adminkb.w3c.ncsa import read_ncsa
from adminkb.w3c.reader import DEFAULT_ENCODING, INTEGER_FIELDS, PLUS_DECODED_FIELDS, TEXT_FIELDS, read_w3c
from adminkb.w3c.skipped import REASONS
from adminkb.w3c.summary import summarize

__all__ = [
    "AUTO",
    "DEFAULT_ENCODING",
    "INTEGER_FIELDS",
    "LOG_FORMATS",
    "PLUS_DECODED_FIELDS",
    "REASONS",
    "TEXT_FIELDS",
    "detect_format",
    "read_iis",
    "read_log",
    "read_ncsa",
    "read_w3c",
    "summarize",
]
