#!/usr/bin/env python3
"""Set up the project's virtual environment on first use, then open the runbooks or run the tests.

    python3 run.py lab     create .venv if needed, install what is missing, start JupyterLab
    python3 run.py test    the same set-up with the test extras, then run pytest

This file must start on any Python 3 so that an old interpreter gets a clear message instead of
a syntax error: keep it free of syntax newer than Python 3.6 above the version check.
"""

import hashlib
import json
import os
import subprocess
import sys

MINIMUM_PYTHON = (3, 11)

if sys.version_info < MINIMUM_PYTHON:
    found = "%d.%d.%d" % sys.version_info[:3]
    sys.stderr.write(
        "adminkb 需要 Python 3.11 以上，目前是 %s（%s）。請安裝 Python 3.11 以上，例如 Debian／Ubuntu：\n"
        "sudo apt install python3.11 python3.11-venv；Windows：從 python.org 安裝後用 py -3.11 run.py。\n"
        "adminkb needs Python 3.11 or newer; this is %s (%s). Install Python 3.11+ (Debian/Ubuntu: "
        "sudo apt install python3.11 python3.11-venv; Windows: install from python.org and use "
        "py -3.11 run.py), then run this command with it.\n" % (found, sys.executable, found, sys.executable))
    sys.exit(2)

from pathlib import Path  # noqa: E402 - after the version check on purpose

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "lib"))
from adminkb.i18n import message  # noqa: E402 - needs the path above; the module uses only the stdlib

VENV = Path(os.environ.get("ADMINKB_VENV", ROOT / ".venv"))
STAMP_NAME = ".adminkb-installed"
NETWORK_SIGNS = ("Failed to establish a new connection", "Temporary failure in name resolution",
                 "Network is unreachable", "No matching distribution found", "Could not find a version",
                 "ConnectionError", "Read timed out", "ProxyError")


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def say(key: str, **values: object) -> None:
    print(message(key, **values), flush=True)


def fail(key: str, **values: object) -> "NoReturn":  # noqa: F821 - string annotation only
    print(message(key, **values), file=sys.stderr, flush=True)
    sys.exit(2)


def ensure_venv() -> None:
    """Create the virtual environment unless a working one is already there."""
    if venv_python().exists():
        return
    try:
        import ensurepip  # noqa: F401 - only checks that it exists (Debian ships it in python3-venv)
        import venv
    except ImportError:
        fail("bootstrap.no_venv_module", python=sys.executable)
    say("bootstrap.creating_venv", path=VENV)
    try:
        venv.EnvBuilder(with_pip=True, clear=False, upgrade_deps=False).create(VENV)
    except (OSError, subprocess.CalledProcessError) as error:
        fail("bootstrap.venv_failed", path=VENV, detail=error)


def pyproject_digest() -> str:
    """Return the SHA-256 of pyproject.toml, so that a changed dependency list reinstalls."""
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def read_stamp(stamp_path: Path) -> "tuple[str | None, set[str]]":
    """Return the pyproject digest and the extras recorded by the last successful install."""
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        return stamp["pyproject"], set(stamp["extras"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, set()


def ensure_installed(extras: str, command: str, wheelhouse: "str | None") -> None:
    """Install the project (editable) with `extras` unless the last install already covers them.

    An install with the test extras also serves `run.py lab`, so switching between the two
    commands installs nothing while pyproject.toml is unchanged.
    """
    stamp_path = VENV / STAMP_NAME
    digest = pyproject_digest()
    installed_digest, installed_extras = read_stamp(stamp_path)
    needed = {extras} if extras else set()
    if installed_digest == digest and needed <= installed_extras:
        say("bootstrap.up_to_date", path=VENV)
        return
    # Keep extras installed earlier (the test tools, say) when pyproject.toml changed.
    if installed_digest is not None:
        needed |= installed_extras
    extras = ",".join(sorted(needed))
    pip = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check"]
    if wheelhouse:
        pip += ["--no-index", "--find-links", str(Path(wheelhouse).resolve())]
    pip += ["-e", f"{ROOT}[{extras}]" if extras else str(ROOT)]
    say("bootstrap.installing", extras=message("bootstrap.extras_" + ("test" if extras else "none")))
    log_path = VENV / "pip-install.log"
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        process = subprocess.Popen(pip, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   encoding="utf-8", errors="replace")
        network_problem = None
        for line in process.stdout:
            log.write(line)
            if line.startswith(("Collecting", "Successfully", "ERROR")):
                print("  " + line.rstrip(), flush=True)
            for sign in NETWORK_SIGNS:
                if sign in line and network_problem is None:
                    network_problem = line.strip()[:200]
        code = process.wait()
    if code != 0:
        print(message("bootstrap.install_failed", code=code, log=log_path, command=command), file=sys.stderr)
        if network_problem and wheelhouse:
            print(message("bootstrap.wheelhouse_incomplete", path=wheelhouse, detail=network_problem), file=sys.stderr)
        elif network_problem:
            print(message("bootstrap.network_hint", detail=network_problem), file=sys.stderr)
        sys.exit(2)
    subprocess.run([str(venv_python()), "-m", "adminkb", "jupyter", "setup"], check=True)
    stamp = {"pyproject": digest, "extras": sorted(needed)}
    stamp_path.write_text(json.dumps(stamp) + "\n", encoding="utf-8")


def ensure_kernel() -> None:
    """Stop with the catalog's message when the environment has no `python3` Jupyter kernel."""
    check = ("import sys\n"
             "from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel\n"
             "try:\n    KernelSpecManager().get_kernel_spec('python3')\n"
             "except NoSuchKernel:\n    sys.exit(3)\n")
    result = subprocess.run([str(venv_python()), "-c", check])
    if result.returncode != 0:
        fail("bootstrap.kernel_missing", python=venv_python())


def main(argv: "list[str]") -> int:
    if not argv or argv[0] not in ("lab", "test"):
        say("bootstrap.usage")
        return 2
    command, rest = argv[0], list(argv[1:])
    wheelhouse = os.environ.get("ADMINKB_WHEELHOUSE")
    # --wheelhouse is run.py's own option; everything else goes to JupyterLab or pytest.
    for index, argument in enumerate(rest):
        if argument == "--wheelhouse":
            # A missing value, or the next option in its place, would otherwise reach JupyterLab,
            # which ignores the unknown option and installs from the Internet after all.
            if index + 1 >= len(rest) or rest[index + 1].startswith("-"):
                fail("bootstrap.wheelhouse_no_value", command=command)
            wheelhouse = rest[index + 1]
            del rest[index:index + 2]
            break
        if argument.startswith("--wheelhouse="):
            wheelhouse = argument.split("=", 1)[1]
            if not wheelhouse:
                fail("bootstrap.wheelhouse_no_value", command=command)
            del rest[index]
            break
    # Check the folder before anything else, so a wrong path is reported even when the
    # environment is already up to date and pip would not run.
    if wheelhouse and not Path(wheelhouse).is_dir():
        fail("bootstrap.wheelhouse_missing", path=wheelhouse)

    ensure_venv()
    ensure_installed("test" if command == "test" else "", command, wheelhouse)
    ensure_kernel()
    environment = dict(os.environ, ADMINKB_BOOTSTRAPPED="1")

    if command == "lab":
        say("bootstrap.starting_lab", notebook="notebooks/00_index.ipynb")
        lab = [str(venv_python()), "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", *rest, "00_index.ipynb"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # JupyterLab refuses to start as root (common in containers) without this flag.
            lab.insert(3, "--allow-root")
        try:
            return subprocess.call(lab, cwd=ROOT / "notebooks", env=environment)
        except KeyboardInterrupt:
            return 130

    tests = [str(venv_python()), "-m", "pytest", *rest]
    say("bootstrap.running_tests", command=" ".join(tests[1:]))
    return subprocess.call(tests, cwd=ROOT, env=environment)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
