"""`adminkb sysprep lint FILE`: check a Windows XP sysprep.inf.

Exit status: 0 no findings, 1 errors or warnings, 2 the file cannot be read.
"""

from __future__ import annotations

import argparse
import sys

from adminkb.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROBLEMS, add_help_option
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.imaging.sysprep import LintResult, lint_sysprep
from adminkb.output import FORMATS, render_csv, render_json, render_table

COLUMNS = ("line", "severity", "rule", "problem", "fix")


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("sysprep", add_help=False, help=message("imaging_sysprep.cli.area_help"),
                                 description=message("imaging_sysprep.cli.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True
    lint = verbs.add_parser("lint", add_help=False, help=message("imaging_sysprep.cli.lint_help"),
                            description=message("imaging_sysprep.cli.lint_description"),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(lint)
    lint.add_argument("file", metavar="FILE", help=message("imaging_sysprep.cli.file_help"))
    lint.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))
    lint.set_defaults(handler=run_lint)


def run_lint(arguments: argparse.Namespace) -> int:
    """Print the findings for one sysprep.inf and return 0 (clean), 1 (findings) or 2 (unreadable)."""
    try:
        result = lint_sysprep(arguments.file)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = finding_rows(result)
    if arguments.format == "json":
        print(render_json({"file": result.source, "encoding": result.encoding,
                           "findings": [finding.to_dict() for finding in result.findings]}))
    elif arguments.format == "csv":
        sys.stdout.write(render_csv(rows, COLUMNS))
    elif result.clean:
        print(message("imaging_sysprep.cli.clean", file=result.source, encoding=result.encoding))
    else:
        print(message("imaging_sysprep.cli.summary", file=result.source, errors=len(result.errors),
                      warnings=len(result.warnings), encoding=result.encoding))
        headers = {column: message(f"imaging_sysprep.cli.column_{column}") for column in COLUMNS}
        print(render_table(rows, COLUMNS, headers))
    return EXIT_OK if result.clean else EXIT_PROBLEMS


def finding_rows(result: LintResult) -> list[dict[str, object]]:
    """Return one table row a finding, with the severity in the user's language."""
    return [{"line": finding.line, "severity": message(f"imaging_sysprep.cli.severity.{finding.severity}"),
             "rule": finding.rule, "problem": finding.problem, "fix": finding.fix}
            for finding in result.findings]
