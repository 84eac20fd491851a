"""DMARC check (RFC 7489): find the policy record at `_dmarc.<domain>`, parse it, report the policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from adminkb.dnscheck.resolver import DnsClient, checked_domain
from adminkb.dnscheck.result import OK, PROBLEM, UNKNOWN, WARNING, CheckResult, failed_lookup_result

POLICIES = ("none", "quarantine", "reject")
ALIGNMENT_MODES = ("r", "s")


class DmarcSyntaxError(ValueError):
    """A DMARC record that cannot be used; `tag` names the tag at fault."""

    def __init__(self, tag: str, value: str) -> None:
        self.tag = tag
        self.value = value
        super().__init__(f"invalid DMARC tag {tag}={value!r}")


@dataclass
class DmarcRecord:
    text: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def policy(self) -> str:
        return self.tags["p"]

    @property
    def subdomain_policy(self) -> str:
        return self.tags.get("sp", self.policy)

    @property
    def percent(self) -> int:
        return int(self.tags.get("pct", "100"))


def is_dmarc_record(text: str) -> bool:
    """Return whether a TXT record starts with the tag v=DMARC1 (RFC 7489 section 6.3 puts it first)."""
    version = text.split(";", 1)[0].replace(" ", "").replace("\t", "")
    return version == "v=DMARC1"


def parse_dmarc(text: str) -> DmarcRecord:
    """Parse a DMARC record; raise DmarcSyntaxError for a missing or invalid p, sp, pct or alignment tag."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, equals, value = part.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if not equals:
            raise DmarcSyntaxError(name, "")
        # Tags not defined by RFC 7489 are ignored (section 6.3); later duplicates do not override.
        tags.setdefault(name, value.strip())
    if tags.get("p", "").lower() not in POLICIES:
        raise DmarcSyntaxError("p", tags.get("p", ""))
    for name in ("p", "sp", "adkim", "aspf"):
        if name in tags:
            tags[name] = tags[name].lower()
    if "sp" in tags and tags["sp"] not in POLICIES:
        raise DmarcSyntaxError("sp", tags["sp"])
    for name in ("adkim", "aspf"):
        if name in tags and tags[name] not in ALIGNMENT_MODES:
            raise DmarcSyntaxError(name, tags[name])
    if "pct" in tags and not (tags["pct"].isdigit() and 0 <= int(tags["pct"]) <= 100):
        raise DmarcSyntaxError("pct", tags["pct"])
    return DmarcRecord(text, tags)


def organizational_domain(domain: str) -> str:
    """Return the last two labels of `domain`.

    NOTE: RFC 7489 finds the organizational domain with the Public Suffix List, which is not
    shipped here, so a domain under a two-label suffix (example.co.uk) maps to the suffix.
    """
    return ".".join(domain.split(".")[-2:])


def check_dmarc(client: DnsClient, domain: str) -> CheckResult:
    """Check the DMARC policy of `domain`, falling back to its organizational domain."""
    domain = checked_domain(domain)
    candidates = [domain]
    if organizational_domain(domain) != domain:
        candidates.append(organizational_domain(domain))
    records: list[str] = []
    for candidate in candidates:
        lookup = client.lookup(f"_dmarc.{candidate}", "TXT")
        records.extend(lookup.describe().splitlines())
        if lookup.failed:
            return failed_lookup_result("dmarc", domain, lookup, records)
        texts = [b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in lookup.records]
        found = [text for text in texts if is_dmarc_record(text)]
        if len(found) > 1:
            return CheckResult("dmarc", domain, PROBLEM, "multiple", records, {"name": lookup.name})
        if found:
            return _judge(domain, candidate, found[0], records)
    return CheckResult("dmarc", domain, WARNING, "missing", records)


def _judge(domain: str, found_at: str, text: str, records: list[str]) -> CheckResult:
    try:
        record = parse_dmarc(text)
    except DmarcSyntaxError as error:
        return CheckResult("dmarc", domain, PROBLEM, "invalid", records,
                           {"tag": error.tag, "value": error.value or "-", "record": text},
                           details={"record": text, "tag": error.tag})
    policy = record.policy if found_at == domain else record.subdomain_policy
    values = {"policy": policy, "percent": record.percent, "found_at": found_at, "record": text}
    details = {"record": text, "tags": record.tags, "policy": policy, "percent": record.percent,
               "found_at": found_at, "reports": record.tags.get("rua")}
    if policy == "none":
        return CheckResult("dmarc", domain, WARNING, "monitoring", records, values, details=details)
    if record.percent < 100:
        return CheckResult("dmarc", domain, WARNING, "partial", records, values, details=details)
    return CheckResult("dmarc", domain, OK, "enforced", records, values, details=details)
