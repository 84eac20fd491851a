"""adminkb: executable runbooks for Windows and IIS SMTP Service administrators.

The package holds the domain code the runbooks call (SMTP sessions, mailroot, logs, DNS,
imaging, registry files), the built-in mail lab, and the presentation layer (widgets, CLI,
HTML export). Every user-facing message comes from the catalog in `adminkb.i18n`.
"""

import logging

__version__ = "0.1.0"

# A library leaves the output of its log to the program that uses it. Without a handler here,
# logging's last-resort handler prints the package's warnings (English lines for developers)
# on stderr, which in a runbook is the cell's output. A program that configures logging, as
# the adminkb command does with basicConfig, still receives every record.
logging.getLogger(__name__).addHandler(logging.NullHandler())
