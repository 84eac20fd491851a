"""The SMTP server a runbook works on: the built-in mail lab, or a real server named in its parameters.

A runbook's parameters cell sets `SERVER = "lab"` by default. `open_target()` then starts a mail
lab on a fixed clock, so the runbook's outputs are the same on every run. With `SERVER =
"192.0.2.25:25"` the same cells run their read-only checks against that server instead, and the
steps that would change the server's settings show what to do in IIS Manager rather than doing it.
"""

from __future__ import annotations

import email.policy
import html
import logging
import os
from datetime import datetime, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pandas as pd

from adminkb import findings, mailroot, pickup
from adminkb.dnscheck.resolver import format_nameserver, parse_nameserver
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.lab import MailLab, can_bind_source_address
from adminkb.lab.delivery import SMART_HOST_ALWAYS, DeliveryRecord
from adminkb.smtp import ProbeResult, build_test_message, parse_host_port, probe

log = logging.getLogger("adminkb.target")

LAB = "lab"
# The lab clock of every runbook: a fixed instant keeps banners, file names and logs identical
# between runs, which is what lets nbval compare the stored outputs.
LAB_START = datetime(2026, 3, 2, 1, 15, 0, tzinfo=timezone.utc)
# Delivery tables show lab times in the lab's time zone, to the minute.
TIME_FORMAT = "%Y-%m-%d %H:%M"


class SmtpTarget:
    """Where a runbook sends its SMTP sessions, and what it may change there.

    `source_address` is the client address sessions use. In the lab it stands for the
    application server (127.0.0.10 by convention). Where the machine has only 127.0.0.1, the
    target falls back to it and `source_note` explains why.
    """

    def __init__(self, server: str = LAB, *, source_address: str | None = None,
                 local_domains: tuple[str, ...] = ("example.com",)) -> None:
        self.server = server
        self.lab: MailLab | None = None
        self.source_note: str | None = None
        self.source_address = source_address
        # The files the last process_pickup() stored in Drop, Queue or Badmail.
        self.last_stored: list[Path] = []
        if server.strip().lower() == LAB:
            # No Pickup watcher: runbooks call process_pickup() so that no thread takes a file first.
            self.lab = MailLab(clock=LAB_START, local_domains=local_domains, pickup_interval=None).start()
            self.host, self.port = self.lab.host, self.lab.port
            if source_address and not can_bind_source_address(source_address):
                self.source_note = message("target.source_fallback", address=source_address)
                self.source_address = None
        else:
            self.host, self.port = parse_host_port(server)

    @property
    def is_lab(self) -> bool:
        return self.lab is not None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def probe(self, mail_from: str, rcpt_to: str | list[str], *, send: bool = False, timeout: float = 10.0,
              **options: object) -> ProbeResult:
        """Run `adminkb.smtp.probe` against the target from its source address.

        Nothing is delivered unless `send=True`. In the lab the test message carries the lab's
        clock as its date and a fixed Message-ID, so a runbook's transcript is the same every run.
        """
        recipients = [rcpt_to] if isinstance(rcpt_to, str) else list(rcpt_to)
        if send and self.lab is not None and "message" not in options:
            options["message"] = build_test_message(mail_from, recipients, date=self.lab.clock.now(),
                                                    message_id=f"<runbook.{len(recipients)}@example.com>")
        return probe(self.host, self.port, mail_from=mail_from, rcpt_to=recipients, send=send,
                     source_address=self.source_address, timeout=timeout, **options)

    def allow_relay(self, address: str | None) -> object:
        """Add `address` to the lab's relay list and return the list; on a real server, say how to do it."""
        if self.lab is None:
            return _Notice(message("target.relay_by_hand", address=address or message("target.app_server_ip")))
        effective = address if address and self.source_address else "127.0.0.1"
        self.lab.allow_relay(effective)
        return self.relay_table()

    def relay_table(self) -> pd.DataFrame:
        """Return the lab's relay restrictions as IIS Manager's dialog shows them."""
        lab = self._require_lab()
        mode = message("target.relay_mode_deny" if lab.relay_open else "target.relay_mode_grant")
        entries = lab.relay_grant or [message("target.relay_list_empty")]
        return pd.DataFrame({message("target.column_relay_mode"): [mode] * len(entries),
                             message("target.column_relay_entry"): entries})

    def queue_table(self) -> pd.DataFrame | _Notice:
        """Return the messages in the lab's Queue folder; on a real server, where to look instead."""
        if self.lab is None:
            return _Notice(message("target.queue_by_hand"))
        return mailroot.message_table(self.lab.queue_files())

    def drop_table(self) -> pd.DataFrame | _Notice:
        """Return the messages in the lab's Drop folder; on a real server, where to look instead."""
        if self.lab is None:
            return _Notice(message("target.queue_by_hand"))
        return mailroot.message_table(self.lab.drop_files())

    def compose_message(self, sender: pickup.AddressSpec, to: list[pickup.AddressSpec], subject: str, body: str, *,
                        cc: list[pickup.AddressSpec] = (), tag: str = "pickup") -> EmailMessage:
        """Build a message with `adminkb.pickup.compose_message`, dated and numbered by the lab when there is one.

        The lab's clock gives the Date and `tag` the Message-ID (`<runbook.TAG@example.com>`),
        so the files a runbook writes are the same on every run. A real server gets the current
        time and a new Message-ID.
        """
        if self.lab is None:
            return pickup.compose_message(sender, to, subject, body, cc=cc)
        return pickup.compose_message(sender, to, subject, body, cc=cc, date=self.lab.clock.now(),
                                      message_id=f"<runbook.{tag}@example.com>")

    def pickup_folder(self, folder: str | os.PathLike[str] | None = None) -> Path | None:
        """Return the Pickup folder to work on: the lab's, else `folder` (None when not given)."""
        if self.lab is not None:
            return self.lab.pickup_dir
        return Path(folder) if folder else None

    def write_pickup(self, msg: EmailMessage, *, name: str, double_dots: bool = True,
                     folder: str | os.PathLike[str] | None = None, confirm: bool = False) -> pd.DataFrame | _Notice:
        """Write `msg` into Pickup as `name` and return the file's row, or a notice when the write is not allowed.

        On a real server the file goes to `folder` only when `confirm` is true, because a file in
        Pickup is sent.

        The envelope comes from the message's From, To and Cc headers. `double_dots=False`
        writes the message the way a careless program does, without doubling leading dots; the
        lab is the only place this runs.
        """
        target_folder = self.pickup_folder(folder)
        if self.lab is None:
            if not double_dots:
                return _Notice(message("target.pickup_trap_lab_only"))
            if target_folder is None or not confirm:
                return _Notice(message("target.pickup_write_needs_confirm"))
        sender, recipients = pickup.envelope_from_headers(msg)
        if double_dots:
            path = pickup.write_pickup_file(target_folder, msg, name=name)
        else:
            raw = pickup.crlf_lines(msg.as_bytes(policy=pickup.MESSAGE_POLICY))
            path = pickup.write_pickup_bytes(target_folder, name, mailroot.envelope_lines(sender, recipients) + raw)
        log.info("runbook wrote %s to Pickup (dots doubled: %s)", path.name, double_dots)
        return mailroot.message_table([path])

    def process_pickup(self) -> pd.DataFrame | _Notice:
        """Let the lab take the files out of Pickup now and show where each one went."""
        if self.lab is None:
            return _Notice(message("target.pickup_by_service"))
        rows = []
        self.last_stored = []
        for result in self.lab.process_pickup():
            self.last_stored.extend(result.files)
            places = "\n".join(f"{path.parent.name}\\{path.name}" for path in result.files)
            rows.append([result.source, result.sender or "<>", "\n".join(result.recipients) or "-", places])
        columns = [message(f"target.column_pickup_{name}") for name in ("source", "sender", "recipients", "stored")]
        return pd.DataFrame(rows, columns=columns)

    def pickup_table(self, folder: str | os.PathLike[str] | None = None) -> pd.DataFrame | _Notice:
        """List the message files waiting in Pickup (read-only): the lab's, or `folder` on a real server."""
        target_folder = self.pickup_folder(folder)
        if target_folder is None:
            return _Notice(message("target.pickup_folder_needed"))
        if not target_folder.is_dir():
            raise InputError("target.pickup_folder_missing", value=str(target_folder),
                             next_key="target.pickup_folder_missing_next")
        # The service takes every file in Pickup whatever its name, so every file is listed.
        files = sorted(path for path in target_folder.iterdir() if path.is_file())
        return mailroot.message_table(files)

    def pickup_file_text(self, name: str) -> _Text | _Notice:
        """Return a file waiting in the lab's Pickup exactly as written, line by line."""
        if self.lab is None:
            return _Notice(message("target.pickup_lab_only"))
        return _Text(_crlf_to_lines((self.lab.pickup_dir / name).read_bytes()))

    def file_head(self, stored: int | str = 0) -> _Text | _Notice:
        """Return a stored message file's envelope and header lines, up to the blank line.

        `stored` is the position of a file that the last `process_pickup()` stored, or its folder
        ("Drop", "Queue" or "Badmail").
        """
        path = self._stored_path(stored)
        if path is None:
            return _Notice(message("target.pickup_by_service"))
        data = path.read_bytes()
        end = data.find(b"\r\n\r\n")
        return _Text(_crlf_to_lines(data if end < 0 else data[:end]))

    def header_table(self, stored: int | str = 0,
                     names: tuple[str, ...] = ("From", "To", "Subject")) -> pd.DataFrame | _Notice:
        """Return headers of a stored message file as written (RFC 2047 encoded words) and decoded."""
        path = self._stored_path(stored)
        if path is None:
            return _Notice(message("target.pickup_by_service"))
        raw_headers = _raw_headers(path)
        _sender, _recipients, parsed = mailroot.read_envelope(path)
        rows = [[name, raw_headers.get(name.lower(), "-"), str(parsed.get(name, "-"))] for name in names]
        columns = [message(f"target.column_header_{name}") for name in ("name", "stored", "decoded")]
        return pd.DataFrame(rows, columns=columns)

    def body_text(self, stored: int | str = 0) -> _Text | _Notice:
        """Return the decoded text body of a stored message file, as a mail program shows it."""
        path = self._stored_path(stored)
        if path is None:
            return _Notice(message("target.pickup_by_service"))
        data = path.read_bytes()
        offset = 0
        # Skip the X-Sender and X-Receiver envelope lines in front of the message.
        while data[offset:offset + 12].lower().startswith((b"x-sender:", b"x-receiver:")):
            line_end = data.find(b"\n", offset)
            if line_end < 0:
                break
            offset = line_end + 1
        parsed = BytesParser(policy=email.policy.default).parsebytes(data[offset:])
        part = parsed.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else ""
        return _Text(text.replace("\r\n", "\n"))

    def _stored_path(self, stored: int | str) -> Path | None:
        """Return the file that the last process_pickup() stored at position `stored` or in folder `stored`."""
        if isinstance(stored, int):
            if -len(self.last_stored) <= stored < len(self.last_stored):
                return self.last_stored[stored]
            return None
        # folder_role raises InputError for a name that is not a mailroot folder.
        mailroot.folder_role(stored)
        return next((path for path in self.last_stored if path.parent.name.lower() == stored.lower()), None)

    # Outbound delivery (the lab's remote receivers, retries, Smart Host)

    def deliver_queue(self) -> pd.DataFrame | _Notice:
        """Run one delivery pass in the lab and show what happened to each recipient."""
        if self.lab is None:
            return _Notice(message("target.delivery_by_service"))
        return self._records_table(self.lab.deliver_queue())

    def advance(self, minutes: float) -> pd.DataFrame | _Notice:
        """Move the lab clock forward by `minutes`, run the retries that fall due, and show them."""
        if self.lab is None:
            return _Notice(message("target.delivery_by_service"))
        return self._records_table(self.lab.advance(minutes=minutes))

    def delivery_table(self) -> pd.DataFrame | _Notice:
        """Show every delivery event of the lab so far, oldest first."""
        if self.lab is None:
            return _Notice(message("target.delivery_by_service"))
        return self._records_table(self.lab.delivery_records)

    def _records_table(self, records: list[DeliveryRecord]) -> pd.DataFrame:
        assert self.lab is not None
        zone = self.lab.timezone
        rows = []
        for record in records:
            next_attempt = record.next_attempt.astimezone(zone).strftime(TIME_FORMAT) if record.next_attempt else "-"
            rows.append([record.time.astimezone(zone).strftime(TIME_FORMAT), record.message_id,
                         record.recipient or "-", message(f"target.outcome_{record.outcome}"),
                         record.host or "-", record.reply_text() or "-", "\n".join(record.files) or "-", next_attempt])
        names = ("time", "message_id", "recipient", "outcome", "host", "reply", "files", "next_attempt")
        return pd.DataFrame(rows, columns=[message(f"target.column_delivery_{name}") for name in names])

    def retry_table(self) -> pd.DataFrame | _Notice:
        """Show each message waiting in the lab's Queue with its attempts, next retry, expiry and last reply."""
        if self.lab is None:
            return _Notice(message("target.delivery_by_service"))
        zone = self.lab.timezone
        rows = [[status.queue_file, status.message_id, "\n".join(status.recipients), status.attempts,
                 status.next_attempt.astimezone(zone).strftime(TIME_FORMAT),
                 status.expires.astimezone(zone).strftime(TIME_FORMAT), status.last_reply_text() or "-"]
                for status in self.lab.queue_status()]
        names = ("file", "message_id", "recipients", "attempts", "next_attempt", "expires", "last_reply")
        return pd.DataFrame(rows, columns=[message(f"target.column_retry_{name}") for name in names])

    def arrived_table(self, receiver: str | None = None) -> pd.DataFrame | _Notice:
        """Show the messages that the lab's remote receivers accepted (host name or address filters)."""
        if self.lab is None:
            return _Notice(message("target.arrived_lab_only"))
        rows = []
        for item in self.lab.remote.received(receiver):
            parsed = BytesParser(policy=email.policy.default).parsebytes(item.content, headersonly=True)
            rows.append([item.receiver, item.client_ip, item.sender or "<>", "\n".join(item.recipients),
                         str(parsed.get("Subject", "-")), item.message_id or "-"])
        names = ("receiver", "client", "sender", "recipients", "subject", "message_id")
        return pd.DataFrame(rows, columns=[message(f"target.column_arrived_{name}") for name in names])

    def set_smart_host(self, host: str, *, type: int = SMART_HOST_ALWAYS, user: str | None = None,
                       password: str | None = None, tls: bool = False) -> pd.DataFrame | _Notice:
        """Set the lab's Smart Host (a name, or `[IP]` for no DNS lookup); on a real server, say where."""
        if self.lab is None:
            return _Notice(message("target.smart_host_by_hand", host=host))
        self.lab.set_smart_host(host, type=type, user=user, password=password, tls=tls)
        return self.outbound_table()

    def clear_smart_host(self) -> pd.DataFrame | _Notice:
        """Deliver by MX again (no Smart Host)."""
        if self.lab is None:
            return _Notice(message("target.smart_host_by_hand", host="-"))
        self.lab.clear_smart_host()
        return self.outbound_table()

    def block_port25(self) -> pd.DataFrame | _Notice:
        """Block the lab's outbound port 25 (except to the smart host), as a company firewall does."""
        if self.lab is None:
            return _Notice(message("target.port25_by_hand"))
        self.lab.block_port25()
        return self.outbound_table()

    def unblock_port25(self) -> pd.DataFrame | _Notice:
        if self.lab is None:
            return _Notice(message("target.port25_by_hand"))
        self.lab.unblock_port25()
        return self.outbound_table()

    def set_outbound_address(self, address: str) -> pd.DataFrame | _Notice:
        """Send the lab's outbound mail from `address` (127.0.0.25 has reverse DNS, 127.0.0.26 has none)."""
        if self.lab is None:
            return _Notice(message("target.outbound_address_by_hand", address=address))
        self.lab.set_outbound_address(address)
        return self.outbound_table()

    def outbound_table(self) -> pd.DataFrame | _Notice:
        """Show the lab's outbound settings as the virtual server's Delivery tab would; on a real server, where to look."""
        if self.lab is None:
            return _Notice(message("target.outbound_by_hand"))
        lab = self.lab
        smart_host = lab.smart_host
        rows = [
            (message("target.row_smart_host"), smart_host.host if smart_host else message("target.smart_host_none")),
            (message("target.row_smart_host_type"),
             message(f"target.smart_host_type_{smart_host.type if smart_host else 0}")),
            (message("target.row_outbound_security"), message(
                "target.outbound_security_basic" if smart_host and smart_host.user else "target.outbound_security_anonymous")
             + (message("target.outbound_security_tls") if smart_host and smart_host.tls else "")),
            (message("target.row_outbound_address"), lab.outbound_address),
            (message("target.row_port25"), message("target.port25_blocked" if lab.port25_blocked else "target.port25_open")),
        ]
        if lab.outbound_note:
            rows.append((message("target.row_note"), message("target.outbound_fallback", address=lab.outbound_note)))
        return pd.DataFrame(rows, columns=[message("target.column_setting"), message("target.column_value")])

    def dns_server(self, nameserver: object = None) -> str:
        """Return the DNS server a runbook's checks query, as `ADDRESS:PORT`, from its NAMESERVER parameter.

        None means the lab's own DNS server. A real server has no default, because the DNS
        servers the mail server uses may differ from this computer's. Raises InputError for a
        missing or invalid value.
        """
        if nameserver is None or (isinstance(nameserver, str) and not nameserver.strip()):
            if self.lab is not None:
                return self.lab.lab_dns.nameserver
            raise InputError("target.nameserver_missing", value=self.address,
                             next_key="target.nameserver_missing_next")
        if not isinstance(nameserver, str):
            raise InputError("target.nameserver_invalid", value=repr(nameserver),
                             next_key="target.nameserver_invalid_next")
        try:
            address, port = parse_nameserver(nameserver)
        except InputError as error:
            raise InputError("target.nameserver_invalid", value=nameserver,
                             next_key="target.nameserver_invalid_next") from error
        return format_nameserver(address, port)

    def badmail_table(self) -> pd.DataFrame | _Notice:
        """List the lab's Badmail files with the first line of each `.BDR` reason."""
        if self.lab is None:
            return _Notice(message("target.queue_by_hand"))
        rows = []
        for path in self.lab.badmail_files():
            reason = "-"
            if path.suffix.upper() == ".BDR":
                reason = path.read_bytes().decode("ascii", "replace").split("\r\n")[0]
            rows.append([path.name, path.stat().st_size, reason])
        names = ("file", "size", "reason")
        return pd.DataFrame(rows, columns=[message(f"target.column_badmail_{name}") for name in names])

    def close(self) -> _Notice:
        """Stop the lab (its temporary folder goes with it); a real server is left alone."""
        if self.lab is not None:
            self.lab.stop()
            return _Notice(message("target.lab_stopped"))
        return _Notice(message("target.nothing_to_stop", address=self.address))

    def _require_lab(self) -> MailLab:
        if self.lab is None:
            raise RuntimeError("this step needs the mail lab")
        return self.lab

    def summary(self) -> list[tuple[str, str]]:
        rows = [(message("target.row_target"), message("target.is_lab" if self.is_lab else "target.is_real")),
                (message("target.row_address"), self.address),
                (message("target.row_source"), self.source_address or message("target.source_default"))]
        if self.lab is not None:
            rows.append((message("target.row_local_domains"), ", ".join(self.lab.local_domains)))
            rows.append((message("target.row_relay"), ", ".join(self.lab.relay_grant)
                         or message("target.relay_list_empty")))
        if self.source_note:
            rows.append((message("target.row_note"), self.source_note))
        return rows

    def __repr__(self) -> str:
        return "\n".join(message("target.row_format", name=name, value=value) for name, value in self.summary())

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><th style='text-align:left'>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
                        for name, value in self.summary())
        return f"<table class='adminkb-target'>{cells}</table>"


class _Notice(str):
    """A message shown instead of a change, for steps an admin makes by hand on a real server."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<div style='border-left:4px solid #9a6700;padding:0.3em 0.8em'>{html.escape(self)}</div>"


class _Text(str):
    """Text shown as it is, line by line, such as the first lines of a message file."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<pre style='white-space:pre-wrap'>{html.escape(self)}</pre>"


def _crlf_to_lines(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n")


def _raw_headers(path: Path) -> dict[str, str]:
    """Return the header fields of a message file as stored, lowercase names, folded lines joined."""
    data = path.read_bytes()
    end = data.find(b"\r\n\r\n")
    head = (data if end < 0 else data[:end]).decode("ascii", errors="replace")
    fields: dict[str, str] = {}
    last = None
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and last is not None:
            fields[last] += "\n" + line
            continue
        name, _, value = line.partition(":")
        last = name.strip().lower()
        fields.setdefault(last, value.strip())
    return fields


def open_target(server: str = LAB, *, source_address: str | None = None) -> SmtpTarget:
    """Start the mail lab for `server="lab"`, or point at a real `HOST[:PORT]`, and return the target.

    For a real server, the check results the runbook displays from now on list their problems
    for the record of `adminkb run` (see `adminkb.findings`). The lab's staged faults do not count.
    """
    target = SmtpTarget(server, source_address=source_address)
    findings.report_findings(not target.is_lab)
    log.info("runbook target %s (lab: %s)", target.address, target.is_lab)
    return target
