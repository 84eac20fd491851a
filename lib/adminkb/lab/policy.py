"""IP address lists as the IIS SMTP Service keeps them for relay restrictions and connection control.

Both dialogs offer the same two modes: "Only the list below" (a grant list: only the listed
computers are allowed) and "All except the list below" (a deny list). Entries are single
addresses or subnets; domain-name entries are not supported because the lab does no DNS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from adminkb.errors import InputError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Mode = Literal["grant", "deny"]

GRANT: Mode = "grant"
DENY: Mode = "deny"

# A grant list containing either of these lets every IPv4 or IPv6 client through.
EVERYONE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def parse_network(text: object) -> Network:
    """Parse `192.0.2.7`, `192.0.2.0/24` or `192.0.2.0/255.255.255.0` (or IPv6) into a network.

    Host bits set in a subnet are an InputError: `127.0.0.1/24` names no subnet exactly, so
    the admin is asked for `127.0.0.0/24` instead of getting a guess.
    """
    if isinstance(text, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return text
    if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ipaddress.ip_network(text)
    value = str(text).strip()
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise InputError("lab.invalid_network", value=value, detail=str(error),
                         next_key="lab.invalid_network_next") from None


def parse_address(text: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse one IP address literal; host names are an InputError because the lab does no DNS."""
    if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return text
    value = str(text).strip()
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InputError("lab.invalid_address", value=value, next_key="lab.invalid_address_next") from None


def format_network(network: Network) -> str:
    """Write a network the way the IIS dialog lists it: a single computer as its bare address."""
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


@dataclass(frozen=True)
class AccessList:
    """An IIS-style IP list: `grant` lets only the listed networks in, `deny` keeps only them out.

    Instances are immutable, so the lab swaps a whole list in one assignment and its thread
    never reads a half-changed list.
    """

    mode: Mode
    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, mode: str, entries: Iterable[object] = ()) -> AccessList:
        """Build a list from a mode name and address or subnet strings; InputError for bad ones."""
        if mode not in (GRANT, DENY):
            raise InputError("lab.invalid_list_mode", value=mode, next_key="lab.invalid_list_mode_next")
        if isinstance(entries, (str, bytes)):
            entries = [entries]
        networks: list[Network] = []
        for entry in entries:
            network = parse_network(entry)
            if network not in networks:
                networks.append(network)
        return cls(mode, tuple(networks))

    def allows(self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Return whether a client at `address` passes this list."""
        client = ipaddress.ip_address(address)
        if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
            client = client.ipv4_mapped
        listed = any(client in network for network in self.networks if network.version == client.version)
        return listed if self.mode == GRANT else not listed

    def opens_to_unlisted(self) -> bool:
        """Return whether clients the list does not name pass: any deny list, or a grant of 0/0.

        A deny list lets in every address it does not name, so it counts as open unless it
        names 0.0.0.0/0 and ::/0 both.
        """
        if self.mode == DENY:
            return not all(everyone in self.networks for everyone in EVERYONE)
        return any(network in EVERYONE for network in self.networks)

    def with_added(self, entry: object) -> AccessList:
        network = parse_network(entry)
        if network in self.networks:
            return self
        return AccessList(self.mode, (*self.networks, network))

    def with_removed(self, entry: object) -> AccessList:
        network = parse_network(entry)
        return AccessList(self.mode, tuple(item for item in self.networks if item != network))

    def covering(self, entry: object) -> list[Network]:
        """Return the listed networks that contain all of `entry`, other than `entry` itself."""
        network = parse_network(entry)
        return [item for item in self.networks
                if item != network and item.version == network.version and network.subnet_of(item)]

    def entries(self) -> list[str]:
        """Return the entries as the IIS dialog shows them."""
        return [format_network(network) for network in self.networks]
