"""A pandas table of check results that reports the problems it lists to a recorded run."""

from __future__ import annotations

import pandas as pd

from adminkb.findings import finding_bundle


class FindingTable(pd.DataFrame):
    """A DataFrame shown as usual, whose display also lists `problems` for `adminkb run` (see `adminkb.findings`).

    A table derived from it (a filtered copy, say) is a plain DataFrame again, because its rows
    may no longer include the problems.
    """

    _metadata = ["problems"]
    problems: tuple[str, ...] = ()

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, object]:
        return finding_bundle(self.problems)


def finding_table(frame: pd.DataFrame, problems: list[str]) -> FindingTable:
    """Return `frame` as a FindingTable that lists `problems`."""
    table = FindingTable(frame)
    table.problems = tuple(problems)
    return table
