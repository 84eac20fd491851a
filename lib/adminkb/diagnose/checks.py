"""The checks of a delivery diagnosis, in dependency order, each returning one `Step`.

Every check reuses the project's own readers: the SMTP probe for the session, the mailroot
inventory for Queue and Badmail, the W3C reader for the log, the metabase reader for the
configuration and the DNS checks for the recipient domain. A check whose prerequisite failed
returns SKIPPED with the reason instead of a second error.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from adminkb import mailroot
from adminkb.diagnose.model import NOT_RUN, OK, PROBLEM, SKIPPED, UNKNOWN, WARNING, Step
from adminkb.dnscheck.mx import check_mx, lookup_addresses
from adminkb.dnscheck.resolver import (TIMEOUT, UNREACHABLE, DnsClient, format_nameserver,
                                       system_configuration_source, system_nameservers)
from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.mailroot_scan import badmail_reasons, folder_summary, scan_mailroot, stuck_domains
from adminkb.metabase import GRANT, SMART_HOST_TYPES, SmtpVirtualServer
from adminkb.smtp import ProbeResult, parse_host_port, probe
from adminkb.smtp.addresses import is_ip, validate_port
from adminkb.w3c import read_w3c
from adminkb.w3c.sources import FOLDER_SUFFIXES

log = logging.getLogger("adminkb.diagnose")

# A message still in Queue after the service's first retry interval (15 minutes by default)
# has failed at least one delivery attempt.
QUEUE_STUCK_AGE = timedelta(minutes=15)
# At most this many MX addresses are tried by --check-outbound, each bounded by the timeout.
MAX_OUTBOUND_ADDRESSES = 3
# The EHLO reply of the IIS SMTP Service names the client address: "250-host Hello [192.0.2.10]".
_HELLO_ADDRESS = re.compile(r"Hello \[([0-9A-Fa-f:.]+)\]")

# Sources of the finding that the recipient domain is local, so that mail for it goes to Drop
# and not to an MX. The configuration may list the domain. The server may have accepted RCPT from a
# client that its configured relay list does not allow. Without a configuration, the server may
# accept the recipient but refuse to relay to RELAY_CHECK_RECIPIENT.
LOCAL_CONFIGURED = "configured"
LOCAL_INFERRED = "inferred"
LOCAL_PROBED = "probed"
# A recipient in a reserved top-level domain (RFC 2606), which no server hosts, so accepting it
# means the client may relay. The probe quits after RCPT TO, so nothing is ever sent to it.
RELAY_CHECK_RECIPIENT = "adminkb-relay-check@relay-check.invalid"

PortMap = Callable[[str, int], int]
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)


@dataclass
class DiagnoseRequest:
    """The admin's facts about the failing delivery, and how far the diagnosis may reach.

    `configuration` is a virtual server's settings (from MetaBase.xml, or from the lab).
    `port_map` maps (address, port) to the port to connect to; the lab uses it for the
    remote hosts that stand for port 25. `mx_port` is the port tried on the MX hosts: 25 on
    the Internet, or the local port that a standalone lab prints for its remote receivers.
    `now` is the instant Queue ages are measured from.
    """

    host: str
    port: int
    mail_from: str
    rcpt_to: str
    mailroot: Path | None = None
    logs: Path | None = None
    configuration: SmtpVirtualServer | None = None
    smart_host: str | None = None
    check_outbound: bool = False
    send_test: bool = False
    dns: str | None = None
    timeout: float = 10.0
    source_address: str | None = None
    now: datetime | None = None
    port_map: PortMap | None = None
    mx_port: int = 25
    test_message: object = None
    # The lab names queue files after its own clock (NTFS_<FILETIME><counter>.EML) while their
    # modification times are real, so for the lab the ages come from the names.
    ages_from_file_names: bool = False
    facts: dict[str, object] = field(default_factory=dict)

    def connect_port(self, address: str, port: int) -> int:
        return self.port_map(address, port) if self.port_map else port


def _skip(name: str, reason_key: str, **values: object) -> Step:
    return Step(name, SKIPPED, message(reason_key, **values))


def _input_error_step(name: str, verdict: str, error: InputError, cause: str, values: dict[str, object]) -> Step:
    """Return a step for a reader's InputError: what failed as evidence, its next step in the next-step column."""
    evidence = message(error.key, **error.values)
    if error.where:
        evidence = message("errors.where", text=evidence, where=error.where)
    next_step = message(error.next_key, **error.values) if error.next_key else None
    return Step(name, verdict, evidence, next_step, cause=cause, values=values)


def _recipient_domain(request: DiagnoseRequest) -> str:
    return request.rcpt_to.rpartition("@")[2].lower()


# The SMTP session: connect, banner, EHLO, relay, and the optional test message.

def session_steps(request: DiagnoseRequest) -> list[Step]:
    """Run one probe (stopping after RCPT TO unless --send-test) and judge its first four or five steps."""
    options = {}
    if request.send_test and request.test_message is not None:
        options["message"] = request.test_message
    result = probe(request.host, request.port, mail_from=request.mail_from, rcpt_to=[request.rcpt_to],
                   send=request.send_test, source_address=request.source_address, timeout=request.timeout,
                   total_timeout=4 * request.timeout, **options)
    request.facts["probe"] = result
    request.facts["client_ip"] = _client_address(result, request.source_address)
    failed = result.verdict.step
    steps: list[Step] = []
    previous_failed: str | None = None
    for name, probe_steps in (("connect", ("connect",)), ("banner", ("banner",)), ("ehlo", ("ehlo", "tls", "auth")),
                              ("relay", ("mail", "rcpt"))):
        if previous_failed:
            steps.append(_skip(name, "diagnose.skipped_after", step=message(f"diagnose.step.{previous_failed}")))
            continue
        if failed in probe_steps:
            steps.append(_session_failure(name, result, request))
            if steps[-1].verdict == PROBLEM:
                previous_failed = name
            continue
        if name == "relay":
            request.facts["local_recipient"] = _local_recipient(request)
        steps.append(_session_success(name, result, request))
    steps.append(_send_test_step(result, request, previous_failed))
    return steps


def _local_recipient(request: DiagnoseRequest) -> str | None:
    """Return LOCAL_CONFIGURED, LOCAL_INFERRED or LOCAL_PROBED when the accepted recipient is local, else None.

    Called once RCPT TO was accepted. Without a configuration, a second read-only session offers
    RELAY_CHECK_RECIPIENT to the server. A relay denial there shows that this client may not
    relay, so the recipient that the server accepted must be in a domain it handles itself.
    """
    configuration = request.configuration
    if configuration is None:
        check = probe(request.host, request.port, mail_from=request.mail_from, rcpt_to=[RELAY_CHECK_RECIPIENT],
                      source_address=request.source_address, timeout=request.timeout,
                      total_timeout=4 * request.timeout)
        request.facts["relay_check"] = check
        return LOCAL_PROBED if check.verdict.category == "relay_denied" else None
    if configuration.local_domains is not None:
        local = {domain.lower().rstrip(".") for domain in configuration.local_domains}
        return LOCAL_CONFIGURED if _recipient_domain(request) in local else None
    client = request.facts.get("client_ip")
    if client and configuration.relay_allows(client) is False:
        return LOCAL_INFERRED
    return None


def _local_values(request: DiagnoseRequest) -> dict[str, object]:
    return {"recipient": request.rcpt_to, "domain": _recipient_domain(request),
            "client": request.facts.get("client_ip") or "-", "check": RELAY_CHECK_RECIPIENT}


def _client_address(result: ProbeResult, source_address: str | None) -> str | None:
    for recorded in result.replies:
        if recorded.step == "ehlo":
            found = _HELLO_ADDRESS.search(" ".join(recorded.reply.raw))
            if found:
                return found.group(1)
    return source_address


def _reply_text(result: ProbeResult, steps: tuple[str, ...]) -> str:
    lines = [line for recorded in result.replies if recorded.step in steps for line in recorded.reply.raw]
    return "\n".join(lines[-3:])


def _session_success(name: str, result: ProbeResult, request: DiagnoseRequest) -> Step:
    if name == "connect":
        return Step(name, OK, message("diagnose.evidence.connected", server=f"{request.host}:{request.port}"))
    if name == "banner":
        return Step(name, OK, _reply_text(result, ("banner",)))
    if name == "ehlo":
        return Step(name, OK, message("diagnose.evidence.ehlo_ok", client=request.facts.get("client_ip") or "-"))
    evidence = _reply_text(result, ("rcpt",)) or message("diagnose.evidence.relay_ok")
    local = request.facts.get("local_recipient")
    if local:
        evidence += "\n" + message(f"diagnose.evidence.relay_local_{local}", **_local_values(request))
    return Step(name, OK, evidence)


def _session_failure(name: str, result: ProbeResult, request: DiagnoseRequest) -> Step:
    verdict = result.verdict
    level = WARNING if verdict.level.value == "warning" else PROBLEM
    evidence = "\n".join(part for part in (_reply_text(result, ("mail", "rcpt", name)), verdict.summary) if part)
    values = {"server": f"{request.host}:{request.port}", "client": request.facts.get("client_ip") or "-",
              "recipient": request.rcpt_to, "sender": request.mail_from}
    if name == "relay" and verdict.category == "relay_denied":
        return _relay_denied_step(level, evidence, values, request)
    next_step = verdict.next_step or None
    if name == "banner" and request.configuration is not None:
        evidence, next_step = _connection_control_hint(request.configuration, evidence, next_step, request)
    cause = {"connect": "connect_failed", "banner": "banner_failed", "ehlo": "ehlo_failed"}.get(name, "recipient_rejected")
    if verdict.category == "source_unusable":
        # The connection never left this computer, so the server is not to blame.
        cause = "source_unusable"
    return Step(name, level, evidence, next_step, cause=cause, values=values)


def _connection_control_hint(configuration: SmtpVirtualServer, evidence: str, next_step: str | None,
                             request: DiagnoseRequest) -> tuple[str, str | None]:
    """Add what connection control shows about a client that got no banner to the evidence and next step.

    A server turns away a computer that connection control denies before the banner, so a
    missing banner points at that list when it denies the client or cannot be decoded.
    """
    client = request.facts.get("client_ip") or request.source_address
    shown = client or message("diagnose.this_computer")
    allowed = configuration.connection_allows(client) if client else None
    if allowed is False:
        hint_key, next_key = "diagnose.evidence.connection_denied", "diagnose.next.config_connection"
    elif configuration.connection_undecoded:
        hint_key, next_key = "diagnose.evidence.connection_undecoded", "diagnose.next.connection_undecoded"
    else:
        return evidence, next_step
    evidence = "\n".join([evidence, message(hint_key, client=shown)])
    return evidence, message(next_key, client=shown)


def _relay_denied_step(level: str, evidence: str, values: dict[str, object], request: DiagnoseRequest) -> Step:
    configuration = request.configuration
    client = request.facts.get("client_ip")
    extra = []
    if configuration is not None and client:
        allowed = configuration.relay_allows(client)
        if allowed is False:
            entries = configuration.relay.entries() if configuration.relay else []
            listed = ", ".join(entries) if entries else message("metabase.value.empty_list")
            extra.append(message("diagnose.evidence.relay_list_missing", client=client, entries=listed))
    probe_result: ProbeResult = request.facts["probe"]
    offers_auth = bool(probe_result.ehlo and probe_result.ehlo.auth_mechanisms)
    next_key = _relay_denied_next_key(configuration, offers_auth)
    if configuration is not None:
        extra.append(message("diagnose.evidence.relay_for_auth_on" if configuration.relay_for_auth
                             else "diagnose.evidence.relay_for_auth_off"))
    return Step("relay", level, "\n".join([evidence, *extra]), message(next_key, **values), cause="relay_denied",
                values=values)


def _relay_denied_next_key(configuration: SmtpVirtualServer | None, offers_auth: bool) -> str:
    """Choose the next step for a relay denial from RelayForAuth and the AUTH line of EHLO.

    With RelayForAuth on, a client that authenticates may relay whatever the list contains, so
    authenticating is the first advice. When EHLO lists no AUTH, the server must offer an
    authentication method first. With RelayForAuth off, authenticating would not help.
    Without the configuration only the EHLO reply can tell.
    """
    if configuration is None:
        return "diagnose.next.relay_denied_auth" if offers_auth else "diagnose.next.relay_denied"
    if not configuration.relay_for_auth:
        return "diagnose.next.relay_denied_no_auth"
    return "diagnose.next.relay_denied_authenticate" if offers_auth else "diagnose.next.relay_denied_enable_auth"


def _send_test_step(result: ProbeResult, request: DiagnoseRequest, previous_failed: str | None) -> Step:
    if not request.send_test:
        return Step("send_test", NOT_RUN, message("diagnose.evidence.send_test_not_run"))
    if previous_failed:
        return _skip("send_test", "diagnose.skipped_after", step=message(f"diagnose.step.{previous_failed}"))
    if result.sent:
        return Step("send_test", OK, _reply_text(result, ("message",)) or message("diagnose.evidence.sent"))
    return Step("send_test", PROBLEM, result.verdict.summary, result.verdict.next_step or None,
                cause="message_rejected", values={"recipient": request.rcpt_to})


# The server's configuration (MetaBase.xml copy or the lab's settings).

def config_step(request: DiagnoseRequest) -> Step:
    """Compare the configuration with what the session showed: relay list, connection control, logging, Smart Host."""
    configuration = request.configuration
    if configuration is None:
        return _skip("config", "diagnose.skipped_no_metabase")
    findings: list[str] = []
    client = request.facts.get("client_ip")
    relay_problem = _config_relay(request, configuration, client, findings) if client else None
    connection_problem = None
    if client and configuration.connection_allows(client) is False:
        connection_problem = message("diagnose.evidence.config_connection_denied", client=client)
    if not configuration.logging_enabled:
        findings.append(message("diagnose.evidence.config_logging_off"))

    smart_type = SMART_HOST_TYPES.get(configuration.smart_host_type, "none")
    if configuration.smart_host and smart_type != "none":
        findings.append(message("diagnose.evidence.config_smart_host", host=configuration.smart_host,
                                type=message(f"metabase.value.smart_host_{smart_type}")))
    else:
        findings.append(message("diagnose.evidence.config_direct"))
    findings.append(message("diagnose.evidence.config_size", size=configuration.max_message_size))
    findings.extend(configuration.notes)

    problems = [text for text in (connection_problem, relay_problem) if text]
    if connection_problem:
        return Step("config", PROBLEM, "\n".join(problems + findings),
                    message("diagnose.next.config_connection", client=client), cause="config_connection_denied",
                    values={"client": client})
    if relay_problem:
        return Step("config", PROBLEM, "\n".join(problems + findings),
                    message("diagnose.next.config_relay", client=client), cause="config_relay_missing",
                    values={"client": client})
    verdict = WARNING if not configuration.logging_enabled else OK
    next_step = message("diagnose.next.config_logging") if verdict == WARNING else None
    return Step("config", verdict, "\n".join(findings), next_step,
                cause="logging_off" if verdict == WARNING else None)


def _config_relay(request: DiagnoseRequest, configuration: SmtpVirtualServer, client: str,
                  findings: list[str]) -> str | None:
    """Return the relay list's problem for `client`, or None after adding what it shows to `findings`."""
    allowed = configuration.relay_allows(client)
    if allowed is True:
        findings.append(message("diagnose.evidence.config_relay_contains", client=client))
        return None
    if allowed is None:
        findings.append(message("diagnose.evidence.config_relay_unknown"))
        return None
    entries = configuration.relay.entries() if configuration.relay else []
    listed = ", ".join(entries) if entries else message("metabase.value.empty_list")
    mode = message(f"metabase.value.mode_{configuration.relay_mode or GRANT}", entries=listed)
    if request.facts.get("local_recipient"):
        # Mail for a local domain needs no relay, so the list explains no failure here.
        findings.append(message("diagnose.evidence.config_relay_local", mode=mode, **_local_values(request)))
        return None
    return message("diagnose.evidence.config_relay_missing", client=client, mode=mode)


# Pickup, Queue, Badmail: the mailroot.

def pickup_step(request: DiagnoseRequest) -> Step:
    """Check that Pickup accepts new entries without sending anything.

    The check creates an empty sub-folder and removes it at once. The service picks up only
    files, so nothing is sent. NTFS grants "create folders" and "create files" separately, so
    on Windows this shows the folder right only, and the evidence states that.
    """
    if request.mailroot is None:
        return _skip("pickup", "diagnose.skipped_no_mailroot")
    folder = _mailroot_folder(request.mailroot, mailroot.PICKUP)
    if folder is None:
        return Step("pickup", PROBLEM, message("diagnose.evidence.pickup_missing", path=request.mailroot),
                    message("diagnose.next.pickup_missing"), cause="pickup_missing",
                    values={"path": str(request.mailroot)})
    probe_folder = folder / f"adminkb-write-test-{uuid.uuid4().hex[:12]}"
    try:
        probe_folder.mkdir()
    except OSError as error:
        log.info("Pickup folder %s is not writable: %s", folder, error)
        return Step("pickup", PROBLEM, message("diagnose.evidence.pickup_not_writable", path=folder,
                                               error=os_error_text(error)),
                    message("diagnose.next.pickup_not_writable", path=folder), cause="pickup_not_writable",
                    values={"path": str(folder)})
    try:
        probe_folder.rmdir()
    except OSError as error:
        log.warning("could not remove the test folder %s: %s", probe_folder, error)
    waiting = [entry for entry in folder.iterdir() if entry.is_file()]
    return Step("pickup", OK, message("diagnose.evidence.pickup_writable", path=folder, count=len(waiting)))


def _mailroot_folder(root: Path, name: str) -> Path | None:
    if not root.is_dir():
        return None
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.lower() == name.lower():
            return entry
    return None


def _inventory(request: DiagnoseRequest) -> pd.DataFrame | Step:
    if "inventory" in request.facts:
        return request.facts["inventory"]
    try:
        inventory = scan_mailroot(request.mailroot, now=request.now, progress=False)
    except InputError as error:
        return _input_error_step("queue", PROBLEM, error, "mailroot_unusable", {"path": str(request.mailroot)})
    if request.ages_from_file_names and request.now is not None:
        inventory = _ages_from_names(inventory, request.now)
    request.facts["inventory"] = inventory
    return inventory


def _ages_from_names(inventory: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Return the inventory with ages measured from the FILETIME in NTFS_ file names."""
    inventory = inventory.copy()
    for index, name in inventory["name"].items():
        if mailroot.is_ntfs_file_name(name):
            low, high = int(name[5:13], 16), int(name[13:21], 16)
            arrival = _FILETIME_EPOCH + timedelta(microseconds=((high << 32) | low) // 10)
            inventory.at[index, "age"] = pd.Timedelta(now - arrival)
    return inventory


def queue_step(request: DiagnoseRequest) -> Step:
    """Count the messages in Queue and judge the oldest one's age."""
    if request.mailroot is None:
        return _skip("queue", "diagnose.skipped_no_mailroot")
    inventory = _inventory(request)
    if isinstance(inventory, Step):
        return inventory
    folders = folder_summary(inventory).set_index("role")
    count = int(folders.loc[mailroot.QUEUE, "messages"])
    if count == 0:
        return Step("queue", OK, message("diagnose.evidence.queue_empty"))
    oldest = folders.loc[mailroot.QUEUE, "oldest_age"]
    domains = stuck_domains(inventory)
    domain_text = ", ".join(f"{row.domain} ({row.messages})" for row in domains.head(5).itertuples())
    values = {"count": count, "oldest": _age_text(oldest), "domains": domain_text}
    evidence = message("diagnose.evidence.queue", **values)
    if pd.isna(oldest) or oldest < QUEUE_STUCK_AGE:
        return Step("queue", OK, evidence + "\n" + message("diagnose.evidence.queue_young"))
    return Step("queue", PROBLEM, evidence, message("diagnose.next.queue_stuck", **values), cause="queue_stuck",
                values=values)


def drop_step(request: DiagnoseRequest) -> Step:
    """Report what Drop holds for a recipient in a local domain, where the service leaves such mail."""
    if request.mailroot is None:
        return _skip("drop", "diagnose.skipped_no_mailroot")
    if _mailroot_folder(request.mailroot, mailroot.DROP) is None:
        values = {"path": str(request.mailroot)}
        return Step("drop", PROBLEM, message("diagnose.evidence.drop_missing", **values),
                    message("diagnose.next.pickup_missing"), cause="drop_missing", values=values)
    inventory = _inventory(request)
    if isinstance(inventory, Step):
        return _skip("drop", "diagnose.skipped_after", step=message("diagnose.step.queue"))
    count = int(folder_summary(inventory).set_index("role").loc[mailroot.DROP, "messages"])
    wanted = request.rcpt_to.lower()
    dropped = inventory[inventory["role"] == mailroot.DROP]
    matching = dropped[dropped["recipients"].map(lambda addresses: any(str(address).lower() == wanted
                                                                       for address in addresses))]
    values = {"count": count, "recipient": request.rcpt_to, "matching": len(matching)}
    if matching.empty:
        return Step("drop", OK, message("diagnose.evidence.drop_none", **values))
    return Step("drop", OK, message("diagnose.evidence.drop_found", age=_age_text(matching["age"].min()), **values))


def _age_text(age: object) -> str:
    if age is None or pd.isna(age):
        return "-"
    minutes = max(0, int(pd.Timedelta(age).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    return message("mailroot.cli.age", days=days, hours=rest // 60, minutes=rest % 60)


def badmail_step(request: DiagnoseRequest) -> Step:
    """Report the Badmail reasons (.BDR) with their counts."""
    if request.mailroot is None:
        return _skip("badmail", "diagnose.skipped_no_mailroot")
    inventory = _inventory(request)
    if isinstance(inventory, Step):
        return _skip("badmail", "diagnose.skipped_after", step=message("diagnose.step.queue"))
    reasons = badmail_reasons(inventory)
    count = int(folder_summary(inventory).set_index("role").loc[mailroot.BADMAIL, "messages"])
    if count == 0 and reasons.empty:
        return Step("badmail", OK, message("diagnose.evidence.badmail_empty"))
    lines = [message("diagnose.evidence.badmail", count=count)]
    lines += [f"{row.count} × {row.reason}" for row in reasons.head(3).itertuples()]
    return Step("badmail", WARNING, "\n".join(lines), message("diagnose.next.badmail"), cause="badmail_present",
                values={"count": count})


# The W3C log.

def log_step(request: DiagnoseRequest) -> Step:
    """Find the log lines for this sender or recipient and report the failed ones."""
    if request.logs is None:
        return _skip("log", "diagnose.skipped_no_logs")
    try:
        frame = read_w3c(request.logs)
    except InputError as error:
        return _input_error_step("log", WARNING, error, "log_unreadable", {"path": str(request.logs)})
    query = frame.get("cs-uri-query")
    if query is None or frame.empty:
        return Step("log", WARNING, message("diagnose.evidence.log_no_query", path=request.logs),
                    message("diagnose.next.log_fields"), cause="log_incomplete", values={"path": str(request.logs)})
    text = query.astype("string").fillna("").str.lower()
    wanted = text.str.contains(request.mail_from.lower(), regex=False) | \
        text.str.contains(request.rcpt_to.lower(), regex=False)
    matched = frame[wanted]
    if matched.empty:
        return Step("log", OK, message("diagnose.evidence.log_none", sender=request.mail_from,
                                       recipient=request.rcpt_to, lines=len(frame)))
    status = pd.to_numeric(matched.get("sc-status"), errors="coerce")
    failed = matched[status >= 400]
    if failed.empty:
        return Step("log", OK, message("diagnose.evidence.log_ok", count=len(matched)))
    shown = [f"{row.get('cs-method', '-')} {row.get('cs-uri-query', '-')} {row.get('sc-status', '-')}"
             for row in failed.tail(3).to_dict(orient="records")]
    values = {"count": len(failed), "total": len(matched)}
    return Step("log", WARNING, "\n".join([message("diagnose.evidence.log_failed", **values), *shown]),
                message("diagnose.next.log_failed"), cause="log_failures", values=values)


# DNS, port 25 to the recipient's MX, and the Smart Host: only when asked.

# The cause of an MX lookup that got no usable answer, by its outcome. Other outcomes get dns_no_answer.
_UNKNOWN_DNS_CAUSES = {UNREACHABLE: "dns_unreachable", TIMEOUT: "dns_timeout"}


def dns_step(request: DiagnoseRequest) -> Step:
    """Look up the recipient domain's MX (only with --check-outbound).

    The DNS server is `request.dns`, or else the servers this machine is configured to use.
    """
    if not request.check_outbound:
        return Step("dns", NOT_RUN, message("diagnose.evidence.outbound_not_run"))
    if request.dns:
        nameserver: str | list[tuple[str, int]] = request.dns
        servers_text = request.dns
    else:
        try:
            nameserver = system_nameservers()
        except InputError:
            return _skip("dns", "diagnose.skipped_no_dns", source=system_configuration_source())
        servers_text = message("dnscheck.cli.system_nameservers", source=system_configuration_source(),
                        servers=", ".join(format_nameserver(address, port) for address, port in nameserver))
    domain = _recipient_domain(request)
    client = DnsClient(nameserver, timeout=request.timeout)
    results = check_mx(client, domain)
    mx_result = results[0]
    hosts = [entry["host"] for entry in mx_result.details.get("exchangers", []) if entry["host"] != "."]
    if not hosts and mx_result.outcome == "implicit":
        hosts = [domain]
    request.facts["mx_hosts"] = hosts
    request.facts["dns_client"] = client
    evidence = "\n".join([message("diagnose.evidence.dns_asked", servers=servers_text), *mx_result.records[:5],
                          mx_result.explanation()])
    if mx_result.verdict in ("ok", "warning"):
        return Step("dns", OK if mx_result.verdict == "ok" else WARNING, evidence,
                    mx_result.next_step() if mx_result.verdict == "warning" else None,
                    cause="dns_partial" if mx_result.verdict == "warning" else None, values={"domain": domain})
    if mx_result.verdict == "unknown":
        # No usable answer says nothing about the recipient's domain. An unreachable server or a
        # timeout points at this side, so the cause names the DNS server that was asked.
        cause = _UNKNOWN_DNS_CAUSES.get(mx_result.outcome, "dns_no_answer")
        values = {"domain": domain, "servers": client.describe_nameservers(), "status": mx_result.outcome.upper()}
        return Step("dns", UNKNOWN, evidence, mx_result.next_step(), cause=cause, values=values)
    return Step("dns", PROBLEM, evidence, mx_result.next_step(), cause="dns_failed", values={"domain": domain})


def outbound_step(request: DiagnoseRequest, dns: Step) -> Step:
    """Connect to port 25 of the recipient's MX hosts, in preference order, until one replies."""
    if not request.check_outbound:
        return Step("outbound", NOT_RUN, message("diagnose.evidence.outbound_not_run"))
    if dns.verdict not in (OK, WARNING):
        return _skip("outbound", "diagnose.skipped_after", step=message("diagnose.step.dns"))
    client: DnsClient = request.facts["dns_client"]
    addresses: list[tuple[str, str]] = []
    for host in request.facts.get("mx_hosts", []):
        for lookup in lookup_addresses(client, host):
            addresses.extend((host, text) for text in lookup.texts())
    tried = []
    for host, address in addresses[:MAX_OUTBOUND_ADDRESSES]:
        result = _banner_probe(request, address, request.mx_port)
        tried.append(f"{host} [{address}]:{request.mx_port} → {result.verdict.summary}")
        if result.verdict.step not in ("connect", "banner"):
            return Step("outbound", OK, "\n".join(tried))
    values = {"domain": _recipient_domain(request), "hosts": ", ".join(host for host, _ in addresses) or "-"}
    return Step("outbound", PROBLEM, "\n".join(tried) or message("diagnose.none"),
                message("diagnose.next.outbound_unreachable", **values), cause="outbound_unreachable", values=values)


def local_outbound_steps(request: DiagnoseRequest) -> list[Step]:
    """Return the DNS and outbound steps for a recipient in a local domain: skipped, because such mail goes to Drop."""
    return [_skip(name, "diagnose.skipped_local", **_local_values(request)) for name in ("dns", "outbound")]


def smart_host_step(request: DiagnoseRequest) -> Step:
    """Check that the Smart Host (from --smart-host or the configuration) replies with a banner and to EHLO."""
    configured = request.smart_host
    if configured is None and request.facts.get("local_recipient"):
        # The configured Smart Host carries mail for remote domains only. One named with
        # --smart-host is still checked, because the admin asked for it.
        return _skip("smart_host", "diagnose.skipped_local_smart_host", **_local_values(request))
    if configured is None and request.configuration is not None:
        if request.configuration.smart_host and request.configuration.smart_host_type != 0:
            configured = request.configuration.smart_host
    if not configured:
        return _skip("smart_host", "diagnose.skipped_no_smart_host")
    host, port = _smart_host_address(configured)
    result = _banner_probe(request, host, port, quit_after="ehlo")
    values = {"smart_host": configured}
    if result.verdict.step in ("connect", "banner", "ehlo"):
        return Step("smart_host", PROBLEM, f"{configured}: {result.verdict.summary}",
                    message("diagnose.next.smart_host_unreachable", **values), cause="smart_host_unreachable",
                    values=values)
    return Step("smart_host", OK, message("diagnose.evidence.smart_host_ok", smart_host=configured,
                                          banner=_reply_text(result, ("banner",))))


def _smart_host_address(text: str) -> tuple[str, int]:
    """Return host and port of a Smart Host written as `name`, `[IP]` or either with `:port`."""
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text.strip())
    if bracketed:
        # IIS takes an IP address in brackets, never a name.
        if not is_ip(bracketed.group(1)):
            raise InputError("smtp.input.invalid_host", value=text, next_key="smtp.input.host_next")
        return bracketed.group(1), validate_port(bracketed.group(2) or 25)
    return parse_host_port(text.strip())


def checked_smart_host(text: str | None, option: str) -> str | None:
    """Return the Smart Host as given, or raise InputError naming `option` when it is no host name or address."""
    if text is None:
        return None
    try:
        _smart_host_address(text)
    except InputError:
        raise InputError("diagnose.smart_host_invalid", value=text, option=option,
                         next_key="diagnose.smart_host_invalid_next") from None
    return text


def _banner_probe(request: DiagnoseRequest, host: str, port: int, quit_after: str = "banner") -> ProbeResult:
    connect_port = request.connect_port(host, port)
    return probe(host, connect_port, mail_from=request.mail_from, rcpt_to=[request.rcpt_to], quit_after=quit_after,
                 timeout=request.timeout, total_timeout=2 * request.timeout)


def checked_folder(path: str | os.PathLike[str] | None, option: str) -> Path | None:
    """Return `path` as a Path, raising InputError when it is given but is missing or not a folder."""
    if path is None:
        return None
    folder = Path(path)
    if not folder.exists():
        raise InputError("diagnose.path_missing", value=str(folder), option=option,
                         next_key="diagnose.path_missing_next")
    if not folder.is_dir():
        key = "diagnose.path_not_folder" if folder.is_file() else "diagnose.path_special"
        raise InputError(key, value=str(folder), option=option, next_key="diagnose.path_not_folder_next")
    return folder


def checked_log_path(path: str | os.PathLike[str] | None, option: str) -> Path | None:
    """Return `path` as a Path when it is a log folder or a log file the W3C reader takes.

    A file must end in `.log`, `.gz` or `.zip`, the names the reader collects from a folder,
    so that a MetaBase.xml or an event log given by mistake is rejected before anything runs.
    """
    if path is None:
        return None
    source = Path(path)
    if not source.exists():
        raise InputError("diagnose.path_missing", value=str(source), option=option,
                         next_key="diagnose.path_missing_next")
    if not source.is_dir() and source.suffix.lower() not in FOLDER_SUFFIXES:
        raise InputError("diagnose.logs_not_log", value=str(source), option=option,
                         suffixes=", ".join(FOLDER_SUFFIXES), next_key="diagnose.logs_not_log_next")
    return source
