"""Computer names from a pattern, and one sysprep.inf a machine.

sysprep.inf contains one fixed ComputerName or `*`, and every machine restored from an image reads
the same file. To name machines TPE-ACC-01, TPE-ACC-02 and so on, the technician generates one
answer file a machine from the same form and copies each into C:\\Sysprep\\sysprep.inf of its
machine after the restore, before Mini-Setup runs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from adminkb.errors import InputError
from adminkb.imaging.sysprep import netbios_length
from adminkb.imaging.sysprep_form import SysprepForm, check_computer_name, generate_sysprep, write_sysprep

MAX_DIGITS = 6
# More machines than one image build plausibly covers. The limit keeps a typing mistake in the
# range from writing a million folders.
MAX_MACHINES = 5000


@dataclass(frozen=True)
class ComputerNamePattern:
    """A prefix and a number range that give one computer name a machine, such as TPE-ACC-01 to TPE-ACC-30.

    Numbers are padded with zeros to `digits` digits.
    """

    prefix: str
    first: int = 1
    last: int = 1
    digits: int = 2

    def names(self) -> list[str]:
        """Return the names in number order. Raises InputError when the pattern or a name is unusable."""
        prefix = self.prefix.strip()
        if not prefix:
            raise InputError("imaging_names.prefix_empty", value=self.prefix, next_key="imaging_names.prefix_next")
        if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in prefix):
            raise InputError("imaging_names.prefix_control", value=prefix.encode("unicode_escape").decode("ascii"),
                             next_key="imaging_names.prefix_next")
        if not 1 <= self.digits <= MAX_DIGITS:
            raise InputError("imaging_names.bad_digits", value=self.digits, maximum=MAX_DIGITS)
        if not 0 <= self.first <= self.last:
            raise InputError("imaging_names.bad_range", value=f"{self.first}-{self.last}",
                             next_key="imaging_names.bad_range_next")
        if self.last >= 10 ** self.digits:
            raise InputError("imaging_names.too_few_digits", value=self.last, digits=self.digits,
                             next_key="imaging_names.too_few_digits_next")
        count = self.last - self.first + 1
        if count > MAX_MACHINES:
            raise InputError("imaging_names.too_many", value=count, maximum=MAX_MACHINES)
        names = [f"{prefix}{number:0{self.digits}d}" for number in range(self.first, self.last + 1)]
        # Every name has the prefix's characters and the same number of digits, so the first
        # name shows any problem that the others have.
        check_computer_name(names[0])
        return names


def name_rows(names: Sequence[str]) -> list[dict[str, object]]:
    """Return one row a name: the name and its length in cp950 bytes, for a table."""
    return [{"computer_name": name, "bytes": netbios_length(name)} for name in names]


def generate_sysprep_files(form: SysprepForm, names: Sequence[str]) -> dict[str, str]:
    """Return the sysprep.inf text for each name, with the form's other answers unchanged."""
    return {name: generate_sysprep(replace(form, computer_name=name)) for name in names}


def write_sysprep_files(form: SysprepForm, names: Sequence[str], folder: str | Path) -> list[Path]:
    """Write `<folder>/<name>/sysprep.inf` for each name (atomically, one by one) and return the paths.

    Every file is generated before the first is written, so a bad value writes nothing.
    """
    texts = generate_sysprep_files(form, names)
    paths = []
    for name in texts:
        machine_folder = Path(folder) / name
        machine_folder.mkdir(parents=True, exist_ok=True)
        paths.append(write_sysprep(replace(form, computer_name=name), machine_folder / "sysprep.inf"))
    return paths
