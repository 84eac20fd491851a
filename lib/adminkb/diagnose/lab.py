"""The mail lab as a diagnosis target: its settings as a virtual server, and the faults it can stage.

`lab_configuration()` describes the running lab the way `adminkb.metabase` describes a server
from MetaBase.xml, so the diagnosis compares the same settings in both. `stage_fault()` breaks
the lab in one of the ways `FAULTS` names, and `restore_fault()` repairs it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from adminkb import mailroot
from adminkb.errors import InputError, LabError
from adminkb.lab import MailLab
from adminkb.lab.policy import parse_network
from adminkb.metabase import DENY, GRANT, Binding, IpList, SmtpVirtualServer

log = logging.getLogger("adminkb.diagnose")

RELAY_DENIED = "relay_denied"
PICKUP_NOT_WRITABLE = "pickup_not_writable"
REMOTE_MX_UNREACHABLE = "remote_mx_unreachable"
WRONG_SMART_HOST = "wrong_smart_host"
FAULTS = (RELAY_DENIED, PICKUP_NOT_WRITABLE, REMOTE_MX_UNREACHABLE, WRONG_SMART_HOST)

# The lab zone's domain whose MX address has nothing listening (mx.blocked.lab.test).
UNREACHABLE_DOMAIN = "blocked.lab.test"
# A loopback address where no lab receiver listens, used as the wrong Smart Host.
WRONG_SMART_HOST_ADDRESS = "[127.0.0.41]"
_CHATTR = shutil.which("chattr")


def lab_configuration(lab: MailLab) -> SmtpVirtualServer:
    """Return the lab's settings as the SMTP virtual server that MetaBase.xml would describe."""
    grant = lab.relay_grant
    if lab.relay_open:
        relay = IpList(mode=DENY)
    else:
        relay = IpList(mode=GRANT, grant=tuple(parse_network(entry) for entry in grant))
    control = lab.connection_control
    connection = None
    if control:
        mode = GRANT if GRANT in control else DENY
        entries = control[mode]
        networks = tuple(parse_network(entry) for entry in entries)
        connection = IpList(mode=mode, grant=networks if mode == GRANT else (), deny=networks if mode == DENY else ())
    smart_host = lab.smart_host
    root = lab.mailroot
    return SmtpVirtualServer(
        location="/LM/SmtpSvc/1", number=1, comment="adminkb mail lab",
        bindings=(Binding(address=lab.host, port=lab.port),),
        relay=relay, relay_for_auth=lab.relay_for_authenticated, connection=connection,
        smart_host=smart_host.host if smart_host else None,
        smart_host_type=smart_host.type if smart_host else 0,
        max_message_size=lab._max_message_size, log_type=1,
        log_directory=str(lab.log_dir.parent), log_module="w3c",
        pickup_directory=str(root / mailroot.PICKUP), queue_directory=str(root / mailroot.QUEUE),
        badmail_directory=str(root / mailroot.BADMAIL), drop_directory=str(root / mailroot.DROP),
        local_domains=tuple(lab.local_domains),
    )


def stage_fault(lab: MailLab, fault: str, *, client: str = "127.0.0.1") -> str:
    """Break the lab in the way `fault` names and return the recipient domain that shows it.

    RELAY_DENIED empties the relay list. PICKUP_NOT_WRITABLE makes the Pickup folder read-only
    (for root, which ignores permission bits, also immutable with chattr). REMOTE_MX_UNREACHABLE
    needs no change: mail for blocked.lab.test meets an MX where nothing listens.
    WRONG_SMART_HOST sends all mail to a Smart Host address where nothing listens. Every fault
    but the relay one keeps `client` on the relay list, so that the session check passes.
    """
    if fault not in FAULTS:
        raise InputError("diagnose.unknown_fault", value=fault, faults=", ".join(FAULTS),
                         next_key="diagnose.unknown_fault_next")
    restore_fault(lab)
    if fault == RELAY_DENIED:
        lab.set_relay_grant([])
        return "example.net"
    lab.set_relay_grant([client])
    if fault == PICKUP_NOT_WRITABLE:
        _make_read_only(lab.pickup_dir)
        # An immutable Pickup would keep the lab from removing its temporary folder when a run
        # stops before restore_fault(), so the lab lifts it on stop.
        lab.add_stop_callback(lambda folder=lab.pickup_dir: _make_writable(folder))
        return "example.net"
    if fault == REMOTE_MX_UNREACHABLE:
        return UNREACHABLE_DOMAIN
    lab.set_smart_host(WRONG_SMART_HOST_ADDRESS)
    return "example.net"


def restore_fault(lab: MailLab) -> None:
    """Undo every staged fault: Pickup writable again, no Smart Host. The relay list is left as it is."""
    _make_writable(lab.pickup_dir)
    if lab.smart_host is not None:
        lab.clear_smart_host()


def _make_read_only(folder: Path) -> None:
    folder.chmod(0o555)
    if _writable(folder) and _CHATTR:
        # Root ignores permission bits; the immutable attribute stops root too.
        subprocess.run([_CHATTR, "+i", str(folder)], check=False, capture_output=True, timeout=10)
    if _writable(folder):
        _make_writable(folder)
        raise LabError("diagnose.cannot_stage_pickup", value=str(folder), next_key="diagnose.cannot_stage_pickup_next")
    log.info("lab Pickup folder %s made read-only", folder)


def _make_writable(folder: Path) -> None:
    if _CHATTR and os.geteuid() == 0:
        subprocess.run([_CHATTR, "-i", str(folder)], check=False, capture_output=True, timeout=10)
    folder.chmod(0o755)


def _writable(folder: Path) -> bool:
    test = folder / ".adminkb-stage-test"
    try:
        test.mkdir()
    except OSError:
        return False
    test.rmdir()
    return True
