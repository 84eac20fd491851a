"""Write .reg files in the layout that regedit uses for its exports.

Layout: the header, a blank line, then for each key a `[KEY]` line, its `"name"=data` lines and a
blank line; CRLF line ends. Version 5 files are UTF-16LE with a byte-order mark; REGEDIT4 files
are ANSI in the given code page (cp950 by default). Hex data wraps with `,\\` and continues on
lines indented by two spaces, at most 80 characters a line, which gives 25 bytes a continuation
line. The headers, the blank line before each key and the value syntax are those that Microsoft
KB 310516 describes.
NOTE: that article does not give the 80-character wrap or the indent, and no test imports a written
file with regedit or compares it with a file regedit exported. So the wrap, and whether regedit
reads back every file written here unchanged, are unconfirmed.

Where regedit's own export would lose bytes, this writer keeps them. A REG_SZ whose data is not
plain text with one terminator (embedded NUL, no terminator, a line break, odd length) is written
as `hex(1):` instead of a quoted string. A REG_DWORD that is not 4 bytes is written as `hex(4):`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from adminkb.errors import InputError
from adminkb.regfile.document import HEADERS, RegFile, display_name
from adminkb.regfile.decode import resolve_code_page
from adminkb.regfile.parse import ANSI_HEX_TYPES
from adminkb.regfile.values import REG_BINARY, REG_DWORD, REG_SZ, UTF16, RegValue

if TYPE_CHECKING:
    from adminkb.regfile.model import RegistryModel

log = logging.getLogger("adminkb.regfile")

CRLF = "\r\n"
LINE_WIDTH = 80
CONTINUATION_INDENT = "  "


def format_regfile(source: RegFile | RegistryModel, *, version: int | None = None,
                   code_page: str | None = None) -> str:
    """Return the text of a .reg file (CRLF line ends, no byte-order mark).

    `version` is 5 or 4 (default: the file's own version, 5 for a model). `code_page` is the ANSI
    code page for REGEDIT4 (default: the file's, else cp950). Raises InputError when a key or
    value cannot be written: a line break in a name, or REGEDIT4 text the code page cannot encode.
    """
    regfile = _as_regfile(source)
    version = version or regfile.version
    if version not in HEADERS:
        raise ValueError(f".reg version must be 4 or 5, got {version!r}")
    code_page = resolve_code_page(code_page or regfile.code_page)
    lines = [HEADERS[version], ""]
    for section in regfile.keys:
        _check_writable(section.path, section.path, None, version, code_page)
        lines.append(f"[{'-' if section.delete else ''}{section.path}]")
        for entry in section.values:
            _check_writable(entry.name, section.path, entry.name, version, code_page)
            lines.extend(_format_value(entry.name, entry.value, section.path, version, code_page))
        lines.append("")
    return CRLF.join(lines) + CRLF


def encode_regfile(source: RegFile | RegistryModel, *, version: int | None = None,
                   code_page: str | None = None) -> bytes:
    """Return the bytes of a .reg file: UTF-16LE with a BOM for version 5, ANSI for REGEDIT4."""
    regfile = _as_regfile(source)
    version = version or regfile.version
    code_page = resolve_code_page(code_page or regfile.code_page)
    text = format_regfile(regfile, version=version, code_page=code_page)
    if version == 5:
        return b"\xff\xfe" + text.encode(UTF16, "surrogatepass")
    return text.encode(code_page)


def write_regfile(path: str | Path, source: RegFile | RegistryModel, *, version: int | None = None,
                  code_page: str | None = None) -> Path:
    """Write a .reg file to `path` (replacing it) and return the path."""
    path = Path(path)
    data = encode_regfile(source, version=version, code_page=code_page)
    path.write_bytes(data)
    log.info("wrote %s (%d bytes)", path, len(data))
    return path


def _as_regfile(source: RegFile | RegistryModel) -> RegFile:
    if isinstance(source, RegFile):
        return source
    return source.to_regfile()


def _check_writable(text: str, key: str, name: str | None, version: int, code_page: str) -> None:
    """Raise InputError when a key path or value name cannot appear on one .reg line."""
    if "\r" in text or "\n" in text:
        raise InputError("regfile.write.line_break", value=text, path=key, name=display_name(name),
                         next_key="regfile.write.line_break_next")
    if not text and name is None:
        raise InputError("regfile.write.empty_key", value=text, next_key="regfile.write.empty_key_next")
    if version == 4:
        _encode_ansi(text, key, name, code_page)


def _encode_ansi(text: str, key: str, name: str | None, code_page: str) -> bytes:
    try:
        return text.encode(code_page)
    except UnicodeEncodeError as error:
        raise InputError("regfile.write.not_encodable", value=text[error.start: error.end], path=key,
                         name=display_name(name), code_page=code_page,
                         next_key="regfile.write.not_encodable_next") from None


def _format_value(name: str, value: RegValue | None, key: str, version: int, code_page: str) -> list[str]:
    """Return the line(s) for one value: `name=` followed by its data, wrapped like regedit."""
    prefix = "@=" if name == "" else f'"{_escape(name)}"='
    if value is None:
        return [prefix + "-"]
    text = _plain_string(value)
    if text is not None:
        if version == 4:
            _encode_ansi(text, key, name, code_page)
        return [f'{prefix}"{_escape(text)}"']
    if value.type == REG_DWORD and len(value.data) == 4:
        return [f"{prefix}dword:{int.from_bytes(value.data, 'little'):08x}"]
    data = value.data
    if version == 4 and value.type in ANSI_HEX_TYPES:
        data = _utf16_to_ansi(value, key, name, code_page)
    kind = "hex" if value.type == REG_BINARY else f"hex({value.type:x})"
    return _wrap_hex(f"{prefix}{kind}:", [f"{byte:02x}" for byte in data])


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _plain_string(value: RegValue) -> str | None:
    """Return the text of a REG_SZ that a quoted string writes exactly, else None."""
    data = value.data
    if value.type != REG_SZ or len(data) < 2 or len(data) % 2 or not data.endswith(b"\0\0"):
        return None
    try:
        text = data[:-2].decode(UTF16)
    except UnicodeDecodeError:
        return None
    if any(character in text for character in "\0\r\n"):
        return None
    return text


def _utf16_to_ansi(value: RegValue, key: str, name: str, code_page: str) -> bytes:
    """Convert UTF-16LE string data to the ANSI bytes REGEDIT4 writes for it."""
    try:
        text = value.data.decode(UTF16)
    except UnicodeDecodeError:
        raise InputError("regfile.write.not_utf16", value=value.type_name, path=key, name=display_name(name),
                         next_key="regfile.write.not_encodable_next") from None
    return _encode_ansi(text, key, name, code_page)


def _wrap_hex(start: str, pieces: list[str]) -> list[str]:
    """Lay out hex bytes after `start`, breaking lines as regedit's export does."""
    lines: list[str] = []
    line = start
    on_line = 0
    for index, piece in enumerate(pieces):
        # Reserve room for this byte, its comma and a possible continuation backslash.
        if on_line and len(line) + len(piece) + 2 > LINE_WIDTH:
            lines.append(line + "\\")
            line, on_line = CONTINUATION_INDENT, 0
        line += piece + ("," if index < len(pieces) - 1 else "")
        on_line += 1
    lines.append(line)
    return lines
