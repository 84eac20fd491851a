"""The lab's W3C Extended log writer: directive lines, field layout, escaping, blocks and rollover."""

from datetime import datetime, timedelta, timezone

import pytest

from adminkb.errors import InputError
from adminkb.lab.w3clog import (
    FULL_FIELDS,
    SERVICE_DEFAULT_FIELDS,
    LogEntry,
    W3CLogWriter,
    escape_value,
    validate_fields,
)

START = datetime(2026, 3, 2, 1, 15, 7, tzinfo=timezone.utc)

FULL_FIELDS_LINE = ("#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method "
                    "cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken "
                    "cs-version cs-host cs(User-Agent) cs(Cookie) cs(Referer) ")


def mail_entry(when=START, **changes):
    values = dict(when=when, client_ip="198.51.100.7", server_ip="192.0.2.10", method="MAIL",
                  cs_uri_query=" FROM: <web@example.net>", username="app01", status=250,
                  sc_bytes=57, cs_bytes=45)
    values.update(changes)
    return LogEntry(**values)


@pytest.fixture
def writer(tmp_path):
    return W3CLogWriter(tmp_path / "SMTPSVC1", "SMTPSVC1", "MAIL01")


def read_lines(path):
    data = path.read_bytes()
    assert data.endswith(b"\r\n")
    return data.decode("cp950").split("\r\n")[:-1]


def test_first_entry_writes_directives(writer):
    path = writer.write(mail_entry())
    assert path.name == "ex260302.log"
    assert read_lines(path)[:4] == [
        "#Software: Microsoft Internet Information Services 6.0",
        "#Version: 1.0",
        "#Date: 2026-03-02 01:15:07",
        FULL_FIELDS_LINE,
    ]


def test_fields_line_ends_with_space(writer):
    path = writer.write(mail_entry())
    assert b"cs(Referer) \r\n" in path.read_bytes()


def test_entry_layout_matches_service(writer):
    path = writer.write(mail_entry())
    assert read_lines(path)[4] == ("2026-03-02 01:15:07 198.51.100.7 app01 SMTPSVC1 MAIL01 192.0.2.10 0 MAIL - "
                                   "+FROM:+<web@example.net> 250 0 57 45 0 SMTP - - - -")


def test_every_line_ends_crlf(writer):
    for second in range(3):
        path = writer.write(mail_entry(when=START + timedelta(seconds=second)))
    data = path.read_bytes()
    assert data.count(b"\r\n") == 7
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_empty_values_become_dash(writer):
    path = writer.write(mail_entry(method="RSET", cs_uri_query="", username=""))
    fields = read_lines(path)[4].split(" ")
    assert fields[3] == "-"
    assert fields[10] == "-"


def test_escape_value():
    assert escape_value(" FROM: <a@example.net>") == "+FROM:+<a@example.net>"
    assert escape_value("") == "-"
    assert escape_value(None) == "-"
    assert escape_value(0) == "0"


def test_timestamps_are_utc(writer):
    taipei = START.astimezone(timezone(timedelta(hours=8)))
    path = writer.write(mail_entry(when=taipei))
    assert read_lines(path)[4].startswith("2026-03-02 01:15:07 ")


def test_service_default_fields(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01", fields=SERVICE_DEFAULT_FIELDS)
    path = writer.write(mail_entry())
    lines = read_lines(path)
    assert lines[3] == "#Fields: time c-ip cs-method cs-uri-stem sc-status "
    assert lines[4] == "01:15:07 198.51.100.7 MAIL - 250"


def test_fields_from_string(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01", fields="time c-ip cs-method cs-uri-stem sc-status")
    assert writer.fields == SERVICE_DEFAULT_FIELDS


def test_field_change_starts_block(writer):
    writer.write(mail_entry())
    writer.set_fields(SERVICE_DEFAULT_FIELDS)
    path = writer.write(mail_entry(when=START + timedelta(seconds=5)))
    lines = read_lines(path)
    assert [line for line in lines if line.startswith("#Fields")] == [
        FULL_FIELDS_LINE, "#Fields: time c-ip cs-method cs-uri-stem sc-status "]
    assert lines[-3] == "#Date: 2026-03-02 01:15:12"
    assert lines[-1] == "01:15:12 198.51.100.7 MAIL - 250"


def test_same_fields_keep_block(writer):
    writer.write(mail_entry())
    writer.set_fields(FULL_FIELDS)
    path = writer.write(mail_entry())
    assert read_lines(path).count("#Version: 1.0") == 1


def test_new_block_after_restart(writer):
    writer.write(mail_entry())
    writer.start_new_block()
    path = writer.write(mail_entry(when=START + timedelta(minutes=1)))
    lines = read_lines(path)
    assert lines.count("#Software: Microsoft Internet Information Services 6.0") == 2
    assert lines[5:9] == ["#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0",
                          "#Date: 2026-03-02 01:16:07", FULL_FIELDS_LINE]


def test_new_writer_appends_block(tmp_path):
    W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01").write(mail_entry())
    path = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01").write(mail_entry())
    assert read_lines(path).count("#Version: 1.0") == 2


def test_daily_rollover_by_utc_date(writer):
    first = writer.write(mail_entry(when=datetime(2026, 3, 2, 23, 59, 59, tzinfo=timezone.utc)))
    # 08:00 in Taipei on 3 March is still 2 March in UTC: same file.
    same = writer.write(mail_entry(when=datetime(2026, 3, 3, 7, 59, 59, tzinfo=timezone(timedelta(hours=8)))))
    second = writer.write(mail_entry(when=datetime(2026, 3, 3, 0, 0, 1, tzinfo=timezone.utc)))
    assert first == same
    assert first.name == "ex260302.log"
    assert second.name == "ex260303.log"
    assert read_lines(second)[2] == "#Date: 2026-03-03 00:00:01"
    assert len(read_lines(first)) == 6


def test_client_bytes_kept_as_sent(writer):
    # A HELO name in Big5 bytes that the session decoded with surrogateescape.
    raw = "主機".encode("cp950")
    name = raw.decode("ascii", errors="surrogateescape")
    path = writer.write(mail_entry(username=name))
    assert b" " + raw + b" SMTPSVC1 " in path.read_bytes()


def test_utf8_encoding(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "郵件", encoding="utf-8")
    path = writer.write(mail_entry())
    assert " 郵件 " in path.read_bytes().decode("utf-8")


def test_unknown_field_is_input_error(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        validate_fields(["date", "cs-uri"])
    assert caught.value.value == "cs-uri"
    assert "cs-uri-query" in str(caught.value)


def test_duplicate_field_is_input_error():
    with pytest.raises(InputError):
        validate_fields(["time", "time"])


def test_no_fields_is_input_error():
    with pytest.raises(InputError):
        validate_fields([])


def test_unknown_encoding_is_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    with pytest.raises(InputError) as caught:
        W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01", encoding="big-five")
    assert "big-five" in str(caught.value)
