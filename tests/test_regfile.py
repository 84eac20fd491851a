"""The .reg reader, writer and registry model, on the fixture files in data/reg and inline text."""

from __future__ import annotations

from pathlib import Path

import pytest

from adminkb.errors import InputError
from adminkb.regfile import (
    REG_BINARY, REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ, REG_LINK, REG_MULTI_SZ, REG_NONE, REG_QWORD,
    REG_SZ, KeySection, RegFile, RegistryModel, RegValue, ValueEntry, diff_regfiles, encode_regfile,
    format_regfile, parse_regfile_bytes, parse_regfile_text, read_regfile, resolve_code_page, write_regfile,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "reg"
V5 = "Windows Registry Editor Version 5.00\r\n\r\n"
KEY = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Example"


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def utf16(text: str) -> bytes:
    return b"\xff\xfe" + text.encode("utf-16-le")


def values_of(regfile: RegFile) -> dict[str, RegValue | None]:
    """Map value names to values for a file with one key."""
    assert len(regfile.keys) == 1
    return {entry.name: entry.value for entry in regfile.keys[0].values}


def parse(body: str, **options) -> RegFile:
    return parse_regfile_text(V5 + f"[{KEY}]\r\n" + body, source="inline.reg", **options)


def codes(regfile: RegFile) -> list[str]:
    return [problem.code for problem in regfile.problems]


# Fixture files: encodings and headers.

def test_version5_export_values():
    regfile = read_regfile(DATA / "version5_utf16le_bom.reg")
    assert regfile.version == 5
    assert regfile.encoding == "utf-16-le"
    assert regfile.problems == []
    model = RegistryModel.from_regfile(regfile)
    gateway = KEY + "\\MailGateway"
    assert model.get(gateway, "").decoded == "預設閘道"
    assert model.get(gateway, "說明").decoded == "轉送 (Relay) 限制：只允許 198.51.100.0/24"
    assert model.get(gateway, "ServiceDll").type == REG_EXPAND_SZ
    assert model.get(gateway, "ServiceDll").data == "%SystemRoot%\\System32\\termsrv.dll\0".encode("utf-16-le")
    assert model.get(gateway, "AllowedRelays").decoded == ["relay.example.com", "192.0.2.25", "郵件閘道"]
    assert model.get(gateway, "MaxMessageSize").decoded == 2 * 1024 * 1024
    assert model.get(gateway, "Thumbprint").data == bytes.fromhex("deadbeef00112233445566778899aabbccddeeff")\
        + bytes(range(1, 16))
    licensing = "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\Licensing Core"
    assert model.get(licensing, "EnableConcurrentSessions") == RegValue.dword(1)


def test_regedit4_cp950_default():
    regfile = read_regfile(DATA / "regedit4_cp950.reg")
    assert regfile.version == 4
    assert regfile.encoding == "cp950"
    assert regfile.keys[0].path == KEY + "\\郵件伺服器"
    values = values_of(regfile)
    assert values["顯示名稱"] == RegValue.string("內部郵件轉送伺服器")
    assert values["Port"] == RegValue.dword(25)


def test_regedit4_hex_strings_become_utf16():
    values = values_of(read_regfile(DATA / "regedit4_cp950.reg"))
    assert values["LogDir"].type == REG_EXPAND_SZ
    assert values["LogDir"].data == "%SystemRoot%\\記錄檔\0".encode("utf-16-le")
    assert values["Domains"].data == "example.com\0範例.example.net\0\0".encode("utf-16-le")
    assert values["Domains"].decoded == ["example.com", "範例.example.net"]


def test_regedit4_other_code_page():
    raw = ("REGEDIT4\r\n\r\n[" + KEY + "]\r\n\"Café\"=\"Crème brûlée\"\r\n"
           "\"Path\"=hex(2):" + ",".join(f"{b:02x}" for b in "Grüße\0".encode("cp1252")) + "\r\n").encode("cp1252")
    regfile = parse_regfile_bytes(raw, encoding="cp1252")
    values = values_of(regfile)
    assert regfile.encoding == "cp1252"
    assert values["Café"].decoded == "Crème brûlée"
    assert values["Path"].data == "Grüße\0".encode("utf-16-le")


def test_regedit4_wrong_code_page_reported():
    raw = ("REGEDIT4\r\n\r\n[" + KEY + "]\r\n\"Text\"=\"\x80\x81\"\r\n\"Good\"=dword:00000001\r\n").encode("latin-1")
    regfile = parse_regfile_bytes(raw, source="cp1252.reg")
    assert codes(regfile) == ["line_not_decodable"]
    assert regfile.problems[0].line == 4
    assert values_of(regfile) == {"Good": RegValue.dword(1)}


def test_regedit4_hex_invalid_in_code_page():
    raw = ("REGEDIT4\r\n\r\n[" + KEY + "]\r\n\"Bad\"=hex(2):81,00\r\n").encode("ascii")
    regfile = parse_regfile_bytes(raw)
    assert codes(regfile) == ["ansi_bytes_invalid"]
    assert regfile.problems[0].name == "Bad"


def test_utf8_without_bom():
    regfile = read_regfile(DATA / "version5_utf8_no_bom.reg")
    assert regfile.encoding == "utf-8"
    assert values_of(regfile)["標題"].decoded == "遠端桌面檢查清單"


def test_utf8_with_bom():
    regfile = read_regfile(DATA / "version5_utf8_bom.reg")
    assert regfile.encoding == "utf-8-sig"
    assert values_of(regfile)["標題"].decoded == "遠端桌面檢查清單"
    assert values_of(regfile)["Step"].decoded == 3


def test_version5_header_in_ansi_file():
    raw = (V5 + "[" + KEY + "]\r\n\"名稱\"=\"資料\"\r\n").encode("cp950")
    regfile = parse_regfile_bytes(raw)
    assert regfile.encoding == "cp950"
    assert values_of(regfile)["名稱"].decoded == "資料"


def test_header_leading_blanks_allowed():
    regfile = parse_regfile_text(" \t" + V5 + "[" + KEY + "]\r\n\"A\"=\"b\"\r\n")
    assert values_of(regfile)["A"].decoded == "b"


def test_missing_final_newline():
    values = values_of(read_regfile(DATA / "missing_final_newline.reg"))
    assert values["Last"].decoded == "no line break after me"


def test_mixed_line_ends():
    regfile = read_regfile(DATA / "mixed_line_ends.reg")
    assert regfile.problems == []
    values = values_of(regfile)
    assert [values[name].decoded for name in ("Crlf", "Lf", "Cr")] == ["crlf", "lf", "cr"]
    assert values["Binary"].data == bytes([1, 2, 3, 4])


@pytest.mark.parametrize(("name", "key"), [
    ("empty.reg", "regfile.file.empty"),
    ("no_header.reg", "regfile.file.no_header"),
    ("binary_garbage.reg", "regfile.file.binary"),
    ("unknown_header.reg", "regfile.file.unknown_header"),
    ("utf16le_without_bom.reg", "regfile.file.utf16_without_bom"),
])
def test_unusable_file_raises(name, key):
    with pytest.raises(InputError) as caught:
        read_regfile(DATA / name)
    assert caught.value.key == key
    assert caught.value.exit_status == 2
    assert name in str(caught.value)
    assert "下一步" in str(caught.value)


def test_no_header_names_first_line():
    with pytest.raises(InputError) as caught:
        read_regfile(DATA / "no_header.reg")
    assert "[UserData]" in str(caught.value)


@pytest.mark.parametrize("header", ["regedit4", "REGEDIT5", "REGEDIT4 FOO", "Windows Registry Editor Version 5",
                                    "WINDOWS REGISTRY EDITOR VERSION 5.00"])
def test_header_must_match_exactly(header):
    with pytest.raises(InputError) as caught:
        parse_regfile_text(header + "\r\n\r\n[" + KEY + "]\r\n")
    assert caught.value.key == "regfile.file.unknown_header"


def test_windows31_header_rejected():
    with pytest.raises(InputError) as caught:
        parse_regfile_text("REGEDIT\r\nHKEY_CLASSES_ROOT\\.example = value\r\n")
    assert caught.value.key == "regfile.file.win31_header"


def test_utf16_big_endian_rejected():
    raw = b"\xfe\xff" + V5.encode("utf-16-be")
    with pytest.raises(InputError) as caught:
        parse_regfile_bytes(raw, source="be.reg")
    assert caught.value.key == "regfile.file.utf16_big_endian"


def test_utf16_truncated_reported():
    raw = utf16(V5 + "[" + KEY + "]\r\n\"A\"=\"b\"\r\n") + b"\x41"
    regfile = parse_regfile_bytes(raw, source="cut.reg")
    assert codes(regfile) == ["utf16_truncated"]
    assert values_of(regfile)["A"].decoded == "b"


def test_missing_file_raises(tmp_path):
    with pytest.raises(InputError) as caught:
        read_regfile(tmp_path / "absent.reg")
    assert caught.value.key == "regfile.file.unreadable"
    assert "absent.reg" in str(caught.value)


def test_directory_raises(tmp_path):
    with pytest.raises(InputError) as caught:
        read_regfile(tmp_path)
    assert caught.value.key == "regfile.file.unreadable"


# Code pages.

@pytest.mark.parametrize(("given", "expected"), [(None, "cp950"), ("950", "cp950"), ("cp950", "cp950"),
                                                 ("CP1252", "cp1252"), ("big5", "big5")])
def test_code_page_names(given, expected):
    assert resolve_code_page(given) == expected


def test_unknown_code_page_raises():
    with pytest.raises(InputError) as caught:
        resolve_code_page("cp99999")
    assert caught.value.key == "regfile.file.unknown_code_page"
    assert "cp99999" in str(caught.value)


@pytest.mark.parametrize("name", ["utf-16", "utf-32", "rot13"])
def test_non_ansi_code_page_raises(name):
    with pytest.raises(InputError) as caught:
        resolve_code_page(name)
    assert caught.value.key == "regfile.file.not_ansi_code_page"


# Value types.

def test_all_value_types():
    regfile = read_regfile(DATA / "all_value_types.reg")
    assert regfile.problems == []
    values = values_of(regfile)
    assert values["None"] == RegValue(REG_NONE, b"\x01\x02")
    assert values["SzAsHex"] == RegValue.string("AB")
    assert values["ExpandSz"] == RegValue.expand_string("%TEMP%")
    assert values["Binary"] == RegValue(REG_BINARY, b"\x01\x02\x03")
    assert values["BinaryNumbered"] == RegValue(REG_BINARY, b"\x04\x05")
    assert values["Dword"] == RegValue.dword(42)
    assert values["DwordAsHex"] == RegValue.dword(42)
    assert values["DwordBigEndian"] == RegValue.dword_big_endian(42)
    assert values["DwordBigEndian"].data == b"\x00\x00\x00\x2a"
    assert values["Link"] == RegValue(REG_LINK, "\\REG".encode("utf-16-le"))
    assert values["Link"].decoded == "\\REG"
    assert values["MultiSz"] == RegValue.multi_string(["a", "b"])
    assert [values[name].type for name in ("ResourceList", "FullResourceDescriptor", "ResourceRequirementsList")]\
        == [8, 9, 10]
    assert values["Qword"] == RegValue.qword(42)
    assert values["Qword"].data == (42).to_bytes(8, "little")
    assert values["Custom"] == RegValue(0x100, b"Value\0")
    assert values["LargestType"].type == 0xFFFFFFFF
    assert values["Empty"] == RegValue(REG_BINARY, b"")
    assert values["EmptyString"] == RegValue(REG_SZ, b"\0\0")


def test_string_that_looks_like_hex():
    values = values_of(read_regfile(DATA / "string_that_looks_like_hex.reg"))
    assert values["LooksLikeHex"] == RegValue.string("hex:01,02,03")
    assert values["LooksLikeDword"] == RegValue.string("dword:00000001")
    assert values["RealHex"] == RegValue(REG_BINARY, b"\x01\x02\x03")


def test_names_and_data_with_specials():
    regfile = read_regfile(DATA / "names_with_equals.reg")
    assert regfile.problems == []
    assert regfile.keys[0].path == KEY + '\\Odd]Names\\Quote"Key'
    values = values_of(regfile)
    assert values["a=b"].decoded == "c=d"
    assert values["]bracket["].decoded == "[not a key]"
    assert values['quote"inside'].decoded == 'say "hi"'
    assert values["back\\slash"].decoded == "C:\\Windows\\System32"
    assert values["semi;colon"].decoded == "a;b"
    assert values["hash#mark"].decoded == "#not a comment"
    assert values["中文名稱=值"].decoded == "資料=內容"
    assert values["  spaces  "].decoded == "  kept  "


def test_default_value_forms():
    values = values_of(parse('@="at sign"\r\n'))
    assert values[""].decoded == "at sign"
    values = values_of(parse('""="empty name"\r\n'))
    assert values[""].decoded == "empty name"


def test_whitespace_around_equals():
    values = values_of(parse('  "A"  \t=  "x"  \r\n\t@\t=\tdword:\t00000008\t\r\n"B"=dword:  00000009\r\n'))
    assert values["A"].decoded == "x"
    assert values[""].decoded == 8
    assert values["B"].decoded == 9


def test_dword_short_form():
    values = values_of(read_regfile(DATA / "dword_nine_digits.reg"))
    assert values == {"EightDigits": RegValue.dword(0xFFFFFFFF), "ShortForm": RegValue.dword(1)}


def test_hex_type_range():
    regfile = parse('"Max"=hex(ffffffff):00\r\n"Upper"=hex(B):01,00,00,00,00,00,00,00\r\n'
                    '"TooBig"=hex(100000000):00\r\n"Prefixed"=hex(0x2):00\r\n"Letter"=hex(x2):00\r\n')
    values = values_of(regfile)
    assert values["Max"].type == 0xFFFFFFFF
    assert values["Upper"] == RegValue.qword(1)
    assert codes(regfile) == ["hex_type_invalid"] * 3
    assert [problem.name for problem in regfile.problems] == ["TooBig", "Prefixed", "Letter"]


def test_decoded_view_falls_back_to_bytes():
    assert RegValue(REG_DWORD, b"\x01\x02\x03").decoded == b"\x01\x02\x03"
    assert RegValue(REG_SZ, b"\x41").decoded == b"\x41"
    assert RegValue(REG_QWORD, b"\x01").decoded == b"\x01"
    assert RegValue(REG_MULTI_SZ, "a\0\0b\0\0".encode("utf-16-le")).decoded == ["a", "", "b"]
    assert RegValue(REG_MULTI_SZ, b"\0\0").decoded == []


@pytest.mark.parametrize("build", [lambda: RegValue.dword(-1), lambda: RegValue.dword(1 << 32),
                                   lambda: RegValue.qword(1 << 64), lambda: RegValue(-1, b""),
                                   lambda: RegValue(1 << 32, b""), lambda: RegValue.multi_string(["a\0b"])])
def test_value_constructors_check_ranges(build):
    with pytest.raises(ValueError):
        build()


# Continuations and comments.

def test_continuation_lines():
    regfile = read_regfile(DATA / "continuation_lines.reg")
    assert regfile.problems == []
    values = values_of(regfile)
    assert values["Plain"].data == bytes(range(0x1A))
    assert values["CommentAfterBackslash"].data == bytes([1, 2, 3, 4])
    assert values["BlankAndCommentLinesBetween"] == RegValue.expand_string("AB")
    assert values["DataOnNextLine"] == RegValue(REG_NONE, b"\xff\xfe")
    assert values["TrailingComma"].data == b"\xaa\xbb"
    assert values["After"].decoded == "still read"


def test_continuation_swallows_next_value():
    regfile = read_regfile(DATA / "continuation_swallows_next_value.reg")
    assert values_of(regfile) == {"Survivor": RegValue.string("read normally")}
    assert codes(regfile) == ["continuation_swallowed", "hex_not_hex"]
    swallowed, cut = regfile.problems
    assert swallowed.line == 5
    assert swallowed.details["first_line"] == "4"
    assert cut.name == "Cut"


def test_backslash_without_comma():
    regfile = parse('"NoComma"=hex:01,02\\\r\n"Next"="read on its own"\r\n')
    assert codes(regfile) == ["hex_continuation_without_comma"]
    assert values_of(regfile) == {"Next": RegValue.string("read on its own")}


def test_continuation_skips_blank_and_semicolon_lines():
    regfile = parse('"A"=hex:01,\\\r\n\r\n  ;note\r\n\t02\r\n')
    assert values_of(regfile)["A"].data == b"\x01\x02"


def test_continuation_joins_hash_comment():
    regfile = parse('"A"=hex:01,\\\r\n  #note\r\n  02\r\n"B"="b"\r\n')
    assert codes(regfile) == ["hash_comment", "line_not_understood"]
    assert values_of(regfile) == {"B": RegValue.string("b")}


def test_continuation_at_end_of_file():
    values = values_of(parse('"A"=hex:01,02,\\'))
    assert values["A"].data == b"\x01\x02"


def test_continuation_line_of_backslash():
    regfile = parse('"A"=hex:01,\\\r\n\\\r\n  02\r\n')
    assert codes(regfile) == ["hex_empty_continuation"]


def test_continuation_swallows_key_line():
    regfile = parse('"A"=hex:01,\\\r\n[' + KEY + '\\Sub]\r\n"B"="b"\r\n')
    assert codes(regfile)[:2] == ["continuation_swallowed", "hex_not_hex"]
    assert [section.path for section in regfile.keys] == [KEY]
    assert values_of(regfile)["B"].decoded == "b"


def test_comments():
    regfile = read_regfile(DATA / "comments.reg")
    assert values_of(regfile) == {"Semicolon": RegValue.string("value"), "DwordSemicolon": RegValue.dword(4)}
    assert codes(regfile) == ["hash_comment", "hash_comment"]
    assert [problem.name for problem in regfile.problems] == ["Hash", "DwordHash"]


def test_semicolon_inside_string_is_data():
    values = values_of(parse('"A"="x;y" ;comment\r\n"B"=dword:00001234;5678\r\n'))
    assert values["A"].decoded == "x;y"
    assert values["B"].decoded == 0x1234


# Deletions.

def test_deletions_file():
    regfile = read_regfile(DATA / "deletions.reg")
    assert regfile.problems == []
    assert [(section.path, section.delete) for section in regfile.keys] == [
        (KEY + "\\Obsolete", True), (KEY + "\\Keep", False)]
    entries = regfile.keys[1].values
    assert [(entry.name, entry.is_deletion) for entry in entries] == [
        ("Remove", True), ("RemoveWithSpaces", True), ("", True), ("Set", False)]


def test_deletion_with_data_rejected():
    regfile = parse('"A"=-"x"\r\n"B"=- #note\r\n')
    assert codes(regfile) == ["text_after_data", "hash_comment"]


def test_value_under_key_deletion():
    regfile = parse_regfile_text(V5 + "[-" + KEY + "]\r\n\"A\"=\"x\"\r\n", source="d.reg")
    assert codes(regfile) == ["value_under_key_deletion"]
    assert regfile.keys[0].values == []


# Bad values: each reported with file, line, key and value name, the good ones around kept.

def test_dword_with_0x_prefix():
    regfile = read_regfile(DATA / "dword_with_0x_prefix.reg")
    assert values_of(regfile) == {"Before": RegValue.dword(1), "After": RegValue.dword(2)}
    assert codes(regfile) == ["dword_prefix"]
    problem = regfile.problems[0]
    assert (problem.line, problem.name, problem.key) == (5, "WithPrefix", KEY + "\\Dword")


def test_dword_nine_digits():
    regfile = read_regfile(DATA / "dword_nine_digits.reg")
    assert codes(regfile) == ["dword_too_long"]
    assert regfile.problems[0].details["count"] == "9"


@pytest.mark.parametrize(("data", "code"), [
    ("dword:", "dword_empty"), ("dword:hello", "dword_not_hex"), ("dword:12345678abc", "dword_too_long"),
    ("dword:0X1", "dword_prefix"), ("dword:123 456", "text_after_data"), ("dword:1234#5", "hash_comment"),
    ("dword:-1", "dword_not_hex"), ("dword:1234\\", "dword_not_hex"), ("DWORD:1", "unknown_data_type"),
    ("word:1", "unknown_data_type"), ("Asdf", "unknown_data_type"), ("", "data_missing"), ("#x", "data_missing"),
    ('"unterminated', "string_unterminated"), ('"ends in backslash\\', "string_unterminated"),
    ('"C:\\Windows"', "string_bad_escape"), ('"a"b"', "text_after_data"), ('"a""b"', "text_after_data"),
    ('"v" #c', "hash_comment"), ("hex:4c,6,69", "hex_odd_digits"), ("hex:0ff", "hex_odd_digits"),
    ("hex:25,100", "hex_byte_over_ff"), ("hex:0a0b", "hex_byte_over_ff"), ("hex:,01", "hex_empty_byte"),
    ("hex:01,,02", "hex_empty_byte"), ("hex:0g", "hex_not_hex"), ("hex:01,02 #c", "hash_comment"),
    ("hex:01\\,02", "hex_not_hex"),
])
def test_bad_value_reported(data, code):
    regfile = parse(f'"Good1"="a"\r\n"Bad"={data}\r\n"Good2"="b"\r\n')
    assert codes(regfile) == [code]
    problem = regfile.problems[0]
    assert (problem.line, problem.name, problem.key, problem.source) == (5, "Bad", KEY, "inline.reg")
    assert values_of(regfile) == {"Good1": RegValue.string("a"), "Good2": RegValue.string("b")}


def test_unterminated_string_file():
    regfile = read_regfile(DATA / "unterminated_string.reg")
    assert codes(regfile) == ["string_unterminated"]
    assert regfile.problems[0].name == "NoEndQuote"
    assert set(values_of(regfile)) == {"Good1", "Good2"}


def test_odd_hex_digits_file():
    regfile = read_regfile(DATA / "odd_hex_digits.reg")
    assert codes(regfile) == ["hex_odd_digits"]
    assert regfile.problems[0].details["text"] == "6"
    assert set(values_of(regfile)) == {"Good", "AlsoGood"}


def test_hex_byte_over_ff_file():
    regfile = read_regfile(DATA / "hex_byte_over_ff.reg")
    assert codes(regfile) == ["hex_byte_over_ff"]
    assert regfile.problems[0].details["text"] == "100"
    assert values_of(regfile) == {"Good": RegValue(REG_BINARY, b"\xff")}


def test_value_before_key_file():
    regfile = read_regfile(DATA / "value_before_key.reg")
    assert codes(regfile) == ["value_before_key"]
    assert (regfile.problems[0].line, regfile.problems[0].name) == (3, "Orphan")
    assert values_of(regfile) == {"Good": RegValue.string("fine")}


def test_bad_values_among_good():
    regfile = read_regfile(DATA / "bad_values_among_good.reg")
    assert list(values_of(regfile)) == ["Good1", "Good2", "Good3", "Good4", "Good5"]
    assert codes(regfile) == ["dword_not_hex", "unknown_data_type", "string_bad_escape", "line_not_understood"]
    assert [problem.line for problem in regfile.problems] == [5, 7, 9, 11]


@pytest.mark.parametrize(("text", "code"), [
    ('"NoEnd=1\r\n', "name_unterminated"), ('"Bad\\x"="v"\r\n', "name_bad_escape"),
    ('"NoEquals" "v"\r\n', "missing_equals"), ('"MixedQuotes=Asdf"\r\n', "missing_equals"),
    ("NoQuotes=1\r\n", "line_not_understood"),
])
def test_bad_value_lines(text, code):
    assert codes(parse(text)) == [code]


# Key lines.

def test_abbreviated_root_skips_key():
    regfile = read_regfile(DATA / "abbreviated_root_key.reg")
    assert codes(regfile) == ["key_abbreviated_root", "value_skipped_bad_key"]
    assert regfile.problems[0].details == {"root": "HKLM", "full": "HKEY_LOCAL_MACHINE"}
    assert [section.path for section in regfile.keys] == [KEY + "\\Full"]


@pytest.mark.parametrize(("line", "code"), [
    ("[ " + KEY + "]", "key_space_after_bracket"), ("[-\t" + KEY + "]", "key_space_after_bracket"),
    ("[" + KEY, "key_unterminated"), ("[]", "key_empty"), ("[-]", "key_empty"),
    ("[HKEY_CURRENT_USERS\\Software]", "key_unknown_root"),
])
def test_bad_key_lines(line, code):
    regfile = parse_regfile_text(V5 + line + '\r\n"A"="x"\r\n')
    assert codes(regfile) == [code, "value_skipped_bad_key"]
    assert regfile.keys == []


def test_root_key_case_insensitive():
    regfile = parse_regfile_text(V5 + "[hkey_local_MACHINE\\Software\\Example]\r\n\"A\"=\"x\"\r\n")
    assert regfile.problems == []
    assert regfile.keys[0].path == "hkey_local_MACHINE\\Software\\Example"


def test_text_after_key_reported():
    regfile = parse_regfile_text(V5 + "[" + KEY + "] extra\r\n[" + KEY + "\\B] ;note\r\n")
    assert codes(regfile) == ["text_after_key"]
    assert len(regfile.keys) == 2


def test_key_keeps_trailing_space():
    regfile = parse_regfile_text(V5 + "[" + KEY + "\\Trailing ]\r\n")
    assert regfile.keys[0].path == KEY + "\\Trailing "


# Messages and strict mode.

def test_problem_describe_zh_tw():
    problem = read_regfile(DATA / "dword_with_0x_prefix.reg").problems[0]
    text = problem.describe()
    assert "dword_with_0x_prefix.reg 第 5 行" in text
    assert "值「WithPrefix」" in text
    assert "0x" in text
    assert "下一步" in text


def test_problem_describe_english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    problem = read_regfile(DATA / "dword_with_0x_prefix.reg").problems[0]
    text = problem.describe()
    assert "dword_with_0x_prefix.reg, line 5" in text
    assert 'value "WithPrefix"' in text
    assert "must not start with 0x" in text
    assert "Next step:" in text


def test_default_value_named_in_message():
    problem = parse("@=dword:0x1\r\n").problems[0]
    assert "@（預設值）" in problem.where()


def test_strict_raises_first_problem():
    with pytest.raises(InputError) as caught:
        read_regfile(DATA / "bad_values_among_good.reg", strict=True)
    error = caught.value
    assert error.key == "regfile.problem.dword_not_hex"
    assert error.exit_status == 2
    assert "bad_values_among_good.reg 第 5 行" in error.where
    assert "BadDword" in error.where
    assert "hello" in str(error)
    assert "下一步" in str(error)


def test_strict_accepts_clean_file():
    regfile = read_regfile(DATA / "version5_utf16le_bom.reg", strict=True)
    assert regfile.problems == []


# Writing.

def test_write_export_layout():
    model = RegistryModel()
    model.set_value(KEY, "", RegValue.string("預設"))
    model.set_value(KEY, 'say "hi"', RegValue.string("C:\\Temp"))
    model.set_value(KEY, "Count", RegValue.dword(256))
    model.create_key(KEY + "\\Empty")
    text = format_regfile(model)
    assert text == ("Windows Registry Editor Version 5.00\r\n\r\n"
                    f"[{KEY}]\r\n"
                    '@="預設"\r\n'
                    '"say \\"hi\\""="C:\\\\Temp"\r\n'
                    '"Count"=dword:00000100\r\n\r\n'
                    f"[{KEY}\\Empty]\r\n\r\n")
    data = encode_regfile(model)
    assert data.startswith(b"\xff\xfe")
    assert data[2:].decode("utf-16-le") == text


def test_write_hex_wrapping():
    data = bytes(range(60))
    lines = format_regfile(_one_value_model("Multiple strings", RegValue(REG_MULTI_SZ, data))).split("\r\n")[3:-2]
    assert lines[0].startswith('"Multiple strings"=hex(7):00,01,')
    assert all(len(line) <= 80 for line in lines)
    assert [line.endswith(",\\") for line in lines] == [True, True, False]
    assert lines[0].count(",") == 17
    assert lines[1] == "  " + ",".join(f"{byte:02x}" for byte in data[17:42]) + ",\\"
    assert lines[2] == "  " + ",".join(f"{byte:02x}" for byte in data[42:])


def test_write_long_name_keeps_one_byte_per_line():
    name = "N" * 90
    lines = format_regfile(_one_value_model(name, RegValue.binary(b"\x01\x02"))).split("\r\n")[3:-2]
    assert lines == [f'"{name}"=hex:01,\\', "  02"]


@pytest.mark.parametrize(("value", "expected"), [
    (RegValue(REG_SZ, "a\0b\0".encode("utf-16-le")), '"V"=hex(1):61,00,00,00,62,00,00,00'),
    (RegValue(REG_SZ, "ab".encode("utf-16-le")), '"V"=hex(1):61,00,62,00'),
    (RegValue.string("a\r\nb"), '"V"=hex(1):61,00,0d,00,0a,00,62,00,00,00'),
    (RegValue(REG_SZ, b""), '"V"=hex(1):'),
    (RegValue(REG_DWORD, b"\x01\x02\x03"), '"V"=hex(4):01,02,03'),
    (RegValue(REG_BINARY, b"\x01"), '"V"=hex:01'),
    (RegValue(0x100, b"\x01"), '"V"=hex(100):01'),
    (RegValue.qword(1), '"V"=hex(b):01,00,00,00,00,00,00,00'),
    (RegValue.dword_big_endian(1), '"V"=hex(5):00,00,00,01'),
    (RegValue.string(""), '"V"=""'),
])
def test_write_value_forms(value, expected):
    lines = format_regfile(_one_value_model("V", value)).split("\r\n")
    assert lines[3] == expected


def test_write_deletions():
    regfile = RegFile(keys=[KeySection(KEY + "\\Old", delete=True),
                            KeySection(KEY, values=[ValueEntry("Gone", None), ValueEntry("", None)])])
    assert format_regfile(regfile) == (V5 + f"[-{KEY}\\Old]\r\n\r\n[{KEY}]\r\n\"Gone\"=-\r\n@=-\r\n\r\n")


def test_write_regedit4_cp950():
    model = _one_value_model("名稱", RegValue.string("資料"))
    model.set_value(KEY, "Path", RegValue.expand_string("%SystemRoot%\\記錄檔"))
    data = encode_regfile(model, version=4)
    text = data.decode("cp950")
    assert text.startswith("REGEDIT4\r\n\r\n")
    assert '"名稱"="資料"\r\n' in text
    expected = ",".join(f"{byte:02x}" for byte in "%SystemRoot%\\記錄檔\0".encode("cp950"))
    assert f'"Path"=hex(2):{expected}\r\n' in text


def test_write_regedit4_rejects_unencodable():
    model = _one_value_model("Emoji", RegValue.string("smile \U0001F600"))
    with pytest.raises(InputError) as caught:
        encode_regfile(model, version=4)
    assert caught.value.key == "regfile.write.not_encodable"
    assert "\U0001F600" in str(caught.value)
    assert KEY in str(caught.value)


def test_write_regedit4_rejects_odd_utf16():
    model = _one_value_model("Odd", RegValue(REG_EXPAND_SZ, b"\x41"))
    with pytest.raises(InputError) as caught:
        encode_regfile(model, version=4)
    assert caught.value.key == "regfile.write.not_utf16"


def test_write_rejects_line_break_in_name():
    model = _one_value_model("two\nlines", RegValue.dword(1))
    with pytest.raises(InputError) as caught:
        format_regfile(model)
    assert caught.value.key == "regfile.write.line_break"


def test_write_rejects_bad_version():
    with pytest.raises(ValueError):
        format_regfile(RegistryModel(), version=3)


@pytest.mark.parametrize("name", ["version5_utf16le_bom.reg", "regedit4_cp950.reg", "all_value_types.reg",
                                  "names_with_equals.reg", "deletions.reg", "continuation_lines.reg",
                                  "mixed_line_ends.reg", "version5_utf8_bom.reg"])
def test_round_trip_fixture(name, tmp_path):
    original = read_regfile(DATA / name)
    written = write_regfile(tmp_path / name, original)
    again = read_regfile(written)
    assert again.version == original.version
    assert again.problems == []
    assert _entries(again) == _entries(original)


def test_round_trip_across_versions(tmp_path):
    original = read_regfile(DATA / "regedit4_cp950.reg")
    again = read_regfile(write_regfile(tmp_path / "v5.reg", original, version=5))
    assert again.version == 5
    assert _entries(again) == _entries(original)
    back = read_regfile(write_regfile(tmp_path / "v4.reg", again, version=4))
    assert back.version == 4
    assert _entries(back) == _entries(original)


def test_writer_reproduces_layout_fixture():
    """Parse a file written in regedit's export layout and write it back byte for byte.

    The fixture was written for this project in that layout, not exported by regedit: UTF-16LE
    with a byte-order mark, CRLF, a blank line after each key, hex data wrapped at 80 characters
    with a two-space indent. The test checks that the writer keeps this layout, not that regedit
    imports its output.
    """
    raw = (DATA / "version5_utf16le_bom.reg").read_bytes()
    assert encode_regfile(read_regfile(DATA / "version5_utf16le_bom.reg")) == raw


# The registry model.

def test_model_case_insensitive_names():
    model = RegistryModel.from_regfile(read_regfile(DATA / "version5_utf16le_bom.reg"))
    key = "hkey_local_machine\\software\\EXAMPLE\\mailgateway"
    assert model.get(key, "smarthost") == RegValue.string("[192.0.2.25]")
    assert model.has_key(key)
    model.set_value(key, "SMARTHOST", RegValue.string("[192.0.2.26]"))
    assert "SmartHost" in model.values(KEY + "\\MailGateway")
    assert KEY + "\\MailGateway" in model.keys()


def test_model_apply_deletions():
    model = RegistryModel()
    for path in (KEY + "\\Obsolete", KEY + "\\Obsolete\\Child", KEY + "\\Keep"):
        model.set_value(path, "Remove", RegValue.dword(1))
    model.set_value(KEY + "\\Keep", "", RegValue.string("default"))
    model.set_value(KEY + "\\Keep", "Stay", RegValue.dword(2))
    model.apply(read_regfile(DATA / "deletions.reg"))
    assert not model.has_key(KEY + "\\Obsolete")
    assert not model.has_key(KEY + "\\OBSOLETE\\child")
    assert model.values(KEY + "\\Keep") == {"Stay": RegValue.dword(2), "Set": RegValue.string("kept")}


def test_model_creates_parents_inside_tree():
    model = RegistryModel()
    model.create_key(KEY)
    model.create_key(KEY + "\\A\\B\\C")
    assert model.keys() == [KEY, KEY + "\\A", KEY + "\\A\\B", KEY + "\\A\\B\\C"]


def test_model_parents_outside_tree_implied():
    model = RegistryModel()
    model.create_key(KEY + "\\A\\B")
    assert model.keys() == [KEY + "\\A\\B"]
    assert model.has_key(KEY)
    assert model.values(KEY) == {}
    with pytest.raises(KeyError):
        model.values(KEY + "\\Missing")


def test_model_trailing_backslash():
    model = RegistryModel()
    model.set_value(KEY + "\\", "A", RegValue.dword(1))
    assert model.keys() == [KEY]


def test_model_delete_results():
    model = RegistryModel()
    model.set_value(KEY, "A", RegValue.dword(1))
    assert model.delete_value(KEY, "a") is True
    assert model.delete_value(KEY, "a") is False
    assert model.delete_value(KEY + "\\Missing", "a") is False
    assert model.delete_key(KEY) is True
    assert model.delete_key(KEY) is False


def test_model_diff_kinds():
    before = RegistryModel.from_regfile(read_regfile(DATA / "diff_before_change.reg"))
    after = RegistryModel.from_regfile(read_regfile(DATA / "diff_after_change.reg"))
    diff = before.diff(after)
    summary = [(change.kind, change.key.rsplit("\\", 1)[-1], change.name) for change in diff]
    assert summary == [
        ("value_changed", "Terminal Server", "fDenyTSConnections"),
        ("value_added", "Licensing Core", "EnableConcurrentSessions"),
        ("key_removed", "Obsolete", None),
        ("value_removed", "Obsolete", "Old"),
    ]
    assert diff.changes[0].old == RegValue.dword(1)
    assert diff.changes[0].new == RegValue.dword(0)
    assert not diff.equal
    assert before.diff(before.copy()).equal


def test_change_then_rollback():
    original = RegistryModel.from_regfile(read_regfile(DATA / "diff_before_change.reg"))
    target = RegistryModel.from_regfile(read_regfile(DATA / "diff_after_change.reg"))
    change = original.regfile_to(target)
    changed = original.copy().apply(change)
    assert changed == target
    rollback = changed.regfile_to(original)
    assert changed.copy().apply(rollback) == original
    text = format_regfile(change)
    assert f"[-HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\Obsolete]" in text
    assert '"EnableConcurrentSessions"=dword:00000001' in text


def test_rollback_survives_file_round_trip(tmp_path):
    original = RegistryModel.from_regfile(read_regfile(DATA / "diff_before_change.reg"))
    target = RegistryModel.from_regfile(read_regfile(DATA / "diff_after_change.reg"))
    change_file = write_regfile(tmp_path / "change.reg", original.regfile_to(target))
    changed = original.copy().apply(read_regfile(change_file, strict=True))
    rollback_file = write_regfile(tmp_path / "rollback.reg", changed.regfile_to(original))
    assert changed.apply(read_regfile(rollback_file, strict=True)) == original


def test_diff_regfiles_deletions():
    first = read_regfile(DATA / "deletions.reg")
    second = parse_regfile_text(V5 + f"[{KEY}\\Keep]\r\n\"Remove\"=-\r\n\"Set\"=\"changed\"\r\n")
    diff = diff_regfiles(first, second)
    summary = [(change.kind, change.name) for change in diff]
    assert ("value_changed", "Set") in summary
    assert ("deletion_removed", None) in summary
    assert ("deletion_removed", "") in summary
    assert ("deletion_removed", "RemoveWithSpaces") in summary
    assert ("deletion_removed", "Remove") not in summary
    assert diff_regfiles(first, first).equal


def _one_value_model(name: str, value: RegValue) -> RegistryModel:
    model = RegistryModel()
    model.set_value(KEY, name, value)
    return model


def _entries(regfile: RegFile) -> list[tuple[str, bool, list[tuple[str, RegValue | None]]]]:
    return [(section.path, section.delete, [(entry.name, entry.value) for entry in section.values])
            for section in regfile.keys]
