"""A writer for the IIS SMTP Service's Pickup folder.

A program that cannot speak SMTP can hand mail to the service by putting a message file in
`mailroot\\Pickup`. The file is an RFC 5322 message with CRLF line ends, optionally preceded by
`X-Sender:` and `X-Receiver:` lines that set the SMTP envelope. The service reads the file
the way it reads SMTP DATA: a line holding a single `.` ends the message and one leading dot
is removed from every other line (Microsoft KB Q221384), so this writer doubles leading dots.

The file is written under a temporary name in the Pickup folder itself and then renamed, so
the service never opens a half-written message.
"""

from __future__ import annotations

import email.policy
import email.utils
import errno
import hashlib
import logging
import mimetypes
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from adminkb import mailroot
from adminkb.errors import InputError, os_error_text

log = logging.getLogger("adminkb.pickup")

# The SMTP policy writes CRLF line ends and folds header lines at 78 characters. With
# cte_type="7bit", non-ASCII text is sent as base64 or quoted-printable and non-ASCII header
# text as RFC 2047 encoded words, so the file passes through servers without 8BITMIME.
MESSAGE_POLICY = email.policy.SMTP.clone(cte_type="7bit")

# A display address: "user@example.com", or (display name, "user@example.com").
AddressSpec = str | tuple[str, str]

_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
_BARE_LINE_END = re.compile(rb"\r?\n|\r")


@dataclass(frozen=True)
class Attachment:
    """A file to attach: its name as the recipient sees it, its bytes and its MIME type.

    An empty `content_type` is guessed from the file name (application/octet-stream when
    the extension is unknown).
    """

    filename: str
    data: bytes
    content_type: str = ""

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], content_type: str = "") -> Attachment:
        """Read the file at `path` into an Attachment named after it."""
        source = Path(path)
        try:
            data = source.read_bytes()
        except OSError as error:
            raise InputError("pickup.attachment_unreadable", value=str(source), detail=os_error_text(error),
                             next_key="pickup.attachment_unreadable_next") from error
        return cls(source.name, data, content_type)


def compose_message(sender: AddressSpec, to: Sequence[AddressSpec], subject: str, body: str, *,
                    cc: Sequence[AddressSpec] = (), attachments: Iterable[Attachment] = (),
                    date: datetime | None = None, message_id: str | None = None,
                    extra_headers: Sequence[tuple[str, str]] = ()) -> EmailMessage:
    """Build an RFC 5322 message; Chinese display names and subjects become RFC 2047 encoded words.

    Bcc recipients belong in the envelope only, so they are not an argument here: give them to
    `write_pickup_file`. `date` defaults to now in local time and `message_id` to a new id in
    the sender's domain. With attachments the message is multipart/mixed, with a boundary
    derived from the content so that the same input gives the same bytes.
    """
    if not to and not cc:
        raise InputError("pickup.no_header_recipients", next_key="pickup.no_header_recipients_next")
    message = EmailMessage(policy=MESSAGE_POLICY)
    sender_address = _address(sender)
    message["From"] = sender_address
    if to:
        message["To"] = [_address(item) for item in to]
    if cc:
        message["Cc"] = [_address(item) for item in cc]
    message["Subject"] = _single_line(subject, "Subject")
    message["Date"] = email.utils.format_datetime(date if date is not None else datetime.now().astimezone())
    message["Message-ID"] = message_id or email.utils.make_msgid(domain=sender_address.domain or None)
    for name, value in extra_headers:
        message[_single_line(name, "header")] = _single_line(value, "header")
    message.set_content(body)

    attached = list(attachments)
    for item in attached:
        maintype, subtype = _content_type(item).split("/", 1)
        message.add_attachment(bytes(item.data), maintype=maintype, subtype=subtype, filename=item.filename)
    if attached:
        message.set_boundary(_stable_boundary(message))
    return message


def pickup_bytes(message: EmailMessage | bytes, sender: str, recipients: Sequence[str]) -> bytes:
    """Return the whole Pickup file: envelope lines, then the message with CRLF ends and doubled leading dots."""
    return mailroot.envelope_lines(sender, recipients) + _stuffed_message(message)


def _stuffed_message(message: EmailMessage | bytes) -> bytes:
    content = message.as_bytes(policy=MESSAGE_POLICY) if isinstance(message, EmailMessage) else bytes(message)
    return dot_stuff(crlf_lines(content))


def crlf_lines(content: bytes) -> bytes:
    """Return `content` with every line end (LF, CR or CRLF) written as CRLF, ending with one."""
    normalized = _BARE_LINE_END.sub(b"\r\n", content)
    if normalized and not normalized.endswith(b"\r\n"):
        normalized += b"\r\n"
    return normalized


def dot_stuff(content: bytes) -> bytes:
    """Double the dot at the start of every line, as SMTP DATA does (RFC 5321 section 4.5.2)."""
    return _LEADING_DOT.sub(b"..", content)


def envelope_from_headers(message: EmailMessage, bcc: Sequence[AddressSpec] = ()) -> tuple[str, list[str]]:
    """Return the envelope sender (Sender, else From) and recipients (To, Cc, then `bcc`) of a message.

    System.Net.Mail builds the envelope the same way when it writes a Pickup file.
    """
    sender_header = message.get("Sender") or message.get("From")
    sender = _first_address(sender_header)
    recipients: list[str] = []
    for name in ("To", "Cc"):
        for header in message.get_all(name, []):
            recipients.extend(address.addr_spec for address in header.addresses)
    recipients.extend(_address(item).addr_spec for item in bcc)
    return sender, _unique(recipients)


def write_pickup_file(folder: str | os.PathLike[str], message: EmailMessage | bytes, *,
                      sender: str | None = None, recipients: Sequence[str] | None = None,
                      bcc: Sequence[AddressSpec] = (), name: str | None = None) -> Path:
    """Write `message` into the Pickup `folder` with envelope lines and return the new file's path.

    The envelope defaults to the message's own headers (`envelope_from_headers`); raw bytes
    need `sender` and `recipients`. The file is named `<GUID>.eml` like System.Net.Mail's
    unless `name` is given. It is written to a temporary file in `folder` and renamed, so the
    service never sees part of it. A missing folder, a full disk or any other write failure
    raises InputError and leaves no file behind.
    """
    if sender is None or recipients is None:
        if not isinstance(message, EmailMessage):
            raise InputError("pickup.envelope_needed", next_key="pickup.envelope_needed_next")
        header_sender, header_recipients = envelope_from_headers(message, bcc)
        sender = header_sender if sender is None else sender
        recipients = header_recipients if recipients is None else list(recipients)
    elif bcc:
        recipients = _unique([*recipients, *(_address(item).addr_spec for item in bcc)])
    # write_message_file puts the envelope lines in front of this content.
    content = _stuffed_message(message)

    folder_path = Path(folder)
    if not folder_path.is_dir():
        raise InputError("pickup.folder_missing", value=str(folder_path), next_key="pickup.folder_missing_next")
    file_name = name or f"{uuid.uuid4()}.eml"
    try:
        path = mailroot.write_message_file(folder_path, file_name, sender, recipients, content)
    except FileExistsError as error:
        raise InputError("pickup.name_exists", value=str(folder_path / file_name),
                         next_key="pickup.name_exists_next") from error
    except FileNotFoundError as error:
        raise InputError("pickup.folder_missing", value=str(folder_path),
                         next_key="pickup.folder_missing_next") from error
    except OSError as error:
        key = "pickup.disk_full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "pickup.write_failed"
        log.error("writing to Pickup folder %s failed: %s", folder_path, error)
        raise InputError(key, value=str(folder_path), detail=os_error_text(error),
                         next_key=f"{key}_next") from error
    log.info("wrote %s to Pickup (%d bytes, sender %s, %d recipients)", path.name, path.stat().st_size, sender or "<>",
             len(recipients))
    return path


def _address(item: AddressSpec) -> Address:
    if isinstance(item, Address):
        return item
    if isinstance(item, tuple):
        display_name, addr_spec = item
    else:
        display_name, addr_spec = "", item
    addr_spec = _single_line(str(addr_spec).strip(), "address")
    local, at, domain = addr_spec.rpartition("@")
    if not (at and local and domain) or any(character.isspace() or character in "<>,;" for character in addr_spec):
        raise InputError("pickup.invalid_address", value=addr_spec, next_key="pickup.invalid_address_next")
    return Address(display_name=_single_line(display_name, "address"), addr_spec=addr_spec)


def _first_address(header: object) -> str:
    addresses = getattr(header, "addresses", ())
    return addresses[0].addr_spec if addresses else ""


def _single_line(text: str, field: str) -> str:
    # A CR or LF in a header value would start a new header line.
    if "\r" in text or "\n" in text:
        raise InputError("pickup.line_break", value=text.encode("unicode_escape").decode("ascii"), field=field,
                         next_key="pickup.line_break_next")
    return text


def _content_type(item: Attachment) -> str:
    content_type = item.content_type or mimetypes.guess_type(item.filename)[0] or "application/octet-stream"
    if content_type.count("/") != 1 or not all(content_type.split("/")):
        raise InputError("pickup.invalid_content_type", value=content_type,
                         next_key="pickup.invalid_content_type_next")
    return content_type


def _stable_boundary(message: EmailMessage) -> str:
    """Return a MIME boundary derived from the message's parts, absent from their encoded text."""
    digest = hashlib.sha256()
    for part in message.iter_parts():
        digest.update(part.as_bytes(policy=MESSAGE_POLICY))
    boundary = f"=_adminkb_{digest.hexdigest()[:32]}"
    # Base64 and quoted-printable text never contain "=_", but a 7bit part could.
    if any(boundary.encode("ascii") in part.as_bytes(policy=MESSAGE_POLICY) for part in message.iter_parts()):
        boundary = f"=_adminkb_{uuid.uuid4().hex}"
    return boundary


def _unique(addresses: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    unique: list[str] = []
    for address in addresses:
        key = address.lower()
        if key not in seen:
            seen.add(key)
            unique.append(address)
    return unique
