"""`adminkb.investigate` and `adminkb smtp investigate` on logs the mail lab wrote during real SMTP sessions."""

import contextlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from adminkb import investigate
from adminkb.cli import build_parser
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import FixedClock, MailLab, can_bind_source_address
from adminkb.smtp.session import SmtpSession
from adminkb.w3c import read_w3c

pytestmark = pytest.mark.timeout(120)

START = datetime(2026, 3, 2, 1, 0, 0, tzinfo=timezone.utc)
PASSWORD = "Lab-Investigate-93c1"
LOCAL = "example.com"
SPAMMER = "127.0.0.66"
GUESSER = "127.0.0.77"
APP = "127.0.0.10"
ROAMING = "127.0.0.20"
TIMEOUT = 5

if not all(can_bind_source_address(address) for address in (SPAMMER, GUESSER, APP, ROAMING)):
    pytest.skip("this machine cannot use 127.0.0.x source addresses", allow_module_level=True)


def column(name: str) -> str:
    return message(f"investigate.column.{name}")


def session(lab: MailLab, source: str, ehlo: str) -> SmtpSession:
    smtp = SmtpSession("127.0.0.1", lab.port, timeout=TIMEOUT, source_address=source, ehlo_name=ehlo)
    smtp.connect()
    smtp.read_banner()
    smtp.ehlo()
    return smtp


def send(lab: MailLab, source: str, recipients: list[str], *, ehlo: str = "client.test",
         account: tuple[str, str] | None = None) -> list[int]:
    """Run one session from `source`, optionally with AUTH LOGIN, and return the RCPT reply codes."""
    with session(lab, source, ehlo) as smtp:
        if account is not None:
            assert smtp.authenticate(*account, "LOGIN").code == 235
        smtp.mail_from("sender@example.net")
        codes = [smtp.rcpt_to(address).code for address in recipients]
        if 250 in codes:
            assert smtp.start_data().code == 354
            smtp.send_message(b"Subject: lab\r\n\r\nlab message\r\n")
        smtp.quit()
    return codes


def guess(lab: MailLab, source: str, passwords: list[str], *, step_seconds: float = 1) -> list[int]:
    codes = []
    with session(lab, source, "guesser.test") as smtp:
        for password in passwords:
            codes.append(smtp.authenticate("relayuser", password, "LOGIN").code)
            lab.clock.advance(step_seconds)
        smtp.quit()
    return codes


@pytest.fixture(scope="module")
def abuse_log(tmp_path_factory):
    """Logs of an open relay abused from 127.0.0.66 over three hours, then closed, and a password guesser."""
    clock = FixedClock(START)
    root = tmp_path_factory.mktemp("investigate-lab")
    with MailLab(root=root, clock=clock, relay_open=True, basic_auth=True, auth_requires_tls=False,
                 accounts={"relayuser": PASSWORD}, pickup_interval=None) as lab:
        # 09:00, 09:30 and 11:10 Taiwan time (UTC+8): three sessions of 3 remote and 1 local recipient.
        for minutes in (0, 30, 130):
            clock.set(START + timedelta(minutes=minutes))
            codes = send(lab, SPAMMER, ["a@victims.test", "b@victims.test", "c@example.org", "d@example.com"],
                         ehlo="bulk-mailer.test")
            assert codes == [250, 250, 250, 250]
        clock.set(START + timedelta(minutes=140))
        assert guess(lab, GUESSER, [f"wrong-{index}" for index in range(7)]) == [535] * 7
        clock.set(START + timedelta(minutes=150))
        lab.set_relay_grant([APP])
        assert send(lab, SPAMMER, ["e@victims.test", "f@victims.test"], ehlo="bulk-mailer.test") == [550, 550]
        assert send(lab, APP, ["orders@example.org"], ehlo="app.example.com") == [250]
        assert send(lab, ROAMING, ["boss@example.net"], ehlo="laptop.example.com",
                    account=("relayuser", PASSWORD)) == [250]
        # The same address again without AUTH: relay is closed for it, and no account carries over.
        assert send(lab, ROAMING, ["boss@example.net"], ehlo="laptop.example.com") == [550]
        files = lab.log_files()
        frame = read_w3c(files, tz="Asia/Taipei")
        yield frame, files


# Who relayed ---------------------------------------------------------------------------------

def test_relay_report_counts_spammer(abuse_log):
    frame, _ = abuse_log
    report = investigate.relay_report(frame, [LOCAL])
    spammer = report[report[column("client")] == SPAMMER].iloc[0]
    assert spammer[column("relayed")] == 9
    assert spammer[column("domains")] == 2
    assert spammer[column("rejected")] == 2
    assert spammer[column("account")] == message("investigate.no_account")
    assert spammer[column("helo")] == "bulk-mailer.test"
    assert str(spammer[column("first_seen")]) == "2026-03-02 09:00:00+08:00"
    assert str(spammer[column("last_seen")]) == "2026-03-02 11:30:00+08:00"
    assert report.iloc[0][column("client")] == SPAMMER


def test_relay_report_names_account(abuse_log):
    frame, _ = abuse_log
    report = investigate.relay_report(frame, LOCAL)
    roaming = report[report[column("client")] == ROAMING].set_index(column("account"))
    assert roaming.loc["relayuser", column("relayed")] == 1
    unauthenticated = roaming.loc[message("investigate.no_account")]
    assert unauthenticated[column("relayed")] == 0
    assert unauthenticated[column("rejected")] == 1


def test_relay_report_lists_relay_list_client(abuse_log):
    frame, _ = abuse_log
    report = investigate.relay_report(frame, [LOCAL])
    app = report[report[column("client")] == APP].iloc[0]
    assert app[column("relayed")] == 1
    assert app[column("account")] == message("investigate.no_account")


def test_local_recipients_not_relay(abuse_log):
    frame, _ = abuse_log
    recipients = investigate.relayed_recipients(frame, [LOCAL])
    assert "d@example.com" not in set(recipients[column("recipient")])
    assert len(recipients) == 9 + 1 + 1
    # With example.org local too, the spammer relayed only to victims.test.
    wider = investigate.relay_report(frame, [LOCAL, "example.org"])
    assert wider[wider[column("client")] == SPAMMER].iloc[0][column("relayed")] == 6


def test_local_domain_case_and_dot(abuse_log):
    frame, _ = abuse_log
    plain = investigate.relay_report(frame, ["example.com"])
    spelled = investigate.relay_report(frame, ["EXAMPLE.COM."])
    pd.testing.assert_frame_equal(plain, spelled)


# Failed authentication -----------------------------------------------------------------------

def test_auth_burst_found(abuse_log):
    frame, _ = abuse_log
    failures = investigate.auth_failures(frame, window="10min", threshold=5)
    assert investigate.count_bursts(failures) == 1
    row = failures.iloc[0]
    assert row[column("client")] == GUESSER
    assert row[column("failures")] == 7
    assert row[column("successes")] == 0
    assert row[column("verdict")] == message("investigate.verdict.burst")
    assert str(row[column("window_start")]) == "2026-03-02 11:20:00+08:00"


def test_auth_below_threshold_occasional(abuse_log):
    frame, _ = abuse_log
    failures = investigate.auth_failures(frame, threshold=8)
    assert investigate.count_bursts(failures) == 0
    assert failures.iloc[0][column("verdict")] == message("investigate.verdict.occasional")


def test_auth_window_split(abuse_log):
    frame, _ = abuse_log
    # 1-second windows put each of the seven guesses in a window of its own.
    failures = investigate.auth_failures(frame, window="1s", threshold=2)
    assert len(failures) == 7
    assert investigate.count_bursts(failures) == 0


def auth_log(tmp_path, *sessions: list[str]) -> pd.DataFrame:
    """Return the log of one guessing session per list of passwords, each password tried in order."""
    with MailLab(root=tmp_path, clock=FixedClock(START), basic_auth=True, auth_requires_tls=False,
                 accounts={"relayuser": PASSWORD}, pickup_interval=None) as lab:
        for passwords in sessions:
            expected = [235 if password == PASSWORD else 535 for password in passwords]
            assert guess(lab, GUESSER, passwords) == expected
        return read_w3c(lab.log_files())


def test_auth_success_after_burst(tmp_path):
    frame = auth_log(tmp_path, ["wrong-1", "wrong-2", PASSWORD])
    failures = investigate.auth_failures(frame, threshold=2)
    row = failures.iloc[0]
    assert row[column("failures")] == 2
    assert row[column("successes")] == 1
    assert row[column("verdict")] == message("investigate.verdict.success_after_failures")
    assert investigate.count_bursts(failures) == 1


def test_auth_success_after_one_failure(tmp_path):
    # One mistyped password, then the right one: below the threshold, so no guessed password.
    frame = auth_log(tmp_path, ["wrong-1", PASSWORD])
    failures = investigate.auth_failures(frame, threshold=5)
    row = failures.iloc[0]
    assert row[column("failures")] == 1
    assert row[column("successes")] == 1
    assert row[column("verdict")] == message("investigate.verdict.success_after_few_failures")
    assert investigate.count_bursts(failures) == 0


def test_auth_burst_after_success_not_guessed(tmp_path):
    # The burst comes after the only success, so the success cannot be one of its guesses.
    frame = auth_log(tmp_path, ["wrong-1", PASSWORD], ["wrong-2", "wrong-3", "wrong-4"])
    failures = investigate.auth_failures(frame, threshold=3)
    row = failures.iloc[0]
    assert row[column("failures")] == 4
    assert row[column("verdict")] == message("investigate.verdict.burst")
    assert investigate.count_bursts(failures) == 1


def test_cli_one_failure_not_guessed(capsys):
    # The shipped sample: crm.example.com mistypes its password once and then signs in.
    sample = Path(__file__).resolve().parent.parent / "data" / "logs" / "smtp_auth_failures.log"
    arguments = build_parser().parse_args(["smtp", "investigate", str(sample), "--local-domain", LOCAL,
                                           "--format", "json"])
    assert arguments.handler(arguments) == 0
    rows = json.loads(capsys.readouterr().out)["auth"]
    crm = next(row for row in rows if row[column("client")] == "198.51.100.20")
    assert crm[column("verdict")] == message("investigate.verdict.success_after_few_failures")


def test_no_auth_no_rows(tmp_path):
    with MailLab(root=tmp_path, clock=START, relay_grant=[APP], pickup_interval=None) as lab:
        send(lab, APP, ["x@example.org"])
        frame = read_w3c(lab.log_files())
    failures = investigate.auth_failures(frame)
    assert failures.empty
    assert list(failures.columns)[0] == column("client")


# Timeline ------------------------------------------------------------------------------------

def test_timeline_hours_with_gap(abuse_log):
    frame, _ = abuse_log
    timeline = investigate.abuse_timeline(frame, [LOCAL], client=SPAMMER)
    assert [str(stamp) for stamp in timeline.index] == ["2026-03-02 09:00:00+08:00", "2026-03-02 10:00:00+08:00",
                                                        "2026-03-02 11:00:00+08:00"]
    assert timeline[column("relayed")].tolist() == [6, 0, 3]
    assert timeline[column("rejected")].tolist() == [0, 0, 2]
    assert timeline[column("sessions")].tolist() == [2, 0, 2]
    assert timeline[column("messages")].tolist() == [2, 0, 1]


def test_timeline_by_account(abuse_log):
    frame, _ = abuse_log
    timeline = investigate.abuse_timeline(frame, [LOCAL], account="RelayUser", frequency="30min")
    assert timeline[column("relayed")].sum() == 1
    assert len(timeline) == 1


def test_timeline_unknown_client_rejected(abuse_log):
    frame, _ = abuse_log
    with pytest.raises(InputError) as raised:
        investigate.abuse_timeline(frame, [LOCAL], client="192.0.2.99")
    assert raised.value.key == "investigate.input.suspect_not_found"
    assert "192.0.2.99" in str(raised.value)


def test_overview_first_last_seen(abuse_log):
    frame, _ = abuse_log
    overview = investigate.abuse_overview(frame, [LOCAL], client=GUESSER)
    facts = dict(zip(overview[column("fact")], overview[column("value")]))
    assert facts[column("first_seen")] == "2026-03-02 11:20:00+08:00"
    assert facts[column("last_seen")] == "2026-03-02 11:20:07+08:00"
    assert facts[column("auth_failures")] == "7"
    assert facts[column("helo")] == "guesser.test"


def test_plot_timeline_draws_every_glyph(abuse_log):
    frame, _ = abuse_log
    rendered = investigate.plot_timeline(investigate.abuse_timeline(frame, [LOCAL], client=SPAMMER))
    assert rendered.png.startswith(b"\x89PNG")
    assert rendered.missing_glyphs == ()
    assert rendered.title == message("investigate.plot.title")


def test_english_columns(abuse_log, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    frame, _ = abuse_log
    report = investigate.relay_report(frame, [LOCAL])
    assert list(report.columns)[:3] == ["client IP", "authenticated account", "HELO name"]


# Logs with other fields ----------------------------------------------------------------------

def test_outbound_lines_ignored(tmp_path):
    log = tmp_path / "ex260302.log"
    log.write_text(
        "#Software: Microsoft Internet Information Services 6.0\n#Version: 1.0\n#Date: 2026-03-02 01:15:07\n"
        "#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
        "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
        "cs(User-Agent) cs(Cookie) cs(Referer) \n"
        "2026-03-02 01:15:07 203.0.113.5 OutboundConnectionCommand SMTPSVC1 MAIL01 - 25 RCPT - "
        "TO:<x@example.org> 0 0 4 0 16 SMTP - - - -\n"
        "2026-03-02 01:15:08 203.0.113.5 OutboundConnectionResponse SMTPSVC1 MAIL01 - 25 - - "
        "250+2.1.5+OK 0 0 38 0 16 SMTP - - - -\n", encoding="ascii")
    frame = read_w3c(log)
    assert investigate.relay_report(frame, [LOCAL]).empty
    assert investigate.auth_failures(frame).empty


def test_account_unknown_without_username_field(tmp_path):
    fields = ("date", "time", "c-ip", "cs-method", "cs-uri-query", "sc-status")
    with MailLab(root=tmp_path, clock=START, basic_auth=True, auth_requires_tls=False, log_fields=fields,
                 accounts={"relayuser": PASSWORD}, pickup_interval=None) as lab:
        send(lab, ROAMING, ["boss@example.net"], account=("relayuser", PASSWORD))
        frame = read_w3c(lab.log_files())
    report = investigate.relay_report(frame, [LOCAL])
    assert report.iloc[0][column("account")] == message("investigate.unknown_account")
    assert report.iloc[0][column("relayed")] == 1


def test_service_default_fields_lack_query(tmp_path):
    fields = ("time", "c-ip", "cs-method", "cs-uri-stem", "sc-status")
    with MailLab(root=tmp_path, clock=START, relay_open=True, log_fields=fields, pickup_interval=None) as lab:
        send(lab, SPAMMER, ["a@victims.test"])
        frame = read_w3c(lab.log_files())
    with pytest.raises(InputError) as raised:
        investigate.relay_report(frame, [LOCAL])
    assert raised.value.key == "investigate.input.missing_fields"
    assert "cs-uri-query" in str(raised.value)
    # Failed AUTH needs no recipient, so it still works on the default fields.
    assert investigate.auth_failures(frame).empty


# Bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("domains", [[], [""], ["user@example.com"], ["two words"]])
def test_bad_local_domains_rejected(abuse_log, domains):
    frame, _ = abuse_log
    with pytest.raises(InputError) as raised:
        investigate.relay_report(frame, domains)
    assert raised.value.key == "investigate.input.invalid_local_domains"


@pytest.mark.parametrize("window", ["soon", "0min", "-5min", ""])
def test_bad_window_rejected(abuse_log, window):
    frame, _ = abuse_log
    with pytest.raises(InputError) as raised:
        investigate.auth_failures(frame, window=window)
    assert raised.value.key == "investigate.input.invalid_window"


@pytest.mark.parametrize("threshold", [0, -1, 2.5, True, "5"])
def test_bad_threshold_rejected(abuse_log, threshold):
    frame, _ = abuse_log
    with pytest.raises(InputError) as raised:
        investigate.auth_failures(frame, threshold=threshold)
    assert raised.value.key == "investigate.input.invalid_threshold"


def test_not_a_frame_rejected():
    with pytest.raises(InputError) as raised:
        investigate.relay_report("ex260302.log", [LOCAL])
    assert raised.value.key == "investigate.input.not_a_frame"
    assert "str" in str(raised.value)


def test_missing_status_field_rejected():
    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2026-03-02 01:00:00"], utc=True), "c-ip": ["127.0.0.66"],
                          "cs-method": ["AUTH"]})
    with pytest.raises(InputError) as raised:
        investigate.auth_failures(frame)
    assert "sc-status" in str(raised.value)


# The command line ----------------------------------------------------------------------------

def run_cli(*arguments: str) -> tuple[int, str, str]:
    output, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
        try:
            parsed = build_parser().parse_args(["smtp", "investigate", *arguments])
            status = parsed.handler(parsed)
        except SystemExit as stop:
            status = stop.code
    return status, output.getvalue(), errors.getvalue()


def test_cli_summary_exit_one_on_burst(abuse_log):
    _, files = abuse_log
    status, output, _ = run_cli(*map(str, files), "--local-domain", LOCAL, "--tz", "Asia/Taipei")
    assert status == 1
    assert SPAMMER in output
    assert GUESSER in output
    assert message("investigate.verdict.burst") in output


def test_cli_exit_zero_below_threshold(abuse_log):
    _, files = abuse_log
    status, _, _ = run_cli(*map(str, files), "--local-domain", LOCAL, "--threshold", "8")
    assert status == 0


def test_cli_timeline_json(abuse_log):
    _, files = abuse_log
    status, output, _ = run_cli(*map(str, files), "--local-domain", LOCAL, "--view", "timeline",
                                "--client", SPAMMER, "--format", "json", "--tz", "Asia/Taipei")
    document = json.loads(output)
    assert status == 1
    assert [row[column("relayed")] for row in document["timeline"]] == [6, 0, 3]
    assert document["timeline"][0][column("interval")] == "2026-03-02T09:00:00+08:00"


def test_cli_recipients_csv(abuse_log):
    _, files = abuse_log
    _, output, _ = run_cli(*map(str, files), "--local-domain", LOCAL, "--view", "recipients", "--format", "csv")
    assert output.startswith("\ufeff")
    assert len(output.strip().splitlines()) == 1 + 11


@pytest.mark.parametrize("arguments", [
    ["/nonexistent/ex260302.log", "--local-domain", LOCAL],
    ["{log}"],
    ["{log}", "--local-domain", "bad domain"],
    ["{log}", "--local-domain", LOCAL, "--window", "soon"],
    ["{log}", "--local-domain", LOCAL, "--threshold", "many"],
    ["{log}", "--local-domain", LOCAL, "--view", "overview", "--client", "192.0.2.1"],
])
def test_cli_bad_input_exit_two(abuse_log, arguments):
    _, files = abuse_log
    status, _, errors = run_cli(*(argument.replace("{log}", str(files[0])) for argument in arguments))
    assert status == 2
    assert errors.strip()


@pytest.mark.parametrize("arguments, option", [
    (["--window", "0min"], "--window 的時間長度無效"),
    (["--view", "timeline", "--client", "192.0.2.1"], "（--view summary）"),
    (["--view", "timeline", "--client", GUESSER, "--frequency", "soon"], "--frequency 的時間長度無效"),
])
def test_cli_errors_name_options(abuse_log, arguments, option):
    _, files = abuse_log
    status, _, errors = run_cli(str(files[0]), "--local-domain", LOCAL, *arguments)
    assert status == 2
    assert option in errors
    for python_name in ("pandas", "relay_report", "auth_failures", "window 的", "frequency 的"):
        assert f" {python_name}" not in errors.replace(f"--{python_name}", "")


def test_api_errors_name_parameters(abuse_log):
    frame, _ = abuse_log
    with pytest.raises(InputError) as raised:
        investigate.abuse_timeline(frame, [LOCAL], client="192.0.2.1")
    assert "relay_report(), auth_failures()" in str(raised.value)


@pytest.mark.parametrize("query, address", [
    ("TO:<user@example.org>", "user@example.org"),
    ("TO:<user@example.org> NOTIFY=NEVER ORCPT=rfc822;user@example.org", "user@example.org"),
    ("TO: <user+tag@example.org>", "user+tag@example.org"),
    ("TO:user@example.org", "user@example.org"),
    ("to:<>", None),
    ("", None),
    (None, None),
])
def test_recipient_of_logged_argument(query, address):
    assert investigate.recipient_of(query) == address
