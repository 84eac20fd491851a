"""A telnet-style SMTP client that records every line on the wire and bounds every wait.

The client speaks over a plain socket, not smtplib, so that the transcript contains each line
exactly as it was sent or received, with the time since connect. Every network step has a
timeout (`timeout` for connect and for each reply) and the whole session has a deadline
(`total_timeout`). Transport failures raise SessionError, which names a category, the step
and the detail in the user's language. Negative SMTP replies are returned, not raised, so the
caller decides what they mean.

Credentials never enter the transcript, the log or an exception: the lines that carry them are
recorded as `<redacted>`.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from adminkb.errors import PeerError, os_error_text
from adminkb.i18n import message
from adminkb.smtp.addresses import (is_ip, validate_ehlo_name, validate_host, validate_port,
                                    validate_source_address, validate_timeout)
from adminkb.smtp.replies import Reply, ReplyFormatError, identify_protocol, parse_reply_line
from adminkb.smtp.transcript import Direction, RecordedReply, Transcript

logger = logging.getLogger("adminkb.smtp.session")

# A reserved name (RFC 2606), so that a probe never announces a real host by default.
DEFAULT_EHLO_NAME = "adminkb.example.com"
# RFC 5321 limits a reply line to 512 octets, so this cap still leaves room for servers that exceed it.
DEFAULT_MAX_LINE = 4096
DEFAULT_MAX_REPLY_LINES = 100
REDACTED = "<redacted>"

# The steps of a session, in order. `quit_after` names one of them.
STEPS = ("connect", "banner", "ehlo", "tls", "auth", "mail", "rcpt", "data", "quit")
# The DATA transcript shows at most this many message lines, then a note with the rest's count.
MAX_RECORDED_DATA_LINES = 200


@dataclass(frozen=True)
class TlsInfo:
    """The result of a TLS handshake: protocol version, cipher, and the server certificate."""

    version: str | None
    cipher: str | None
    verified: bool
    subject: str | None = None
    issuer: str | None = None
    not_after: str | None = None


class SessionError(PeerError):
    """A session failed below the SMTP reply level: connect, timeout, garbage, TLS, closed.

    `category` is one of the verdict categories (connect_refused, timeout, garbage...), `step`
    the session step that was running, `detail` the system's or the server's error text. The text
    is the verdict's own (`smtp.verdict.<category>` and `smtp.verdict_next.<category>`).
    """

    def __init__(self, category: str, *, step: str, host: str, port: int, detail: object = "",
                 timeout: float = 0.0, limit: int = 0, protocol: str = "", source: str = "") -> None:
        self.category = category
        self.step = step
        self.detail = "" if detail is None else str(detail)
        self.host = host
        self.port = port
        self.protocol = protocol
        self.timeout = timeout
        self.limit = limit
        self.source = source
        super().__init__(f"smtp.verdict.{category}", value=self.detail, next_key=f"smtp.verdict_next.{category}",
                         step=step, step_name=message(f"smtp.step.{step}"), timeout=_seconds(timeout), limit=limit,
                         target=host_port(host, port), detail=self.detail or "-", protocol=protocol,
                         source=source or "-", accepted=0, total=0, code="-")


def _seconds(value: float) -> str:
    return f"{value:g}"


def host_port(host: str, port: int) -> str:
    """Return `host:port`, with brackets around an IPv6 address (`[::1]:25`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class EhloInfo:
    """The EHLO reply split into the greeting line and the extensions (keyword to parameters)."""

    greeting: str
    extensions: dict[str, str]

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        """The AUTH mechanisms offered, from both `AUTH a b` and the old `AUTH=a b` form."""
        found: list[str] = []
        for keyword in ("AUTH", "AUTH="):
            for mechanism in self.extensions.get(keyword, "").upper().split():
                if mechanism not in found:
                    found.append(mechanism)
        return tuple(found)


def parse_ehlo(reply: Reply) -> EhloInfo:
    """Split an EHLO reply into its greeting and extension keywords (upper case)."""
    extensions: dict[str, str] = {}
    for text in reply.texts[1:]:
        keyword, _, parameters = text.strip().partition(" ")
        if keyword.upper().startswith("AUTH="):
            parameters = f"{keyword[5:]} {parameters}".strip()
            keyword = "AUTH="
        keyword = keyword.upper()
        extensions[keyword] = f"{extensions[keyword]} {parameters}".strip() if keyword in extensions else parameters
    return EhloInfo(greeting=reply.texts[0] if reply.texts else "", extensions=extensions)


def prepare_data(message_bytes: bytes) -> bytes:
    """Return the DATA payload: CRLF line ends, leading dots doubled, and the final `.` line.

    Bare CR and bare LF become CRLF (RFC 5321 section 2.3.8 forbids them on the wire). A line
    that starts with `.` gets a second one (section 4.5.2) so the server does not end there.
    """
    lines = re.split(rb"\r\n|\r|\n", message_bytes)
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"".join(line + b"\r\n" for line in stuffed) + b".\r\n"


def _resolve(host: str, port: int, timeout: float) -> list[tuple]:
    """Resolve `host` with getaddrinfo in a helper thread, so a silent resolver cannot stall us.

    Raises TimeoutError after `timeout` seconds. The helper thread then ends on its own when
    the resolver gives up, because it is a daemon thread and owns no socket.
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"adminkb-resolve-{host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"name resolution of {host} timed out")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


class SmtpSession:
    """One SMTP session with a transcript; use it as a context manager or call close().

    `timeout` bounds connect and each reply, in seconds; `total_timeout` bounds the whole
    session (default: four times `timeout`). `source_address` is the local IP to connect
    from. `max_line_length` (bytes) and `max_reply_lines` cap what a server may send.
    """

    def __init__(self, host: str, port: int = 25, *, timeout: float = 10.0, total_timeout: float | None = None,
                 source_address: str | None = None, ehlo_name: str = DEFAULT_EHLO_NAME,
                 max_line_length: int = DEFAULT_MAX_LINE, max_reply_lines: int = DEFAULT_MAX_REPLY_LINES) -> None:
        self.host = validate_host(host)
        self.port = validate_port(port)
        self.timeout = validate_timeout(timeout)
        self.total_timeout = validate_timeout(total_timeout) if total_timeout is not None else 4 * self.timeout
        self.source_address = validate_source_address(source_address)
        self.ehlo_name = validate_ehlo_name(ehlo_name)
        self.max_line_length = max_line_length
        self.max_reply_lines = max_reply_lines
        self.transcript = Transcript()
        self.replies: list[RecordedReply] = []
        self.ehlo_info: EhloInfo | None = None
        self.esmtp = False
        self.tls: TlsInfo | None = None
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._deadline: float | None = None

    def __repr__(self) -> str:
        state = "open" if self._sock is not None else "closed"
        return f"<SmtpSession {host_port(self.host, self.port)} {state}, {len(self.transcript)} transcript lines>"

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # -- recording -------------------------------------------------------------------------

    def note(self, key: str, *, step: str, **values: object) -> None:
        """Add a local note (a catalog message) to the transcript and the log."""
        text = message(key, **values)
        self.transcript.add(Direction.NOTE, text, step=step, tls=self.tls is not None)
        logger.info("%s: %s", host_port(self.host, self.port), text)

    def _fail(self, category: str, *, step: str, detail: object = "", **values: object) -> SessionError:
        error = SessionError(category, step=step, host=self.host, port=self.port, detail=detail, **values)
        self.transcript.add(Direction.NOTE, error.describe().splitlines()[0], step=step, tls=self.tls is not None)
        logger.info("%s: %s failed (%s): %s", host_port(self.host, self.port), step, category, error.detail)
        return error

    # -- connect ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the TCP connection, trying each address the host name resolves to."""
        if self._sock is not None:
            raise RuntimeError("the session is already connected")
        self.transcript.start()
        started = time.monotonic()
        self._deadline = started + self.total_timeout
        target = host_port(self.host, self.port)
        if self.source_address:
            self.note("smtp.note.connecting_from", step="connect", target=target, source=self.source_address)
        else:
            self.note("smtp.note.connecting", step="connect", target=target)

        last_error: BaseException | None = None
        for family, socktype, proto, _, address in self._candidates():
            remaining = self.timeout - (time.monotonic() - started)
            if remaining <= 0:
                break
            sock = socket.socket(family, socktype, proto)
            if self.source_address:
                self._bind_source(sock)
            try:
                sock.settimeout(remaining)
                sock.connect(address)
            except OSError as error:
                sock.close()
                last_error = error
                logger.debug("connect to %s failed: %s", address, error)
                continue
            self._sock = sock
            peer = sock.getpeername()
            self.note("smtp.note.connected", step="connect", peer=host_port(peer[0], peer[1]),
                      local=sock.getsockname()[0])
            return
        raise self._connect_failure(last_error)

    def _bind_source(self, sock: socket.socket) -> None:
        """Bind `sock` to the source address, or close it and raise when this computer lacks that address."""
        try:
            sock.bind((self.source_address, 0))
        except OSError as error:
            sock.close()
            raise self._fail("source_unusable", step="connect", detail=os_error_text(error),
                             source=self.source_address) from None

    def _candidates(self) -> list[tuple]:
        """Return the addresses to try, as getaddrinfo tuples of the source address's family."""
        try:
            if is_ip(self.host):
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                candidates = [(family, socket.SOCK_STREAM, 0, "", (self.host, self.port))]
            else:
                candidates = _resolve(self.host, self.port, self.timeout)
        except TimeoutError:
            raise self._fail("timeout", step="connect", timeout=self.timeout) from None
        except OSError as error:
            raise self._fail("name_not_resolved", step="connect", detail=error.strerror or error) from None
        if not self.source_address:
            return candidates
        wanted = socket.AF_INET6 if ":" in self.source_address else socket.AF_INET
        matching = [item for item in candidates if item[0] == wanted]
        if not matching:
            raise self._fail("connect_failed", step="connect",
                             detail=message("smtp.note.no_address_family", source=self.source_address))
        return matching

    def _connect_failure(self, last_error: BaseException | None) -> SessionError:
        if isinstance(last_error, ConnectionRefusedError):
            return self._fail("connect_refused", step="connect", detail=last_error.strerror)
        if last_error is None or isinstance(last_error, (TimeoutError, socket.timeout)):
            return self._fail("timeout", step="connect", timeout=self.timeout)
        return self._fail("connect_failed", step="connect", detail=getattr(last_error, "strerror", None) or last_error)

    # -- reading and writing ---------------------------------------------------------------

    def _step_deadline(self, timeout: float | None = None) -> float:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return min(deadline, self._deadline) if self._deadline is not None else deadline

    def _timeout_failure(self, step: str) -> SessionError:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return self._fail("total_timeout", step=step, timeout=self.total_timeout)
        return self._fail("timeout", step=step, timeout=self.timeout)

    def _require_socket(self, step: str) -> socket.socket:
        if self._sock is None:
            raise self._fail("connection_closed", step=step)
        return self._sock

    def _read_line(self, deadline: float, step: str) -> str:
        sock = self._require_socket(step)
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self._buffer[:end + 1])
                del self._buffer[:end + 1]
                if len(raw) > self.max_line_length:
                    self._record_partial(raw, step)
                    raise self._fail("line_too_long", step=step, limit=self.max_line_length)
                return raw.rstrip(b"\r\n").decode("utf-8", "replace")
            if len(self._buffer) > self.max_line_length:
                self._record_partial(bytes(self._buffer), step)
                self._buffer.clear()
                raise self._fail("line_too_long", step=step, limit=self.max_line_length)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._record_pending(step)
                raise self._timeout_failure(step)
            try:
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
            except (socket.timeout, TimeoutError):
                self._record_pending(step)
                raise self._timeout_failure(step) from None
            except ssl.SSLError as error:
                self._record_pending(step)
                raise self._fail("tls_failed", step=step, detail=error.reason or error) from None
            except OSError as error:
                self._record_pending(step)
                raise self._fail("connection_closed", step=step, detail=error.strerror or error) from None
            if not chunk:
                self._record_pending(step)
                self._drop_socket()
                raise self._fail("connection_closed", step=step)
            self._buffer += chunk

    def _record_partial(self, raw: bytes, step: str) -> None:
        shown = raw[:200].decode("utf-8", "replace").rstrip("\r\n")
        self.transcript.add(Direction.SERVER, shown, step=step, tls=self.tls is not None)
        self.note("smtp.note.truncated", step=step, shown=200, total=len(raw))

    def _record_pending(self, step: str) -> None:
        """Record bytes that arrived without a line end before the failure, so the reader sees them."""
        if self._buffer:
            self.transcript.add(Direction.SERVER, bytes(self._buffer[:200]).decode("utf-8", "replace"),
                                step=step, tls=self.tls is not None)
            self._buffer.clear()

    def read_reply(self, *, step: str, command: str | None = None, timeout: float | None = None) -> Reply:
        """Read one complete reply (all its lines) within `timeout`, record it and return it."""
        deadline = self._step_deadline(timeout)
        lines: list[str] = []
        first_code: int | None = None
        while True:
            line = self._read_line(deadline, step)
            self.transcript.add(Direction.SERVER, line, step=step, tls=self.tls is not None)
            logger.debug("%s S: %s", host_port(self.host, self.port), line)
            try:
                parsed = parse_reply_line(line)
            except ReplyFormatError:
                raise self._fail("garbage", step=step, detail=line[:200],
                                 protocol=identify_protocol(line) or "") from None
            if first_code is not None and parsed.code != first_code:
                raise self._fail("garbage", step=step, detail=line[:200])
            first_code = parsed.code
            lines.append(line)
            if parsed.last:
                break
            if len(lines) >= self.max_reply_lines:
                raise self._fail("too_many_lines", step=step, limit=self.max_reply_lines)
        reply = Reply.from_lines(lines)
        self.replies.append(RecordedReply(step=step, command=command, reply=reply))
        return reply

    def _send(self, data: bytes, *, step: str) -> None:
        sock = self._require_socket(step)
        remaining = self._step_deadline() - time.monotonic()
        if remaining <= 0:
            raise self._timeout_failure(step)
        try:
            sock.settimeout(remaining)
            sock.sendall(data)
        except (socket.timeout, TimeoutError):
            raise self._timeout_failure(step) from None
        except OSError as error:
            self._drop_socket()
            raise self._fail("connection_closed", step=step, detail=error.strerror or error) from None

    def send_line(self, line: str, *, step: str, shown: str | None = None) -> None:
        """Send one command line; the transcript and the log show `shown` instead when given."""
        if "\r" in line or "\n" in line:
            raise ValueError("a command line must not contain CR or LF")
        recorded = line if shown is None else shown
        self.transcript.add(Direction.CLIENT, recorded, step=step, tls=self.tls is not None)
        logger.debug("%s C: %s", host_port(self.host, self.port), recorded)
        self._send(line.encode("utf-8") + b"\r\n", step=step)

    def command(self, line: str, *, step: str, shown: str | None = None, timeout: float | None = None) -> Reply:
        """Send a command and return its reply (whatever the code)."""
        self.send_line(line, step=step, shown=shown)
        return self.read_reply(step=step, command=line if shown is None else shown, timeout=timeout)

    # -- SMTP steps ------------------------------------------------------------------------

    def read_banner(self) -> Reply:
        """Read the greeting (220 when the server is willing to talk)."""
        return self.read_reply(step="banner")

    def ehlo(self) -> Reply:
        """Send EHLO, and fall back to HELO when the server rejects EHLO with 5xx (no ESMTP)."""
        reply = self.command(f"EHLO {self.ehlo_name}", step="ehlo")
        if reply.code == 250:
            self.esmtp = True
            self.ehlo_info = parse_ehlo(reply)
            return reply
        if reply.permanent:
            self.note("smtp.note.helo_fallback", step="ehlo", code=reply.code)
            reply = self.command(f"HELO {self.ehlo_name}", step="ehlo")
            self.esmtp = False
            self.ehlo_info = EhloInfo(greeting=reply.texts[0] if reply.texts else "", extensions={})
        return reply

    def supports(self, keyword: str) -> bool:
        """Return whether the last EHLO reply offered the extension `keyword`."""
        return self.ehlo_info is not None and keyword.upper() in self.ehlo_info.extensions

    def wrap_tls(self, context: ssl.SSLContext, *, server_hostname: str,
                 timeout: float | None = None) -> ssl.SSLSocket:
        """Switch the connection to TLS with `context`, after the server's 220 to STARTTLS.

        Unread bytes are dropped, because the server sent them before the handshake. `timeout`
        bounds the handshake (default: what is left of the step). On failure the connection is
        closed and the ssl or OS error propagates, so callers that need their own context (the
        audit pins one TLS version or trusts one CA file) classify it themselves. The EHLO
        information is cleared because RFC 3207 requires a new EHLO after TLS.
        """
        self._buffer.clear()
        sock = self._require_socket("tls")
        if timeout is None:
            timeout = max(self._step_deadline() - time.monotonic(), 0.001)
        try:
            sock.settimeout(timeout)
            wrapped = context.wrap_socket(sock, server_hostname=server_hostname)
        except BaseException:
            self._drop_socket(sock)
            raise
        self._sock = wrapped
        self.ehlo_info = None
        self.esmtp = False
        return wrapped

    def starttls(self, *, verify: bool = True, server_hostname: str | None = None) -> Reply:
        """Send STARTTLS and, on 220, switch the connection to TLS.

        With `verify=False` the certificate is neither checked against a CA nor against the
        host name; only use that for a lab or a self-signed certificate. After TLS the EHLO
        information is cleared because RFC 3207 requires a new EHLO.
        """
        reply = self.command("STARTTLS", step="tls")
        if reply.code != 220:
            return reply
        if self._buffer:
            # Bytes sent before the handshake could be an injected command: drop them.
            self.note("smtp.note.data_before_tls", step="tls", count=len(self._buffer))
        try:
            wrapped = self.wrap_tls(make_tls_context(verify), server_hostname=server_hostname or self.host)
        except ssl.SSLCertVerificationError as error:
            raise self._fail("tls_verify_failed", step="tls", detail=error.verify_message or error) from None
        except (socket.timeout, TimeoutError):
            raise self._timeout_failure("tls") from None
        except (ssl.SSLError, OSError) as error:
            detail = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
            raise self._fail("tls_failed", step="tls", detail=detail) from None
        self.tls = describe_tls(wrapped, verified=verify)
        self.note("smtp.note.tls_started", step="tls", version=self.tls.version or "-", cipher=self.tls.cipher or "-")
        if self.tls.subject:
            self.note("smtp.note.tls_certificate", step="tls", subject=self.tls.subject,
                      issuer=self.tls.issuer or "-", not_after=self.tls.not_after or "-")
        if not verify:
            self.note("smtp.note.tls_not_verified", step="tls")
        return reply

    def auth_mechanisms(self) -> tuple[str, ...]:
        return self.ehlo_info.auth_mechanisms if self.ehlo_info else ()

    def authenticate(self, user: str, password: str, mechanism: str | None = None) -> Reply:
        """Authenticate with AUTH PLAIN or LOGIN and return the final reply.

        Without `mechanism`, PLAIN is used when offered, else LOGIN. The password and every
        base64 line are recorded as `<redacted>`; the user name appears in a note only.
        """
        offered = self.auth_mechanisms()
        if mechanism is None:
            mechanism = next((name for name in ("PLAIN", "LOGIN") if name in offered), None)
            if mechanism is None:
                self.note("smtp.note.auth_offered", step="auth", offered=" ".join(offered) or "-")
                raise self._fail("auth_unavailable", step="auth", detail=" ".join(offered) or "-")
        mechanism = mechanism.upper()
        if mechanism not in ("PLAIN", "LOGIN"):
            raise ValueError(f"unsupported AUTH mechanism {mechanism!r}: use PLAIN or LOGIN")
        self.note("smtp.note.auth_as", step="auth", mechanism=mechanism, user=user)
        if self.tls is None and not is_loopback(self.host):
            self.note("smtp.note.auth_without_tls", step="auth")
        if mechanism == "PLAIN":
            token = _b64(f"\0{user}\0{password}")
            reply = self.command(f"AUTH PLAIN {token}", step="auth", shown=f"AUTH PLAIN {REDACTED}")
            if reply.code == 334:
                reply = self.command(token, step="auth", shown=REDACTED)
            return reply
        reply = self.command("AUTH LOGIN", step="auth")
        if reply.code != 334:
            return reply
        reply = self.command(_b64(user), step="auth", shown=REDACTED)
        if reply.code != 334:
            return reply
        return self.command(_b64(password), step="auth", shown=REDACTED)

    def mail_from(self, address: str) -> Reply:
        """Send `MAIL FROM:<address>` (an empty address is the null sender of bounces)."""
        return self.command(f"MAIL FROM:<{address}>", step="mail")

    def rcpt_to(self, address: str) -> Reply:
        """Send `RCPT TO:<address>`."""
        return self.command(f"RCPT TO:<{address}>", step="rcpt")

    def start_data(self) -> Reply:
        """Send DATA; the server replies 354 when it is ready for the message."""
        return self.command("DATA", step="data")

    def send_message(self, message_bytes: bytes) -> Reply:
        """Send the message (CRLF, dot-stuffed, ended by `.`) and return the server's verdict on it."""
        payload = prepare_data(message_bytes)
        lines = payload.split(b"\r\n")[:-1]
        for line in lines[:MAX_RECORDED_DATA_LINES]:
            self.transcript.add(Direction.CLIENT, line.decode("utf-8", "replace"), step="message",
                                tls=self.tls is not None)
        if len(lines) > MAX_RECORDED_DATA_LINES:
            self.note("smtp.note.data_lines_hidden", step="message", count=len(lines) - MAX_RECORDED_DATA_LINES)
        logger.debug("%s C: <message, %d bytes>", host_port(self.host, self.port), len(payload))
        self._send(payload, step="message")
        return self.read_reply(step="message", command="<message>")

    def quit(self) -> Reply | None:
        """Send QUIT and read the reply; a server that just closes is noted, not an error."""
        if self._sock is None:
            return None
        if self._deadline is not None and time.monotonic() >= self._deadline:
            # The session's time is up; a QUIT now could only time out.
            self.close()
            return None
        try:
            return self.command("QUIT", step="quit", timeout=min(self.timeout, 5.0))
        except SessionError as error:
            logger.info("QUIT got no clean reply: %s", error.category)
            return None
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._drop_socket()

    def _drop_socket(self, sock: socket.socket | None = None) -> None:
        target = sock or self._sock
        self._sock = None
        if target is not None:
            try:
                target.close()
            except OSError:
                pass


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def is_loopback(host: str) -> bool:
    """Return whether `host` is a loopback address (127.0.0.0/8, ::1) or the name localhost."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def make_tls_context(verify: bool) -> ssl.SSLContext:
    """Return a client TLS context that checks the certificate and name, unless `verify` is False."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def describe_tls(sock: ssl.SSLSocket, *, verified: bool) -> TlsInfo:
    """Describe the TLS session and the server certificate (read with cryptography)."""
    cipher = sock.cipher()
    subject = issuer = not_after = None
    der = sock.getpeercert(binary_form=True)
    if der:
        try:
            from cryptography import x509

            certificate = x509.load_der_x509_certificate(der)
            subject = certificate.subject.rfc4514_string()
            issuer = certificate.issuer.rfc4514_string()
            not_after = certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
        except (ImportError, ValueError) as error:
            logger.info("could not read the server certificate: %s", error)
    return TlsInfo(version=sock.version(), cipher=cipher[0] if cipher else None, verified=verified,
                   subject=subject, issuer=issuer, not_after=not_after)
