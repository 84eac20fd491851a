"""SPF evaluation (RFC 7208) against the lab DNS server, on a table of records and addresses."""

from __future__ import annotations

import re

import dns.name
import pytest

from adminkb.dnscheck import DnsClient, check_spf, evaluate_spf, parse_record
from adminkb.dnscheck.spf import PermError, SpfEvaluator
from adminkb.i18n import LANGUAGES, message
from adminkb.lab.dns import LabDns, lab_zone_files

# A catalog placeholder left unfilled; "%{d}" inside a quoted SPF term is a macro, not one.
UNFILLED = re.compile(r"(?<!%)\{[a-z_]+\}")
ELEVEN_A = " ".join(["a:host.spf.test"] * 11)
TEN_A = " ".join(["a:host.spf.test"] * 10)
MANY_MX = "\n".join(f"manymx MX {index} host.spf.test." for index in range(11))

SPF_ZONE = f"""$ORIGIN spf.test.
$TTL 60
@         SOA ns1 hostmaster 1 3600 600 86400 60
@         NS  ns1
ns1       A   127.0.0.53
host      A   192.0.2.1
ip4       TXT "v=spf1 ip4:192.0.2.0/24 -all"
ip6       TXT "v=spf1 ip6:2001:db8::/32 -all"
soft      TXT "v=spf1 ip4:192.0.2.1 ~all"
neutral   TXT "v=spf1 ip4:192.0.2.1 ?all"
noall     TXT "v=spf1 ip4:192.0.2.1"
a         TXT "v=spf1 a -all"
a         A   192.0.2.20
acidr     TXT "v=spf1 a:host.spf.test/24 -all"
a6        TXT "v=spf1 a//64 -all"
a6        AAAA 2001:db8:1::1
mx        TXT "v=spf1 mx -all"
mx        MX  10 mail.mx.spf.test.
mail.mx   A   192.0.2.40
inc       TXT "v=spf1 include:ip4.spf.test -all"
incnone   TXT "v=spf1 include:nothing.spf.test -all"
nothing   A   192.0.2.99
incfail   TXT "v=spf1 include:broken.spf.test -all"
broken    TXT "v=spf1 ip4:192.0.2.1 -all"
redir     TXT "v=spf1 redirect=ip4.spf.test"
redirall  TXT "v=spf1 ?all redirect=ip4.spf.test"
redirnone TXT "v=spf1 redirect=nothing.spf.test"
exists    TXT "v=spf1 exists:%{{i}}.allow.spf.test -all"
192.0.2.50.allow A 127.0.0.2
ptr       TXT "v=spf1 ptr:example.com -all"
ten       TXT "v=spf1 {TEN_A} -all"
eleven    TXT "v=spf1 {ELEVEN_A} -all"
loop      TXT "v=spf1 include:loop.spf.test -all"
void2     TXT "v=spf1 a:n1.spf.test a:n2.spf.test -all"
void3     TXT "v=spf1 a:n1.spf.test a:n2.spf.test a:n3.spf.test -all"
{MANY_MX}
manymx    TXT "v=spf1 mx -all"
unknownmech TXT "v=spf1 foo -all"
badip     TXT "v=spf1 ip4:192.0.2.300 -all"
badcidr   TXT "v=spf1 ip4:192.0.2.0/33 -all"
allarg    TXT "v=spf1 all:x"
tworedir  TXT "v=spf1 redirect=ip4.spf.test redirect=ip6.spf.test"
emptyinc  TXT "v=spf1 include -all"
badmacro  TXT "v=spf1 exists:%{{z}}.spf.test -all"
trailing  TXT "v=spf1 ip4:192.0.2.1/ -all"
unknownmod TXT "v=spf1 moo=bar ip4:192.0.2.1 -all"
two       TXT "v=spf1 -all"
two       TXT "v=spf1 +all"
split     TXT "v=spf1 ip4:192.0.2.0/24" " -all"
other     TXT "not an spf record"
macro     TXT "v=spf1 exists:%{{ir}}.%{{v}}._spf.%{{d}} -all"
10.2.0.192.in-addr._spf.macro A 127.0.0.2
users     TXT "v=spf1 exists:%{{l}}.users.spf.test -all"
alice.users A 127.0.0.2
temp      TXT "v=spf1 include:down.spf.test -all"
tempa     TXT "v=spf1 a:down.spf.test -all"
caps      TXT "V=SPF1 IP4:192.0.2.0/24 -ALL"
explained TXT "v=spf1 ip4:192.0.2.1 -all exp=why.spf.test"
why       TXT "%{{i}} is not one of %{{d}}'s senders, see https://%{{d}}/why?s=%{{S}}"
badexp    TXT "v=spf1 -all exp=nothing.spf.test"
incexp    TXT "v=spf1 include:explained.spf.test -all"
"""


@pytest.fixture(scope="module")
def server():
    with LabDns.from_files(lab_zone_files()) as running:
        running.add_zone(SPF_ZONE)
        running.servfail_names.add(dns.name.from_text("down.spf.test"))
        yield running


@pytest.fixture
def client(server):
    return DnsClient(server.address, server.port, timeout=3)


# (domain, ip, expected result, expected reason for errors or None)
CASES = [
    ("ip4.spf.test", "192.0.2.10", "pass", None),
    ("ip4.spf.test", "198.51.100.1", "fail", None),
    ("ip4.spf.test", "2001:db8::1", "fail", None),
    ("ip6.spf.test", "2001:db8::5", "pass", None),
    ("ip6.spf.test", "192.0.2.10", "fail", None),
    ("soft.spf.test", "198.51.100.1", "softfail", None),
    ("neutral.spf.test", "198.51.100.1", "neutral", None),
    ("noall.spf.test", "198.51.100.1", "neutral", None),
    ("a.spf.test", "192.0.2.20", "pass", None),
    ("a.spf.test", "192.0.2.21", "fail", None),
    ("acidr.spf.test", "192.0.2.99", "pass", None),
    ("acidr.spf.test", "198.51.100.1", "fail", None),
    ("a6.spf.test", "2001:db8:1::abcd", "pass", None),
    ("a6.spf.test", "2001:db8:2::1", "fail", None),
    ("mx.spf.test", "192.0.2.40", "pass", None),
    ("mx.spf.test", "192.0.2.41", "fail", None),
    ("inc.spf.test", "192.0.2.10", "pass", None),
    ("inc.spf.test", "198.51.100.1", "fail", None),
    ("incnone.spf.test", "192.0.2.10", "permerror", "include_none"),
    ("redir.spf.test", "192.0.2.10", "pass", None),
    ("redir.spf.test", "198.51.100.1", "fail", None),
    ("redirall.spf.test", "192.0.2.10", "neutral", None),
    ("redirnone.spf.test", "192.0.2.10", "permerror", "redirect_none"),
    ("exists.spf.test", "192.0.2.50", "pass", None),
    ("exists.spf.test", "192.0.2.51", "fail", None),
    ("ptr.spf.test", "127.0.0.25", "pass", None),
    ("ptr.spf.test", "127.0.0.27", "fail", None),
    ("ptr.spf.test", "127.0.0.26", "fail", None),
    ("ten.spf.test", "198.51.100.1", "fail", None),
    ("eleven.spf.test", "198.51.100.1", "permerror", "too_many_lookups"),
    ("loop.spf.test", "192.0.2.10", "permerror", "too_many_lookups"),
    ("void2.spf.test", "192.0.2.10", "fail", None),
    ("void3.spf.test", "192.0.2.10", "permerror", "too_many_void"),
    ("manymx.spf.test", "192.0.2.10", "permerror", "too_many_mx"),
    ("unknownmech.spf.test", "192.0.2.10", "permerror", "unknown_mechanism"),
    ("badip.spf.test", "192.0.2.10", "permerror", "syntax"),
    ("badcidr.spf.test", "192.0.2.10", "permerror", "syntax"),
    ("allarg.spf.test", "192.0.2.10", "permerror", "syntax"),
    ("tworedir.spf.test", "192.0.2.10", "permerror", "duplicate_modifier"),
    ("emptyinc.spf.test", "192.0.2.10", "permerror", "syntax"),
    ("badmacro.spf.test", "192.0.2.10", "permerror", "invalid_macro"),
    ("trailing.spf.test", "192.0.2.1", "permerror", "syntax"),
    ("unknownmod.spf.test", "192.0.2.1", "pass", None),
    ("two.spf.test", "192.0.2.1", "permerror", "multiple_records"),
    ("split.spf.test", "198.51.100.1", "fail", None),
    ("split.spf.test", "192.0.2.1", "pass", None),
    ("other.spf.test", "192.0.2.1", "none", None),
    ("host.spf.test", "192.0.2.1", "none", None),
    ("missing.spf.test", "192.0.2.1", "none", None),
    ("test", "192.0.2.1", "none", None),
    ("macro.spf.test", "192.0.2.10", "pass", None),
    ("macro.spf.test", "192.0.2.11", "fail", None),
    ("temp.spf.test", "192.0.2.1", "temperror", "lookup_failed"),
    ("tempa.spf.test", "192.0.2.1", "temperror", "lookup_failed"),
    ("caps.spf.test", "192.0.2.7", "pass", None),
    ("caps.spf.test", "198.51.100.7", "fail", None),
    ("example.com", "127.0.0.1", "pass", None),
    ("example.com", "127.0.0.22", "pass", None),
    ("example.com", "127.0.0.30", "pass", None),
    ("example.com", "127.0.0.99", "fail", None),
]


@pytest.mark.parametrize("domain, ip, result, reason", CASES, ids=[f"{case[0]}-{case[1]}" for case in CASES])
def test_spf_table(client, domain, ip, result, reason):
    outcome = evaluate_spf(client, ip, domain)
    assert outcome.result == result, outcome
    assert outcome.reason == reason
    if reason is not None:
        for language in LANGUAGES:
            assert outcome.reason_text(language)
            assert not UNFILLED.search(outcome.reason_text(language))


def test_spf_counts_lookups(client):
    outcome = evaluate_spf(client, "198.51.100.1", "ten.spf.test")
    assert outcome.dns_terms == 10
    assert outcome.mechanism == "-all"
    over = evaluate_spf(client, "198.51.100.1", "eleven.spf.test")
    assert over.dns_terms == 11
    assert over.reason_values["term"] == "a:host.spf.test"


def test_spf_counts_void_lookups(client):
    outcome = evaluate_spf(client, "192.0.2.10", "void2.spf.test")
    assert outcome.void_lookups == 2


def test_spf_records_trail(client):
    outcome = evaluate_spf(client, "192.0.2.10", "inc.spf.test")
    assert outcome.record == "v=spf1 include:ip4.spf.test -all"
    assert outcome.mechanism == "include:ip4.spf.test"
    assert any(line.startswith("ip4.spf.test TXT") for line in outcome.trail)


def test_spf_sender_local_part_macro(client):
    assert evaluate_spf(client, "198.51.100.1", "users.spf.test", sender="alice@spf.test").result == "pass"
    assert evaluate_spf(client, "198.51.100.1", "users.spf.test", sender="bob@spf.test").result == "fail"


def test_spf_check_result_for_each_result(client):
    cases = {"pass": ("ip4.spf.test", "192.0.2.10", "ok"), "fail": ("ip4.spf.test", "198.51.100.1", "problem"),
             "softfail": ("soft.spf.test", "198.51.100.1", "warning"),
             "neutral": ("neutral.spf.test", "198.51.100.1", "warning"),
             "none": ("missing.spf.test", "192.0.2.1", "warning"),
             "permerror": ("two.spf.test", "192.0.2.1", "problem"),
             "temperror": ("temp.spf.test", "192.0.2.1", "unknown")}
    for expected, (domain, ip, verdict) in cases.items():
        result = check_spf(client, domain, ip)
        assert result.spf_result == expected
        assert result.outcome == expected
        assert result.verdict == verdict
        for language in LANGUAGES:
            assert not UNFILLED.search(result.explanation(language))
            assert result.next_step(language)


def test_spf_permerror_explains_reason(client):
    result = check_spf(client, "eleven.spf.test", "198.51.100.1")
    assert "10" in result.explanation("en")
    assert "a:host.spf.test" in result.explanation("en")
    assert "a:host.spf.test" in result.explanation("zh-TW")


# (the language active while the check runs, the language the result is shown in)
LANGUAGE_SWITCHES = [("zh-TW", "en"), ("en", "zh-TW")]


@pytest.mark.parametrize("active, shown", LANGUAGE_SWITCHES)
def test_spf_reason_in_shown_language(client, monkeypatch, active, shown):
    monkeypatch.setenv("ADMINKB_LANG", active)
    evaluated = check_spf(client, "two.spf.test", "192.0.2.1")
    record_only = check_spf(client, "two.spf.test")
    reason = message("dnscheck.spf.reason.multiple_records", shown, domain="two.spf.test", count=2)
    other_reason = message("dnscheck.spf.reason.multiple_records", active, domain="two.spf.test", count=2)

    assert evaluated.outcome == "permerror"
    assert record_only.outcome == "record_invalid"
    for result in (evaluated, record_only):
        assert reason in result.explanation(shown)
        assert other_reason not in result.explanation(shown)
        assert reason in result.to_dict(shown)["explanation"]
        assert other_reason not in result.to_dict(shown)["explanation"]


@pytest.mark.parametrize("active, shown", LANGUAGE_SWITCHES)
def test_spf_reason_follows_language_change(client, monkeypatch, active, shown):
    monkeypatch.setenv("ADMINKB_LANG", active)
    result = check_spf(client, "eleven.spf.test", "198.51.100.1")
    monkeypatch.setenv("ADMINKB_LANG", shown)
    reason = message("dnscheck.spf.reason.too_many_lookups", shown, term="a:host.spf.test", limit=10)
    assert reason in result.explanation()
    assert result.explanation() == result.explanation(shown)


@pytest.mark.parametrize("active, shown", LANGUAGE_SWITCHES)
def test_spf_record_temperror_reason_language(client, monkeypatch, active, shown):
    monkeypatch.setenv("ADMINKB_LANG", active)
    result = check_spf(client, "down.spf.test")
    reason = message("dnscheck.spf.reason.lookup_failed", shown, name="down.spf.test", type="TXT", status="SERVFAIL")
    assert result.outcome == "record_unknown"
    assert reason in result.explanation(shown)


# Parsing


@pytest.mark.parametrize("text, reason", [
    ("v=spf1 foo", "unknown_mechanism"),
    ("v=spf1 ip4", "syntax"),
    ("v=spf1 ip4:2001:db8::1", "syntax"),
    ("v=spf1 ip6:192.0.2.1", "syntax"),
    ("v=spf1 ip6:2001:db8::/129", "syntax"),
    ("v=spf1 ip4:192.0.2.0/024", "syntax"),
    ("v=spf1 a/33", "syntax"),
    ("v=spf1 a//129", "syntax"),
    ("v=spf1 include:example.com/24", "syntax"),
    ("v=spf1 exists", "syntax"),
    ("v=spf1 a:foo", "invalid_domain"),
    ("v=spf1 a:example.123", "invalid_domain"),
    ("v=spf1 exp=one.example.com exp=two.example.com", "duplicate_modifier"),
    ("v=spf1 exists:%{c}.example.com", "invalid_macro"),
    ("v=spf1 exists:%x.example.com", "invalid_macro"),
    ("v=spf1 moo=%{", "invalid_macro"),
    ("v=spf10 -all", "syntax"),
])
def test_parse_rejects(text, reason):
    with pytest.raises(PermError) as caught:
        parse_record(text)
    assert caught.value.reason == reason


def test_parse_terms():
    record = parse_record("v=spf1  +a:mail.example.com/24//64 -mx ~ip4:192.0.2.0/24 ?include:example.net "
                          "redirect=example.org exp=explain.%{d}")
    names = [(term.qualifier, term.name, term.argument, term.cidr4, term.cidr6) for term in record.mechanisms]
    assert names == [("+", "a", "mail.example.com", 24, 64), ("-", "mx", None, 32, 128),
                     ("~", "ip4", "192.0.2.0/24", 32, 128), ("?", "include", "example.net", 32, 128)]
    assert record.redirect == "example.org"
    assert record.explanation == "explain.%{d}"
    assert not record.has_all


def test_parse_empty_record():
    record = parse_record("v=spf1")
    assert record.mechanisms == []


# Macro expansion: the examples of RFC 7208 section 7.4.


@pytest.fixture
def evaluator(client):
    evaluator = SpfEvaluator(client, "192.0.2.3", sender="strong-bad@email.example.com")
    return evaluator


@pytest.mark.parametrize("macro, expanded", [
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
    ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ("%{S}", "strong-bad%40email.example.com"),
    ("a%%b%_c%-d", "a%b c%20d"),
])
def test_macro_expansion(evaluator, macro, expanded):
    assert evaluator.expand(macro, "email.example.com") == expanded


def test_macro_expansion_ipv6(client):
    evaluator = SpfEvaluator(client, "2001:db8::cb01", sender="strong-bad@email.example.com")
    expected = "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    assert evaluator.expand("%{ir}.%{v}._spf.%{d2}", "email.example.com") == expected


def test_macro_zero_digits_rejected(evaluator):
    with pytest.raises(PermError):
        evaluator.expand("%{d0}", "email.example.com")


def test_macro_validated_name(client):
    evaluator = SpfEvaluator(client, "127.0.0.25")
    assert evaluator.expand("%{p}", "example.com") == "out.example.com"
    unknown = SpfEvaluator(client, "127.0.0.26")
    assert unknown.expand("%{p}", "example.com") == "unknown"


def test_macro_long_result_truncated(evaluator):
    long_local = "x" * 60
    evaluator.sender = f"{'.'.join([long_local] * 5)}@example.com"
    expanded = evaluator.expand("%{l}.example.com", "example.com")
    assert len(expanded) <= 253
    assert expanded.endswith(".example.com")


def test_explanation_fetched_on_fail(client):
    outcome = evaluate_spf(client, "198.51.100.1", "explained.spf.test", sender="a@spf.test")
    assert outcome.result == "fail"
    assert outcome.explanation_domain == "why.spf.test"
    assert outcome.explanation_text == ("198.51.100.1 is not one of explained.spf.test's senders, "
                                        "see https://explained.spf.test/why?s=a%40spf.test")


def test_explanation_of_included_record_ignored(client):
    # The included record fails with an exp=, but only the outer -all decides the fail.
    outcome = evaluate_spf(client, "198.51.100.1", "incexp.spf.test")
    assert outcome.result == "fail"
    assert outcome.mechanism == "-all"
    assert outcome.explanation_domain is None
    assert outcome.explanation_text is None


def test_explanation_missing_ignored(client):
    outcome = evaluate_spf(client, "198.51.100.1", "badexp.spf.test")
    assert outcome.result == "fail"
    assert outcome.explanation_text is None


def test_explanation_not_fetched_on_pass(client):
    outcome = evaluate_spf(client, "192.0.2.1", "explained.spf.test")
    assert outcome.result == "pass"
    assert outcome.explanation_domain is None


def test_sender_defaults_to_postmaster(client):
    evaluator = SpfEvaluator(client, "192.0.2.3")
    evaluator.evaluate("ip4.spf.test")
    assert evaluator.sender == "postmaster@ip4.spf.test"
