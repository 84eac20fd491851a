"""The imaging checklist as ipywidgets: a row a step, saved to the state file on every change.

Each row has a tick box (the step title), who completed it (default: the operating-system
account), a note, the time of the tick, and the step's reason, commands, check and warning in a
collapsed accordion. Each phase has a progress bar. Every change goes through
`adminkb.imaging.checklist.Checklist`, which saves atomically under a lock, so reopening the
notebook (or a new kernel) shows the saved state. A corrupt or foreign state file raises
InputError when the widget is opened: it never shows a blank checklist.
"""

from __future__ import annotations

import atexit
import getpass
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import ipywidgets as widgets
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_string import HTMLStyle, TextStyle

from adminkb.errors import AdminKbError, InputError, os_error_text
from adminkb.i18n import message
from adminkb.imaging.checklist import Checklist
from adminkb.imaging.steps import STEPS, SUPPORTED, Step
from adminkb.ui.checklist_html import checklist_html, checklist_page, step_details_html, summary_text

log = logging.getLogger("adminkb.ui.checklist")

# Passing this as `state_dir` puts the state in a new temporary folder: the runbooks' lab mode,
# where every run starts from an empty checklist and never touches a user's saved progress.
LAB_STATE_DIR = "lab"
# The time recorded for ticks in lab mode: the fixed lab clock keeps the runbook's output the same
# on every run.
LAB_TIME = datetime(2026, 3, 2, 1, 15, 0, tzinfo=timezone.utc)


def open_checklist(name: str, state_dir: str | os.PathLike[str] | None = None, *, steps: Sequence[Step] = STEPS,
                   who: str | None = None, clock: Callable[[], datetime] | None = None) -> ChecklistWidget:
    """Open (or start) the checklist `name` and return its widget.

    `state_dir` is the folder of the state file (default `~/.adminkb/checklists`). With
    `LAB_STATE_DIR` the state goes to a new temporary folder, the default name for who ticks a
    step is the lab technician, and ticks record the fixed lab time unless `who` and `clock` are given.
    """
    if state_dir is not None and str(state_dir) == LAB_STATE_DIR:
        state_dir = tempfile.mkdtemp(prefix="adminkb-checklist-")
        # Lab progress is thrown away with the kernel, like the rest of the lab.
        atexit.register(shutil.rmtree, state_dir, ignore_errors=True)
        who = who if who is not None else message("ui.checklist.lab_who")
        clock = clock or (lambda: LAB_TIME)
    checklist = Checklist(name, state_dir, steps=steps)
    return ChecklistWidget(checklist, who=who, clock=clock)


def account_name() -> str:
    """Return the operating-system account name, or "" when the system does not tell."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


@dataclass
class StepRow:
    """The widgets of one step."""

    step: Step
    checkbox: widgets.Checkbox
    who: widgets.Text
    note: widgets.Textarea
    when: widgets.HTML
    details: widgets.HTML
    box: widgets.VBox


class ChecklistWidget(widgets.VBox):
    """A checklist view whose every change is saved at once to the checklist's state file."""

    def __init__(self, checklist: Checklist, *, who: str | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.checklist = checklist
        self.default_who = who if who is not None else account_name()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        # True while the view is being set from the saved state, so the observers ignore those events.
        self._syncing = False

        self.summary = widgets.HTML()
        self.message = widgets.HTML()
        self.markdown_button = widgets.Button(description=message("ui.checklist.export_markdown"), icon="download")
        self.html_button = widgets.Button(description=message("ui.checklist.export_html"), icon="download")
        self.markdown_button.on_click(lambda _button: self._export(self.export_markdown))
        self.html_button.on_click(lambda _button: self._export(self.export_html))

        self._layouts = {
            "checkbox": widgets.Layout(width="40%"), "who": widgets.Layout(width="10em"),
            "note": widgets.Layout(width="30%"), "when": widgets.Layout(), "details": widgets.Layout(margin="0 0 0 2em"),
            "row": widgets.Layout(), "box": widgets.Layout(), "bar": widgets.Layout(width="12em"),
        }
        self._styles = {"checkbox": CheckboxStyle(), "text": TextStyle(), "html": HTMLStyle()}
        self.rows: dict[str, StepRow] = {}
        self.phase_bars: dict[str, widgets.IntProgress] = {}
        self.phase_counts: dict[str, widgets.Label] = {}
        sections = []
        for phase in checklist.phases:
            steps = checklist.steps_in(phase)
            bar = widgets.IntProgress(min=0, max=len(steps), layout=self._layouts["bar"])
            count = widgets.Label()
            self.phase_bars[phase] = bar
            self.phase_counts[phase] = count
            heading = widgets.HBox([widgets.HTML(f"<b>{escape(steps[0].phase_title)}</b>"), bar, count])
            sections.append(heading)
            for step in steps:
                row = self._build_row(step)
                self.rows[step.id] = row
                sections.append(row.box)

        buttons = widgets.HBox([self.markdown_button, self.html_button])
        super().__init__([self.summary, buttons, self.message, *sections])
        self.refresh()

    # Building.

    def _build_row(self, step: Step) -> StepRow:
        title = step.title
        if step.support != SUPPORTED:
            title = message("ui.checklist.title_with_support", title=step.title, support=step.support_label)
        # Rows share their layout and style objects, so a notebook stores one widget model for each
        # instead of one a row (the stored notebook would otherwise grow by hundreds of models).
        checkbox = widgets.Checkbox(description=title, indent=False, layout=self._layouts["checkbox"],
                                    style=self._styles["checkbox"])
        who = widgets.Text(placeholder=message("ui.checklist.who_placeholder"), continuous_update=False,
                           layout=self._layouts["who"], style=self._styles["text"])
        note = widgets.Textarea(placeholder=message("ui.checklist.note_placeholder"), continuous_update=False,
                                rows=1, layout=self._layouts["note"], style=self._styles["text"])
        when = widgets.HTML(layout=self._layouts["when"], style=self._styles["html"])
        # The browser's own <details> element collapses the reason, commands and check.
        details = widgets.HTML(f"<details><summary>{escape(message('ui.checklist.details_title'))}</summary>"
                               f"{step_details_html(step)}</details>", layout=self._layouts["details"],
                               style=self._styles["html"])
        checkbox.observe(lambda change: self._on_tick(step.id, change["new"]), names="value")
        who.observe(lambda change: self._on_who(step.id, change["new"]), names="value")
        note.observe(lambda change: self._on_note(step.id, change["new"]), names="value")
        box = widgets.VBox([widgets.HBox([checkbox, who, note, when], layout=self._layouts["row"]), details],
                           layout=self._layouts["box"])
        return StepRow(step, checkbox, who, note, when, details, box)

    # Changes from the view. Each one saves through the checklist, then redraws from its state.

    def tick(self, step_id: str, *, note: str | None = None, who: str | None = None) -> None:
        """Tick a step as the tick box does, optionally setting the note and who first."""
        row = self._row(step_id)
        if who is not None:
            row.who.value = who
        if note is not None:
            row.note.value = note
        row.checkbox.value = True

    def untick(self, step_id: str) -> None:
        """Clear a step's tick box."""
        self._row(step_id).checkbox.value = False

    def _on_tick(self, step_id: str, ticked: bool) -> None:
        if self._syncing:
            return
        row = self.rows[step_id]
        if ticked:
            who = row.who.value.strip() or self.default_who
            self._save(lambda: self.checklist.tick(step_id, who, when=self.clock(), note=row.note.value))
        else:
            self._save(lambda: self.checklist.untick(step_id))

    def _on_who(self, step_id: str, who: str) -> None:
        if self._syncing or not self.checklist.is_done(step_id):
            return
        self._save(lambda: self.checklist.set_who(step_id, who))

    def _on_note(self, step_id: str, note: str) -> None:
        if self._syncing:
            return
        self._save(lambda: self.checklist.set_note(step_id, note))

    def _save(self, change: Callable[[], object]) -> None:
        """Run one change, show its error in the view when it fails, and redraw from the saved state."""
        try:
            change()
        except AdminKbError as error:
            log.warning("checklist %s: change not saved: %s", self.checklist.name, error)
            self._show_error(str(error))
        except OSError as error:
            log.warning("checklist %s: saving %s failed: %s", self.checklist.name, self.checklist.path, error)
            self._show_error(message("ui.checklist.save_failed", path=self.checklist.path,
                                     reason=os_error_text(error)))
        else:
            self.message.value = ""
        self.refresh()

    def _show_error(self, text: str) -> None:
        self.message.value = f"<span style=\"color:#a40e26\">{escape(text)}</span>"

    def _row(self, step_id: str) -> StepRow:
        if step_id not in self.rows:
            raise InputError("imaging_checklist.unknown_step", value=step_id,
                             next_key="imaging_checklist.unknown_step_next")
        return self.rows[step_id]

    # Showing the saved state.

    def refresh(self) -> None:
        """Set every widget from the checklist's state as last loaded or saved."""
        self._syncing = True
        try:
            for step_id, row in self.rows.items():
                entry = self.checklist.ticks.get(step_id)
                row.checkbox.value = entry is not None
                row.who.value = entry.who if entry else (row.who.value or self.default_who)
                row.note.value = self.checklist.note(step_id)
                row.when.value = escape(entry.when) if entry else ""
            for phase, bar in self.phase_bars.items():
                done, total = self.checklist.phase_progress(phase)
                bar.value = done
                bar.bar_style = "success" if done == total else ""
                self.phase_counts[phase].value = f"{done}/{total}"
            self.summary.value = f"<b>{escape(summary_text(self.checklist))}</b>"
        finally:
            self._syncing = False

    def reload(self) -> None:
        """Read the state file again (to show changes saved elsewhere) and redraw."""
        self.checklist.reload()
        self.refresh()

    # Exports.

    def export_markdown(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the Markdown report (default `<state_dir>/<name>.md`) atomically and return its path."""
        target = Path(path) if path is not None else self.checklist.state_dir / f"{self.checklist.name}.md"
        return _write_atomic(target, self.checklist.to_markdown())

    def export_html(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the HTML report (default `<state_dir>/<name>.html`) atomically and return its path."""
        target = Path(path) if path is not None else self.checklist.state_dir / f"{self.checklist.name}.html"
        return _write_atomic(target, checklist_page(self.checklist))

    def _export(self, write: Callable[[], Path]) -> None:
        try:
            path = write()
        except OSError as error:
            log.warning("checklist %s: export failed: %s", self.checklist.name, error)
            self._show_error(message("ui.checklist.export_failed", reason=os_error_text(error)))
            return
        log.info("checklist %s: report written to %s", self.checklist.name, path)
        self.message.value = escape(message("ui.checklist.exported", path=path))

    def report(self) -> StaticReport:
        """Return the saved state as a static table, which exported HTML pages show without widgets."""
        return StaticReport(self.checklist)

    # Display.

    def __repr__(self) -> str:
        return summary_text(self.checklist)

    def _repr_mimebundle_(self, **kwargs: object) -> dict[str, object]:
        data = super()._repr_mimebundle_(**kwargs)
        # ipywidgets cuts text/plain at 110 characters. The summary is the whole plain form.
        data["text/plain"] = repr(self)
        data["text/html"] = checklist_html(self.checklist, details=False)
        return data


class StaticReport:
    """The checklist's saved state as HTML and plain text, with no widget."""

    def __init__(self, checklist: Checklist) -> None:
        self.checklist = checklist

    def __repr__(self) -> str:
        lines = [summary_text(self.checklist)]
        for phase in self.checklist.phases:
            done, total = self.checklist.phase_progress(phase)
            title = self.checklist.steps_in(phase)[0].phase_title
            lines.append(message("ui.checklist.phase_progress", phase=title, done=done, total=total))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return checklist_html(self.checklist)


def _write_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 text to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


