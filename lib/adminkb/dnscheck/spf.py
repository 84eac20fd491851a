"""SPF evaluation (RFC 7208): check_host() for a sending IP address and domain.

The evaluator parses the whole record first (any syntax error is a permerror), then walks the
mechanisms left to right: all, include, a, mx, ptr, ip4, ip6, exists, then the redirect
modifier. It applies the limits of section 4.6.4: at most 10 terms that cause DNS lookups
(include, a, mx, ptr, exists, redirect), at most 10 MX and 10 PTR names, and at most 2 void
lookups (NXDOMAIN or no answer). Macros (section 7) are expanded, including the transformers
and URL escaping of upper-case macro letters.

Every DNS lookup goes through a `DnsClient`, so a whole evaluation shares its time budget; a
lookup that times out or fails makes the result temperror.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass, field

import dns.exception
import dns.name

from adminkb.dnscheck.ptr import MAX_PTR_NAMES, reverse_name
from adminkb.dnscheck.resolver import NXDOMAIN, UNREACHABLE, DnsClient, Lookup, checked_domain, checked_ip
from adminkb.dnscheck.result import (OK, PROBLEM, UNKNOWN, WARNING, CatalogText, CheckResult, ServerFailuresText,
                                     unreachable_details)

log = logging.getLogger("adminkb.dnscheck.spf")

PASS = "pass"
FAIL = "fail"
SOFTFAIL = "softfail"
NEUTRAL = "neutral"
NONE = "none"
PERMERROR = "permerror"
TEMPERROR = "temperror"
RESULTS = (PASS, FAIL, SOFTFAIL, NEUTRAL, NONE, PERMERROR, TEMPERROR)

QUALIFIERS = {"+": PASS, "-": FAIL, "~": SOFTFAIL, "?": NEUTRAL}
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
# Mechanisms (and the redirect modifier) that count toward the limit of 10 DNS lookups.
DNS_MECHANISMS = ("include", "a", "mx", "ptr", "exists")
MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
MAX_DOMAIN_LENGTH = 253

VERDICTS = {PASS: OK, FAIL: PROBLEM, SOFTFAIL: WARNING, NEUTRAL: WARNING, NONE: WARNING,
            PERMERROR: PROBLEM, TEMPERROR: UNKNOWN}

_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9\-_.]*)=(.*)$", re.DOTALL)
_DIRECTIVE = re.compile(r"^([+\-~?]?)([A-Za-z][A-Za-z0-9\-_.]*)(.*)$", re.DOTALL)
_MACRO = re.compile(r"%(?:\{([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)\}|(.)|$)")
_CIDR = re.compile(r"^(?:/(0|[1-9][0-9]*))?(?://(0|[1-9][0-9]*))?$")
_TOPLABEL = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]+$|^[A-Za-z0-9][A-Za-z0-9\-]*-[A-Za-z0-9\-]*[A-Za-z0-9]$")
# Macro letters allowed everywhere, and the ones allowed only in the explanation text.
_MACRO_LETTERS = set("slodiphv")
_EXPLANATION_LETTERS = set("crt")


class SpfError(Exception):
    """An evaluation that ended in permerror or temperror; `reason` names a catalog message."""

    result = PERMERROR

    def __init__(self, reason: str, **values: object) -> None:
        self.reason = reason
        self.values = values
        super().__init__(f"{self.result}: {reason} {values}")


class PermError(SpfError):
    result = PERMERROR


class TempError(SpfError):
    result = TEMPERROR


@dataclass(frozen=True)
class Term:
    """One mechanism of a record: qualifier, name, the domain-spec or network, CIDR lengths."""

    text: str
    qualifier: str
    name: str
    argument: str | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass
class SpfRecord:
    text: str
    mechanisms: list[Term]
    redirect: str | None = None
    explanation: str | None = None

    @property
    def has_all(self) -> bool:
        return any(term.name == "all" for term in self.mechanisms)


@dataclass
class SpfOutcome:
    """The result of check_host() with the record, the term that decided it, and the counts."""

    result: str
    domain: str
    ip: str
    record: str | None = None
    mechanism: str | None = None
    dns_terms: int = 0
    void_lookups: int = 0
    reason: str | None = None
    reason_values: dict[str, object] = field(default_factory=dict)
    # The records and lookups in evaluation order, as text, for the records-seen column.
    trail: list[str] = field(default_factory=list)
    # On fail, the exp= domain of the deciding record and the explanation text found there.
    explanation_domain: str | None = None
    explanation_text: str | None = None

    def reason_text(self, language: str | None = None) -> str:
        reason = self.reason_message()
        return reason.render(language) if isinstance(reason, CatalogText) else reason

    def reason_message(self) -> CatalogText | str:
        """Return the reason unrendered, for a CheckResult to show in the reader's language."""
        if self.reason is None:
            return ""
        return CatalogText(f"dnscheck.spf.reason.{self.reason}", dict(self.reason_values))


# Parsing

def parse_record(text: str) -> SpfRecord:
    """Parse an SPF record (the TXT strings joined); raise PermError on any syntax error."""
    if not is_spf_record(text):
        raise PermError("syntax", term=text[:40])
    mechanisms: list[Term] = []
    modifiers: dict[str, str] = {}
    for token in text.split(" ")[1:]:
        if not token:
            continue
        modifier = _MODIFIER.match(token)
        if modifier:
            name = modifier.group(1).lower()
            value = modifier.group(2)
            _check_macro_string(value, token, explanation=False)
            if name in ("redirect", "exp"):
                if name in modifiers:
                    raise PermError("duplicate_modifier", term=name)
                _check_domain_spec(value, token)
                modifiers[name] = value
            continue
        mechanisms.append(_parse_directive(token))
    return SpfRecord(text, mechanisms, modifiers.get("redirect"), modifiers.get("exp"))


def is_spf_record(text: str) -> bool:
    """Whether a TXT record is an SPF version 1 record ("v=spf1" alone or followed by a space)."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


def _parse_directive(token: str) -> Term:
    match = _DIRECTIVE.match(token)
    if not match:
        raise PermError("syntax", term=token)
    qualifier, name, rest = match.group(1) or "+", match.group(2).lower(), match.group(3)
    if name not in MECHANISMS:
        raise PermError("unknown_mechanism", term=token)
    if name == "all":
        if rest:
            raise PermError("syntax", term=token)
        return Term(token, qualifier, name)
    if name in ("ip4", "ip6"):
        return _parse_network(token, qualifier, name, rest)
    argument, cidr_text = None, rest
    if rest.startswith(":"):
        # The domain-spec runs up to a CIDR suffix ("/24", "//64" or "/24//64") at the end.
        spec = rest[1:]
        suffix = re.search(r"(/(0|[1-9][0-9]*))?(//(0|[1-9][0-9]*))?$", spec)
        argument = spec[:suffix.start()]
        cidr_text = spec[suffix.start():]
        _check_domain_spec(argument, token)
    elif name in ("include", "exists"):
        raise PermError("syntax", term=token)
    if name in ("include", "exists", "ptr") and cidr_text:
        raise PermError("syntax", term=token)
    cidr4, cidr6 = _parse_dual_cidr(cidr_text, token)
    return Term(token, qualifier, name, argument, cidr4, cidr6)


def _parse_dual_cidr(text: str, token: str) -> tuple[int, int]:
    match = _CIDR.match(text)
    if not match:
        raise PermError("syntax", term=token)
    cidr4 = int(match.group(1)) if match.group(1) else 32
    cidr6 = int(match.group(2)) if match.group(2) else 128
    if cidr4 > 32 or cidr6 > 128:
        raise PermError("syntax", term=token)
    return cidr4, cidr6


def _parse_network(token: str, qualifier: str, name: str, rest: str) -> Term:
    if not rest.startswith(":"):
        raise PermError("syntax", term=token)
    address, slash, length = rest[1:].partition("/")
    version = 4 if name == "ip4" else 6
    maximum = 32 if version == 4 else 128
    if slash and not re.fullmatch(r"0|[1-9][0-9]*", length):
        raise PermError("syntax", term=token)
    prefix = int(length) if length else maximum
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise PermError("syntax", term=token) from None
    if parsed.version != version or prefix > maximum:
        raise PermError("syntax", term=token)
    network = ipaddress.ip_network(f"{parsed}/{prefix}", strict=False)
    return Term(token, qualifier, name, str(network))


def _check_macro_string(text: str, token: str, *, explanation: bool) -> None:
    position = 0
    while True:
        index = text.find("%", position)
        if index < 0:
            break
        match = _MACRO.match(text, index)
        letter, literal = match.group(1), match.group(5)
        if letter is not None:
            allowed = _MACRO_LETTERS | (_EXPLANATION_LETTERS if explanation else set())
            if letter.lower() not in allowed:
                raise PermError("invalid_macro", term=token)
        elif literal is None or literal not in "%_-":
            raise PermError("invalid_macro", term=token)
        position = match.end()
    # Explanation text may contain spaces (section 6.2); terms and domain-specs may not.
    lowest = 0x20 if explanation else 0x21
    if any(not lowest <= ord(character) <= 0x7E for character in text):
        raise PermError("syntax", term=token)


def _check_domain_spec(text: str, token: str) -> None:
    if not text:
        raise PermError("syntax", term=token)
    _check_macro_string(text, token, explanation=False)
    if text.endswith("}"):
        return
    labels = text.rstrip(".").split(".")
    if len(labels) < 2 or not _TOPLABEL.match(labels[-1]):
        raise PermError("invalid_domain", term=token, domain=text)


# Evaluation

class SpfEvaluator:
    """check_host() for one sending IP, sender and HELO name, with shared lookup counts."""

    def __init__(self, client: DnsClient, ip: str, sender: str | None = None, helo: str | None = None) -> None:
        self.client = client
        self.ip = checked_ip(ip)
        self.helo = helo or "unknown"
        self.sender = sender
        self.dns_terms = 0
        self.void_lookups = 0
        self.trail: list[str] = []
        self.explanation_domain: str | None = None
        self.explanation_text: str | None = None
        self.record: str | None = None

    def evaluate(self, domain: str) -> SpfOutcome:
        """Run check_host() for `domain` and return the outcome; DNS failures become temperror."""
        domain = domain.strip().rstrip(".").lower()
        sender = self.sender or f"postmaster@{domain}"
        if "@" not in sender:
            sender = f"postmaster@{sender}"
        elif sender.startswith("@"):
            sender = f"postmaster{sender}"
        self.sender = sender
        try:
            result, mechanism = self._check_host(domain, top=True)
        except SpfError as error:
            return self._outcome(error.result, domain, None, error.reason, error.values)
        return self._outcome(result, domain, mechanism)

    def _outcome(self, result: str, domain: str, mechanism: str | None, reason: str | None = None,
                 values: dict | None = None) -> SpfOutcome:
        return SpfOutcome(result, domain, str(self.ip), self.record, mechanism, self.dns_terms, self.void_lookups,
                          reason, values or {}, list(self.trail),
                          self.explanation_domain if result == FAIL else None,
                          self.explanation_text if result == FAIL else None)

    def _check_host(self, domain: str, top: bool = False, included: bool = False) -> tuple[str, str | None]:
        """Return the result for `domain` and the term that decided it; raise SpfError on errors.

        `included` marks a record reached through include, whose fail only means "no match",
        so its exp= text is not fetched.
        """
        if not _valid_domain(domain):
            # RFC 7208 section 4.3: a malformed or single-label domain gives "none".
            return NONE, None
        record_text = self.fetch_record(domain)
        if record_text is None:
            return NONE, None
        if top:
            self.record = record_text
        record = parse_record(record_text)
        for term in record.mechanisms:
            if term.name in DNS_MECHANISMS:
                self._count_dns_term(term.text)
            if self._matches(term, domain):
                result = QUALIFIERS[term.qualifier]
                if result == FAIL and record.explanation and not included:
                    self._fetch_explanation(record.explanation, domain)
                return result, term.text
        if record.redirect is not None and not record.has_all:
            self._count_dns_term(f"redirect={record.redirect}")
            target = self._target(record.redirect, domain)
            result, mechanism = self._check_host(target, included=included)
            if result == NONE:
                raise PermError("redirect_none", domain=target)
            return result, mechanism or f"redirect={record.redirect}"
        return NEUTRAL, None

    def _fetch_explanation(self, spec: str, domain: str) -> None:
        """Store the exp= text for a fail; section 6.2 drops it on any error instead of failing."""
        try:
            target = self.expand(spec, domain)
        except PermError:
            return
        self.explanation_domain = target
        if not _valid_domain(target):
            return
        lookup = self.client.lookup(target, "TXT")
        self.trail.extend(lookup.describe().splitlines())
        if not lookup.ok or len(lookup.records) != 1:
            return
        text = b"".join(lookup.records[0].strings).decode("ascii", errors="replace")
        try:
            _check_macro_string(text, text, explanation=True)
            self.explanation_text = self.expand(text, domain, explanation=True)
        except PermError:
            log.info("SPF explanation at %s has an invalid macro; ignored", target)

    def fetch_record(self, domain: str) -> str | None:
        """Return the one SPF record of `domain`, None when it has none; raise on errors and duplicates."""
        lookup = self._lookup(domain, "TXT")
        if lookup.status == NXDOMAIN or not lookup.ok:
            return None
        texts = [b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in lookup.records]
        records = [text for text in texts if is_spf_record(text)]
        if len(records) > 1:
            raise PermError("multiple_records", domain=domain, count=len(records))
        return records[0] if records else None

    def _lookup(self, name: str, rdtype: str) -> Lookup:
        lookup = self.client.lookup(name, rdtype)
        self.trail.extend(lookup.describe().splitlines())
        if lookup.unreachable:
            raise TempError("lookup_unreachable", name=name, type=rdtype, failures=lookup.unreachable,
                            servers=", ".join(failure.server for failure in lookup.unreachable))
        if lookup.failed:
            raise TempError("lookup_failed", name=name, type=rdtype, status=lookup.status.upper())
        return lookup

    def _count_dns_term(self, term: str) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise PermError("too_many_lookups", term=term, limit=MAX_DNS_TERMS)

    def _count_void(self, lookup: Lookup, term: str) -> None:
        if lookup.void:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise PermError("too_many_void", term=term, limit=MAX_VOID_LOOKUPS)

    def _target(self, spec: str | None, domain: str) -> str:
        """Return the domain a term names: its domain-spec with macros expanded, else `domain`.

        The result may be no valid domain name, because macros such as %{h} copy client input.
        Callers treat such a name as one that does not exist.
        """
        if spec is None:
            return domain
        return self.expand(spec, domain)

    def _matches(self, term: Term, domain: str) -> bool:
        name = term.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            network = ipaddress.ip_network(term.argument)
            return network.version == self.ip.version and self.ip in network
        target = self._target(term.argument, domain)
        if name == "include":
            return self._include_matches(target)
        if name != "ptr" and not _valid_domain(target):
            # RFC 7208 section 4.3 gives "none" for a malformed domain and section 5 lets a
            # mechanism go on after NXDOMAIN as if there were no records, so an expanded name
            # that DNS cannot hold (such as a single-label HELO name) matches nothing and
            # counts as a void lookup.
            unsent = Lookup(target, "A", NXDOMAIN, detail="invalid name, not sent")
            self.trail.append(unsent.describe())
            self._count_void(unsent, term.text)
            return False
        if name == "a":
            return self._addresses_match(target, term, count_void=True)
        if name == "mx":
            return self._mx_matches(target, term)
        if name == "exists":
            lookup = self._lookup(target, "A")
            self._count_void(lookup, term.text)
            return lookup.ok
        return self._ptr_matches(target, term)

    def _include_matches(self, target: str) -> bool:
        # Errors inside the included record propagate as SpfError, so they end the evaluation.
        result, _ = self._check_host(target, included=True)
        if result == NONE:
            raise PermError("include_none", domain=target)
        return result == PASS

    def _addresses_match(self, host: str, term: Term, *, count_void: bool) -> bool:
        rdtype = "A" if self.ip.version == 4 else "AAAA"
        lookup = self._lookup(host, rdtype)
        if count_void:
            self._count_void(lookup, term.text)
        prefix = term.cidr4 if self.ip.version == 4 else term.cidr6
        for text in lookup.texts():
            if self.ip in ipaddress.ip_network(f"{text}/{prefix}", strict=False):
                return True
        return False

    def _mx_matches(self, target: str, term: Term) -> bool:
        lookup = self._lookup(target, "MX")
        self._count_void(lookup, term.text)
        hosts = [rdata.exchange.to_text(omit_final_dot=True) for rdata in lookup.records]
        if len(hosts) > MAX_MX_NAMES:
            raise PermError("too_many_mx", domain=target, count=len(hosts), limit=MAX_MX_NAMES)
        # NOTE: void answers for the exchangers' addresses are not counted, because the limit
        # counts terms and this term's void lookup is the MX query.
        return any(host != "." and self._addresses_match(host, term, count_void=False) for host in hosts)

    def validated_names(self, ptr: Lookup | None = None) -> list[str]:
        """Return the PTR names of the IP whose A/AAAA records include it (section 5.5)."""
        if ptr is None:
            ptr = self.client.lookup(reverse_name(self.ip), "PTR")
            self.trail.extend(ptr.describe().splitlines())
        if not ptr.ok:
            return []
        rdtype = "A" if self.ip.version == 4 else "AAAA"
        names = []
        for rdata in ptr.records[:MAX_PTR_NAMES]:
            name = rdata.target.to_text(omit_final_dot=True).lower()
            forward = self.client.lookup(name, rdtype)
            self.trail.extend(forward.describe().splitlines())
            # Section 5.5: an error while validating a name only skips that name.
            if forward.ok and any(ipaddress.ip_address(text) == self.ip for text in forward.texts()):
                names.append(name)
        return names

    def _ptr_matches(self, target: str, term: Term) -> bool:
        # Section 5.5: a DNS error on the PTR lookup makes the mechanism not match, not temperror.
        reverse = self.client.lookup(reverse_name(self.ip), "PTR")
        self.trail.extend(reverse.describe().splitlines())
        self._count_void(reverse, term.text)
        target = target.lower()
        return any(name == target or name.endswith("." + target) for name in self.validated_names(reverse))

    # Macros (section 7)

    def expand(self, text: str, domain: str, *, explanation: bool = False) -> str:
        """Expand the macros in `text` for the current domain; the result is truncated to 253 characters."""
        output = []
        position = 0
        while position < len(text):
            index = text.find("%", position)
            if index < 0:
                output.append(text[position:])
                break
            output.append(text[position:index])
            match = _MACRO.match(text, index)
            letter, digits, reverse, delimiters, literal = match.groups()
            if letter is None:
                output.append({"%": "%", "_": " ", "-": "%20"}.get(literal or "", ""))
            else:
                output.append(self._macro_value(letter, digits, reverse, delimiters, domain, explanation))
            position = match.end()
        expanded = "".join(output)
        if not explanation:
            expanded = _truncate_domain(expanded)
        return expanded

    def _macro_value(self, letter: str, digits: str, reverse: str, delimiters: str, domain: str,
                     explanation: bool) -> str:
        key = letter.lower()
        if key in _EXPLANATION_LETTERS and not explanation:
            raise PermError("invalid_macro", term=f"%{{{letter}}}")
        value = self._macro_source(key, domain)
        parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
        if reverse:
            parts.reverse()
        if digits:
            count = int(digits)
            if count == 0:
                raise PermError("invalid_macro", term=f"%{{{letter}{digits}{reverse}{delimiters}}}")
            parts = parts[-count:]
        value = ".".join(parts)
        if letter.isupper():
            value = urllib.parse.quote(value, safe="-._~")
        return value

    def _macro_source(self, key: str, domain: str) -> str:
        sender = self.sender or f"postmaster@{domain}"
        local, _, sender_domain = sender.rpartition("@")
        if key == "s":
            return sender
        if key == "l":
            return local or "postmaster"
        if key == "o":
            return sender_domain
        if key == "d":
            return domain
        if key == "i":
            if self.ip.version == 4:
                return str(self.ip)
            return ".".join(self.ip.exploded.replace(":", ""))
        if key == "p":
            names = self.validated_names()
            exact = [name for name in names if name == domain]
            below = [name for name in names if name.endswith("." + domain)]
            chosen = exact or below or names
            return chosen[0] if chosen else "unknown"
        if key == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if key == "h":
            return self.helo
        if key == "c":
            return str(self.ip)
        if key == "r":
            return "unknown"
        return str(int(time.time()))


def _truncate_domain(name: str) -> str:
    """Drop left-hand labels until the name fits in 253 characters (section 7.3)."""
    while len(name) > MAX_DOMAIN_LENGTH and "." in name:
        name = name.split(".", 1)[1]
    return name


def _valid_domain(domain: str) -> bool:
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or any(not label or len(label) > 63 for label in labels):
        return False
    try:
        dns.name.from_text(domain)
    except (dns.exception.DNSException, UnicodeError):
        return False
    return True


# The check

def evaluate_spf(client: DnsClient, ip: str, domain: str, *, sender: str | None = None,
                 helo: str | None = None) -> SpfOutcome:
    """Return check_host(ip, domain, sender) per RFC 7208, with the HELO name for the %{h} macro."""
    return SpfEvaluator(client, ip, sender, helo).evaluate(domain)


def check_spf(client: DnsClient, domain: str, ip: str | None = None, *, sender: str | None = None,
              helo: str | None = None) -> CheckResult:
    """Check the SPF record of `domain`; with `ip`, evaluate it for that sending address.

    Without `ip` the check reports whether there is exactly one record and whether it parses.
    """
    domain = checked_domain(domain)
    if ip is None:
        return _check_record_only(client, domain)
    outcome = evaluate_spf(client, ip, domain, sender=sender, helo=helo)
    if outcome.reason == "lookup_unreachable":
        return _unreachable_result(domain, outcome.reason_values, outcome.trail, spf_result=outcome.result)
    values = {"ip": outcome.ip, "record": outcome.record or "-", "mechanism": outcome.mechanism or "-",
              "reason": outcome.reason_message(), "lookups": outcome.dns_terms, "limit": MAX_DNS_TERMS}
    details = {"record": outcome.record, "mechanism": outcome.mechanism, "dns_lookups": outcome.dns_terms,
               "void_lookups": outcome.void_lookups, "reason": outcome.reason, "ip": outcome.ip,
               "explanation_domain": outcome.explanation_domain, "explanation_text": outcome.explanation_text}
    return CheckResult("spf", domain, VERDICTS[outcome.result], outcome.result, outcome.trail, values,
                       spf_result=outcome.result, details=details)


def _unreachable_result(domain: str, values: dict[str, object], trail: list[str],
                        spf_result: str | None = None) -> CheckResult:
    """Return the UNKNOWN result of an SPF check whose DNS server could not be reached.

    It shares the explanation of every other check whose lookup reached no server, because the
    fault is on this side and not in the domain's SPF record.
    """
    failures = values["failures"]
    return CheckResult("spf", domain, UNKNOWN, UNREACHABLE, trail,
                       {"name": values["name"], "type": values["type"], "failures": ServerFailuresText(failures)},
                       spf_result=spf_result, details={"unreachable": unreachable_details(failures)})


def _check_record_only(client: DnsClient, domain: str) -> CheckResult:
    evaluator = SpfEvaluator(client, "192.0.2.0")
    try:
        text = evaluator.fetch_record(domain)
        if text is None:
            return CheckResult("spf", domain, WARNING, "no_record", evaluator.trail)
        parse_record(text)
    except TempError as error:
        if error.reason == "lookup_unreachable":
            return _unreachable_result(domain, error.values, evaluator.trail)
        values = {"reason": CatalogText(f"dnscheck.spf.reason.{error.reason}", dict(error.values))}
        return CheckResult("spf", domain, UNKNOWN, "record_unknown", evaluator.trail, values)
    except PermError as error:
        values = {"reason": CatalogText(f"dnscheck.spf.reason.{error.reason}", dict(error.values))}
        return CheckResult("spf", domain, PROBLEM, "record_invalid", evaluator.trail, values,
                           details={"reason": error.reason})
    return CheckResult("spf", domain, OK, "record_found", evaluator.trail, {"record": text},
                       details={"record": text})
