"""The result of one DNS check: a verdict, the records seen, and an explanation with a next step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adminkb.dnscheck.resolver import FAILED_STATUSES, Lookup, ServerFailure
from adminkb.i18n import message

OK = "ok"
WARNING = "warning"
PROBLEM = "problem"
UNKNOWN = "unknown"
VERDICTS = (OK, WARNING, PROBLEM, UNKNOWN)


@dataclass(frozen=True)
class CatalogText:
    """A catalog message kept unrendered in a result's values.

    A check stores a text such as the SPF permerror reason this way, so that the explanation
    renders it in the language asked for when the result is shown, not the one active when the
    check ran.
    """

    key: str
    values: Mapping[str, object] = field(default_factory=dict)

    def render(self, language: str | None = None) -> str:
        return message(self.key, language, **self.values)


@dataclass(frozen=True)
class ServerFailuresText:
    """The servers a lookup could not reach, each with its network error, rendered when shown."""

    failures: tuple[ServerFailure, ...]

    def render(self, language: str | None = None) -> str:
        separator = message("dnscheck.lookup.failure_separator", language)
        return separator.join(message("dnscheck.lookup.server_failure", language, server=failure.server,
                                      transport=failure.transport, reason=failure.reason(language))
                              for failure in self.failures)


@dataclass
class CheckResult:
    """One check's finding about one subject (a domain, a host name or an IP address).

    `outcome` names the finding; the explanation and next step are the catalog messages
    `dnscheck.<check>.<outcome>.explanation` and `.next`, filled from `values`, where a
    `CatalogText` or `ServerFailuresText` value is rendered in the same language. A lookup that
    failed (SERVFAIL, REFUSED, timeout, unreachable) uses the shared `dnscheck.lookup.<status>`
    messages.
    """

    check: str
    subject: str
    verdict: str
    outcome: str
    records: list[str] = field(default_factory=list)
    values: dict[str, object] = field(default_factory=dict)
    # The RFC 7208 result name (pass, fail, softfail, ...) for SPF checks, else None.
    spf_result: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; expected one of {VERDICTS}")

    @property
    def message_key(self) -> str:
        if self.outcome in FAILED_STATUSES:
            return f"dnscheck.lookup.{self.outcome}"
        return f"dnscheck.{self.check}.{self.outcome}"

    def _values(self, language: str | None) -> dict[str, object]:
        rendered = {name: value.render(language) if isinstance(value, (CatalogText, ServerFailuresText)) else value
                    for name, value in self.values.items()}
        return {"subject": self.subject, **rendered}

    def explanation(self, language: str | None = None) -> str:
        return message(f"{self.message_key}.explanation", language, **self._values(language))

    def next_step(self, language: str | None = None) -> str:
        return message(f"{self.message_key}.next", language, **self._values(language))

    def to_dict(self, language: str | None = None) -> dict[str, object]:
        """Return the result as a JSON-ready mapping, with texts in `language`."""
        return {"check": self.check, "subject": self.subject, "verdict": self.verdict, "outcome": self.outcome,
                "spf_result": self.spf_result, "records": list(self.records),
                "explanation": self.explanation(language), "next_step": self.next_step(language),
                "details": self.details}


def failed_lookup_result(check: str, subject: str, lookup: Lookup, records: list[str] | None = None,
                         **details: object) -> CheckResult:
    """Return the UNKNOWN result for a lookup that got no usable answer.

    Without `records`, the records seen are the failed lookup itself (`NAME TYPE: STATUS`).
    A lookup that reached no server names each server and its network error.
    """
    if records is None:
        records = lookup.describe().splitlines()
    values: dict[str, object] = {"name": lookup.name, "type": lookup.rdtype}
    details = dict(details)
    if lookup.unreachable:
        values["failures"] = ServerFailuresText(lookup.unreachable)
        details["unreachable"] = unreachable_details(lookup.unreachable)
    return CheckResult(check, subject, UNKNOWN, lookup.status, records, values=values, details=details)


def unreachable_details(failures: tuple[ServerFailure, ...]) -> list[dict[str, str]]:
    """Return the servers that could not be reached as JSON-ready entries, the error in English."""
    return [{"server": failure.server, "transport": failure.transport, "error": failure.reason("en")}
            for failure in failures]


def worst_verdict(results: list[CheckResult]) -> str:
    """Return the most serious verdict among `results`: problem, then unknown, warning, ok."""
    order = (PROBLEM, UNKNOWN, WARNING, OK)
    verdicts = {result.verdict for result in results}
    return next((verdict for verdict in order if verdict in verdicts), OK)
