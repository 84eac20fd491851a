"""`adminkb lab`: run the mail lab in the foreground until Ctrl+C.

It prints where the lab listens and where its mailroot and W3C logs are, then waits. Bad
options (a non-loopback address without --allow-non-loopback, an invalid address or subnet,
a root that is a file) end with exit status 2 before anything starts.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from adminkb.cli import EXIT_OK, add_help_option
from adminkb.i18n import message
from adminkb.lab import LAB_ADDRESS, MailLab

log = logging.getLogger("adminkb.cli.lab")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("lab", add_help=False, help=message("lab.cli.help"),
                                   description=message("lab.cli.description"),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    parser.add_argument("--listen", default=LAB_ADDRESS, metavar="IP", help=message("lab.cli.listen_option"))
    parser.add_argument("--port", type=int, default=0, metavar="N", help=message("lab.cli.port_option"))
    parser.add_argument("--root", metavar="DIR", help=message("lab.cli.root_option"))
    parser.add_argument("--relay", nargs="+", action="extend", default=[], metavar="IP_OR_NET",
                        help=message("lab.cli.relay_option"))
    parser.add_argument("--local-domain", nargs="+", action="extend", default=[], metavar="DOMAIN",
                        dest="local_domains", help=message("lab.cli.local_domain_option"))
    parser.add_argument("--hostname", default=None, metavar="NAME", help=message("lab.cli.hostname_option"))
    parser.add_argument("--allow-non-loopback", action="store_true",
                        help=message("lab.cli.allow_non_loopback_option"))
    parser.set_defaults(handler=run_lab)


def run_lab(arguments: argparse.Namespace) -> int:
    """Start the lab with the options given, print where it is, and wait until interrupted."""
    options: dict[str, object] = dict(listen=arguments.listen, port=arguments.port, root=arguments.root,
                                      relay_grant=arguments.relay, allow_non_loopback=arguments.allow_non_loopback)
    if arguments.local_domains:
        options["local_domains"] = arguments.local_domains
    if arguments.hostname:
        options["hostname"] = arguments.hostname
    lab = MailLab(**options)

    stop_requested = threading.Event()
    previous_handlers = _stop_on_signals(stop_requested)
    lab.start()
    try:
        print(message("lab.cli.started", address=lab.address, hostname=lab.hostname), flush=True)
        print(message("lab.cli.mailroot", path=lab.mailroot), flush=True)
        print(message("lab.cli.logs", path=lab.log_dir), flush=True)
        print(message("lab.cli.relay", entries=", ".join(lab.relay_grant) or message("lab.cli.relay_nobody"),
                      domains=", ".join(lab.local_domains)), flush=True)
        print(message("lab.cli.stop_hint"), flush=True)
        # wait() with a timeout, because CPython on Windows does not interrupt an untimed wait for Ctrl+C.
        while not stop_requested.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        lab.stop()
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
    print(message("lab.cli.stopped"), flush=True)
    return EXIT_OK


def _stop_on_signals(stop_requested: threading.Event) -> dict:
    """Make SIGTERM (and Ctrl+Break on Windows) stop the lab cleanly like Ctrl+C; return the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    numbers = [signal.SIGTERM]
    if hasattr(signal, "SIGBREAK"):
        numbers.append(signal.SIGBREAK)
    return {number: signal.signal(number, lambda signal_number, frame: stop_requested.set()) for number in numbers}
