"""Read the SMTP virtual servers from a copy of the IIS 6.0 metabase (`MetaBase.xml`).

IIS 6.0 keeps its configuration in `%SystemRoot%\\System32\\inetsrv\\MetaBase.xml`: a
`configuration` element in the `urn:microsoft-catalog:XML_Metabase_V64_0` namespace, holding an
`MBProperty` element whose children are the metabase keys. Each SMTP virtual server is an
`IIsSmtpServer` element with `Location="/LM/SmtpSvc/N"`; the `IIsSmtpService` element at
`/LM/SmtpSvc` contains the values every virtual server inherits. Properties are XML attributes:
numbers in decimal, multi-string values one per line, binary values as hexadecimal text.

The relay list (`RelayIpList`) and connection control (`IPSecurity`) are both of the type
IPSECLIST. Microsoft documents their meaning but not their byte layout. `decode_ip_list` reads
the relay list in the layout public examples confirm. Connection control is kept undecoded:
values in real metabases start with the bytes 01 02, which that layout does not allow, and no
public source describes theirs.

Sources: Microsoft's IIS 6.0 metabase property reference (RelayIpList, RelayForAuth,
SmartHostType, IPSecurity pages on learn.microsoft.com) and the relay-list examples in
SaltStack's `salt/modules/win_smtp_server.py`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import struct
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import pandas as pd

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.samples import SAMPLE_METABASE, Notice, SampleTable, sample_name

NAMESPACE = "urn:microsoft-catalog:XML_Metabase_V64_0"
SERVICE_LOCATION = "/lm/smtpsvc"

# LogPluginClsid values of the IIS logging modules (the same CLSIDs IIS 7 still uses).
LOG_MODULES = {
    "{FF160663-DE82-11CF-BC0A-00AA006111E0}": "w3c",
    "{FF160657-DE82-11CF-BC0A-00AA006111E0}": "iis",
    "{FF16065F-DE82-11CF-BC0A-00AA006111E0}": "ncsa",
    "{FF16065B-DE82-11CF-BC0A-00AA006111E0}": "odbc",
}

# SmartHostType: 0 no smart host, 1 try direct delivery first, 2 always use the smart host.
SMART_HOST_TYPES = {0: "none", 1: "direct_first", 2: "always"}

DEFAULT_MAX_MESSAGE_SIZE = 2097152
# Self-relative offsets in an IP security list carry this flag bit.
_SELF_RELATIVE = 0x80000000
_HEADER_SIZE = 24
_ENTRY_SIZE = 20
_AF_INET = 2
# A metabase file larger than this is not a MetaBase.xml copy (real ones are well under 10 MB).
MAX_FILE_SIZE = 64 * 1024 * 1024

GRANT = "grant"
DENY = "deny"


class IpListFormatError(ValueError):
    """The bytes of an IP security list do not follow the layout `decode_ip_list` reads."""


@dataclass(frozen=True)
class IpList:
    """A decoded IP security list: its mode and the networks in each list.

    `mode` is GRANT ("Only the list below": every address not listed is denied), DENY ("All
    except the list below"), or None when the bytes do not say which.
    """

    mode: str | None
    grant: tuple[ipaddress.IPv4Network, ...] = ()
    deny: tuple[ipaddress.IPv4Network, ...] = ()
    flags: int | None = None

    def allows(self, address: str) -> bool | None:
        """Return whether `address` passes this list, or None when the mode is unknown."""
        ip = ipaddress.ip_address(address)
        if self.mode == GRANT:
            return any(ip in network for network in self.grant)
        if self.mode == DENY:
            return not any(ip in network for network in self.deny)
        return None

    def entries(self) -> list[str]:
        """Return the listed networks as text: an address alone for /32, else address/prefix."""
        networks = self.grant if self.mode == GRANT else self.deny
        return [_network_text(network) for network in networks]


def _network_text(network: ipaddress.IPv4Network) -> str:
    return str(network.network_address) if network.prefixlen == 32 else str(network)


def decode_ip_list(data: bytes) -> IpList:
    """Decode a relay list (RelayIpList) as IIS 6.0 writes it.

    Confirmed by two public examples of a relay list that grants 127.0.0.1 (SaltStack's
    win_smtp_server module and a published PowerShell script that writes the same bytes).
    Every number is a little-endian 32-bit word. The list starts with four self-relative
    offsets (flag bit 0x80000000) to two address lists and two name lists. Then come a word
    of 1 and the size of the fixed part (76 for one mask). An address list is a header (entry
    count, address count) followed by its entries. An entry is (address family 2, number of
    stored words, full mask bytes, last mask byte, offset of its data). The data is the mask,
    then the addresses that share it. A granted address sits in the second address list.

    NOTE: unconfirmed, inferred from those two examples only: that the first address list is
    the deny list, that the stored-word count includes the mask, the meaning of the word
    after the offsets (kept as `flags`), and layouts with several masks or with host names.
    An empty value is "All except the list below" with nobody listed, as SaltStack describes.
    """
    if len(data) == 0:
        return IpList(mode=DENY, flags=None)
    if len(data) < _HEADER_SIZE:
        raise IpListFormatError(f"{len(data)} bytes is shorter than the {_HEADER_SIZE}-byte header")
    offsets = struct.unpack_from("<4I", data, 0)
    for offset in offsets:
        if not offset & _SELF_RELATIVE:
            raise IpListFormatError(f"offset 0x{offset:08x} lacks the self-relative flag")
    flags = struct.unpack_from("<I", data, 16)[0]
    deny = _read_address_list(data, offsets[0] & ~_SELF_RELATIVE)
    grant = _read_address_list(data, offsets[1] & ~_SELF_RELATIVE)
    if grant and deny:
        raise IpListFormatError("both the grant and the deny list contain addresses")
    mode = None
    if grant:
        mode = GRANT
    elif deny:
        mode = DENY
    return IpList(mode=mode, grant=tuple(grant), deny=tuple(deny), flags=flags)


def _read_word(data: bytes, offset: int) -> int:
    if offset < 0 or offset + 4 > len(data):
        raise IpListFormatError(f"offset {offset} is outside the {len(data)} bytes")
    return struct.unpack_from("<I", data, offset)[0]


def _read_address_list(data: bytes, offset: int) -> list[ipaddress.IPv4Network]:
    entry_count = _read_word(data, offset)
    address_count = _read_word(data, offset + 4)
    if entry_count > 1024 or address_count > 65536:
        raise IpListFormatError(f"implausible counts {entry_count} entries, {address_count} addresses")
    networks: list[ipaddress.IPv4Network] = []
    for index in range(entry_count):
        start = offset + 8 + index * _ENTRY_SIZE
        family, stored, full_bytes, last_byte, data_offset = (_read_word(data, start + 4 * i) for i in range(5))
        if family != _AF_INET:
            raise IpListFormatError(f"address family {family} is not IPv4 (2)")
        if not data_offset & _SELF_RELATIVE:
            raise IpListFormatError(f"entry offset 0x{data_offset:08x} lacks the self-relative flag")
        position = data_offset & ~_SELF_RELATIVE
        if stored < 1 or position + 4 * stored > len(data):
            raise IpListFormatError(f"entry {index} claims {stored} words at offset {position}")
        mask = data[position:position + 4]
        if full_bytes > 4 or mask[:full_bytes] != b"\xff" * full_bytes:
            raise IpListFormatError(f"mask {mask.hex()} does not match {full_bytes} full bytes")
        if full_bytes < 4 and mask[full_bytes] != last_byte:
            raise IpListFormatError(f"mask {mask.hex()} does not match last byte 0x{last_byte:02x}")
        prefix = bin(int.from_bytes(mask, "big")).count("1")
        for number in range(1, stored):
            address = ipaddress.IPv4Address(data[position + 4 * number:position + 4 * number + 4])
            networks.append(ipaddress.IPv4Network((address, prefix), strict=False))
    if len(networks) != address_count:
        raise IpListFormatError(f"header counts {address_count} addresses, but the entries contain {len(networks)}")
    return networks


def encode_ip_list(mode: str, networks: list[str]) -> bytes:
    """Encode networks as an IP security list in the layout `decode_ip_list` reads.

    Used to build test fixtures and to show the lab's relay list as IIS would store it.
    Networks that share a mask form one entry, in order of first appearance.
    """
    if mode not in (GRANT, DENY):
        raise ValueError(f"mode must be {GRANT!r} or {DENY!r}, not {mode!r}")
    parsed = [ipaddress.IPv4Network(text, strict=False) for text in networks]
    groups: dict[int, list[ipaddress.IPv4Network]] = {}
    for network in parsed:
        groups.setdefault(network.prefixlen, []).append(network)
    entries_size = _ENTRY_SIZE * len(groups)
    # Fixed part: header, deny list header, grant list header, entries, two name list headers.
    grant_entries = entries_size if mode == GRANT else 0
    deny_entries = entries_size if mode == DENY else 0
    deny_at = _HEADER_SIZE
    grant_at = deny_at + 8 + deny_entries
    deny_names_at = grant_at + 8 + grant_entries
    grant_names_at = deny_names_at + 8
    fixed_size = grant_names_at + 8
    out = bytearray(struct.pack("<6I", deny_at | _SELF_RELATIVE, grant_at | _SELF_RELATIVE,
                                deny_names_at | _SELF_RELATIVE, grant_names_at | _SELF_RELATIVE, 1, fixed_size))
    body = bytearray()
    entries = bytearray()
    for prefix, members in groups.items():
        mask = ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask.packed
        full_bytes = prefix // 8
        last_byte = mask[full_bytes] if full_bytes < 4 else 0
        entries += struct.pack("<5I", _AF_INET, len(members) + 1, full_bytes, last_byte,
                               (fixed_size + len(body)) | _SELF_RELATIVE)
        body += mask
        for network in members:
            body += network.network_address.packed
    for list_mode in (DENY, GRANT):
        if list_mode == mode:
            out += struct.pack("<2I", len(groups), len(parsed)) + entries
        else:
            out += struct.pack("<2I", 0, 0)
    out += struct.pack("<4I", 0, 0, 0, 0)
    return bytes(out + body)


@dataclass(frozen=True)
class Binding:
    """One ServerBindings entry: the IP address (None for all unassigned) and the port."""

    address: str | None
    port: int

    def __str__(self) -> str:
        return f"{self.address or '*'}:{self.port}"


@dataclass(frozen=True)
class SmtpVirtualServer:
    """The settings of one SMTP virtual server, with values inherited from `/LM/SmtpSvc` filled in.

    `relay` and `connection` are None when the property is absent everywhere: for the relay
    list that is the service's default, "Only the list below" with an empty list. A list that
    could not be decoded keeps its bytes in `relay_raw`/`connection_raw` and its reason in
    `notes`. Connection control read from MetaBase.xml is never decoded (see the module
    documentation), so there `connection` is None and `connection_raw` contains the bytes. The
    lab fills in `connection` from its own settings. `local_domains` lists the domains the
    server accepts mail for without relay, or is None when they are not known.

    NOTE: MetaBase.xml keeps the domains as IIsSmtpDomain keys whose RouteAction flags Microsoft
    does not document, so the reader leaves `local_domains` None. Only the lab fills it in.
    """

    location: str
    number: int
    comment: str | None
    bindings: tuple[Binding, ...]
    relay: IpList | None
    relay_for_auth: bool
    connection: IpList | None
    smart_host: str | None
    smart_host_type: int
    max_message_size: int
    log_type: int
    log_directory: str | None
    log_module: str | None
    pickup_directory: str | None
    queue_directory: str | None
    badmail_directory: str | None
    drop_directory: str | None
    relay_raw: bytes | None = None
    connection_raw: bytes | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    local_domains: tuple[str, ...] | None = None

    @property
    def logging_enabled(self) -> bool:
        return self.log_type == 1

    @property
    def relay_mode(self) -> str | None:
        """GRANT, DENY or None: the relay list's mode, GRANT when the property is absent."""
        if self.relay is None:
            return GRANT if self.relay_raw is None else None
        return self.relay.mode

    def relay_allows(self, address: str) -> bool | None:
        """Return whether the relay list lets `address` relay (None when it cannot be decoded)."""
        if self.relay is None:
            return False if self.relay_raw is None else None
        return self.relay.allows(address)

    def connection_allows(self, address: str) -> bool | None:
        """Return whether connection control lets `address` connect: True when none is set, None when unknown."""
        if self.connection is None:
            return True if not self.connection_raw else None
        return self.connection.allows(address)

    @property
    def connection_undecoded(self) -> bool:
        """Whether connection control is set but its bytes were not decoded."""
        return self.connection is None and bool(self.connection_raw)

    def log_folder(self) -> PureWindowsPath | None:
        """Return the folder that contains this server's log files (`<LogFileDirectory>\\SMTPSVC<n>`)."""
        if self.log_directory is None:
            return None
        return PureWindowsPath(self.log_directory) / f"SMTPSVC{self.number}"


def read_metabase(path: str | os.PathLike[str]) -> list[SmtpVirtualServer]:
    """Read every SMTP virtual server from a copy of MetaBase.xml, sorted by number.

    Raises InputError when the file is missing, is not well-formed XML, is another XML file,
    or has no SMTP virtual server.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError("metabase.not_found", value=str(source), next_key="metabase.not_found_next")
    if source.stat().st_size > MAX_FILE_SIZE:
        raise InputError("metabase.too_large", value=str(source), size=source.stat().st_size,
                         next_key="metabase.not_metabase_next")
    data = source.read_bytes()
    return parse_metabase(data, where=str(source))


def parse_metabase(data: bytes, *, where: str = "MetaBase.xml") -> list[SmtpVirtualServer]:
    """Parse MetaBase.xml bytes; see `read_metabase`."""
    head = data[:4096].lower()
    # A metabase has no DTD; refusing one keeps entity expansion out of the parser.
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise InputError("metabase.doctype", value=where, next_key="metabase.not_metabase_next")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        line, column = error.position
        raise InputError("metabase.malformed", value=where, where=f"{where}:{line}:{column}",
                         detail=str(error), next_key="metabase.malformed_next") from None
    if root.tag != f"{{{NAMESPACE}}}configuration":
        raise InputError("metabase.not_metabase", value=where, tag=_describe_tag(root.tag),
                         next_key="metabase.not_metabase_next")
    service: dict[str, str] = {}
    servers: list[tuple[int, str, dict[str, str]]] = []
    for element in root.iter():
        name = _local_name(element.tag)
        location = (element.get("Location") or "").strip()
        if name == "IIsSmtpService" and location.lower() == SERVICE_LOCATION:
            service = dict(element.attrib)
        elif name == "IIsSmtpServer":
            match = re.fullmatch(r"/lm/smtpsvc/(\d+)", location.lower())
            if match:
                servers.append((int(match.group(1)), location, dict(element.attrib)))
    if not servers:
        raise InputError("metabase.no_smtp", value=where, next_key="metabase.no_smtp_next")
    return [_build_server(number, location, {**service, **attributes}, where)
            for number, location, attributes in sorted(servers)]


def _describe_tag(tag: str) -> str:
    """Return a root tag as it would be written, with its namespace when it has one."""
    if tag.startswith("{"):
        namespace, name = tag[1:].split("}", 1)
        return f'<{name} xmlns="{namespace}">'
    return f"<{tag}>"


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _build_server(number: int, location: str, values: dict[str, str], where: str) -> SmtpVirtualServer:
    notes: list[str] = []
    relay, relay_raw = _ip_list(values, "RelayIpList", notes, where)
    connection_raw = _connection_bytes(values, notes, where)
    return SmtpVirtualServer(
        location=location,
        number=number,
        comment=values.get("ServerComment"),
        bindings=tuple(_bindings(values.get("ServerBindings", ""), where)),
        relay=relay,
        relay_for_auth=_integer(values, "RelayForAuth", 0, where) != 0,
        connection=None,
        smart_host=(values.get("SmartHost") or "").strip() or None,
        smart_host_type=_integer(values, "SmartHostType", 0, where),
        max_message_size=_integer(values, "MaxMessageSize", DEFAULT_MAX_MESSAGE_SIZE, where),
        log_type=_integer(values, "LogType", 0, where),
        log_directory=_text(values, "LogFileDirectory"),
        log_module=LOG_MODULES.get((values.get("LogPluginClsid") or "").strip().upper()),
        pickup_directory=_text(values, "PickupDirectory"),
        queue_directory=_text(values, "QueueDirectory"),
        badmail_directory=_text(values, "BadMailDirectory"),
        drop_directory=_text(values, "DropDirectory"),
        relay_raw=relay_raw,
        connection_raw=connection_raw,
        notes=tuple(notes),
    )


def _text(values: dict[str, str], name: str) -> str | None:
    value = (values.get(name) or "").strip()
    return value or None


def _integer(values: dict[str, str], name: str, default: int, where: str) -> int:
    text = (values.get(name) or "").strip()
    if not text:
        return default
    try:
        # DWORD values are decimal; a few tools write 0x-prefixed hexadecimal.
        number = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise InputError("metabase.bad_number", value=text, where=where, name=name,
                         next_key="metabase.malformed_next") from None
    # DWORD properties such as RelayForAuth may be written as -1 or as 4294967295.
    return number - (1 << 32) if number >= 1 << 31 else number


def _bindings(text: str, where: str) -> list[Binding]:
    bindings = []
    for line in text.split():
        parts = line.split(":")
        if len(parts) < 2 or not parts[1].isdigit():
            raise InputError("metabase.bad_binding", value=line, where=where, next_key="metabase.malformed_next")
        bindings.append(Binding(address=parts[0] or None, port=int(parts[1])))
    return bindings


def _binary(values: dict[str, str], name: str, where: str) -> bytes | None:
    """Return a binary property's bytes from its hexadecimal text, or None when it is absent."""
    if name not in values:
        return None
    text = re.sub(r"\s+", "", values[name])
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InputError("metabase.bad_hex", value=text[:40], where=where, name=name,
                         next_key="metabase.malformed_next") from None


def _ip_list(values: dict[str, str], name: str, notes: list[str], where: str) -> tuple[IpList | None, bytes | None]:
    data = _binary(values, name, where)
    if data is None:
        return None, None
    try:
        return decode_ip_list(data), data
    except IpListFormatError as error:
        notes.append(message("metabase.undecoded_list", name=name, size=len(data), detail=str(error)))
        return None, data


def _connection_bytes(values: dict[str, str], notes: list[str], where: str) -> bytes | None:
    """Return the bytes of IPSecurity, with a note when a list is set that this module cannot show.

    NOTE: an empty value is read as "no connection control", the documented default of the
    property (null, "No IP restrictions"); public audit scripts read `IPSecurity=""` the same way.
    """
    data = _binary(values, "IPSecurity", where)
    if data:
        notes.append(message("metabase.connection_undecoded_note", size=len(data), head=data[:4].hex()))
    return data


TABLE_COLUMNS = ("server", "setting", "value")


def settings_table(servers: list[SmtpVirtualServer]) -> pd.DataFrame:
    """Return one row per virtual server and setting, with values as text in the user's language."""
    rows = []
    for server in servers:
        for setting, value in _setting_rows(server):
            rows.append({"server": server.location, "setting": setting, "value": value})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def display_table(servers: list[SmtpVirtualServer]) -> pd.DataFrame:
    """Return `settings_table` with its column titles in the user's language, for notebooks."""
    titles = {column: message(f"metabase.column.{column}") for column in TABLE_COLUMNS}
    return settings_table(servers).rename(columns=titles)


def runbook_table(path: str | os.PathLike[str] | None, *, lab: bool) -> pd.DataFrame | SampleTable | Notice:
    """Return the settings table of the MetaBase.xml copy at `path`, for a runbook's step.

    Without `path`, the lab gets the project's sample MetaBase.xml under a line saying it is a
    sample, and a real server gets a notice that the step was skipped and names METABASE.
    """
    if path is not None:
        return display_table(read_metabase(path))
    if not lab:
        return Notice(message("metabase.runbook.skipped"))
    return SampleTable(message("metabase.runbook.sample", file=sample_name(SAMPLE_METABASE)),
                       display_table(read_metabase(SAMPLE_METABASE)))


def _list_text(ip_list: IpList | None, raw: bytes | None, absent_key: str) -> str:
    if ip_list is None:
        if raw is None:
            return message(absent_key)
        return message("metabase.value.undecoded", size=len(raw))
    if ip_list.mode is None:
        return message("metabase.value.mode_unknown")
    entries = ip_list.entries()
    listed = ", ".join(entries) if entries else message("metabase.value.empty_list")
    return message(f"metabase.value.mode_{ip_list.mode}", entries=listed)


def _connection_text(server: SmtpVirtualServer) -> str:
    if server.connection is not None:
        return _list_text(server.connection, server.connection_raw, "metabase.value.connection_default")
    if server.connection_raw is None:
        return message("metabase.value.connection_default")
    if not server.connection_raw:
        return message("metabase.value.connection_empty")
    return message("metabase.value.connection_undecoded", size=len(server.connection_raw))


def _setting_rows(server: SmtpVirtualServer) -> list[tuple[str, str]]:
    none = message("metabase.value.not_set")
    smart_type = SMART_HOST_TYPES.get(server.smart_host_type)
    smart_type_text = (message(f"metabase.value.smart_host_{smart_type}") if smart_type
                       else message("metabase.value.unknown_number", number=server.smart_host_type))
    rows = [
        ("ServerComment", server.comment or none),
        ("ServerBindings", "\n".join(str(binding) for binding in server.bindings) or none),
        ("RelayIpList", _list_text(server.relay, server.relay_raw, "metabase.value.relay_default")),
        ("RelayForAuth", message("metabase.value.yes" if server.relay_for_auth else "metabase.value.no")),
        ("IPSecurity", _connection_text(server)),
        ("SmartHost", server.smart_host or none),
        ("SmartHostType", smart_type_text),
        ("MaxMessageSize", message("metabase.value.bytes", number=server.max_message_size)),
        ("LogType", message("metabase.value.yes" if server.logging_enabled else "metabase.value.no")),
        ("LogPluginClsid", message(f"metabase.value.log_{server.log_module}") if server.log_module else none),
        ("LogFileDirectory", str(server.log_folder()) if server.log_folder() else none),
        ("PickupDirectory", server.pickup_directory or none),
        ("QueueDirectory", server.queue_directory or none),
        ("BadMailDirectory", server.badmail_directory or none),
        ("DropDirectory", server.drop_directory or none),
    ]
    rows.extend((message("metabase.value.note_setting"), note) for note in server.notes)
    return rows
