"""The CJK font as a test peer: present, skipped with the reason, or a failure when peers are required.

Like Postfix or swaks, the font is installed by `.ci/run`, which also sets
ADMINKB_REQUIRE_PEERS=1, so that CI fails instead of skipping the plot tests when it is missing.
"""

from __future__ import annotations

import os

import pytest

from adminkb import plotting


def require_cjk_font() -> str:
    """Return the installed CJK family. Without one, skip the test, or fail it when peers are required."""
    family = plotting.find_cjk_font()
    if family is None:
        reason = ("no CJK font is installed (looked for "
                  f"{', '.join(plotting.CJK_FONT_FAMILIES)}; Debian package: fonts-noto-cjk)")
        if os.environ.get("ADMINKB_REQUIRE_PEERS", "").strip() == "1":
            pytest.fail(f"{reason}. ADMINKB_REQUIRE_PEERS=1 is set, so a missing font is a failure.",
                        pytrace=False)
        pytest.skip(reason)
    return family
