"""Environment set-up that belongs to this environment only: JupyterLab in Traditional Chinese.

JupyterLab reads `{sys.prefix}/share/jupyter/lab/settings/overrides.json` as the default for
its settings, below the user's own settings. Writing the locale there makes JupyterLab open in
Traditional Chinese inside this virtual or conda environment and leaves the user's global
settings (`~/.jupyter/lab/user-settings`) untouched.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from adminkb.errors import InputError

log = logging.getLogger("adminkb.envsetup")

TRANSLATION_PLUGIN = "@jupyterlab/translation-extension:plugin"
LAB_LOCALE = "zh_TW"


# Entries of which at least one exists at the top of a Python environment: venv and virtualenv
# write pyvenv.cfg, conda keeps conda-meta/, and other installations have the interpreter itself.
ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta", "bin/python", "bin/python3", "python.exe", "Scripts/python.exe")


def checked_environment_prefix(prefix: str | os.PathLike[str]) -> Path:
    """Return `prefix` as a Path, or raise InputError unless it is the top folder of a Python environment."""
    path = Path(prefix)
    if not path.is_dir():
        raise InputError("envsetup.prefix_not_folder", value=str(path), next_key="envsetup.prefix_next")
    if not any((path / marker).exists() for marker in ENVIRONMENT_MARKERS):
        raise InputError("envsetup.prefix_not_environment", value=str(path), next_key="envsetup.prefix_next")
    return path


def lab_settings_dir(prefix: str | os.PathLike[str] | None = None) -> Path:
    """Return JupyterLab's application settings folder inside an environment prefix."""
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings"


def write_lab_overrides(prefix: str | os.PathLike[str] | None = None, locale: str = LAB_LOCALE) -> Path:
    """Preset JupyterLab's display language in `overrides.json` of the environment at `prefix`.

    Other settings already in the file are kept. The file is replaced atomically, so an
    interrupted run leaves the old file, never half of a new one. An existing file that is not
    a JSON object raises InputError instead of being overwritten.
    """
    folder = lab_settings_dir(prefix)
    path = folder / "overrides.json"
    settings: dict = {}
    if path.exists():
        try:
            settings = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError("envsetup.overrides_invalid", value=str(path), detail=str(error),
                             next_key="envsetup.overrides_fix") from error
        if not isinstance(settings, dict):
            raise InputError("envsetup.overrides_invalid", value=str(path), detail=type(settings).__name__,
                             next_key="envsetup.overrides_fix")
    plugin = settings.setdefault(TRANSLATION_PLUGIN, {})
    plugin["locale"] = locale
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".overrides-", suffix=".json", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(settings, stream, ensure_ascii=False, indent=2)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    log.info("JupyterLab locale %s written to %s", locale, path)
    return path


def read_lab_locale(prefix: str | os.PathLike[str] | None = None) -> str | None:
    """Return the locale preset in the environment's `overrides.json`, or None when none is set."""
    path = lab_settings_dir(prefix) / "overrides.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(settings, dict):
        return None
    return settings.get(TRANSLATION_PLUGIN, {}).get("locale")
