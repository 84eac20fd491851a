"""The SMTP server a runbook works on: the built-in mail lab, or a real server named in its parameters.

A runbook's parameters cell sets `SERVER = "lab"` by default; `open_target()` then starts a mail
lab on a fixed clock, so the runbook's outputs are the same on every run. With `SERVER =
"192.0.2.25:25"` the same cells run their read-only checks against that server instead, and the
steps that would change the server's settings show what to do in IIS Manager rather than doing it.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime, timezone

import pandas as pd

from adminkb import mailroot
from adminkb.i18n import message
from adminkb.lab import MailLab, can_bind_source_address
from adminkb.smtp import ProbeResult, build_test_message, parse_host_port, probe

log = logging.getLogger("adminkb.target")

LAB = "lab"
# The lab clock of every runbook: a fixed instant keeps banners, file names and logs identical
# between runs, which is what lets nbval compare the stored outputs.
LAB_START = datetime(2026, 3, 2, 1, 15, 0, tzinfo=timezone.utc)


class SmtpTarget:
    """Where a runbook sends its SMTP sessions, and what it may change there.

    `source_address` is the client address sessions use. In the lab it stands for the
    application server (127.0.0.10 by convention); where the machine has only 127.0.0.1, the
    target falls back to it and `source_note` explains why.
    """

    def __init__(self, server: str = LAB, *, source_address: str | None = None,
                 local_domains: tuple[str, ...] = ("example.com",)) -> None:
        self.server = server
        self.lab: MailLab | None = None
        self.source_note: str | None = None
        self.source_address = source_address
        if server.strip().lower() == LAB:
            self.lab = MailLab(clock=LAB_START, local_domains=local_domains).start()
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


def open_target(server: str = LAB, *, source_address: str | None = None) -> SmtpTarget:
    """Start the mail lab for `server="lab"`, or point at a real `HOST[:PORT]`, and return the target."""
    target = SmtpTarget(server, source_address=source_address)
    log.info("runbook target %s (lab: %s)", target.address, target.is_lab)
    return target
