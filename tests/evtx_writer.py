"""Write small but real .evtx files for the event log tests.

The layout follows the published EVTX format description (libyal's "Windows XML Event Log
(EVTX) format" document): a 4096-byte file header, one 64 KiB chunk with its header and CRC32
checksums, and event records whose Binary XML spells every element and attribute inline
(no templates). The `evtx` package reads these files like exports from Event Viewer.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

CHUNK_SIZE = 65536
CHUNK_HEADER_SIZE = 512
FILE_HEADER_BLOCK = 4096
EVENT_NAMESPACE = "http://schemas.microsoft.com/win/2004/08/events/event"
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Event:
    """One event to write: source, ID, level (2 error, 3 warning, 4 information), time and data strings."""

    source: str
    event_id: int
    level: int
    time: datetime
    data: tuple[str, ...] = ()
    computer: str = "MAIL01"
    channel: str = "System"


def _filetime(moment: datetime) -> int:
    delta = moment - _FILETIME_EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _name_hash(name: str) -> int:
    value = 0
    for character in name:
        value = (value * 65599 + ord(character)) & 0xFFFFFFFF
    return value & 0xFFFF


class _BinXml:
    """Binary XML for one record; `base` is the chunk offset where this fragment starts."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.out = bytearray(b"\x0f\x01\x01\x00")

    def _inline_name(self, name: str) -> bytes:
        # The name offset points just past itself, so the name structure follows inline.
        offset = self.base + len(self.out) + 4
        encoded = name.encode("utf-16-le")
        return (struct.pack("<I", offset) + struct.pack("<IHH", 0, _name_hash(name), len(name))
                + encoded + b"\x00\x00")

    @staticmethod
    def _text(value: str) -> bytes:
        return b"\x05\x01" + struct.pack("<H", len(value)) + value.encode("utf-16-le")

    def element(self, name: str, attributes: dict[str, str] | None = None, text: str | None = None,
                children: list | None = None) -> None:
        attributes = attributes or {}
        token = 0x41 if attributes else 0x01
        # Elements written directly in a record have no dependency identifier (templates do).
        self.out += bytes([token]) + b"\x00\x00\x00\x00"
        size_at = len(self.out) - 4
        self.out += self._inline_name(name)
        if attributes:
            list_size_at = len(self.out)
            self.out += b"\x00\x00\x00\x00"
            items = list(attributes.items())
            for index, (attribute, value) in enumerate(items):
                more = index < len(items) - 1
                self.out += bytes([0x46 if more else 0x06])
                self.out += self._inline_name(attribute)
                self.out += self._text(value)
            struct.pack_into("<I", self.out, list_size_at, len(self.out) - list_size_at - 4)
        if text is None and not children:
            self.out += b"\x03"
        else:
            self.out += b"\x02"
            if text is not None:
                self.out += self._text(text)
            for child in children or []:
                self.element(*child)
            self.out += b"\x04"
        struct.pack_into("<I", self.out, size_at, len(self.out) - size_at - 4)

    def finish(self) -> bytes:
        return bytes(self.out + b"\x00")


def _record(event: Event, record_id: int, offset: int) -> bytes:
    xml = _BinXml(offset + 24)
    system = [
        ("Provider", {"Name": event.source}),
        ("EventID", {"Qualifiers": "49152" if event.level <= 2 else "32768"}, str(event.event_id)),
        ("Level", None, str(event.level)),
        ("TimeCreated", {"SystemTime": event.time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}),
        ("EventRecordID", None, str(record_id)),
        ("Channel", None, event.channel),
        ("Computer", None, event.computer),
    ]
    data = [("Data", None, value) for value in event.data]
    xml.element("Event", {"xmlns": EVENT_NAMESPACE}, None, [("System", None, None, system),
                                                             ("EventData", None, None, data)])
    body = xml.finish()
    size = 24 + len(body) + 4
    return (b"\x2a\x2a\x00\x00" + struct.pack("<IQQ", size, record_id, _filetime(event.time)) + body
            + struct.pack("<I", size))


def write_evtx(path: str | Path, events: list[Event]) -> Path:
    """Write `events` (record IDs from 1) into one chunk of a new .evtx file at `path`."""
    records = bytearray()
    last_offset = CHUNK_HEADER_SIZE
    for number, event in enumerate(events, start=1):
        offset = CHUNK_HEADER_SIZE + len(records)
        last_offset = offset
        records += _record(event, number, offset)
    if CHUNK_HEADER_SIZE + len(records) > CHUNK_SIZE:
        raise ValueError("the events do not fit into one chunk")
    count = len(events)
    chunk = bytearray(CHUNK_SIZE)
    chunk[0:8] = b"ElfChnk\x00"
    struct.pack_into("<QQQQIII", chunk, 8, 1, count, 1, count, 128, last_offset, CHUNK_HEADER_SIZE + len(records))
    chunk[CHUNK_HEADER_SIZE:CHUNK_HEADER_SIZE + len(records)] = records
    struct.pack_into("<I", chunk, 52, zlib.crc32(bytes(records)))
    struct.pack_into("<I", chunk, 124, zlib.crc32(bytes(chunk[0:120]) + bytes(chunk[128:512])))

    header = bytearray(FILE_HEADER_BLOCK)
    header[0:8] = b"ElfFile\x00"
    struct.pack_into("<QQQIHHHH", header, 8, 0, 0, count + 1, 128, 2, 3, FILE_HEADER_BLOCK, 1)
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[0:120])))
    target = Path(path)
    target.write_bytes(bytes(header) + bytes(chunk))
    return target
