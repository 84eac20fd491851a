"""The exception tree carries the value, the place and the next step in the user's language."""

import errno

import pytest

from adminkb.errors import AdminKbError, InputError, LabError, os_error_text


def test_input_error_names_value_and_place(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    error = InputError(value="relay.txt", where="relay.txt:3", next_key="envsetup.overrides_fix")
    text = str(error)
    assert "relay.txt" in text
    assert "(at relay.txt:3)" in text
    assert text.splitlines()[-1].startswith("Next step: ")


def test_zh_tw_by_default(monkeypatch):
    monkeypatch.delenv("ADMINKB_LANG", raising=False)
    assert str(InputError(value="x")).startswith("輸入的值無法使用")


def test_exit_statuses():
    assert InputError(value=1).exit_status == 2
    assert LabError(value=1).exit_status == 2
    assert AdminKbError(value=1).exit_status == 1


def test_subclasses_share_base():
    assert issubclass(InputError, AdminKbError)
    assert issubclass(LabError, AdminKbError)


@pytest.mark.parametrize("number, chinese, english", [
    (errno.ENOENT, "找不到這個檔案或資料夾", "No such file or directory"),
    (errno.EACCES, "權限不足（拒絕存取）", "Permission denied"),
    (errno.ENOSPC, "磁碟空間不足", "No space left on device"),
    (errno.ECONNREFUSED, "連線被拒（該位址與連接埠沒有程式在接聽）", "Connection refused"),
    (errno.ENETUNREACH, "網路無法連線（這台電腦沒有通往該位址的路由）", "Network is unreachable"),
])
def test_os_error_text_in_both_languages(monkeypatch, number, chinese, english):
    error = OSError(number, "system text")
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    assert os_error_text(error) == chinese
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert os_error_text(error) == english


def test_os_error_text_falls_back_to_system_text():
    assert os_error_text(OSError(errno.EIO, "Input/output error")) == "Input/output error"
    assert os_error_text(ValueError("not an OSError")) == "not an OSError"


def test_os_error_text_in_given_language(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    assert os_error_text(OSError(errno.EHOSTUNREACH, "system text"), "en") == "No route to host"
