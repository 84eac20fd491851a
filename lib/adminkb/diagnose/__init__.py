"""Guided diagnosis of "why isn't my mail going out?": every check in dependency order, one table.

    result = diagnose(DiagnoseRequest(host="192.0.2.25", port=25, mail_from="app@example.com",
                                      rcpt_to="user@example.net", mailroot=Path("mailroot")))
    result.most_likely      # the check that most likely explains the others
    result.exit_status      # 0, 1 (warnings only), or one status per outcome class

Everything is read-only: the session stops after RCPT TO unless `send_test` is set, the Pickup
check creates and removes an empty folder, and checks that reach beyond the server (DNS, port 25
to the recipient's MX) run only with `check_outbound`. For a recipient in a local domain, the
Drop folder is checked instead of the MX and the Smart Host.
"""

from __future__ import annotations

import logging
import os

from adminkb.diagnose.checks import (DiagnoseRequest, badmail_step, checked_folder, checked_log_path,
                                     checked_smart_host, config_step, dns_step, drop_step, local_outbound_steps,
                                     log_step, outbound_step, pickup_step, queue_step, session_steps, smart_host_step)
from adminkb.diagnose.lab import (FAULTS, PICKUP_NOT_WRITABLE, RELAY_DENIED, REMOTE_MX_UNREACHABLE, WRONG_SMART_HOST,
                                  lab_configuration, restore_fault, stage_fault)
from adminkb.diagnose.model import (CONFIGURATION, CONNECTION, DNS, EXIT_CODES, EXIT_INPUT, EXIT_OK, EXIT_WARNINGS,
                                    NOT_RUN, OK, PROBLEM, QUEUE, RELAY, SKIPPED, UNKNOWN, WARNING, Diagnosis, Step)
from adminkb.errors import InputError
from adminkb.metabase import SmtpVirtualServer, read_metabase
from adminkb.smtp import build_test_message

log = logging.getLogger("adminkb.diagnose")


def diagnose(request: DiagnoseRequest) -> Diagnosis:
    """Run every check in dependency order and return the diagnosis."""
    steps = session_steps(request)
    steps.append(config_step(request))
    steps.append(pickup_step(request))
    steps.append(queue_step(request))
    if request.facts.get("local_recipient"):
        steps.append(drop_step(request))
    steps.append(badmail_step(request))
    steps.append(log_step(request))
    if request.facts.get("local_recipient"):
        steps.extend(local_outbound_steps(request))
    else:
        dns = dns_step(request)
        steps.append(dns)
        steps.append(outbound_step(request, dns))
    steps.append(smart_host_step(request))
    result = Diagnosis(server=f"{request.host}:{request.port}", steps=steps)
    log.info("diagnosis of %s: cause %s, exit %d", result.server, result.cause, result.exit_status)
    return result


def select_virtual_server(servers: list[SmtpVirtualServer], number: int | None, port: int,
                          where: str) -> SmtpVirtualServer:
    """Return virtual server `number`, else the one bound to `port`, else the lowest-numbered one."""
    if number is not None:
        for server in servers:
            if server.number == number:
                return server
        raise InputError("diagnose.no_virtual_server", value=number, where=where,
                         numbers=", ".join(str(server.number) for server in servers),
                         next_key="diagnose.no_virtual_server_next")
    for server in servers:
        if any(binding.port == port for binding in server.bindings):
            return server
    return servers[0]


def diagnose_target(target, mail_from: str, rcpt_to: str, *, mailroot: str | os.PathLike[str] | None = None,
                    logs: str | os.PathLike[str] | None = None, metabase: str | os.PathLike[str] | None = None,
                    smart_host: str | None = None, check_outbound: bool = False, dns: str | None = None,
                    send_test: bool = False, timeout: float = 10.0) -> Diagnosis:  # noqa: ANN001 - a SmtpTarget
    """Diagnose a runbook target (`adminkb.target.SmtpTarget`).

    For the lab, the lab's mailroot, log, settings, DNS server and clock are used, and the path
    options are ignored. The outbound checks always run there, because they stay on loopback.
    A real server gets the paths, MetaBase.xml copy and outbound checks it is given.
    """
    request = DiagnoseRequest(host=target.host, port=target.port, mail_from=mail_from, rcpt_to=rcpt_to,
                              source_address=target.source_address, timeout=timeout, send_test=send_test)
    lab = target.lab
    if lab is not None:
        request.mailroot = lab.mailroot
        request.logs = lab.log_dir
        request.configuration = lab_configuration(lab)
        request.now = lab.clock.now()
        request.ages_from_file_names = True
        request.check_outbound = True
        request.dns = lab.lab_dns.nameserver
        request.port_map = lab.remote.port_for
        if send_test:
            request.test_message = build_test_message(mail_from, [rcpt_to], date=lab.clock.now(),
                                                      message_id="<runbook.diagnose@example.com>")
        return diagnose(request)
    request.mailroot = checked_folder(mailroot, "MAILROOT")
    request.logs = checked_log_path(logs, "LOG_PATH")
    if metabase is not None:
        request.configuration = select_virtual_server(read_metabase(metabase), None, target.port, str(metabase))
    request.smart_host = checked_smart_host(smart_host, "SMART_HOST")
    request.check_outbound = check_outbound
    request.dns = dns
    return diagnose(request)


def stage_target_fault(target, fault: str, *, recipient: str, queue_mail: bool = False,
                       sender: str = "app@example.com") -> str:  # noqa: ANN001 - a SmtpTarget
    """Stage `fault` in the lab and return the recipient that shows it; a real server is left alone.

    With `queue_mail`, the lab also accepts one message for that recipient and moves its clock
    31 minutes on, past the first two delivery attempts, so the Queue shows the fault.
    """
    lab = target.lab
    if lab is None:
        return recipient
    domain = stage_fault(lab, fault, client=target.source_address or "127.0.0.1")
    staged = f"{recipient.partition('@')[0]}@{domain}"
    if queue_mail:
        target.probe(sender, staged, send=True, timeout=10)
        lab.advance(minutes=31)
    return staged


def repair_target(target) -> None:  # noqa: ANN001 - a SmtpTarget
    """Undo the lab's staged faults, let the client relay, and let the lab deliver its Queue; a real server is left alone."""
    lab = target.lab
    if lab is None:
        return
    restore_fault(lab)
    lab.set_relay_grant([target.source_address or "127.0.0.1"])
    # Two hours cover the retries at 15, 30 and 60 minutes of every message still queued.
    lab.advance(minutes=120)


__all__ = [
    "CONFIGURATION", "CONNECTION", "DNS", "EXIT_CODES", "EXIT_INPUT", "EXIT_OK", "EXIT_WARNINGS", "FAULTS",
    "NOT_RUN", "OK", "PICKUP_NOT_WRITABLE", "PROBLEM", "QUEUE", "RELAY", "RELAY_DENIED", "REMOTE_MX_UNREACHABLE",
    "SKIPPED", "UNKNOWN", "WARNING", "WRONG_SMART_HOST", "DiagnoseRequest", "Diagnosis", "Step", "diagnose",
    "diagnose_target", "lab_configuration", "repair_target", "restore_fault", "select_virtual_server", "stage_fault",
    "stage_target_fault",
]
