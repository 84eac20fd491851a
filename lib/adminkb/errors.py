"""The exception tree: every error the package raises on purpose derives from AdminKbError.

Each error carries the value that failed, where it came from (a file and line, a host, a
parameter) and the next step, all rendered in the user's language from the catalog, so the
CLI and the runbooks can show it as it is.
"""

from __future__ import annotations

import errno

from adminkb.i18n import message


class AdminKbError(Exception):
    """Base class for errors that a user can act on.

    `key` names the catalog message for what failed; `next_key` names the message with the next
    step. `values` fill both. `value` and `where` are kept as attributes for callers and tests.
    """

    exit_status = 1
    key = "errors.generic"
    next_key: str | None = None

    def __init__(self, key: str | None = None, *, value: object = None, where: str | None = None,
                 next_key: str | None = None, **values: object) -> None:
        if key is not None:
            self.key = key
        if next_key is not None:
            self.next_key = next_key
        self.value = value
        self.where = where
        self.values = {"value": value, "where": where, **values}
        super().__init__(self.describe())

    def describe(self) -> str:
        """Return what failed, where, and the next step, in the user's language."""
        text = message(self.key, **self.values)
        if self.where:
            text = message("errors.where", text=text, where=self.where)
        if self.next_key:
            text = f"{text}\n{message('errors.next_step', step=message(self.next_key, **self.values))}"
        return text


class InputError(AdminKbError):
    """The input (a file, an option, a parameter) cannot be used; the CLI exits with 2."""

    exit_status = 2
    key = "errors.invalid_input"


class LabError(AdminKbError):
    """The mail lab cannot start or was configured in a way that is unsafe or impossible."""

    exit_status = 2
    key = "errors.lab"


class PeerError(AdminKbError):
    """A remote peer (SMTP server, DNS server) failed in a way the check could not classify."""

    exit_status = 1
    key = "errors.peer"


# errno values whose reason the catalog words, so that the user reads it in their language.
# On Windows, Python gives socket errors their WSA numbers, and the errno module defines the
# network names below as those same numbers (CPython's Modules/errnomodule.c), so one table
# serves both systems.
_OS_ERROR_KEYS = {
    errno.ENOENT: "no_such_file", errno.EACCES: "permission_denied", errno.EPERM: "not_permitted",
    errno.EISDIR: "is_a_directory", errno.ENOTDIR: "not_a_directory", errno.ENOSPC: "no_space",
    errno.EEXIST: "exists", errno.EROFS: "read_only",
    errno.ECONNREFUSED: "connection_refused", errno.ENETUNREACH: "network_unreachable",
    errno.EHOSTUNREACH: "host_unreachable", errno.ECONNRESET: "connection_reset",
    errno.EADDRNOTAVAIL: "address_not_available",
}


def os_error_text(error: BaseException, language: str | None = None) -> str:
    """Return the reason of an OSError in the user's language, or the system's own text for rarer ones."""
    key = _OS_ERROR_KEYS.get(getattr(error, "errno", None))
    if key is not None:
        return message(f"errors.os.{key}", language)
    return getattr(error, "strerror", None) or str(error)
