"""Safe operations on a mailroot: archive old Badmail files, and resubmit messages into Pickup.

Every operation is planned first (`plan_archive`, `plan_resubmit`), which changes nothing and
is the dry run. `execute` then carries the plan out and writes a journal of JSON lines, one
fsynced line for each step before the next starts, under `~/.adminkb/journals` or a folder the
caller names. A run that is interrupted at any point (a crash, a kill, a full disk) leaves each
file either where it was or where it went, and `resume` finishes the job from the journal:

- An archive into a folder on the same volume renames each file, which is atomic. Across
  volumes a file is copied under a temporary name, fsynced and linked into place (renamed,
  after a check that the name is free, on a FAT or exFAT disk) before the original is removed.
  So between those two steps it exists in both places, and the rerun removes the original after
  comparing the two.
- An archive into a zip writes the whole zip under a `.partial` name, renames it into place,
  and only then removes the originals. Until the rerun removes them, they exist both in the
  zip and in Badmail, and never in neither.
- A resubmission copies the message into a staging file in the folder that contains Pickup's
  real location, normally the mailroot itself (the service does not watch it, and it is on
  Pickup's volume), journals that, and renames the staging file into Pickup. A staging file
  that is gone after a crash was renamed, so the rerun never puts a message into Pickup twice, even after the service has already picked it up.
  A file that a finished journal already resubmitted (same source path, size and modification
  time, or same Message-ID) is rejected unless the caller passes `again=True`. So running the
  same command twice does not send the message twice either, also when the mailroot is named
  through a link or "..". A journal folder with a damaged journal stops every operation until
  that journal is moved away, because it may record an earlier resubmit.
  NOTE: the check reads only the journal folder in use, so a run with another state folder
  (--state-dir) can send a message again.

Queue files are never touched: the service keeps them open while it works on them.
"""

from __future__ import annotations

import email.policy
import errno
import hashlib
import json
import logging
import os
import signal
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path

import pandas as pd

from adminkb import mailroot, pickup
from adminkb.errors import AdminKbError, InputError, os_error_text
from adminkb.i18n import message
from adminkb.mailroot_read import display_name

log = logging.getLogger("adminkb.mailroot_ops")

ARCHIVE = "archive"
RESUBMIT = "resubmit"
# Step actions: a rename (or copy across volumes) into a folder, a member of a zip, a copy into Pickup.
MOVE = "move"
ZIP = "zip"
COPY_TO_PICKUP = "copy_to_pickup"

# The kill test sets this to `<point>:<n>` (for example `renamed:5`): the process then kills
# itself with SIGKILL the n-th time it reaches that point, to prove a rerun completes the job.
CRASH_ENV = "ADMINKB_OPS_CRASH_AT"
JOURNAL_VERSION = 1
_STAGING_PREFIX = ".adminkb-resubmit-"
# NTFS allows 255 UTF-16 units in a file name, ext4 and XFS 255 bytes. UTF-8 never takes fewer
# bytes than UTF-16 takes units, so a name of at most 255 UTF-8 bytes fits all three.
_MAX_NAME_BYTES = 255
_PICKUP_PREFIX = "resubmit-"
_PICKUP_SUFFIX = ".eml"
_MAX_PICKUP_NUMBER = 999
_COPY_CHUNK = 1024 * 1024
# Files an error or note lists by name. The rest are counted, so that a run over thousands of
# files does not print a line of hundreds of kilobytes.
MAX_LISTED_FILES = 10
# Envelope lines at the top of Drop and Badmail files, as the service writes them.
_crash_counts: dict[str, int] = {}


@dataclass(frozen=True)
class Step:
    """One file an operation handles: where it is (relative to the mailroot) and where it goes.

    `target` is a path relative to the archive folder, a zip member name, or a Pickup file name.
    `sender` and `recipients` are the envelope a resubmitted message gets. `mtime_ns` (the
    source's modification time in nanoseconds) and `message_id` identify a resubmitted source
    in later runs. Journals written before these fields existed read them as 0 and "".
    """

    action: str
    source: str
    target: str
    size: int
    sender: str = ""
    recipients: tuple[str, ...] = ()
    mtime_ns: int = 0
    message_id: str = ""


@dataclass(frozen=True)
class EarlierResubmit:
    """A source of a resubmit plan that a finished journal records as already copied into Pickup."""

    source: str
    journal: Path
    finished_at: datetime

    def describe(self) -> str:
        """Return the source, the UTC time its journal finished and the journal path, on one line."""
        return f"{display_name(self.source)} ({self.finished_at:%Y-%m-%d %H:%M:%S} UTC, {self.journal})"


def describe_earlier_resubmits(earlier: Sequence[EarlierResubmit]) -> str:
    """Return the first MAX_LISTED_FILES earlier resubmits, one per indented line, then "and N more" for the rest."""
    lines = [item.describe() for item in earlier[:MAX_LISTED_FILES]]
    if len(earlier) > MAX_LISTED_FILES:
        lines.append(message("mailroot_ops.and_more", count=len(earlier) - MAX_LISTED_FILES))
    return "".join(f"\n  {line}" for line in lines)


@dataclass
class Plan:
    """An operation's plan: the mailroot, the destination (folder, zip or Pickup) and the steps."""

    operation: str
    mailroot: Path
    destination: Path
    steps: list[Step]

    def table(self) -> pd.DataFrame:
        """Return the steps as a table: action, source, target, size, and for a resubmission the envelope.

        Bytes of a file name or address that are not UTF-8 are shown as \\xNN (see `display_name`).
        """
        columns = ["action", "source", "target", "size"]
        if self.operation == RESUBMIT:
            columns += ["sender", "recipients"]
        rows = [{"action": step.action, "source": display_name(step.source), "target": display_name(step.target),
                 "size": step.size, "sender": display_name(step.sender),
                 "recipients": [display_name(recipient) for recipient in step.recipients]}
                for step in self.steps]
        return pd.DataFrame(rows, columns=columns)


class OperationStopped(InputError):
    """An error that stopped `execute` or `resume`, followed by what the journal records as done.

    `key`, `value` and the other values are those of the error that stopped the run, so callers
    can check them as before. `progress` lists catalog keys, with their values, of the sentences
    added after the error's own text.
    """

    def __init__(self, error: AdminKbError, progress: list[tuple[str, dict[str, object]]],
                 next_key: str | None) -> None:
        self.progress = progress
        values = {name: value for name, value in error.values.items() if name not in ("value", "where")}
        super().__init__(error.key, value=error.value, where=error.where, next_key=next_key, **values)

    def describe(self) -> str:
        """Return what failed, what was already done, and the next step, in the user's language."""
        text = message(self.key, **self.values)
        if self.where:
            text = message("errors.where", text=text, where=self.where)
        for key, values in self.progress:
            text = message("mailroot_ops.progress.join", first=text, second=message(key, **values))
        if self.next_key:
            text = f"{text}\n{message('errors.next_step', step=message(self.next_key, **self.values))}"
        return text


class OperationInterrupted(KeyboardInterrupt):
    """Ctrl+C or SIGTERM stopped `execute` or `resume`, leaving `journal` unfinished.

    The message, in the user's language, names the journal and the next step: running the same
    command again finishes the job from it.
    """

    def __init__(self, operation: str, journal: Path) -> None:
        self.operation = operation
        self.journal = journal
        super().__init__(message(f"mailroot_ops.interrupted.{operation}", journal=journal))


@dataclass
class Outcome:
    """The result of `execute` or `resume`: the journal, the steps done and the sources that had vanished."""

    plan: Plan
    journal: Path
    done: int
    missing: list[str] = field(default_factory=list)
    resumed: bool = False


def default_journal_dir() -> Path:
    """Return `~/.adminkb/journals`, where journals are written unless the user names a folder."""
    return Path.home() / ".adminkb" / "journals"


# Planning: checks every input and changes nothing.

def plan_archive(root: str | os.PathLike[str], older_than_days: float, *, to: str | os.PathLike[str] | None = None,
                 zip_file: str | os.PathLike[str] | None = None, now: datetime | None = None) -> Plan:
    """Plan moving the Badmail files older than `older_than_days` days into a dated folder or a zip.

    The folder is `to/<YYYY-MM-DD>` (default `<mailroot>/BadmailArchive/<YYYY-MM-DD>`, dated by
    `now`), or `zip_file`, which must not exist yet. The files of one `.BAD`/`.BDP`/`.BDR`
    triple are archived together, once every one of them is old enough.
    """
    root_path = _mailroot(root)
    if older_than_days < 0 or older_than_days != older_than_days:
        raise InputError("mailroot_ops.bad_age", value=older_than_days, next_key="mailroot_ops.bad_age_next")
    if to is not None and zip_file is not None:
        raise InputError("mailroot_ops.folder_and_zip", value=f"{to}, {zip_file}",
                         next_key="mailroot_ops.folder_and_zip_next")
    badmail = root_path / mailroot.BADMAIL
    if not badmail.is_dir():
        raise InputError("mailroot_ops.no_badmail", value=str(badmail), next_key="mailroot_ops.no_badmail_next")
    instant = now or datetime.now(timezone.utc)
    cutoff = (instant - timedelta(days=older_than_days)).timestamp()

    groups: dict[str, list[os.DirEntry[str]]] = {}
    with os.scandir(badmail) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and not mailroot.is_temporary_file_name(entry.name):
                groups.setdefault(entry.name.rsplit(".", 1)[0].lower(), []).append(entry)
    chosen = sorted((entry for group in groups.values()
                     if all(entry.stat().st_mtime < cutoff for entry in group) for entry in group),
                    key=lambda entry: entry.name.lower())

    if zip_file is not None:
        destination = Path(zip_file).absolute()
        _check_not_service_folder(root_path, destination.parent)
        _check_zip_destination(destination)
        # A zip member name must be UTF-8, so bytes of a file name that are not get their \xNN form.
        # NOTE: a name that contains the text \xff then gets the same member name as the one with
        # the byte 0xFF there, and the check against the zip stops the run before either is removed.
        steps = [Step(ZIP, f"{mailroot.BADMAIL}/{entry.name}", f"{mailroot.BADMAIL}/{display_name(entry.name)}",
                      entry.stat().st_size) for entry in chosen]
    else:
        base = Path(to).absolute() if to is not None else root_path / "BadmailArchive"
        if base.exists() and not base.is_dir():
            raise InputError("mailroot_ops.destination_not_folder", value=str(base),
                             next_key="mailroot_ops.destination_not_folder_next")
        destination = base / instant.strftime("%Y-%m-%d")
        _check_not_queue(root_path, destination)
        _check_not_service_folder(root_path, destination)
        steps = []
        for entry in chosen:
            if (destination / entry.name).exists():
                raise InputError("mailroot_ops.target_exists", value=display_name(str(destination / entry.name)),
                                 next_key="mailroot_ops.target_exists_next")
            steps.append(Step(MOVE, f"{mailroot.BADMAIL}/{entry.name}", entry.name, entry.stat().st_size))
    return Plan(ARCHIVE, root_path, destination, steps)


def plan_resubmit(root: str | os.PathLike[str], files: Sequence[str | os.PathLike[str]]) -> Plan:
    """Plan copying messages from Badmail or Drop into Pickup, keeping the originals.

    A `.BAD` that is a delivery status notification (an NDR) is replaced by the original
    message it carries, addressed to the recipients that failed. Any other `.BAD` or Drop file
    is resubmitted as it is, with its envelope lines or, without them, its From, To and Cc.
    Each file is read now, so an unreadable or unusable file fails the plan before anything changes.
    """
    root_path = _mailroot(root)
    pickup_folder = root_path / mailroot.PICKUP
    if not pickup_folder.is_dir():
        raise InputError("pickup.folder_missing", value=str(pickup_folder), next_key="pickup.folder_missing_next")
    if not files:
        raise InputError("mailroot_ops.no_files", next_key="mailroot_ops.no_files_next")
    staging = _staging_folder(pickup_folder)
    if os.stat(staging).st_dev != os.stat(pickup_folder).st_dev:
        # Pickup is the root of its own volume, so no folder on that volume lies outside it.
        raise InputError("pickup.staging_other_volume", value=str(staging), folder=str(pickup_folder),
                         next_key="mailroot_ops.pickup_volume_root_next")
    steps = []
    taken: set[str] = set()
    # Each file once: by device and inode, which also catches hard links, or by path where the
    # file system gives no inode number.
    seen: set[object] = set()
    messages: dict[tuple[str, tuple[str, ...]], str] = {}
    for file in files:
        source = _resubmit_source(root_path, Path(file))
        status = (root_path / source).stat()
        identity = (status.st_dev, status.st_ino) if status.st_ino else os.path.normcase(source)
        if identity in seen:
            # NTFS_x.BAD and Badmail/NTFS_x.BAD, or two hard links, are one message.
            log.info("resubmit source %s names a file given before, so it is copied once", source)
            continue
        seen.add(identity)
        sender, recipients, data = resubmit_content(root_path / source)
        message_id = _message_id(data)
        if message_id:
            # Two NDRs of one message for the same failed recipients would deliver it twice.
            # NDRs for different recipients are fine: each sends to its own.
            key = (message_id, tuple(sorted(address.lower() for address in recipients)))
            if key in messages:
                raise InputError("mailroot_ops.same_message_twice", value=f"{messages[key]}, {source}",
                                 next_key="mailroot_ops.same_message_twice_next")
            messages[key] = source
        target = _pickup_name(pickup_folder, source, taken)
        taken.add(target.lower())
        steps.append(Step(COPY_TO_PICKUP, source, target, status.st_size, sender, tuple(recipients),
                          status.st_mtime_ns, message_id))
    return Plan(RESUBMIT, root_path, pickup_folder, steps)


def _mailroot(root: str | os.PathLike[str]) -> Path:
    # Links and ".." are resolved, so that the journals of one mailroot match however it is spelt.
    root_path = Path(os.path.realpath(root))
    if not root_path.is_dir():
        raise InputError("mailroot.scan_root_missing", value=str(root_path), next_key="mailroot.scan_root_missing_next")
    _check_not_queue(root_path, root_path)
    return root_path


def _check_not_queue(root: Path, path: Path) -> None:
    """Raise InputError when `path` is a Queue folder or lies inside the mailroot's Queue."""
    if path.name.lower() == mailroot.QUEUE.lower() or _is_within(path, root / mailroot.QUEUE):
        raise InputError("mailroot_ops.queue_refused", value=str(path), next_key="mailroot_ops.queue_refused_next")


def _is_within(path: Path, folder: Path) -> bool:
    resolved_path = os.path.normcase(os.path.realpath(path))
    resolved_folder = os.path.normcase(os.path.realpath(folder))
    return resolved_path == resolved_folder or resolved_path.startswith(resolved_folder + os.sep)


def _check_not_service_folder(root: Path, path: Path) -> None:
    """Raise InputError when `path` is one of the mailroot's service folders or lies inside one."""
    for folder in mailroot.FOLDER_NAMES:
        if _is_within(path, root / folder):
            raise InputError("mailroot_ops.service_folder_refused", value=str(path), folder=folder,
                             next_key="mailroot_ops.service_folder_refused_next")


def _check_zip_destination(destination: Path) -> None:
    # The zip is written as <name>.partial first, so a file of that name must not be lost either.
    for path in (destination, _partial_zip(destination)):
        # lexists: a link to a missing file counts too, because writing through it would put
        # the zip wherever it points (into Pickup, say).
        if os.path.lexists(path):
            raise InputError("mailroot_ops.target_exists", value=str(path),
                             next_key="mailroot_ops.target_exists_next")
    if not destination.parent.is_dir():
        raise InputError("mailroot_ops.destination_missing", value=str(destination.parent),
                         next_key="mailroot_ops.destination_missing_next")


def _resubmit_source(root: Path, file: Path) -> str:
    """Return `file` as a path relative to `root` (with / separators), checking that it may be resubmitted."""
    candidate = file if file.is_absolute() else (Path.cwd() / file)
    if not candidate.exists() and not file.is_absolute():
        # A path relative to the mailroot (Badmail/NTFS_....BAD) is found there, and a bare name
        # such as NTFS_....BAD is looked up in Badmail, then in Drop.
        for folder in (root, root / mailroot.BADMAIL, root / mailroot.DROP):
            if (folder / file).exists():
                candidate = folder / file
                break
    if _is_within(candidate, root / mailroot.QUEUE):
        raise InputError("mailroot_ops.queue_refused", value=str(file), next_key="mailroot_ops.queue_refused_next")
    if not candidate.is_file():
        raise InputError("mailroot_ops.file_missing", value=str(file), root=str(root),
                         next_key="mailroot_ops.file_missing_next")
    folder = next((name for name in (mailroot.BADMAIL, mailroot.DROP) if _is_within(candidate, root / name)), None)
    if folder is None:
        raise InputError("mailroot_ops.not_resubmittable", value=str(file),
                         next_key="mailroot_ops.not_resubmittable_next")
    if candidate.suffix.lower() in (".bdr", ".bdp"):
        raise InputError("mailroot_ops.reason_file", value=str(file), next_key="mailroot_ops.reason_file_next")
    return Path(os.path.relpath(os.path.realpath(candidate), root)).as_posix()


def _pickup_name(pickup_folder: Path, source: str, taken: set[str]) -> str:
    """Return a Pickup file name for `source` that no file in Pickup and no earlier step uses.

    The name is `resubmit-<stem>.eml`, then `resubmit-<stem>-2.eml` and so on, with the stem
    cut so that even the longest numbered name fits in _MAX_NAME_BYTES.
    """
    room = _MAX_NAME_BYTES - len(f"{_PICKUP_PREFIX}-{_MAX_PICKUP_NUMBER}{_PICKUP_SUFFIX}")
    stem = _cut_to_bytes(Path(source).name.rsplit(".", 1)[0], room)
    for number in range(1, _MAX_PICKUP_NUMBER + 1):
        suffix = _PICKUP_SUFFIX if number == 1 else f"-{number}{_PICKUP_SUFFIX}"
        name = f"{_PICKUP_PREFIX}{stem}{suffix}"
        if name.lower() not in taken and not (pickup_folder / name).exists():
            return name
    raise InputError("mailroot_ops.target_exists",
                     value=display_name(str(pickup_folder / f"{_PICKUP_PREFIX}{stem}{_PICKUP_SUFFIX}")),
                     next_key="mailroot_ops.target_exists_next")


def _cut_to_bytes(text: str, limit: int) -> str:
    """Return the longest start of `text` whose file-system encoding takes at most `limit` bytes.

    The cut falls between characters, never inside one. A byte that is not UTF-8 (a lone
    surrogate from surrogateescape) counts as the one byte it stands for.
    """
    size = 0
    for index, character in enumerate(text):
        size += len(os.fsencode(character))
        if size > limit:
            return text[:index]
    return text


# The bytes a resubmitted message is written with.

def resubmit_content(path: Path) -> tuple[str, list[str], bytes]:
    """Return the envelope sender, the recipients and the Pickup file bytes for resubmitting `path`.

    Raises InputError when the file cannot be read, when an NDR carries only the original's
    headers, or when no recipient can be found.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError("mailroot_ops.unreadable", value=str(path), detail=os_error_text(error),
                         next_key="mailroot_ops.unreadable_next") from error
    sender, recipients, offset = mailroot.split_envelope(data)
    content = data[offset:]
    parsed = BytesParser(policy=email.policy.compat32).parsebytes(content)
    if parsed.get_content_type() == "multipart/report" and \
            (parsed.get_param("report-type") or "").lower() == "delivery-status":
        sender, recipients, content = _original_from_ndr(path, parsed, recipients)
    elif not recipients:
        sender, recipients = pickup.envelope_from_headers(BytesParser(policy=email.policy.default)
                                                          .parsebytes(content, headersonly=True))
    if not recipients:
        raise InputError("mailroot_ops.no_recipients", value=str(path), next_key="mailroot_ops.no_recipients_next")
    return sender or "", recipients, pickup.pickup_bytes(content, sender or "", recipients)


def _original_from_ndr(path: Path, report: Message, ndr_recipients: list[str]) -> tuple[str, list[str], bytes]:
    """Return the sender, failed recipients and bytes of the original message inside an NDR (RFC 3464).

    Raises InputError when the NDR carries only the original's headers, or when its
    delivery-status part is missing or lists no recipient whose Action is failed.
    """
    original: Message | None = None
    has_status = False
    recipients: list[tuple[str, str]] = []
    for part in report.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822" and original is None:
            payload = part.get_payload()
            original = payload[0] if isinstance(payload, list) and payload else None
        elif content_type == "message/delivery-status":
            has_status = True
            recipients.extend(_status_recipients(part))
    if original is None:
        raise InputError("mailroot_ops.ndr_without_original", value=str(path),
                         next_key="mailroot_ops.ndr_without_original_next")
    failed = [address for action, address in recipients if action == "failed"]
    if not failed:
        if not has_status:
            detail = message("mailroot_ops.ndr_detail.no_status_part")
        elif not recipients:
            detail = message("mailroot_ops.ndr_detail.no_recipient")
        else:
            actions = ", ".join(sorted({action for action, _ in recipients}))
            detail = message("mailroot_ops.ndr_detail.actions", actions=actions)
        raise InputError("mailroot_ops.ndr_no_failed_recipient", value=str(path), detail=detail,
                         next_key="mailroot_ops.ndr_no_failed_recipient_next")
    # The NDR went to the original sender, so its envelope recipient is that sender.
    sender = ndr_recipients[0] if ndr_recipients else _first_address(original.get("From", ""))
    content = original.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))
    return sender, failed, content


def _status_recipients(status: Message) -> list[tuple[str, str]]:
    """Return the Action (failed when not given) and address of each recipient in a message/delivery-status part."""
    recipients = []
    payload = status.get_payload()
    blocks = payload[1:] if isinstance(payload, list) else []
    for block in blocks:
        action = (block.get("Action") or "failed").strip().lower()
        field_value = block.get("Original-Recipient") or block.get("Final-Recipient") or ""
        address = field_value.partition(";")[2].strip().strip("<>")
        if address:
            recipients.append((action, address))
    return recipients


def _message_id(data: bytes) -> str:
    """Return the Message-ID header of a Pickup file's bytes, or "" when it has none."""
    headers = BytesParser(policy=email.policy.compat32).parsebytes(data, headersonly=True)
    return str(headers.get("Message-ID", "")).strip()


def _first_address(header: str) -> str:
    addresses = [address for _, address in getaddresses([str(header)]) if address]
    return addresses[0] if addresses else ""


# Execution and the journal.

def execute(plan: Plan, state_dir: str | os.PathLike[str] | None = None, *, again: bool = False) -> Outcome:
    """Carry out `plan`, journalling each step, and return what was done.

    The journal is `<state_dir>/<operation>-<UTC time>-<pid>.jsonl` (default folder:
    `default_journal_dir()`), and its first line is the whole plan, so `resume` can finish the
    job after an interruption. Errors while writing (a full disk, say) raise InputError and
    leave the journal unfinished. A resubmit plan with a source that `earlier_resubmits` finds
    raises InputError before anything changes, unless `again` is true.
    """
    if plan.operation == RESUBMIT and not again:
        earlier = earlier_resubmits(plan, state_dir)
        if earlier:
            raise InputError("mailroot_ops.already_resubmitted", value=describe_earlier_resubmits(earlier),
                             next_key="mailroot_ops.already_resubmitted_next")
    folder = Path(state_dir) if state_dir is not None else default_journal_dir()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    journal = folder / f"{plan.operation}-{stamp}-{os.getpid()}.jsonl"
    try:
        _create_journal(journal, {"event": "plan", "version": JOURNAL_VERSION, "operation": plan.operation,
                                  "mailroot": str(plan.mailroot), "destination": str(plan.destination),
                                  "steps": [asdict(step) for step in plan.steps]})
    except InputError as error:
        raise OperationStopped(error, [(f"mailroot_ops.progress.{plan.operation}_none", {})],
                               error.next_key) from error
    log.info("%s of %d files started, journal %s", plan.operation, len(plan.steps), journal)
    return _Runner(plan, journal).run()


def _create_journal(journal: Path, plan_line: dict[str, object]) -> None:
    """Create `journal` with its plan line, fsynced, or raise InputError and leave no journal behind.

    The line is written with ensure_ascii=True. A file name with bytes that are not UTF-8 is a
    str with lone surrogates (Python's surrogateescape), which UTF-8 cannot encode, and JSON
    writes those as \\udcNN escapes that json.loads turns back into the same str.
    """
    line = json.dumps(plan_line, ensure_ascii=True) + "\n"
    try:
        journal.parent.mkdir(parents=True, exist_ok=True)
        handle = open(journal, "x", encoding="ascii")
    except OSError as error:
        raise InputError("mailroot_ops.journal_failed", value=str(journal), detail=os_error_text(error),
                         next_key="mailroot_ops.journal_failed_next") from error
    try:
        with handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        # A journal without its plan line cannot be resumed, and nothing has changed yet.
        journal.unlink(missing_ok=True)
        raise InputError("mailroot_ops.journal_failed", value=str(journal), detail=os_error_text(error),
                         next_key="mailroot_ops.journal_failed_next") from error
    _crash_point("journal")


def resume(journal: str | os.PathLike[str]) -> Outcome:
    """Finish the job an interrupted `execute` recorded in `journal`; a finished journal is left as it is."""
    path = Path(journal)
    plan, events = _read_journal(path)
    _drop_cut_last_line(path)
    runner = _Runner(plan, path, events)
    outcome = runner.run()
    outcome.resumed = True
    return outcome


def journal_table(journal: str | os.PathLike[str]) -> pd.DataFrame:
    """Return a journal's entries after the plan line as a table: event, step number and source file."""
    plan, events = _read_journal(Path(journal))
    rows = []
    for event in events:
        step = event.get("step")
        source = plan.steps[int(step)].source if isinstance(step, int) and 0 <= step < len(plan.steps) else ""
        rows.append({"event": str(event.get("event", "")), "step": step, "source": display_name(source)})
    return pd.DataFrame(rows, columns=["event", "step", "source"]).astype({"step": "Int64"})


def unfinished_journals(root: str | os.PathLike[str], operation: str,
                        state_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the journals of `operation` on the mailroot `root` that have no finished entry, oldest first."""
    folder = Path(state_dir) if state_dir is not None else default_journal_dir()
    if not folder.is_dir():
        return []
    root_text = os.path.realpath(root)
    found = []
    for path, plan, events in _journals_in(folder, operation):
        if os.path.realpath(plan.mailroot) == root_text and not any(event.get("event") == "finished"
                                                                    for event in events):
            found.append(path)
    return found


def earlier_resubmits(plan: Plan, state_dir: str | os.PathLike[str] | None = None) -> list[EarlierResubmit]:
    """Return the sources of `plan` that a finished resubmit journal on the same mailroot already copied.

    A source matches an earlier step marked done when it has the same path, size and
    modification time, or the same non-empty Message-ID. The time reported is the journal's
    last modification, which is when its run finished.
    """
    folder = Path(state_dir) if state_dir is not None else default_journal_dir()
    if plan.operation != RESUBMIT or not folder.is_dir():
        return []
    by_file: dict[tuple[str, int, int], EarlierResubmit] = {}
    by_message_id: dict[str, EarlierResubmit] = {}
    root_text = os.path.realpath(plan.mailroot)
    for path, earlier_plan, events in _journals_in(folder, RESUBMIT):
        if os.path.realpath(earlier_plan.mailroot) != root_text or not any(event.get("event") == "finished"
                                                                           for event in events):
            continue
        finished_at = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        done = {event.get("step") for event in events if event.get("event") == "done"}
        for index, step in enumerate(earlier_plan.steps):
            if index not in done:
                continue
            record = EarlierResubmit(step.source, path, finished_at)
            if step.mtime_ns:
                by_file[(step.source, step.size, step.mtime_ns)] = record
            if step.message_id:
                by_message_id[step.message_id] = record
    found = []
    for step in plan.steps:
        record = by_file.get((step.source, step.size, step.mtime_ns))
        if record is None and step.message_id:
            record = by_message_id.get(step.message_id)
        if record is not None:
            found.append(EarlierResubmit(step.source, record.journal, record.finished_at))
    return found


def _journals_in(folder: Path, operation: str) -> Iterator[tuple[Path, Plan, list[dict[str, object]]]]:
    """Yield each journal of `operation` in `folder`, oldest first, with its plan and events.

    An empty journal (a run stopped before it wrote its plan, so it changed nothing) is skipped.
    Any other journal that cannot be read raises InputError: skipping it could hide an
    unfinished job or an earlier resubmit, and so send a message twice.
    """
    for path in sorted(folder.glob(f"{operation}-*.jsonl")):
        try:
            if path.stat().st_size == 0:
                log.info("skipping empty journal %s", path)
                continue
            plan, events = _read_journal(path)
        except OSError as error:
            raise InputError("mailroot_ops.journal_unreadable", value=str(path), detail=os_error_text(error),
                             folder=str(folder), next_key="mailroot_ops.journal_unreadable_in_folder_next") from error
        except InputError as error:
            raise InputError("mailroot_ops.journal_unreadable", value=str(path), where=error.where,
                             detail=error.values.get("detail", ""), folder=str(folder),
                             next_key="mailroot_ops.journal_unreadable_in_folder_next") from error
        yield path, plan, events


def _drop_cut_last_line(path: Path) -> None:
    """Cut a journal back to its last whole line, so that the next entry starts on a line of its own.

    A crash or a full disk while appending can leave the last line cut, which reading ignores.
    """
    try:
        with open(path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
    except OSError as error:
        raise InputError("mailroot_ops.journal_failed", value=str(path), detail=os_error_text(error),
                         next_key="mailroot_ops.journal_failed_next") from error


def _read_journal(path: Path) -> tuple[Plan, list[dict[str, object]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError("mailroot_ops.journal_unreadable", value=str(path), detail=str(error),
                         next_key="mailroot_ops.journal_unreadable_next") from error
    events = []
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise json.JSONDecodeError("not a JSON object", line, 0)
            events.append(event)
        except json.JSONDecodeError:
            if number == len(lines):
                # A crash while appending can cut only the last line, and its step is redone.
                log.info("ignoring the cut last line of journal %s", path)
                break
            raise InputError("mailroot_ops.journal_unreadable", value=str(path), where=f"{path}:{number}",
                             detail=line[:80], next_key="mailroot_ops.journal_unreadable_next") from None
    if not events or events[0].get("event") != "plan" or events[0].get("version") != JOURNAL_VERSION:
        raise InputError("mailroot_ops.journal_unreadable", value=str(path), detail="no plan line",
                         next_key="mailroot_ops.journal_unreadable_next")
    head = events[0]
    steps = [Step(**{**step, "recipients": tuple(step.get("recipients", ()))}) for step in head["steps"]]
    plan = Plan(str(head["operation"]), Path(str(head["mailroot"])), Path(str(head["destination"])), steps)
    return plan, events[1:]


class _Runner:
    """Carries out a plan from whatever state its journal events describe."""

    def __init__(self, plan: Plan, journal: Path, events: Iterable[dict[str, object]] = ()) -> None:
        self.plan = plan
        self.journal = journal
        self.events = list(events)
        self.done = {event["step"] for event in self.events if event.get("event") in ("done", "missing")}
        self.staged = {event["step"] for event in self.events if event.get("event") == "staged"}
        self.missing = [self.plan.steps[int(event["step"])].source for event in self.events
                        if event.get("event") == "missing"]
        self.flags = {str(event["event"]) for event in self.events}

    def append(self, entry: dict[str, object]) -> None:
        """Write one journal line and fsync it before the next step starts."""
        line = json.dumps(entry, ensure_ascii=True) + "\n"
        try:
            with open(self.journal, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise InputError("mailroot_ops.journal_failed", value=str(self.journal),
                             detail=os_error_text(error), next_key="mailroot_ops.journal_failed_next") from error
        _crash_point("journal")

    def run(self) -> Outcome:
        """Carry out the steps the journal does not record as done.

        Raises OperationStopped for an InputError and OperationInterrupted for Ctrl+C or SIGTERM.
        """
        if "finished" not in self.flags:
            try:
                if self.plan.operation == RESUBMIT:
                    self._resubmit()
                elif self.plan.steps and self.plan.steps[0].action == ZIP:
                    self._archive_to_zip()
                else:
                    self._archive_to_folder()
                self.append({"event": "finished"})
            except InputError as error:
                raise self._stopped(error) from error
            except KeyboardInterrupt as interrupt:
                log.warning("%s interrupted, journal %s is unfinished", self.plan.operation, self.journal)
                raise OperationInterrupted(self.plan.operation, self.journal) from interrupt
            log.info("%s finished: %d steps, %d sources missing, journal %s", self.plan.operation,
                     len(self.plan.steps), len(self.missing), self.journal)
        return Outcome(self.plan, self.journal, len(self.plan.steps) - len(self.missing), list(self.missing))

    def _stopped(self, error: InputError) -> OperationStopped:
        """Return `error` as an OperationStopped that adds what the journal records as done."""
        operation = self.plan.operation
        done = len(self.done) - len(self.missing)
        counts = {"done": done, "total": len(self.plan.steps) - len(self.missing),
                  "destination": self.plan.destination}
        if error.key == "mailroot_ops.journal_failed":
            # The journal can fail after a step's file operation and before its line, so the
            # count may be one short. The next step must keep this journal's folder.
            progress = [(f"mailroot_ops.progress.{operation}_some", counts),
                        ("mailroot_ops.progress.last_step_unsure", {})]
            return OperationStopped(error, progress, "mailroot_ops.journal_failed_partway_next")
        if done == 0:
            return OperationStopped(error, [(f"mailroot_ops.progress.{operation}_none", {})], error.next_key)
        progress = [(f"mailroot_ops.progress.{operation}_some", counts),
                    ("mailroot_ops.progress.journal_records", {"journal": self.journal})]
        return OperationStopped(error, progress, error.next_key)

    def _mark(self, event: str, index: int) -> None:
        self.append({"event": event, "step": index})
        if event in ("done", "missing"):
            self.done.add(index)
        if event == "missing":
            self.missing.append(self.plan.steps[index].source)

    # Archive into a folder.

    def _archive_to_folder(self) -> None:
        for index, step in enumerate(self.plan.steps):
            if index in self.done:
                continue
            source = self.plan.mailroot / step.source
            target = self.plan.destination / step.target
            source_exists, target_exists = source.exists(), target.exists()
            if source_exists and target_exists:
                # A copy across volumes was linked into place before the crash, or a stranger's
                # file has the name. Only an identical copy lets the original go.
                if not _same_content(source, target):
                    raise InputError("mailroot_ops.target_exists", value=str(target),
                                     next_key="mailroot_ops.target_exists_next")
                _remove(source, target)
            elif source_exists:
                self._move(source, target)
            elif not target_exists:
                log.warning("archive source %s vanished before it was moved", source)
                self._mark("missing", index)
                continue
            _crash_point("moved")
            self._mark("done", index)

    def _move(self, source: Path, target: Path) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # NOTE: POSIX rename replaces an existing target. The check just before it leaves a
            # short window in which another program could create a file of that name.
            if target.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(target))
            os.rename(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise _write_error(target, error) from error
            self._copy_across(source, target)
            _crash_point("copied")
            _remove(source, target)
        _fsync_folder(target.parent)

    def _copy_across(self, source: Path, target: Path) -> None:
        """Copy `source` to `target` on another volume through a temporary file, never replacing `target`.

        The copy gets the source's access and modification times, as a rename would keep them.
        """
        temporary = _temporary_copy_path(target)
        try:
            with open(source, "rb") as reader, open(temporary, "wb") as writer:
                # Taken before reading, which can update the access time.
                status = os.fstat(reader.fileno())
                while chunk := reader.read(_COPY_CHUNK):
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            # Set once the writer is closed, so that no later write through it can change them.
            os.utime(temporary, ns=(status.st_atime_ns, status.st_mtime_ns))
            _crash_point("copy_written")
            # A disk formatted FAT or exFAT has no hard links, so this falls back to a checked rename there.
            mailroot.rename_without_replacing(temporary, target)
        except OSError as error:
            raise _write_error(target, error) from error
        finally:
            temporary.unlink(missing_ok=True)

    # Archive into a zip.

    def _archive_to_zip(self) -> None:
        zip_path = self.plan.destination
        partial = _partial_zip(zip_path)
        if "zip_written" not in self.flags:
            self._write_zip(partial)
            _crash_point("zip_written")
            self.append({"event": "zip_written"})
        if "zip_closed" not in self.flags:
            if partial.exists():
                if os.path.lexists(zip_path):
                    raise InputError("mailroot_ops.target_exists", value=str(zip_path),
                                     next_key="mailroot_ops.target_exists_next")
                os.rename(partial, zip_path)
                _fsync_folder(zip_path.parent)
            _crash_point("zip_closed")
            self.append({"event": "zip_closed"})
        with zipfile.ZipFile(zip_path) as archive:
            members = {info.filename: info for info in archive.infolist()}
        for index, step in enumerate(self.plan.steps):
            if index in self.done:
                continue
            source = self.plan.mailroot / step.source
            member = members.get(step.target)
            if member is None:
                self._mark("missing", index)
                continue
            if source.exists():
                if not _matches_member(source, member):
                    raise InputError("mailroot_ops.zip_mismatch", value=str(source), where=str(zip_path),
                                     next_key="mailroot_ops.zip_mismatch_next")
                _remove(source, zip_path)
                _crash_point("unlinked")
            self._mark("done", index)

    def _write_zip(self, partial: Path) -> None:
        if partial.is_symlink():
            # Planning rejects an existing .partial, so a link here appeared since: never write through it.
            raise InputError("mailroot_ops.target_exists", value=str(partial),
                             next_key="mailroot_ops.target_exists_next")
        try:
            with open(partial, "wb") as handle:
                with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                    for step in self.plan.steps:
                        source = self.plan.mailroot / step.source
                        if not source.exists():
                            # The step is journalled as missing once the zip is in place.
                            continue
                        archive.write(source, arcname=step.target)
                        _crash_point("zipped")
                handle.flush()
                os.fsync(handle.fileno())
        except PermissionError as error:
            partial.unlink(missing_ok=True)
            if error.filename is None or Path(error.filename) == partial:
                # The zip itself could not be created: a write failure, not a read failure.
                raise _write_error(partial, error) from error
            raise InputError("mailroot_ops.unreadable", value=error.filename,
                             detail=os_error_text(error), next_key="mailroot_ops.unreadable_next") from error
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise _write_error(partial, error) from error

    # Resubmit into Pickup.

    def _resubmit(self) -> None:
        for index, step in enumerate(self.plan.steps):
            if index in self.done:
                continue
            staging = _staging_folder(self.plan.destination) / f"{_STAGING_PREFIX}{self.journal.stem}-{index}.tmp"
            target = self.plan.destination / step.target
            if index not in self.staged:
                source = self.plan.mailroot / step.source
                if not source.exists():
                    self._mark("missing", index)
                    continue
                _, _, data = resubmit_content(source)
                _write_synced(staging, data)
                _crash_point("staged")
                self._mark("staged", index)
            # A staged step whose staging file is gone was renamed into Pickup before the crash.
            if staging.exists():
                if target.exists():
                    raise InputError("mailroot_ops.target_exists", value=str(target),
                                     next_key="mailroot_ops.target_exists_next")
                try:
                    os.rename(staging, target)
                except OSError as error:
                    raise _write_error(target, error) from error
                _fsync_folder(target.parent)
                _crash_point("renamed")
            self._mark("done", index)


def _staging_folder(pickup_folder: Path) -> Path:
    """Return the folder where resubmitted files are written before they are renamed into Pickup.

    It is the parent of Pickup's real location: on Pickup's volume, so that the rename works
    when Pickup is a link to another disk, and outside Pickup, whose files the service sends.
    """
    return Path(os.path.realpath(pickup_folder)).parent


def _partial_zip(zip_path: Path) -> Path:
    """Return the name a zip archive is written under until it is complete."""
    return zip_path.with_name(zip_path.name + ".partial")


def _temporary_copy_path(target: Path) -> Path:
    """Return the path `_copy_across` writes `target`'s copy under before linking it into place.

    The name is short, so a target name of up to _MAX_NAME_BYTES still gets one, and it is the
    same for the same target, so a rerun after a crash overwrites its own leftover. The leading
    "." and the ".tmp" suffix make `mailroot.is_temporary_file_name` skip it.
    """
    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:16]
    return target.with_name(f".adminkb-copy-{digest}.tmp")


def _write_synced(path: Path, data: bytes) -> None:
    try:
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        path.unlink(missing_ok=True)
        raise _write_error(path, error) from error


def _write_error(path: Path, error: OSError) -> InputError:
    key = "mailroot_ops.disk_full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "mailroot_ops.write_failed"
    log.error("writing %s failed: %s", display_name(str(path)), error)
    return InputError(key, value=display_name(str(path)), detail=os_error_text(error), next_key=f"{key}_next")


def _remove(path: Path, copy: Path) -> None:
    """Remove the original `path`, which `copy` (a file or a zip) now contains. A file already gone is no error."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        log.error("removing %s after copying it to %s failed: %s", display_name(str(path)), copy, error)
        raise InputError("mailroot_ops.remove_failed", value=display_name(str(path)),
                         copy=display_name(str(copy)), detail=os_error_text(error),
                         next_key="mailroot_ops.remove_failed_next") from error


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable. Windows cannot open a folder for fsync, so there it is skipped."""
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _same_content(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    return _sha256(first) == _sha256(second)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _matches_member(source: Path, member: zipfile.ZipInfo) -> bool:
    if source.stat().st_size != member.file_size:
        return False
    checksum = 0
    with open(source, "rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            checksum = zlib.crc32(chunk, checksum)
    return checksum == member.CRC


def _crash_point(point: str) -> None:
    """Kill this process with SIGKILL at the point named by CRASH_ENV, for the kill test."""
    setting = os.environ.get(CRASH_ENV)
    if not setting:
        return
    name, _, count = setting.partition(":")
    if name != point:
        return
    _crash_counts[point] = _crash_counts.get(point, 0) + 1
    if str(_crash_counts[point]) == count:
        # Windows has no SIGKILL, and os.kill with SIGTERM ends the process at once there.
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def describe_outcome(outcome: Outcome) -> str:
    """Return one line saying what an operation did and where its journal is, in the user's language."""
    key = "mailroot_ops.resumed" if outcome.resumed else f"mailroot_ops.{outcome.plan.operation}_done"
    text = message(key, count=outcome.done, destination=outcome.plan.destination, journal=outcome.journal)
    if outcome.missing:
        text += "\n" + message("mailroot_ops.sources_missing", count=len(outcome.missing),
                               names=", ".join(display_name(name) for name in outcome.missing))
    return text
