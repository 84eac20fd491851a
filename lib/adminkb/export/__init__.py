"""Offline HTML runbooks: `export_site` writes one page per runbook and a searchable index page.

The pages load nothing from any other host, so they open from a file share or a USB stick on a
machine with no network. `external_resources` is the check every page passes before it is written.
"""

from adminkb.export.check import external_resources, is_local_url
from adminkb.export.execute import MAX_CELL_TIMEOUT
from adminkb.export.site import DEFAULT_CELL_TIMEOUT, ExportResult, default_out_dir, export_site

__all__ = ["DEFAULT_CELL_TIMEOUT", "MAX_CELL_TIMEOUT", "ExportResult", "default_out_dir", "export_site",
           "external_resources", "is_local_url"]
