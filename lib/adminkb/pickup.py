"""A writer for the IIS SMTP Service's Pickup folder.

A program that cannot speak SMTP can hand mail to the service by putting a message file in
`mailroot\\Pickup`. The file is an RFC 5322 message with CRLF line ends, optionally preceded by
`X-Sender:` and `X-Receiver:` lines that set the SMTP envelope. The service reads the file
the way it reads SMTP DATA: a line holding a single `.` ends the message and one leading dot
is removed from every other line (Microsoft KB Q221384), so this writer doubles leading dots.

The service takes every file in Pickup, whatever its name (KB Q221384 reproduces its problem
with a file called Message.txt). So the writer never creates a file in Pickup until the message
is complete: it writes a temporary file in the folder above Pickup (the mailroot, on the same
volume, which the service does not watch), flushes it to disk and then renames it into Pickup.
"""

from __future__ import annotations

import base64
import email.policy
import email.utils
import errno
import hashlib
import logging
import mimetypes
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
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

# Headers that `compose_message` sets itself, or that would change who receives the message or
# show Bcc recipients to everyone, so `extra_headers` cannot set them.
WRITER_HEADERS = ("From", "To", "Cc", "Bcc", "Sender", "Subject", "Date", "Message-ID", "MIME-Version",
                  "Content-Type", "Content-Transfer-Encoding", "X-Sender", "X-Receiver")
_WRITER_HEADER_KEYS = frozenset(name.lower() for name in WRITER_HEADERS)
# A header field name (RFC 5322 section 3.6.8): printable ASCII characters 33 to 126 except ":".
_FIELD_NAME = re.compile("[!-9;-~]+")

# Temporary files of `write_pickup_bytes` start with this prefix and end in ".tmp", which
# `mailroot.is_temporary_file_name` recognizes.
STAGING_PREFIX = ".adminkb-pickup-"

_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
# The UTF-8 bytes in one encoded word of an attachment name: 42 bytes are 56 base64 characters,
# so a folded ` name="=?utf-8?b?...?=` line stays within 78 characters.
_ENCODED_WORD_BYTES = 42
# C0 and C1 control characters, DEL, the Unicode line and paragraph separators and lone
# surrogates: characters an error message shows escaped, so the user sees what is there.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_BARE_LINE_END = re.compile(rb"\r?\n|\r")
# Windows file names cannot contain the characters 0 to 31, and POSIX file names cannot contain NUL.
_FILE_NAME_CONTROL = re.compile("[\x00-\x1f]")
# Characters that no header line or envelope line may contain: C0 controls other than tab,
# DEL, C1 controls, U+2028 and U+2029. The email package treats VT, FF, FS, GS, RS, NEL,
# U+2028 and U+2029 as line ends, like CR and LF.
_CONTROL_CHARACTER = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Attachment:
    """A file to attach: its name as the recipient sees it, its bytes and its MIME type.

    An empty `content_type` is guessed from the file name (application/octet-stream when
    the extension is unknown). A text/* attachment is labelled charset="utf-8" when its bytes
    are valid UTF-8, and is sent as application/octet-stream otherwise, so that no reader
    decodes it with a wrong character set.
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

    Non-ASCII domains are written in their IDNA ASCII form (xn--), and a non-ASCII local part
    raises InputError, because the IIS SMTP service does not support SMTPUTF8. Bcc recipients
    belong in the envelope only, so they are not an argument here: give them to
    `write_pickup_file`. `date` defaults to now in local time and `message_id` to a new id in
    the sender's domain. `extra_headers` may not set `WRITER_HEADERS`, Content-* or Resent-*
    headers. Header text may contain tab but no other control character, and the body may not
    contain NUL. With attachments the message is multipart/mixed, with a boundary derived from
    the content so that the same input gives the same bytes.
    """
    if not to and not cc:
        raise InputError("pickup.no_header_recipients", next_key="pickup.no_header_recipients_next")
    message = EmailMessage(policy=MESSAGE_POLICY)
    sender_address = _address(sender, "From")
    message["From"] = sender_address
    if to:
        message["To"] = [_address(item, "To") for item in to]
    if cc:
        message["Cc"] = [_address(item, "Cc") for item in cc]
    message["Subject"] = _header_text(subject, "Subject")
    message["Date"] = email.utils.format_datetime(date if date is not None else datetime.now().astimezone())
    message["Message-ID"] = (_header_text(message_id, "Message-ID") if message_id
                             else email.utils.make_msgid(domain=sender_address.domain or None))
    for name, value in extra_headers:
        message[_header_name(name)] = _header_text(value, name)
    _check_no_nul(body)
    message.set_content(body)

    attached = list(attachments)
    for item in attached:
        _attach(message, item)
    if attached:
        message.set_boundary(_stable_boundary(message))
    return message


def pickup_bytes(message: EmailMessage | bytes, sender: str, recipients: Sequence[str]) -> bytes:
    """Return the whole Pickup file: envelope lines, then the message with CRLF ends and doubled leading dots.

    An empty `sender` writes the null sender `<>` of a bounce. An empty, white-space-containing
    or unparsable address raises InputError, and so does a message whose first line looks like
    an envelope line, because the service would read that line as part of the envelope.
    """
    envelope_sender = _addr_spec(sender, "X-Sender") if sender != "" else ""
    envelope_recipients = [_addr_spec(recipient, "X-Receiver") for recipient in recipients]
    content = _stuffed_message(message)
    _check_no_envelope_line(content)
    return mailroot.envelope_lines(envelope_sender, envelope_recipients) + content


def _stuffed_message(message: EmailMessage | bytes) -> bytes:
    content = message.as_bytes(policy=MESSAGE_POLICY) if isinstance(message, EmailMessage) else bytes(message)
    return dot_stuff(crlf_lines(content))


def _check_no_envelope_line(content: bytes) -> None:
    # A reader takes leading X-Sender and X-Receiver lines as the envelope, and some readers
    # (`mailroot.read_envelope`) accept any case and white space around the name. So such a
    # first line would extend the writer's own envelope block.
    first_line = content.split(b"\r\n", 1)[0]
    name, colon, _ = first_line.partition(b":")
    if colon and name.strip().lower() in (b"x-sender", b"x-receiver"):
        raise InputError("pickup.envelope_line_in_message",
                         value=_shown_text(first_line.decode("utf-8", errors="backslashreplace")),
                         next_key="pickup.envelope_line_in_message_next")


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
    recipients.extend(_address(item, "Bcc").addr_spec for item in bcc)
    return sender, _unique(recipients)


def write_pickup_file(folder: str | os.PathLike[str], message: EmailMessage | bytes, *,
                      sender: str | None = None, recipients: Sequence[str] | None = None,
                      bcc: Sequence[AddressSpec] = (), name: str | None = None,
                      staging: str | os.PathLike[str] | None = None) -> Path:
    """Write `message` into the Pickup `folder` with envelope lines and return the new file's path.

    The envelope defaults to the message's own headers (`envelope_from_headers`); raw bytes
    need `sender` and `recipients`. A message without a From or Sender header needs `sender`,
    and `sender=""` writes the null sender `<>` of a bounce. The file is named `<GUID>.eml`
    like System.Net.Mail's unless `name` is given. Leading dots are doubled. `write_pickup_bytes` does the writing,
    with `staging` as its temporary folder, so the service never sees part of the file, and a
    missing folder, a full disk or any other write failure raises InputError and leaves no file
    behind.
    """
    if sender is None or recipients is None:
        if not isinstance(message, EmailMessage):
            raise InputError("pickup.envelope_needed", next_key="pickup.envelope_needed_next")
        header_sender, header_recipients = envelope_from_headers(message, bcc)
        if sender is None:
            if not header_sender:
                raise InputError("pickup.sender_missing", next_key="pickup.sender_missing_next")
            sender = header_sender
        recipients = header_recipients if recipients is None else list(recipients)
    elif bcc:
        recipients = _unique([*recipients, *(_address(item, "Bcc").addr_spec for item in bcc)])
    data = pickup_bytes(message, sender, recipients)
    path = write_pickup_bytes(folder, name or f"{uuid.uuid4()}.eml", data, staging=staging)
    log.info("wrote %s to Pickup (%d bytes, sender %s, %d recipients)", path.name, len(data), sender or "<>",
             len(recipients))
    return path


def staging_folder(folder: str | os.PathLike[str]) -> Path:
    """Return the default folder for Pickup's temporary files: the folder above the Pickup `folder`.

    That is the mailroot for the default layout. The service does not watch it, and it is
    normally on Pickup's volume, which the final rename needs.
    """
    folder_path = Path(os.path.abspath(folder))
    if folder_path.parent == folder_path:
        # A Pickup folder at the root of a drive has no folder above it.
        raise InputError("pickup.staging_needed", value=str(folder_path), next_key="pickup.staging_needed_next")
    return folder_path.parent


def write_pickup_bytes(folder: str | os.PathLike[str], name: str, data: bytes, *,
                       staging: str | os.PathLike[str] | None = None) -> Path:
    """Write a finished Pickup file (`data`: envelope lines and message, as stored) into `folder` as `name`.

    `data` is written unchanged to a temporary file in `staging` (default: `staging_folder`),
    flushed to disk, and renamed into Pickup. The service takes every file in Pickup whatever
    its name, so no file appears there before the message is complete. `staging` must be on
    Pickup's volume and outside Pickup. An existing file is never replaced. A missing folder,
    a full disk or any other failure raises InputError and leaves no file in either folder.
    """
    folder_path = Path(folder)
    if not folder_path.is_dir():
        raise InputError("pickup.folder_missing", value=str(folder_path), next_key="pickup.folder_missing_next")
    if _FILE_NAME_CONTROL.search(name):
        raise InputError("pickup.file_name_control_character", value=_shown_text(name),
                         next_key="pickup.file_name_control_character_next")
    if Path(name).name != name or name in ("", ".", ".."):
        raise InputError("mailroot.bad_file_name", value=name, next_key="mailroot.bad_file_name_next")
    target = folder_path / name
    if target.exists():
        raise InputError("pickup.name_exists", value=str(target), next_key="pickup.name_exists_next")
    staging_path = _checked_staging(folder_path, staging)

    try:
        descriptor, temporary_name = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=".tmp", dir=staging_path)
    except OSError as error:
        if _is_disk_full(error):
            raise _write_error("pickup.disk_full", folder_path, error) from error
        raise _write_error("pickup.staging_failed", staging_path, error) from error
    temporary = Path(temporary_name)
    try:
        _write_synced(descriptor, data, folder_path)
        _rename_into_pickup(temporary, target, staging_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _checked_staging(folder: Path, staging: str | os.PathLike[str] | None) -> Path:
    """Return the staging folder for Pickup `folder`, checking it exists, lies outside Pickup and shares its volume."""
    staging_path = staging_folder(folder) if staging is None else Path(os.path.abspath(staging))
    if not staging_path.is_dir():
        raise InputError("pickup.staging_missing", value=str(staging_path), next_key="pickup.staging_missing_next")
    pickup_text = os.path.normcase(os.path.abspath(folder))
    staging_text = os.path.normcase(str(staging_path))
    if staging_text == pickup_text or staging_text.startswith(pickup_text + os.sep):
        raise InputError("pickup.staging_in_pickup", value=str(staging_path), next_key="pickup.staging_in_pickup_next")
    if os.stat(staging_path).st_dev != os.stat(folder).st_dev:
        raise InputError("pickup.staging_other_volume", value=str(staging_path), folder=str(folder),
                         next_key="pickup.staging_other_volume_next")
    return staging_path


def _write_synced(descriptor: int, data: bytes, folder: Path) -> None:
    """Write `data` to the open temporary file and flush it to disk, so a crash cannot rename an empty file into Pickup."""
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        key = "pickup.disk_full" if _is_disk_full(error) else "pickup.write_failed"
        raise _write_error(key, folder, error) from error


def _rename_into_pickup(temporary: Path, target: Path, staging: Path) -> None:
    try:
        mailroot.rename_without_replacing(temporary, target)
    except FileExistsError as error:
        raise InputError("pickup.name_exists", value=str(target), next_key="pickup.name_exists_next") from error
    except FileNotFoundError as error:
        raise InputError("pickup.folder_missing", value=str(target.parent),
                         next_key="pickup.folder_missing_next") from error
    except OSError as error:
        if error.errno == errno.EXDEV:
            raise InputError("pickup.staging_other_volume", value=str(staging), folder=str(target.parent),
                             next_key="pickup.staging_other_volume_next") from error
        key = "pickup.disk_full" if _is_disk_full(error) else "pickup.write_failed"
        raise _write_error(key, target.parent, error) from error


def _is_disk_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT)


def _write_error(key: str, folder: Path, error: OSError) -> InputError:
    log.error("writing a Pickup file through %s failed: %s", folder, error)
    return InputError(key, value=str(folder), detail=os_error_text(error), next_key=f"{key}_next")


def _address(item: AddressSpec | Address, field: str) -> Address:
    """Return `item` as an Address for the `field` header, its addr-spec checked by `_addr_spec`."""
    if isinstance(item, Address):
        display_name, addr_spec = item.display_name, item.addr_spec
    elif isinstance(item, tuple):
        display_name, addr_spec = item
    else:
        display_name, addr_spec = "", item
    return Address(display_name=_header_text(display_name, field), addr_spec=_addr_spec(addr_spec, field))


def _addr_spec(address: str, field: str) -> str:
    """Return `address` (user@example.com) as the `field` header or envelope line will carry it.

    Spaces and tabs around it are removed, and a non-ASCII domain becomes its IDNA ASCII form
    (例子.台灣 becomes xn--fsqu00a.xn--kpry57d). An empty address, one with white space, a
    control character or one of `<>,;` inside, a non-ASCII local part, a domain that the idna
    codec rejects, and an address the email package cannot parse raise InputError.
    """
    text = str(address).strip(" \t")
    if not text:
        raise InputError("pickup.empty_address", field=field, next_key="pickup.empty_address_next")
    _header_text(text, field)
    local, at, domain = text.rpartition("@")
    if not (at and local and domain) or any(character.isspace() or character in "<>,;" for character in text):
        raise InputError("pickup.invalid_address", value=_shown_text(text), next_key="pickup.invalid_address_next")
    if not local.isascii():
        # A non-ASCII local part needs SMTPUTF8 (RFC 6531), which the IIS SMTP service lacks.
        raise InputError("pickup.non_ascii_local_part", value=_shown_text(text), field=field,
                         next_key="pickup.non_ascii_local_part_next")
    if not domain.isascii():
        text = f"{local}@{_ascii_domain(domain, text, field)}"
    try:
        return Address(addr_spec=text).addr_spec
    except (HeaderParseError, ValueError) as error:
        # The email package raises HeaderParseError, or a defect (a ValueError) such as
        # InvalidHeaderDefect, for a@b@example.net, a.@example.com or a@example..com.
        raise InputError("pickup.invalid_address", value=text, next_key="pickup.invalid_address_next") from error


def _ascii_domain(domain: str, address: str, field: str) -> str:
    """Return the IDNA ASCII form of `domain` (IDNA 2003, as Python's "idna" codec implements it)."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise InputError("pickup.invalid_domain", value=_shown_text(domain), address=_shown_text(address),
                         field=field, next_key="pickup.invalid_domain_next") from error


def _header_name(name: str) -> str:
    """Return `name` if it is a valid header field name that `extra_headers` may set, else raise InputError."""
    if not isinstance(name, str) or _FIELD_NAME.fullmatch(name) is None:
        raise InputError("pickup.invalid_header_name", value=_shown_text(str(name)),
                         next_key="pickup.invalid_header_name_next")
    # Content-* headers describe the MIME structure the writer builds, so a Content-Disposition
    # given here was silently dropped. Resent-* headers carry addresses that every recipient can
    # read, Resent-Bcc included.
    if name.lower() in _WRITER_HEADER_KEYS or name.lower().startswith(("content-", "resent-")):
        raise InputError("pickup.writer_header", value=name, next_key="pickup.writer_header_next")
    return name


def _header_text(text: str, field: str) -> str:
    """Return `text` for the `field` header; a line break or a control character but tab raises InputError."""
    # A CR or LF in a header value would start a new header line.
    if "\r" in text or "\n" in text:
        raise InputError("pickup.line_break", value=_shown_text(text), field=field, next_key="pickup.line_break_next")
    match = _CONTROL_CHARACTER.search(text)
    if match is not None:
        raise InputError("pickup.control_character", value=_shown_text(text), field=field,
                         character=f"U+{ord(match.group()):04X}", next_key="pickup.control_character_next")
    return text


def _check_no_nul(body: str) -> None:
    # NUL is not allowed in Internet mail: RFC 5322 text excludes it, and so does 7bit MIME data
    # (RFC 2045 section 2.7). It is rejected even in a body that would go out as base64.
    position = body.find("\x00")
    if position >= 0:
        raise InputError("pickup.nul_in_body", value=body.count("\n", 0, position) + 1,
                         next_key="pickup.nul_in_body_next")


def _shown_text(text: str) -> str:
    """Return `text` for an error message, with control characters and lone surrogates written as escapes (\\x00)."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def _first_address(header: object) -> str:
    addresses = getattr(header, "addresses", ())
    return addresses[0].addr_spec if addresses else ""


def _attach(message: EmailMessage, item: Attachment) -> None:
    """Add `item` to `message` as a base64 part named in Content-Disposition and in Content-Type."""
    filename = _header_text(item.filename, "filename")
    maintype, subtype = _content_type(item).split("/", 1)
    params = {}
    if maintype.lower() == "text":
        try:
            bytes(item.data).decode("utf-8")
        except UnicodeDecodeError:
            maintype, subtype = "application", "octet-stream"
        else:
            params["charset"] = "utf-8"
    if filename.isascii():
        params["name"] = filename
    message.add_attachment(bytes(item.data), maintype=maintype, subtype=subtype, filename=filename, params=params)
    if filename and not filename.isascii():
        part = message.get_payload()[-1]
        del part["Content-Type"]
        part["Content-Type"] = _content_type_with_encoded_name(f"{maintype}/{subtype}", params, filename)


def _content_type_with_encoded_name(content_type: str, params: dict[str, str], filename: str) -> _FoldedHeader:
    """Return a Content-Type value whose `name` parameter is `filename` in RFC 2047 encoded words.

    The email package writes a non-ASCII parameter only in the RFC 2231 form (name*=), which
    mail programs of the IIS 6 era may not read from Content-Type. Encoded words inside a quoted
    parameter break RFC 2047 section 5, but they are the legacy form those programs read, and
    Thunderbird writes them too in its legacy parameter mode. Content-Disposition keeps the
    standard RFC 2231 filename*=. NOTE: this form has not been tried in Outlook itself.
    """
    words = []
    chunk = ""
    for character in filename:
        if len((chunk + character).encode("utf-8")) > _ENCODED_WORD_BYTES:
            words.append(chunk)
            chunk = ""
        chunk += character
    words.append(chunk)
    encoded = [f"=?utf-8?b?{base64.b64encode(word.encode('utf-8')).decode('ascii')}?=" for word in words]
    lines = ["; ".join([content_type, *(f'{key}="{value}"' for key, value in params.items())]) + ";"]
    lines.append(f' name="{encoded[0]}')
    lines.extend(f" {word}" for word in encoded[1:])
    lines[-1] += '"'
    return _FoldedHeader("Content-Type", "\n".join(lines))


def _content_type(item: Attachment) -> str:
    content_type = item.content_type or mimetypes.guess_type(item.filename)[0] or "application/octet-stream"
    if content_type.count("/") != 1 or not all(content_type.split("/")):
        raise InputError("pickup.invalid_content_type", value=content_type,
                         next_key="pickup.invalid_content_type_next")
    return content_type


class _FoldedHeader(str):
    """A header value that is written exactly as given, with its lines joined by the policy's line end.

    `email.policy.EmailPolicy` stores a value that has a `name` attribute as it is and writes it
    by calling its `fold` method, so the email package does not re-encode it.
    """

    def __new__(cls, name: str, value: str) -> _FoldedHeader:
        header = super().__new__(cls, value)
        header.name = name
        return header

    def __getnewargs__(self) -> tuple[str, str]:
        return self.name, str(self)

    def fold(self, *, policy: email.policy.Policy) -> str:
        return f"{self.name}: {policy.linesep.join(self.splitlines())}{policy.linesep}"


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
