"""`adminkb lab`: run the mail lab in the foreground until Ctrl+C.

It prints where the lab listens and where its mailroot and W3C logs are, then waits. Bad
options (a non-loopback address without --allow-non-loopback, an invalid address or subnet,
a root that is a file, a --compression outside 1 to 100000 or without --deliver) end with exit
status 2 before anything starts.

With --deliver the lab also runs its background delivery runner: it prints the remote
receivers that stand for other companies' mail servers, then one line for each delivery event
(delivered, deferred, NDR, Badmail) as queued mail goes out.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from adminkb.cli import EXIT_OK, add_help_option, bounded_number, with_cli_option
from adminkb.errors import InputError, LabError
from adminkb.i18n import message
from adminkb.lab import LAB_ADDRESS, MailLab
from adminkb.lab.delivery import DeliveryRecord
from adminkb.lab.dns import lab_zone_files
from adminkb.lab.remote import RECEIVERS, UNREACHABLE
from adminkb.output import render_table

log = logging.getLogger("adminkb.cli.lab")

# Lab seconds that pass per real second with --deliver and no --compression, so a 10-minute
# retry interval takes 10 seconds. It is the same as the runner's own default.
DEFAULT_COMPRESSION = 60.0
# Seconds between the checks for new delivery events while the lab runs.
POLL_INTERVAL = 0.5
# A CNAME chain in the lab zones is followed this far when the receivers table is built.
MAX_CNAME_HOPS = 8
EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("lab", add_help=False, help=message("lab.cli.help"),
                                   description=message("lab.cli.description"),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    parser.add_argument("--listen", default=LAB_ADDRESS, metavar="IP", help=message("lab.cli.listen_option"))
    parser.add_argument("--port", type=bounded_number(int, 0, 65535), default=0, metavar="N", help=message("lab.cli.port_option"))
    parser.add_argument("--root", metavar="DIR", help=message("lab.cli.root_option"))
    parser.add_argument("--relay", nargs="+", action="extend", default=[], metavar="IP_OR_NET",
                        help=message("lab.cli.relay_option"))
    parser.add_argument("--local-domain", nargs="+", action="extend", default=[], metavar="DOMAIN",
                        dest="local_domains", help=message("lab.cli.local_domain_option"))
    parser.add_argument("--hostname", default=None, metavar="NAME", help=message("lab.cli.hostname_option"))
    parser.add_argument("--allow-non-loopback", action="store_true",
                        help=message("lab.cli.allow_non_loopback_option"))
    parser.add_argument("--deliver", action="store_true", help=message("lab.cli.deliver_option"))
    # MailLab.start_delivery_runner accepts a compression from 1 to 100000.
    parser.add_argument("--compression", type=bounded_number(float, 1, 100_000), default=None, metavar="N",
                        help=message("lab.cli.compression_option", default=f"{DEFAULT_COMPRESSION:g}"))
    parser.set_defaults(handler=run_lab)


# MailLab parameters that InputError names, and the `adminkb lab` options that set them.
LAB_OPTIONS = {"hostname": "--hostname", "local_domains": "--local-domain",
               "allow_non_loopback=True": "--allow-non-loopback"}


def run_lab(arguments: argparse.Namespace) -> int:
    """Start the lab with the options given, print where it is, and wait until interrupted."""
    if arguments.compression is not None and not arguments.deliver:
        raise InputError("lab.cli.compression_without_deliver", value=f"{arguments.compression:g}",
                         next_key="lab.cli.compression_without_deliver_next")
    options: dict[str, object] = dict(listen=arguments.listen, port=arguments.port, root=arguments.root,
                                      relay_grant=arguments.relay, allow_non_loopback=arguments.allow_non_loopback)
    if arguments.local_domains:
        options["local_domains"] = arguments.local_domains
    if arguments.hostname:
        options["hostname"] = arguments.hostname
    try:
        lab = MailLab(**options)
    except (InputError, LabError) as error:
        raise with_cli_option(error, LAB_OPTIONS) from None

    stop_request = StopRequest()
    previous_handlers = _stop_on_signals(stop_request)
    lab.start()
    try:
        compression = DEFAULT_COMPRESSION if arguments.compression is None else arguments.compression
        if arguments.deliver:
            lab.start_delivery_runner(compression=compression)
        print(message("lab.cli.started", address=lab.address, hostname=lab.hostname), flush=True)
        print(message("lab.cli.mailroot", path=lab.mailroot), flush=True)
        print(message("lab.cli.logs", path=lab.log_dir), flush=True)
        print(message("lab.cli.relay", entries=", ".join(lab.relay_grant) or message("lab.cli.relay_nobody"),
                      domains=", ".join(lab.local_domains)), flush=True)
        if arguments.deliver:
            print(message("lab.cli.lab_dns", address=lab.lab_dns.nameserver), flush=True)
            print(message("lab.cli.delivering", compression=f"{compression:g}", port=lab.remote.port), flush=True)
            print(receivers_table(), flush=True)
            print(message("lab.cli.diagnose_hint", address=lab.address, dns=lab.lab_dns.nameserver,
                          port=lab.remote.port), flush=True)
        print(message("lab.cli.stop_hint"), flush=True)
        printed_events = 0
        # Short sleeps, because CPython on Windows does not interrupt an untimed wait for Ctrl+C.
        while not stop_request.requested:
            time.sleep(POLL_INTERVAL)
            if arguments.deliver:
                printed_events = _print_new_events(lab, printed_events)
        if arguments.deliver:
            # Events of the last poll interval before the stop request.
            _print_new_events(lab, printed_events)
    except KeyboardInterrupt:
        pass
    finally:
        lab.stop()
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
    print(message("lab.cli.stopped"), flush=True)
    return EXIT_OK


def _print_new_events(lab: MailLab, printed: int) -> int:
    """Print the delivery events after the first `printed` ones; return how many are printed now."""
    records = lab.delivery_records
    for record in records[printed:]:
        print(format_delivery_event(record, lab), flush=True)
    return max(printed, len(records))


def format_delivery_event(record: DeliveryRecord, lab: MailLab) -> str:
    """Return one line for a delivery event: lab time, recipient, outcome, remote host and reply."""
    time = record.time.astimezone(lab.timezone).strftime(EVENT_TIME_FORMAT)
    host = f"{record.host} [{record.address}]" if record.host and record.address else record.host or record.address
    return message("lab.cli.delivery_event", time=time, recipient=record.recipient or "-",
                   outcome=message(f"target.outcome_{record.outcome}"), host=host or "-", reply=record.reply_text() or "-")


def mail_domains_by_address(zone_files: Iterable[Path]) -> dict[str, list[str]]:
    """Map each address in the zones to the mail domains whose MX host has that address.

    A name without MX records is its own mail host (the implicit MX of RFC 5321 section 5.1).
    Such names are left out here, because every host name in the zones would count.
    """
    zones = [dns.zone.from_file(str(path), relativize=False) for path in zone_files]

    def addresses_of(name: dns.name.Name) -> list[str]:
        for _ in range(MAX_CNAME_HOPS):
            for zone in zones:
                node = zone.get_node(name)
                if node is None:
                    continue
                cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
                if cname:
                    name = cname[0].target
                    break
                return [rdata.address for kind in (dns.rdatatype.A, dns.rdatatype.AAAA)
                        for rdata in node.get_rdataset(dns.rdataclass.IN, kind) or ()]
            else:
                return []
        return []

    domains: dict[str, set[str]] = defaultdict(set)
    for zone in zones:
        for name, node in zone.nodes.items():
            for rdata in node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.MX) or ():
                for address in addresses_of(rdata.exchange):
                    domains[address].add(name.to_text(omit_final_dot=True))
    return {address: sorted(names) for address, names in domains.items()}


def receivers_table() -> str:
    """Render the remote receivers: address, host name, mail domains routed there, behaviour.

    The addresses where nothing listens (a firewall on the way) are listed too, so an admin can
    tell why mail for their domains stays in Queue. A receiver that is no domain's MX host gets
    mail for its own name (implicit MX), so the domains column shows its host name.
    """
    domains = mail_domains_by_address(lab_zone_files())
    hosts = _host_names_by_address(lab_zone_files())
    rows = []
    for spec in RECEIVERS:
        rows.append({"address": spec.address, "hostname": spec.hostname,
                     "domains": "\n".join(domains.get(spec.address, [])) or spec.hostname,
                     "behaviour": message(f"lab.cli.receiver_kind.{spec.kind}")})
    for address in UNREACHABLE:
        rows.append({"address": address, "hostname": ", ".join(hosts.get(address, [])) or "-",
                     "domains": "\n".join(domains.get(address, [])) or "-",
                     "behaviour": message("lab.cli.receiver_kind.unreachable")})
    columns = ("address", "hostname", "domains", "behaviour")
    return render_table(rows, columns, {column: message(f"lab.cli.receiver_column.{column}") for column in columns})


def _host_names_by_address(zone_files: Iterable[Path]) -> dict[str, list[str]]:
    names: dict[str, set[str]] = defaultdict(set)
    for path in zone_files:
        zone = dns.zone.from_file(str(path), relativize=False)
        for name, node in zone.nodes.items():
            for rdata in node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.A) or ():
                names[rdata.address].add(name.to_text(omit_final_dot=True))
    return {address: sorted(found) for address, found in names.items()}


class StopRequest:
    """A flag that the signal handlers set and the lab's main loop reads.

    It is a plain attribute and not a threading.Event. A handler runs in the main thread
    between two bytecodes, possibly while Event.wait() there has the Event's lock. Event.set()
    in the handler would then wait for that lock forever, and the lab would never stop.
    """

    def __init__(self) -> None:
        self.requested = False

    def set(self, signal_number: int | None = None, frame: object = None) -> None:
        self.requested = True


def _stop_on_signals(stop_request: StopRequest) -> dict:
    """Make SIGTERM (and Ctrl+Break on Windows) stop the lab cleanly like Ctrl+C; return the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    numbers = [signal.SIGTERM]
    if hasattr(signal, "SIGBREAK"):
        numbers.append(signal.SIGBREAK)
    return {number: signal.signal(number, stop_request.set) for number in numbers}
