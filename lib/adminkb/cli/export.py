"""`adminkb export`: write every runbook as an offline HTML site.

Exit status: 0 the site was written, 2 an input or the output path cannot be used, or a runbook
failed to run. A failed export leaves the output folder as it was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adminkb.cli import EXIT_OK, add_help_option, bounded_number

from adminkb.export import DEFAULT_CELL_TIMEOUT, MAX_CELL_TIMEOUT, export_site
from adminkb.i18n import message


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", add_help=False, help=message("export.cli.help"),
                                   description=message("export.cli.description"),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    parser.add_argument("--out", metavar="DIR", type=Path, default=None, help=message("export.cli.out_help"))
    parser.add_argument("--notebooks", metavar="DIR", type=Path, default=None,
                        help=message("export.cli.notebooks_help"))
    parser.add_argument("--use-stored-outputs", action="store_true", help=message("export.cli.stored_help"))
    parser.add_argument("--no-input", action="store_true", help=message("export.cli.no_input_help"))
    parser.add_argument("--mask", action="store_true", help=message("export.cli.mask_help"))
    parser.add_argument("--cell-timeout", metavar="SECONDS", type=bounded_number(int, 1, MAX_CELL_TIMEOUT),
                        default=DEFAULT_CELL_TIMEOUT,
                        help=message("export.cli.cell_timeout_help", default=DEFAULT_CELL_TIMEOUT))
    parser.set_defaults(handler=run_export)


def run_export(arguments: argparse.Namespace) -> int:
    """Export the site and print where it is; InputError propagates to main() (exit status 2).

    On a terminal, a progress bar shows how far the export is. When stderr is a file or a pipe
    (a scheduled task, a CI log), one line per runbook does, because a bar there is unreadable.
    """
    terminal = sys.stderr.isatty()
    action = message("export.progress_read" if arguments.use_stored_outputs else "export.progress_run")

    def print_progress(number: int, count: int, path: Path) -> None:
        print(message("export.cli.progress_line", action=action, number=number, count=count, name=path.name),
              file=sys.stderr, flush=True)

    result = export_site(arguments.out, notebooks_dir=arguments.notebooks,
                         use_stored_outputs=arguments.use_stored_outputs, no_input=arguments.no_input,
                         mask=arguments.mask, cell_timeout=arguments.cell_timeout,
                         progress=terminal, on_runbook=None if terminal else print_progress)
    for warning in result.warnings:
        print(message("export.cli.warning", text=warning), file=sys.stderr)
    print(message("export.cli.done", count=len(result.pages), path=result.out_dir,
                  index=result.out_dir / "index.html"))
    return EXIT_OK



