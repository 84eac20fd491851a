"""An inventory of a mailroot tree as a pandas DataFrame, and the summaries admins ask for.

The scan works on the lab's mailroot, a copy taken from a server, or `C:\\inetpub\\mailroot`
itself. It opens every file read-only and reads only the start of it: the envelope lines and
the header section of messages, or the reason text of Badmail `.BDR` files. It never changes
the tree. A file that cannot be read, is empty or is not mail gets a note in its row, and the
scan goes on.

Reading a file is in `adminkb.mailroot_read`. This module walks the tree, streams the files to
that module in chunks (to worker processes, one per CPU, for large trees), keeps the rows as
Arrow arrays, and sorts them, links each Badmail set and builds the frame at the end.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import functools
import itertools
import logging
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from adminkb import mailroot
from adminkb.errors import InputError, os_error_text
from adminkb.i18n import message
from adminkb.mailroot_read import OTHER, ROW_COLUMNS, ScanColumns, display_name, scan_chunk

log = logging.getLogger("adminkb.mailroot_scan")

# A progress bar appears when a tree has more files than this (and `progress` is left at None).
PROGRESS_THRESHOLD = 2000
# "ANSI" text on a Traditional Chinese Windows is code page 950.
DEFAULT_ANSI_ENCODING = "cp950"
# Trees of at least this many files are read by worker processes, one per CPU. Below it,
# starting them costs more than they save: each is a fresh interpreter that imports
# adminkb.mailroot_read, an estimated 0.1 to 0.2 s (measured on Linux only).
PARALLEL_THRESHOLD = 20_000
MAX_WORKERS = 8
# Files per piece of work: a worker's unit, and the step of the progress bar.
CHUNK_FILES = 1024

# Folder roles in the inventory's order.
_ROLE_ORDER = (*mailroot.FOLDER_NAMES, OTHER)
_BADMAIL_KINDS = ("badmail_message", "badmail_reason", "badmail_envelope")

COLUMNS = ("role", "path", "name", "kind", "size", "modified", "age", "mailbox_domain", "mailbox_user",
           "sender", "recipients", "from", "to", "subject", "date", "message_id", "reason", "error_code",
           "reason_sender", "notes")


def scan_mailroot(root: str | os.PathLike[str], *, now: datetime | None = None, progress: bool | None = None,
                  ansi_encoding: str = DEFAULT_ANSI_ENCODING, workers: int | None = None) -> pd.DataFrame:
    """Return one row per file under the mailroot `root`, sorted by role and path.

    `now` (default: the current time) is the instant ages are measured from. `progress` shows
    a tqdm bar on stderr; None shows it only for trees of more than PROGRESS_THRESHOLD files.
    `.BDR` files without a byte-order mark are decoded with `ansi_encoding`. `workers` is the
    number of processes that read the files: None takes one per CPU for trees of at least
    PARALLEL_THRESHOLD files and reads smaller trees in this process; 1 never starts a process.

    Folders that cannot be listed are logged, and their paths relative to `root` are in the
    frame's `attrs["unlisted_folders"]`. Worker processes are spawned, so a script that calls
    this must keep its top-level code under `if __name__ == "__main__":`, or each worker
    runs that code again while it starts (the inventory stays correct, but side effects repeat).
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise InputError("mailroot.scan_root_missing", value=str(root_path), next_key="mailroot.scan_root_missing_next")
    # A folder with none of the service's folders is not a mailroot (a typo, or /etc): an empty
    # inventory would read as "nothing waiting" and hide the mistake.
    try:
        present = {entry.name.lower() for entry in root_path.iterdir() if entry.is_dir()}
    except OSError as error:
        raise InputError("mailroot.scan_root_unreadable", value=str(root_path), detail=os_error_text(error),
                         next_key="mailroot.scan_root_unreadable_next") from error
    if not present & {folder.lower() for folder in mailroot.FOLDER_NAMES}:
        raise InputError("mailroot.scan_not_mailroot", value=str(root_path),
                         folders=", ".join(mailroot.FOLDER_NAMES), next_key="mailroot.scan_root_missing_next")
    try:
        # Decoding checks more than codecs.lookup: "hex" and "rot13" are codecs but not text
        # encodings, and "idna" rejects the "replace" error handler that .BDR decoding uses.
        b"\xa4\xa4".decode(ansi_encoding, errors="replace")
    except (LookupError, ValueError):
        raise InputError("mailroot.unknown_encoding", value=ansi_encoding,
                         next_key="mailroot.unknown_encoding_next") from None
    instant = now or datetime.now(timezone.utc)

    if workers is not None and (type(workers) is not int or workers < 1):
        raise ValueError(f"invalid workers value {workers!r}: give an int of 1 or more, or None to choose by tree size")
    root_text = str(root_path)
    # A first walk only counts, so that the bar has a total and the worker count a basis. The
    # second walk streams paths to the readers chunk by chunk, so no list of every path is kept.
    # Folders that cannot be listed, by path relative to the root, with the reason.
    unlisted: dict[str, str] = {}
    count = _count_files(root_text, unlisted)
    show = count > PROGRESS_THRESHOLD if progress is None else progress
    processes = _worker_count(workers, count)
    chunks = functools.partial(_chunked_walk, root_text, unlisted)
    with system_memory_pool():
        if show:
            with tqdm(total=count, file=sys.stderr, unit=message("mailroot.progress_unit"),
                      desc=message("mailroot.progress_label")) as bar:
                collected = _scan_chunks(chunks, ansi_encoding, processes, bar.update)
        else:
            # Without a bar no tqdm object is made, because making one costs about 0.1 s (a lock).
            collected = _scan_chunks(chunks, ansi_encoding, processes, None)
        if collected.unreadable:
            # One line for the whole scan, so that a tree of locked files does not flood the log.
            log.warning("%d of %d files under %s could not be read (run with -vv for each one)",
                        collected.unreadable, collected.rows, root_path)
        for folder, reason in unlisted.items():
            log.warning("cannot list folder %s under %s: %s", folder, root_path, reason)
        log.info("scanned %d files under %s", collected.rows, root_path)
        inventory = _frame(collected, instant)
    inventory.attrs["unlisted_folders"] = sorted(unlisted)
    return inventory


@contextlib.contextmanager
def system_memory_pool() -> Iterator[None]:
    """Let Arrow allocate from the C library's allocator inside the block, then restore the previous pool.

    pyarrow's default pool on Linux is mimalloc, with which building the frame of a
    130,000-file tree took 0.26 to 0.37 s instead of 0.21 s (BENCHMARKS.md, mailroot run 10).
    Arrays remember the pool they came from, so switching back is safe.
    """
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def _worker_count(requested: int | None, files: int) -> int:
    """Return how many processes read a tree of `files` files (1: this process alone)."""
    if multiprocessing.current_process().name != "MainProcess":
        # A worker process that runs a scan itself reads in-process rather than starting
        # workers of its own. One case is a script without a __main__ guard, which a spawned
        # worker runs again while it starts (parent_process() is still None at that point).
        return 1
    if requested is not None:
        return requested
    if files < PARALLEL_THRESHOLD:
        return 1
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(available, MAX_WORKERS))


class _Collected:
    """The scanned rows as Arrow arrays, one list of chunks per column.

    Each chunk's Python strings become one Arrow array per column as soon as the chunk arrives,
    so the rows wait for the frame in Arrow buffers rather than as Python objects per file.
    """

    def __init__(self) -> None:
        self.chunks: dict[str, list[pa.Array]] = {column: [] for column in ROW_COLUMNS}
        self.rows = 0
        self.unreadable = 0

    def add(self, part: ScanColumns) -> int:
        """Append the rows of `part` and return how many there were."""
        for column, values in part.values.items():
            self.chunks[column].append(_arrow_column(column, values))
        self.rows += len(part)
        self.unreadable += part.unreadable
        return len(part)


def _arrow_column(column: str, values: list[object]) -> pa.Array:
    if column == "size":
        return pa.array(values, pa.int64())
    if column == "modified":
        return pa.array(values, pa.float64())
    if column == "recipients":
        return pa.array(values, pa.list_(pa.string()))
    return pa.array(values, pa.string())


def _scan_chunks(chunks: Callable[[], Iterator[list[tuple[str, str]]]], ansi_encoding: str, processes: int,
                 advance: Callable[[int], object] | None) -> _Collected:
    """Scan every chunk that `chunks()` yields, in `processes` worker processes or in this one.

    Workers are spawned, not forked, on every platform: a fork copies the locks that other
    threads (a Jupyter kernel's, for one) hold at that moment, and a spawned worker imports only
    `adminkb.mailroot_read`. When the workers cannot run (a broken interpreter, a script that
    spawning cannot import again), the scan starts over in this process and logs why.
    """
    if processes > 1:
        collected = _Collected()
        try:
            _scan_in_pool(chunks(), ansi_encoding, processes, collected, advance)
            return collected
        except BrokenProcessPool as error:
            log.warning("mailroot scan workers failed (%s), so the scan starts over in this process", error)
            if advance is not None:
                advance(-collected.rows)
    collected = _Collected()
    for chunk in chunks():
        done = collected.add(scan_chunk(chunk, ansi_encoding))
        if advance is not None:
            advance(done)
    return collected


def _scan_in_pool(chunks: Iterator[list[tuple[str, str]]], ansi_encoding: str, processes: int,
                  collected: _Collected, advance: Callable[[int], object] | None) -> None:
    """Scan `chunks` in worker processes, adding the results to `collected` in order.

    At most two chunks per worker wait in the pool, so the walk stays only a little ahead of
    the readers and the paths waiting in between stay few.
    """
    log.info("scanning in %d worker processes", processes)
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    pending: collections.deque[Future[ScanColumns]] = collections.deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(scan_chunk, chunk, ansi_encoding))
            if len(pending) > 2 * processes:
                done = collected.add(pending.popleft().result())
                if advance is not None:
                    advance(done)
        while pending:
            done = collected.add(pending.popleft().result())
            if advance is not None:
                advance(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _walk(root: str, unlisted: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Yield (full path, path relative to `root` with / separators) for every file under `root`.

    Links to folders are not followed. A folder that cannot be listed is skipped, and its
    relative path ("." for the root) and the error go into `unlisted`. Plain strings keep this
    fast on trees of 100,000 files.
    """
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    relative = f"{prefix}{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, f"{relative}/"))
                    elif entry.is_file():
                        yield entry.path, relative
        except OSError as error:
            unlisted.setdefault(display_name(prefix.rstrip("/")) or ".", os_error_text(error))


def _count_files(root: str, unlisted: dict[str, str]) -> int:
    """Return the number of files `_walk` yields under `root`."""
    return sum(1 for _ in _walk(root, unlisted))


def _chunked_walk(root: str, unlisted: dict[str, str]) -> Iterator[list[tuple[str, str]]]:
    """Yield the files under `root` in lists of CHUNK_FILES, in the walk's order."""
    files = _walk(root, unlisted)
    while chunk := list(itertools.islice(files, CHUNK_FILES)):
        yield chunk


def _frame(collected: _Collected, now: datetime) -> pd.DataFrame:
    """Build the inventory from the collected Arrow chunks: sorted by role, then path without case."""
    # One contiguous array per column: taking rows in sorted order from 100 chunks per column
    # costs three times as long as combining them first and taking from one.
    table = pa.table({column: pa.chunked_array(chunks, type=_arrow_column(column, []).type)
                      for column, chunks in collected.chunks.items()}).combine_chunks()
    collected.chunks = {}
    keys = pa.table({"rank": pc.index_in(table["role"], value_set=pa.array(_ROLE_ORDER)),
                     "folded": pc.utf8_lower(table["path"]), "path": table["path"]})
    table = table.take(pc.sort_indices(keys, sort_keys=[("rank", "ascending"), ("folded", "ascending"),
                                                        ("path", "ascending")]))
    del keys
    table = _link_badmail(table)
    pa.default_memory_pool().release_unused()
    # Whole microseconds, as datetime.fromtimestamp gives them; NaN (no time) becomes NaT.
    seconds = table["modified"].to_numpy(zero_copy_only=False)
    modified = pd.to_datetime(np.round(seconds * 1_000_000), unit="us", utc=True)
    data: dict[str, object] = {}
    for column in COLUMNS:
        if column == "modified":
            data[column] = modified
        elif column == "age":
            data[column] = pd.Timestamp(now) - modified
        elif column == "size":
            data[column] = table[column].to_numpy()
        elif column == "recipients":
            data[column] = _object_array(table[column].to_pylist())
        else:
            data[column] = table[column].to_pandas()
        if column not in ("modified", "age"):
            # Each column leaves the table once the frame has it, so the two are never both whole.
            table = table.drop_columns(column)
    # copy=False: a frame built from a dict copies every column by default.
    return pd.DataFrame(data, columns=list(COLUMNS), index=pd.RangeIndex(len(modified)), copy=False)


def _link_badmail(table: pa.Table) -> pa.Table:
    """Give each .BAD row the reason of its .BDR, and note .BDR and .BDP files whose .BAD is gone.

    The files of one set share their folder and file stem, compared without case. The work is
    done with Arrow compute functions, because a flooded Badmail folder can hold hundreds of
    thousands of sets and Python objects for each would stay in memory after the scan. Only
    the Badmail rows are worked on, and their results are put back in place.
    """
    in_badmail = _contiguous(pc.equal(table["role"], mailroot.BADMAIL))
    badmail = table.filter(in_badmail)
    if not len(badmail):
        return table
    kinds = badmail["kind"]
    folders = pc.utf8_lower(pc.replace_substring_regex(badmail["path"], pattern="/[^/]*$", replacement=""))
    stems = pc.utf8_lower(pc.replace_substring_regex(badmail["name"], pattern=r"\.[^.]*$", replacement=""))
    sets = pc.binary_join_element_wise(folders, stems, "/")
    is_message = pc.equal(kinds, "badmail_message")
    is_reason = pc.equal(kinds, "badmail_reason")

    # Row of the last .BDR of each set, found for every row by its set key.
    reason_rows = pc.indices_nonzero(is_reason)
    reason_sets = pc.take(sets, reason_rows)
    last = pa.table({"set": reason_sets, "row": reason_rows}).group_by("set").aggregate([("row", "max")])
    found = pc.index_in(sets, value_set=last["set"])
    source = pc.take(last["row_max"], found)
    linked = pc.and_(is_message, pc.is_valid(found))
    changed: dict[str, pa.ChunkedArray | pa.Array] = {}
    for column in ("reason", "error_code", "reason_sender"):
        changed[column] = pc.if_else(linked, pc.take(badmail[column], pc.fill_null(source, 0)), badmail[column])

    message_sets = pc.filter(sets, is_message)
    orphan = pc.and_(pc.invert(is_message), pc.is_in(kinds, value_set=pa.array(_BADMAIL_KINDS)))
    orphan = pc.and_(orphan, pc.invert(pc.is_in(sets, value_set=pc.unique(message_sets))))
    if pc.any(orphan).as_py():
        # The note is built once per suffix (BDR, BDP) and joined to any note the row has.
        suffixes = pc.utf8_upper(pc.replace_substring_regex(badmail["name"], pattern=r"^.*\.", replacement=""))
        texts = {suffix: message("mailroot.note.orphan", suffix=suffix)
                 for suffix in pc.unique(pc.filter(suffixes, orphan)).to_pylist()}
        orphan_notes = pc.take(pa.array(list(texts.values()), pa.string()),
                               pc.index_in(suffixes, value_set=pa.array(list(texts), pa.string())))
        notes = badmail["notes"]
        joined = pc.if_else(pc.equal(notes, ""), orphan_notes,
                            pc.binary_join_element_wise(notes, orphan_notes, "; "))
        changed["notes"] = pc.if_else(orphan, joined, notes)

    for column, values in changed.items():
        # The Badmail rows' new values go back to their places, in the same order.
        merged = pc.replace_with_mask(_contiguous(table[column]), in_badmail, _contiguous(values))
        table = table.set_column(table.schema.get_field_index(column), column, merged)
    return table


def _contiguous(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _object_array(items: list[object]) -> np.ndarray:
    """Return `items` as a one-dimensional object array, keeping list items whole.

    np.array(items) would turn lists of equal length into a second dimension, so items are
    stored one by one.
    """
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        array[index] = item
    return array


def _message_rows(inventory: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Return the rows that stand for one message each: .EML-like files, and .BAD files in Badmail.

    With `columns`, only those columns are copied, which keeps a summary of a large tree from
    copying every text column of the inventory.
    """
    is_message = inventory["kind"].isin(["message", "badmail_message"])
    # A file without the .EML suffix counts only when it has an envelope or mail headers, so
    # desktop.ini, Thumbs.db or an empty file copied along with a mailroot is not a message.
    # Only those few files are checked, because calling len() on every row of a large tree is slow.
    candidates = (inventory["kind"] == "other") & inventory["role"].isin([mailroot.QUEUE, mailroot.DROP,
                                                                          mailroot.PICKUP])
    if candidates.any():
        others = inventory.loc[candidates]
        looks_like_mail = ((others["sender"] != "") | (others["recipients"].map(len) > 0) | (others["from"] != "")
                           | (others["subject"] != "") | (others["message_id"] != ""))
        is_message = is_message | looks_like_mail.reindex(inventory.index, fill_value=False)
    return inventory.loc[is_message, columns] if columns is not None else inventory[is_message]


def folder_summary(inventory: pd.DataFrame) -> pd.DataFrame:
    """Return per folder the number of messages, their total size and the age of the oldest.

    Every mailroot folder gets a row, with 0 messages when it is empty or missing.
    """
    messages = _message_rows(inventory, ["role", "size", "age"])
    grouped = messages.groupby("role", sort=False).agg(count=("size", "size"), size=("size", "sum"),
                                                        oldest_age=("age", "max"))
    rows = []
    for folder in mailroot.FOLDER_NAMES:
        if folder in grouped.index:
            found = grouped.loc[folder]
            rows.append({"role": folder, "messages": int(found["count"]), "size": int(found["size"]),
                         "oldest_age": found["oldest_age"]})
        else:
            rows.append({"role": folder, "messages": 0, "size": 0, "oldest_age": pd.NaT})
    return pd.DataFrame(rows, columns=["role", "messages", "size", "oldest_age"])


def stuck_domains(inventory: pd.DataFrame) -> pd.DataFrame:
    """Return the destination domains of the messages in Queue: messages, recipients and the oldest age.

    Sorted by the oldest age first, because the domain that has waited longest is the one to check.
    """
    columns = ["domain", "messages", "recipients", "oldest_age"]
    queued = _message_rows(inventory, ["role", "recipients", "age"])
    queued = queued[queued["role"] == mailroot.QUEUE]
    recipients = queued["recipients"].tolist()
    counts = [len(addresses) for addresses in recipients]
    if not sum(counts):
        return pd.DataFrame(columns=columns)
    # The domain is the text after the last "@", in lower case, or the whole address if there is
    # no "@". Plain Python does this 8 times faster than pandas' str.rpartition (measured on
    # 117,000 addresses with pandas 3.1).
    # A trailing dot (an absolute DNS name) names the same domain as without it.
    domains = [address.rpartition("@")[2].lower().rstrip(".") or "-" for addresses in recipients
               for address in addresses]
    addresses = pd.DataFrame({"domain": domains, "message": np.repeat(np.arange(len(recipients)), counts)})
    per_message = addresses.groupby(["domain", "message"], sort=False).size()
    per_message = per_message.rename("recipients").reset_index()
    per_message["age"] = queued["age"].to_numpy()[per_message["message"].to_numpy()]
    frame = per_message.groupby("domain", sort=False).agg(messages=("recipients", "size"),
                                                          recipients=("recipients", "sum"),
                                                          oldest_age=("age", "max")).reset_index()
    frame = frame[columns].astype({"messages": "int64", "recipients": "int64"})
    return frame.sort_values(by=["oldest_age", "domain"], ascending=[False, True]).reset_index(drop=True)


def badmail_reasons(inventory: pd.DataFrame) -> pd.DataFrame:
    """Return each Badmail reason and error code with the number of .BDR files that give it, most frequent first."""
    selected = (inventory["role"] == mailroot.BADMAIL) & (inventory["kind"] == "badmail_reason")
    reasons = inventory.loc[selected, ["reason", "error_code"]]
    if reasons.empty:
        return pd.DataFrame(columns=["reason", "error_code", "count"])
    # An empty or unrecognised .BDR has neither, which a table would show as a blank row.
    unread = (reasons["reason"] == "") & (reasons["error_code"] == "")
    reasons.loc[unread, "reason"] = message("mailroot.reason_unreadable")
    counted = (reasons.groupby(["reason", "error_code"], dropna=False).size().reset_index(name="count"))
    return counted.sort_values(by=["count", "reason"], ascending=[False, True]).reset_index(drop=True)


# Saved inventories and the changes between two of them.

DIFF_COLUMNS = ("change", "old_role", "old_path", "new_role", "new_path", "old_size", "new_size",
                "message_id", "subject")
CHANGES = ("new", "gone", "moved", "grown", "shrunk")
# A saved inventory's name becomes a file name, so it is kept to characters every file system accepts.
_INVENTORY_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_INVENTORY_SUFFIX = ".parquet"


def default_inventory_dir() -> Path:
    """Return `~/.adminkb/inventories`, where inventories are saved unless the user names a folder."""
    return Path.home() / ".adminkb" / "inventories"


def inventory_path(name: str, state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the file a saved inventory called `name` lives in; InputError for names that are not plain."""
    if not _INVENTORY_NAME.match(name):
        raise InputError("mailroot.inventory_bad_name", value=name, next_key="mailroot.inventory_bad_name_next")
    folder = Path(state_dir) if state_dir is not None else default_inventory_dir()
    return folder / f"{name}{_INVENTORY_SUFFIX}"


def save_inventory(inventory: pd.DataFrame, name: str, state_dir: str | os.PathLike[str] | None = None, *,
                   replace: bool = False) -> Path:
    """Write `inventory` as parquet under the name `name` and return the file's path.

    The file is written under a temporary name and renamed into place, so an interrupted save
    leaves the previous file (or none). An existing inventory of that name is kept unless
    `replace` is true: InputError.
    """
    target = inventory_path(name, state_dir)
    if target.exists() and not replace:
        raise InputError("mailroot.inventory_exists", value=str(target), next_key="mailroot.inventory_exists_next")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            inventory.to_parquet(temporary, index=False)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:
        raise InputError("mailroot.inventory_write_failed", value=str(target), detail=os_error_text(error),
                         next_key="mailroot.inventory_write_failed_next") from error
    log.info("saved inventory %s (%d rows) to %s", name, len(inventory), target)
    return target


def load_inventory(name: str, state_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Read the inventory saved as `name`; InputError when it is missing or not an inventory."""
    source = inventory_path(name, state_dir)
    if not source.is_file():
        saved = sorted(path.stem for path in source.parent.glob(f"*{_INVENTORY_SUFFIX}")) if source.parent.is_dir() \
            else []
        raise InputError("mailroot.inventory_missing", value=name, where=str(source.parent),
                         names=", ".join(saved) or message("mailroot.cli.none"),
                         next_key="mailroot.inventory_missing_next")
    try:
        frame = pd.read_parquet(source)
    except (OSError, ValueError) as error:
        raise InputError("mailroot.inventory_unreadable", value=str(source), detail=str(error),
                         next_key="mailroot.inventory_missing_next") from error
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise InputError("mailroot.inventory_unreadable", value=str(source), detail=", ".join(missing),
                         next_key="mailroot.inventory_missing_next")
    frame["recipients"] = frame["recipients"].map(lambda values: [] if values is None else list(values))
    return frame


def diff_inventories(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Return the files that are new, gone, moved between folders, grown or shrunk from `old` to `new`.

    A file at the same path in both is the same file. Files left over on either side are paired
    as one message moved between folders when they share a Message-ID, or else a file stem
    (the service keeps the stem when it moves `NTFS_<id>.EML` from Queue to Badmail as
    `NTFS_<id>.BAD`). Everything still unpaired is new or gone. Unchanged files are left out.
    """
    rows: list[dict[str, object]] = []
    old_by_path = {path.lower(): index for index, path in enumerate(old["path"])}
    new_by_path = {path.lower(): index for index, path in enumerate(new["path"])}
    old_size, new_size = old["size"].tolist(), new["size"].tolist()

    for path, new_index in new_by_path.items():
        old_index = old_by_path.get(path)
        if old_index is None or old_size[old_index] == new_size[new_index]:
            continue
        change = "grown" if new_size[new_index] > old_size[old_index] else "shrunk"
        rows.append(_diff_row(change, old, old_index, new, new_index))

    old_left = [index for path, index in old_by_path.items() if path not in new_by_path]
    new_left = [index for path, index in new_by_path.items() if path not in old_by_path]
    waiting: dict[str, list[int]] = {}
    for index in sorted(old_left, key=lambda position: old["path"].iat[position].lower()):
        waiting.setdefault(_identity(old, index), []).append(index)
    for index in sorted(new_left, key=lambda position: new["path"].iat[position].lower()):
        candidates = waiting.get(_identity(new, index))
        if candidates:
            rows.append(_diff_row("moved", old, candidates.pop(0), new, index))
        else:
            rows.append(_diff_row("new", None, None, new, index))
    for indexes in waiting.values():
        rows.extend(_diff_row("gone", old, index, None, None) for index in indexes)

    frame = pd.DataFrame(rows, columns=list(DIFF_COLUMNS))
    # A nullable integer keeps sizes whole where one side is missing.
    frame[["old_size", "new_size"]] = frame[["old_size", "new_size"]].astype("Int64")
    order = {name: position for position, name in enumerate(CHANGES)}
    frame["sort_path"] = frame["new_path"].where(frame["new_path"] != "", frame["old_path"]).str.lower()
    frame = frame.sort_values(by=["change", "sort_path"], key=lambda column: column.map(order)
                              if column.name == "change" else column, kind="stable")
    return frame.drop(columns="sort_path").reset_index(drop=True)


def _identity(frame: pd.DataFrame, index: int) -> str:
    """Return what identifies a file's message across folders: its Message-ID, else its file stem."""
    message_id = frame["message_id"].iat[index]
    if message_id:
        return f"id:{message_id}"
    kind = frame["kind"].iat[index]
    stem = frame["name"].iat[index].rsplit(".", 1)[0].lower()
    # A .BDR or .BDP pairs only with a file of its own kind, while .EML and .BAD files of one
    # stem are the same message before and after the service gave up on it.
    if kind in ("badmail_reason", "badmail_envelope"):
        return f"{kind}:{stem}"
    return f"stem:{stem}"


def _diff_row(change: str, old: pd.DataFrame | None, old_index: int | None, new: pd.DataFrame | None,
              new_index: int | None) -> dict[str, object]:
    row: dict[str, object] = {"change": change, "old_role": "", "old_path": "", "new_role": "", "new_path": "",
                              "old_size": None, "new_size": None}
    for side, frame, index in (("old", old, old_index), ("new", new, new_index)):
        if frame is None or index is None:
            continue
        row[f"{side}_role"] = frame["role"].iat[index]
        row[f"{side}_path"] = frame["path"].iat[index]
        row[f"{side}_size"] = int(frame["size"].iat[index])
        row["message_id"] = frame["message_id"].iat[index]
        row["subject"] = frame["subject"].iat[index]
    return row


# Views for people: translated column names, readable ages, a chart of messages by folder and age.

# Age buckets of the chart: upper bounds and their catalog keys. The last bucket has no bound.
AGE_BUCKETS = ((pd.Timedelta(hours=1), "under_hour"), (pd.Timedelta(days=1), "under_day"),
               (pd.Timedelta(days=2), "under_two_days"), (None, "older"))
# Columns whose values are codes with a catalog text each.
_CODED_COLUMNS = {"change": "mailroot.change", "action": "mailroot_ops.action", "event": "mailroot_ops.event",
                  "kind": "mailroot.kind"}


def format_age(age: pd.Timedelta) -> str:
    """Return an age as days, hours and minutes in the user's language (negative ages count as 0)."""
    total_minutes = max(0, int(age.total_seconds() // 60))
    days, rest = divmod(total_minutes, 24 * 60)
    return message("mailroot.cli.age", days=days, hours=rest // 60, minutes=rest % 60)


def readable(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Return `frame` (or its `columns`) for display: catalog headers, ages as text, recipients one a line."""
    view = frame[columns] if columns is not None else frame
    shown = {}
    for column in view.columns:
        values = view[column]
        if column in _CODED_COLUMNS:
            values = values.map(lambda code, prefix=_CODED_COLUMNS[column]: message(f"{prefix}.{code}"))
        elif pd.api.types.is_timedelta64_dtype(values):
            values = values.map(lambda age: "-" if pd.isna(age) else format_age(age))
        elif values.dtype == object and len(values) and isinstance(values.iloc[0], list):
            values = values.map("\n".join)
        shown[message("mailroot.column.file" if column == "name" else f"mailroot.column.{column}")] = values
    # Object columns take "-" for missing values whatever their type was (nullable integers reject it).
    return pd.DataFrame(shown).astype(object).fillna("-")


def age_figure(inventory: pd.DataFrame):
    """Draw the messages in each folder as bars split by age, with the CJK font; return a RenderedFigure."""
    from adminkb import plotting  # matplotlib is slow to import, and the scan command does not need it

    messages = _message_rows(inventory, ["role", "age"])
    folders = [folder for folder in mailroot.FOLDER_NAMES if folder not in (mailroot.ROUTE, mailroot.SORTTEMP)]
    figure = plotting.new_figure(8.0, 3.6)
    axes = figure.add_subplot()
    left = np.zeros(len(folders))
    lower = pd.Timedelta(0)
    colors = ("#9ecae1", "#4292c6", "#f16913", "#a50f15")
    for (upper, key), color in zip(AGE_BUCKETS, colors):
        in_bucket = messages["age"] >= lower
        if upper is not None:
            in_bucket &= messages["age"] < upper
        counts = np.array([int(((messages["role"] == folder) & in_bucket).sum()) for folder in folders])
        axes.barh(folders, counts, left=left, color=color, label=message(f"mailroot.age_bucket.{key}"))
        left += counts
        lower = upper if upper is not None else lower
    axes.invert_yaxis()
    axes.set_xlabel(message("mailroot.figure.messages"))
    axes.set_title(message("mailroot.figure.title"))
    axes.legend(loc="lower right")
    return plotting.render_png(figure)
