"""`adminkb sysprep lint FILE` and `adminkb sysprep intelppm FILE...`: checks before Sysprep.

`lint` checks a Windows XP sysprep.inf: exit status 0 no findings, 1 errors or warnings, 2 the
file cannot be read. `collect-script` writes the XP batch file that gathers the files the other
verbs read. `intelppm` reads intelppm's Start value in every control set of a SYSTEM
hive or of .reg exports: 0 every control set checked and safe, 1 a control set loads the driver
or the exports do not cover every control set, 2 an input cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adminkb.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROBLEMS, add_help_option
from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.imaging.collect import FOLDER_PREFIX, collect_batch_bytes, collect_batch_text, copy_back_rows
from adminkb.imaging.intelppm import IntelppmCheck, check_intelppm, intelppm_rows, intelppm_summary
from adminkb.imaging.sysprep import LintResult, lint_sysprep
from adminkb.imaging.unattend import UnattendForm, check_unattend_file, generate_unattend
from adminkb.regfile import write_regfile
from adminkb.output import FORMATS, render_csv, render_json, render_table, write_csv

COLUMNS = ("line", "severity", "rule", "problem", "fix")
INTELPPM_COLUMNS = ("control_set", "start", "verdict")
UNATTEND_COLUMNS = ("line", "rule", "problem", "fix")


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

    intelppm = verbs.add_parser("intelppm", add_help=False, help=message("imaging_intelppm.cli.help"),
                                description=message("imaging_intelppm.cli.description"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(intelppm)
    intelppm.add_argument("files", metavar="FILE", nargs="+", help=message("imaging_intelppm.cli.files_help"))
    intelppm.add_argument("--fix", metavar="FILE", default=None, help=message("imaging_intelppm.cli.fix_help"))
    intelppm.add_argument("--force", action="store_true", help=message("imaging_intelppm.cli.force_help"))
    intelppm.add_argument("--encoding", metavar="CODEPAGE", default=None,
                          help=message("imaging_intelppm.cli.encoding_help"))
    intelppm.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))
    intelppm.set_defaults(handler=run_intelppm)

    collect = verbs.add_parser("collect-script", add_help=False, help=message("imaging_collect.cli.help"),
                               description=message("imaging_collect.cli.description"),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(collect)
    collect.add_argument("--output", metavar="FILE", default=None, help=message("imaging_collect.cli.output_help"))
    collect.add_argument("--force", action="store_true", help=message("imaging_collect.cli.force_help"))
    collect.set_defaults(handler=run_collect_script)

    unattend = verbs.add_parser("unattend", add_help=False, help=message("imaging_unattend.cli.unattend_help"),
                                description=message("imaging_unattend.cli.unattend_description"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(unattend)
    unattend.add_argument("--computer-name", metavar="NAME", default="*",
                          help=message("imaging_unattend.cli.computer_name_help"))
    unattend.add_argument("--architecture", metavar="ARCH", default="amd64",
                          help=message("imaging_unattend.cli.architecture_help"))
    unattend.add_argument("--output", metavar="FILE", default=None, help=message("imaging_unattend.cli.output_help"))
    unattend.add_argument("--force", action="store_true", help=message("imaging_unattend.cli.force_help"))
    unattend.set_defaults(handler=run_unattend)

    check = verbs.add_parser("check-unattend", add_help=False, help=message("imaging_unattend.cli.check_help"),
                             description=message("imaging_unattend.cli.check_description"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(check)
    check.add_argument("file", metavar="FILE", help=message("imaging_unattend.cli.file_help"))
    check.add_argument("--format", choices=FORMATS, default="table", help=message("cli.format_option"))
    check.set_defaults(handler=run_check_unattend)


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
        write_csv(render_csv(rows, COLUMNS))
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


def run_intelppm(arguments: argparse.Namespace) -> int:
    """Print intelppm's Start value a control set, write the fix when asked, and return 0, 1 or 2."""
    try:
        check = check_intelppm(arguments.files, encoding=arguments.encoding)
        fix_path = Path(arguments.fix) if arguments.fix else None
        if fix_path is not None and check.at_risk and fix_path.exists() and not arguments.force:
            raise InputError("imaging_intelppm.fix_exists", value=str(fix_path),
                             next_key="imaging_intelppm.fix_exists_next")
        if fix_path is not None and check.at_risk:
            try:
                write_regfile(fix_path, check.fix_regfile())
            except OSError as error:
                raise InputError("imaging_intelppm.fix_write_failed", value=str(fix_path),
                                 reason=os_error_text(error),
                                 next_key="imaging_intelppm.fix_write_failed_next") from None
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = intelppm_rows(check)
    if arguments.format == "json":
        print(render_json(intelppm_document(check)))
    elif arguments.format == "csv":
        write_csv(render_csv(rows, INTELPPM_COLUMNS))
    else:
        headers = {column: message(f"imaging_intelppm.cli.column_{column}") for column in INTELPPM_COLUMNS}
        print(render_table(rows, INTELPPM_COLUMNS, headers))
        if check.current:
            print(message("imaging_intelppm.current", name=check.current))
        print(intelppm_summary(check))
        if not check.hive_clean:
            print(message("imaging_intelppm.dirty_hive"))
        if fix_path is not None:
            if check.at_risk:
                key = "imaging_intelppm.fix_written"
            elif check.safe:
                key = "imaging_intelppm.fix_not_needed"
            else:
                key = "imaging_intelppm.fix_not_written_partial"
            print(message(key, path=fix_path))
    return EXIT_OK if check.safe else EXIT_PROBLEMS


def intelppm_document(check: IntelppmCheck) -> dict[str, object]:
    return {"source": check.source, "kind": check.kind, "current": check.current, "hive_clean": check.hive_clean,
            "safe": check.safe, "complete": check.complete, "selected": check.selected,
            "control_sets": [{"control_set": entry.control_set, "checked": entry.checked,
                              "key_present": entry.key_present, "start": entry.start, "wrong_type": entry.wrong_type,
                              "loads": entry.loads}
                             for entry in check.control_sets]}


def _write_output(path: Path, data: bytes, force: bool, area: str) -> None:
    """Write `data` to `path` with the `area` catalog's messages for the errors.

    Raises InputError for an existing file without --force and for a failed write.
    """
    if path.exists() and not force:
        raise InputError(f"{area}.output_exists", value=str(path), next_key=f"{area}.output_exists_next")
    try:
        path.write_bytes(data)
    except OSError as error:
        raise InputError(f"{area}.write_failed", value=str(path), reason=os_error_text(error),
                         next_key=f"{area}.write_failed_next") from None


def run_collect_script(arguments: argparse.Namespace) -> int:
    """Write the XP batch file (or print it without --output), list the files to copy back, and return 0 or 2."""
    if arguments.output is None:
        sys.stdout.write(collect_batch_text())
        return EXIT_OK
    path = Path(arguments.output)
    try:
        _write_output(path, collect_batch_bytes(), arguments.force, "imaging_collect")
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(message("imaging_collect.wrote", path=path))
    print(message("imaging_collect.copy_back_heading", folder=FOLDER_PREFIX + "<COMPUTERNAME>"))
    headers = {column: message(f"imaging_collect.column.{column}") for column in ("file", "description")}
    print(render_table(copy_back_rows(), ("file", "description"), headers))
    return EXIT_OK


def run_unattend(arguments: argparse.Namespace) -> int:
    """Print or write the generated unattend.xml and return 0, or 2 for a bad value or output file."""
    try:
        text = generate_unattend(UnattendForm(computer_name=arguments.computer_name,
                                              architecture=arguments.architecture))
        if arguments.output is None:
            sys.stdout.write(text.replace("\r\n", "\n"))
            return EXIT_OK
        path = Path(arguments.output)
        _write_output(path, text.encode("utf-8"), arguments.force, "imaging_unattend")
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(message("imaging_unattend.wrote", path=path))
    return EXIT_OK


def run_check_unattend(arguments: argparse.Namespace) -> int:
    """Print the problems of an unattend.xml and return 0 (none), 1 (problems) or 2 (unreadable or not XML)."""
    try:
        findings = check_unattend_file(arguments.file)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = [{"line": finding.line, "rule": finding.rule, "problem": finding.problem, "fix": finding.fix}
            for finding in findings]
    if arguments.format == "json":
        print(render_json({"file": arguments.file, "findings": [finding.to_dict() for finding in findings]}))
    elif arguments.format == "csv":
        write_csv(render_csv(rows, UNATTEND_COLUMNS))
    elif not findings:
        print(message("imaging_unattend.clean", file=arguments.file))
    else:
        print(message("imaging_unattend.summary", file=arguments.file, count=len(findings)))
        headers = {column: message(f"imaging_unattend.cli.column_{column}") for column in UNATTEND_COLUMNS}
        print(render_table(rows, UNATTEND_COLUMNS, headers))
    # A file that is not well-formed XML cannot be checked at all, so it is bad input, not a finding.
    if any(finding.rule == "not_well_formed" for finding in findings):
        return EXIT_BAD_INPUT
    return EXIT_PROBLEMS if findings else EXIT_OK
