"""adminkb: executable runbooks for Windows and IIS SMTP Service administrators.

The package holds the domain code the runbooks call (SMTP sessions, mailroot, logs, DNS,
imaging, registry files), the built-in mail lab, and the presentation layer (widgets, CLI,
HTML export). Every user-facing message comes from the catalog in `adminkb.i18n`.
"""

__version__ = "0.1.0"
