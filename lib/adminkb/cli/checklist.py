"""`adminkb checklist NAME`: show and update an image build's checklist.

Exit status: 0 every step is done, 1 some steps are open, 2 the input or the file cannot be used.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from adminkb.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROBLEMS, add_help_option
from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.imaging.checklist import Checklist
from adminkb.output import render_csv, render_json, render_table, write_csv

FORMATS = ("table", "json", "csv", "markdown", "html")
TABLE_COLUMNS = ("done", "step", "title", "who", "when", "note")
CSV_COLUMNS = ("phase", "step", "title", "support", "done", "who", "when", "note")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("checklist", add_help=False, help=message("imaging_checklist.cli.help"),
                                   description=message("imaging_checklist.cli.description"),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_help_option(parser)
    parser.add_argument("name", metavar="NAME", help=message("imaging_checklist.cli.name_help"))
    parser.add_argument("--state-dir", metavar="DIR", default=None, help=message("imaging_checklist.cli.state_dir_help"))
    parser.add_argument("--tick", metavar="STEP", action="append", default=[],
                        help=message("imaging_checklist.cli.tick_help"))
    parser.add_argument("--untick", metavar="STEP", action="append", default=[],
                        help=message("imaging_checklist.cli.untick_help"))
    parser.add_argument("--who", default=None, help=message("imaging_checklist.cli.who_help"))
    parser.add_argument("--note", default="", help=message("imaging_checklist.cli.note_help"))
    parser.add_argument("--format", choices=FORMATS, default="table", help=message("imaging_checklist.cli.format_help"))
    parser.set_defaults(handler=run_checklist)


def _account_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        # No USERNAME/LOGNAME variable and no password-database entry: the caller must pass --who.
        return ""


def run_checklist(arguments: argparse.Namespace) -> int:
    """Apply --tick/--untick, print the checklist, and return 0 (all done), 1 (steps open) or 2."""
    try:
        both = sorted(set(arguments.tick) & set(arguments.untick))
        if both:
            # Ticking and unticking one step in the same command cannot both be meant.
            raise InputError("imaging_checklist.cli.tick_and_untick", value=", ".join(both),
                             next_key="imaging_checklist.cli.tick_and_untick_next")
        checklist = Checklist(arguments.name, arguments.state_dir)
        who = arguments.who if arguments.who is not None else _account_name()
        for step_id in arguments.tick:
            checklist.tick(step_id, who, note=arguments.note)
        for step_id in arguments.untick:
            checklist.untick(step_id)
    except InputError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = checklist.rows()
    if arguments.format == "json":
        print(render_json({**checklist.to_document(), "file": str(checklist.path), "done": checklist.done,
                           "total": checklist.total}))
    elif arguments.format == "csv":
        write_csv(render_csv(rows, CSV_COLUMNS))
    elif arguments.format == "markdown":
        print(checklist.to_markdown())
    elif arguments.format == "html":
        # Imported here so that the other formats do not load the presentation package.
        from adminkb.ui.checklist_html import checklist_page

        sys.stdout.write(checklist_page(checklist))
    else:
        print(render_text(checklist, rows))
    return EXIT_OK if checklist.complete else EXIT_PROBLEMS


def render_text(checklist: Checklist, rows: list[dict[str, object]]) -> str:
    """Render the progress line, one table a phase, and a note on kept unknown records."""
    parts = [f"{checklist.name} ({checklist.path})",
             message("imaging_checklist.progress", done=checklist.done, total=checklist.total)]
    headers = {column: message(f"imaging_checklist.column_{column}") for column in TABLE_COLUMNS}
    phase = None
    phase_rows: list[dict[str, object]] = []
    for row in rows:
        if row["phase"] != phase and phase_rows:
            parts += ["", f"[{phase}]", render_table(phase_rows, TABLE_COLUMNS, headers)]
            phase_rows = []
        phase = row["phase"]
        mark = message("imaging_checklist.mark_done" if row["done"] else "imaging_checklist.mark_open")
        phase_rows.append({**row, "done": mark})
    if phase_rows:
        parts += ["", f"[{phase}]", render_table(phase_rows, TABLE_COLUMNS, headers)]
    if checklist.unknown_ticks:
        parts += ["", message("imaging_checklist.unknown_kept", count=len(checklist.unknown_ticks),
                              steps=", ".join(sorted(checklist.unknown_ticks)))]
    return "\n".join(parts)
