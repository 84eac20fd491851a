"""A small registry model (keys and their values) that .reg files apply to, and diffs between models.

Key paths and value names compare case-insensitively, as Windows does, and keep the spelling they
were first written with. The model exists so that a change can be checked before it touches a real
machine: build it from an export, apply the change file, compare, then apply the rollback file and
check that the original comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adminkb.regfile.document import KeySection, RegFile, ValueEntry
from adminkb.regfile.values import RegValue


def fold(name: str) -> str:
    """Return the case-insensitive form of a key or value name.

    Windows upper-cases character by character, so letters whose upper case is longer (German ß)
    stay as they are instead of following Python's full case folding.
    """
    out = []
    for character in name:
        upper = character.upper()
        out.append(upper if len(upper) == 1 else character)
    return "".join(out)


def _normalise_path(path: str) -> str:
    # Regedit opens `[A\B\]` as `A\B`.
    return path.rstrip("\\") or path


@dataclass
class _Key:
    path: str
    values: dict[str, tuple[str, RegValue]] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One difference between two models. `name` is None for key changes and "" for the default value."""

    kind: str
    key: str
    name: str | None = None
    old: RegValue | None = None
    new: RegValue | None = None


KIND_ORDER = ("key_removed", "key_added", "value_removed", "value_added", "value_changed",
              "deletion_removed", "deletion_added")


@dataclass
class RegDiff:
    """The changes that turn one model (or .reg file) into another, sorted by key and value name."""

    changes: list[Change] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.changes

    def __iter__(self):
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)


class RegistryModel:
    """Registry keys and values in memory, with `apply` following regedit's import rules."""

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}

    @classmethod
    def from_regfile(cls, regfile: RegFile) -> RegistryModel:
        """Build a model from a parsed file, usually an export (values with problems are skipped)."""
        return cls().apply(regfile)

    def copy(self) -> RegistryModel:
        other = RegistryModel()
        for folded, key in self._keys.items():
            other._keys[folded] = _Key(key.path, dict(key.values))
        return other

    def keys(self) -> list[str]:
        """Return the key paths in the order they were created, with their first spelling."""
        return [key.path for key in self._keys.values()]

    def has_key(self, path: str) -> bool:
        """Tell whether the key exists, either recorded or as the parent of a recorded key."""
        folded = fold(_normalise_path(path))
        if folded in self._keys:
            return True
        prefix = folded + "\\"
        return any(other.startswith(prefix) for other in self._keys)

    def values(self, path: str) -> dict[str, RegValue]:
        """Return {value name: value} for a key, or raise KeyError when the key does not exist."""
        key = self._keys.get(fold(_normalise_path(path)))
        if key is None:
            if self.has_key(path):
                return {}
            raise KeyError(path)
        return {name: value for name, value in key.values.values()}

    def get(self, path: str, name: str) -> RegValue | None:
        """Return one value ("" is the default value), or None when the key or value is missing."""
        key = self._keys.get(fold(_normalise_path(path)))
        if key is None:
            return None
        found = key.values.get(fold(name))
        return found[1] if found else None

    def create_key(self, path: str) -> None:
        """Create a key as regedit's `[KEY]` does, with the missing parents inside the known tree.

        Regedit creates every missing parent. The model records the missing parents below the
        nearest recorded ancestor. When no ancestor is recorded (the model contains another
        branch, or nothing), it records only the key itself. NOTE: so a model built from an export of
        `A\\B` never lists `A` as added, and a rollback built from it never deletes `A`.
        """
        path = _normalise_path(path)
        if fold(path) in self._keys:
            return
        parts = path.split("\\")
        for depth in range(len(parts) - 1, 0, -1):
            if fold("\\".join(parts[:depth])) in self._keys:
                for missing in range(depth + 1, len(parts)):
                    parent = "\\".join(parts[:missing])
                    self._keys[fold(parent)] = _Key(parent)
                break
        self._keys[fold(path)] = _Key(path)

    def delete_key(self, path: str) -> bool:
        """Delete a key and all its subkeys, as `[-KEY]` does, and return whether anything existed."""
        folded = fold(_normalise_path(path))
        doomed = [other for other in self._keys if other == folded or other.startswith(folded + "\\")]
        for other in doomed:
            del self._keys[other]
        return bool(doomed)

    def set_value(self, path: str, name: str, value: RegValue) -> None:
        """Set a value (creating the key), replacing type and data but keeping the name's spelling."""
        self.create_key(path)
        key = self._keys[fold(_normalise_path(path))]
        folded = fold(name)
        spelling = key.values[folded][0] if folded in key.values else name
        key.values[folded] = (spelling, value)

    def delete_value(self, path: str, name: str) -> bool:
        """Delete one value, as `"name"=-` does, and return whether it existed."""
        key = self._keys.get(fold(_normalise_path(path)))
        if key is None:
            return False
        return key.values.pop(fold(name), None) is not None

    def apply(self, regfile: RegFile) -> RegistryModel:
        """Apply a parsed .reg file in file order, as regedit imports it, and return this model."""
        for section in regfile.keys:
            if section.delete:
                self.delete_key(section.path)
                continue
            self.create_key(section.path)
            for entry in section.values:
                if entry.value is None:
                    self.delete_value(section.path, entry.name)
                else:
                    self.set_value(section.path, entry.name, entry.value)
        return self

    def to_regfile(self, *, version: int = 5) -> RegFile:
        """Return the model as an export: every key in creation order with its values."""
        regfile = RegFile(version=version, source="<model>")
        for key in self._keys.values():
            regfile.keys.append(KeySection(key.path, values=[ValueEntry(name, value)
                                                             for name, value in key.values.values()]))
        return regfile

    def diff(self, other: RegistryModel) -> RegDiff:
        """Return the changes that turn this model into `other`."""
        changes: list[Change] = []
        for folded in sorted(self._keys.keys() | other._keys.keys()):
            mine, theirs = self._keys.get(folded), other._keys.get(folded)
            if theirs is None:
                assert mine is not None
                changes.append(Change("key_removed", mine.path))
                changes.extend(Change("value_removed", mine.path, name, old=value)
                               for name, value in _sorted_values(mine))
                continue
            if mine is None:
                changes.append(Change("key_added", theirs.path))
                changes.extend(Change("value_added", theirs.path, name, new=value)
                               for name, value in _sorted_values(theirs))
                continue
            changes.extend(_value_changes(mine, theirs))
        return RegDiff(changes)

    def regfile_to(self, target: RegistryModel, *, version: int = 5) -> RegFile:
        """Return a .reg file that turns this model into `target` when applied (a change or rollback).

        Removed keys come first as `[-KEY]` (only the top-most of a removed branch), then one
        section for each key of `target` that is new or has changed values, in `target`'s order.
        """
        regfile = RegFile(version=version, source="<change>")
        after_deletions = self.copy()
        for path in self.keys():
            folded = fold(path)
            if folded in target._keys or folded not in after_deletions._keys:
                continue
            after_deletions.delete_key(path)
            regfile.keys.append(KeySection(path, delete=True))
        for folded, key in target._keys.items():
            existing = after_deletions._keys.get(folded)
            entries: list[ValueEntry] = []
            current = existing.values if existing else {}
            for name_folded, (spelling, _value) in current.items():
                if name_folded not in key.values:
                    entries.append(ValueEntry(spelling, None))
            for name_folded, (spelling, value) in key.values.items():
                if name_folded not in current or current[name_folded][1] != value:
                    entries.append(ValueEntry(spelling, value))
            if existing is None or entries:
                regfile.keys.append(KeySection(key.path, values=entries))
        return regfile

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegistryModel):
            return NotImplemented
        return self.diff(other).equal

    def __repr__(self) -> str:
        count = sum(len(key.values) for key in self._keys.values())
        return f"<RegistryModel {len(self._keys)} keys, {count} values>"


def _sorted_values(key: _Key) -> list[tuple[str, RegValue]]:
    return [key.values[folded] for folded in sorted(key.values)]


def _value_changes(mine: _Key, theirs: _Key) -> list[Change]:
    changes = []
    for folded in sorted(mine.values.keys() | theirs.values.keys()):
        old, new = mine.values.get(folded), theirs.values.get(folded)
        if new is None:
            changes.append(Change("value_removed", mine.path, old[0], old=old[1]))
        elif old is None:
            changes.append(Change("value_added", theirs.path, new[0], new=new[1]))
        elif old[1] != new[1]:
            changes.append(Change("value_changed", theirs.path, new[0], old=old[1], new=new[1]))
    return changes


def _deletions(regfile: RegFile) -> dict[tuple[str, str | None], tuple[str, str | None]]:
    """Return the file's deletion lines as {(folded key, folded name or None): (key, name)}."""
    found: dict[tuple[str, str | None], tuple[str, str | None]] = {}
    for section in regfile.keys:
        path = _normalise_path(section.path)
        if section.delete:
            found.setdefault((fold(path), None), (path, None))
        for entry in section.values:
            if entry.value is None:
                found.setdefault((fold(path), fold(entry.name)), (path, entry.name))
    return found


def diff_regfiles(first: RegFile, second: RegFile) -> RegDiff:
    """Compare two .reg files: the keys and values each one sets, then the deletions each one makes.

    Each file is applied to an empty model for the first part. Deletion lines (`[-KEY]`,
    `"name"=-`) cannot show up in a model, so the files' deletion lines are compared as well.
    """
    diff = RegistryModel.from_regfile(first).diff(RegistryModel.from_regfile(second))
    before, after = _deletions(first), _deletions(second)
    for identity in sorted(before.keys() | after.keys(), key=lambda item: (item[0], item[1] or "")):
        if identity not in after:
            diff.changes.append(Change("deletion_removed", *before[identity]))
        elif identity not in before:
            diff.changes.append(Change("deletion_added", *after[identity]))
    return diff
