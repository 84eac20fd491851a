"""benchmarks/w3c_scale.py: it names a missing package and shows a failed measurement's error output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "w3c_scale.py"


@pytest.fixture
def w3c_scale(monkeypatch):
    """The benchmark script, imported as a module (it imports its neighbour w3c_read)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("w3c_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_module_named_with_extra(w3c_scale, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(w3c_scale, "NEEDED_MODULES", {"adminkb_no_such_module": "bench"})
    status = w3c_scale.main(["--files", "1", "--lines", "10", "--runs", "1", "--folder", str(tmp_path)])
    error = capsys.readouterr().err
    assert status == 2
    assert "adminkb_no_such_module cannot be imported" in error
    assert 'pip install -e ".[bench]"' in error
    assert list(tmp_path.iterdir()) == []


def test_missing_module_under_absent_package(w3c_scale, monkeypatch):
    monkeypatch.setattr(w3c_scale, "NEEDED_MODULES", {"adminkb_no_such_package.dataframe": "test"})
    assert w3c_scale.missing_modules() == {"adminkb_no_such_package.dataframe": "test"}


@pytest.mark.timeout(120)
def test_failed_measurement_shows_its_error(w3c_scale, monkeypatch, capsys, tmp_path):
    # With no files, the one_call measurement's read_w3c([]) raises InputError in its subprocess.
    monkeypatch.setattr(w3c_scale, "NEEDED_MODULES", {})
    status = w3c_scale.main(["--files", "0", "--lines", "10", "--runs", "1", "--folder", str(tmp_path)])
    error = capsys.readouterr().err
    assert status == 1
    assert "measurement one_call failed with exit status 1" in error
    assert "adminkb.errors.InputError" in error


def test_report_names_command_date_and_commit(w3c_scale, monkeypatch, tmp_path):
    monkeypatch.setattr(w3c_scale, "METHODS", ("baseline", "one_call"))
    report = w3c_scale.run(tmp_path, 1, 20, 1, 1, "python benchmarks/w3c_scale.py --files 1")
    assert "Command: `python benchmarks/w3c_scale.py --files 1`" in report
    assert "Date: " in report
    assert "; commit " in report
    assert "| one_call | 1 |" in report
