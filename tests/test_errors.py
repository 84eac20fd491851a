"""The exception tree carries the value, the place and the next step in the user's language."""

from adminkb.errors import AdminKbError, InputError, LabError


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
