"""The mail lab's faster receive paths: session set-up, idle timer, W3C log file and queue file writes.

Each path replaces a slower one that behaved the same, so the tests compare the new path with
aiosmtpd's own set-up or with the output the old code gave, through real files and sockets.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from adminkb import mailroot
from adminkb.lab import LAB_ADDRESS, FixedClock, MailLab
from adminkb.lab import service as service_module
from adminkb.lab import session as session_module
from adminkb.lab.clock import TAIWAN_TIME, rfc2822_date
from adminkb.lab.policy import GRANT, AccessList
from adminkb.lab.service import VirtualServer
from adminkb.lab.session import IisSmtpSession
from adminkb.lab.w3clog import FULL_FIELDS, LogEntry, W3CLogWriter, escape_value

START = datetime(2026, 3, 2, 1, 15, 7, tzinfo=timezone.utc)
SOCKET_TIMEOUT = 10

# Attributes whose values differ per object (a new reader, future or bound method each time).
PER_OBJECT_ATTRIBUTES = {"_stream_reader_wr", "_strong_reader", "_closed", "_client_connected_cb", "loop"}
# The dispatch tables that aiosmtpd builds by introspection and the lab's command loop never reads.
UNUSED_TABLES = {"_auth_methods", "_smtp_methods"}


def make_server(root: Path) -> VirtualServer:
    writer = W3CLogWriter(root / "LogFiles" / "SMTPSVC1", "SMTPSVC1", "MAIL01")
    return VirtualServer(hostname="mail01.example.com", computer_name="MAIL01", version="6.0.3790.4675",
                         zone=TAIWAN_TIME, clock=FixedClock(START),
                         mailroot_path=mailroot.create_mailroot(root / "mailroot"), log_writer=writer,
                         local_domains=["example.com"], relay=AccessList.of(GRANT, ["127.0.0.1"]),
                         connection=None, max_message_size=2_097_152)


def entry(**changes) -> LogEntry:
    values = dict(when=START, client_ip="198.51.100.7", server_ip="192.0.2.10", method="MAIL",
                  cs_uri_query=" FROM: <web@example.net>", username="app01", status=250,
                  sc_bytes=57, cs_bytes=45)
    values.update(changes)
    return LogEntry(**values)


def reference_line(writer: W3CLogWriter, item: LogEntry) -> str:
    """Build one log line the way the writer did before its line format was compiled."""
    when = item.when.astimezone(timezone.utc)
    values = {
        "date": f"{when:%Y-%m-%d}", "time": f"{when:%H:%M:%S}", "c-ip": item.client_ip,
        "cs-username": item.username, "s-sitename": writer.site_name, "s-computername": writer.computer_name,
        "s-ip": item.server_ip, "s-port": item.server_port, "cs-method": item.method, "cs-uri-stem": "",
        "cs-uri-query": item.cs_uri_query, "sc-status": item.status, "sc-win32-status": item.win32_status,
        "sc-bytes": item.sc_bytes, "cs-bytes": item.cs_bytes, "time-taken": item.time_taken, "cs-version": "SMTP",
    }
    return " ".join(escape_value(values.get(name, "")) for name in writer.fields) + "\r\n"


def open_paths() -> set[str]:
    """Return the files this process has open (Linux /proc)."""
    folder = Path("/proc/self/fd")
    paths = set()
    for link in folder.iterdir():
        try:
            paths.add(os.readlink(link))
        except OSError:
            continue
    return paths


# Session set-up


def test_session_attributes_match_aiosmtpd(tmp_path):
    server = make_server(tmp_path)
    loop = asyncio.new_event_loop()
    try:
        fast = IisSmtpSession(server, loop=loop, timeout=600.0)
        reference = IisSmtpSession.__new__(IisSmtpSession)
        # The call the lab made before it stopped running SMTP.__init__ on every connection.
        SMTP.__init__(reference, server, hostname=server.hostname, loop=loop, timeout=600.0,
                      data_size_limit=None, decode_data=False, enable_SMTPUTF8=False)
        expected = vars(reference)
        actual = vars(fast)
        missing = set(expected) - set(actual)
        assert missing == set()
        for name in set(expected) - PER_OBJECT_ATTRIBUTES - UNUSED_TABLES:
            assert actual[name] == expected[name], name
        assert fast.loop is loop
        assert fast._stream_reader._limit == reference._stream_reader._limit
    finally:
        loop.close()


def test_session_tables_stay_empty(tmp_path):
    loop = asyncio.new_event_loop()
    try:
        session = IisSmtpSession(make_server(tmp_path), loop=loop, timeout=600.0)
    finally:
        loop.close()
    assert session._smtp_methods == {}
    assert session._auth_methods == {}
    assert session._handle_hooks == {}


# Idle timer


@pytest.mark.timeout(30)
def test_idle_timer_follows_activity(tmp_path):
    # Each NOOP moves the deadline, so the one timer must be set again instead of closing the session.
    timeout = 0.5
    with MailLab(root=tmp_path, clock=FixedClock(START), connection_timeout=timeout) as lab:
        with socket.create_connection((LAB_ADDRESS, lab.port), timeout=SOCKET_TIMEOUT) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"220 ")
            began = time.monotonic()
            for _ in range(6):
                time.sleep(timeout * 0.6)
                sock.sendall(b"NOOP\r\n")
                assert reader.readline().startswith(b"250 ")
            active_until = time.monotonic()
            assert active_until - began > timeout * 3
            assert reader.readline() == b""
            idle = time.monotonic() - active_until
            assert idle >= timeout * 0.9
            assert idle < timeout + 3


@pytest.mark.timeout(30)
def test_idle_timer_closes_every_session(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START), connection_timeout=0.3) as lab:
        sockets = [socket.create_connection((LAB_ADDRESS, lab.port), timeout=SOCKET_TIMEOUT) for _ in range(5)]
        try:
            readers = [sock.makefile("rb") for sock in sockets]
            for reader in readers:
                assert reader.readline().startswith(b"220 ")
            for reader in readers:
                assert reader.readline() == b""
        finally:
            for sock in sockets:
                sock.close()


# W3C log writer


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.sampled_from(FULL_FIELDS), min_size=1, unique=True),
       method=st.text(max_size=8), query=st.text(max_size=30), username=st.text(max_size=12),
       status=st.integers(min_value=0, max_value=999), sc_bytes=st.integers(min_value=0, max_value=10**9),
       seconds=st.integers(min_value=0, max_value=400 * 86400))
def test_log_line_matches_reference(tmp_path_factory, fields, method, query, username, status, sc_bytes,
                                    seconds):
    folder = tmp_path_factory.mktemp("log")
    writer = W3CLogWriter(folder, "SMTP{0}SVC", "MAIL}01", fields=fields, encoding="utf-8")
    item = entry(when=START.astimezone(TAIWAN_TIME) + timedelta(seconds=seconds, microseconds=seconds % 7),
                 method=method, cs_uri_query=query, username=username, status=status, sc_bytes=sc_bytes)
    try:
        path = writer.write(item)
    finally:
        writer.close()
    written = path.read_bytes().decode("utf-8", errors="surrogateescape")
    assert written.endswith(reference_line(writer, item))
    assert written.count("\r\n") == 5


def test_log_cache_follows_clock(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01")
    instants = [START, START + timedelta(microseconds=500), START + timedelta(seconds=1),
                START + timedelta(days=1), START]
    paths = [writer.write(entry(when=when)) for when in instants]
    writer.close()
    assert [path.name for path in paths] == ["ex260302.log"] * 3 + ["ex260303.log", "ex260302.log"]
    first_day = paths[0].read_bytes().decode("cp950").split("\r\n")
    assert [line[:19] for line in first_day if line[:1].isdigit()] == [
        "2026-03-02 01:15:07", "2026-03-02 01:15:07", "2026-03-02 01:15:08", "2026-03-02 01:15:07"]


def test_log_removed_file_recreated(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01")
    path = writer.write(entry(method="HELO"))
    path.unlink()
    writer.write(entry(method="MAIL"))
    writer.close()
    lines = path.read_bytes().decode("cp950").split("\r\n")[:-1]
    assert len(lines) == 1
    assert " MAIL " in lines[0]


def test_log_replaced_file_not_written(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01")
    path = writer.write(entry(method="HELO"))
    moved = path.rename(tmp_path / "ex260302.old")
    writer.write(entry(method="MAIL"))
    writer.close()
    assert " MAIL " not in moved.read_bytes().decode("cp950")
    assert " MAIL " in path.read_bytes().decode("cp950")


def test_log_line_visible_before_close(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01")
    try:
        path = writer.write(entry(method="RCPT"))
        assert path.read_bytes().endswith(b" RCPT - +FROM:+<web@example.net> 250 0 57 45 0 SMTP - - - -\r\n")
    finally:
        writer.close()


def test_log_write_after_close_reopens(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01")
    writer.write(entry(method="HELO"))
    writer.close()
    writer.close()
    path = writer.write(entry(method="QUIT"))
    writer.close()
    text = path.read_bytes().decode("cp950")
    assert text.count("#Fields:") == 1
    assert text.index(" HELO ") < text.index(" QUIT ")


def test_log_lines_whole_across_threads(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01")
    per_thread = 200

    def write_lines(number: int) -> None:
        for index in range(per_thread):
            writer.write(entry(method=f"T{number}", cs_uri_query=f" {index:04d}"))

    threads = [threading.Thread(target=write_lines, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SOCKET_TIMEOUT)
    writer.close()
    lines = (tmp_path / "ex260302.log").read_bytes().decode("cp950").split("\r\n")[4:-1]
    assert len(lines) == 4 * per_thread
    for number in range(4):
        queries = [line.split(" ")[10] for line in lines if line.split(" ")[8] == f"T{number}"]
        assert queries == [f"+{index:04d}" for index in range(per_thread)]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc to list open files")
def test_lab_stop_closes_log_file(tmp_path):
    with MailLab(root=tmp_path, clock=FixedClock(START)) as lab:
        with socket.create_connection((LAB_ADDRESS, lab.port), timeout=SOCKET_TIMEOUT) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"QUIT\r\n")
            assert reader.readline().startswith(b"221 ")
        log_file = str(lab.log_files()[0])
        assert log_file in open_paths()
    assert log_file not in open_paths()


def test_writer_dropped_closes_file(tmp_path):
    writer = W3CLogWriter(tmp_path, "SMTPSVC1", "MAIL01")
    path = writer.write(entry())
    handle = writer._handle
    assert handle is not None
    del writer
    assert handle.closed
    assert path.exists()


# Queue files


def test_queue_file_written_whole(tmp_path):
    server = make_server(tmp_path)
    stored = server.store(sender="app@example.com", recipients=["user@example.net"],
                          content=b"Subject: t\r\n\r\nbody\r\n", helo="app01", client_ip="127.0.0.1",
                          message_id="<m1@app.example.com>")
    queue = tmp_path / "mailroot" / "Queue"
    assert [path.name for path in queue.iterdir()] == [stored.files[0].name]
    data = stored.files[0].read_bytes()
    assert data.startswith(b"X-Sender: app@example.com\r\nX-Receiver: user@example.net\r\nReceived: from app01 ")
    assert data.endswith(b"\r\n\r\nbody\r\n")
    assert stat.S_IMODE(stored.files[0].stat().st_mode) == 0o600


def test_queue_taken_name_skipped(tmp_path):
    server = make_server(tmp_path)
    queue = tmp_path / "mailroot" / "Queue"
    filetime = mailroot.filetime_from_datetime(START)
    taken = [queue / mailroot.ntfs_file_name(filetime, counter) for counter in (1, 2)]
    for path in taken:
        path.write_bytes(b"left by an earlier run\r\n")
    stored = server.store(sender="app@example.com", recipients=["user@example.net"], content=b"x\r\n",
                          helo="app01", client_ip="127.0.0.1", message_id="<m2@app.example.com>")
    assert stored.files[0].name == mailroot.ntfs_file_name(filetime, 3)
    for path in taken:
        assert path.read_bytes() == b"left by an earlier run\r\n"
    assert sorted(path.name for path in queue.iterdir()) == sorted(
        [path.name for path in taken] + [stored.files[0].name])


def test_queue_temporary_name_recognized(tmp_path, monkeypatch):
    server = make_server(tmp_path)
    linked = []
    real_link = os.link

    def recording_link(source, target, **options):
        linked.append(os.path.basename(source))
        return real_link(source, target, **options)

    monkeypatch.setattr(service_module.os, "link", recording_link)
    server.store(sender="app@example.com", recipients=["user@example.com", "user@example.net"], content=b"x\r\n",
                 helo="app01", client_ip="127.0.0.1", message_id="<m3@app.example.com>")
    assert len(linked) == 2
    for name in linked:
        assert mailroot.is_temporary_file_name(name)
    for folder in ("Drop", "Queue"):
        assert [path.name for path in (tmp_path / "mailroot" / folder).iterdir() if path.name.startswith(".")] == []


def test_queue_leftover_temporary_skipped(tmp_path):
    server = make_server(tmp_path)
    queue = tmp_path / "mailroot" / "Queue"
    # A temporary file from a crashed run with the name the next write would try first.
    leftover = queue / f".lab{os.getpid():x}-1.EML.tmp"
    leftover.write_bytes(b"half a message")
    stored = server.store(sender="app@example.com", recipients=["user@example.net"], content=b"x\r\n",
                          helo="app01", client_ip="127.0.0.1", message_id="<m4@app.example.com>")
    assert leftover.read_bytes() == b"half a message"
    assert b"\r\nx\r\n" in stored.files[0].read_bytes()


# Command parsing


def test_mailbox_check_matches_isspace():
    # The regular expression replaced a per-character str.isspace() test; both must reject the same characters.
    rejected = [chr(code) for code in range(0x110000) if not session_module._plausible_mailbox(f"a{chr(code)}b@example.com")]
    expected = [chr(code) for code in range(0x110000) if chr(code).isspace() or chr(code) in "<>"]
    assert rejected == expected


def test_date_text_follows_clock(tmp_path):
    server = make_server(tmp_path)
    instants = [START, START + timedelta(microseconds=999_999), START + timedelta(seconds=1), START]
    for instant in instants:
        assert server._date_text(instant) == rfc2822_date(instant, TAIWAN_TIME)
    server.zone = timezone.utc
    assert server._date_text(START) == "Mon, 2 Mar 2026 01:15:07 +0000"
