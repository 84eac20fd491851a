"""Real Windows PE files for the termsrv tests: the launcher executables that pip vendors from distlib.

A pip without them makes those tests skip with the reason, unless ADMINKB_REQUIRE_PEERS=1: then
they fail, so that CI, which sets the variable, cannot lose its real-PE checks silently.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import pytest

REQUIRE_PEERS_VARIABLE = "ADMINKB_REQUIRE_PEERS"


def launcher(name: str) -> Path:
    """Return the path of pip's distlib launcher `name` (t32.exe, w64.exe...), or skip or fail the test."""
    path = Path(str(importlib.resources.files("pip._vendor.distlib") / name))
    if path.exists():
        return path
    reason = f"this pip has no distlib launcher {name} (looked for {path})"
    if os.environ.get(REQUIRE_PEERS_VARIABLE, "").strip() == "1":
        pytest.fail(f"{reason}. {REQUIRE_PEERS_VARIABLE}=1 is set, so a missing real PE file is a failure.",
                    pytrace=False)
    pytest.skip(reason)
