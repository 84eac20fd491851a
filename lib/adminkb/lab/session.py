"""One SMTP connection to the lab, speaking and logging as the IIS 6.0 SMTP Service does.

`IisSmtpSession` subclasses aiosmtpd's `SMTP` protocol for its connection plumbing (stream
reader, idle timeout, session and envelope objects) but runs its own command loop, because
aiosmtpd writes its own texts for many replies (`500 Error: command "X" not recognized`,
`221 Bye`, `250 OK`...). Every reply a client can get here comes from `adminkb.lab.replies`,
and every command becomes one W3C log line with the bytes each way and the time taken.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from asyncio import sslproto

from aiosmtpd import smtp as aiosmtpd_smtp
from aiosmtpd.smtp import SMTP

from adminkb.lab import replies
from adminkb.lab.clock import milliseconds_between
from adminkb.lab.service import VirtualServer, find_message_id
from adminkb.lab.w3clog import LogEntry

log = logging.getLogger("adminkb.lab")

# The W3C log shows QUIT with this status instead of the 221 the client receives.
QUIT_LOG_STATUS = 240

# MAIL FROM and RCPT TO parameters the service accepts (RFC 1870 SIZE, RFC 6152 and RFC 3030
# BODY, RFC 3461 DSN, RFC 4954 AUTH). Anything else is rejected as an invalid argument.
MAIL_PARAMETERS = {"SIZE", "BODY", "RET", "ENVID", "AUTH"}
RCPT_PARAMETERS = {"NOTIFY", "ORCPT"}
BODY_TYPES = {"7BIT", "8BITMIME", "BINARYMIME"}

# asyncio runs a timer that is due within this many seconds, so an idle timer may fire that
# much before its deadline. It counts as expired then, as aiosmtpd's own timer would.
_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution

_VERB = re.compile(r"\A[A-Za-z]+\Z")
# A character that no mailbox may contain: white space (as str.isspace() defines it) or an angle bracket.
_NOT_IN_MAILBOX = re.compile(r"[\s<>]")
_HELO_NAME = re.compile(r"\A\S+\Z")


class IisSmtpSession(SMTP):
    """An SMTP server session with the replies, relay checks and W3C logging of IIS 6.0."""

    def __init__(self, server: VirtualServer, *, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        # aiosmtpd's SMTP.__init__ is not called: at every connection it builds tables of
        # smtp_*, auth_* and handle_* methods with inspect.getmembers() and dir(), which took
        # about a quarter of the lab's CPU time per message. The lab's own command loop uses
        # none of them, so they stay empty. The other attributes get the values that
        # SMTP.__init__ of aiosmtpd 1.4.6 gives them for these arguments, and a test compares
        # the two so that an aiosmtpd upgrade which adds one fails loudly.
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=loop)
        self._init_aiosmtpd_state(server, loop, timeout)
        self._idle_deadline = 0.0
        self.server = server
        self._commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "HELO": self._helo, "EHLO": self._ehlo, "MAIL": self._mail, "RCPT": self._rcpt,
            "DATA": self._data, "BDAT": self._bdat, "RSET": self._rset, "NOOP": self._noop,
            "QUIT": self._quit, "HELP": self._help, "VRFY": self._vrfy, "ETRN": self._etrn,
            "TURN": self._turn, "AUTH": self._auth, "STARTTLS": self._starttls,
        }
        self.client_ip = "-"
        self.server_ip = "-"
        self.allowed = False
        self._connected_at: datetime | None = None
        self._quit_logged = False
        self._mail_given = False
        self._chunks: list[bytes] = []
        self._chunks_size = 0
        # Per command: bytes sent, the last reply's code, and what the log line should show.
        self._reply_bytes = 0
        self._last_status = 0
        self._query_override: str | None = None
        # Lines still to keep out of the log after a refused AUTH (see _run_command).
        self._auth_lines_to_hide = 0
        self._cs_bytes_override: int | None = None
        self._last_sizes = (0, 0)
        self._command_length = 0
        # While a command runs its replies wait here, so that its log line is on disk before
        # the client sees the final reply: a runbook can read the log right after a send.
        self._held_replies: list[bytes] | None = None

    def _init_aiosmtpd_state(self, server: VirtualServer, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Set the attributes that aiosmtpd's SMTP methods read, as SMTP.__init__ would."""
        self.__ident__ = aiosmtpd_smtp.__ident__
        self.loop = loop
        self.event_handler = server
        self.data_size_limit = None
        self.enable_SMTPUTF8 = False
        self._decode_data = False
        # The lab's host name, so that aiosmtpd never calls socket.getfqdn(), which can stall
        # for seconds where DNS does not answer.
        self.hostname = server.hostname

        self._timeout_duration = timeout
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._proxy_timeout = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None

        # STARTTLS and AUTH are the lab's own commands, so aiosmtpd's TLS and AUTH settings stay off.
        self.tls_context = None
        self.require_starttls = None
        self._tls_handshake_okay = True
        self._tls_protocol: sslproto.SSLProtocol | None = None
        self._original_transport: asyncio.BaseTransport | None = None
        self._auth_require_tls = True
        self._authenticator = None
        self._auth_callback = aiosmtpd_smtp.login_always_fail
        self._auth_required = False

        # aiosmtpd's command dispatch tables, unused by the lab's command loop.
        self._auth_methods = {}
        self._handle_hooks = {}
        self._ehlo_hook_ver = None
        self._smtp_methods = {}
        self._enforce_call_limit = False

    # Connection life cycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:
            # The TLS layer reports its new transport after a STARTTLS handshake. aiosmtpd
            # then starts a fresh session object, so the client must send EHLO again
            # (RFC 3207 section 4.2), and the connection's addresses stay as they were.
            super().connection_made(transport)
            return
        super().connection_made(transport)
        peer = transport.get_extra_info("peername") or ("-", 0)
        local = transport.get_extra_info("sockname") or ("-", 0)
        self.client_ip = _plain_ip(peer[0])
        self.server_ip = _plain_ip(local[0])
        self._connected_at = self.server.clock.now()
        self.server.sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.server.sessions.discard(self)
        super().connection_lost(error)
        if self.allowed and not self._quit_logged:
            # NOTE: a session that ends without QUIT still gets a QUIT line in the service's
            # logs. The one public sample repeats the previous command's byte counts on it.
            self._write_quit_line(*self._last_sizes, time_taken=0)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the idle deadline; the connection closes when no line arrives before it.

        aiosmtpd cancels its timer and starts a new one at every line, which cost about a tenth
        of the lab's CPU time. Here one timer runs per session: moving the deadline only stores
        a number, and a timer that fires before the deadline is set again for it.
        """
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._idle_deadline = deadline
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(deadline, self._idle_timer_fired)

    def _idle_timer_fired(self) -> None:
        if self.transport is None:
            return
        if self._idle_deadline - self.loop.time() > _CLOCK_RESOLUTION:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_timer_fired)
            return
        self._timeout_cb()

    async def push(self, status: str | bytes) -> None:
        """Send one reply line, or hold it while a command runs, counting its bytes for the W3C log."""
        # Client bytes that are not ASCII were decoded with surrogateescape: send them back as they came.
        line = status if isinstance(status, bytes) else status.encode("ascii", errors="surrogateescape")
        self._reply_bytes += len(line) + 2
        self._last_status = _status_of(line)
        if self._held_replies is not None:
            self._held_replies.append(line)
        else:
            await super().push(line)

    async def _send_held_replies(self) -> None:
        """Send the reply lines held so far; later lines are held again until the command ends."""
        if not self._held_replies or self.transport is None:
            return
        data = b"".join(line + b"\r\n" for line in self._held_replies)
        self._held_replies.clear()
        self._writer.write(data)
        await self._writer.drain()

    async def _handle_client(self) -> None:
        if not self.server.connection_allowed(self.client_ip):
            # NOTE: how the service turns away a computer denied by connection control is not
            # confirmed. The lab accepts the TCP connection and closes it without a banner.
            log.info("connection from %s rejected by connection control", self.client_ip)
            assert self.transport is not None
            self.transport.close()
            return
        self.allowed = True
        log.debug("connection from %s to %s", self.client_ip, self.server_ip)
        banner = self.server.banner()
        try:
            await self.push(banner)
            while self.transport is not None:
                line, length, too_long = await self._read_command_line()
                if line is None:
                    break
                await self._run_command(line, length, too_long)
        except asyncio.CancelledError:
            # The client went away or the lab is stopping (aiosmtpd cancels this task then).
            self._writer.close()
            raise
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            log.info("connection from %s ended: %s", self.client_ip, error)
            self._writer.close()

    async def _read_command_line(self) -> tuple[bytes | None, int, bool]:
        """Read one command line; return it without its line end, its length, and whether it was too long.

        The line is None at the end of input. A line longer than the stream limit is read to
        its end but returned cut at the limit, so that the caller can reject it and still log
        its verb.
        """
        try:
            line = await self._reader.readuntil(b"\n")
            stripped = line.rstrip(b"\r\n")
            return stripped, len(stripped), False
        except asyncio.IncompleteReadError:
            return None, 0, False
        except asyncio.LimitOverrunError as overrun:
            head = await self._reader.read(overrun.consumed)
            length = len(head)
            previous = head
            while True:
                try:
                    rest = await self._reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as more:
                    previous = await self._reader.read(more.consumed)
                    length += len(previous)
                    continue
                length += len(rest)
                # The CR of the line end may have come at the end of the previous piece.
                length -= 2 if (previous[-1:] + rest).endswith(b"\r\n") else 1
                return head.rstrip(b"\r"), length, True

    async def _run_command(self, line: bytes, length: int, too_long: bool) -> None:
        """Run one command line, write its W3C log line, then send the replies it produced."""
        started = self.server.clock.now()
        self._command_length = length
        self._reply_bytes = 0
        self._query_override = None
        self._cs_bytes_override = None
        self._held_replies = []

        verb_bytes, separator, rest = line.partition(b" ")
        verb = verb_bytes.decode("ascii", errors="surrogateescape")
        query = (separator + rest).decode("ascii", errors="surrogateescape")
        handler = self._commands.get(verb.upper()) if _VERB.match(verb) and not too_long else None
        # A client that does not wait for the 334 prompt sends its base64 user name and password
        # as if they were commands after a refused AUTH. The lab logs those two lines without their
        # text, so its logs, which runbooks print, never carry credentials.
        # NOTE: what the real service logs for such lines is not documented.
        hide_line = handler is None and self._auth_lines_to_hide > 0
        self._auth_lines_to_hide = 0 if handler is not None else max(self._auth_lines_to_hide - 1, 0)
        # AUTH and STARTTLS lines show the name from before the command, because a successful
        # AUTH changes it to the account and STARTTLS starts a session without a HELO name.
        username_before = self._log_username()
        try:
            if handler is None:
                await self.push(replies.UNRECOGNIZED)
            else:
                await handler(rest.decode("ascii", errors="surrogateescape").strip())
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            raise
        except Exception:
            log.exception("command %s from %s failed inside the lab", verb.upper() or "(empty line)", self.client_ip)
            await self.push(replies.LOCAL_ERROR)
        self._reset_timeout()

        if handler is not None and verb.upper() == "QUIT":
            # The QUIT line is already written, with the session length.
            await self._send_held_replies()
            self._held_replies = None
            assert self.transport is not None
            self.transport.close()
            return

        cs_bytes = length if self._cs_bytes_override is None else self._cs_bytes_override
        keeps_name = handler is not None and verb.upper() in ("AUTH", "STARTTLS")
        username = username_before if keeps_name else self._log_username()
        self._last_sizes = (self._reply_bytes, cs_bytes)
        finished = self.server.clock.now()
        # The service logs the commands it recognizes in capitals and anything else in lower case.
        if hide_line:
            method, logged_query = "-", ""
        else:
            method = verb.upper() if handler is not None else verb.lower()
            logged_query = query if self._query_override is None else self._query_override
        self._write_log(LogEntry(
            when=finished, client_ip=self.client_ip, server_ip=self.server_ip,
            method=method, cs_uri_query=logged_query,
            username=username, status=self._last_status,
            sc_bytes=self._reply_bytes, cs_bytes=cs_bytes,
            time_taken=milliseconds_between(started, finished)))
        await self._send_held_replies()
        self._held_replies = None

    def _write_quit_line(self, sc_bytes: int, cs_bytes: int, time_taken: int) -> None:
        self._quit_logged = True
        now = self.server.clock.now()
        session_ms = milliseconds_between(self._connected_at or now, now)
        self._write_log(LogEntry(
            when=now, client_ip=self.client_ip, server_ip=self.server_ip, method="QUIT",
            cs_uri_query=self.session.host_name or "", username=self.session.host_name or "",
            status=QUIT_LOG_STATUS, win32_status=session_ms, sc_bytes=sc_bytes, cs_bytes=cs_bytes,
            time_taken=time_taken))

    def _write_log(self, entry: LogEntry) -> None:
        try:
            self.server.log_writer.write(entry)
        except OSError:
            # A full disk or a locked log file must not end the SMTP session.
            log.exception("failed to write the W3C log line for %s from %s", entry.method, self.client_ip)

    # Transaction state

    def _reset_transaction(self) -> None:
        self._set_rset_state()
        self._mail_given = False
        self._chunks = []
        self._chunks_size = 0

    def _hello_missing(self) -> bool:
        return not self.session.host_name

    @property
    def under_tls(self) -> bool:
        return self.session.ssl is not None

    @property
    def authenticated_user(self) -> str | None:
        """The account that authenticated in this session, or None."""
        return self.session.auth_data if self.session.authenticated else None

    def _log_username(self) -> str:
        # NOTE: public IIS SMTP logs show the HELO name in cs-username. What the service writes
        # there after a successful AUTH is not confirmed. The lab writes the account, as IIS
        # does for authenticated requests in the W3C logs of its other services.
        return self.authenticated_user or self.session.host_name or ""

    def _auth_offered(self) -> bool:
        # NOTE: the lab hides AUTH until TLS while TLS is required, as aiosmtpd does. Whether
        # IIS with "Requires TLS encryption" also hides it, or lists it and rejects it, is not confirmed.
        return self.server.basic_auth and (self.under_tls or not self.server.auth_requires_tls)

    # Commands

    async def _helo(self, argument: str) -> None:
        if not _HELO_NAME.match(argument):
            await self.push(replies.INVALID_ADDRESS)
            return
        self._reset_transaction()
        self.session.host_name = argument
        self.session.extended_smtp = False
        await self.push(replies.HELO_OK.format(host=self.server.hostname, client=self.client_ip))

    async def _ehlo(self, argument: str) -> None:
        if not _HELO_NAME.match(argument):
            await self.push(replies.INVALID_ADDRESS)
            return
        self._reset_transaction()
        self.session.host_name = argument
        self.session.extended_smtp = True
        await self.push(replies.EHLO_FIRST.format(host=self.server.hostname, client=self.client_ip))
        keywords = [*(replies.AUTH_KEYWORDS if self._auth_offered() else ()),
                    *self.server.authentication_keywords,
                    *(keyword.format(size=self.server.max_message_size) for keyword in replies.EHLO_KEYWORDS),
                    *(replies.TLS_KEYWORDS if self.server.tls_context is not None and not self.under_tls else ())]
        for keyword in keywords:
            await self.push(f"250-{keyword}")
        await self.push(replies.EHLO_LAST)

    async def _mail(self, argument: str) -> None:
        if self._hello_missing():
            await self.push(replies.SEND_HELLO_FIRST)
            return
        if self._mail_given:
            await self.push(replies.SENDER_ALREADY_SPECIFIED)
            return
        parsed = _parse_path_argument(argument, "FROM:")
        if parsed is None:
            await self.push(replies.INVALID_ARGUMENTS)
            return
        address, parameters = parsed
        if address is None or (address and not _plausible_mailbox(address)):
            await self.push(replies.INVALID_ADDRESS)
            return
        options = _parse_parameters(parameters, MAIL_PARAMETERS)
        if options is None or not _valid_mail_options(options):
            await self.push(replies.INVALID_ARGUMENTS)
            return
        declared_size = options.get("SIZE")
        if declared_size is not None and int(declared_size) > self.server.max_message_size:
            await self.push(replies.SIZE_EXCEEDED)
            return
        self.envelope.mail_from = address
        self.envelope.mail_options = parameters.split()
        self._mail_given = True
        await self.push(replies.SENDER_OK.format(address=address or "<>"))

    async def _rcpt(self, argument: str) -> None:
        if self._hello_missing():
            await self.push(replies.SEND_HELLO_FIRST)
            return
        if not self._mail_given:
            await self.push(replies.NEED_MAIL)
            return
        parsed = _parse_path_argument(argument, "TO:")
        if parsed is None:
            await self.push(replies.INVALID_ARGUMENTS)
            return
        address, parameters = parsed
        if not address or not _plausible_mailbox(address):
            await self.push(replies.INVALID_ADDRESS)
            return
        if _parse_parameters(parameters, RCPT_PARAMETERS) is None:
            await self.push(replies.INVALID_ARGUMENTS)
            return
        if not self.server.is_local(address) and not self.server.relay_allowed(
                self.client_ip, bool(self.session.authenticated)):
            log.info("relay to %s rejected for client %s", address, self.client_ip)
            await self.push(replies.UNABLE_TO_RELAY.format(address=address))
            return
        self.envelope.rcpt_tos.append(address)
        self.envelope.rcpt_options.extend(parameters.split())
        await self.push(replies.RECIPIENT_OK.format(address=address))

    def _transaction_rejection(self) -> str | None:
        """Return the reply that rejects DATA or BDAT in this state, or None when it may go on."""
        if self._hello_missing():
            return replies.SEND_HELLO_FIRST
        if not self._mail_given:
            return replies.NEED_MAIL
        if not self.envelope.rcpt_tos:
            return replies.NEED_RCPT
        return None

    async def _data(self, argument: str) -> None:
        rejection = self._transaction_rejection()
        if rejection is not None:
            await self.push(rejection)
            return
        await self.push(replies.START_MAIL_INPUT)
        await self._send_held_replies()
        content, received = await self._read_message_data()
        self._cs_bytes_override = received
        if content is None:
            self._reset_transaction()
            await self.push(replies.SIZE_EXCEEDED)
            return
        await self._accept(content)

    async def _read_message_data(self) -> tuple[bytes | None, int]:
        """Read DATA lines up to the lone dot; return the dot-unstuffed message and the bytes received.

        The message is None when it grew past the size limit. The rest is still read and
        dropped, because the client reads no reply until it has sent its final dot.
        """
        limit = self.server.max_message_size
        lines: list[bytes] = []
        size = 0
        received = 0
        too_large = False
        while True:
            line, length = await self._read_data_line(limit + 3)
            self._reset_timeout()
            if line == b".\r\n":
                return (None if too_large else b"".join(lines)), received
            received += length
            if too_large or line is None:
                too_large = True
                lines.clear()
                continue
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > limit:
                too_large = True
                lines.clear()
                continue
            lines.append(line)

    async def _read_data_line(self, cap: int) -> tuple[bytes | None, int]:
        """Read one DATA line ending in CRLF (a bare LF stays inside the line); return it and its length.

        A line longer than `cap` bytes comes back as None, with its length, so that a client
        cannot make the lab hold an endless line in memory.
        """
        parts: list[bytes] = []
        length = 0
        previous_end = b""
        while True:
            try:
                piece = await self._reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as overrun:
                piece = await self._reader.read(overrun.consumed)
                if not piece:
                    raise asyncio.IncompleteReadError(b"", None) from None
            length += len(piece)
            if length <= cap:
                parts.append(piece)
            # The CR and LF of one line end can arrive in two pieces after a long line.
            if piece.endswith(b"\r\n") or (piece == b"\n" and previous_end == b"\r"):
                break
            previous_end = piece[-1:]
        if length > cap:
            return None, length
        return b"".join(parts), length

    async def _bdat(self, argument: str) -> None:
        words = argument.split()
        if not 1 <= len(words) <= 2 or not words[0].isdigit() or (len(words) == 2 and words[1].upper() != "LAST"):
            await self.push(replies.INVALID_ARGUMENTS)
            return
        size = int(words[0])
        last = len(words) == 2
        chunk = await self._read_chunk(size)
        self._cs_bytes_override = size
        rejection = self._transaction_rejection()
        if rejection is not None:
            self._reset_transaction()
            await self.push(rejection)
            return
        self._chunks_size += size
        if self._chunks_size <= self.server.max_message_size:
            self._chunks.append(chunk)
        else:
            self._chunks = []
        if not last:
            await self.push(replies.CHUNK_RECEIVED.format(size=size))
            return
        if self._chunks_size > self.server.max_message_size:
            self._reset_transaction()
            await self.push(replies.SIZE_EXCEEDED)
            return
        await self._accept(b"".join(self._chunks))

    async def _read_chunk(self, size: int) -> bytes:
        """Read exactly `size` bytes of a BDAT chunk, keeping them only while within the size limit."""
        keep = self._chunks_size + size <= self.server.max_message_size
        remaining = size
        pieces: list[bytes] = []
        while remaining:
            piece = await self._reader.read(min(remaining, 65536))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(piece)
            if keep:
                pieces.append(piece)
            self._reset_timeout()
        return b"".join(pieces)

    async def _accept(self, content: bytes) -> None:
        own_id = find_message_id(content)
        message_id = own_id if own_id is not None else self.server.next_message_id()
        try:
            self.server.store(sender=self.envelope.mail_from or "", recipients=list(self.envelope.rcpt_tos),
                              content=content, helo=self.session.host_name, client_ip=self.client_ip,
                              message_id=message_id)
        except OSError:
            log.exception("failed to store the message from %s", self.client_ip)
            self._reset_transaction()
            await self.push(replies.LOCAL_ERROR)
            return
        self._reset_transaction()
        self._query_override = message_id
        await self.push(replies.QUEUED.format(message_id=message_id))

    async def _rset(self, argument: str) -> None:
        self._reset_transaction()
        await self.push(replies.RESETTING)

    async def _noop(self, argument: str) -> None:
        await self.push(replies.OK)

    async def _quit(self, argument: str) -> None:
        await self.push(replies.CLOSING.format(host=self.server.hostname))
        self._write_quit_line(self._reply_bytes, self._command_length, time_taken=0)

    async def _help(self, argument: str) -> None:
        for line in replies.HELP:
            await self.push(line)

    async def _vrfy(self, argument: str) -> None:
        address = argument.strip().strip("<>")
        if not address:
            await self.push(replies.INVALID_ARGUMENTS)
            return
        if "@" not in address:
            address = f"{address}@{self.server.default_domain}"
        if self.server.vrfy_reveals_users:
            local, _, domain = address.rpartition("@")
            if self.server.is_local(address) and self.server.has_account(local):
                await self.push(replies.VRFY_USER_FOUND.format(address=address))
            else:
                await self.push(replies.VRFY_USER_UNKNOWN.format(address=address))
            return
        await self.push(replies.CANNOT_VRFY.format(address=address))

    async def _etrn(self, argument: str) -> None:
        if not argument:
            await self.push(replies.INVALID_ARGUMENTS)
            return
        await self.push(replies.ETRN_STARTED.format(domain=argument))

    async def _turn(self, argument: str) -> None:
        await self.push(replies.TURN_DENIED)

    async def _auth(self, argument: str) -> None:
        mechanism, _, initial = argument.partition(" ")
        # Only the mechanism reaches the log: an initial response would carry the user name.
        self._query_override = f" {mechanism}" if mechanism else ""
        # Until a prompt is sent, the next two unknown lines may be credentials (_run_command).
        self._auth_lines_to_hide = 2

        if not self.server.basic_auth:
            await self.push(replies.AUTH_UNAVAILABLE)
            return
        if self._hello_missing():
            await self.push(replies.SEND_HELLO_FIRST)
            return
        if self.session.authenticated:
            await self.push(replies.AUTH_ALREADY_DONE)
            return
        if mechanism.upper() != "LOGIN":
            await self.push(replies.AUTH_UNAVAILABLE)
            return
        if self.server.auth_requires_tls and not self.under_tls:
            await self.push(replies.AUTH_NEEDS_TLS)
            return

        self._auth_lines_to_hide = 0
        received = self._command_length
        user = _decode_base64(initial.strip()) if initial.strip() else None
        if user is None and initial.strip():
            await self.push(replies.INVALID_BASE64)
            return
        if user is None:
            user, length = await self._read_auth_line(replies.AUTH_USERNAME_PROMPT)
            received += length
            if user is None:
                self._cs_bytes_override = received
                return
        password, length = await self._read_auth_line(replies.AUTH_PASSWORD_PROMPT)
        received += length
        self._cs_bytes_override = received
        if password is None:
            return

        account = self.server.check_password(user, password)
        if account is None:
            log.info("authentication failed for account %r from %s", user, self.client_ip)
            await self.push(replies.AUTH_FAILED)
            return
        self.session.authenticated = True
        self.session.auth_data = account
        log.info("account %s authenticated from %s", account, self.client_ip)
        await self.push(replies.AUTH_SUCCESSFUL)

    async def _read_auth_line(self, prompt: str) -> tuple[str | None, int]:
        """Send an AUTH LOGIN prompt and return the client's decoded response and its length on the wire.

        The response is None when this method already pushed the reply that ends the exchange:
        `*` cancels it (RFC 4954 section 4), and text that is not base64 is rejected.
        """
        await self.push(prompt)
        await self._send_held_replies()
        line, length, too_long = await self._read_command_line()
        if line is None:
            raise ConnectionError("the client closed the connection during AUTH")
        self._reset_timeout()
        text = line.decode("ascii", errors="replace").strip()
        if text == "*":
            await self.push(replies.AUTH_CANCELLED)
            return None, length
        decoded = None if too_long else _decode_base64(text)
        if decoded is None:
            await self.push(replies.INVALID_BASE64)
            return None, length
        return decoded, length

    async def _starttls(self, argument: str) -> None:
        context = self.server.tls_context
        if context is None:
            await self.push(replies.TLS_UNAVAILABLE)
            return
        if argument:
            await self.push(replies.INVALID_ARGUMENTS)
            return
        if self.under_tls:
            await self.push(replies.UNRECOGNIZED)
            return
        await self.push(replies.READY_TO_START_TLS)
        await self._send_held_replies()

        # The same switch aiosmtpd's own STARTTLS makes: the TLS protocol sits between the
        # socket and this session, and connection_made() receives the TLS transport.
        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(self.loop, self, context, waiter, server_side=True)
        self._original_transport = self.transport
        assert self._original_transport is not None
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.info("TLS handshake with %s failed: %s", self.client_ip, error)
            raise ConnectionError(f"TLS handshake failed: {error}") from error

        ssl_object = self.transport.get_extra_info("ssl_object")
        log.info("TLS started with %s: %s, %s", self.client_ip, ssl_object.version() if ssl_object else "-",
                 ssl_object.cipher()[0] if ssl_object and ssl_object.cipher() else "-")


def _decode_base64(text: str) -> str | None:
    """Return base64 `text` decoded as UTF-8 (undecodable bytes kept as escapes), or None when invalid."""
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", errors="surrogateescape")
    except (binascii.Error, ValueError):
        return None


def _plain_ip(address: str) -> str:
    """Return an IPv4-mapped IPv6 address (::ffff:192.0.2.1) as plain IPv4, others unchanged."""
    if address.lower().startswith("::ffff:") and "." in address:
        return address[7:]
    return address


def _status_of(line: bytes) -> int:
    code = line[:3]
    return int(code) if code.isdigit() else 0


def _parse_path_argument(argument: str, keyword: str) -> tuple[str | None, str] | None:
    """Split `FROM:<a@example.com> SIZE=10` into the address and the parameter text.

    Returns None when the keyword is missing, and (None, ...) when the address is malformed.
    The brackets are optional, as the service accepts `MAIL FROM: a@example.com` from telnet.
    """
    if argument[:len(keyword)].upper() != keyword:
        return None
    rest = argument[len(keyword):].lstrip()
    if rest.startswith("<"):
        end = rest.find(">")
        if end == -1:
            return None, ""
        return rest[1:end].strip(), rest[end + 1:].strip()
    address, _, parameters = rest.partition(" ")
    if not address:
        return None, ""
    return address, parameters.strip()


def _plausible_mailbox(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and _NOT_IN_MAILBOX.search(address) is None


def _parse_parameters(text: str, allowed: set[str]) -> dict[str, str] | None:
    """Parse `KEY=value` words; return None for an unknown keyword or a malformed word."""
    options: dict[str, str] = {}
    for word in text.split():
        key, _, value = word.partition("=")
        key = key.upper()
        if key not in allowed or not key.isalnum():
            return None
        options[key] = value
    return options


def _valid_mail_options(options: dict[str, str]) -> bool:
    if "SIZE" in options and not options["SIZE"].isdigit():
        return False
    if "BODY" in options and options["BODY"].upper() not in BODY_TYPES:
        return False
    return True
