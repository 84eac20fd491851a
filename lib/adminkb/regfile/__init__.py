"""Read, write, compare and apply Windows .reg files (REGEDIT4 and version 5.00), byte-exact.

`read_regfile` parses a file into a `RegFile`: key sections, values, and the problems regedit
would skip. `write_regfile` writes one in regedit's export layout. `RegistryModel` applies files
to an in-memory registry, so that a change and its rollback can be checked before use.
"""

from adminkb.regfile.document import (
    DEFAULT_CODE_PAGE, HEADER_V4, HEADER_V5, KeySection, Problem, RegFile, ValueEntry, display_name,
)
from adminkb.regfile.model import Change, RegDiff, RegistryModel, diff_regfiles, fold
from adminkb.regfile.decode import resolve_code_page
from adminkb.regfile.parse import ROOT_KEYS, parse_regfile_bytes, parse_regfile_text, read_regfile
from adminkb.regfile.values import (
    REG_BINARY, REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ, REG_FULL_RESOURCE_DESCRIPTOR, REG_LINK,
    REG_MULTI_SZ, REG_NONE, REG_QWORD, REG_RESOURCE_LIST, REG_RESOURCE_REQUIREMENTS_LIST, REG_SZ,
    TYPE_NAMES, RegValue, type_name,
)
from adminkb.regfile.write import encode_regfile, format_regfile, write_regfile

__all__ = [
    "DEFAULT_CODE_PAGE", "HEADER_V4", "HEADER_V5", "ROOT_KEYS", "TYPE_NAMES",
    "REG_NONE", "REG_SZ", "REG_EXPAND_SZ", "REG_BINARY", "REG_DWORD", "REG_DWORD_BIG_ENDIAN", "REG_LINK",
    "REG_MULTI_SZ", "REG_RESOURCE_LIST", "REG_FULL_RESOURCE_DESCRIPTOR", "REG_RESOURCE_REQUIREMENTS_LIST",
    "REG_QWORD",
    "Change", "KeySection", "Problem", "RegDiff", "RegFile", "RegValue", "RegistryModel", "ValueEntry",
    "diff_regfiles", "display_name", "encode_regfile", "fold", "format_regfile", "parse_regfile_bytes",
    "parse_regfile_text", "read_regfile", "resolve_code_page", "type_name", "write_regfile",
]
