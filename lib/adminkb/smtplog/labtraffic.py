"""A morning of mail in the lab, so that the log runbook has real W3C lines to analyse.

`send_sample_traffic` drives the running lab over real SMTP sessions from loopback client
addresses, and lets the lab deliver to its remote receivers, moving the fixed lab clock:
- the application server (127.0.0.10, allowed to relay) sends reports through the morning.
  They go to a partner (delivered at once), to a greylisting receiver (451 4.7.1 first, then
  the retry 15 minutes later goes through) and to a receiver that checks forward-confirmed
  reverse DNS;
- a stranger (127.0.0.66) tries to relay to outside addresses (550 5.7.1) and sends an HTTP
  request to port 25.

`switch_log_fields` changes the logged fields as an admin does in IIS Manager, which starts a
new block in the same file. Both return a notice and change nothing on a real server.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Sequence

import pandas as pd

from adminkb.i18n import message
from adminkb.lab.server import can_bind_source_address
from adminkb.smtplog.labels import log_table

APP_SERVER = "127.0.0.10"
STRANGER = "127.0.0.66"
APP_HELO = "app01.example.com"
STRANGER_HELO = "pc-7.example.org"

# (minutes after the previous step, client, HELO name, sender, recipients, purpose key).
_MORNING = (
    (0, APP_SERVER, APP_HELO, "web@example.com", ("user@example.net",), "partner"),
    (5, APP_SERVER, APP_HELO, "report@example.com", ("ops@grey.lab.test",), "greylist"),
    (10, STRANGER, STRANGER_HELO, "offers@example.org", ("a@example.org", "b@example.org"), "relay_attempt"),
    (20, APP_SERVER, APP_HELO, "alerts@example.com", ("noc@strict.lab.test",), "strict"),
    (40, STRANGER, STRANGER_HELO, "offers@example.org", ("c@example.org",), "relay_attempt"),
    (30, APP_SERVER, APP_HELO, "web@example.com", ("sales@example.net", "help@example.com"), "partner"),
    (60, APP_SERVER, APP_HELO, "report@example.com", ("user@example.net",), "partner"),
)


class Notice(str):
    """A sentence shown as it is, for a step that does nothing on a real server."""

    def __repr__(self) -> str:
        return str(self)


def _source(address: str) -> str:
    # Where only 127.0.0.1 exists (macOS without aliases), every client uses it.
    return address if can_bind_source_address(address) else "127.0.0.1"


def _send(host: str, port: int, source: str, helo: str, sender: str, recipients: Sequence[str],
          timeout: float, date: str) -> list[int]:
    """Send one message (or try to) and return the reply code of each RCPT TO."""
    codes = []
    with smtplib.SMTP(host, port, local_hostname=helo, source_address=(source, 0), timeout=timeout) as client:
        client.ehlo(helo)
        client.mail(sender)
        for recipient in recipients:
            codes.append(client.rcpt(recipient)[0])
        if any(200 <= code < 300 for code in codes):
            client.data(f"From: {sender}\r\nTo: {', '.join(recipients)}\r\nDate: {date}\r\n"
                        f"Subject: morning report\r\n\r\nSee the attached figures.\r\n".encode("ascii"))
    return codes


def _http_request(host: str, port: int, source: str, timeout: float) -> None:
    """Send the first line of an HTTP request to the SMTP port, as a scanner or a browser does."""
    with socket.create_connection((host, port), timeout=timeout, source_address=(source, 0)) as connection:
        connection.recv(1024)
        connection.sendall(b"GET / HTTP/1.0\r\n")
        connection.recv(1024)
        connection.sendall(b"QUIT\r\n")
        connection.recv(1024)


def send_sample_traffic(target, *, timeout: float = 10.0):  # noqa: ANN001, ANN201 - SmtpTarget; DataFrame or Notice
    """Send the lab's sample morning and deliver it; return one row per session sent.

    Each row shows the lab time the session started (in the lab's zone), the client, the sender,
    the recipients, what the session stands for, and the RCPT TO reply codes. On a real
    server nothing is sent, and the function returns a Notice instead.
    """
    lab = target.lab
    if lab is None:
        return Notice(message("smtplog.lab.real_server"))
    if APP_SERVER not in lab.relay_grant:
        lab.allow_relay(APP_SERVER)
    rows = []
    for minutes, client, helo, sender, recipients, purpose in _MORNING:
        if minutes:
            lab.advance(minutes=minutes)
        now = lab.clock.now()
        codes = _send(lab.host, lab.port, _source(client), helo, sender, recipients, timeout,
                      now.strftime("%a, %d %b %Y %H:%M:%S +0000"))
        lab.deliver_queue()
        rows.append({"time": now, "client": client, "sender": sender, "recipients": ", ".join(recipients),
                     "purpose": message(f"smtplog.lab.purpose.{purpose}"),
                     "replies": ", ".join(str(code) for code in codes)})
        if purpose == "relay_attempt" and len(recipients) == 1:
            _http_request(lab.host, lab.port, _source(client), timeout)
            rows.append({"time": now, "client": client, "sender": None, "recipients": None,
                         "purpose": message("smtplog.lab.purpose.http_request"), "replies": "500"})
    # Let the greylisted message's retry fall due.
    lab.advance(minutes=30)
    table = pd.DataFrame(rows)
    table["time"] = table["time"].dt.tz_convert("Asia/Taipei")
    names = {"time": "smtplog.lab.column.time", "client": "smtplog.column.peer", "sender": "smtplog.column.sender",
             "recipients": "smtplog.lab.column.recipients", "purpose": "smtplog.lab.column.purpose",
             "replies": "smtplog.lab.column.replies"}
    return log_table(table.rename(columns={name: message(key) for name, key in names.items()}))


def switch_log_fields(target, fields: Sequence[str] | str):  # noqa: ANN001, ANN201 - SmtpTarget
    """Change the lab's logged W3C fields; the log continues in a new block of the same file."""
    lab = target.lab
    if lab is None:
        return Notice(message("smtplog.lab.fields_by_hand"))
    lab.set_log_fields(fields)
    return Notice(message("smtplog.lab.fields_changed", fields=" ".join(lab.log_fields)))


def send_one_message(target, sender: str, recipient: str, *, timeout: float = 10.0):  # noqa: ANN001, ANN201
    """Send one message from the application server and deliver it; return the RCPT TO reply code."""
    lab = target.lab
    if lab is None:
        return Notice(message("smtplog.lab.real_server"))
    now = lab.clock.now()
    codes = _send(lab.host, lab.port, _source(APP_SERVER), APP_HELO, sender, [recipient], timeout,
                  now.strftime("%a, %d %b %Y %H:%M:%S +0000"))
    lab.deliver_queue()
    return Notice(message("smtplog.lab.sent_one", sender=sender, recipient=recipient, code=codes[0]))


def log_source(target, log_path):  # noqa: ANN001, ANN201 - SmtpTarget, a path or None
    """Return what to read: `log_path` when given, else the lab's log files.

    Raises InputError on a real server without `log_path`, because the logs are on that server.
    """
    from adminkb.errors import InputError

    if log_path is not None:
        return log_path
    if target.lab is None:
        raise InputError("smtplog.lab.log_path_needed", next_key="smtplog.lab.log_path_needed_next")
    return target.lab.log_files()
