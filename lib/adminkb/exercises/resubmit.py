"""Exercise of runbook 03 (mailroot): resubmit the orders whose NDRs ended in Drop.

Runbook 03 leaves three order notifications undelivered: their recipient's MX could not be
reached, the service gave up after two days, and the NDRs went to the local sender's Drop.
The trainee takes the originals out of those NDRs and sends them again through the Smart Host
that the runbook set. The check looks at what the remote side received: each order once.
"""

from __future__ import annotations

from adminkb import mailroot_ops
from adminkb.exercises.framework import register
from adminkb.exercises.labcheck import arrivals, queued_message_ids, read_stored
from adminkb.i18n import message
from adminkb.lab.delivery import EXPIRATION_MINUTES, RETRY_INTERVALS
from adminkb.target import SmtpTarget

ORDER_NUMBERS = (1, 2, 3)
ORDER_SENDER = "app@example.com"
ORDER_RECIPIENT = "user@blocked.lab.test"
ORDER_BODY = "您的訂單已出貨。\n"
# The Smart Host runbook 03 sets in step 6.
RUNBOOK_SMART_HOST = "smarthost.lab.test"
# The lab's NDR subjects contain "(Failure)". Delay notices contain "(Delay)" instead and carry
# only the original's headers, so they cannot be resubmitted.
FAILURE_MARK = "(Failure)"


def order_subject(number: int) -> str:
    return f"訂單 {number} 出貨通知"


def order_message_id(number: int) -> str:
    """Return the Message-ID runbook 03 gives order `number` (the lab's `<runbook.TAG@example.com>`)."""
    return f"<runbook.order-{number}@example.com>"


def _check_resubmit_orders(target: SmtpTarget) -> list[str]:
    lab = target.lab
    missing = []
    duplicated = []
    for number in ORDER_NUMBERS:
        copies = arrivals(lab, order_message_id(number), ORDER_RECIPIENT)
        if not copies:
            missing.append(order_subject(number))
        elif len(copies) > 1:
            duplicated.append(message("exercises.resubmit_orders.duplicated", subject=order_subject(number),
                                      count=len(copies)))
    if not missing:
        return duplicated
    problems = [message("exercises.resubmit_orders.not_arrived", subjects="、".join(missing),
                        recipient=ORDER_RECIPIENT)]
    if lab.pickup_files():
        problems.append(message("exercises.resubmit_orders.waiting_in_pickup"))
    if queued_message_ids(lab) & {order_message_id(number) for number in ORDER_NUMBERS}:
        problems.append(message("exercises.resubmit_orders.waiting_in_queue"))
    if lab.smart_host is None:
        problems.append(message("exercises.resubmit_orders.no_smart_host", domain=ORDER_RECIPIENT.partition("@")[2]))
    return problems + duplicated


def _prepare_resubmit_orders(target: SmtpTarget) -> None:
    """Replay runbook 03's steps 2, 5 and 6: queue the orders, let them expire, set the Smart Host."""
    for number in ORDER_NUMBERS:
        order = target.compose_message(ORDER_SENDER, [ORDER_RECIPIENT], order_subject(number), ORDER_BODY,
                                       tag=f"order-{number}")
        target.write_pickup(order, name=f"order-{number}.eml")
    target.process_pickup()
    lab = target.lab
    lab.deliver_queue()
    # Past the expiry, plus one retry interval, so that every order has expired and bounced.
    lab.advance(minutes=EXPIRATION_MINUTES + RETRY_INTERVALS[-1])
    lab.set_smart_host(RUNBOOK_SMART_HOST)


def _solve_resubmit_orders(target: SmtpTarget) -> None:
    lab = target.lab
    failures = [path for path in lab.drop_files() if FAILURE_MARK in read_stored(path)[1]]
    plan = mailroot_ops.plan_resubmit(lab.mailroot, failures)
    mailroot_ops.execute(plan, lab.root / "exercise-journals")
    target.process_pickup()
    lab.deliver_queue()


register("resubmit_orders", "03", _check_resubmit_orders, _solve_resubmit_orders,
         prepare=_prepare_resubmit_orders)
