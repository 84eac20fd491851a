"""The mail lab: a stand-in for the IIS 6.0 SMTP Service that runs on loopback.

`MailLab` speaks SMTP with the service's banner, EHLO list and reply texts. It applies relay
restrictions and connection control by client address and writes accepted mail to the
mailroot (Drop for local domains, Queue for the rest). It takes message files out of Pickup
the same way, without relay checks. Every SMTP command becomes a line in the service's W3C
Extended log layout. Queued mail for remote domains is delivered to remote lab receivers
through the lab DNS, with the service's retry schedule, delay notices, NDRs, Badmail and Smart
Host (`adminkb.lab.delivery`). Runbooks and tests use it in place of a real server.
"""

from adminkb.lab.clock import TAIWAN_TIME, FixedClock, SystemClock
from adminkb.lab.delivery import (OUTBOUND_ADDRESS, OUTBOUND_ADDRESS_WITHOUT_PTR, SMART_HOST_ALWAYS, SMART_HOST_NONE,
                                  SMART_HOST_TRY_DIRECT_FIRST, DeliveryRecord, QueueStatus, SmartHost)
from adminkb.lab.pickup import PickupResult
from adminkb.lab.remote import SMART_HOST_ADDRESS, SMART_HOST_NAME, ReceivedMessage
from adminkb.lab.policy import AccessList
from adminkb.lab.server import (
    DEFAULT_VERSION,
    LAB_ADDRESS,
    STRANGER_ADDRESS,
    TRUSTED_CLIENT_ADDRESS,
    MailLab,
    can_bind_source_address,
)
from adminkb.lab.w3clog import FULL_FIELDS, SERVICE_DEFAULT_FIELDS

__all__ = [
    "AccessList",
    "DEFAULT_VERSION",
    "DeliveryRecord",
    "FULL_FIELDS",
    "FixedClock",
    "LAB_ADDRESS",
    "MailLab",
    "OUTBOUND_ADDRESS",
    "OUTBOUND_ADDRESS_WITHOUT_PTR",
    "PickupResult",
    "QueueStatus",
    "ReceivedMessage",
    "SERVICE_DEFAULT_FIELDS",
    "SMART_HOST_ADDRESS",
    "SMART_HOST_ALWAYS",
    "SMART_HOST_NAME",
    "SMART_HOST_NONE",
    "SMART_HOST_TRY_DIRECT_FIRST",
    "STRANGER_ADDRESS",
    "SmartHost",
    "SystemClock",
    "TAIWAN_TIME",
    "TRUSTED_CLIENT_ADDRESS",
    "can_bind_source_address",
]
