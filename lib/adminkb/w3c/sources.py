"""Log inputs: files, folders and .gz/.zip archives, read as chunks of whole lines.

A folder contributes its `*.log`, `*.gz` and `*.zip` files but not its subfolders, because
`LogFiles` has one subfolder per service and their logs should not be mixed. A `.gz`
file contains one log, and a `.zip` archive contributes its `*.log` members. Archives are
recognised by their first bytes, so a renamed archive still opens.
"""

from __future__ import annotations

import logging
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from adminkb.errors import InputError, os_error_text

log = logging.getLogger("adminkb.w3c")

FOLDER_SUFFIXES = (".log", ".gz", ".zip")
ARCHIVE_MEMBER_SUFFIX = ".log"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"

# Bytes read per step when the caller gives no size, as the line-by-line readers of the IIS and
# NCSA formats do. The W3C reader reads in steps of its own stretch size.
CHUNK_SIZE = 16 * 1024 * 1024

PathInput = str | os.PathLike[str]


@dataclass(frozen=True)
class LogSource:
    """One log to read: a file on disk, the content of a .gz file, or one member of a .zip.

    `name` is what rows show as their source file (`ex260302.log`, `logs.zip/ex260302.log`),
    and `path` is the file on disk that contains it.
    """

    name: str
    path: Path
    open: Callable[[], BinaryIO]


def as_path_list(paths: PathInput | Iterable[PathInput]) -> list[Path]:
    """Return `paths` (one path or several) as a list of `Path`."""
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(path) for path in paths]


def expand_paths(paths: PathInput | Iterable[PathInput]) -> list[LogSource]:
    """Return the logs that `paths` name, in order: folders sorted by file name, archives by member.

    Raises InputError for a missing or inaccessible path, a path that is neither a file nor a
    folder (a named pipe, say), a folder that cannot be listed or has no logs, an unreadable
    archive, or an archive without `.log` members.
    """
    requested = as_path_list(paths)
    if not requested:
        raise InputError("w3c.no_paths", next_key="w3c.no_paths_next")
    sources: list[LogSource] = []
    for path in requested:
        mode = _path_mode(path)
        if stat.S_ISDIR(mode):
            for file in _folder_logs(path):
                sources.extend(_file_sources(file))
        elif stat.S_ISREG(mode):
            sources.extend(_file_sources(path))
        else:
            raise InputError("w3c.not_a_file", value=str(path), next_key="w3c.not_a_file_next")
    return sources


def _path_mode(path: Path) -> int:
    """Return the `st_mode` of `path`, following links, or raise InputError when it cannot be reached."""
    try:
        return path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise InputError("w3c.path_not_found", value=str(path), next_key="w3c.path_not_found_next") from None
    except OSError as error:
        # A folder above the path that this account may not open, for example.
        raise InputError("w3c.inaccessible_path", value=str(path), detail=os_error_text(error),
                         next_key="w3c.inaccessible_path_next") from None


def _folder_logs(folder: Path) -> list[Path]:
    """Return the regular `*.log`, `*.gz` and `*.zip` files of `folder`, sorted by name without case."""
    try:
        files = [entry for entry in folder.iterdir()
                 if entry.suffix.lower() in FOLDER_SUFFIXES and entry.is_file()]
    except OSError as error:
        raise InputError("w3c.unreadable_folder", value=str(folder), detail=os_error_text(error),
                         next_key="w3c.unreadable_folder_next") from None
    if not files:
        raise InputError("w3c.no_logs_in_folder", value=str(folder), next_key="w3c.no_logs_in_folder_next")
    return sorted(files, key=lambda entry: entry.name.lower())


def _file_sources(path: Path) -> list[LogSource]:
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise InputError("w3c.unreadable_file", value=str(path), detail=os_error_text(error),
                         next_key="w3c.unreadable_file_next") from None
    if magic.startswith(GZIP_MAGIC):
        return [LogSource(displayable_name(path), path, lambda: _GzipStream(path))]
    if magic in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        return _zip_sources(path)
    return [LogSource(displayable_name(path), path, lambda: open(path, "rb"))]


def _zip_sources(path: Path) -> list[LogSource]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info.filename for info in archive.infolist()
                       if not info.is_dir() and info.filename.lower().endswith(ARCHIVE_MEMBER_SUFFIX)]
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError("w3c.bad_archive", value=str(path), detail=str(error), next_key="w3c.bad_archive_next") from None
    if not members:
        raise InputError("w3c.no_logs_in_archive", value=str(path), next_key="w3c.no_logs_in_archive_next")
    members.sort(key=str.lower)
    # zipfile.Path writes a member as `archive.zip/member`; rows use the same form.
    return [LogSource(f"{displayable_name(path)}/{member}", path, _zip_opener(path, member)) for member in members]


def displayable_name(path: Path) -> str:
    """Return `path` as text, with bytes of the name that are not UTF-8 replaced by U+FFFD.

    Python keeps such bytes (a Big5 file name on Linux, say) as surrogate escapes, which pyarrow
    and most output encoders reject.
    """
    text = str(path)
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _zip_opener(path: Path, member: str) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        archive = zipfile.ZipFile(path)
        try:
            return _ZipMemberStream(archive, archive.open(member))
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as error:
            # RuntimeError: the member is encrypted; NotImplementedError: an unknown compression method.
            archive.close()
            raise InputError("w3c.bad_archive", value=f"{path}/{member}", detail=str(error),
                             next_key="w3c.bad_archive_next") from None
    return open_member


class _ZipMemberStream:
    """A member stream that closes its archive too, and reports damage as InputError."""

    def __init__(self, archive: zipfile.ZipFile, member: BinaryIO) -> None:
        self._archive = archive
        self._member = member
        self.name = member.name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._member.read(size)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise InputError("w3c.bad_archive", value=f"{self._archive.filename}/{self.name}", detail=str(error),
                             next_key="w3c.bad_archive_next") from None

    def readline(self) -> bytes:
        try:
            return self._member.readline()
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise InputError("w3c.bad_archive", value=f"{self._archive.filename}/{self.name}", detail=str(error),
                             next_key="w3c.bad_archive_next") from None

    def close(self) -> None:
        self._member.close()
        self._archive.close()

    def __enter__(self) -> _ZipMemberStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _GzipStream:
    """A .gz stream that ends quietly where a cut-off archive ends.

    A log copied while it was still being compressed lacks the end of its gzip stream. The
    standard `gzip` module then raises EOFError and drops what it had inflated in that call
    (checked with Python 3.11), so this stream inflates with zlib itself. Every byte before the
    cut is returned, and only the last, incomplete line is lost, which the reader reports as
    cut off. Several gzip members in one file are read one after the other. Damaged data
    raises InputError.
    """

    _RAW_BLOCK = 1024 * 1024

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file = open(path, "rb")
        self._inflater = zlib.decompressobj(wbits=31)
        self._buffer = bytearray()
        self._finished = False
        self.cut_off = False

    def _fill(self, minimum: int) -> None:
        while len(self._buffer) < minimum and not self._finished:
            data = self._file.read(self._RAW_BLOCK)
            if not data:
                self._finished = True
                if not self._inflater.eof:
                    self.cut_off = True
                    log.warning("%s: gzip stream truncated; reading the data before the cut", self._path)
                return
            try:
                while data:
                    if self._inflater.eof:
                        self._inflater = zlib.decompressobj(wbits=31)
                    self._buffer += self._inflater.decompress(data)
                    data = self._inflater.unused_data if self._inflater.eof else b""
            except zlib.error as error:
                raise InputError("w3c.bad_archive", value=str(self._path), detail=str(error),
                                 next_key="w3c.bad_archive_next") from None

    def _take(self, size: int) -> bytes:
        head = bytes(memoryview(self._buffer)[:size])
        del self._buffer[:size]
        return head

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            self._fill(1 << 62)
            size = len(self._buffer)
        self._fill(size)
        return self._take(size)

    def readline(self) -> bytes:
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end != -1:
                return self._take(end + 1)
            if self._finished:
                return self._take(len(self._buffer))
            searched = len(self._buffer)
            self._fill(len(self._buffer) + self._RAW_BLOCK)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _GzipStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_all(source: LogSource) -> bytes:
    """Return the whole content of `source`; for the line-by-line readers (IIS and NCSA formats)."""
    return b"".join(chunk for chunk, _ in iter_line_chunks(source))


def iter_line_chunks(source: LogSource, size: int = CHUNK_SIZE) -> Iterator[tuple[bytes, bool]]:
    """Yield `(chunk, ends_with_line_end)` pieces of `source` that split only after a line feed.

    Each piece is about `size` bytes plus the rest of the line it ends in. Only the last piece
    can lack a final line feed, when the file does not end with one.
    """
    try:
        stream = source.open()
    except OSError as error:
        raise InputError("w3c.unreadable_file", value=source.name, detail=os_error_text(error),
                         next_key="w3c.unreadable_file_next") from None
    with stream:
        while True:
            try:
                block = stream.read(size)
                if block and not block.endswith(b"\n"):
                    # Completing the line costs one copy of the piece, no more.
                    block += stream.readline()
            except OSError as error:
                raise InputError("w3c.unreadable_file", value=source.name, detail=os_error_text(error),
                                 next_key="w3c.unreadable_file_next") from None
            if not block:
                return
            yield block, block.endswith(b"\n")
