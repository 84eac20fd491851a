"""Shared test set-up: stop early with a clear message when notebooks cannot run here."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Fail the run up front when notebooks were collected but the `python3` kernel is missing."""
    if not any(str(item.fspath).endswith(".ipynb") for item in items):
        return
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        import sys

        from adminkb.i18n import message

        raise pytest.UsageError(message("bootstrap.kernel_missing", python=sys.executable)) from None
