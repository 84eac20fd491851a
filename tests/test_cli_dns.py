"""`adminkb dns check`: table and JSON output, exit statuses, help and bad input."""

from __future__ import annotations

import csv
import io
import json
import socket
import sys
import time

import dns.nameserver
import dns.resolver
import pytest

from adminkb.cli import build_parser
from adminkb.dnscheck import resolver
from adminkb.lab.dns import LabDns, lab_zone_files


@pytest.fixture(scope="module")
def server():
    with LabDns.from_files(lab_zone_files()) as running:
        yield running


@pytest.fixture(autouse=True)
def chinese_messages(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")


def run(*arguments: str) -> int:
    parsed = build_parser().parse_args(["dns", "check", *arguments])
    return parsed.handler(parsed)


def test_table_all_ok(server, capsys):
    status = run("example.com", "--nameserver", server.nameserver, "--ip", "127.0.0.25", "--dnsbl", "dnsbl.test")
    output = capsys.readouterr()
    assert status == 0
    assert output.err == ""
    lines = output.out.splitlines()
    assert lines[0].startswith("example.com 的 DNS 檢查")
    assert "正常 8 項" in lines[0]
    assert lines[1].split() == ["檢查項目", "檢查目標", "判定", "查到的記錄"]
    assert "正常 / 通過 (pass)" in output.out
    assert "example.com MX 10 mx1.example.com" in output.out
    assert "下一步：" in output.out


def test_table_problems_exit_one(server, capsys):
    status = run("example.net", "--nameserver", server.nameserver, "--ip", "127.0.0.27", "--dnsbl", "dnsbl.test")
    text = capsys.readouterr().out
    assert status == 1
    assert "警告 / 軟性失敗 (softfail)" in text
    assert "正反解不一致" in text
    assert "127.0.0.27 列在黑名單 dnsbl.test 中" in text


def test_warnings_only_exit_zero(server, capsys):
    status = run("implicit.lab.test", "--nameserver", server.nameserver)
    text = capsys.readouterr().out
    assert status == 0
    assert "隱含 MX" in text


def test_json_document(server, capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    status = run("example.com", "--nameserver", server.nameserver, "--ip", "127.0.0.99", "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["domain"] == "example.com"
    assert document["nameserver"] == server.nameserver
    assert document["verdict"] == "problem"
    spf = next(result for result in document["results"] if result["check"] == "spf")
    assert spf["spf_result"] == "fail"
    assert spf["outcome"] == "fail"
    assert spf["verdict"] == "problem"
    assert spf["explanation"].startswith("SPF result fail")
    checks = [result["check"] for result in document["results"]]
    assert checks == ["mx", "address", "address", "spf", "dmarc", "ptr", "fcrdns"]


def test_csv_for_excel(server, capsys):
    status = run("Example.COM", "--nameserver", server.nameserver, "--format", "csv")
    text = capsys.readouterr().out
    assert status == 0
    assert text.startswith("\ufeffcheck,subject,verdict,outcome,spf_result,records,explanation,next_step")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [row["check"] for row in rows] == ["mx", "address", "address", "spf", "dmarc"]
    assert rows[0]["subject"] == "example.com"
    assert rows[0]["records"].splitlines() == ["example.com MX 10 mx1.example.com", "example.com MX 20 mx2.example.com"]


def test_json_keeps_chinese_readable(server, capsys):
    run("example.com", "--nameserver", server.nameserver, "--format", "json")
    text = capsys.readouterr().out
    assert "\\u" not in text
    assert "偏好值最小" in text


@pytest.mark.timeout(15)
def test_silent_server_bounded(capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", 0))
        port = mute.getsockname()[1]
        started = time.monotonic()
        status = run("example.com", "--nameserver", f"127.0.0.1:{port}", "--timeout", "1", "--format", "json")
        elapsed = time.monotonic() - started
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert elapsed < 1.5
    assert document["verdict"] == "unknown"
    assert document["timeout"] == 1.0
    assert {result["outcome"] for result in document["results"]} == {"timeout", "record_unknown"}
    for result in document["results"]:
        assert result["records"], result


def system_configuration(servers):
    """Return a stand-in for read_system_configuration() that names `servers` as (address, port) pairs."""
    def read() -> dns.resolver.Resolver:
        configured = dns.resolver.Resolver(configure=False)
        configured.nameservers = [dns.nameserver.Do53Nameserver(address, port) for address, port in servers]
        return configured

    return read


def test_without_nameserver_uses_system_servers(server, capsys, monkeypatch):
    monkeypatch.setattr(resolver, "read_system_configuration", system_configuration([(server.address, server.port)]))
    before = server.query_count
    status = run("example.com", "--ip", "127.0.0.25")
    output = capsys.readouterr()
    assert status == 0
    assert output.err == ""
    assert server.query_count > before
    summary = output.out.splitlines()[0]
    assert f"DNS 伺服器 {server.nameserver}，取自本機的 DNS 設定：{resolver.RESOLV_CONF}" in summary
    assert "正常 7 項" in summary


def test_without_nameserver_json_names_servers(server, capsys, monkeypatch):
    monkeypatch.setattr(resolver, "read_system_configuration", system_configuration([(server.address, server.port)]))
    status = run("example.com", "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["nameserver_source"] == "system"
    assert document["nameservers"] == [server.nameserver]
    assert document["nameserver"] == server.nameserver
    assert document["verdict"] == "ok"


def test_without_nameserver_csv_names_servers(server, capsys, monkeypatch):
    monkeypatch.setattr(resolver, "read_system_configuration", system_configuration([(server.address, server.port)]))
    status = run("example.com", "--format", "csv")
    output = capsys.readouterr()
    assert status == 0
    assert output.out.startswith("\ufeffcheck,")
    assert output.err.strip() == f"查詢的 DNS 伺服器：{server.nameserver}，取自本機的 DNS 設定：{resolver.RESOLV_CONF}"


def test_nameserver_option_json_source(server, capsys):
    run("example.com", "--nameserver", server.nameserver, "--format", "json")
    document = json.loads(capsys.readouterr().out)
    assert document["nameserver_source"] == "option"
    assert document["nameservers"] == [server.nameserver]


@pytest.mark.timeout(15)
def test_system_servers_share_time_budget(capsys, monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        servers = [first.getsockname(), second.getsockname()]
        monkeypatch.setattr(resolver, "read_system_configuration", system_configuration(servers))
        started = time.monotonic()
        status = run("example.com", "--timeout", "1", "--format", "json")
        elapsed = time.monotonic() - started
        first.setblocking(False)
        second.setblocking(False)
        # Both silent servers were asked, because each try gets only a share of the budget.
        assert first.recv(4096)
        assert second.recv(4096)
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert elapsed < 1.5
    assert document["verdict"] == "unknown"
    assert document["nameservers"] == [f"127.0.0.1:{port}" for _, port in servers]


@pytest.mark.skipif(sys.platform == "win32", reason="Windows reads its DNS servers from the registry")
@pytest.mark.parametrize("content", [None, "# no servers here\nsearch example.com\noptions timeout:2\n"],
                         ids=["missing-file", "no-nameserver-line"])
def test_no_system_server_clear_error(tmp_path, capsys, monkeypatch, content):
    resolv_conf = tmp_path / "resolv.conf"
    if content is not None:
        resolv_conf.write_text(content, encoding="utf-8")
    monkeypatch.setattr(resolver, "RESOLV_CONF", str(resolv_conf))
    status = run("example.com")
    output = capsys.readouterr()
    assert status == 2
    assert output.out == ""
    assert f"本機沒有設定可用的 DNS 伺服器（讀取的位置：{resolv_conf}）" in output.err
    assert "請用 --nameserver 指定要查詢的 DNS 伺服器 IP" in output.err


def test_help_says_where_queries_go(capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["dns", "check", "--help"])
    text = capsys.readouterr().out
    assert caught.value.code == 0
    assert "[--nameserver HOST[:PORT]]" in text
    assert "指定 --nameserver 時，所有查詢只送往那台 DNS 伺服器" in text
    assert "未指定時，查詢本機設定的 DNS 伺服器" in text
    assert "結束代碼：0" in text
    assert "--timeout SECONDS" in text


@pytest.mark.parametrize("arguments, expected", [
    (["example.com", "--nameserver", "ns1.example.com"], "ns1.example.com"),
    (["example.com", "--nameserver", "127.0.0.1:70000"], "70000"),
    (["exa mple.com", "--nameserver", "127.0.0.1"], "exa mple.com"),
    (["example.com", "--nameserver", "127.0.0.1", "--ip", "192.0.2"], "192.0.2"),
    (["example.com", "--nameserver", "127.0.0.1", "--dnsbl", "dnsbl.test"], "--ip"),
    (["example.com", "--nameserver", "127.0.0.1", "--ip", "192.0.2.1", "--dnsbl", "dnsbl.test=1.2.3.4"],
     "127.0.0.0/8"),
])
def test_bad_input_exit_two(arguments, expected, capsys):
    status = run(*arguments)
    output = capsys.readouterr()
    assert status == 2
    assert output.out == ""
    assert expected in output.err


def test_timeout_zero_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        run("example.com", "--nameserver", "127.0.0.1", "--timeout", "0")
    output = capsys.readouterr()
    assert stopped.value.code == 2
    assert output.out == ""
    assert "--timeout" in output.err


def test_bad_input_sends_no_query(server, capsys):
    before = server.query_count
    status = run("example.com", "--nameserver", server.nameserver, "--ip", "not-an-ip")
    capsys.readouterr()
    assert status == 2
    assert server.query_count == before


def test_results_table_columns_and_rows(server, monkeypatch):
    from adminkb.dnscheck import check_domain, results_table

    results = check_domain("example.com", nameserver=server.nameserver, ip="127.0.0.26", dnsbl=["dnsbl.test"])
    for language, first_column in (("zh-TW", "檢查項目"), ("en", "Check")):
        monkeypatch.setenv("ADMINKB_LANG", language)
        table = results_table(results)
        assert list(table.columns)[0] == first_column
        assert table.shape == (len(results), 6)
        assert table.iloc[:, 1].tolist() == [result.subject for result in results]
        assert results_table(results, explain=False).shape == (len(results), 4)
    monkeypatch.setenv("ADMINKB_LANG", "en")
    spf_row = results_table(results).iloc[[result.check for result in results].index("spf")]
    assert spf_row.iloc[2] == "problem / fail"
