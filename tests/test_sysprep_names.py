"""Computer names from a pattern and one sysprep.inf a machine, each checked by the linter."""

from __future__ import annotations

import pytest

from adminkb.errors import InputError
from adminkb.imaging.computer_names import ComputerNamePattern, generate_sysprep_files, write_sysprep_files
from adminkb.imaging.sysprep import lint_sysprep, lint_text
from adminkb.imaging.sysprep_form import SysprepForm


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


FORM = SysprepForm(org_name="Example Co.", full_name="IT", product_key="AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")


def test_names_padded_in_order():
    assert ComputerNamePattern("TPE-ACC-", 8, 11).names() == ["TPE-ACC-08", "TPE-ACC-09", "TPE-ACC-10", "TPE-ACC-11"]


def test_names_three_digits_from_zero():
    assert ComputerNamePattern("LAB", 0, 2, digits=3).names() == ["LAB000", "LAB001", "LAB002"]


def test_prefix_spaces_stripped():
    assert ComputerNamePattern("  PC-", 1, 1).names() == ["PC-01"]


def test_longest_ascii_name_fits():
    assert ComputerNamePattern("TAIPEI-ACCT-", 1, 999, digits=3).names()[-1] == "TAIPEI-ACCT-999"


def test_chinese_prefix_within_15_bytes():
    names = ComputerNamePattern("台北會計部", 1, 3).names()
    assert names == ["台北會計部01", "台北會計部02", "台北會計部03"]


@pytest.mark.parametrize("pattern, key", [
    (ComputerNamePattern("", 1, 3), "imaging_names.prefix_empty"),
    (ComputerNamePattern("P\r\nC-", 1, 3), "imaging_names.prefix_control"),
    (ComputerNamePattern("PC-", 5, 4), "imaging_names.bad_range"),
    (ComputerNamePattern("PC-", -1, 4), "imaging_names.bad_range"),
    (ComputerNamePattern("PC-", 1, 100), "imaging_names.too_few_digits"),
    (ComputerNamePattern("PC-", 1, 3, digits=0), "imaging_names.bad_digits"),
    (ComputerNamePattern("PC-", 1, 3, digits=7), "imaging_names.bad_digits"),
    (ComputerNamePattern("PC-", 1, 9999, digits=4), "imaging_names.too_many"),
    (ComputerNamePattern("TAIPEI-ACCOUNT-", 1, 3), "imaging_sysprep.form.computer_name_long"),
    (ComputerNamePattern("台北會計部電腦", 1, 3), "imaging_sysprep.form.computer_name_long"),
    (ComputerNamePattern("PC:", 1, 3), "imaging_sysprep.form.computer_name_invalid"),
])
def test_bad_pattern_raises(pattern, key):
    with pytest.raises(InputError) as raised:
        pattern.names()
    assert raised.value.key == key
    assert raised.value.exit_status == 2


def test_chinese_name_error_names_bytes():
    with pytest.raises(InputError) as raised:
        ComputerNamePattern("台北會計部電腦", 1, 3).names()
    assert "台北會計部電腦01" in str(raised.value)
    assert "16 個位元組" in str(raised.value)


def test_one_file_each_name():
    names = ComputerNamePattern("TPE-ACC-", 1, 3).names()
    files = generate_sysprep_files(FORM, names)
    assert list(files) == names
    for name, text in files.items():
        assert f"ComputerName = {name}\r\n" in text
        assert text.count("ComputerName") == 1
        assert lint_text(text).findings == []


def test_files_differ_only_in_name():
    files = generate_sysprep_files(FORM, ["PC-01", "PC-02"])
    assert files["PC-01"].replace("PC-01", "PC-02") == files["PC-02"]


def test_write_one_folder_each(tmp_path):
    names = ComputerNamePattern("台北會計部", 1, 2).names()
    paths = write_sysprep_files(FORM, names, tmp_path)
    assert paths == [tmp_path / name / "sysprep.inf" for name in names]
    for name, path in zip(names, paths):
        result = lint_sysprep(path)
        assert result.findings == []
        assert result.encoding == "UTF-16LE"
        assert f"ComputerName = {name}" in path.read_bytes()[2:].decode("utf-16-le")


def test_bad_form_writes_nothing(tmp_path):
    with pytest.raises(InputError):
        write_sysprep_files(SysprepForm(org_name="A\nB", full_name="IT", product_key="AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"),
                            ["PC-01", "PC-02"], tmp_path)
    assert list(tmp_path.iterdir()) == []
