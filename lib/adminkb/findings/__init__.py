"""Problems that a runbook's checks found on a real server, for the record of `adminkb run`.

A check result that found a problem (an SMTP probe, a diagnosis, a DNS check table, a security
audit table) adds a `FINDING_MIME` entry to its notebook display: a JSON object that lists the
problems in the user's language. JupyterLab and the HTML pages show the result's HTML and skip
this entry. `adminkb.recorder` reads it and marks the step "found problems".

Only runbooks aimed at a real server report. `adminkb.target.open_target` and
`adminkb.securitylab.open_security_target` switch reporting on for a real server and off for
the mail lab, whose runbooks stage faults on purpose to show them. Outside a runbook (the
command line, a script) nothing is displayed, so this has no effect there.
"""

from __future__ import annotations

from collections.abc import Iterable

FINDING_MIME = "application/vnd.adminkb.finding+json"

_reporting = False


def report_findings(enabled: bool) -> None:
    """Switch on (for a real server) or off (for the lab) the finding entry of displayed check results."""
    global _reporting
    _reporting = bool(enabled)


def reporting() -> bool:
    """Return whether displayed check results add their problems to the notebook output."""
    return _reporting


def finding_bundle(problems: Iterable[str]) -> dict[str, object]:
    """Return the display entry that lists `problems`, or an empty dict when there are none or reporting is off.

    A result's `_repr_mimebundle_` returns this; IPython adds the result's HTML and text forms.
    """
    listed = [problem for problem in problems if problem]
    if not _reporting or not listed:
        return {}
    return {FINDING_MIME: {"problems": listed}}


def problems_in_output(output: dict) -> list[str]:
    """Return the problems a notebook output lists under `FINDING_MIME`, or [] when it lists none."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return []
    entry = output.get("data", {}).get(FINDING_MIME)
    if not isinstance(entry, dict):
        return []
    problems = entry.get("problems")
    if not isinstance(problems, list):
        return []
    return [str(problem) for problem in problems]
