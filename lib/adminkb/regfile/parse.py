"""Read .reg files the way regedit imports them, keeping every value byte-exact.

`adminkb.regfile.decode` describes the accepted encodings. REGEDIT4 text is read in the code
page given by `encoding` (cp950 by default). REGEDIT4 stores REG_SZ, REG_EXPAND_SZ and
REG_MULTI_SZ hex data as ANSI bytes. The reader converts them to the UTF-16LE bytes the registry
stores, as a Unicode regedit does on import.

The line rules follow what regedit accepts, as recorded by Wine's regedit conformance tests (which
run against Windows): `;` and `#` start comment lines, but after data only `;` starts a comment;
whitespace may surround `=`; a trailing `\\` continues hex data only after a comma, and the next
line that is not blank or a `;` comment is joined to it, whatever it holds.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from adminkb.errors import InputError, os_error_text
from adminkb.regfile.decode import Line, check_header, decode_file, resolve_code_page, snippet, split_text
from adminkb.regfile.document import KeySection, Problem, RegFile, ValueEntry, display_name
from adminkb.regfile.values import (
    REG_BINARY, REG_EXPAND_SZ, REG_MULTI_SZ, REG_SZ, RegValue, encode_utf16,
)

log = logging.getLogger("adminkb.regfile")

ROOT_KEYS = ("HKEY_LOCAL_MACHINE", "HKEY_CURRENT_USER", "HKEY_CLASSES_ROOT", "HKEY_USERS",
             "HKEY_CURRENT_CONFIG")
# reg.exe accepts these short names but regedit does not, so a .reg file must spell the root out.
ROOT_ABBREVIATIONS = {"HKLM": "HKEY_LOCAL_MACHINE", "HKCU": "HKEY_CURRENT_USER",
                      "HKCR": "HKEY_CLASSES_ROOT", "HKU": "HKEY_USERS", "HKCC": "HKEY_CURRENT_CONFIG"}

# Hex data of these types is text, which REGEDIT4 writes as ANSI bytes.
ANSI_HEX_TYPES = frozenset({REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ})

_BLANKS = " \t"
_HEX_TYPE = re.compile(r"hex\(([0-9A-Fa-f]{1,8})\):")
_HEX_DIGITS = set("0123456789abcdefABCDEF")


def read_regfile(path: str | Path, *, encoding: str | None = None, strict: bool = False) -> RegFile:
    """Read and parse the .reg file at `path`.

    `encoding` is the ANSI code page for REGEDIT4 files (default cp950). Raises InputError when
    the file cannot be used at all (missing, empty, binary, no or unknown header). With `strict`
    it also raises InputError for the first bad value, which otherwise goes to `RegFile.problems`.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        log.info("cannot read %s: %s", path, error)
        raise InputError("regfile.file.unreadable", value=str(path), reason=os_error_text(error),
                         next_key="regfile.file.unreadable_next") from error
    return parse_regfile_bytes(raw, source=str(path), encoding=encoding, strict=strict)


def parse_regfile_bytes(raw: bytes, *, source: str = "<memory>", encoding: str | None = None,
                        strict: bool = False) -> RegFile:
    """Parse the bytes of a .reg file, with the arguments and errors of `read_regfile`."""
    code_page = resolve_code_page(encoding)
    lines, text_encoding, truncated = decode_file(raw, source, code_page)
    version = check_header(lines[0], source)
    regfile = _Parser(lines, version=version, source=source, encoding=text_encoding,
                      code_page=code_page).parse()
    if truncated:
        regfile.problems.append(Problem("utf16_truncated", lines[-1].number, source))
    return _finish(regfile, strict)


def parse_regfile_text(text: str, *, source: str = "<memory>", code_page: str | None = None,
                       strict: bool = False) -> RegFile:
    """Parse .reg text that is already decoded (the header must be its first line)."""
    code_page = resolve_code_page(code_page)
    lines = split_text(text.lstrip("\ufeff"))
    version = check_header(lines[0], source)
    regfile = _Parser(lines, version=version, source=source, encoding="text", code_page=code_page).parse()
    return _finish(regfile, strict)


def _finish(regfile: RegFile, strict: bool) -> RegFile:
    log.debug("parsed %s: version %d, %d keys, %d values, %d problems", regfile.source, regfile.version,
              len(regfile.keys), regfile.value_count, len(regfile.problems))
    if regfile.problems:
        log.info("%s has %d lines that regedit would skip", regfile.source, len(regfile.problems))
        if strict:
            raise regfile.problems[0].to_error()
    return regfile


def _rest_problem(rest: str) -> str | None:
    """Return the problem code for text after the data, or None when it is blank or a `;` comment."""
    rest = rest.lstrip(_BLANKS)
    if not rest or rest.startswith(";"):
        return None
    return "hash_comment" if rest.startswith("#") else "text_after_data"


def _scan_quoted(text: str, start: int) -> tuple[str | None, int, str | None]:
    """Read the quoted string at `text[start]` and return (value, index after it, problem kind).

    Inside quotes only `\\\\` and `\\"` are escapes, and `;` or `#` is plain text.
    """
    out: list[str] = []
    index = start + 1
    while index < len(text):
        character = text[index]
        if character == "\\":
            following = text[index + 1: index + 2]
            if following in ("\\", '"'):
                out.append(following)
                index += 2
                continue
            if not following:
                return None, index, "unterminated"
            return None, index, "bad_escape"
        if character == '"':
            return "".join(out), index + 1, None
        out.append(character)
        index += 1
    return None, index, "unterminated"


class _Parser:
    """Walk the lines once, letting a hex value read its continuation lines."""

    def __init__(self, lines: list[Line], *, version: int, source: str, encoding: str, code_page: str) -> None:
        self.lines = lines
        self.position = 1
        self.result = RegFile(version=version, source=source, encoding=encoding, code_page=code_page)
        self.section: KeySection | None = None
        # "none" before any key, then "ok", "deleted" ([-KEY]) or "invalid" (a key regedit skips).
        self.state = "none"

    def parse(self) -> RegFile:
        while self.position < len(self.lines):
            line = self.lines[self.position]
            self.position += 1
            self._parse_line(line)
        return self.result

    def _problem(self, code: str, line: int, *, name: str | None = None, key: str | None = None,
                 **details: str) -> None:
        if key is None and self.section is not None and self.state != "invalid":
            key = self.section.path
        fields = {field: str(value) for field, value in details.items()}
        self.result.problems.append(Problem(code, line, self.result.source, key=key, name=name, details=fields))

    def _parse_line(self, line: Line) -> None:
        text = line.text.lstrip(_BLANKS)
        if not text or text[0] in ";#":
            return
        if not line.decoded:
            self._problem("line_not_decodable", line.number, encoding=self.result.code_page)
            if text[0] == "[":
                self._start_invalid_section()
            return
        if text[0] == "[":
            self._parse_key(line, text)
        elif text[0] in '"@':
            self._parse_value(line, text)
        else:
            self._problem("line_not_understood", line.number, text=snippet(text))

    def _start_invalid_section(self) -> None:
        self.section = None
        self.state = "invalid"

    def _parse_key(self, line: Line, text: str) -> None:
        body = text[1:]
        delete = body.startswith("-")
        if delete:
            body = body[1:]
        end = body.rfind("]")
        if body[:1] in (" ", "\t"):
            self._problem("key_space_after_bracket", line.number, key="", text=snippet(text))
            return self._start_invalid_section()
        if end < 0:
            self._problem("key_unterminated", line.number, key="", text=snippet(text))
            return self._start_invalid_section()
        path = body[:end]
        if not path:
            self._problem("key_empty", line.number, key="")
            return self._start_invalid_section()
        root = path.split("\\", 1)[0]
        if root.upper() not in ROOT_KEYS:
            full = ROOT_ABBREVIATIONS.get(root.upper())
            code = "key_abbreviated_root" if full else "key_unknown_root"
            self._problem(code, line.number, key=path, root=root, full=full or "")
            return self._start_invalid_section()
        self.section = KeySection(path, delete=delete, line=line.number)
        self.state = "deleted" if delete else "ok"
        self.result.keys.append(self.section)
        rest_code = _rest_problem(body[end + 1:])
        if rest_code:
            self._problem("text_after_key", line.number, text=snippet(body[end + 1:]))

    def _parse_value(self, line: Line, text: str) -> None:
        if text[0] == "@":
            name, index = "", 1
        else:
            name, index, kind = _scan_quoted(text, 0)
            if kind is not None:
                self._problem(f"name_{kind}", line.number, text=snippet(text))
                return
        index = len(text) - len(text[index:].lstrip(_BLANKS))
        if text[index: index + 1] != "=":
            self._problem("missing_equals", line.number, name=name, text=snippet(text))
            return
        ok, value = self._parse_data(line, text[index + 1:].lstrip(_BLANKS), name)
        if not ok:
            return
        if self.state == "none":
            self._problem("value_before_key", line.number, name=name)
        elif self.state == "invalid":
            self._problem("value_skipped_bad_key", line.number, name=name)
        elif self.state == "deleted":
            self._problem("value_under_key_deletion", line.number, name=name)
        else:
            assert self.section is not None
            self.section.values.append(ValueEntry(name, value, line.number))

    def _parse_data(self, line: Line, data: str, name: str) -> tuple[bool, RegValue | None]:
        """Parse what follows `=` and return (ok, value), where a None value is a deletion (`=-`)."""
        number = line.number
        if not data or data[0] in ";#":
            self._problem("data_missing", number, name=name)
            return False, None
        if data[0] == "-":
            code = _rest_problem(data[1:])
            if code:
                self._problem(code, number, name=name, text=snippet(data[1:]))
                return False, None
            return True, None
        if data[0] == '"':
            return self._parse_string(number, data, name)
        if data.startswith("dword:"):
            return self._parse_dword(number, data[len("dword:"):], name)
        if data.startswith("hex:"):
            return self._parse_hex(number, REG_BINARY, data[len("hex:"):], name)
        match = _HEX_TYPE.match(data)
        if match:
            return self._parse_hex(number, int(match.group(1), 16), data[match.end():], name)
        if data.startswith("hex("):
            self._problem("hex_type_invalid", number, name=name, text=snippet(data.split(":", 1)[0]))
            return False, None
        self._problem("unknown_data_type", number, name=name, text=snippet(data))
        return False, None

    def _parse_string(self, number: int, data: str, name: str) -> tuple[bool, RegValue | None]:
        text, end, kind = _scan_quoted(data, 0)
        if kind == "unterminated":
            self._problem("string_unterminated", number, name=name, text=snippet(data))
            return False, None
        if kind == "bad_escape":
            self._problem("string_bad_escape", number, name=name, text=data[end: end + 2])
            return False, None
        code = _rest_problem(data[end:])
        if code:
            self._problem(code, number, name=name, text=snippet(data[end:]))
            return False, None
        assert text is not None
        return True, RegValue.string(text)

    def _parse_dword(self, number: int, body: str, name: str) -> tuple[bool, RegValue | None]:
        body = body.lstrip(_BLANKS)
        digits = re.split(r"[ \t;]", body, maxsplit=1)[0]
        rest = body[len(digits):]
        if digits[:2] in ("0x", "0X"):
            self._problem("dword_prefix", number, name=name, text=digits)
            return False, None
        if not digits:
            self._problem("dword_empty", number, name=name)
            return False, None
        if any(character not in _HEX_DIGITS for character in digits):
            code = "hash_comment" if "#" in digits else "dword_not_hex"
            self._problem(code, number, name=name, text=snippet(digits))
            return False, None
        if len(digits) > 8:
            self._problem("dword_too_long", number, name=name, text=digits, count=len(digits))
            return False, None
        code = _rest_problem(rest)
        if code:
            self._problem(code, number, name=name, text=snippet(rest))
            return False, None
        return True, RegValue.dword(int(digits, 16))

    def _parse_hex(self, number: int, type_number: int, body: str, name: str) -> tuple[bool, RegValue | None]:
        segments, problem = self._collect_hex_segments(number, body, name)
        if problem is not None:
            self._problem(problem[0], problem[1], name=name, **problem[2])
            return False, None
        data = bytearray()
        for segment_line, token in _hex_tokens(segments):
            code = _check_hex_token(token)
            if code is not None:
                self._problem(code, segment_line, name=name, text=token.strip(_BLANKS))
                return False, None
            data.append(int(token, 16))
        if self.result.version == 4 and type_number in ANSI_HEX_TYPES:
            # NOTE: regedit may also append a missing terminator here. The bytes are kept as written.
            try:
                text = bytes(data).decode(self.result.code_page)
            except UnicodeDecodeError:
                self._problem("ansi_bytes_invalid", number, name=name, encoding=self.result.code_page)
                return False, None
            return True, RegValue(type_number, encode_utf16(text))
        return True, RegValue(type_number, bytes(data))

    def _collect_hex_segments(self, number: int, body: str,
                              name: str) -> tuple[list[tuple[int, str]], tuple[str, int, dict] | None]:
        """Follow `\\` continuations and return [(line, text)] with the first problem as (code, line, details)."""
        segments: list[tuple[int, str]] = []
        problem: tuple[str, int, dict] | None = None
        current_line, current = number, body
        while True:
            data = current.split(";", 1)[0].rstrip(_BLANKS)
            if not data.endswith("\\"):
                segments.append((current_line, data))
                return segments, problem
            before = data[:-1].rstrip(_BLANKS)
            if before and not before.endswith(","):
                # Regedit does not continue such a line, so the next line is read on its own.
                ending = {"text": snippet(before[-8:] + "\\")}
                return segments, problem or ("hex_continuation_without_comma", current_line, ending)
            if not before and segments:
                problem = problem or ("hex_empty_continuation", current_line, {})
            segments.append((current_line, before))
            following = self._next_continuation_line()
            if following is None:
                return segments, problem
            stripped = following.text.lstrip(_BLANKS)
            if stripped[:1] in ('"', "@", "["):
                self._problem("continuation_swallowed", following.number, value=display_name(name),
                              first_line=number, text=snippet(stripped))
            if not following.decoded:
                problem = problem or ("line_not_decodable", following.number, {"encoding": self.result.code_page})
            current_line, current = following.number, stripped

    def _next_continuation_line(self) -> Line | None:
        """Return the line a continuation joins: the next one that is neither blank nor a `;` comment."""
        while self.position < len(self.lines):
            line = self.lines[self.position]
            self.position += 1
            stripped = line.text.strip(_BLANKS)
            if stripped and not stripped.startswith(";"):
                return line
        return None


def _hex_tokens(segments: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Split continued hex text into (line, byte text) pairs, allowing one trailing comma."""
    tokens: list[tuple[int, str]] = []
    for index, (line, text) in enumerate(segments):
        if index == 0 and text == "":
            # Nothing after the colon: empty data, or data that starts on the next line.
            continue
        if text.endswith(","):
            text = text[:-1]
        tokens.extend((line, token) for token in text.split(","))
    return tokens


def _check_hex_token(token: str) -> str | None:
    """Return the problem code for one byte of hex data, or None when it is two hex digits."""
    token = token.strip(_BLANKS)
    if not token:
        return "hex_empty_byte"
    if "#" in token:
        return "hash_comment"
    if any(character not in _HEX_DIGITS for character in token):
        return "hex_not_hex"
    if int(token, 16) > 0xFF:
        return "hex_byte_over_ff"
    if len(token) != 2:
        # NOTE: Wine's regedit also takes one-digit bytes, and Windows' behaviour is not confirmed.
        # Regedit always exports two digits, so a lone digit is reported as a likely typo.
        return "hex_odd_digits"
    return None
