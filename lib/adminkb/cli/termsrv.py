"""`adminkb termsrv`: termsrv.dll checks, Remote Desktop state, the XP batch file, .reg files, step plan.

`check` exits 0 for an XP termsrv.dll build whose string-table version agrees, 1 otherwise, and 2
when the file cannot be used. `files` exits 1 without writing when the export already has
EnableConcurrentSessions = 1, because a rollback file built from it could not restore the state
before that earlier change. The other verbs exit 0 on success, and every verb exits 2 when an input
cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adminkb.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROBLEMS, add_help_option
from adminkb.cli.reg import diff_rows, display_value
from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.output import FORMATS, render_blocks, render_csv, render_json, render_table, write_csv
from adminkb.regfile import read_regfile, write_regfile
from adminkb.termsrv import (
    APPLICABILITY_OTHER, COPY_BACK, ChangeFiles, PeCheck, RdpState, build_change_files, check_pe,
    collect_batch_bytes, collect_batch_text, model_from_regfiles, plan_rows, read_live_state, read_state, step_plan,
)
from adminkb.termsrv.collect import DLL_COPIES, FOLDER_PREFIX
from adminkb.termsrv.state import LIVE_SOURCE
from adminkb.termsrv.plan import APPLY_FILE, REPLACE_ORDER, ROLLBACK_FILE

CHECK_FIELDS = ("path", "size", "sha256", "machine", "file_version", "product_version", "string_file_version",
                "original_filename", "applicability")
STATE_COLUMNS = ("setting", "key", "name", "value")
PLAN_COLUMNS = ("step", "phase", "action", "commands", "expected")
COPY_BACK_COLUMNS = ("file", "description")
CHANGE_COLUMNS = ("change", "key", "name", "old", "new")


def register(subparsers: argparse._SubParsersAction) -> None:
    area = subparsers.add_parser("termsrv", add_help=False, help=message("termsrv.cli.area_help"),
                                 description=message("termsrv.cli.area_help"))
    add_help_option(area)
    verbs = area.add_subparsers(dest="verb", metavar=message("cli.command_metavar"))
    verbs.required = True

    check = _verb(verbs, "check", "check")
    check.add_argument("file", metavar="FILE", help=message("termsrv.cli.file_help"))
    _add_format(check)
    check.set_defaults(handler=run_check)

    state = _verb(verbs, "state", "state")
    state.add_argument("exports", metavar="FILE", nargs="*", help=message("termsrv.cli.exports_help"))
    state.add_argument("--live", action="store_true", help=message("termsrv.cli.live_help"))
    state.add_argument("--encoding", metavar="CODEPAGE", default=None, help=message("termsrv.cli.encoding_help"))
    _add_format(state)
    state.set_defaults(handler=run_state)

    collect = _verb(verbs, "collect-script", "collect")
    collect.add_argument("--output", metavar="FILE", default=None, help=message("termsrv.cli.output_help"))
    collect.add_argument("--force", action="store_true", help=message("termsrv.cli.force_output_help"))
    collect.set_defaults(handler=run_collect_script)

    files = _verb(verbs, "files", "files")
    files.add_argument("exports", metavar="FILE", nargs="+", help=message("termsrv.cli.exports_help"))
    files.add_argument("--output-dir", metavar="DIR", default=".", help=message("termsrv.cli.output_dir_help"))
    files.add_argument("--allow-multiple-sessions", action="store_true",
                       help=message("termsrv.cli.allow_multiple_help"))
    files.add_argument("--force", action="store_true", help=message("termsrv.cli.force_help"))
    files.add_argument("--encoding", metavar="CODEPAGE", default=None, help=message("termsrv.cli.encoding_help"))
    files.set_defaults(handler=run_files)

    plan = _verb(verbs, "plan", "plan")
    plan.add_argument("--collected", metavar="DIR", default=None, help=message("termsrv.cli.collected_help"))
    plan.add_argument("--replacement", metavar="FILE", default=None, help=message("termsrv.cli.replacement_help"))
    plan.add_argument("--backup-folder", metavar="FOLDER", default=None,
                      help=message("termsrv.cli.backup_folder_help"))
    _add_format(plan, "termsrv.cli.plan_format_option")
    plan.set_defaults(handler=run_plan)


def _verb(verbs: argparse._SubParsersAction, name: str, key: str) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, add_help=False, help=message(f"termsrv.cli.{key}_help"),
                              description=message(f"termsrv.cli.{key}_description"),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    return parser


def _add_format(parser: argparse.ArgumentParser, help_key: str = "cli.format_option") -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help=message(help_key))


def _headers(columns: tuple[str, ...]) -> dict[str, str]:
    return {column: message(f"termsrv.cli.column_{column}") for column in columns}


def _fail(error: InputError) -> int:
    print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
    return EXIT_BAD_INPUT


def _write_error(path: Path, error: OSError) -> InputError:
    return InputError("termsrv.write_failed", value=str(path), reason=os_error_text(error),
                      folder=str(path.parent), next_key="termsrv.write_failed_next")


# check

def run_check(arguments: argparse.Namespace) -> int:
    """Print what `check_pe` found and return 0 (XP build), 1 (not applicable or mismatch) or 2."""
    try:
        check = check_pe(arguments.file)
    except InputError as error:
        return _fail(error)
    notes = check_notes(check)
    if arguments.format == "json":
        print(render_json({**check.to_dict(), "applicability_text": message(f"termsrv.applicability.{check.applicability}"),
                           "notes": notes}))
    elif arguments.format == "csv":
        row = {**check.to_dict(), "applicability": check.applicability}
        write_csv(render_csv([row], CHECK_FIELDS))
    else:
        print(render_table(check_rows(check), ("item", "value"), _headers(("item", "value"))))
        for note in notes:
            print(note)
    if check.applicability == APPLICABILITY_OTHER or check.string_version_differs:
        return EXIT_PROBLEMS
    return EXIT_OK


def check_rows(check: PeCheck) -> list[dict[str, object]]:
    """Return the check as item and value rows, in the user's language."""
    values = {
        "path": check.path,
        "size": f"{check.size:,}",
        "sha256": check.sha256,
        "machine": f"{check.machine_name} (0x{check.machine:04x})",
        "file_version": check.file_version,
        "product_version": check.product_version,
        "string_file_version": check.string_file_version,
        "original_filename": check.original_filename,
        "applicability": message(f"termsrv.applicability.{check.applicability}"),
    }
    return [{"item": message(f"termsrv.cli.field_{field}"), "value": values[field]} for field in CHECK_FIELDS]


def check_notes(check: PeCheck) -> list[str]:
    notes = []
    if check.string_version_differs:
        notes.append(message("termsrv.check.string_differs", string_version=check.string_file_version,
                             file_version=check.file_version))
    if check.original_filename and check.original_filename.lower() != "termsrv.dll":
        notes.append(message("termsrv.check.not_termsrv", original=check.original_filename))
    return notes


# state

def run_state(arguments: argparse.Namespace) -> int:
    """Print the Remote Desktop session settings and return 0, or 2 when no source can be used."""
    try:
        if arguments.live and arguments.exports:
            raise InputError("termsrv.state.live_and_files", value=" ".join(arguments.exports),
                             next_key="termsrv.state.live_and_files_next")
        if arguments.live:
            state = read_live_state()
        else:
            state = read_state(arguments.exports, encoding=arguments.encoding)
    except InputError as error:
        return _fail(error)
    if state.secrets:
        print(message("termsrv.state.secrets", names=", ".join(state.secrets)), file=sys.stderr)
    rows = state_rows(state)
    if arguments.format == "json":
        print(render_json(state_document(state)))
    elif arguments.format == "csv":
        write_csv(render_csv(rows, STATE_COLUMNS))
    else:
        print(render_table(rows, STATE_COLUMNS, _headers(STATE_COLUMNS)))
        print(state_summary(state))
    return EXIT_OK


def state_rows(state: RdpState) -> list[dict[str, object]]:
    rows = []
    # A key missing from a live read does not exist, but one missing from exports may not have been exported.
    missing_key = "termsrv.state.key_missing" if state.source == LIVE_SOURCE else "termsrv.state.key_not_exported"
    for found in state.values:
        if not found.key_known:
            shown = message(missing_key)
        elif found.value is None:
            shown = message("termsrv.state.not_set")
        elif found.wrong_type:
            shown = message("termsrv.state.wrong_type", type=found.value.type_name)
        else:
            shown = display_value(found.value)
        rows.append({"setting": message(f"termsrv.setting.{found.setting.id}"), "key": found.setting.key,
                     "name": found.setting.name, "value": shown})
    return rows


def state_summary(state: RdpState) -> str:
    enabled = state.rdp_enabled
    rdp = "termsrv.state.rdp_unknown" if enabled is None else (
        "termsrv.state.rdp_enabled" if enabled else "termsrv.state.rdp_disabled")
    concurrent = "termsrv.state.concurrent_on" if state.concurrent_sessions_enabled else "termsrv.state.concurrent_off"
    return "\n".join([message(rdp), message(concurrent)])


def state_document(state: RdpState) -> dict[str, object]:
    return {
        "source": state.source,
        "rdp_enabled": state.rdp_enabled,
        "concurrent_sessions_enabled": state.concurrent_sessions_enabled,
        "secrets": state.secrets,
        "settings": [{"id": found.setting.id, "key": found.setting.key, "name": found.setting.name,
                      "key_known": found.key_known, "number": found.number,
                      "type": found.value.type_name if found.value else None} for found in state.values],
    }


# collect-script

def run_collect_script(arguments: argparse.Namespace) -> int:
    """Write the XP batch file (or print it) and list the files to copy back."""
    if arguments.output is None:
        sys.stdout.write(collect_batch_text())
        return EXIT_OK
    path = Path(arguments.output)
    if path.is_dir():
        return _fail(InputError("termsrv.collect.output_is_folder", value=str(path),
                                example=str(path / "collect.cmd"),
                                next_key="termsrv.collect.output_is_folder_next"))
    if path.exists() and not arguments.force:
        return _fail(InputError("termsrv.collect.output_exists", value=str(path),
                                next_key="termsrv.collect.output_exists_next"))
    try:
        path.write_bytes(collect_batch_bytes())
    except OSError as error:
        return _fail(_write_error(path, error))
    print(message("termsrv.change.wrote", path=path))
    print(message("termsrv.collect.copy_back_heading", folder=FOLDER_PREFIX + "<COMPUTERNAME>"))
    print(render_table(copy_back_rows(), COPY_BACK_COLUMNS, _headers(COPY_BACK_COLUMNS)))
    print(message("termsrv.collect.hash_note"))
    return EXIT_OK


def copy_back_rows() -> list[dict[str, object]]:
    return [{"file": item.file, "description": item.description} for item in COPY_BACK]


# files

def run_files(arguments: argparse.Namespace) -> int:
    """Write the apply and rollback files and return 0, or 1 (already applied) or 2 without writing.

    Existing files are overwritten only with --force.
    """
    try:
        regfiles = [read_regfile(path, encoding=arguments.encoding) for path in arguments.exports]
        files = build_change_files(model_from_regfiles(regfiles),
                                   allow_multiple_sessions=arguments.allow_multiple_sessions)
    except InputError as error:
        return _fail(error)
    if files.preset:
        text = message("termsrv.change.already_applied", names=_value_list(files.preset))
        print(message("cli.error_prefix", text=text), file=sys.stderr)
        print(message("errors.next_step", step=message("termsrv.change.already_applied_next")), file=sys.stderr)
        return EXIT_PROBLEMS
    folder = Path(arguments.output_dir)
    if folder.exists() and not folder.is_dir():
        return _fail(InputError("termsrv.change.output_dir_not_folder", value=str(folder),
                                next_key="termsrv.change.output_dir_not_folder_next"))
    targets = {APPLY_FILE: files.apply, ROLLBACK_FILE: files.rollback}
    if not arguments.force:
        for name in targets:
            if (folder / name).exists():
                return _fail(InputError("termsrv.change.file_exists", value=str(folder / name),
                                        next_key="termsrv.change.file_exists_next"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _fail(InputError("termsrv.folder_create_failed", value=str(folder), reason=os_error_text(error),
                                next_key="termsrv.folder_create_failed_next"))
    for name, regfile in targets.items():
        try:
            write_regfile(folder / name, regfile)
        except OSError as error:
            return _fail(_write_error(folder / name, error))
        print(message("termsrv.change.wrote", path=folder / name))
    for note in change_notes(files):
        print(note)
    diff = files.before.diff(files.after)
    print(message("termsrv.change.summary", count=len(diff)))
    print(render_table(diff_rows(diff), CHANGE_COLUMNS, _headers(CHANGE_COLUMNS)))
    return EXIT_OK


def change_notes(files: ChangeFiles) -> list[str]:
    """Return sentences on what the export shows: an earlier apply, and values already at the target."""
    if files.preset:
        notes = [message("termsrv.change.export_shows_apply", names=_value_list(files.preset))]
    else:
        notes = [message("termsrv.change.export_before_change")]
    if files.already_set:
        notes.append(message("termsrv.change.already_set", names=_value_list(files.already_set)))
    return notes


def _value_list(names: tuple[str, ...]) -> str:
    # Every value the change sets is the DWORD 1.
    return ", ".join(f"{name} = 1" for name in names)


# plan

def _no_copies_error(folder: Path) -> InputError:
    """Return the error for a --collected folder without any termsrv.dll copy, pointing at a subfolder that has one."""
    names = ", ".join(name for _, name in DLL_COPIES)
    inside = sorted(child for child in folder.iterdir()
                    if child.is_dir() and any((child / name).is_file() for name in REPLACE_ORDER))
    if inside:
        return InputError("termsrv.plan.collected_no_copies", value=str(folder), names=names, found=str(inside[0]),
                          next_key="termsrv.plan.collected_subfolder_next")
    return InputError("termsrv.plan.collected_no_copies", value=str(folder), names=names,
                      prefix=FOLDER_PREFIX, next_key="termsrv.plan.collected_no_copies_next")


def run_plan(arguments: argparse.Namespace) -> int:
    """Print the step plan, with hashes from the collected copies and the replacement when given."""
    try:
        originals = {}
        if arguments.collected:
            folder = Path(arguments.collected)
            if not folder.is_dir():
                raise InputError("termsrv.plan.collected_missing", value=str(folder),
                                 next_key="termsrv.plan.collected_missing_next")
            for name in REPLACE_ORDER:
                if (folder / name).exists():
                    originals[name] = check_pe(folder / name)
            if not originals:
                raise _no_copies_error(folder)
        replacement = check_pe(arguments.replacement) if arguments.replacement else None
        options = {"backup_folder": arguments.backup_folder} if arguments.backup_folder else {}
        steps = step_plan(originals, replacement, **options)
    except InputError as error:
        return _fail(error)
    rows = plan_rows(steps)
    if arguments.format == "json":
        print(render_json([step.to_dict() for step in steps]))
    elif arguments.format == "csv":
        write_csv(render_csv(rows, PLAN_COLUMNS))
    else:
        # One block per step: the commands and checks are too long for columns side by side.
        print(render_blocks(rows, PLAN_COLUMNS, _headers(PLAN_COLUMNS)))
    return EXIT_OK
