"""The parsed form of a .reg file: key sections in file order, their values, and the problems found.

A `Problem` is one line that regedit would skip (a bad value, a key it cannot open, a line it does
not understand). The reader records problems and goes on, so a bad value does not hide the good
ones around it. Strict reading raises the first problem as `InputError` instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.regfile.values import RegValue

HEADER_V5 = "Windows Registry Editor Version 5.00"
HEADER_V4 = "REGEDIT4"
HEADERS = {5: HEADER_V5, 4: HEADER_V4}

# The ANSI code page of Traditional Chinese Windows, used for REGEDIT4 files unless the caller gives another.
DEFAULT_CODE_PAGE = "cp950"


@dataclass
class ValueEntry:
    """One `"name"=data` line. `name` is "" for the default value (`@`), and a None `value` means `=-`."""

    name: str
    value: RegValue | None
    line: int = 0

    @property
    def is_deletion(self) -> bool:
        return self.value is None


@dataclass
class KeySection:
    """A `[KEY]` line with the values under it, or a `[-KEY]` deletion (which has no values)."""

    path: str
    delete: bool = False
    values: list[ValueEntry] = field(default_factory=list)
    line: int = 0


@dataclass(frozen=True)
class Problem:
    """One thing regedit would not import, with the catalog code that explains it.

    `code` names the messages `regfile.problem.<code>` (what is wrong) and
    `regfile.problem.<code>_next` (what to do). `details` fill their placeholders, with `path`
    (the key) and `name` (the value name) always available.
    """

    code: str
    line: int
    source: str
    key: str | None = None
    name: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def message_key(self) -> str:
        return f"regfile.problem.{self.code}"

    @property
    def next_key(self) -> str:
        return f"regfile.problem.{self.code}_next"

    def _values(self) -> dict[str, str]:
        return {"path": self.key or "", "name": display_name(self.name), **self.details}

    def where(self) -> str:
        """Return the file, line, key and value name, in the user's language."""
        parts = [message("regfile.where.line", file=self.source, line=self.line)]
        if self.key:
            parts.append(message("regfile.where.key", path=self.key))
        if self.name is not None:
            parts.append(message("regfile.where.value", name=display_name(self.name)))
        return "".join(parts)

    def text(self) -> str:
        return message(self.message_key, **self._values())

    def next_step(self) -> str:
        return message(self.next_key, **self._values())

    def describe(self) -> str:
        """Return where, what is wrong and the next step, on two lines."""
        return "\n".join([message("regfile.problem_text", where=self.where(), text=self.text()),
                          message("errors.next_step", step=self.next_step())])

    def to_error(self) -> InputError:
        return InputError(self.message_key, value=self.details.get("text"), where=self.where(),
                          next_key=self.next_key, **self._values())

    def to_dict(self) -> dict[str, object]:
        return {"line": self.line, "key": self.key, "name": self.name, "code": self.code,
                "message": self.text(), "next_step": self.next_step()}


def display_name(name: str | None) -> str:
    """Return a value name as the user reads it: `@` (the default value) for ""."""
    if name is None:
        return ""
    return message("regfile.default_value_name") if name == "" else name


@dataclass
class RegFile:
    """A parsed .reg file: its header version, key sections in file order, and problems.

    `encoding` is how the file's text was decoded. `code_page` is the ANSI code page used for
    REGEDIT4 string data written as hex bytes.
    """

    version: int = 5
    keys: list[KeySection] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    source: str = "<memory>"
    encoding: str = "utf-16-le"
    code_page: str = DEFAULT_CODE_PAGE

    @property
    def header(self) -> str:
        return HEADERS[self.version]

    def entries(self) -> Iterator[tuple[KeySection, ValueEntry]]:
        """Yield every value line with the key section it belongs to, in file order."""
        for section in self.keys:
            for entry in section.values:
                yield section, entry

    @property
    def value_count(self) -> int:
        return sum(len(section.values) for section in self.keys)
