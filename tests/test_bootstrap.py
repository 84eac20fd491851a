"""run.py, the README's two commands: the failures a newcomer can meet give clear messages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "run.py"


def run_bootstrap(*arguments: str, prelude: str = "", env: dict | None = None, timeout: int = 240):
    """Run run.py in a subprocess, optionally after a Python `prelude` that fakes the host."""
    script = prelude + f"\nimport sys\nsys.argv = [{str(RUN)!r}, *{list(arguments)!r}]\n" \
                       f"exec(compile(open({str(RUN)!r}, encoding='utf-8').read(), {str(RUN)!r}, 'exec'), " \
                       "{'__name__': '__main__', '__file__': " + repr(str(RUN)) + "})\n"
    environment = dict(os.environ, ADMINKB_LANG="en", **(env or {}))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout, env=environment, cwd=ROOT)


def test_usage_without_command():
    result = run_bootstrap()
    assert result.returncode == 2
    assert "python3 run.py lab" in result.stdout
    assert "python3 run.py test" in result.stdout


def test_old_python_rejected(tmp_path):
    result = run_bootstrap("test", prelude="import sys\nsys.version_info = (3, 9, 18, 'final', 0)",
                           env={"ADMINKB_VENV": str(tmp_path / "venv")})
    assert result.returncode == 2
    assert "needs Python 3.11 or newer; this is 3.9.18" in result.stderr
    assert "python3.11-venv" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_missing_venv_module(tmp_path):
    # Debian's python3 without the python3-venv package has no ensurepip.
    result = run_bootstrap("test", prelude="import sys\nsys.modules['ensurepip'] = None",
                           env={"ADMINKB_VENV": str(tmp_path / "venv")})
    assert result.returncode == 2
    assert "sudo apt install python3-venv" in result.stdout + result.stderr
    assert not (tmp_path / "venv").exists()


def test_missing_wheelhouse(tmp_path):
    result = run_bootstrap("test", "--wheelhouse", str(tmp_path / "nowhere"),
                           env={"ADMINKB_VENV": str(tmp_path / "venv")})
    assert result.returncode == 2
    assert f"The wheelhouse folder was not found: {tmp_path / 'nowhere'}" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_missing_wheelhouse_with_current_venv(tmp_path):
    # The working checkout's environment is up to date, so pip would not run at all.
    result = run_bootstrap("lab", "--wheelhouse", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert f"The wheelhouse folder was not found: {tmp_path / 'nowhere'}" in result.stderr
    assert "JupyterLab" not in result.stdout


@pytest.mark.parametrize("arguments", [
    ("lab", "--wheelhouse"),
    ("lab", "--wheelhouse="),
    ("lab", "--wheelhouse", "--port", "8899"),
    ("test", "--wheelhouse"),
])
def test_wheelhouse_without_folder(tmp_path, arguments):
    # Rejected before anything is installed, so that no install from the Internet starts.
    result = run_bootstrap(*arguments, env={"ADMINKB_VENV": str(tmp_path / "venv")})
    assert result.returncode == 2
    assert not (tmp_path / "venv").exists()
    assert "--wheelhouse needs a folder after it" in result.stderr
    assert f"python3 run.py {arguments[0]} --wheelhouse DIR" in result.stderr
    assert "JupyterLab" not in result.stdout
    assert "pytest" not in result.stdout


@pytest.mark.timeout(300)
def test_offline_install_failure_explained(tmp_path):
    # An empty wheelhouse behaves like a machine with no network: pip finds no distribution.
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    venv = tmp_path / "venv"
    result = run_bootstrap("test", "--wheelhouse", str(wheelhouse), env={"ADMINKB_VENV": str(venv)})
    assert result.returncode == 2
    assert "pip failed (exit code" in result.stderr
    assert 'python -m pip wheel --wheel-dir wheelhouse ".[test]" setuptools wheel' in result.stderr
    assert f"The wheelhouse folder {wheelhouse} lacks a package that is needed" in result.stderr
    assert "network failure" not in result.stderr
    assert (venv / "pip-install.log").read_text(encoding="utf-8").strip()
    assert not (venv / ".adminkb-installed").exists(), "a failed install must not be marked as done"


def load_run_module():
    """Import run.py as a module (its main() runs only as a script)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("adminkb_run_script", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_missing_kernel_explained(tmp_path, monkeypatch, capsys):
    # A bare environment has neither ipykernel nor jupyter_client: run.py must say what to install.
    import venv

    venv.create(tmp_path / "bare", with_pip=False)
    monkeypatch.setenv("ADMINKB_LANG", "en")
    module = load_run_module()
    monkeypatch.setattr(module, "VENV", tmp_path / "bare")
    with pytest.raises(SystemExit) as caught:
        module.ensure_kernel()
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert "no Jupyter kernel named python3" in error
    assert "-m ipykernel install --sys-prefix" in error


def test_test_install_serves_lab(tmp_path, monkeypatch, capsys):
    # After `run.py test` installed the test extras, `run.py lab` must not install again.
    monkeypatch.setenv("ADMINKB_LANG", "en")
    module = load_run_module()
    monkeypatch.setattr(module, "VENV", tmp_path)
    stamp = {"pyproject": module.pyproject_digest(), "extras": ["test"]}
    (tmp_path / module.STAMP_NAME).write_text(json.dumps(stamp), encoding="utf-8")
    monkeypatch.setattr(module.subprocess, "Popen", None)  # any pip call would fail loudly
    module.ensure_installed("", "lab", None)
    assert "is up to date" in capsys.readouterr().out


def test_corrupt_stamp_means_not_installed(tmp_path):
    module = load_run_module()
    (tmp_path / "stamp").write_text("not json", encoding="utf-8")
    assert module.read_stamp(tmp_path / "stamp") == (None, set())
    assert module.read_stamp(tmp_path / "missing") == (None, set())
