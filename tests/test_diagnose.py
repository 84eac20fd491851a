"""The guided diagnosis against the mail lab: each staged fault must be named as the cause."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import dns.name
import dns.nameserver
import dns.resolver
import pytest

from adminkb.diagnose import (CONFIGURATION, EXIT_CODES, FAULTS, OK, PICKUP_NOT_WRITABLE, PROBLEM, QUEUE, RELAY,
                              RELAY_DENIED, REMOTE_MX_UNREACHABLE, SKIPPED, UNKNOWN, WRONG_SMART_HOST, DiagnoseRequest,
                              diagnose, diagnose_target, lab_configuration, restore_fault, stage_fault, stage_target_fault)
from adminkb.diagnose.checks import checked_log_path
from adminkb.dnscheck import resolver
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import MailLab, can_bind_source_address
from adminkb.metabase import GRANT
from adminkb.target import SmtpTarget
from tests.clirun import run_area

pytestmark = pytest.mark.timeout(180)

APP = "127.0.0.10"
SENDER = "app@example.com"
METABASE = Path(__file__).resolve().parent.parent / "data" / "metabase" / "MetaBase_smtp.xml"
needs_aliases = pytest.mark.skipif(not can_bind_source_address(APP),
                                   reason="this machine cannot send from 127.0.0.10 (only 127.0.0.1 exists)")


@pytest.fixture()
def target():
    lab_target = SmtpTarget("lab", source_address=APP)
    try:
        yield lab_target
    finally:
        restore_fault(lab_target.lab)
        lab_target.close()


def _stage(target, fault, *, queue_mail=False):
    domain = stage_fault(target.lab, fault, client=target.source_address or "127.0.0.1")
    recipient = f"user@{domain}"
    if queue_mail:
        assert target.probe(SENDER, recipient, send=True, timeout=5).exit_code == 0
        target.lab.advance(minutes=31)
    return recipient


@needs_aliases
def test_relay_denied_is_named(target):
    recipient = _stage(target, RELAY_DENIED)
    result = diagnose_target(target, SENDER, recipient, timeout=5)
    assert result.cause == "relay_denied"
    assert result.most_likely.name == "relay"
    assert result.exit_status == EXIT_CODES[RELAY]
    assert "550 5.7.1 Unable to relay" in result.most_likely.evidence
    assert APP in result.most_likely.evidence
    assert result.step("config").verdict == PROBLEM
    assert result.rows()[0]["step"] == result.most_likely.title


@needs_aliases
def test_pickup_not_writable_is_named(target):
    recipient = _stage(target, PICKUP_NOT_WRITABLE)
    result = diagnose_target(target, SENDER, recipient, timeout=5)
    assert result.cause == "pickup_not_writable"
    assert result.exit_status == EXIT_CODES[CONFIGURATION]
    assert result.step("relay").verdict == OK
    assert list(target.lab.pickup_dir.iterdir()) == []


@needs_aliases
def test_remote_mx_unreachable_is_named(target):
    recipient = _stage(target, REMOTE_MX_UNREACHABLE, queue_mail=True)
    result = diagnose_target(target, SENDER, recipient, timeout=5)
    assert result.cause == "outbound_unreachable"
    assert result.exit_status == EXIT_CODES[QUEUE]
    assert "mx.blocked.lab.test" in result.most_likely.evidence
    assert result.step("queue").verdict == PROBLEM
    assert "blocked.lab.test" in result.step("queue").evidence


def _lab_request(target, recipient):
    lab = target.lab
    return DiagnoseRequest(host=target.host, port=target.port, mail_from=SENDER, rcpt_to=recipient,
                           mailroot=lab.mailroot, logs=lab.log_dir, configuration=lab_configuration(lab),
                           now=lab.clock.now(), ages_from_file_names=True, source_address=APP, timeout=5)


@needs_aliases
def test_remote_mx_without_outbound_check(target):
    recipient = _stage(target, REMOTE_MX_UNREACHABLE, queue_mail=True)
    result = diagnose(_lab_request(target, recipient))
    assert result.cause == "queue_stuck"
    assert result.step("outbound").verdict == "not_run"
    assert "0 天 00:31" in result.most_likely.evidence


@needs_aliases
def test_wrong_smart_host_is_named(target):
    recipient = _stage(target, WRONG_SMART_HOST, queue_mail=True)
    result = diagnose_target(target, SENDER, recipient, timeout=5)
    assert result.cause == "smart_host_unreachable"
    assert result.exit_status == EXIT_CODES[CONFIGURATION]
    assert "[127.0.0.41]" in result.most_likely.evidence
    assert result.step("queue").verdict == PROBLEM


@needs_aliases
def test_faults_one_after_another(target):
    causes = []
    for fault in FAULTS:
        recipient = _stage(target, fault, queue_mail=fault in (REMOTE_MX_UNREACHABLE, WRONG_SMART_HOST))
        causes.append(diagnose_target(target, SENDER, recipient, timeout=5).cause)
        if target.lab.queue_files():
            restore_fault(target.lab)
            target.lab.advance(minutes=60)
    assert causes == ["relay_denied", "pickup_not_writable", "outbound_unreachable", "smart_host_unreachable"]


@needs_aliases
def test_healthy_lab_passes(target):
    target.lab.allow_relay(APP)
    result = diagnose_target(target, SENDER, "user@example.net", timeout=5)
    assert result.cause is None
    assert result.exit_status == 0
    assert result.step("outbound").verdict == OK


@needs_aliases
def test_send_test_delivers_only_when_asked(target):
    target.lab.allow_relay(APP)
    diagnose_target(target, SENDER, "user@example.net", timeout=5)
    assert target.lab.queue_files() == []
    result = diagnose_target(target, SENDER, "user@example.net", timeout=5, send_test=True)
    assert result.step("send_test").verdict == OK
    assert len(target.lab.queue_files()) == 1


def test_nothing_listening_skips_the_rest(tmp_path):
    from tests.integration.postfix import free_port

    port = free_port()
    result = diagnose(DiagnoseRequest(host="127.0.0.1", port=port, mail_from=SENDER, rcpt_to="user@example.net",
                                      mailroot=None, timeout=2))
    assert result.cause == "connect_failed"
    assert result.exit_status == EXIT_CODES["connection"]
    for name in ("banner", "ehlo", "relay"):
        assert result.step(name).verdict == SKIPPED
        assert "連線" in result.step(name).evidence


def test_lab_configuration_matches_lab(target):
    target.lab.allow_relay("192.0.2.10")
    configuration = lab_configuration(target.lab)
    assert configuration.relay_mode == GRANT
    assert configuration.relay_allows("192.0.2.10") is True
    assert configuration.relay_allows(APP) is False
    assert configuration.pickup_directory == str(target.lab.pickup_dir)


@needs_aliases
def test_stage_target_fault_queues_mail(target):
    recipient = stage_target_fault(target, REMOTE_MX_UNREACHABLE, recipient="user@example.net", queue_mail=True)
    assert recipient == "user@blocked.lab.test"
    assert len(target.lab.queue_files()) == 1


def test_real_target_is_left_alone():
    real = SmtpTarget("127.0.0.1:2525")
    assert stage_target_fault(real, WRONG_SMART_HOST, recipient="user@example.net") == "user@example.net"


def test_unknown_fault_raises(target):
    with pytest.raises(InputError) as caught:
        stage_fault(target.lab, "disk_full")
    assert caught.value.key == "diagnose.unknown_fault"


@needs_aliases
def test_cli_metabase_names_missing_entry(target, capsys):
    code = run_area("diagnose", "--server", target.address, "--from", SENDER, "--to", "user@example.net",
                    "--metabase", str(METABASE), "--source", APP, "--timeout", "5", "--format", "json")
    assert code == EXIT_CODES[RELAY]
    document = json.loads(capsys.readouterr().out)
    assert document["cause"] == "relay_denied"
    steps = {step["name"]: step for step in document["steps"]}
    assert "192.0.2.10, 198.51.100.0/24" in steps["relay"]["evidence"]
    assert APP in steps["config"]["evidence"]


@needs_aliases
def test_cli_table_with_mailroot_and_logs(target, capsys):
    target.lab.allow_relay(APP)
    code = run_area("diagnose", "--server", target.address, "--from", SENDER, "--to", "user@example.net",
                    "--mailroot", str(target.lab.mailroot), "--logs", str(target.lab.log_dir), "--source", APP,
                    "--timeout", "5")
    assert code == 0
    output = capsys.readouterr().out
    assert "Queue" in output
    assert "127.0.0.10" in output
    # One block per step, each starting with the step's title line.
    blocks = output.split("\n\n")[1:]
    titles = [message("diagnose.column.step"), message("diagnose.column.verdict"),
              message("diagnose.column.evidence"), message("diagnose.column.next_step")]
    assert len(blocks) >= 8
    for block in blocks:
        labels = [re.split("[：:]", line, maxsplit=1)[0].strip() for line in block.splitlines()
                  if not line.startswith(" ")]
        assert labels == titles


@pytest.mark.parametrize(("arguments", "key"), [
    (["--from", "not an address"], "smtp"),
    (["--mailroot", "/nonexistent/mailroot"], "diagnose.path_missing"),
    (["--mailroot", str(METABASE)], "diagnose.path_not_folder"),
    (["--mailroot", os.devnull], "diagnose.path_special"),
    (["--dns", "127.0.0.1:53"], "diagnose.dns_without_outbound"),
    (["--mx-port", "2525"], "diagnose.mx_port_without_outbound"),
    (["--metabase", str(METABASE), "--virtual-server", "9"], "diagnose.no_virtual_server"),
    (["--timeout", "-1"], "smtp"),
    (["--smart-host", "bad host"], "diagnose.smart_host_invalid"),
    (["--smart-host", "[smarthost.example.com]:25"], "diagnose.smart_host_invalid"),
])
def test_cli_bad_input_raises(arguments, key):
    base = {"--server": "127.0.0.1:2525", "--from": SENDER, "--to": "user@example.net"}
    for index in range(0, len(arguments), 2):
        base[arguments[index]] = arguments[index + 1] if index + 1 < len(arguments) else None
    flat = [item for pair in base.items() for item in pair if item is not None]
    with pytest.raises(InputError) as caught:
        run_area("diagnose", *flat)
    assert caught.value.key.startswith(key)


def test_stopping_a_lab_lifts_the_staged_pickup_fault():
    # A runbook stopped between staging and repair must not leave an undeletable folder behind
    # (as root the fault also makes Pickup immutable, which rmtree cannot undo).
    lab_target = SmtpTarget("lab", source_address=APP)
    root = lab_target.lab.root
    stage_fault(lab_target.lab, PICKUP_NOT_WRITABLE)
    lab_target.close()
    assert not root.exists()


def test_lab_stop_callbacks_run_once_in_order():
    lab_target = SmtpTarget("lab")
    calls = []
    lab_target.lab.add_stop_callback(lambda: calls.append("first"))
    lab_target.lab.add_stop_callback(lambda: calls.append("second"))
    lab_target.close()
    lab_target.close()
    assert calls == ["first", "second"]


def test_cli_mailroot_file_exits_2(tmp_path, capsys):
    from adminkb.cli import main

    plain_file = tmp_path / "mailroot.txt"
    plain_file.write_text("not a folder", encoding="utf-8")
    code = main(["diagnose", "--server", "127.0.0.1:2525", "--from", SENDER, "--to", "user@example.net",
                 "--mailroot", str(plain_file)])
    assert code == 2
    error = capsys.readouterr().err
    assert f"--mailroot 需要資料夾，但 {plain_file} 是檔案。" in error
    assert "Pickup、Queue、Badmail" in error


def test_cli_logs_not_a_log_raises():
    with pytest.raises(InputError) as caught:
        run_area("diagnose", "--server", "127.0.0.1:2525", "--from", SENDER, "--to", "user@example.net",
                 "--logs", str(METABASE))
    assert caught.value.key == "diagnose.logs_not_log"
    assert str(METABASE) in str(caught.value)
    assert "SMTPSVC1" in str(caught.value)


def test_runbook_mailroot_file_raises(tmp_path):
    plain_file = tmp_path / "mailroot.txt"
    plain_file.write_text("x", encoding="utf-8")
    real = SmtpTarget("127.0.0.1:2525")
    with pytest.raises(InputError) as caught:
        diagnose_target(real, SENDER, "user@example.net", mailroot=plain_file)
    assert caught.value.key == "diagnose.path_not_folder"
    assert "MAILROOT" in str(caught.value)


@needs_aliases
def test_log_file_accepted(target):
    target.lab.allow_relay(APP)
    assert target.probe(SENDER, "user@example.net", send=True, timeout=5).exit_code == 0
    (log_file,) = sorted(target.lab.log_dir.glob("*.log"))
    request = _lab_request(target, "user@example.net")
    request.logs = checked_log_path(log_file, "--logs")
    step = diagnose(request).step("log")
    assert step.verdict == OK
    assert "行提到這個寄件者或收件者，都成功" in step.evidence


def _relay_denied_in(lab):
    """Diagnose relay from APP to a remote domain in `lab`, whose relay list is empty."""
    return diagnose(DiagnoseRequest(host=lab.host, port=lab.port, mail_from=SENDER, rcpt_to="user@example.net",
                                    configuration=lab_configuration(lab), source_address=APP, timeout=5))


@needs_aliases
def test_relay_for_auth_without_auth_offered():
    # The lab's default: RelayForAuth on, no authentication method, so EHLO lists no AUTH.
    with MailLab() as lab:
        relay = _relay_denied_in(lab).step("relay")
    assert relay.cause == "relay_denied"
    assert "RelayForAuth 是開啟的" in relay.evidence
    assert "RelayForAuth 是開啟的" in relay.next_step
    assert "EHLO 回覆沒有 AUTH" in relay.next_step
    assert "「存取」→「驗證」啟用基本驗證" in relay.next_step


@needs_aliases
def test_relay_for_auth_says_authenticate():
    with MailLab(basic_auth=True, auth_requires_tls=False, accounts={"app": "lab-password"}) as lab:
        relay = _relay_denied_in(lab).step("relay")
    assert relay.next_step.startswith("讓程式先以 AUTH 登入再寄信")
    assert "允許所有成功驗證的電腦轉送，不論上面的清單為何" in relay.next_step
    assert "RelayForAuth" in relay.next_step


@needs_aliases
def test_relay_for_auth_off_not_authenticate():
    with MailLab(basic_auth=True, auth_requires_tls=False, accounts={"app": "lab-password"},
                 relay_for_authenticated=False) as lab:
        relay = _relay_denied_in(lab).step("relay")
    assert "RelayForAuth 是關閉的" in relay.evidence
    assert "即使以 AUTH 登入也不能轉送" in relay.next_step
    assert "先以 AUTH 登入再寄信" not in relay.next_step


@needs_aliases
def test_cli_metabase_relay_for_auth(target, capsys):
    # Virtual server 1 of the fixture sets RelayForAuth="-1".
    run_area("diagnose", "--server", target.address, "--from", SENDER, "--to", "user@example.net",
             "--metabase", str(METABASE), "--source", APP, "--timeout", "5", "--format", "json")
    steps = {step["name"]: step for step in json.loads(capsys.readouterr().out)["steps"]}
    assert "RelayForAuth 是開啟的" in steps["relay"]["evidence"]
    assert "RelayForAuth 是開啟的" in steps["relay"]["next_step"]


LOCAL_RECIPIENT = "helpdesk@example.com"


@needs_aliases
def test_local_recipient_not_blamed_on_relay(target):
    # APP is not on the relay list, but example.com is the lab's local domain: RCPT is accepted.
    _stage(target, RELAY_DENIED)
    result = diagnose_target(target, SENDER, LOCAL_RECIPIENT, timeout=5)
    assert result.step("relay").verdict == OK
    assert "example.com 是這台伺服器的本機網域" in result.step("relay").evidence
    config = result.step("config")
    assert config.verdict == OK
    assert config.cause is None
    assert f"不允許 {APP}，但這封信寄給本機網域 example.com，不需要轉送" in config.evidence
    for name in ("dns", "outbound", "smart_host"):
        assert result.step(name).verdict == SKIPPED
        assert "本機網域 example.com" in result.step(name).evidence
    assert result.step("drop").verdict == OK
    assert result.cause is None
    assert result.exit_status == 0


@needs_aliases
def test_local_recipient_found_in_drop(target):
    result = diagnose_target(target, SENDER, LOCAL_RECIPIENT, timeout=5, send_test=True)
    assert result.step("send_test").verdict == OK
    assert len(target.lab.drop_files()) == 1
    drop = result.step("drop")
    assert drop.verdict == OK
    assert f"其中 1 封寄給 {LOCAL_RECIPIENT}" in drop.evidence


@needs_aliases
def test_remote_recipient_has_no_drop_step(target):
    target.lab.allow_relay(APP)
    result = diagnose_target(target, SENDER, "user@example.net", timeout=5)
    assert "drop" not in [step.name for step in result.steps]
    assert result.step("outbound").verdict == OK


@needs_aliases
def test_local_drop_folder_missing(target, tmp_path):
    for name in ("Pickup", "Queue", "Badmail"):
        (tmp_path / name).mkdir()
    request = _lab_request(target, LOCAL_RECIPIENT)
    request.mailroot = tmp_path
    result = diagnose(request)
    assert result.cause == "drop_missing"
    assert result.exit_status == EXIT_CODES[CONFIGURATION]
    assert str(tmp_path) in result.most_likely.evidence


@needs_aliases
def test_cli_local_recipient_inferred(target, capsys):
    # The fixture's relay list does not contain APP and MetaBase.xml lists no local domains,
    # so the accepted RCPT is the only sign that the server handles the domain locally.
    code = run_area("diagnose", "--server", target.address, "--from", SENDER, "--to", LOCAL_RECIPIENT,
                    "--metabase", str(METABASE), "--source", APP, "--timeout", "5", "--check-outbound",
                    "--dns", "127.0.0.1:9", "--format", "json")
    document = json.loads(capsys.readouterr().out)
    steps = {step["name"]: step for step in document["steps"]}
    assert code == 0
    assert document["cause"] is None
    assert "當成本機網域" in steps["relay"]["evidence"]
    assert steps["config"]["verdict"] == OK
    assert steps["dns"]["verdict"] == SKIPPED
    assert steps["outbound"]["verdict"] == SKIPPED
    assert steps["drop"]["verdict"] == SKIPPED


@needs_aliases
def test_connection_control_denial_is_named(target):
    target.lab.allow_relay(APP)
    target.lab.deny_connection(APP)
    result = diagnose_target(target, SENDER, "user@example.net", timeout=5)
    banner = result.most_likely
    assert banner.name == "banner"
    assert f"設定的連線控制 (IPSecurity) 不允許 {APP} 連線" in banner.evidence
    assert f"「連線控制」允許 {APP}" in banner.next_step
    assert result.step("config").cause == "config_connection_denied"


@needs_aliases
def test_cli_undecoded_connection_control(target, capsys):
    # Virtual server 2 of the fixture sets IPSecurity to bytes the reader does not decode.
    target.lab.deny_connection(APP)
    code = run_area("diagnose", "--server", target.address, "--from", SENDER, "--to", "user@example.net",
                    "--metabase", str(METABASE), "--virtual-server", "2", "--source", APP, "--timeout", "5",
                    "--format", "json")
    steps = {step["name"]: step for step in json.loads(capsys.readouterr().out)["steps"]}
    assert code == EXIT_CODES["connection"]
    assert f"無法判斷它是否拒絕 {APP}" in steps["banner"]["evidence"]
    assert f"確認 {APP} 可以連線" in steps["banner"]["next_step"]
    assert "IPSecurity（連線控制）已設定" in steps["config"]["evidence"]


@needs_aliases
def test_outbound_check_uses_system_dns(target, monkeypatch):
    # No --dns: the MX lookup goes to the servers of this computer's settings, here the lab DNS.
    lab_dns = target.lab.lab_dns

    def system_configuration() -> dns.resolver.Resolver:
        configured = dns.resolver.Resolver(configure=False)
        configured.nameservers = [dns.nameserver.Do53Nameserver(lab_dns.address, lab_dns.port)]
        return configured

    monkeypatch.setattr(resolver, "read_system_configuration", system_configuration)
    request = _lab_request(target, "user@example.net")
    request.check_outbound = True
    request.port_map = target.lab.remote.port_for
    queries = lab_dns.query_count
    result = diagnose(request)
    dns_step = result.step("dns")
    assert dns_step.verdict == OK
    assert f"查詢的 DNS 伺服器：{lab_dns.nameserver}，取自本機的 DNS 設定：{resolver.RESOLV_CONF}" in dns_step.evidence
    assert lab_dns.query_count > queries
    assert result.step("outbound").verdict == OK


def test_outbound_check_without_any_dns_is_skipped(target):
    # The test set-up points the system settings at a missing file.
    request = _lab_request(target, "user@example.net")
    request.check_outbound = True
    result = diagnose(request)
    dns_step = result.step("dns")
    assert dns_step.verdict == SKIPPED
    assert f"本機的 DNS 設定（{resolver.RESOLV_CONF}）中也沒有可用的伺服器" in dns_step.evidence
    assert result.step("outbound").verdict == SKIPPED


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@needs_aliases
def test_dns_unreachable_blames_this_side(target):
    target.lab.allow_relay(APP)
    request = _lab_request(target, "user@example.net")
    request.check_outbound = True
    port = _closed_udp_port()
    request.dns = f"127.0.0.1:{port}"
    result = diagnose(request)
    dns_step = result.step("dns")
    assert dns_step.verdict == UNKNOWN
    assert dns_step.verdict_label == "無法判斷"
    assert result.cause == "dns_unreachable"
    assert result.exit_status == EXIT_CODES["dns"]
    assert f"這台電腦連不到 DNS 伺服器（127.0.0.1:{port}）" in result.summary()
    assert "連線被拒" in dns_step.evidence
    assert "這台電腦這一端" in dns_step.next_step
    assert result.step("outbound").verdict == SKIPPED
    assert result.to_dict()["outcome_class"] == "dns"


@needs_aliases
def test_dns_servfail_cause_distinct(target):
    target.lab.allow_relay(APP)
    lab_dns = target.lab.lab_dns
    name = dns.name.from_text("example.net")
    lab_dns.servfail_names.add(name)
    try:
        request = _lab_request(target, "user@example.net")
        request.check_outbound = True
        request.dns = lab_dns.nameserver
        result = diagnose(request)
    finally:
        lab_dns.servfail_names.discard(name)
    dns_step = result.step("dns")
    assert dns_step.verdict == UNKNOWN
    assert result.cause == "dns_no_answer"
    assert f"DNS 伺服器（{lab_dns.nameserver}）沒有給出可用的回覆（SERVFAIL）" in result.summary()
    assert "權威 DNS 伺服器" in dns_step.next_step
    assert result.exit_status == EXIT_CODES["dns"]


# 192.0.2.1 is a documentation address that no interface of the test machine carries. Binding to
# it fails locally, so no packet is sent.
NOT_LOCAL = "192.0.2.1"


def test_cli_source_not_local_names_option():
    with pytest.raises(InputError) as caught:
        run_area("diagnose", "--server", "127.0.0.1:2525", "--from", SENDER, "--to", "user@example.net",
                 "--source", NOT_LOCAL)
    text = str(caught.value)
    assert caught.value.key == "smtp.input.source_not_local"
    assert caught.value.exit_status == 2
    assert NOT_LOCAL in text
    assert "不加 --source，" in text
    assert "--source-ip" not in text


def test_source_not_local_not_blamed_on_server(target):
    request = DiagnoseRequest(host=target.host, port=target.port, mail_from=SENDER, rcpt_to="user@example.net",
                              source_address=NOT_LOCAL, timeout=5)
    result = diagnose(request)
    assert result.cause == "source_unusable"
    assert result.exit_status == EXIT_CODES["connection"]
    assert f"這台電腦不能用 {NOT_LOCAL} 作為來源位址" in result.summary()
    assert "服務沒有執行" not in result.summary()
    assert "--source-ip" not in result.most_likely.next_step


def test_cli_bad_smart_host_names_option():
    with pytest.raises(InputError) as caught:
        run_area("diagnose", "--server", "127.0.0.1:2525", "--from", SENDER, "--to", "user@example.net",
                 "--smart-host", "bad host")
    text = str(caught.value)
    assert "--smart-host 的值「bad host」不是有效的主機名稱或 IP 位址" in text
    assert "[192.0.2.25]:25" in text
    assert "伺服器" not in text.splitlines()[0]


@needs_aliases
def test_local_recipient_found_without_configuration(target):
    # No MetaBase.xml: the relay check to a reserved address shows that example.com is local.
    request = _lab_request(target, LOCAL_RECIPIENT)
    request.configuration = None
    request.check_outbound = True
    request.dns = target.lab.lab_dns.nameserver
    result = diagnose(request)
    assert result.cause is None
    assert result.exit_status == 0
    relay = result.step("relay")
    assert relay.verdict == OK
    assert "拒絕讓 127.0.0.10 轉送到保留位址 adminkb-relay-check@relay-check.invalid" in relay.evidence
    assert result.step("dns").verdict == SKIPPED
    assert result.step("outbound").verdict == SKIPPED
    # Both sessions ended after RCPT TO, so nothing reached Queue or Drop.
    assert list((target.lab.mailroot / "Queue").iterdir()) == []
    assert list((target.lab.mailroot / "Drop").iterdir()) == []


@needs_aliases
def test_relaying_client_not_taken_for_local(target):
    # A client that may relay gets the reserved address accepted too, so nothing is inferred.
    target.lab.allow_relay(APP)
    request = _lab_request(target, "user@example.net")
    request.configuration = None
    result = diagnose(request)
    assert result.step("relay").verdict == OK
    assert "保留位址" not in result.step("relay").evidence
    assert result.step("dns").verdict == "not_run"
