"""environment.yml (conda) and pyproject.toml (pip) must install the same packages."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalize(requirement: str) -> tuple[str, str]:
    """Split a requirement into a PEP 503 normalized name and its version specifier."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", requirement)
    assert match, f"not a requirement: {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    # conda spells an extra as a separate package; pip as name[extra]: compare the names alone.
    specifier = re.sub(r"^\[[^\]]*\]", "", match.group(2).replace(" ", ""))
    return name, specifier


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        listed.extend(extra)
    return dict(normalize(item) for item in listed)


def conda_requirements() -> dict[str, str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    entries = [item for item in environment["dependencies"] if isinstance(item, str)]
    # Packages conda-forge lacks come from pip inside the environment; the project itself too.
    for section in environment["dependencies"]:
        if isinstance(section, dict):
            entries.extend(item for item in section.get("pip", []) if not item.startswith("-e"))
    found = dict(normalize(item) for item in entries)
    for tool in ("python", "pip"):
        found.pop(tool, None)
    return found


def test_same_package_names():
    assert sorted(conda_requirements()) == sorted(pyproject_requirements())


def test_same_version_bounds():
    conda = conda_requirements()
    for name, specifier in pyproject_requirements().items():
        assert conda.get(name) == specifier, f"{name}: conda {conda.get(name)!r} != pip {specifier!r}"


def test_conda_installs_project_itself():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_sections = [item["pip"] for item in environment["dependencies"] if isinstance(item, dict)]
    assert any("-e ." in section for section in pip_sections)


def test_python_minimum_matches():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert project["requires-python"] == ">=3.11"
    assert "python>=3.11" in environment["dependencies"]
