"""The compression write path: one log compressed into a temporary file in
the archive, read back and verified, then published under its final name."""

from __future__ import annotations

import io
import itertools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from logjam import fsutil, removal
from logjam.archive import MAX_DUPLICATES, duplicate_timestamp_names
from logjam.codecs import CORRUPT_STREAM_ERRORS, GZIP, Codec, crc32
from logjam.concurrency import block_stop_signals
from logjam.errors import FileError, NotReady, Skipped
from logjam.parse import LogFile

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

log = logging.getLogger("logjam.compress")


@dataclass(frozen=True, kw_only=True)
class Compressed:
    """What compress_logfile did, for the log line and the caller's totals."""

    source: str
    archived: str
    original_size: int
    compressed_size: int


def compress_logfile(
    dir_fd: int,
    logfile: LogFile,
    *,
    archive_fd: int,
    codec: Codec = GZIP,
    level: int | None = None,
    threads: int = 1,
    check_stop: Callable[[], None] = lambda: None,
    not_ready: Callable[[os.stat_result], str | None] = lambda info: None,
) -> Compressed:
    """Compresses one finished log into the archive directory, then removes the original.

    In order: write a hidden temporary file, fsync it, check that it reads
    back to the CRC-32 and length of what was read (a thread reads it back
    while it is written, so the check ends moments after the fsync), link it
    to a free name,
    fsync the archive directory, and only then unlink the original and fsync
    its directory. On any failure the original stays and the temporary file
    is removed. Raises FileError (or OSError) for this file; Skipped when it
    must not be touched (NotReady when not_ready names a reason to wait);
    Interrupted on a stop.
    """
    name = logfile.filename
    source_fd, source = open_source(dir_fd, name, not_ready)
    try:
        final_name = name + codec.extension
        with fsutil.temp_file(archive_fd, final_name) as (temp_fd, temp):
            fsutil.copy_metadata(source, temp_fd)  # narrow permissions before any byte lands
            written = _Written(temp_fd)
            check = _ReadBack(written, codec)  # reads the file back while it is written
            try:
                length, checksum = _write_compressed(source_fd, written, codec, level=level, threads=threads,
                                                     check_stop=check_stop)
                written.finish()
                fsutil.copy_metadata(source, temp_fd)  # writing moved the mtime
                os.fsync(temp_fd)
                _verify(check, temp_fd, length=length, checksum=checksum, name=name)
            finally:
                check.abandon()
            after = os.fstat(source_fd)
            if after.st_size != length or after.st_mtime_ns != source.st_mtime_ns:
                raise FileError(f"{name}: changed while being compressed; will retry")
            compressed_size = os.fstat(temp_fd).st_size
            candidates = itertools.chain([final_name], duplicate_timestamp_names(final_name))
            archived = fsutil.publish(archive_fd, temp, candidates)
            if archived is None:
                raise FileError(
                    f"{name}: archive/{final_name} and all {MAX_DUPLICATES + 1} duplicate "
                    "names exist; original left in place"
                )
        if archived != final_name:
            log.warning("archive/%s exists; stored the late copy of %s as archive/%s",
                        final_name, name, archived)
        removal.remove_original(dir_fd, name, source)  # through the module: tests patch the seam
    finally:
        os.close(source_fd)
    return Compressed(source=name, archived=archived, original_size=length, compressed_size=compressed_size)


def open_source(
    dir_fd: int, name: str, not_ready: Callable[[os.stat_result], str | None]
) -> tuple[int, os.stat_result]:
    """Opens a finished log for reading, never through a link. Returns (fd, stat).
    Raises Skipped for what must not be touched, NotReady for what is still
    being written, FileError if it cannot be read."""
    try:
        source_fd, source = fsutil.open_regular(dir_fd, name)
    except OSError as error:
        raise FileError(f"{name}: cannot open: {error.strerror}") from error
    try:
        if source.st_nlink > 1 and os.geteuid() == 0:
            raise Skipped(f"{name}: has {source.st_nlink} hard links (maybe to a file that is not a log); left alone")
        reason = not_ready(source)
        if reason is not None:
            raise NotReady(f"{name}: {reason}; will take it on a later pass")
    except BaseException:
        os.close(source_fd)
        raise
    return source_fd, source


READ_SIZE = 4 << 20  # one gzip member per read: no copy between the read and libdeflate


class _Written(io.RawIOBase):
    """The temporary file, as the codec writes it: counts the bytes that
    have landed and wakes the thread reading them back."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.size = 0
        self.finished = False
        self.abandoned = False
        self.changed = threading.Condition()

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        count = os.write(self.fd, data)
        with self.changed:
            self.size += count
            self.changed.notify_all()
        return count

    def finish(self) -> None:
        with self.changed:
            self.finished = True
            self.changed.notify_all()


class _Abandoned(Exception):
    """The file is being given up: the read-back stops."""


class _Follower(io.RawIOBase):
    """Reads _Written's file from the start, waiting for each byte until the
    codec has written it; end of file once the writing has finished."""

    def __init__(self, written: _Written) -> None:
        super().__init__()
        self.written = written
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        written = self.written
        with written.changed:
            while self.position >= written.size and not written.finished and not written.abandoned:
                written.changed.wait()
            if written.abandoned:
                raise _Abandoned()
            available = written.size - self.position
        if available <= 0:
            return 0
        with memoryview(buffer) as view:
            count = os.preadv(written.fd, [view[:available]], self.position)
        self.position += count
        return count


class _ReadBack:
    """Decompresses the temporary file on its own thread as it is written:
    its length and CRC-32, or what went wrong, for _verify."""

    def __init__(self, written: _Written, codec: Codec) -> None:
        self.written = written
        self.follower = _Follower(written)
        self.codec = codec
        self.length = self.checksum = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="logjam-read-back", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        block_stop_signals()
        length = checksum = 0
        try:
            with self.codec.open_reader(self.follower) as reader:  # type: ignore[arg-type]
                while True:
                    chunk = reader.read(READ_SIZE)
                    if not chunk:
                        break
                    length += len(chunk)
                    checksum = crc32(chunk, checksum)
        except _Abandoned:
            return
        except BaseException as error:  # handed to the caller's thread
            self.error = error
        self.length, self.checksum = length, checksum

    def result(self) -> tuple[int, int, int]:
        """Waits for the end. Returns (length, CRC-32, compressed bytes read)."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.length, self.checksum, self.follower.position

    def abandon(self) -> None:
        with self.written.changed:
            self.written.abandoned = True
            self.written.changed.notify_all()
        self.thread.join()


def _write_compressed(
    source_fd: int, written: _Written, codec: Codec, *, level: int | None, threads: int,
    check_stop: Callable[[], None],
) -> tuple[int, int]:
    length = checksum = 0
    writer = codec.open_writer(written, level=codec.default_level if level is None else level, threads=threads)  # type: ignore[arg-type]
    with writer:
        while True:
            check_stop()
            chunk = os.pread(source_fd, READ_SIZE, length)
            if not chunk:
                break
            writer.write(chunk)
            length += len(chunk)
            checksum = crc32(chunk, checksum)
    return length, checksum


def _verify(check: _ReadBack, temp_fd: int, *, length: int, checksum: int, name: str) -> None:
    # Called after the fsync: the bytes checked are the file's bytes (read
    # with pread from the same file, through the page cache the fsync
    # wrote out), all of them and nothing more.
    try:
        read_length, read_checksum, compressed = check.result()
    except CORRUPT_STREAM_ERRORS as error:
        raise FileError(f"{name}: compressed copy does not read back ({error}); original kept") from None
    if (read_length, read_checksum) != (length, checksum):
        raise FileError(
            f"{name}: compressed copy does not match (read back {read_length} bytes, "
            f"CRC-32 {read_checksum:08x}; expected {length} bytes, {checksum:08x})"
        )
    size = os.fstat(temp_fd).st_size
    if compressed != size:
        raise FileError(f"{name}: compressed copy has {size} bytes, of which {compressed} were checked")
