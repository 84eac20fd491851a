"""Shared test set-up: no test queries this machine's DNS servers, notebooks stop early when they cannot run
here, and the plot tests share one rule for a missing CJK font."""

from __future__ import annotations

import pytest

from adminkb.dnscheck import resolver
from cjkfont import require_cjk_font


@pytest.fixture(autouse=True)
def no_system_dns(monkeypatch):
    """Point the system DNS configuration at a missing file, so that no test queries this machine's DNS servers.

    A test that needs "the system's servers" sets RESOLV_CONF or read_system_configuration itself.
    """
    monkeypatch.setattr(resolver, "RESOLV_CONF", "/nonexistent/adminkb-tests/resolv.conf")


@pytest.fixture
def cjk_font() -> str:
    """The installed CJK family, or a skip (a failure when ADMINKB_REQUIRE_PEERS=1)."""
    return require_cjk_font()


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
