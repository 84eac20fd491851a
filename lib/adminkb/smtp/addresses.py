"""Checks of the values a user types before a session starts: addresses, names, ports, timeouts.

Each check raises InputError naming the value and the option it came from, so a typo never
reaches the server (and never turns into a confusing server reply).
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket

from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message

# RFC 5321 section 4.5.3.1: maximum lengths of a local part, a domain and a whole path.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
# A quoted local part: printable ASCII, with backslash escapes (RFC 5321 Quoted-string).
_QUOTED = re.compile(r'^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"$')
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _invalid(value: str, option: str, reason: str) -> InputError:
    return InputError("smtp.input.invalid_address", value=value, option=option,
                      reason=message(f"smtp.input.reason.{reason}"), next_key="smtp.input.address_next")


def is_domain(text: str) -> bool:
    """Return whether `text` is a host name made of letters, digits and hyphens (one or more labels)."""
    if not text or len(text) > MAX_DOMAIN:
        return False
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    return all(_LABEL.match(label) for label in labels)


def is_address_literal(text: str) -> bool:
    """Return whether `text` is an address literal such as `[192.0.2.1]` or `[IPv6:2001:db8::1]`."""
    if not (text.startswith("[") and text.endswith("]")):
        return False
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(inner[5:])
        else:
            ipaddress.IPv4Address(inner)
    except ValueError:
        return False
    return True


def validate_address(address: str, *, option: str, allow_null: bool = False,
                     allow_postmaster: bool = False) -> str:
    """Return `address` without surrounding angle brackets, or raise InputError naming it.

    `allow_null` accepts the empty reverse-path (`MAIL FROM:<>`, used by bounces);
    `allow_postmaster` accepts the bare `postmaster` that RFC 5321 lets RCPT TO use.
    """
    original = address
    if not isinstance(address, str):
        raise _invalid(repr(address), option, "not_text")
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if address == "":
        if allow_null:
            return ""
        raise _invalid(original, option, "empty")
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in address):
        raise _invalid(original, option, "control")
    if any(ord(character) > 0x7E for character in address):
        # NOTE: SMTPUTF8 (RFC 6531) is not implemented, so non-ASCII addresses are rejected.
        raise _invalid(original, option, "non_ascii")
    if allow_postmaster and address.lower() == "postmaster":
        return address
    if "@" not in address:
        raise _invalid(original, option, "no_at")
    local, _, domain = address.rpartition("@")
    if not local:
        raise _invalid(original, option, "no_local")
    if len(local) > MAX_LOCAL_PART:
        raise _invalid(original, option, "local_too_long")
    if not (_DOT_ATOM.match(local) or _QUOTED.match(local)):
        raise _invalid(original, option, "bad_local")
    if not domain:
        raise _invalid(original, option, "no_domain")
    if not (is_domain(domain) or is_address_literal(domain)):
        raise _invalid(original, option, "bad_domain")
    if len(address) + 2 > MAX_PATH:
        raise _invalid(original, option, "too_long")
    return address


def validate_ehlo_name(name: str) -> str:
    """Return the EHLO name if it is a host name or an address literal, else raise InputError."""
    if isinstance(name, str) and (is_domain(name) or is_address_literal(name)):
        return name
    raise InputError("smtp.input.invalid_ehlo", value=name, next_key="smtp.input.ehlo_next")


def validate_host(host: str) -> str:
    """Return the server name or address, or raise InputError when it is empty or malformed."""
    if isinstance(host, str):
        candidate = host.strip()
        if candidate.startswith("[") and candidate.endswith("]"):
            candidate = candidate[1:-1]
        if is_ip(candidate) or is_domain(candidate):
            return candidate
    raise InputError("smtp.input.invalid_host", value=host, next_key="smtp.input.host_next")


def is_ip(text: str) -> bool:
    """Return whether `text` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def validate_port(port: object) -> int:
    """Return the port as an int between 1 and 65535, or raise InputError."""
    if isinstance(port, bool):
        raise InputError("smtp.input.invalid_port", value=port, next_key="smtp.input.invalid_port_next")
    try:
        number = int(str(port), 10)
    except ValueError:
        raise InputError("smtp.input.invalid_port", value=port, next_key="smtp.input.invalid_port_next") from None
    if not 1 <= number <= 65535:
        raise InputError("smtp.input.invalid_port", value=port, next_key="smtp.input.invalid_port_next")
    return number


def validate_timeout(timeout: object) -> float:
    """Return the timeout in seconds as a positive finite float, or raise InputError."""
    try:
        seconds = float(timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError("smtp.input.invalid_timeout", value=timeout,
                         next_key="smtp.input.invalid_timeout_next") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError("smtp.input.invalid_timeout", value=timeout, next_key="smtp.input.invalid_timeout_next")
    return seconds


def validate_source_address(source: str | None) -> str | None:
    """Return the local address to connect from, or raise InputError when it is not an IP address."""
    if source is None:
        return None
    if isinstance(source, str) and is_ip(source.strip()):
        return source.strip()
    raise InputError("smtp.input.invalid_source", value=source, next_key="smtp.input.source_next")


def validate_local_source_address(source: str | None, option: str) -> str | None:
    """Return the source address when this computer can connect from it, else raise InputError.

    `option` names where the address came from (`--source-ip`, `--source`), because the commands
    that take a source address call it differently. The check binds a socket to the address and
    closes it again, so nothing is sent.
    """
    source = validate_source_address(source)
    if source is None:
        return None
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((source, 0))
    except OSError as error:
        raise InputError("smtp.input.source_not_local", value=source, option=option, reason=os_error_text(error),
                         next_key="smtp.input.source_not_local_next") from None
    return source


def reject_ambiguous_ipv6(text: str, default_port: int) -> None:
    """Raise InputError for an IPv6 address without brackets whose last group could be a port.

    `::1:2525` is a valid address (0:0:0:0:0:0:1:2525), so it would be taken as a host on the
    default port, although the user most likely meant port 2525 on ::1, a different host. Only
    `::1` itself and addresses whose last group has a hex letter (`2001:db8::a`) are accepted.
    """
    if text == "::1":
        return
    head, _, last = text.rpartition(":")
    if head.endswith(":"):
        # "2001:db8::25" without its last group is "2001:db8::", not "2001:db8:".
        head += ":"
    if not last.isdigit() or not 1 <= int(last) <= 65535:
        return
    try:
        ipaddress.IPv6Address(text)
        ipaddress.IPv6Address(head)
    except ValueError:
        # Only one reading is an address, so there is nothing to ask.
        return
    raise InputError("smtp.input.ipv6_ambiguous", value=text, default_port=default_port, head=head,
                     port=last, next_key="smtp.input.ipv6_ambiguous_next")


def parse_host_port(text: str, default_port: int = 25) -> tuple[str, int]:
    """Split `HOST[:PORT]` into host and port; IPv6 takes brackets: `[::1]:2525`.

    A bare IPv6 address without brackets is taken as a host with the default port, except where
    its last group could be a port (reject_ambiguous_ipv6).
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("smtp.input.invalid_host", value=text, next_key="smtp.input.host_next")
    text = text.strip()
    if text.startswith("["):
        closing = text.find("]")
        if closing < 0:
            raise InputError("smtp.input.invalid_host", value=text, next_key="smtp.input.host_next")
        host, rest = text[1:closing], text[closing + 1:]
        if rest == "":
            return validate_host(host), default_port
        if not rest.startswith(":"):
            raise InputError("smtp.input.invalid_host", value=text, next_key="smtp.input.host_next")
        return validate_host(host), validate_port(rest[1:])
    if text.count(":") > 1:
        reject_ambiguous_ipv6(text, default_port)
        return validate_host(text), default_port
    host, separator, port = text.partition(":")
    if separator:
        return validate_host(host), validate_port(port)
    return validate_host(host), default_port
