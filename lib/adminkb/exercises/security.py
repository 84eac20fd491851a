"""Exercise of runbook 06 (security): relay only for authenticated users, and AUTH only after TLS.

The exercise starts from the misconfigured security lab of the runbook's first step (open relay,
AUTH before TLS), which runbook 06 opens again after closing its own. The target is the
security runbook's `SecurityTarget`. The check does what an auditor does from two client
addresses: an unauthenticated relay attempt from the former application server, then an EHLO
before TLS, STARTTLS, AUTH with the lab account and a relay attempt from the roaming computer.
No session sends DATA.
"""

from __future__ import annotations

import ssl

from adminkb.exercises.framework import register
from adminkb.exercises.labcheck import CHECK_TIMEOUT, relay_accepted, tls_context
from adminkb.i18n import message
from adminkb.lab import can_bind_source_address
from adminkb.securitylab import APP_ADDRESS, LAB_ACCOUNT, ROAMING_ADDRESS, SecurityTarget, lab_password
from adminkb.smtp.session import SessionError, SmtpSession

OUTSIDE_RECIPIENT = "customer@example.org"


def _check_auth_only_relay(target: SecurityTarget) -> list[str]:
    lab = target.lab
    addresses = (APP_ADDRESS, ROAMING_ADDRESS)
    if not all(can_bind_source_address(address) for address in addresses):
        return [message("exercises.no_loopback_alias", addresses=", ".join(addresses))]
    problems = []
    if lab.relay_open:
        problems.append(message("exercises.auth_only_relay.open_relay"))
    if relay_accepted(target, APP_ADDRESS, "app@example.com", OUTSIDE_RECIPIENT):
        problems.append(message("exercises.auth_only_relay.relay_by_address", address=APP_ADDRESS))
    problems.extend(_check_authenticated_session(target))
    return problems


def _check_authenticated_session(target: SecurityTarget) -> list[str]:
    """Return what is wrong with AUTH and relay for the roaming computer, which authenticates after TLS."""
    problems = []
    session = SmtpSession(target.host, target.port, timeout=CHECK_TIMEOUT, source_address=ROAMING_ADDRESS,
                          ehlo_name="roaming.example.com")
    with session:
        try:
            session.connect()
            session.read_banner()
            session.ehlo()
            if session.auth_mechanisms():
                problems.append(message("exercises.auth_only_relay.auth_before_tls"))
            if not session.supports("STARTTLS") or session.command("STARTTLS", step="tls").code != 220:
                return [*problems, message("exercises.auth_only_relay.no_starttls")]
            session.wrap_tls(tls_context(target.lab), server_hostname=target.host)
            session.ehlo()
            if not session.auth_mechanisms():
                return [*problems, message("exercises.auth_only_relay.no_auth_after_tls")]
            reply = session.authenticate(LAB_ACCOUNT, lab_password())
            if reply.code != 235:
                return [*problems, message("exercises.auth_only_relay.auth_failed", reply=reply.raw[0])]
            session.mail_from("roaming@example.com")
            if not session.rcpt_to(OUTSIDE_RECIPIENT).positive:
                problems.append(message("exercises.auth_only_relay.authenticated_denied", address=ROAMING_ADDRESS))
            session.quit()
        except SessionError as error:
            problems.append(message("exercises.auth_only_relay.session_failed",
                                    detail=error.describe().splitlines()[0]))
        except (ssl.SSLError, OSError) as error:
            problems.append(message("exercises.auth_only_relay.session_failed", detail=str(error)))
    return problems


def _solve_auth_only_relay(target: SecurityTarget) -> None:
    target.restrict_relay([])
    target.require_tls_for_auth()


register("auth_only_relay", "06", _check_auth_only_relay, _solve_auth_only_relay)
