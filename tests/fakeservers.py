"""Small scripted SMTP servers for tests: real sockets on 127.0.0.1, one thread, bounded in time.

`FakeServer(handler)` listens on an ephemeral port and runs `handler(connection)` for each
client it accepts. `Connection` offers line-level helpers and records every byte received, so
tests can compare what reached the server byte for byte. `ScriptedSmtp` is a handler that
replies like an SMTP server from a table of replies, enough to imitate IIS, Postfix or
Exchange dialogues. Every wait has a timeout, and `stop()` joins the thread with a timeout, so
a test can never hang on a fake server.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# No fake server waits longer than this for anything (seconds).
WAIT_LIMIT = 10.0

# The IIS SMTP Service dialogue as FORMATS.md records it (host names and dates are made up).
IIS_BANNER = "220 mail01.example.com Microsoft ESMTP MAIL Service, Version: 10.0.17763.1 ready at  Mon, 2 Mar 2026 09:15:07 +0800 "
IIS_EHLO = [
    "250-mail01.example.com Hello [{client}]",
    "250-AUTH GSSAPI NTLM LOGIN",
    "250-AUTH=LOGIN",
    "250-TURN",
    "250-SIZE 2097152",
    "250-ETRN",
    "250-PIPELINING",
    "250-DSN",
    "250-ENHANCEDSTATUSCODES",
    "250-8bitmime",
    "250-BINARYMIME",
    "250-CHUNKING",
    "250-VRFY",
    "250 OK",
]


class Connection:
    """One accepted client connection with line helpers; `received` keeps every byte read."""

    def __init__(self, sock: socket.socket, address: tuple) -> None:
        self.sock = sock
        self.address = address
        self.sock.settimeout(WAIT_LIMIT)
        self.received = bytearray()
        self._pending = bytearray()
        self.lines: list[str] = []

    @property
    def client_ip(self) -> str:
        return self.address[0]

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, *lines: str) -> None:
        """Send reply lines, each ended by CRLF."""
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode("utf-8"))

    def read_line(self) -> str | None:
        """Read one line (without CRLF); None when the client closed the connection."""
        while b"\n" not in self._pending:
            try:
                chunk = self.sock.recv(4096)
            except (OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            self.received += chunk
            self._pending += chunk
        index = self._pending.index(b"\n")
        line = bytes(self._pending[:index + 1])
        del self._pending[:index + 1]
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        self.lines.append(text)
        return text

    def read_data(self) -> bytes:
        """Read a DATA payload up to and including the CRLF.CRLF terminator, as raw bytes."""
        while True:
            pending = bytes(self._pending)
            if pending.startswith(b".\r\n"):
                end = 3
                break
            index = pending.find(b"\r\n.\r\n")
            if index >= 0:
                end = index + 5
                break
            try:
                chunk = self.sock.recv(4096)
            except (OSError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self._pending.clear()
                return pending
            self.received += chunk
            self._pending += chunk
        payload = bytes(self._pending[:end])
        del self._pending[:end]
        return payload

    def start_tls(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.sock.settimeout(WAIT_LIMIT)
        self._pending.clear()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class FakeServer:
    """A listening socket on 127.0.0.1 whose thread runs `handler` for up to `connections` clients.

    The port is ephemeral unless `port` names one.
    """

    def __init__(self, handler: Callable[[Connection], None], *, connections: int = 1,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.expected = connections
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family)
        # A short accept timeout lets the thread notice stop() quickly (closing a listening
        # socket does not wake a blocked accept() on Linux).
        self.listener.settimeout(0.05)
        self._stopping = threading.Event()
        self.host = host
        self.port = self.listener.getsockname()[1]
        self.connections: list[Connection] = []
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, name=f"fake-smtp-{self.port}", daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept(self) -> tuple[socket.socket, tuple] | None:
        deadline = time.monotonic() + WAIT_LIMIT
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                return self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return None
        return None

    def _serve(self) -> None:
        for _ in range(self.expected):
            accepted = self._accept()
            if accepted is None:
                return
            sock, address = accepted
            connection = Connection(sock, address)
            self.connections.append(connection)
            try:
                self.handler(connection)
            except (OSError, ssl.SSLError) as error:
                self.errors.append(error)
            finally:
                connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self.listener.close()
        for connection in self.connections:
            connection.close()
        self._thread.join(WAIT_LIMIT)

    @property
    def connection(self) -> Connection:
        """The first accepted connection (waits briefly for the thread to record it)."""
        deadline = time.monotonic() + WAIT_LIMIT
        while not self.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.connections[0]


@dataclass
class ScriptedSmtp:
    """An SMTP responder: a table of replies, with hooks for RCPT, AUTH and STARTTLS.

    `rcpt` maps a recipient to its reply (default: `recipient_reply` for all). `auth` contains
    the accepted user and password, and `tls_context` enables STARTTLS. Everything the client
    sent is kept in `commands`, and DATA payloads in `messages`, as raw bytes.
    """

    banner: str = IIS_BANNER
    ehlo: list[str] = field(default_factory=lambda: list(IIS_EHLO))
    helo: str = "250 mail01.example.com Hello [{client}]"
    mail_reply: str = "250 2.1.0 {address}....Sender OK"
    recipient_reply: str = "250 2.1.5 {address}"
    rcpt: dict[str, str] = field(default_factory=dict)
    data_reply: str = "354 Start mail input; end with <CRLF>.<CRLF>"
    queued_reply: str = "250 2.6.0 <20260302091507.0001@mail01.example.com> Queued mail for delivery"
    quit_reply: str = "221 2.0.0 mail01.example.com Service closing transmission channel"
    unknown_reply: str = "500 5.3.3 Unrecognized command"
    auth: tuple[str, str] | None = None
    tls_context: ssl.SSLContext | None = None
    commands: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    auth_lines: list[str] = field(default_factory=list)

    def __call__(self, connection: Connection) -> None:
        connection.send(self.banner)
        while True:
            line = connection.read_line()
            if line is None:
                return
            self.commands.append(line)
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            if not self.respond(connection, verb, line):
                return

    def respond(self, connection: Connection, verb: str, line: str) -> bool:
        client = connection.client_ip
        if verb == "EHLO":
            connection.send(*(text.format(client=client) for text in self.ehlo))
        elif verb == "HELO":
            connection.send(self.helo.format(client=client))
        elif verb == "STARTTLS" and self.tls_context is not None:
            connection.send("220 2.0.0 SMTP server ready")
            connection.start_tls(self.tls_context)
        elif verb == "AUTH":
            self._authenticate(connection, line)
        elif verb == "MAIL":
            connection.send(self.mail_reply.format(address=_address(line)))
        elif verb == "RCPT":
            address = _address(line)
            connection.send(self.rcpt.get(address, self.recipient_reply).format(address=address))
        elif verb == "DATA":
            connection.send(self.data_reply)
            if self.data_reply.startswith("354"):
                self.messages.append(connection.read_data())
                connection.send(self.queued_reply)
        elif verb == "RSET":
            connection.send("250 2.0.0 Resetting")
        elif verb == "QUIT":
            connection.send(self.quit_reply)
            return False
        else:
            connection.send(self.unknown_reply)
        return True

    def _authenticate(self, connection: Connection, line: str) -> None:
        parts = line.split()
        mechanism = parts[1].upper() if len(parts) > 1 else ""
        if mechanism == "PLAIN":
            token = parts[2] if len(parts) > 2 else None
            if token is None:
                connection.send("334 ")
                token = connection.read_line() or ""
            self.auth_lines.append(token)
            _, user, password = base64.b64decode(token).decode("utf-8").split("\0")
        elif mechanism == "LOGIN":
            connection.send("334 VXNlcm5hbWU6")
            user_line = connection.read_line() or ""
            connection.send("334 UGFzc3dvcmQ6")
            password_line = connection.read_line() or ""
            self.auth_lines.extend([user_line, password_line])
            user = base64.b64decode(user_line).decode("utf-8")
            password = base64.b64decode(password_line).decode("utf-8")
        else:
            connection.send("504 5.7.4 Unrecognized authentication type")
            return
        if self.auth is not None and (user, password) == self.auth:
            connection.send("235 2.7.0 Authentication successful")
        else:
            connection.send("535 5.7.3 Authentication unsuccessful")


def _address(line: str) -> str:
    start, end = line.find("<"), line.rfind(">")
    return line[start + 1:end] if 0 <= start < end else ""


def self_signed_context(folder: Path, name: str = "mail01.example.com") -> ssl.SSLContext:
    """Make a server TLS context with a fresh self-signed certificate for `name` and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_path = folder / "server.pem"
    key_path = folder / "server.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate_path, key_path)
    return context
