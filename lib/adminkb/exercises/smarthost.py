"""Exercise of runbook 05 (DNS, Smart Host): get a queued message out through the gateway only.

The exercise stages what runbook 05 warns about: the company firewall blocks outbound port 25
for every host but the mail gateway, and the Smart Host is not set, so a monthly report for an
outside partner and for blocked.lab.test waits in Queue. The check looks at what the remote
side received and through which host, and at the firewall setting, which must stay closed.
"""

from __future__ import annotations

from adminkb.exercises.framework import register
from adminkb.exercises.labcheck import GATEWAY_SETTINGS, arrivals, queued_message_ids
from adminkb.i18n import message
from adminkb.lab import SMART_HOST_ADDRESS
from adminkb.target import SmtpTarget

REPORT_SENDER = "finance@example.com"
REPORT_RECIPIENTS = ("user@example.net", "user@blocked.lab.test")
REPORT_SUBJECT = "練習：月結報表"
REPORT_BODY = "本月結算報表如附件。\n"
REPORT_TAG = "exercise-monthly"
REPORT_MESSAGE_ID = f"<runbook.{REPORT_TAG}@example.com>"


def _stage_gateway_only(target: SmtpTarget) -> None:
    """Block port 25, clear the Smart Host, and queue the monthly report after one failed attempt."""
    lab = target.lab
    lab.clear_smart_host()
    lab.block_port25()
    report = target.compose_message(REPORT_SENDER, list(REPORT_RECIPIENTS), REPORT_SUBJECT, REPORT_BODY,
                                    tag=REPORT_TAG)
    target.write_pickup(report, name=f"{REPORT_TAG}.eml")
    target.process_pickup()
    lab.deliver_queue()


def _check_gateway_only(target: SmtpTarget) -> list[str]:
    lab = target.lab
    problems = []
    if not lab.port25_blocked:
        problems.append(message("exercises.gateway_only.firewall_open"))
    smart_host = lab.smart_host
    if smart_host is None:
        problems.append(message("exercises.gateway_only.no_smart_host", gateway=GATEWAY_SETTINGS[0]))
    elif smart_host.host.lower() not in GATEWAY_SETTINGS:
        problems.append(message("exercises.gateway_only.wrong_smart_host", host=smart_host.host,
                                gateway=GATEWAY_SETTINGS[0]))
    missing = False
    for recipient in REPORT_RECIPIENTS:
        copies = arrivals(lab, REPORT_MESSAGE_ID, recipient)
        if not copies:
            missing = True
            problems.append(message("exercises.gateway_only.not_arrived", recipient=recipient,
                                    subject=REPORT_SUBJECT))
        elif any(copy.address != SMART_HOST_ADDRESS for copy in copies):
            problems.append(message("exercises.gateway_only.bypassed_gateway", recipient=recipient))
    if missing and REPORT_MESSAGE_ID in queued_message_ids(lab):
        problems.append(message("exercises.gateway_only.still_queued"))
    return problems


def _solve_gateway_only(target: SmtpTarget) -> None:
    lab = target.lab
    lab.set_smart_host(GATEWAY_SETTINGS[0])
    # The first retry falls due 15 minutes after the failed attempt, and an hour covers two more.
    lab.advance(minutes=60)


register("gateway_only", "05", _check_gateway_only, _solve_gateway_only, stage=_stage_gateway_only)
