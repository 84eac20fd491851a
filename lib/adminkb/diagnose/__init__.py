"""Guided diagnosis of "why isn't my mail going out?": every check in dependency order, one table.

    result = diagnose(DiagnoseRequest(host="192.0.2.25", port=25, mail_from="app@example.com",
                                      rcpt_to="user@example.net", mailroot=Path("mailroot")))
    result.most_likely      # the check that most likely explains the others
    result.exit_status      # 0, 1 (warnings only), or one status per outcome class

Everything is read-only: the session stops after RCPT TO unless `send_test` is set, the Pickup
check creates and removes an empty folder, and checks that reach beyond the server (DNS, port 25
to the recipient's MX) run only with `check_outbound`.
"""

from __future__ import annotations

import logging

from adminkb.diagnose.checks import (DiagnoseRequest, badmail_step, config_step, dns_step, log_step, outbound_step,
                                     pickup_step, queue_step, session_steps, smart_host_step)
from adminkb.diagnose.lab import (FAULTS, PICKUP_NOT_WRITABLE, RELAY_DENIED, REMOTE_MX_UNREACHABLE, WRONG_SMART_HOST,
                                  lab_configuration, restore_fault, stage_fault)
from adminkb.diagnose.model import (CONFIGURATION, CONNECTION, DNS, EXIT_CODES, EXIT_INPUT, EXIT_OK, EXIT_WARNINGS,
                                    NOT_RUN, OK, PROBLEM, QUEUE, RELAY, SKIPPED, WARNING, Diagnosis, Step)

log = logging.getLogger("adminkb.diagnose")


def diagnose(request: DiagnoseRequest) -> Diagnosis:
    """Run every check in dependency order and return the diagnosis."""
    steps = session_steps(request)
    steps.append(config_step(request))
    steps.append(pickup_step(request))
    steps.append(queue_step(request))
    steps.append(badmail_step(request))
    steps.append(log_step(request))
    dns = dns_step(request)
    steps.append(dns)
    steps.append(outbound_step(request, dns))
    steps.append(smart_host_step(request))
    result = Diagnosis(server=f"{request.host}:{request.port}", steps=steps)
    log.info("diagnosis of %s: cause %s, exit %d", result.server, result.cause, result.exit_status)
    return result


def diagnose_target(target, mail_from: str, rcpt_to: str, *, check_outbound: bool = True, send_test: bool = False,
                    timeout: float = 10.0) -> Diagnosis:  # noqa: ANN001 - an adminkb.target.SmtpTarget
    """Diagnose a runbook target: for the lab, with its mailroot, log, settings, DNS and clock filled in.

    A real server gets only the session checks and the outbound checks it was asked for,
    because its mailroot and log are not reachable from here.
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
        request.check_outbound = check_outbound
        request.dns = lab.lab_dns.nameserver
        request.port_map = lab.remote.port_for
    return diagnose(request)


__all__ = [
    "CONFIGURATION", "CONNECTION", "DNS", "EXIT_CODES", "EXIT_INPUT", "EXIT_OK", "EXIT_WARNINGS", "FAULTS",
    "NOT_RUN", "OK", "PICKUP_NOT_WRITABLE", "PROBLEM", "QUEUE", "RELAY", "RELAY_DENIED", "REMOTE_MX_UNREACHABLE",
    "SKIPPED", "WARNING", "WRONG_SMART_HOST", "DiagnoseRequest", "Diagnosis", "Step", "diagnose", "diagnose_target",
    "lab_configuration", "restore_fault", "stage_fault",
]
