"""The reply parser and the knowledge base: every known wording, code and enhanced code explained."""

from __future__ import annotations

import pytest

from adminkb.i18n import catalog, placeholders
from adminkb.smtp.replies import (KNOWN_REPLIES, Reply, ReplyFormatError, categorize, explain, identify_protocol,
                                  parse_reply_line, split_enhanced)
from adminkb.smtp.verdict import Level, category_for_reply, level_for, verdict_for_reply


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")


# --- parsing -------------------------------------------------------------------------------

def test_parse_single_line_with_enhanced_code():
    reply = Reply.from_text("550 5.7.1 Unable to relay for user@example.net")
    assert reply.code == 550
    assert reply.enhanced == "5.7.1"
    assert reply.text == "Unable to relay for user@example.net"
    assert reply.permanent
    assert not reply.transient


def test_parse_multiline_ehlo():
    reply = Reply.from_text("250-mail01.example.com Hello [127.0.0.10]\r\n250-SIZE 2097152\r\n250 OK")
    assert reply.code == 250
    assert reply.enhanced is None
    assert reply.texts == ("mail01.example.com Hello [127.0.0.10]", "SIZE 2097152", "OK")
    assert reply.raw[-1] == "250 OK"


def test_parse_multiline_strips_enhanced_code_on_each_line():
    reply = Reply.from_lines(["550-5.7.606 Access denied, banned sending IP [192.0.2.7];",
                              "550 5.7.606 To request removal visit the portal"])
    assert reply.enhanced == "5.7.606"
    assert reply.texts[1] == "To request removal visit the portal"


def test_parse_code_without_text():
    reply = Reply.from_lines(["250"])
    assert reply.code == 250
    assert reply.text == ""


def test_parse_keeps_raw_line_with_trailing_space():
    banner = "220 mail01.example.com Microsoft ESMTP MAIL Service, Version: 10.0.17763.1 ready at  Mon, 2 Mar 2026 09:15:07 +0800 "
    assert Reply.from_lines([banner]).raw[0] == banner


@pytest.mark.parametrize("line", ["HTTP/1.1 400 Bad Request", "SSH-2.0-OpenSSH_9.2", "", "25 short", "2500 long code",
                                  "abc def"])
def test_parse_rejects_non_reply_lines(line):
    with pytest.raises(ReplyFormatError):
        parse_reply_line(line)


def test_parse_rejects_code_change_inside_reply():
    with pytest.raises(ReplyFormatError, match="code changes"):
        Reply.from_lines(["250-first", "354 second"])


def test_parse_rejects_continuation_on_last_line():
    with pytest.raises(ReplyFormatError, match="continuation"):
        Reply.from_lines(["250-first", "250-second"])


def test_parse_rejects_final_line_before_end():
    with pytest.raises(ReplyFormatError, match="continuation"):
        Reply.from_lines(["250 first", "250 second"])


def test_split_enhanced_needs_space_or_end():
    assert split_enhanced("5.1.1 User unknown") == ("5.1.1", "User unknown")
    assert split_enhanced("2.0.0") == ("2.0.0", "")
    assert split_enhanced("5.1.1user") == (None, "5.1.1user")
    assert split_enhanced("3.1.1 not a class") == (None, "3.1.1 not a class")


# --- known wordings: one realistic line each ---------------------------------------------

KNOWN_CASES = [
    # (reply, known key, category, fragments the English meaning must contain)
    ("220 mail01.example.com Microsoft ESMTP MAIL Service, Version: 10.0.17763.1 ready at  Mon, 2 Mar 2026 09:15:07 +0800 ",
     "iis_banner", "accepted", ["10.0.17763.1", "Windows Server 2019"]),
    ("220 mail01.example.com Microsoft ESMTP MAIL Service, Version: 6.0.3790.3959 ready at  Tue, 3 Mar 2026 10:00:00 +0800",
     "iis_banner", "accepted", ["Windows Server 2003"]),
    ("220 BN6PR03CA0021.outlook.example.com Microsoft ESMTP MAIL Service ready at Mon, 2 Mar 2026 01:15:07 +0000",
     "exchange_banner", "accepted", ["Exchange Server 2007"]),
    ("250-mail01.example.com Hello [127.0.0.10]\n250-SIZE 2097152\n250 OK", "iis_ehlo", "accepted", ["127.0.0.10"]),
    ("250 2.1.0 web@example.com....Sender OK", "iis_sender_ok", "accepted", ["web@example.com", "RCPT TO"]),
    ("550 5.7.1 Unable to relay for someone@example.net", "iis_unable_to_relay", "relay_denied",
     ["someone@example.net"]),
    ("354 Start mail input; end with <CRLF>.<CRLF>", "iis_start_mail_input", "accepted", ["single dot"]),
    ("250 2.6.0 <MAIL01abcdef@mail01.example.com> Queued mail for delivery", "iis_queued", "accepted", ["Queue"]),
    ("250 2.0.0 Resetting", "iis_resetting", "accepted", ["RSET"]),
    ("221 2.0.0 mail01.example.com Service closing transmission channel", "iis_closing", "accepted", ["QUIT"]),
    ("500 5.3.3 Unrecognized command", "iis_unrecognized_command", "command_rejected", ["5.3.3"]),
    ("552 5.3.4 Message size exceeds fixed maximum message size", "iis_size_exceeded", "size_exceeded",
     ["2097152"]),
    ("503 5.5.2 Send hello first", "iis_bad_sequence", "command_rejected", ["out of order"]),
    ("503 5.5.2 Need rcpt command", "iis_bad_sequence", "command_rejected", ["out of order"]),
    ("501 5.5.4 Invalid Address", "iis_invalid_address", "command_rejected", ["cannot parse"]),
    ("554 5.7.3 Unable to initialize security subsystem", "microsoft_tls_unavailable", "tls_failed",
     ["certificate"]),
    ("235 2.7.0 Authentication successful", "auth_successful", "accepted", ["succeeded"]),
    ("504 5.7.4 Unrecognized authentication type", "auth_mechanism_unrecognized", "auth_unavailable",
     ["mechanism"]),
    ("535 5.7.3 Authentication unsuccessful", "auth_unsuccessful", "auth_failed", ["rejected"]),
    ("550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain", "exchange_nonaccepted_domain",
     "relay_denied", ["accepted domains"]),
    ("550 5.7.1 Unable to relay", "exchange_unable_to_relay", "relay_denied", ["Exchange"]),
    ("530 5.7.1 Client was not authenticated", "exchange_client_not_authenticated", "auth_required",
     ["anonymous"]),
    ("530 5.7.57 Client not authenticated to send mail. [BN1P110CA0052.example.com 2026-03-02T14:52:57.126Z]",
     "m365_client_not_authenticated", "auth_required", ["MAIL FROM"]),
    ("550 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM",
     "m365_client_not_authenticated", "auth_required", ["MAIL FROM"]),
    ("550 5.7.64 TenantAttribution; Relay Access Denied", "m365_tenant_attribution", "relay_denied", ["tenant"]),
    ("550 5.7.606 Access denied, banned sending IP [198.51.100.7]. To request removal from this list please visit"
     " https://sender.office.com/", "m365_banned_ip", "blocklisted", ["198.51.100.7"]),
    ("550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP", "m365_traffic_not_accepted",
     "blocklisted", ["low-reputation"]),
    ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", "m365_recipient_access_denied",
     "mailbox_unavailable", ["directory"]),
    ("554 5.7.1 <user@example.net>: Relay access denied", "postfix_relay_denied", "relay_denied",
     ["user@example.net"]),
    ("554 5.7.1 <user@example.net>: Recipient address rejected: Relay access denied", "postfix_relay_denied",
     "relay_denied", ["user@example.net"]),
    ("454 4.7.1 <user@example.net>: Relay access denied", "postfix_relay_denied", "relay_denied", ["454"]),
    ("550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in local recipient table",
     "postfix_user_unknown", "mailbox_unavailable", ["nobody@example.com", "local recipient table"]),
    ("450 4.2.0 <user@example.com>: Recipient address rejected: Greylisted, see"
     " http://postgrey.schweikert.ch/help/example.com.html", "postgrey_greylisted", "greylisted", ["Greylisting"]),
    ("450 4.7.1 <user@example.com>: Recipient address rejected: Greylisted, see"
     " http://postgrey.schweikert.ch/help/example.com.html", "postgrey_greylisted", "greylisted", ["Greylisting"]),
    ("554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org;"
     " https://www.spamhaus.org/query/ip/203.0.113.9", "postfix_rbl", "blocklisted",
     ["zen.spamhaus.org", "203.0.113.9"]),
    ("450 4.7.1 Client host rejected: cannot find your hostname, [203.0.113.9]", "postfix_unknown_client",
     "client_rejected", ["PTR"]),
    ("530 5.7.0 Must issue a STARTTLS command first", "postfix_tls_required", "tls_required", ["STARTTLS"]),
    ("552 5.3.4 Message size exceeds fixed limit", "postfix_size_exceeded", "size_exceeded", ["message_size_limit"]),
    ("552 5.3.4 Error: message file too big", "postfix_message_file_too_big", "size_exceeded", ["SIZE"]),
    ("550 relay not permitted", "exim_relay_not_permitted", "relay_denied", ["Exim"]),
    ("550 5.1.1 <nobody@example.com>... User unknown", "sendmail_user_unknown", "mailbox_unavailable",
     ["nobody@example.com"]),
    ("451 4.7.1 Please try again later", "sendmail_try_later", "greylisted", ["try again later"]),
    ("530 5.7.0 Authentication required", "auth_required", "auth_required", ["RFC 4954"]),
    ("530 Please use STARTTLS before sending mail", "starttls_required", "tls_required", ["STARTTLS"]),
    ("451 4.7.1 Greylisting in action, please come back later", "generic_greylisting", "greylisted",
     ["greylisting"]),
    ("554 Service unavailable; your IP 203.0.113.9 is listed at bl.spamcop.net", "generic_blocklist", "blocklisted",
     ["blocklist"]),
    ("550 5.7.1 <user@example.net>... Relaying denied", "generic_relay_denied", "relay_denied", ["relay"]),
    ("550 Requested action not taken: mailbox unavailable", "generic_user_unknown", "mailbox_unavailable",
     ["does not exist"]),
]


@pytest.mark.parametrize("text, key, category, fragments", KNOWN_CASES, ids=[case[1] for case in KNOWN_CASES])
def test_known_wording_explained(text, key, category, fragments):
    explanation = explain(Reply.from_text(text))
    assert explanation.known is not None, f"no known wording matched {text!r}"
    assert explanation.known.key == key
    assert explanation.category == category
    for fragment in fragments:
        assert fragment in explanation.meaning, f"{fragment!r} missing from {explanation.meaning!r}"


def test_every_known_wording_has_a_test_case():
    tested = {case[1] for case in KNOWN_CASES}
    missing = [known.key for known in KNOWN_REPLIES if known.key not in tested]
    assert missing == []


@pytest.mark.parametrize("known", KNOWN_REPLIES, ids=[known.key for known in KNOWN_REPLIES])
def test_known_wording_has_catalog_texts(known):
    meaning = catalog()[f"smtp.known.{known.key}.meaning"]
    assert meaning["zh-TW"] and meaning["en"]
    allowed = {"code", "enhanced", "version", "windows", "address", "client", "ip", "blocklist", "table"}
    for part in ("meaning", "cause", "next"):
        entry = catalog().get(f"smtp.known.{known.key}.{part}")
        if entry is not None:
            assert placeholders(entry["en"]) <= allowed


def test_failures_have_cause_and_next_step():
    for known in KNOWN_REPLIES:
        if known.category in ("accepted",):
            continue
        assert f"smtp.known.{known.key}.next" in catalog(), known.key


def test_relay_denied_has_advice_for_iis_admin():
    explanation = explain(Reply.from_text("550 5.7.1 Unable to relay for someone@example.net"))
    assert "Relay restrictions" in explanation.next_step
    assert "open relay" in explanation.next_step
    assert explanation.cause is not None


def test_explanation_in_traditional_chinese(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    explanation = explain(Reply.from_text("550 5.7.1 Unable to relay for someone@example.net"))
    assert "轉送" in explanation.meaning
    assert "轉送限制" in explanation.next_step
    assert explanation.code_meaning.startswith("要求的動作未執行")
    assert "延伸狀態碼 5.7.1" in explanation.enhanced_meaning


def test_unknown_iis_version_says_so():
    explanation = explain(Reply.from_text(
        "220 mail01.example.com Microsoft ESMTP MAIL Service, Version: 7.5.7601.17514 ready at  Mon, 2 Mar 2026"))
    assert explanation.known.key == "iis_banner"
    assert "not in this table" in explanation.meaning


def test_wording_needs_matching_code():
    # The IIS relay text with a 250 code is not a relay denial.
    explanation = explain(Reply.from_text("250 2.1.5 Unable to relay for someone@example.net"))
    assert explanation.known is None
    assert explanation.category == "accepted"


# --- RFC 5321 codes and RFC 3463 enhanced codes --------------------------------------------

STANDARD_CODES = [211, 214, 220, 221, 235, 250, 251, 252, 334, 354, 421, 432, 450, 451, 452, 454, 455, 500, 501,
                  502, 503, 504, 521, 530, 534, 535, 538, 550, 551, 552, 553, 554, 555, 556]


@pytest.mark.parametrize("code", STANDARD_CODES)
def test_standard_code_has_meaning(code):
    explanation = explain(Reply.from_text(f"{code} text"))
    assert "not in RFC 5321" not in explanation.code_meaning
    assert explanation.code_meaning == catalog()[f"smtp.code.{code}"]["en"]


@pytest.mark.parametrize("code, fragment", [(299, "success"), (399, "waits"), (499, "transient"),
                                            (599, "permanent"), (650, "not an SMTP reply code"),
                                            (199, "not an SMTP reply code")])
def test_nonstandard_code_explained_by_class(code, fragment):
    meaning = explain(Reply.from_text(f"{code} odd")).code_meaning
    assert str(code) in meaning
    assert fragment in meaning


def test_enhanced_code_registered_detail():
    meaning = explain(Reply.from_text("550 5.1.1 <nobody@example.com>: no mailbox")).enhanced_meaning
    assert meaning.startswith("enhanced status 5.1.1: permanent failure")
    assert "bad destination mailbox address" in meaning


def test_enhanced_code_vendor_detail_falls_back_to_subject():
    meaning = explain(Reply.from_text("550 5.7.64 TenantAttribution; Relay Access Denied")).enhanced_meaning
    assert "security or policy status" in meaning
    assert "vendor's own code" in meaning
    assert "7.64" in meaning


def test_enhanced_code_unknown_subject():
    meaning = explain(Reply.from_text("550 5.9.1 odd")).enhanced_meaning
    assert "subject 9.1 is not in RFC 3463" in meaning


def test_transient_enhanced_class():
    meaning = explain(Reply.from_text("451 4.4.1 No answer from host")).enhanced_meaning
    assert "persistent transient failure" in meaning
    assert "no answer from host" in meaning


def test_reply_without_enhanced_code_has_no_enhanced_meaning():
    assert explain(Reply.from_text("250 OK")).enhanced_meaning is None


@pytest.mark.parametrize("text, category", [
    ("552 too big for us", "size_exceeded"),
    ("550 5.3.4 content too large", "size_exceeded"),
    ("421 4.3.2 Service not available", "service_unavailable"),
    ("450 4.3.0 try later", "temporary_failure"),
    ("554 5.0.0 no", "permanent_failure"),
    ("550 5.1.1 gone", "mailbox_unavailable"),
    ("535 5.7.8 Error: authentication failed: authentication failure", "auth_failed"),
    ("538 5.7.11 Encryption required for requested authentication mechanism", "tls_required"),
    ("501 5.5.4 Syntax error in parameters", "command_rejected"),
    ("650 odd", "unknown_reply"),
])
def test_categorize_by_codes(text, category):
    assert categorize(Reply.from_text(text)) == category


def test_explanation_lines_and_dict():
    explanation = explain(Reply.from_text("554 5.7.1 <user@example.net>: Relay access denied"))
    lines = explanation.lines()
    assert lines[0].startswith("Code 554: ")
    assert lines[1].startswith("enhanced status 5.7.1")
    assert lines[2].startswith("Postfix reply: ")
    assert lines[3].startswith("Likely cause: ")
    assert lines[4].startswith("Next step: ")
    assert len(explanation.lines(advice=False)) == 3
    data = explanation.to_dict()
    assert data["known"] == "postfix_relay_denied"
    assert data["category"] == "relay_denied"
    assert data["server"] == "Postfix"


# --- verdict categories from replies -------------------------------------------------------

@pytest.mark.parametrize("step, text, category, level, exit_code", [
    ("rcpt", "550 5.7.1 Unable to relay for x@example.net", "relay_denied", Level.PROBLEM, 24),
    ("rcpt", "450 4.2.0 <x@example.com>: Recipient address rejected: Greylisted", "greylisted", Level.WARNING, 24),
    ("mail", "530 5.7.57 Client not authenticated to send mail", "auth_required", Level.PROBLEM, 23),
    ("mail", "550 5.1.8 sender domain unknown", "sender_rejected", Level.PROBLEM, 23),
    ("mail", "451 4.3.0 local problem", "sender_rejected", Level.WARNING, 23),
    ("banner", "554 5.7.1 no SMTP service here", "service_unavailable", Level.PROBLEM, 21),
    ("banner", "421 4.3.2 Service not available", "service_unavailable", Level.WARNING, 21),
    ("ehlo", "500 5.3.3 Unrecognized command", "ehlo_rejected", Level.PROBLEM, 22),
    ("auth", "535 5.7.3 Authentication unsuccessful", "auth_failed", Level.PROBLEM, 28),
    ("auth", "504 5.7.4 Unrecognized authentication type", "auth_unavailable", Level.PROBLEM, 28),
    ("tls", "554 5.7.3 Unable to initialize security subsystem", "tls_failed", Level.PROBLEM, 29),
    ("tls", "454 4.7.0 TLS not available due to temporary reason", "tls_failed", Level.WARNING, 29),
    ("data", "503 5.5.1 No valid recipients", "data_rejected", Level.PROBLEM, 25),
    ("message", "552 5.3.4 Message size exceeds fixed maximum message size", "size_exceeded", Level.PROBLEM, 26),
    ("message", "554 5.6.0 rejected", "message_rejected", Level.PROBLEM, 26),
    ("mail", "650 odd", "unknown_reply", Level.UNKNOWN, 23),
])
def test_verdict_for_reply(step, text, category, level, exit_code):
    verdict = verdict_for_reply(step, Reply.from_text(text), target="mail01.example.com:25")
    assert verdict.category == category
    assert verdict.level is level
    assert verdict.exit_code == exit_code
    assert verdict.step == step
    assert verdict.summary
    assert verdict.next_step


def test_level_for_categories():
    assert level_for("accepted") is Level.OK
    assert level_for("recipients_partly_refused") is Level.WARNING
    assert level_for("timeout") is Level.PROBLEM
    assert level_for("unknown_reply") is Level.UNKNOWN


def test_category_for_known_reply_ignores_step():
    reply = Reply.from_text("530 5.7.0 Must issue a STARTTLS command first")
    assert category_for_reply("mail", reply) == "tls_required"


# --- other protocols -----------------------------------------------------------------------

@pytest.mark.parametrize("line, protocol", [
    ("SSH-2.0-OpenSSH_9.2p1 Debian-2", "ssh"),
    ("HTTP/1.1 400 Bad Request", "http"),
    ("+OK POP3 server ready", "pop3"),
    ("* OK IMAP4rev1 Service Ready", "imap"),
    ("<html><body>hello</body></html>", "http"),
    ("\x15\x03\x01\x00\x02\x02\x46", "tls"),
    ("random words", None),
])
def test_identify_protocol(line, protocol):
    assert identify_protocol(line) == protocol
