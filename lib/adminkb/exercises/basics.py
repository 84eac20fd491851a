"""Exercises of runbooks 01 (relay restrictions) and 02 (the Pickup folder)."""

from __future__ import annotations

from adminkb.exercises.framework import register
from adminkb.exercises.labcheck import read_stored, relay_accepted
from adminkb.i18n import message
from adminkb.target import SmtpTarget


# --- runbook 01: relay restrictions -----------------------------------------------------------

SECOND_APP = "127.0.0.20"
STRANGER = "127.0.0.66"
RELAY_SENDER = "app@example.com"
RELAY_RECIPIENT = "user@example.net"


def _check_second_app_relay(target: SmtpTarget) -> list[str]:
    lab = target.lab
    problems = []
    if lab.relay_open:
        problems.append(message("exercises.second_app_relay.open_relay"))
    second = relay_accepted(target, SECOND_APP, RELAY_SENDER, RELAY_RECIPIENT)
    stranger = relay_accepted(target, STRANGER, RELAY_SENDER, RELAY_RECIPIENT)
    if second is None or stranger is None:
        return [*problems, message("exercises.no_loopback_alias", addresses=f"{SECOND_APP}, {STRANGER}")]
    if not second:
        problems.append(message("exercises.second_app_relay.still_denied", address=SECOND_APP,
                                recipient=RELAY_RECIPIENT))
    if stranger:
        problems.append(message("exercises.second_app_relay.stranger_relays", address=STRANGER))
    return problems


def _solve_second_app_relay(target: SmtpTarget) -> None:
    target.lab.allow_relay(SECOND_APP)


register("second_app_relay", "01", _check_second_app_relay, _solve_second_app_relay)


# --- runbook 02: the Pickup directory ---------------------------------------------------------

DOT_SUBJECT = "練習：句點測試"
DOT_RECIPIENT = "helpdesk@example.com"
DOT_SENDER = "app@example.com"
DOT_LAST_LINE = "END OF EXERCISE"
DOT_BODY = f"Backup report\n.\n{DOT_LAST_LINE}\n"


def _check_dot_line(target: SmtpTarget) -> list[str]:
    lab = target.lab
    waiting = lab.pickup_files()
    delivered = []
    for path in lab.drop_files():
        recipients, subject, body = read_stored(path)
        if DOT_RECIPIENT in recipients and subject == DOT_SUBJECT:
            delivered.append(body)
    if not delivered:
        key = "exercises.dot_line.still_in_pickup" if waiting else "exercises.dot_line.not_in_drop"
        return [message(key, recipient=DOT_RECIPIENT, subject=DOT_SUBJECT)]
    # A trainee may try several times, so one intact delivery is enough.
    if any(_dot_line_intact(body) for body in delivered):
        return []
    return [message("exercises.dot_line.truncated", last_line=DOT_LAST_LINE)]


def _dot_line_intact(body: str) -> bool:
    lines = body.splitlines()
    return "." in lines and DOT_LAST_LINE in lines and lines.index(".") < lines.index(DOT_LAST_LINE)


def _solve_dot_line(target: SmtpTarget) -> None:
    letter = target.compose_message(DOT_SENDER, [DOT_RECIPIENT], DOT_SUBJECT, DOT_BODY, tag="exercise-dots")
    target.write_pickup(letter, name="exercise-dots.eml")
    target.process_pickup()


register("dot_line", "02", _check_dot_line, _solve_dot_line)
