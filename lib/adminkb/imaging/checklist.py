"""Checklist progress for one image build: tick steps with who, when and a note, saved as JSON.

The file is `<state_dir>/<name>.json` (default `~/.adminkb/checklists`). It is written to a
temporary file in the same folder and renamed over the old one, so a crash never leaves half a
file. Loading a corrupt or foreign file raises InputError: it never starts a blank checklist
over somebody's recorded progress.

Every change (tick, untick, note, who) rereads the file and saves it while holding an exclusive
lock on `<state_dir>/.<name>.lock`, so two processes that change the same checklist at once
both keep their changes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.imaging.steps import STEPS, Step, phases_of

log = logging.getLogger("adminkb.imaging.checklist")

FORMAT = "adminkb-checklist"
VERSION = 1
# A checklist name becomes a file name, so it takes letters (Chinese included), digits, '-', '_'
# and '.', starts with a letter or digit, and has at most 64 characters.
NAME = re.compile(r"[^\W_][\w.\-]{0,63}")
# How long a change waits for another process's change to the same checklist, in seconds. A
# change holds the lock for one read and one small write, so a wait this long means a stuck holder.
LOCK_TIMEOUT = 10.0
LOCK_POLL_INTERVAL = 0.01

if os.name == "nt":
    # NOTE: this branch has not run on Windows here (the tests run on Linux). msvcrt locks one byte
    # of the empty lock file, which Windows allows past the end of a file.
    import msvcrt

    def _try_lock(descriptor: int) -> bool:
        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(descriptor: int) -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)


def default_state_dir() -> Path:
    """Return `~/.adminkb/checklists`, where checklists live unless the user names a folder."""
    return Path.home() / ".adminkb" / "checklists"


@dataclass(frozen=True)
class Tick:
    """A record of one ticked step: the person, the time (UTC, ISO 8601) and the note."""

    who: str
    when: str
    note: str = ""


class Checklist:
    """Progress of one named image build through the imaging steps.

    Creating a Checklist loads its file when one exists. `tick` and `untick` save at once.
    """

    def __init__(self, name: str, state_dir: str | Path | None = None, steps: Sequence[Step] = STEPS) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InputError("imaging_checklist.bad_name", value=name, next_key="imaging_checklist.bad_name_next")
        self.name = name
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise InputError("imaging_checklist.state_dir_not_folder", value=str(self.state_dir),
                             next_key="imaging_checklist.state_dir_not_folder_next")
        self.path = self.state_dir / f"{name}.json"
        self.steps = tuple(steps)
        self._by_id = {step.id: step for step in self.steps}
        self.ticks: dict[str, Tick] = {}
        # Ticks for step ids this version does not know; kept and saved back unchanged.
        self.unknown_ticks: dict[str, dict] = {}
        # Notes written on steps that are not done yet, so that a note survives before its tick.
        self.open_notes: dict[str, str] = {}
        self._unknown_reported = False
        self.created = _now()
        if self.path.exists():
            self._load()

    # Progress. Each change runs inside `_change`, which rereads the file under the lock first.

    def tick(self, step_id: str, who: str, when: datetime | None = None, note: str | None = None) -> Tick:
        """Mark a step done by `who` at `when` (now when omitted), with a note, and save.

        When `note` is None, the note written on the open step (see `set_note`) is kept.
        """
        self._step(step_id)
        if not who or not who.strip():
            raise InputError("imaging_checklist.who_missing", value=step_id,
                             next_key="imaging_checklist.who_missing_next")
        if when is not None and when.tzinfo is None:
            raise InputError("imaging_checklist.naive_time", value=when.isoformat())
        stamp = (when or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="seconds")
        with self._change():
            text = self.open_notes.get(step_id, "") if note is None else note
            self.open_notes.pop(step_id, None)
            entry = Tick(who.strip(), stamp, text.strip())
            self.ticks[step_id] = entry
        log.info("checklist %s: %s ticked by %s", self.name, step_id, entry.who)
        return entry

    def untick(self, step_id: str) -> None:
        """Mark a step not done and save. The tick's note stays on the open step."""
        self._step(step_id)
        with self._change() as change:
            entry = self.ticks.pop(step_id, None)
            if entry is None:
                change.save = False
            elif entry.note:
                self.open_notes[step_id] = entry.note
        if entry is not None:
            log.info("checklist %s: %s unticked", self.name, step_id)

    def set_note(self, step_id: str, note: str) -> None:
        """Save a step's note: on its tick when the step is done, otherwise on the open step."""
        self._step(step_id)
        text = note.strip()
        with self._change():
            entry = self.ticks.get(step_id)
            if entry is not None:
                self.ticks[step_id] = Tick(entry.who, entry.when, text)
            elif text:
                self.open_notes[step_id] = text
            else:
                self.open_notes.pop(step_id, None)

    def set_who(self, step_id: str, who: str) -> None:
        """Change who completed a done step and save. The time of the tick stays as it was."""
        self._step(step_id)
        if not who or not who.strip():
            raise InputError("imaging_checklist.who_missing", value=step_id,
                             next_key="imaging_checklist.who_missing_next")
        with self._change() as change:
            entry = self.ticks.get(step_id)
            if entry is None:
                change.save = False
            else:
                self.ticks[step_id] = Tick(who.strip(), entry.when, entry.note)

    def note(self, step_id: str) -> str:
        """Return a step's note, from its tick or from the open step."""
        entry = self.ticks.get(step_id)
        return entry.note if entry is not None else self.open_notes.get(step_id, "")

    def reload(self) -> None:
        """Read the file again, so that changes saved by other processes show."""
        if self.path.exists():
            self._load()

    @contextmanager
    def _change(self) -> Iterator[_Change]:
        """Lock the file, reread it, let the caller change the progress, then save and unlock.

        The caller sets `save` to False on the yielded object when it changed nothing.
        """
        with self._locked():
            self.reload()
            saved = (dict(self.ticks), dict(self.open_notes))
            change = _Change()
            try:
                yield change
                if change.save:
                    self.save()
            except BaseException:
                # Keep the object equal to the file, which the failed change did not reach.
                self.ticks, self.open_notes = saved
                raise

    @contextmanager
    def _locked(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the exclusive lock of this checklist (`.<name>.lock` beside the file)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.state_dir / f".{self.name}.lock"
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while not _try_lock(descriptor):
                if time.monotonic() >= deadline:
                    raise InputError("imaging_checklist.locked", value=str(lock_path), seconds=timeout,
                                     next_key="imaging_checklist.locked_next")
                time.sleep(LOCK_POLL_INTERVAL)
            try:
                yield
            finally:
                _unlock(descriptor)
        finally:
            os.close(descriptor)

    def is_done(self, step_id: str) -> bool:
        return step_id in self.ticks

    @property
    def done(self) -> int:
        return len(self.ticks)

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    @property
    def phases(self) -> list[str]:
        """Return the phases of this checklist's steps, in procedure order."""
        return phases_of(self.steps)

    def steps_in(self, phase: str) -> list[Step]:
        return [step for step in self.steps if step.phase == phase]

    def phase_progress(self, phase: str) -> tuple[int, int]:
        """Return (done, total) for one phase."""
        steps = self.steps_in(phase)
        return sum(1 for step in steps if step.id in self.ticks), len(steps)

    def _step(self, step_id: str) -> Step:
        if step_id not in self._by_id:
            raise InputError("imaging_checklist.unknown_step", value=step_id,
                             next_key="imaging_checklist.unknown_step_next")
        return self._by_id[step_id]

    # Saving and loading.

    def to_document(self) -> dict[str, object]:
        """Return the JSON document saved for this checklist."""
        ticks = {step_id: {"who": entry.who, "when": entry.when, "note": entry.note}
                 for step_id, entry in self.ticks.items()}
        ticks.update(self.unknown_ticks)
        document: dict[str, object] = {"format": FORMAT, "version": VERSION, "name": self.name,
                                       "created": self.created, "ticks": dict(sorted(ticks.items()))}
        # Written only when present, so files without open notes keep the layout of earlier versions.
        if self.open_notes:
            document["notes"] = dict(sorted(self.open_notes.items()))
        return document

    def save(self) -> Path:
        """Write the checklist atomically: a temporary file in the same folder, then a rename."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_document(), ensure_ascii=False, indent=2) + "\n"
        handle, temporary = tempfile.mkstemp(prefix=f".{self.name}.", suffix=".tmp", dir=self.state_dir)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return self.path

    def _load(self) -> None:
        where = str(self.path)
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError("imaging_checklist.corrupt", value=where, reason=message("imaging_checklist.not_utf8"),
                             next_key="imaging_checklist.corrupt_next") from None
        except OSError as error:
            raise InputError("imaging_checklist.unreadable", value=where, reason=os_error_text(error)) from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            log.info("checklist %s: not valid JSON at line %d, column %d: %s", where, error.lineno, error.colno,
                     error.msg)
            raise InputError("imaging_checklist.corrupt", value=where,
                             reason=message("imaging_checklist.bad_json", line=error.lineno, column=error.colno,
                                            detail=json_error_text(error)),
                             next_key="imaging_checklist.corrupt_next") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise InputError("imaging_checklist.foreign", value=where, next_key="imaging_checklist.foreign_next")
        if document.get("version") != VERSION:
            raise InputError("imaging_checklist.version", value=where, version=document.get("version"),
                             supported=VERSION)
        if document.get("name") != self.name:
            raise InputError("imaging_checklist.other_name", value=where, found=document.get("name"),
                             expected=self.name)
        ticks = document.get("ticks")
        if not isinstance(ticks, dict):
            raise InputError("imaging_checklist.corrupt", value=where, reason=message("imaging_checklist.no_ticks"),
                             next_key="imaging_checklist.corrupt_next")
        notes = document.get("notes", {})
        if not (isinstance(notes, dict) and all(isinstance(text, str) for text in notes.values())):
            raise InputError("imaging_checklist.corrupt", value=where, reason=message("imaging_checklist.bad_notes"),
                             next_key="imaging_checklist.corrupt_next")
        self.ticks = {}
        self.unknown_ticks = {}
        # Notes of unknown steps are kept and saved back, like their ticks.
        self.open_notes = dict(notes)
        for step_id, entry in ticks.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("who"), str)
                    and isinstance(entry.get("when"), str) and isinstance(entry.get("note", ""), str)):
                raise InputError("imaging_checklist.corrupt", value=where,
                                 reason=message("imaging_checklist.bad_tick", step=step_id),
                                 next_key="imaging_checklist.corrupt_next")
            if step_id in self._by_id:
                self.ticks[step_id] = Tick(entry["who"], entry["when"], entry.get("note", ""))
            else:
                self.unknown_ticks[step_id] = entry
        if isinstance(document.get("created"), str):
            self.created = document["created"]
        if self.unknown_ticks and not self._unknown_reported:
            self._unknown_reported = True
            log.warning("checklist %s: ticks for unknown steps kept: %s", self.name, sorted(self.unknown_ticks))

    # Reports.

    def rows(self) -> list[dict[str, object]]:
        """Return one row a step, in procedure order: phase, step id, title, done, who, when, note."""
        rows = []
        for step in self.steps:
            entry = self.ticks.get(step.id)
            rows.append({"phase": step.phase_title, "step": step.id, "title": step.title,
                         "support": step.support_label,
                         "done": entry is not None, "who": entry.who if entry else "",
                         "when": entry.when if entry else "", "note": entry.note if entry else ""})
        return rows

    def to_markdown(self) -> str:
        """Render the checklist as a Markdown report: progress, then one table a phase."""
        lines = [f"# {message('imaging_checklist.report_title', name=self.name)}", "",
                 message("imaging_checklist.progress", done=self.done, total=self.total), ""]
        header = [message(f"imaging_checklist.column_{column}") for column in ("done", "step", "title", "who", "when",
                                                                               "note")]
        for phase in self.phases:
            steps = self.steps_in(phase)
            lines += [f"## {steps[0].phase_title}", "", "| " + " | ".join(header) + " |",
                      "|" + "---|" * len(header)]
            for step in steps:
                entry = self.ticks.get(step.id)
                title = step.title
                if step.support != "supported":
                    title = f"{title} ({step.support_label})"
                cells = ["[x]" if entry else "[ ]", f"`{step.id}`", title, entry.who if entry else "",
                         entry.when if entry else "", entry.note if entry else ""]
                lines.append("| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |")
            lines.append("")
        return "\n".join(lines)


@dataclass
class _Change:
    """The request of a change inside `Checklist._change`: whether to save when it ends."""

    save: bool = True


# The start of each message the standard json module raises, and the catalog key that words it.
_JSON_ERRORS = (
    ("Expecting value", "expecting_value"),
    ("Expecting property name", "expecting_name"),
    ("Expecting ':' delimiter", "expecting_colon"),
    ("Expecting ',' delimiter", "expecting_comma"),
    ("Unterminated string", "unterminated_string"),
    ("Extra data", "extra_data"),
    ("Invalid \\uXXXX escape", "bad_unicode_escape"),
    ("Invalid \\escape", "bad_escape"),
    ("Invalid control character", "control_character"),
    ("Illegal trailing comma", "trailing_comma"),
)


def json_error_text(error: json.JSONDecodeError) -> str:
    """Return what the JSON parser found wrong, in the user's language.

    A message the table does not know gives a general sentence, and the log keeps the original.
    """
    for start, key in _JSON_ERRORS:
        if error.msg.startswith(start):
            return message(f"imaging_checklist.json_error.{key}")
    return message("imaging_checklist.json_error.other")


def _markdown_cell(text: str) -> str:
    """Escape what would break a Markdown table cell: backslashes, pipes and line breaks."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
