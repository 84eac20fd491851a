"""`adminkb jupyter setup`: preset JupyterLab's language for this environment only."""

from __future__ import annotations

import argparse
import sys

from adminkb import envsetup
from adminkb.cli import add_help_option
from adminkb.i18n import message


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("jupyter", add_help=False, help=message("envsetup.area_help"),
                                 description=message("envsetup.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True
    setup = verbs.add_parser("setup", add_help=False, help=message("envsetup.setup_help"),
                             description=message("envsetup.setup_help"))
    add_help_option(setup)
    setup.add_argument("--prefix", default=sys.prefix, help=message("envsetup.prefix_help"))
    setup.set_defaults(handler=run_setup)


def run_setup(arguments: argparse.Namespace) -> int:
    prefix = envsetup.checked_environment_prefix(arguments.prefix)
    path = envsetup.write_lab_overrides(prefix)
    print(message("envsetup.written", path=path, locale=envsetup.LAB_LOCALE))
    return 0
