"""Exercise of runbook 07 (troubleshooting): fix two faults, one diagnosis at a time.

The exercise stages two changes "made over the weekend": the application server is off the
relay list, and the Smart Host points at an address where nothing listens, so the weekly
report that the application dropped in Pickup waits in Queue. The diagnosis names the relay
fault first, because the session fails before anything else, and the Smart Host once relay
works again. The check looks at the symptoms the application's owner would report: sessions
from the application server are refused, and the weekly report has not arrived.
"""

from __future__ import annotations

from adminkb import diagnose
from adminkb.exercises.framework import register
from adminkb.exercises.labcheck import arrivals, queued_message_ids, relay_accepted
from adminkb.i18n import message
from adminkb.lab import STRANGER_ADDRESS, TRUSTED_CLIENT_ADDRESS
from adminkb.target import SmtpTarget

APP_SENDER = "app@example.com"
OUTSIDE_RECIPIENT = "user@example.net"
REPORT_SUBJECT = "練習：每週報表"
REPORT_BODY = "本週的系統報表。\n"
REPORT_TAG = "exercise-weekly"
REPORT_MESSAGE_ID = f"<runbook.{REPORT_TAG}@example.com>"


def _stage_weekend_changes(target: SmtpTarget) -> None:
    """Set the wrong Smart Host, queue the weekly report through Pickup, then empty the relay list."""
    lab = target.lab
    diagnose.stage_fault(lab, diagnose.WRONG_SMART_HOST, client=TRUSTED_CLIENT_ADDRESS)
    report = target.compose_message(APP_SENDER, [OUTSIDE_RECIPIENT], REPORT_SUBJECT, REPORT_BODY, tag=REPORT_TAG)
    target.write_pickup(report, name=f"{REPORT_TAG}.eml")
    target.process_pickup()
    lab.deliver_queue()
    lab.set_relay_grant([])


def _check_weekend_changes(target: SmtpTarget) -> list[str]:
    lab = target.lab
    app = relay_accepted(target, TRUSTED_CLIENT_ADDRESS, APP_SENDER, OUTSIDE_RECIPIENT)
    stranger = relay_accepted(target, STRANGER_ADDRESS, APP_SENDER, OUTSIDE_RECIPIENT)
    if app is None or stranger is None:
        return [message("exercises.no_loopback_alias", addresses=f"{TRUSTED_CLIENT_ADDRESS}, {STRANGER_ADDRESS}")]
    problems = []
    if not app:
        problems.append(message("exercises.weekend_changes.app_refused", address=TRUSTED_CLIENT_ADDRESS,
                                recipient=OUTSIDE_RECIPIENT))
    if stranger:
        problems.append(message("exercises.weekend_changes.stranger_relays", address=STRANGER_ADDRESS))
    if not arrivals(lab, REPORT_MESSAGE_ID, OUTSIDE_RECIPIENT):
        key = "still_queued" if REPORT_MESSAGE_ID in queued_message_ids(lab) else "not_arrived"
        problems.append(message(f"exercises.weekend_changes.report_{key}", recipient=OUTSIDE_RECIPIENT,
                                subject=REPORT_SUBJECT))
    return problems


def _solve_weekend_changes(target: SmtpTarget) -> None:
    lab = target.lab
    lab.allow_relay(TRUSTED_CLIENT_ADDRESS)
    lab.clear_smart_host()
    # The report's first retry falls due 15 minutes after the failed attempt.
    lab.advance(minutes=60)


register("weekend_changes", "07", _check_weekend_changes, _solve_weekend_changes, stage=_stage_weekend_changes)
