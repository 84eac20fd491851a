"""The sysprep.inf generator form: driven through its widgets, with the files it writes read back by the linter."""

from __future__ import annotations

import pytest

from adminkb.errors import InputError
from adminkb.imaging.computer_names import ComputerNamePattern
from adminkb.imaging.sysprep import lint_sysprep, lint_text
from adminkb.imaging.sysprep_form import SysprepForm
from adminkb.ui import SysprepFormWidget, open_sysprep_form
from adminkb.ui.sysprep_form import hide_secrets

KEY = "BCDFG-HJKMP-QRTVW-XY234-6789B"


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def make_form(**changes) -> SysprepForm:
    values = {"org_name": "Example Corp", "full_name": "IT", "product_key": KEY, **changes}
    return SysprepForm(**values)


def test_random_name_default_clean():
    widget = SysprepFormWidget(make_form())
    assert widget.name_mode.value == "random"
    assert "ComputerName = *" in widget.text()
    assert lint_text(widget.text()).findings == []
    assert repr(widget) == "產生的 sysprep.inf（ComputerName = *）：沒有發現問題。"


def test_field_change_regenerates():
    widget = SysprepFormWidget(make_form())
    widget.org_name.value = "範例公司"
    assert 'OrgName = "範例公司"' in widget.text()
    assert "OrgName = &quot;範例公司&quot;" in widget.result.value


def test_pattern_gives_one_file_each():
    widget = SysprepFormWidget(make_form(), pattern=ComputerNamePattern("TPE-ACC-", 1, 5))
    files = widget.files()
    assert list(files) == [f"TPE-ACC-0{number}" for number in range(1, 6)]
    for name, text in files.items():
        assert f"ComputerName = {name}" in text
        assert lint_text(text).findings == []
    assert repr(widget).startswith("5 份 sysprep.inf（TPE-ACC-01 到 TPE-ACC-05）")
    assert "TPE-ACC-05" in widget.result.value
    assert "C:\\Sysprep\\sysprep.inf" in widget.result.value


def test_pattern_fields_drive_names():
    widget = SysprepFormWidget(make_form())
    widget.name_mode.value = "pattern"
    widget.prefix.value = "台北會計部"
    widget.first.value = 7
    widget.last.value = 8
    assert list(widget.files()) == ["台北會計部07", "台北會計部08"]


def test_chinese_name_over_15_bytes_shown():
    widget = SysprepFormWidget(make_form(), pattern=ComputerNamePattern("台北會計部電腦", 1, 3))
    assert "16 個位元組" in widget.result.value
    assert repr(widget).startswith("sysprep.inf 無法產生")
    with pytest.raises(InputError):
        widget.files()


def test_fixed_name_mode():
    widget = SysprepFormWidget(make_form(computer_name="TPE-BOSS"))
    assert widget.name_mode.value == "fixed"
    widget.computer_name.value = "TPE-BOSS-02"
    assert list(widget.files()) == ["TPE-BOSS-02"]


def test_line_break_in_field_shown_not_raised():
    widget = SysprepFormWidget(make_form())
    widget.org_name.value = "Corp\r\n[GuiRunOnce]"
    assert "控制字元" in widget.result.value
    assert "<pre>" not in widget.result.value


def test_mode_switch_hides_fields():
    widget = SysprepFormWidget(make_form())
    assert widget.pattern_box.layout.display == "none"
    assert widget.fixed_box.layout.display == "none"
    widget.name_mode.value = "fixed"
    assert widget.fixed_box.layout.display == ""
    widget.join_mode.value = "domain"
    assert widget.workgroup_box.layout.display == "none"
    assert widget.domain_box.layout.display == ""


def test_domain_fields_fill_form():
    widget = SysprepFormWidget(make_form())
    widget.join_mode.value = "domain"
    widget.domain.value = "CORP"
    widget.domain_admin.value = "joiner"
    widget.domain_admin_password.value = "Example-Only-2"
    form, _names = widget.form_data()
    assert (form.workgroup, form.domain, form.domain_admin) == (None, "CORP", "joiner")
    assert "JoinDomain = CORP" in widget.text()
    assert [finding.rule for finding in lint_text(widget.text()).findings] == ["plaintext-password"]


def test_hal_choice_adds_line():
    widget = SysprepFormWidget(make_form())
    widget.hal_update.value = ("UpdateHAL", "ACPIAPIC_MP")
    assert 'UpdateHAL = "ACPIAPIC_MP,%WINDIR%\\Inf\\Hal.inf"' in widget.text()
    widget.hal_update.value = ""
    assert "UpdateHAL" not in widget.text()


def test_empty_admin_password_is_blank():
    widget = SysprepFormWidget(make_form(admin_password="Example-1"))
    widget.admin_password.value = ""
    assert "AdminPassword = *" in widget.text()


def test_time_zone_choice_writes_index():
    widget = SysprepFormWidget(make_form())
    widget.time_zone.value = "Tokyo Standard Time"
    assert "TimeZone = 235" in widget.text()


def test_write_pattern_files(tmp_path):
    widget = SysprepFormWidget(make_form(), pattern=ComputerNamePattern("PC-", 1, 2), output_dir=tmp_path)
    widget.write_button.click()
    for name in ("PC-01", "PC-02"):
        path = tmp_path / name / "sysprep.inf"
        assert lint_sysprep(path).findings == []
        assert KEY in path.read_text("ascii")
    assert "2 個 sysprep.inf" in widget.message.value


def test_write_one_file(tmp_path):
    paths = SysprepFormWidget(make_form()).write(tmp_path)
    assert paths == [tmp_path / "sysprep.inf"]
    assert lint_sysprep(paths[0]).findings == []


def test_write_without_folder_raises():
    widget = SysprepFormWidget(make_form())
    assert widget.write_button.disabled
    with pytest.raises(InputError) as raised:
        widget.write()
    assert raised.value.key == "ui.sysprep.no_folder"


def test_write_failure_shown(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    widget = SysprepFormWidget(make_form(), output_dir=blocker)
    widget.write_button.click()
    assert "無法寫出 sysprep.inf" in widget.message.value


def test_open_sysprep_form_fills_widget(tmp_path):
    widget = open_sysprep_form(make_form(), pattern=ComputerNamePattern("PC-", 1, 2), output_dir=tmp_path)
    assert isinstance(widget, SysprepFormWidget)
    assert list(widget.files()) == ["PC-01", "PC-02"]
    assert widget.write_button.disabled is False


def test_static_html_hides_secrets():
    widget = SysprepFormWidget(make_form(admin_password="Secret-Value-1"), pattern=ComputerNamePattern("PC-", 1, 2))
    bundle = widget._repr_mimebundle_()
    html = bundle["text/html"]
    assert KEY not in html
    assert "6789B" in html
    assert "Secret-Value-1" not in html
    assert "已設定（不顯示）" in html
    assert "PC-02" in html
    assert "plaintext-password" in html
    assert bundle["text/plain"] == repr(widget)


def test_static_html_same_for_same_state():
    first = SysprepFormWidget(make_form(), pattern=ComputerNamePattern("PC-", 1, 2))._repr_mimebundle_()["text/html"]
    second = SysprepFormWidget(make_form(), pattern=ComputerNamePattern("PC-", 1, 2))._repr_mimebundle_()["text/html"]
    assert first == second


def test_static_html_lists_visible_fields_only():
    html = SysprepFormWidget(make_form())._repr_mimebundle_()["text/html"]
    assert "名稱前置文字" not in html
    assert "加入網域的帳號" not in html
    assert "工作群組" in html


def test_hide_secrets_masks_values():
    text = ('[GuiUnattended]\nAdminPassword = "pw"\n[UserData]\nProductKey = "' + KEY + '"\n'
            "[Identification]\nDomainAdminPassword = other\n")
    hidden = hide_secrets(text)
    assert "pw" not in hidden
    assert "other" not in hidden
    assert 'ProductKey = "************************6789B"' in hidden
    assert hide_secrets("AdminPassword = *\n") == "AdminPassword = *\n"


def test_english_labels(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    widget = SysprepFormWidget(make_form())
    assert widget.org_name.description == "Organisation"
    assert repr(widget) == "sysprep.inf (ComputerName = *): No findings."
