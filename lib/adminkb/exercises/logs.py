"""Exercise of runbook 04 (SMTP logs): keep out the client that the log shows probing for relay.

The trainee reads the relay-denial table of the runbook, finds the stranger, and denies it in
connection control without locking out anyone else. The check takes the offenders from the
lab's own W3C log, so it never names the address in its messages.
"""

from __future__ import annotations

from adminkb.exercises.framework import register
from adminkb.exercises.labcheck import CHECK_TIMEOUT, banner_code
from adminkb.i18n import message
from adminkb.lab import can_bind_source_address
from adminkb.smtplog.labtraffic import send_sample_traffic
from adminkb.target import SmtpTarget
from adminkb.w3c import read_w3c

# Computers that must still connect: the application server and another company computer.
KEPT_CLIENTS = ("127.0.0.10", "127.0.0.20")
# The lines the service writes for its own outbound sessions carry these `cs-username` values.
OUTBOUND_MARKS = ("OutboundConnectionCommand", "OutboundConnectionResponse")


def relay_denied_clients(lab) -> list[str]:  # noqa: ANN001 - a MailLab
    """Return the client addresses that the lab's log shows refused at RCPT TO with 550, sorted."""
    files = lab.log_files()
    if not files:
        return []
    frame = read_w3c(files)
    if frame.empty or not {"c-ip", "cs-method", "sc-status"} <= set(frame.columns):
        return []
    rcpt = frame["cs-method"].astype("string").str.upper() == "RCPT"
    rejected = frame["sc-status"] == 550
    inbound = True
    if "cs-username" in frame.columns:
        inbound = ~frame["cs-username"].astype("string").isin(OUTBOUND_MARKS).fillna(False)
    clients = frame.loc[(rcpt & rejected & inbound).fillna(False), "c-ip"].astype("string").dropna()
    return sorted(set(clients))


def _check_block_relay_prober(target: SmtpTarget) -> list[str]:
    lab = target.lab
    offenders = relay_denied_clients(lab)
    if not offenders:
        return [message("exercises.block_relay_prober.no_denials")]
    addresses = [*offenders, *KEPT_CLIENTS]
    if not all(can_bind_source_address(address) for address in addresses):
        return [message("exercises.no_loopback_alias", addresses=", ".join(addresses))]
    problems = []
    still_connecting = [address for address in offenders if banner_code(target, address) == 220]
    if still_connecting:
        problems.append(message("exercises.block_relay_prober.still_connects", count=len(still_connecting)))
    for address in KEPT_CLIENTS:
        if banner_code(target, address) != 220:
            problems.append(message("exercises.block_relay_prober.kept_out", address=address))
    return problems


def _prepare_block_relay_prober(target: SmtpTarget) -> None:
    """Replay runbook 04's step 3: the morning of traffic, with the stranger's relay attempts."""
    send_sample_traffic(target, timeout=CHECK_TIMEOUT)


def _solve_block_relay_prober(target: SmtpTarget) -> None:
    for address in relay_denied_clients(target.lab):
        target.lab.deny_connection(address)


register("block_relay_prober", "04", _check_block_relay_prober, _solve_block_relay_prober,
         prepare=_prepare_block_relay_prober)
