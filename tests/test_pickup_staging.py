"""Where the Pickup writer stages a message: outside Pickup, then one rename into it.

The service takes every file in Pickup whatever its name, so the only file that may ever appear
there is the finished message. These tests watch the folder while a large message is written,
with inotify on Linux and by polling everywhere, and check that a failure at any step leaves
no file in Pickup or in the staging folder.
"""

import ctypes
import ctypes.util
import errno
import os
import struct
import sys
import threading

import pytest

from adminkb import mailroot, pickup
from adminkb.errors import InputError

SENDER = "app@example.com"
RECIPIENTS = ["user@example.net"]
# A raw message of about 24 MiB, so that writing it takes long enough for a watcher to look in.
LARGE_LINE_COUNT = 400_000
LARGE_MESSAGE = b"Subject: large\r\n\r\n" + b"".join(
    f"line {number:07d} of a large report, with a dot below\r\n.\r\n".encode("ascii")
    for number in range(LARGE_LINE_COUNT // 2))

# inotify event bits (linux/inotify.h).
IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_OPEN = 0x020
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_ALL_EVENTS = 0xFFF


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    return mailroot.create_mailroot(tmp_path / "mailroot")


def files_under(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


class FolderEvents:
    """The inotify events of one folder (Linux), read after the fact from the kernel's queue."""

    def __init__(self, folder):
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.descriptor = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.descriptor >= 0, os.strerror(ctypes.get_errno())
        watch = self._libc.inotify_add_watch(self.descriptor, os.fsencode(folder), IN_ALL_EVENTS)
        assert watch >= 0, os.strerror(ctypes.get_errno())

    def read(self):
        """Return the queued events as (file name, mask) pairs, in the order they happened."""
        events = []
        while True:
            try:
                data = os.read(self.descriptor, 1 << 20)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(data):
                _watch, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode()
                events.append((name, mask))
                offset += 16 + length

    def close(self):
        os.close(self.descriptor)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is a Linux interface")
def test_pickup_sees_only_finished_file(root):
    folder = root / "Pickup"
    pickup_events = FolderEvents(folder)
    staging_events = FolderEvents(root)
    try:
        path = pickup.write_pickup_file(folder, LARGE_MESSAGE, sender=SENDER, recipients=RECIPIENTS,
                                        name="large.eml")
        in_pickup = pickup_events.read()
        in_staging = staging_events.read()
    finally:
        pickup_events.close()
        staging_events.close()

    assert {name for name, _mask in in_pickup} == {"large.eml"}
    assert [mask & (IN_CREATE | IN_MOVED_TO) for _name, mask in in_pickup][0] != 0, \
        "the file appears in Pickup by a link or a rename"
    written_in_pickup = [mask for _name, mask in in_pickup if mask & (IN_OPEN | IN_MODIFY | IN_CLOSE_WRITE)]
    assert written_in_pickup == [], "nothing is opened or written inside Pickup"

    staged = {name for name, mask in in_staging if mask & IN_CLOSE_WRITE}
    assert len(staged) == 1
    [temporary] = staged
    assert temporary.startswith(pickup.STAGING_PREFIX)
    assert mailroot.is_temporary_file_name(temporary)
    assert (temporary, IN_DELETE) in [(name, mask & IN_DELETE) for name, mask in in_staging]
    assert path.read_bytes() == pickup.pickup_bytes(LARGE_MESSAGE, SENDER, RECIPIENTS)
    assert files_under(root) == ["Pickup/large.eml"]


def test_watcher_never_sees_partial_file(root):
    folder = root / "Pickup"
    expected = pickup.pickup_bytes(LARGE_MESSAGE, SENDER, RECIPIENTS)
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        seen.append((entry.name, entry.stat().st_size))
                    except FileNotFoundError:
                        seen.append((entry.name, None))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        pickup.write_pickup_file(folder, LARGE_MESSAGE, sender=SENDER, recipients=RECIPIENTS, name="large.eml")
    finally:
        stop.set()
        watcher.join(timeout=30)
    seen.extend((entry.name, entry.stat().st_size) for entry in os.scandir(folder))

    assert {name for name, _size in seen} == {"large.eml"}
    assert {size for _name, size in seen} == {len(expected)}


def test_temporary_file_is_in_folder_above_pickup(root, monkeypatch):
    renamed = []
    real_rename = mailroot.rename_without_replacing

    def recording_rename(source, target):
        renamed.append((source, target))
        real_rename(source, target)

    monkeypatch.setattr(mailroot, "rename_without_replacing", recording_rename)
    path = pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER,
                                    recipients=RECIPIENTS)
    [(source, target)] = renamed
    assert source.parent == root
    assert source.name.startswith(pickup.STAGING_PREFIX)
    assert target == path
    assert files_under(root) == [f"Pickup/{path.name}"]


def test_staging_folder_option(root, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    path = pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER,
                                    recipients=RECIPIENTS, staging=staging)
    assert path.parent == root / "Pickup"
    assert list(staging.iterdir()) == []


def test_failed_rename_removes_temporary(root, monkeypatch):
    def denied_rename(source, target):
        raise PermissionError(errno.EACCES, "Permission denied", str(target))

    monkeypatch.setattr(mailroot, "rename_without_replacing", denied_rename)
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER, recipients=RECIPIENTS)
    assert caught.value.key == "pickup.write_failed"
    assert caught.value.value == str(root / "Pickup")
    assert files_under(root) == []


def test_failed_flush_removes_temporary(root, monkeypatch):
    def failing_fsync(descriptor):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER, recipients=RECIPIENTS)
    assert caught.value.key == "pickup.write_failed"
    assert "Input/output error" in str(caught.value)
    assert files_under(root) == []


def test_interrupted_write_removes_temporary(root, monkeypatch):
    def interrupted_rename(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(mailroot, "rename_without_replacing", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER, recipients=RECIPIENTS)
    assert files_under(root) == []


def test_cross_volume_rename_is_input_error(root, monkeypatch):
    def cross_device(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(source), None, str(target))

    monkeypatch.setattr(mailroot, "rename_without_replacing", cross_device)
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER, recipients=RECIPIENTS)
    assert caught.value.key == "pickup.staging_other_volume"
    assert str(root) in str(caught.value)
    assert "staging=" in str(caught.value)
    assert files_under(root) == []


def test_denied_staging_folder_is_input_error(root, monkeypatch):
    def denied_mkstemp(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(root))

    monkeypatch.setattr(pickup.tempfile, "mkstemp", denied_mkstemp)
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER, recipients=RECIPIENTS)
    assert caught.value.key == "pickup.staging_failed"
    assert caught.value.value == str(root)
    assert "folder above Pickup" in str(caught.value)
    assert files_under(root) == []


@pytest.mark.parametrize("inside", ["", "sub"])
def test_staging_inside_pickup_is_input_error(root, inside):
    staging = root / "Pickup" / inside
    staging.mkdir(exist_ok=True)
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER, recipients=RECIPIENTS,
                                 staging=staging)
    assert caught.value.key == "pickup.staging_in_pickup"
    assert "any name" in str(caught.value)
    assert [path for path in (root / "Pickup").iterdir() if path.is_file()] == []


def test_missing_staging_folder_is_input_error(root):
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER, recipients=RECIPIENTS,
                                 staging=root / "absent")
    assert caught.value.key == "pickup.staging_missing"
    assert str(root / "absent") in str(caught.value)
    assert files_under(root) == []


def test_pickup_at_drive_root_needs_staging(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    drive_root = os.path.abspath(os.sep)
    with pytest.raises(InputError) as caught:
        pickup.staging_folder(drive_root)
    assert caught.value.key == "pickup.staging_needed"
    assert "root of a drive" in str(caught.value)


def test_service_takes_file_before_writer_returns(root, monkeypatch):
    # The real service may take the file right after the rename, so the writer must not look at it again.
    real_rename = mailroot.rename_without_replacing
    taken_by_service = []

    def rename_then_take(source, target):
        real_rename(source, target)
        taken_by_service.append(target.read_bytes())
        target.unlink()

    monkeypatch.setattr(mailroot, "rename_without_replacing", rename_then_take)
    path = pickup.write_pickup_file(root / "Pickup", b"Subject: s\r\n\r\nx\r\n", sender=SENDER, recipients=RECIPIENTS,
                                    name="quick.eml")
    assert path == root / "Pickup" / "quick.eml"
    assert taken_by_service == [pickup.pickup_bytes(b"Subject: s\r\n\r\nx\r\n", SENDER, RECIPIENTS)]
    assert files_under(root) == []


def test_bad_file_name_is_input_error(root):
    with pytest.raises(InputError) as caught:
        pickup.write_pickup_bytes(root / "Pickup", "../escape.eml", b"X-Sender: a@example.com\r\n")
    assert caught.value.key == "mailroot.bad_file_name"
    assert files_under(root) == []
