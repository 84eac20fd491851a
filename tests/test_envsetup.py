"""JupyterLab's language is preset inside the environment, and a running JupyterLab uses it."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from adminkb import envsetup
from adminkb.errors import InputError


def test_overrides_written(tmp_path):
    path = envsetup.write_lab_overrides(tmp_path)
    assert path == tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    assert settings[envsetup.TRANSLATION_PLUGIN]["locale"] == "zh_TW"
    assert envsetup.read_lab_locale(tmp_path) == "zh_TW"


def test_other_overrides_kept(tmp_path):
    folder = envsetup.lab_settings_dir(tmp_path)
    folder.mkdir(parents=True)
    theme = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
    (folder / "overrides.json").write_text(json.dumps(theme), encoding="utf-8")
    envsetup.write_lab_overrides(tmp_path)
    settings = json.loads((folder / "overrides.json").read_text(encoding="utf-8"))
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert settings[envsetup.TRANSLATION_PLUGIN] == {"locale": "zh_TW"}


def test_invalid_overrides_left_untouched(tmp_path):
    folder = envsetup.lab_settings_dir(tmp_path)
    folder.mkdir(parents=True)
    broken = '{"theme": '
    (folder / "overrides.json").write_text(broken, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        envsetup.write_lab_overrides(tmp_path)
    assert str(folder / "overrides.json") in str(caught.value)
    assert (folder / "overrides.json").read_text(encoding="utf-8") == broken
    assert sorted(item.name for item in folder.iterdir()) == ["overrides.json"]


def test_non_object_overrides_rejected(tmp_path):
    folder = envsetup.lab_settings_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "overrides.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError):
        envsetup.write_lab_overrides(tmp_path)
    assert (folder / "overrides.json").read_text(encoding="utf-8") == "[1, 2]"


def test_cli_setup_prefix(tmp_path):
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "adminkb", "jupyter", "setup", "--prefix", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ, ADMINKB_LANG="en"))
    assert result.returncode == 0, result.stderr
    assert "zh_TW" in result.stdout
    assert envsetup.read_lab_locale(tmp_path) == "zh_TW"


def run_setup(prefix) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adminkb", "jupyter", "setup", "--prefix", str(prefix)],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, ADMINKB_LANG="en"))


def test_cli_prefix_is_file(tmp_path):
    prefix = tmp_path / "notes.txt"
    prefix.write_text("not an environment\n", encoding="utf-8")
    result = run_setup(prefix)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--prefix" in result.stderr
    assert str(prefix) in result.stderr
    assert prefix.read_text(encoding="utf-8") == "not an environment\n"


def test_cli_prefix_missing_not_created(tmp_path):
    prefix = tmp_path / "absent"
    result = run_setup(prefix)
    assert result.returncode == 2
    assert str(prefix) in result.stderr
    assert not prefix.exists()


def test_cli_prefix_not_environment(tmp_path):
    result = run_setup(tmp_path)
    assert result.returncode == 2
    assert "not a Python environment" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("marker", ["pyvenv.cfg", "conda-meta/history", "bin/python", "Scripts/python.exe"])
def test_environment_markers_accepted(tmp_path, marker):
    (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / marker).write_text("", encoding="utf-8")
    assert envsetup.checked_environment_prefix(tmp_path) == tmp_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(120)
def test_running_jupyterlab_defaults_to_zh_tw(tmp_path):
    if envsetup.read_lab_locale() is None:
        if os.environ.get("ADMINKB_BOOTSTRAPPED") == "1":
            pytest.fail("run.py set up this environment but wrote no JupyterLab locale")
        pytest.skip("this environment has no preset JupyterLab locale: run `adminkb jupyter setup` first")
    port = free_port()
    # Isolate the user's own settings and workspaces so the test neither reads nor writes them.
    environment = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                       JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),
                       JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
                       JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--IdentityProvider.token=adminkb-test",
               f"--ServerApp.root_dir={tmp_path}"]
    server = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/lab/api/settings/{envsetup.TRANSLATION_PLUGIN}"
        request = urllib.request.Request(url, headers={"Authorization": "token adminkb-test"})
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    plugin = json.load(response)
                break
            except OSError:
                assert server.poll() is None, "JupyterLab exited before it answered"
                assert time.monotonic() < deadline, "JupyterLab did not answer within 90 s"
                time.sleep(0.5)
        assert plugin["schema"]["properties"]["locale"]["default"] == "zh_TW"
        languages_url = f"http://127.0.0.1:{port}/lab/api/translations/"
        request = urllib.request.Request(languages_url, headers={"Authorization": "token adminkb-test"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "zh_TW" in json.load(response)["data"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
