"""Run a Python child without root's file-permission override, so that mode bits bind it (CI runs as root).

The child drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its capability bounding set and
then executes Python again, and the exec leaves both out of its effective set. A file or folder
with mode 000 is then unreadable to it, as to any other account. It keeps its user id, so it still
reads and writes the files that root owns with owner permissions (the package and tmp_path).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# The script given to `python -c` ahead of the child's own arguments.
_WITHOUT_DAC_CAPABILITIES = """
import ctypes, os, sys
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            sys.exit(f"prctl(PR_CAPBSET_DROP, {capability}) failed: " + os.strerror(ctypes.get_errno()))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""

# Mode bits cannot make a file unreadable on Windows, and only Linux has prctl for root.
needs_mode_bits = pytest.mark.skipif(
    os.name == "nt" or (os.geteuid() == 0 and not sys.platform.startswith("linux")),
    reason="needs POSIX mode bits, and Linux's prctl when the tests run as root")


def run_python(*arguments: str, **options: object) -> subprocess.CompletedProcess[str]:
    """Run `python ARGUMENTS...` with mode bits enforced, capturing text output (120 s at most)."""
    command = [sys.executable, "-c", _WITHOUT_DAC_CAPABILITIES, *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **options)
