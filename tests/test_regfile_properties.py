"""Property tests: random keys, names and values of every type survive write -> parse, in both versions.

REGEDIT4 files are ANSI, so their text is drawn only from characters that cp950 encodes and
decodes back unchanged.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adminkb.errors import InputError
from adminkb.regfile import (
    REG_EXPAND_SZ, REG_MULTI_SZ, REG_SZ, ROOT_KEYS, KeySection, RegFile, RegistryModel, RegValue, ValueEntry,
    encode_regfile, format_regfile, parse_regfile_bytes, parse_regfile_text,
)

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE_KEY = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Example"
# Text that cannot appear inside one .reg line (CR, LF) or inside a registry name (NUL).
LINE_BREAKS_AND_NUL = "\r\n\0"


def _cp950_round_trip_characters() -> list[str]:
    characters = []
    for code_point in range(0x20, 0x10000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        character = chr(code_point)
        try:
            if character.encode("cp950").decode("cp950") == character:
                characters.append(character)
        except UnicodeError:
            continue
    return characters


CP950_CHARACTERS = ["\t", *_cp950_round_trip_characters()]

UNICODE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
UNICODE_NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS_AND_NUL),
                       max_size=12)
UNICODE_KEY_PART = st.text(st.characters(blacklist_categories=("Cs",),
                                         blacklist_characters=LINE_BREAKS_AND_NUL + "\\"), min_size=1, max_size=10)
CP950_TEXT = st.text(st.sampled_from(CP950_CHARACTERS + ["\r", "\n", "\0"]), max_size=12)
CP950_NAME = st.text(st.sampled_from(CP950_CHARACTERS), max_size=12)
CP950_KEY_PART = st.text(st.sampled_from([c for c in CP950_CHARACTERS if c != "\\"]), min_size=1, max_size=10)


def value_strategy(text: st.SearchStrategy[str], *, ansi: bool) -> st.SearchStrategy[RegValue]:
    """Values of every type; for REGEDIT4 (`ansi`), string types only hold text the code page can carry."""
    numbers = [
        st.integers(0, 2**32 - 1).map(RegValue.dword),
        st.integers(0, 2**32 - 1).map(RegValue.dword_big_endian),
        st.integers(0, 2**64 - 1).map(RegValue.qword),
        st.binary(max_size=64).map(RegValue.binary),
    ]
    strings = [
        text.map(RegValue.string),
        text.map(RegValue.expand_string),
        st.lists(text.map(lambda item: item.replace("\0", "")), max_size=4).map(RegValue.multi_string),
        text.map(lambda item: RegValue(REG_SZ, item.encode("utf-16-le"))),
    ]
    text_types = {REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ}
    any_type = st.integers(0, 0xFFFFFFFF).filter(lambda number: not ansi or number not in text_types)
    raw = [st.builds(RegValue, any_type, st.binary(max_size=40))]
    if not ansi:
        raw.append(st.builds(RegValue, st.sampled_from(sorted(text_types)), st.binary(max_size=20)))
    return st.one_of(*numbers, *strings, *raw)


def key_path(part: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda root, parts: "\\".join([root, *parts]), st.sampled_from(ROOT_KEYS),
                     st.lists(part, min_size=1, max_size=3))


# Built once: building strategies inside a composite draw revalidates them on every example.
KEY_PATHS = {5: key_path(UNICODE_KEY_PART), 4: key_path(CP950_KEY_PART)}
ENTRIES = {
    5: st.lists(st.builds(ValueEntry, UNICODE_NAME, st.one_of(value_strategy(UNICODE_TEXT, ansi=False), st.none())),
                max_size=5),
    4: st.lists(st.builds(ValueEntry, CP950_NAME, st.one_of(value_strategy(CP950_TEXT, ansi=True), st.none())),
                max_size=5),
}


@st.composite
def regfiles(draw, version: int) -> RegFile:
    """A .reg file with key sections, values of every type, and key and value deletions."""
    sections = []
    for _ in range(draw(st.integers(0, 4))):
        path = draw(KEY_PATHS[version])
        if draw(st.booleans()) and draw(st.booleans()):
            sections.append(KeySection(path, delete=True))
            continue
        sections.append(KeySection(path, values=draw(ENTRIES[version])))
    return RegFile(version=version, keys=sections)


def entries(regfile: RegFile) -> list[tuple[str, bool, list[tuple[str, RegValue | None]]]]:
    return [(section.path, section.delete, [(entry.name, entry.value) for entry in section.values])
            for section in regfile.keys]


@pytest.mark.parametrize("version", [5, 4])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_write_then_parse_round_trip(version, data):
    regfile = data.draw(regfiles(version))
    raw = encode_regfile(regfile, version=version)
    again = parse_regfile_bytes(raw, source="property.reg")
    assert again.version == version
    assert again.problems == []
    assert entries(again) == entries(regfile)


@pytest.mark.parametrize("version", [5, 4])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_model_round_trip(version, data):
    regfile = data.draw(regfiles(version))
    model = RegistryModel.from_regfile(regfile)
    again = RegistryModel.from_regfile(parse_regfile_bytes(encode_regfile(model, version=version)))
    assert again == model


@PROPERTY_SETTINGS
@given(regfile=regfiles(5))
def test_written_lines_fit_regedit_width(regfile):
    for line in format_regfile(regfile).split("\r\n"):
        if line.startswith("  "):
            assert len(line) <= 80, line


# Few letters in both cases, so that names that differ only in case meet often.
TREE_PATHS = st.lists(st.lists(st.text(alphabet="aAbB", min_size=1, max_size=2), min_size=1, max_size=3), max_size=5)
TREE_VALUES = st.lists(st.tuples(st.text(alphabet="xXyY", max_size=2), value_strategy(UNICODE_TEXT, ansi=False)),
                       max_size=3)


@st.composite
def tree_models(draw) -> RegistryModel:
    """A model of one branch with every parent recorded, as an export of that branch is."""
    model = RegistryModel()
    model.create_key(BASE_KEY)
    for relative in draw(TREE_PATHS):
        path = "\\".join([BASE_KEY, *relative])
        model.create_key(path)
        for name, value in draw(TREE_VALUES):
            model.set_value(path, name, value)
    return model


@PROPERTY_SETTINGS
@given(original=tree_models(), target=tree_models())
def test_change_then_rollback_restores(original, target):
    change = parse_regfile_bytes(encode_regfile(original.regfile_to(target)))
    changed = original.copy().apply(change)
    assert changed == target
    rollback = parse_regfile_bytes(encode_regfile(changed.regfile_to(original)))
    assert changed.apply(rollback) == original


@PROPERTY_SETTINGS
@given(lines=st.lists(st.text(max_size=30), max_size=12), breaks=st.sampled_from(["\r\n", "\n", "\r"]))
def test_parser_survives_any_text(lines, breaks):
    regfile = parse_regfile_text("Windows Registry Editor Version 5.00" + breaks + breaks.join(lines))
    for problem in regfile.problems:
        assert problem.describe()
    RegistryModel.from_regfile(regfile)


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=200), header=st.sampled_from([b"", b"REGEDIT4\r\n", b"\xff\xfe"]))
def test_reader_only_raises_input_error(raw, header):
    try:
        regfile = parse_regfile_bytes(header + raw, source="fuzz.reg")
    except InputError as error:
        assert error.exit_status == 2
        assert str(error)
    else:
        assert regfile.version in (4, 5)


@PROPERTY_SETTINGS
@given(lines=st.lists(st.text(alphabet=string.hexdigits + ",\\; \t#\"=@[]-", max_size=25), max_size=10))
def test_hex_like_lines_never_crash(lines):
    body = "\r\n".join(f'"v{index}"=hex:{line}' if index % 2 else line for index, line in enumerate(lines))
    regfile = parse_regfile_text(f"REGEDIT4\r\n\r\n[{BASE_KEY}]\r\n{body}")
    for problem in regfile.problems:
        assert 1 <= problem.line <= len(lines) + 3
