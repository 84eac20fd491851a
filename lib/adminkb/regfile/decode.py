"""Turn the bytes of a .reg file into numbered text lines, and check its header.

Regedit itself accepts two kinds of file: UTF-16LE that starts with a byte-order mark (its own
"Windows Registry Editor Version 5.00" export) and ANSI text in the system code page (REGEDIT4
exports, hand-written files). It rejects UTF-16 without a BOM and big-endian UTF-16 with "The
specified file is not a registry script". Editors often save version-5 files as UTF-8, so this
reader also accepts UTF-8 with or without a BOM. NOTE: a user's test reports that current Windows
regedit imports UTF-8 files too. Whether Windows XP's regedit does, and what it makes of non-ASCII
text in them, is not confirmed, so hand out UTF-16LE files with a BOM.

ANSI files are read in the code page the caller gives, cp950 by default on every platform,
because Traditional Chinese Windows writes its ANSI files in cp950.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from adminkb.errors import InputError
from adminkb.regfile.document import DEFAULT_CODE_PAGE, HEADER_V4, HEADER_V5

BOM_UTF16_LE = b"\xff\xfe"
BOM_UTF16_BE = b"\xfe\xff"
BOM_UTF8 = b"\xef\xbb\xbf"

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
_BLANKS = " \t"
_SNIPPET_LENGTH = 40


@dataclass
class Line:
    """One line of the file. `decoded` is False when its bytes were invalid in the code page."""

    number: int
    text: str
    decoded: bool = True


def resolve_code_page(encoding: str | None) -> str:
    """Return Python's codec name for an ANSI code page given as `cp950`, `950` or `big5`.

    Raises InputError for an unknown name or for an encoding that is not ASCII-compatible
    (UTF-16, say), because REGEDIT4 files are ASCII-compatible ANSI text.
    """
    if encoding is None:
        return DEFAULT_CODE_PAGE
    name = encoding.strip()
    if name.isdigit():
        name = f"cp{name}"
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise InputError("regfile.file.unknown_code_page", value=encoding,
                         next_key="regfile.file.unknown_code_page_next") from None
    ascii_compatible = _encode_or_none(HEADER_V4 + "\r\n", info.name) == b"REGEDIT4\r\n"
    if not getattr(info, "_is_text_encoding", True) or not ascii_compatible:
        raise InputError("regfile.file.not_ansi_code_page", value=encoding,
                         next_key="regfile.file.unknown_code_page_next")
    return info.name


def _encode_or_none(text: str, codec: str) -> bytes | None:
    try:
        return text.encode(codec)
    except (UnicodeError, LookupError):
        return None


def decode_file(raw: bytes, source: str, code_page: str) -> tuple[list[Line], str, bool]:
    """Split the file into decoded lines, and return them, the text encoding, and whether UTF-16 was cut short.

    Raises InputError for an empty file, binary data and UTF-16 that regedit rejects.
    """
    if not raw:
        raise InputError("regfile.file.empty", value=source, next_key="regfile.file.not_reg_next")
    if raw.startswith(BOM_UTF16_LE):
        body = raw[len(BOM_UTF16_LE):]
        truncated = len(body) % 2 == 1
        text = body[: len(body) - truncated].decode("utf-16-le", "surrogatepass")
        return split_text(text), "utf-16-le", truncated
    if raw.startswith(BOM_UTF16_BE):
        raise InputError("regfile.file.utf16_big_endian", value=source, next_key="regfile.file.utf16_next")
    if raw.startswith(BOM_UTF8):
        return _decode_lines(raw[len(BOM_UTF8):], "utf-8"), "utf-8-sig", False
    if _looks_like_utf16_without_bom(raw):
        raise InputError("regfile.file.utf16_without_bom", value=source, next_key="regfile.file.utf16_next")
    if b"\0" in raw:
        raise InputError("regfile.file.binary", value=source, next_key="regfile.file.not_reg_next")
    if raw.lstrip(b" \t").startswith(HEADER_V5.encode("ascii")):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            # A version-5 header in a file that is not UTF-8: regedit reads such a file as ANSI.
            return _decode_lines(raw, code_page), code_page, False
        return _decode_lines(raw, "utf-8"), "utf-8", False
    return _decode_lines(raw, code_page), code_page, False


def split_text(text: str) -> list[Line]:
    """Split decoded text at CRLF, LF or CR (regedit takes all three) into numbered lines."""
    return [Line(number, line) for number, line in enumerate(LINE_BREAK.split(text), 1)]


def _looks_like_utf16_without_bom(raw: bytes) -> bool:
    """Tell UTF-16 text (every other byte NUL for ASCII) from other binary data."""
    if len(raw) < 4:
        return False
    little_endian = raw[0] != 0 and raw[1] == 0 and raw[2] != 0 and raw[3] == 0
    big_endian = raw[0] == 0 and raw[1] != 0 and raw[2] == 0 and raw[3] != 0
    return little_endian or big_endian


def _decode_lines(raw: bytes, codec: str) -> list[Line]:
    # Splitting the bytes is safe for UTF-8 and the ANSI code pages: no multi-byte sequence
    # contains the bytes of CR or LF.
    lines = []
    for number, chunk in enumerate(_LINE_BREAK_BYTES.split(raw), 1):
        try:
            lines.append(Line(number, chunk.decode(codec)))
        except UnicodeDecodeError:
            lines.append(Line(number, chunk.decode(codec, "replace"), decoded=False))
    return lines


def check_header(first: Line, source: str) -> int:
    """Return the header's version (4 or 5), or raise InputError naming what the first line holds.

    Like regedit, leading blanks are allowed and the header text must match exactly, case included.
    """
    header = first.text.strip(_BLANKS)
    if first.decoded and header == HEADER_V5:
        return 5
    if first.decoded and header == HEADER_V4:
        return 4
    if not first.decoded or any(ord(character) < 32 and character != "\t" for character in header):
        raise InputError("regfile.file.binary", value=source, next_key="regfile.file.not_reg_next")
    if header == "REGEDIT":
        raise InputError("regfile.file.win31_header", value=source, next_key="regfile.file.unknown_header_next")
    if header.upper().startswith(("REGEDIT", "WINDOWS REGISTRY EDITOR")):
        raise InputError("regfile.file.unknown_header", value=source, header=snippet(header),
                         next_key="regfile.file.unknown_header_next")
    raise InputError("regfile.file.no_header", value=source, header=snippet(header),
                     next_key="regfile.file.not_reg_next")


def snippet(text: str) -> str:
    """Return `text` stripped and cut to a length that fits in a message."""
    text = text.strip()
    return text if len(text) <= _SNIPPET_LENGTH else text[: _SNIPPET_LENGTH - 1] + "…"
