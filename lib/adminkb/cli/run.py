"""`adminkb run NOTEBOOK`: execute a runbook and keep the record of the run.

Exit status: 0 every step done, 1 a step failed or a check found problems on a real server,
2 unusable input (unknown runbook or parameter), 130 interrupted (Ctrl+C or SIGTERM), after the
steps that ran are recorded.
"""

from __future__ import annotations

import argparse
import sys

from adminkb.cli import EXIT_OK, EXIT_PROBLEMS, add_help_option, bounded_number
from adminkb.i18n import message
from adminkb.output import render_table
from adminkb.recorder import (DEFAULT_CELL_TIMEOUT, INTERRUPTED, MAX_CELL_TIMEOUT, OK, PROBLEMS, RunInterrupted, RunRecord,
                              list_parameters, parameter_values, record_run)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", add_help=False, help=message("recorder.cli.help"),
                                   description=message("recorder.cli.description"),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    parser.add_argument("notebook", metavar="NOTEBOOK", help=message("recorder.cli.notebook_help"))
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help=message("recorder.cli.parameter_help"))
    parser.add_argument("--out", metavar="DIR", help=message("recorder.cli.out_help"))
    parser.add_argument("--mask", action="store_true", help=message("recorder.cli.mask_help"))
    parser.add_argument("--list-parameters", action="store_true", help=message("recorder.cli.list_help"))
    parser.add_argument("--timeout", metavar="SECONDS", type=bounded_number(int, 1, MAX_CELL_TIMEOUT),
                        default=DEFAULT_CELL_TIMEOUT,
                        help=message("recorder.cli.timeout_help"))
    parser.set_defaults(handler=run_notebook)


def run_notebook(arguments: argparse.Namespace) -> int:
    """List the parameters, or record a run and print where it went; return 1 when a step failed or found problems."""
    if arguments.list_parameters:
        rows = [{"name": item.name, "default": item.default, "help": item.help}
                for item in list_parameters(arguments.notebook)]
        columns = ("name", "default", "help")
        print(render_table(rows, columns, {column: message(f"recorder.column.{column}") for column in columns}))
        return EXIT_OK
    parameters = parameter_values(arguments.notebook, arguments.parameter)
    try:
        record = record_run(arguments.notebook, parameters, out=arguments.out, mask=arguments.mask,
                            cell_timeout=arguments.timeout, progress=sys.stderr.isatty())
    except RunInterrupted as interrupted:
        # main() prints the interrupted line and exits with 130 once the record is shown.
        if interrupted.record is not None:
            print_record(interrupted.record)
        raise
    print_record(record)
    return EXIT_OK if record.status == OK else EXIT_PROBLEMS


def print_record(record: RunRecord) -> None:
    """Print where the record went, its status, each step's outcome and the error that stopped the run."""
    print(message("recorder.cli.wrote", folder=record.folder, status=message(f"recorder.outcome.{record.status}")),
          flush=True)
    rows = [{"title": step.title, "outcome": message(f"recorder.outcome.{step.outcome}")} for step in record.steps]
    if rows:
        columns = ("title", "outcome")
        print(render_table(rows, columns, {column: message(f"recorder.column.{column}") for column in columns}))
    if record.error and record.status != INTERRUPTED:
        print(message("recorder.cli.error", error=record.error))
    found = record.steps_with_problems
    if found:
        key = "recorder.cli.completed_with_problems" if record.status == PROBLEMS else "recorder.cli.steps_with_problems"
        print(message(key, count=len(found)))
        for step in found:
            for problem in step.problems:
                print(message("recorder.cli.problem", step=step.title, problem=" ".join(problem.splitlines())))
