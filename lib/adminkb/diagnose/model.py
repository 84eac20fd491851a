"""The diagnosis result: one row per check, the most likely cause, and the exit status per outcome class."""

from __future__ import annotations

from dataclasses import dataclass, field

from adminkb.findings import finding_bundle
from adminkb.i18n import message

OK = "ok"
WARNING = "warning"
PROBLEM = "problem"
# The check ran but could not decide, such as an MX lookup that got no usable answer.
UNKNOWN = "unknown"
SKIPPED = "skipped"
NOT_RUN = "not_run"
VERDICTS = (OK, WARNING, PROBLEM, UNKNOWN, SKIPPED, NOT_RUN)

# Outcome classes and their exit statuses, as `adminkb diagnose --help` documents them.
CONNECTION = "connection"
RELAY = "relay"
QUEUE = "queue"
DNS = "dns"
CONFIGURATION = "configuration"
EXIT_OK = 0
EXIT_WARNINGS = 1
EXIT_INPUT = 2
EXIT_CODES = {CONNECTION: 10, RELAY: 11, QUEUE: 12, DNS: 13, CONFIGURATION: 14}

# The checks in the order they run: each needs the ones before it that it names in `requires`.
STEP_ORDER = ("connect", "banner", "ehlo", "relay", "send_test", "config", "pickup", "queue", "drop", "badmail",
              "log", "dns", "outbound", "smart_host")
# Which failed check most likely explains the others: causes come before symptoms, so a Smart Host
# that does not answer outranks the Queue that grows because of it.
CAUSE_PRIORITY = ("connect", "banner", "ehlo", "relay", "send_test", "pickup", "drop", "smart_host", "outbound",
                  "dns", "config", "queue", "badmail", "log")
STEP_CLASSES = {"connect": CONNECTION, "banner": CONNECTION, "ehlo": CONNECTION, "relay": RELAY,
                "send_test": RELAY, "config": CONFIGURATION, "pickup": CONFIGURATION, "queue": QUEUE,
                "drop": CONFIGURATION, "badmail": QUEUE, "log": QUEUE, "dns": DNS, "outbound": QUEUE,
                "smart_host": CONFIGURATION}


@dataclass
class Step:
    """One check's row: verdict, evidence and next step, with the cause it names when it failed.

    `cause` is a catalog key under `diagnose.cause.` filled with `values`; `evidence` and
    `next_step` are already rendered in the user's language.
    """

    name: str
    verdict: str
    evidence: str
    next_step: str | None = None
    cause: str | None = None
    values: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in STEP_ORDER:
            raise ValueError(f"unknown diagnosis step {self.name!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

    @property
    def outcome_class(self) -> str:
        return STEP_CLASSES[self.name]

    @property
    def title(self) -> str:
        return message(f"diagnose.step.{self.name}")

    @property
    def verdict_label(self) -> str:
        return message(f"diagnose.verdict.{self.verdict}")

    def cause_text(self) -> str | None:
        return message(f"diagnose.cause.{self.cause}", **self.values) if self.cause else None


@dataclass
class Diagnosis:
    """Every check of one diagnosis in dependency order, with the most likely cause first in `rows()`."""

    server: str
    steps: list[Step]

    def step(self, name: str) -> Step:
        return next(step for step in self.steps if step.name == name)

    @property
    def most_likely(self) -> Step | None:
        """Return the failed check that most likely explains the others.

        Problems come first, then checks that could not decide, then warnings.
        """
        for verdict in (PROBLEM, UNKNOWN, WARNING):
            for name in CAUSE_PRIORITY:
                found = [step for step in self.steps if step.name == name and step.verdict == verdict]
                if found:
                    return found[0]
        return None

    @property
    def cause(self) -> str | None:
        """Return the cause key of the most likely failed check, such as `relay_denied`."""
        top = self.most_likely
        return top.cause if top else None

    @property
    def exit_status(self) -> int:
        """Return 0 when every check passed, 1 for warnings only, else the exit status of the cause's class.

        A check that could not decide also gives its class's status, because the checks that
        depend on it were skipped.
        """
        top = self.most_likely
        if top is None:
            return EXIT_OK
        if top.verdict == WARNING:
            return EXIT_WARNINGS
        return EXIT_CODES[top.outcome_class]

    def summary(self) -> str:
        """Return the one-line conclusion in the user's language."""
        top = self.most_likely
        if top is None:
            return message("diagnose.summary_ok", server=self.server)
        return message("diagnose.summary_cause", server=self.server, cause=top.cause_text() or top.evidence)

    def rows(self) -> list[dict[str, object]]:
        """Return the table rows: the most likely cause on top, then every check in dependency order."""
        top = self.most_likely
        ordered = ([top] if top else []) + [step for step in self.steps if step is not top]
        return [{"step": step.title, "verdict": step.verdict_label, "evidence": step.evidence,
                 "next_step": step.next_step or "-"} for step in ordered]

    def to_dict(self) -> dict[str, object]:
        top = self.most_likely
        return {
            "server": self.server,
            "summary": self.summary(),
            "cause": top.cause if top else None,
            "outcome_class": top.outcome_class if top and top.verdict in (PROBLEM, UNKNOWN) else None,
            "exit_status": self.exit_status,
            "steps": [{"name": step.name, "verdict": step.verdict, "evidence": step.evidence,
                       "next_step": step.next_step, "cause": step.cause} for step in self.steps],
        }

    def table(self):  # noqa: ANN201 - pandas is imported lazily for the CLI's start-up time
        """Return the rows as a DataFrame with the column titles in the user's language."""
        import pandas as pd

        titles = {column: message(f"diagnose.column.{column}") for column in ("step", "verdict", "evidence",
                                                                                "next_step")}
        return pd.DataFrame(self.rows()).rename(columns=titles)

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, object]:
        # Lists the most likely cause for `adminkb run` when the runbook is aimed at a real server.
        # A check that could not decide counts, because its exit status is its class's too.
        top = self.most_likely
        return finding_bundle([self.summary()] if top is not None and top.verdict in (PROBLEM, UNKNOWN) else [])

    def _repr_html_(self) -> str:
        import html

        header = f"<p><strong>{html.escape(self.summary())}</strong></p>"
        # pre-line keeps the line breaks inside evidence cells, which to_html leaves as newlines.
        table = self.table().to_html(index=False, classes="adminkb-diagnosis")
        return header + "<style>.adminkb-diagnosis td {white-space: pre-line}</style>" + table

    def __repr__(self) -> str:
        from adminkb.output import render_table

        columns = ("step", "verdict", "evidence", "next_step")
        headers = {column: message(f"diagnose.column.{column}") for column in columns}
        return self.summary() + "\n" + render_table(self.rows(), columns, headers)
