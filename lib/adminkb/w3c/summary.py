"""A summary of what a reader read: files, blocks, rows, skipped lines by reason, time range, field sets."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from adminkb.w3c.frame import TIMESTAMP


def summarize(frame: pd.DataFrame) -> dict[str, object]:
    """Return a summary of a frame from `read_w3c`, `read_iis`, `read_ncsa` or `read_log`.

    Keys: `format`, `files` (the sources read), `blocks`, `rows`, `skipped` (a count),
    `skipped_by_reason`, `first` and `last` (ISO 8601 times, None without timestamps) and `tz`.
    `field_sets` lists each distinct field list with its number of blocks and rows, and
    `skipped_lines` each skipped line (file, line, reason, detail). `empty_files` lists the
    files with neither a block nor a skipped line, such as a 0-byte file. Callers show them so
    that an empty file does not pass for a log of a quiet day.
    """
    attrs = frame.attrs
    blocks = attrs.get("blocks", [])
    skipped = attrs.get("skipped", [])
    field_sets: dict[tuple[str, ...], dict[str, object]] = {}
    for block in blocks:
        fields = tuple(block["fields"])
        entry = field_sets.setdefault(fields, {"fields": list(fields), "blocks": 0, "rows": 0})
        entry["blocks"] += 1
        entry["rows"] += block["rows"]
    by_reason = Counter(line["reason"] for line in skipped)
    files_with_content = {block["file"] for block in blocks} | {line["file"] for line in skipped}
    empty_files = [name for name in attrs.get("files", []) if name not in files_with_content]
    first = last = None
    if TIMESTAMP in frame.columns and frame[TIMESTAMP].notna().any():
        first = frame[TIMESTAMP].min().isoformat()
        last = frame[TIMESTAMP].max().isoformat()
    return {
        "format": attrs.get("format"),
        "files": list(attrs.get("files", [])),
        "blocks": len(blocks),
        "rows": len(frame),
        "skipped": len(skipped),
        "skipped_by_reason": dict(sorted(by_reason.items())),
        "first": first,
        "last": last,
        "tz": attrs.get("tz"),
        "field_sets": list(field_sets.values()),
        "skipped_lines": list(skipped),
        "empty_files": empty_files,
    }
