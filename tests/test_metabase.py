"""Reading SMTP virtual servers and IP security lists from MetaBase.xml copies."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from adminkb import metabase
from adminkb.errors import InputError
from adminkb.samples import Notice, SampleTable
from adminkb.metabase import (DENY, GRANT, IpListFormatError, decode_ip_list, encode_ip_list, parse_metabase,
                              read_metabase, settings_table)
from tests.clirun import run_area

DATA = Path(__file__).resolve().parent.parent / "data" / "metabase"

# The relay list SaltStack's win_smtp_server documentation shows after 127.0.0.1 was granted.
SALT_EXAMPLE = bytes([24, 0, 0, 128, 32, 0, 0, 128, 60, 0, 0, 128, 68, 0, 0, 128, 1, 0, 0, 0, 76, 0, 0, 0,
                      0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0,
                      0, 0, 0, 0, 76, 0, 0, 128] + [0] * 16 + [255] * 4 + [127, 0, 0, 1])


def test_decode_published_relay_example():
    decoded = decode_ip_list(SALT_EXAMPLE)
    assert decoded.mode == GRANT
    assert decoded.grant == (ipaddress.IPv4Network("127.0.0.1/32"),)
    assert decoded.deny == ()
    assert decoded.allows("127.0.0.1") is True
    assert decoded.allows("127.0.0.66") is False


def test_encode_matches_published_example():
    assert encode_ip_list(GRANT, ["127.0.0.1"]) == SALT_EXAMPLE


@pytest.mark.parametrize("mode,networks", [
    (GRANT, ["192.0.2.10"]),
    (GRANT, ["192.0.2.10", "198.51.100.0/24", "203.0.113.128/25", "192.0.2.11"]),
    (DENY, ["192.0.2.66", "203.0.113.0/24"]),
])
def test_ip_list_round_trip(mode, networks):
    decoded = decode_ip_list(encode_ip_list(mode, networks))
    assert decoded.mode == mode
    listed = decoded.grant if mode == GRANT else decoded.deny
    assert sorted(map(str, listed)) == sorted(str(ipaddress.IPv4Network(n, strict=False)) for n in networks)


def test_empty_list_means_all_except_nobody():
    decoded = decode_ip_list(b"")
    assert decoded.mode == DENY
    assert decoded.allows("192.0.2.99") is True


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x01\x02\x00\x00", "shorter"),
    (bytes(24), "self-relative"),
    (SALT_EXAMPLE[:60], "claims 2 words"),
    (SALT_EXAMPLE[:30], "outside"),
    (SALT_EXAMPLE[:40] + b"\x17\x00\x00\x00" + SALT_EXAMPLE[44:], "family"),
    (SALT_EXAMPLE[:-8] + b"\xff\xff\x00\xff" + SALT_EXAMPLE[-4:], "mask"),
])
def test_decode_rejects_bad_layouts(data, reason):
    with pytest.raises(IpListFormatError, match=reason):
        decode_ip_list(data)


def test_read_fixture_servers():
    servers = read_metabase(DATA / "MetaBase_smtp.xml")
    assert [server.number for server in servers] == [1, 2, 3]
    first, second, third = servers
    assert [str(binding) for binding in first.bindings] == ["192.0.2.25:25", "127.0.0.1:25"]
    assert first.relay_mode == GRANT
    assert first.relay_allows("192.0.2.10") is True
    assert first.relay_allows("198.51.100.77") is True
    assert first.relay_allows("192.0.2.11") is False
    assert first.relay_for_auth is True
    assert first.log_module == "w3c"
    assert str(first.log_folder()) == r"C:\WINDOWS\System32\LogFiles\SMTPSVC1"
    assert first.pickup_directory == r"C:\Inetpub\mailroot\Pickup"


def test_read_fixture_smart_host_server():
    second = read_metabase(DATA / "MetaBase_smtp.xml")[1]
    assert second.relay_mode == DENY
    assert second.relay_allows("192.0.2.66") is False
    assert second.relay_allows("192.0.2.67") is True
    assert second.connection is None
    assert second.connection_raw[:2] == b"\x01\x02"
    assert second.connection_undecoded is True
    assert second.connection_allows("203.0.113.9") is None
    assert second.smart_host == "[192.0.2.25]"
    assert second.smart_host_type == 2
    assert second.max_message_size == 10485760
    assert second.logging_enabled is False
    assert second.relay_for_auth is False
    assert second.queue_directory == r"D:\mailroot2\Queue"


def test_server_inherits_service_defaults():
    third = read_metabase(DATA / "MetaBase_smtp.xml")[2]
    assert third.relay is None
    assert third.relay_mode == GRANT
    assert third.relay_allows("127.0.0.1") is False
    assert third.connection_allows("203.0.113.9") is True
    assert third.max_message_size == 2097152
    assert third.badmail_directory == r"C:\Inetpub\mailroot\Badmail"


def test_published_example_fixture():
    (server,) = read_metabase(DATA / "MetaBase_relay_localhost.xml")
    assert server.relay.entries() == ["127.0.0.1"]


def test_settings_table_names_each_setting():
    table = settings_table(read_metabase(DATA / "MetaBase_smtp.xml"))
    first = table[table["server"] == "/LM/SmtpSvc/1"].set_index("setting")["value"]
    assert "192.0.2.10" in first["RelayIpList"]
    assert "198.51.100.0/24" in first["RelayIpList"]
    assert first["SmartHost"] == "（未設定）"


def test_undecodable_list_is_kept_with_note():
    xml = (b'<configuration xmlns="urn:microsoft-catalog:XML_Metabase_V64_0"><MBProperty>'
           b'<IIsSmtpServer Location ="/LM/SmtpSvc/1" IPSecurity="0102000001000000"/></MBProperty></configuration>')
    (server,) = parse_metabase(xml)
    assert server.connection is None
    assert server.connection_raw == bytes.fromhex("0102000001000000")
    assert server.connection_allows("192.0.2.1") is None
    assert len(server.notes) == 1
    assert "IPSecurity" in server.notes[0]


@pytest.mark.parametrize("name,key", [
    ("MetaBase_truncated.xml", "metabase.malformed"),
    ("not_metabase.xml", "metabase.not_metabase"),
    ("MetaBase_web_only.xml", "metabase.no_smtp"),
    ("missing.xml", "metabase.not_found"),
])
def test_unusable_files_raise_clear_errors(name, key):
    with pytest.raises(InputError) as caught:
        read_metabase(DATA / name)
    assert caught.value.key == key
    assert name in str(caught.value)
    assert caught.value.next_key is not None


def test_doctype_is_rejected():
    xml = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><configuration/>'
    with pytest.raises(InputError) as caught:
        parse_metabase(xml)
    assert caught.value.key == "metabase.doctype"


@pytest.mark.parametrize("attribute,key", [
    ('MaxMessageSize="big"', "metabase.bad_number"),
    ('RelayIpList="zz"', "metabase.bad_hex"),
    ('ServerBindings="nonsense"', "metabase.bad_binding"),
])
def test_bad_values_raise_clear_errors(attribute, key):
    xml = ('<configuration xmlns="urn:microsoft-catalog:XML_Metabase_V64_0"><MBProperty>'
           f'<IIsSmtpServer Location ="/LM/SmtpSvc/1" {attribute}/></MBProperty></configuration>').encode()
    with pytest.raises(InputError) as caught:
        parse_metabase(xml)
    assert caught.value.key == key


def test_cli_config_read_table(capsys):
    # Virtual server 2 sets connection control, which is never decoded: exit 1, as --help documents.
    assert run_area("config", "read", str(DATA / "MetaBase_smtp.xml")) == 1
    output = capsys.readouterr().out
    assert "/LM/SmtpSvc/2" in output
    assert "[192.0.2.25]" in output


def test_cli_config_read_json(capsys):
    import json
    assert run_area("config", "read", str(DATA / "MetaBase_smtp.xml"), "--format", "json") == 1
    document = json.loads(capsys.readouterr().out)
    settings = {(row["server"], row["setting"]): row["value"] for row in document["settings"]}
    assert settings[("/LM/SmtpSvc/2", "SmartHost")] == "[192.0.2.25]"


def test_cli_config_read_bad_file():
    with pytest.raises(InputError):
        run_area("config", "read", str(DATA / "not_metabase.xml"))


def test_connection_control_never_decoded():
    # Even bytes in the RelayIpList layout are not read as connection control: real IPSecurity
    # values have another, unpublished layout, so decoding them this way would be a guess.
    relay_layout = encode_ip_list(DENY, ["203.0.113.0/24"]).hex()
    xml = ('<configuration xmlns="urn:microsoft-catalog:XML_Metabase_V64_0"><MBProperty>'
           f'<IIsSmtpServer Location ="/LM/SmtpSvc/1" IPSecurity="{relay_layout}"/></MBProperty></configuration>')
    (server,) = parse_metabase(xml.encode())
    assert server.connection is None
    assert server.connection_allows("203.0.113.9") is None
    assert server.connection_undecoded is True


def test_connection_control_in_settings_table():
    table = settings_table(read_metabase(DATA / "MetaBase_smtp.xml"))
    values = table.set_index(["server", "setting"])["value"]
    assert values[("/LM/SmtpSvc/1", "IPSecurity")] == "空值：沒有連線限制（所有電腦都可以連線）"
    assert values[("/LM/SmtpSvc/2", "IPSecurity")] == "已設定，但未解讀（16 位元組）：請在 IIS 管理員「存取」→「連線控制」查看"
    assert values[("/LM/SmtpSvc/3", "IPSecurity")] == "未設定：所有電腦都可以連線"
    notes = table[(table["server"] == "/LM/SmtpSvc/2") & (table["setting"] == "注意")]["value"].tolist()
    assert len(notes) == 1
    assert "開頭 01020000" in notes[0]
    assert "「存取」→「連線控制」" in notes[0]


def test_empty_connection_control_allows_all():
    (first,) = [server for server in read_metabase(DATA / "MetaBase_smtp.xml") if server.number == 1]
    assert first.connection_raw == b""
    assert first.connection_allows("203.0.113.9") is True
    assert first.connection_undecoded is False


# --- runbook 07's step 7 ----------------------------------------------------------------------

def test_runbook_table_reads_given_copy():
    table = metabase.runbook_table(DATA / "MetaBase_smtp.xml", lab=False)
    assert not isinstance(table, SampleTable)
    assert table.equals(metabase.display_table(metabase.read_metabase(DATA / "MetaBase_smtp.xml")))


def test_runbook_table_skipped_for_real_server():
    shown = metabase.runbook_table(None, lab=False)
    assert isinstance(shown, Notice)
    assert shown.startswith("略過這一步：沒有設定 METABASE 參數")
    assert "192.0.2" not in shown


def test_runbook_table_labels_lab_sample():
    shown = metabase.runbook_table(None, lab=True)
    assert isinstance(shown, SampleTable)
    assert shown.note.startswith("範例資料：下表讀自專案附的 data/metabase/MetaBase_smtp.xml，不是您伺服器的設定")
    assert shown.table.equals(metabase.display_table(metabase.read_metabase(DATA / "MetaBase_smtp.xml")))
    page = shown._repr_html_()
    assert page.index("範例資料") < page.index("<table")
    assert repr(shown).startswith("範例資料：")
