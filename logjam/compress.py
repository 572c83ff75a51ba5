"""logjam-compress: compress finished hourly log files into DIR/archive/.

Selection is pure (``yield_old_logfiles``); the effects live in
``compress_logfile`` and ``compress_directory``, which never delete an
original before its compressed copy is durable and verified.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import itertools
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from logjam import fsutil
from logjam.cli import EXIT_STATUS_HELP, ArgumentParser, add_common_arguments, main_runner
from logjam.codecs import CODECS, CORRUPT_STREAM_ERRORS, GZIP, Codec, available_cores, codec_for_filename, crc32
from logjam.concurrency import block_stop_signals, map_concurrently
from logjam.errors import FileError, NotReady, Skipped, UsageError
from logjam.fsutil import directory_lock
from logjam.integrity import file_fingerprint
from logjam.logs import fields
from logjam.parse import LogFile, group_filenames, logfile_keyfunc, parse_filename, unparse_filename
from logjam.progress import Progress, progress
from logjam.runner import PassStats
from logjam.safety import check_directory_security, open_for_writing
from logjam.signals import Stop

log = logging.getLogger("logjam.compress")
R = TypeVar("R")

ONE_HOUR_PLUS = datetime.timedelta(hours=1, minutes=5)
ARCHIVE_DIRNAME = "archive"
LOCK_NAME = ".logjam-compress.lock"
DUPLICATE_MARK = "-logjam-compress-duplicate-timestamp"
MAX_DUPLICATES = 24  # NN runs 01..24, after the un-numbered duplicate name


# -- pure selection ---------------------------------------------------------

def select_superseded_by_new_file(logfiles: Sequence[LogFile]) -> list[LogFile]:
    """Takes LogFiles of one stream. Returns all but the newest: a newer file
    of the same stream means the writer has moved on."""
    return sorted(logfiles, key=logfile_keyfunc)[:-1]


def select_superseded_by_timestamp(
    logfiles: Iterable[LogFile], now: datetime.datetime
) -> list[LogFile]:
    """Takes LogFiles and the current time. Returns those whose hour is well
    over (timestamp more than 1 h 5 min before now)."""
    return [logfile for logfile in logfiles if now - logfile.timestamp > ONE_HOUR_PLUS]


def yield_old_logfiles(filenames: Iterable[str], now: datetime.datetime) -> Iterator[LogFile]:
    """Takes file names and the current time. Yields the finished LogFiles,
    sorted by logfile_keyfunc. Files stamped in the future are ignored and
    supersede nothing."""
    finished: set[LogFile] = set()
    for logfiles in group_filenames(filenames).values():
        current = [logfile for logfile in logfiles if logfile.timestamp <= now]
        finished.update(select_superseded_by_new_file(current))
        finished.update(select_superseded_by_timestamp(current, now))
    yield from sorted(finished, key=logfile_keyfunc)


def duplicate_timestamp_names(name: str) -> Iterator[str]:
    """Takes an archived file name. Yields the 25 names a duplicate of it may take:
    ``PREFIX-logjam-compress-duplicate-timestamp[-NN]-TIMESTAMP[-SUFFIX].EXT``."""
    logfile = parse_filename(name)
    if logfile is None:
        return
    for index in range(MAX_DUPLICATES + 1):
        number = f"-{index:02d}" if index else ""
        yield unparse_filename(
            logfile.prefix + DUPLICATE_MARK + number,
            logfile.timestamp,
            logfile.suffix,
            logfile.extension,
        )


def duplicate_timestamp_path(
    path: str, *, exists: Callable[[str], bool] = os.path.lexists
) -> str:
    """Takes the path of an archived file that already exists. Returns the first
    free duplicate path beside it; raises FileError when all 25 are taken."""
    directory, name = os.path.split(path)
    if parse_filename(name) is None:
        raise FileError(f"{path}: not a log file name")
    for candidate in duplicate_timestamp_names(name):
        candidate_path = os.path.join(directory, candidate)
        if not exists(candidate_path):
            return candidate_path
    raise FileError(f"{path}: all {MAX_DUPLICATES + 1} duplicate names are taken")


class LeftAlone(Skipped):
    """A file logjam leaves for the operator, warned about once per run."""


# Warnings already given in this run (LeftAlone, clock skew): a loop that
# repeats them every minute buries everything else in the log.
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def name_problem(name: str, extension: str, *, archived: Callable[[str], bool]) -> str | None:
    """Takes a log's name, the codec's extension and a test for names taken in
    the archive. Returns why the log cannot be archived under a name that
    fits NAME_MAX (to be left for the operator), or None."""
    final_name = name + extension
    if not fsutil.name_fits(final_name):
        return (f"{name}: name too long to archive ({len(os.fsencode(final_name))} bytes with "
                f"{extension}, the limit is {fsutil.NAME_MAX}); left alone: rename it")
    if not archived(final_name):
        return None
    if any(fsutil.name_fits(candidate) for candidate in duplicate_timestamp_names(final_name)):
        return None
    return (f"{name}: archive/{final_name} exists, and a duplicate name for this copy would be longer "
            f"than {fsutil.NAME_MAX} bytes; left alone: rename it or move archive/{final_name} away")


# -- effects ----------------------------------------------------------------

@dataclass(frozen=True)
class Compressed:
    """What compress_logfile did, for the log line and the caller's totals."""

    source: str
    archived: str
    original_size: int
    compressed_size: int


def compress_logfile(
    dir_fd: int,
    archive_fd: int,
    logfile: LogFile,
    *,
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
                length, checksum = _write_compressed(source_fd, written, codec, level, threads, check_stop)
                written.finish()
                fsutil.copy_metadata(source, temp_fd)  # writing moved the mtime
                os.fsync(temp_fd)
                _verify(check, temp_fd, length, checksum, name)
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
        _remove_original(dir_fd, name, source)
    finally:
        os.close(source_fd)
    return Compressed(name, archived, length, compressed_size)


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

    def write(self, data) -> int:
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

    def readinto(self, buffer) -> int:
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
    source_fd: int, written: _Written, codec: Codec, level: int | None, threads: int,
    check_stop: Callable[[], None],
) -> tuple[int, int]:
    length = checksum = 0
    writer = codec.open_writer(written, codec.default_level if level is None else level, threads)  # type: ignore[arg-type]
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


def _verify(check: _ReadBack, temp_fd: int, length: int, checksum: int, name: str) -> None:
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


REMOVING_MARKER = ".logjam-rm-"


def removing_name(name: str) -> str:
    """Takes a log's name. Returns the hidden name it has while being removed:
    fixed-size, and tied to the log's name by a digest, so that a pass after
    a crash can tell which log a leftover was."""
    return REMOVING_MARKER + fsutil.name_digest(name, 32)


def _remove_original(
    dir_fd: int, name: str, source: os.stat_result, *, in_window: Callable[[str], None] = lambda stage: None
) -> None:
    # Check and delete in one atomic step: move the name aside to a hidden
    # name first (a writer renaming a new version into place from now on
    # creates a new entry we never touch), then check what was moved, and
    # unlink it only if it is the very file that was compressed, unchanged.
    # A crash in between leaves the hidden name, which the next pass
    # recognises (recover_removals). in_window is a test seam: it runs
    # where a writer's rename would do harm.
    hidden = removing_name(name)
    in_window("before-move")
    try:
        moved = fsutil.rename_noreplace(dir_fd, name, hidden)
    except FileNotFoundError:
        return
    if not moved:
        log.warning("%s: a leftover %s is in the way; the original is kept for a later pass", name, hidden)
        return
    current = os.stat(hidden, dir_fd=dir_fd, follow_symlinks=False)
    if (current.st_dev, current.st_ino) != (source.st_dev, source.st_ino):
        log.warning("%s was replaced while being compressed; the new file is left for the next pass", name)
        _put_back(dir_fd, hidden, name, in_window=in_window)
        return
    if (current.st_size, current.st_mtime_ns) != (source.st_size, source.st_mtime_ns):
        # Appended to after the check (a writer that opens, appends, closes):
        # keep it; the next pass archives it again as a duplicate.
        log.warning("%s changed after it was compressed; kept for the next pass", name)
        _put_back(dir_fd, hidden, name, in_window=in_window)
        return
    in_window("before-unlink")
    os.unlink(hidden, dir_fd=dir_fd)
    fsutil.fsync_dir(dir_fd)


def _put_back(dir_fd: int, hidden: str, name: str, *, in_window: Callable[[str], None] = lambda stage: None) -> bool:
    # Never over a file that appeared under the name meanwhile: then both
    # stay, the displaced one under the first free duplicate name beside it,
    # a log name of its own stream that the next pass archives as any other.
    in_window("before-put-back")
    candidates = [name, *(fsutil.name_fits(n) and n for n in duplicate_timestamp_names(name))]
    for candidate in candidates:
        if candidate and fsutil.rename_noreplace(dir_fd, hidden, candidate):
            fsutil.fsync_dir(dir_fd)
            if candidate != name:
                log.warning("%s was re-created meanwhile; stored the displaced version as %s", name, candidate)
            return True
    log.warning("%s: cannot put a displaced version back (the name and its duplicate names are taken "
                "or too long); left in place as %s", name, hidden)
    return False


def recover_removals(dir_fd: int, log_dir: str, names: Sequence[str]) -> None:
    """Settles the hidden names a crash in the middle of _remove_original left
    in a log directory (callers hold its lock): a leftover whose archived copy
    reads back the same is removed, any other is put back under its name."""
    leftovers = [name for name in names if name.startswith(REMOVING_MARKER)]
    if not leftovers:
        return
    try:
        archive_fd: int | None = fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    except OSError:
        archive_fd = None
    try:
        archived = os.listdir(archive_fd) if archive_fd is not None else []
        # Which log name each archived file (and each current log) was.
        originals: dict[str, list[str]] = {}
        for archive_name in archived:
            original = _original_name(archive_name)
            if original is not None:
                originals.setdefault(removing_name(original), []).append(archive_name)
        by_hidden = {removing_name(n): n for n in map(_original_name, archived) if n}
        by_hidden.update({removing_name(n): n for n in names if parse_filename(n) is not None})
        for hidden in leftovers:
            original = by_hidden.get(hidden)
            if original is None:
                log.warning("%s/%s: left by an interrupted removal, but no archived file tells which log it "
                            "was; left in place (rename it to its log name to have it archived)", log_dir, hidden)
                continue
            if archive_fd is not None and _archived_already(dir_fd, hidden, archive_fd, originals.get(hidden, [])):
                os.unlink(hidden, dir_fd=dir_fd)
                fsutil.fsync_dir(dir_fd)
                log.info("%s/%s: finished removing %s (archived; left by an interrupted pass)",
                         log_dir, hidden, original)
            elif _put_back(dir_fd, hidden, original):
                log.warning("%s/%s: put back %s, left by an interrupted pass", log_dir, hidden, original)
    finally:
        if archive_fd is not None:
            os.close(archive_fd)


def _original_name(archive_name: str) -> str | None:
    # archive/NAME.gz (or a duplicate name of it) was log NAME.
    codec = codec_for_filename(archive_name)
    if codec is None or parse_filename(archive_name) is None:
        return None
    base = archive_name[: -len(codec.extension)]
    return re.sub(re.escape(DUPLICATE_MARK) + r"(-\d\d)?(?=-\d)", "", base, count=1)


def _archived_already(dir_fd: int, hidden: str, archive_fd: int, archive_names: list[str]) -> bool:
    try:
        fd, _ = fsutil.open_regular(dir_fd, hidden)
    except (OSError, Skipped):
        return False
    try:
        local = file_fingerprint(fd, None)
    finally:
        os.close(fd)
    for archive_name in archive_names:
        try:
            archived_fd, _ = fsutil.open_regular(archive_fd, archive_name)
        except (OSError, Skipped):
            continue
        try:
            found = file_fingerprint(archived_fd, codec_for_filename(archive_name))
        except CORRUPT_STREAM_ERRORS:
            continue
        finally:
            os.close(archived_fd)
        if (found.log_length, found.log_sha256) == (local.size, local.sha256):
            return True
    return False


def open_archive_dir(dir_fd: int, log_dir: str) -> int:
    """Opens (creating when missing) DIR/archive, never through a symbolic link.
    A new archive directory takes the log directory's permissions and owner."""
    try:
        return fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise FileError(f"{log_dir}/{ARCHIVE_DIRNAME}: not a directory (or a symbolic link)") from error
    parent = os.fstat(dir_fd)
    # As the logs' directory, whatever the umask, with its sticky bit (under
    # a sticky world-writable directory, no user may delete or replace
    # another's archived logs) and its set-group-ID bit (new files keep the
    # shared group). Never the set-user-ID bit.
    mode = stat.S_IMODE(parent.st_mode) & (0o777 | stat.S_ISVTX | stat.S_ISGID)
    with contextlib.suppress(FileExistsError):
        os.mkdir(ARCHIVE_DIRNAME, mode & 0o777, dir_fd=dir_fd)
        fsutil.fsync_dir(dir_fd)
    archive_fd = fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    if os.geteuid() == 0:
        os.fchown(archive_fd, parent.st_uid, parent.st_gid)
    # (Not root: under set-group-ID the kernel gave it the parent's group.)
    os.fchmod(archive_fd, mode)
    log.info("created %s/%s", log_dir, ARCHIVE_DIRNAME)
    return archive_fd


def check_archive_dir(log_dir: str, dir_fd: int, *, allow_insecure: bool = False) -> None:
    """Refuses (UsageError) an existing DIR/archive that is not a directory (a
    file, a symbolic link) or, as root, one a non-root user can write: these
    do not go away by themselves, so they are configuration, not a pass's error."""
    path = f"{log_dir}/{ARCHIVE_DIRNAME}"
    try:
        info = os.stat(ARCHIVE_DIRNAME, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return  # made on the first pass with something to archive
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        kind = "a regular file" if stat.S_ISREG(info.st_mode) else fsutil.describe_type(info.st_mode)
        raise UsageError(f"{path}: {kind}, not a directory (logjam-compress keeps the archive there); move it away")
    archive_fd = fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    try:
        check_directory_security(path, archive_fd, allow_insecure=allow_insecure)
    finally:
        os.close(archive_fd)


@dataclass(frozen=True)
class CompressOptions:
    """How to compress, and how careful to be about files still in use."""

    codec: Codec = GZIP
    level: int | None = None
    threads: int = 1
    min_quiet: float = 60.0  # seconds without a change before a file is taken
    wait_lock: bool = False
    allow_insecure_dir: bool = False
    dry_run: bool = False


def compress_directory(
    log_dir: str,
    *,
    now: datetime.datetime,
    options: CompressOptions = CompressOptions(),
    stop: Stop | None = None,
) -> PassStats:
    """Compresses every finished log in log_dir. Returns what it did and left."""
    check_stop = stop.check if stop is not None else (lambda: None)
    dir_fd = fsutil.open_given_dir(log_dir)
    try:
        check_directory_security(log_dir, dir_fd, allow_insecure=options.allow_insecure_dir)
        if options.dry_run:
            return _dry_run(log_dir, dir_fd, now, options)
        with directory_lock(dir_fd, LOCK_NAME, wait=options.wait_lock, check_stop=check_stop) as locked:
            if not locked:
                log.info("%s: another logjam-compress is working here; skipping", log_dir)
                return PassStats()
            names = os.listdir(dir_fd)
            if any(name.startswith(REMOVING_MARKER) for name in names):
                recover_removals(dir_fd, log_dir, names)
                names = os.listdir(dir_fd)
            finished = list(yield_old_logfiles(names, now))
            if not finished:
                log.debug("%s: nothing to compress", log_dir)
                return PassStats()
            archive_fd = open_archive_dir(dir_fd, log_dir)
            try:
                check_directory_security(f"{log_dir}/{ARCHIVE_DIRNAME}", archive_fd,
                                         allow_insecure=options.allow_insecure_dir)
                for name in fsutil.remove_stale_temp_files(archive_fd):
                    log.info("removed %s/%s/%s left by an interrupted pass", log_dir, ARCHIVE_DIRNAME, name)
                not_ready = _readiness(log_dir, options.min_quiet)
                return _compress_all(log_dir, dir_fd, archive_fd, finished, options, check_stop, not_ready)
            finally:
                os.close(archive_fd)
    finally:
        os.close(dir_fd)


def _dry_run(log_dir: str, dir_fd: int, now: datetime.datetime, options: CompressOptions) -> PassStats:
    # The same checks as a real pass, reading only: no lock, no archive/, no temporary file.
    stats = PassStats()
    not_ready = _readiness(log_dir, options.min_quiet)
    archive = os.path.join(log_dir, ARCHIVE_DIRNAME)

    def archived(final_name: str) -> bool:
        return os.path.lexists(os.path.join(archive, final_name))

    def check_and_open(logfile: LogFile) -> tuple[int, os.stat_result]:
        problem = name_problem(logfile.filename, options.codec.extension, archived=archived)
        if problem is not None:
            raise LeftAlone(problem)
        _warn_if_skewed(dir_fd, log_dir, logfile.filename)
        return open_source(dir_fd, logfile.filename, not_ready)

    for logfile in yield_old_logfiles(os.listdir(dir_fd), now):
        opened = _attempt(lambda: check_and_open(logfile), log_dir, logfile, stats)
        if opened is None:
            continue
        source_fd, source = opened
        os.close(source_fd)
        print(f"would compress {log_dir}/{logfile.filename} -> "
              f"{log_dir}/{ARCHIVE_DIRNAME}/{logfile.filename}{options.codec.extension} ({source.st_size} bytes)",
              flush=True)
        stats.done(source.st_size)
    return stats


CLOCK_SKEW = 300  # seconds an mtime may be ahead of the clock before it is taken for clock skew


def _warn_if_skewed(dir_fd: int, log_dir: str, name: str) -> None:
    # An mtime ahead of the clock (a bad hardware clock, a writer on another
    # host) would make --min-quiet wait for as long as the skew lasts.
    try:
        mtime = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime
    except OSError:
        return
    ahead = mtime - time.time()
    if ahead > CLOCK_SKEW:
        _warn_once(f"{log_dir}/{name}: modified {ahead:.0f} s in the future (clock skew?); --min-quiet "
                   "cannot apply, deciding by its name's hour and whether a process still writes it")


def _readiness(log_dir: str, min_quiet: float) -> Callable[[os.stat_result], str | None]:
    # A late writer (rsyslog keeps finished hours open) may still append:
    # wait until no process holds the file open for writing and it has been
    # quiet for min_quiet seconds. /proc is read once per pass, when needed.
    busy: set[tuple[int, int]] | None = None

    def not_ready(info: os.stat_result) -> str | None:
        nonlocal busy
        age = time.time() - info.st_mtime
        if age < -CLOCK_SKEW:
            pass  # a clock was wrong (see _warn_if_skewed): the name's hour and the writer check decide
        elif age < min_quiet:
            return f"modified {max(age, 0):.0f} s ago (--min-quiet {min_quiet:g})"
        if busy is None:
            busy = open_for_writing()
        if (info.st_dev, info.st_ino) in busy:
            return "still open for writing by a process"
        return None

    return not_ready


def _compress_all(
    log_dir: str, dir_fd: int, archive_fd: int, logfiles: list[LogFile], options: CompressOptions,
    check_stop: Callable[[], None], not_ready: Callable[[os.stat_result], str | None],
) -> PassStats:
    sizes = {logfile: fsutil.size_or_zero(dir_fd, logfile.filename) for logfile in logfiles}
    total = sum(sizes.values())
    if options.threads > 1:
        logfiles = sorted(logfiles, key=sizes.__getitem__, reverse=True)  # largest first: no long tail
    with progress("compressing", files=len(logfiles), size=total) as bar:
        return _compress_each(log_dir, dir_fd, archive_fd, logfiles, options, check_stop, not_ready, bar)


def _compress_each(
    log_dir: str, dir_fd: int, archive_fd: int, logfiles: list[LogFile],
    options: CompressOptions, check_stop: Callable[[], None],
    not_ready: Callable[[os.stat_result], str | None], bar: Progress,
) -> PassStats:
    threads = options.threads

    stats = PassStats()

    def archived(final_name: str) -> bool:
        try:
            os.stat(final_name, dir_fd=archive_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def compress_one(logfile: LogFile, file_threads: int) -> Compressed:
        problem = name_problem(logfile.filename, options.codec.extension, archived=archived)
        if problem is not None:
            raise LeftAlone(problem)
        _warn_if_skewed(dir_fd, log_dir, logfile.filename)
        return compress_logfile(
            dir_fd, archive_fd, logfile, codec=options.codec, level=options.level,
            threads=file_threads, check_stop=check_stop, not_ready=not_ready,
        )

    def one(logfile: LogFile, file_threads: int) -> None:
        check_stop()
        started = time.monotonic()
        done = _attempt(
            lambda: compress_one(logfile, file_threads),
            log_dir, logfile, stats,
        )
        if done is None:
            return
        stats.done(done.original_size)
        bar.advance(done.original_size)
        ratio = done.compressed_size / done.original_size if done.original_size else 1.0
        log.info(
            "compressed %s/%s -> %s/%s (%d -> %d bytes, %.1f%%)",
            log_dir, done.source, ARCHIVE_DIRNAME, done.archived,
            done.original_size, done.compressed_size, 100 * ratio,
            extra=fields("compressed", file=f"{log_dir}/{done.source}",
                         destination=f"{log_dir}/{ARCHIVE_DIRNAME}/{done.archived}", bytes_in=done.original_size,
                         bytes_out=done.compressed_size, duration=round(time.monotonic() - started, 3)),
        )

    # Several files go side by side, one thread each, whatever their size:
    # what a file does alone on one thread (open, fsync, link, fsync the
    # directories, the interpreter's own work between pieces) then overlaps
    # another file's compressing. The last file to start gets every thread,
    # so that a long file at the end does not leave cores idle. A lone file
    # gets every thread.
    if threads > 1 and len(logfiles) > 1:
        started = itertools.count(1)

        def side_by_side(logfile: LogFile) -> None:
            one(logfile, threads if next(started) == len(logfiles) else 1)

        map_concurrently(side_by_side, logfiles, workers=threads)
    else:
        for logfile in logfiles:
            one(logfile, threads)
    return stats


def _attempt(action: Callable[[], R], log_dir: str, logfile: LogFile, stats: PassStats) -> R | None:
    """Runs action for one file. Returns its result, or None after logging why
    not and counting the file as waiting (and failed, for an error)."""
    try:
        return action()
    except NotReady as waiting:
        log.info("%s/%s", log_dir, waiting, extra=fields("skipped", file=f"{log_dir}/{logfile.filename}",
                                                          error=_reason(waiting, logfile.filename)))
        stats.waiting(logfile.timestamp)
    except LeftAlone as left:
        _warn_once(f"{log_dir}/{left}")
        stats.waiting(logfile.timestamp)
    except Skipped as skipped:
        log.warning("%s/%s", log_dir, skipped, extra=fields("skipped", file=f"{log_dir}/{logfile.filename}",
                                                             error=_reason(skipped, logfile.filename)))
    except (FileError, OSError) as error:
        log.error("%s/%s: %s", log_dir, logfile.filename, _reason(error, logfile.filename),
                  extra=fields("failed", file=f"{log_dir}/{logfile.filename}",
                               error=_reason(error, logfile.filename)))
        stats.waiting(logfile.timestamp, failed=True)
    return None


def _reason(error: Exception, name: str) -> str:
    text = str(error)
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    return text.removeprefix(f"{name}: ")


# -- command line -----------------------------------------------------------

EPILOG = """\
examples:
  logjam-compress --once /var/log/app            one pass, from cron
  logjam-compress /var/log/app /var/log/nginx    poll every 60 s (runit, systemd)

A log file is named PREFIX-YYYYMMDDTHHMMZ[-SUFFIX].EXT (UTC). It is finished
when a newer file of the same stream exists or its hour ended over 5 minutes
ago; it is then compressed to DIR/archive/NAME.gz and removed.
""" + EXIT_STATUS_HELP


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="logjam-compress",
        description="Compress finished hourly log files into DIR/archive/.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directories", nargs="+", metavar="DIR", help="directory of hourly log files")
    parser.add_argument("--codec", choices=sorted(CODECS), default=GZIP.name, help="default: %(default)s")
    parser.add_argument("--level", type=int, default=None,
                        help="compression level: gzip 1-12 (libdeflate; default 7), zstd 1-22 (default 3)")
    parser.add_argument("--min-quiet", type=float, default=60.0, metavar="SECONDS",
                        help="leave a finished file until it has not changed for this long "
                             "(late writers; default: %(default)g). With 0, a writer that opens, "
                             "appends and closes may get a second archive holding its old lines again")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="compression threads (default: all cores, here %d)" % available_cores())
    add_common_arguments(parser)
    return parser


def make_job(args: argparse.Namespace, *, clock: Callable[[], datetime.datetime] | None = None):
    """Checks the directories. Returns the pass function the runner calls."""
    clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
    _warned.clear()  # once per run
    for log_dir in args.directories:
        dir_fd = fsutil.open_given_dir(log_dir)
        try:
            check_directory_security(log_dir, dir_fd, allow_insecure=args.allow_insecure_dir)
            check_archive_dir(log_dir, dir_fd, allow_insecure=args.allow_insecure_dir)
        finally:
            os.close(dir_fd)
    codec = CODECS[args.codec]
    if args.level is not None and args.level not in codec.levels:
        raise UsageError(f"--level {args.level}: {codec.name} levels are "
                         f"{codec.levels.start}-{codec.levels.stop - 1}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: must be at least 1")
    if args.min_quiet < 0:
        raise UsageError(f"--min-quiet {args.min_quiet:g}: must not be negative")
    options = CompressOptions(
        codec=codec, level=args.level, threads=args.threads or available_cores(),
        min_quiet=args.min_quiet, wait_lock=args.wait_lock, allow_insecure_dir=args.allow_insecure_dir,
        dry_run=args.dry_run,
    )

    def job(stop: Stop) -> PassStats:
        stats = PassStats()
        for log_dir in args.directories:
            try:
                stats.add(compress_directory(log_dir, now=clock(), options=options, stop=stop))
            except UsageError as error:  # a directory vanished since start-up
                log.error("%s", error)
                stats.errors += 1
            except (FileError, OSError) as error:
                log.error("%s: %s", log_dir, _reason(error, log_dir))
                stats.errors += 1
                stats.add(finished_backlog(log_dir, clock()))
        return stats

    return job


def finished_backlog(log_dir: str, now: datetime.datetime) -> PassStats:
    """Takes a directory whose pass failed. Returns its finished files as
    waiting, from a listing only, for the metrics ({} if it cannot be listed)."""
    stats = PassStats()
    try:
        names = os.listdir(log_dir)
    except OSError:
        return stats
    for logfile in yield_old_logfiles(names, now):
        stats.waiting(logfile.timestamp)
    return stats


def describe(args: argparse.Namespace) -> str:
    """What a compress loop works on, for its start line."""
    return " ".join(args.directories)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of logjam-compress. Returns the exit status."""
    return main_runner("logjam-compress", build_parser(), make_job, argv, describe=describe,
                       start_backlog=start_backlog)


def start_backlog(args: argparse.Namespace) -> PassStats:
    """The finished logs of every directory, for the metrics of a run that
    stopped at its start (a configuration error): the backlog still shows."""
    now = datetime.datetime.now(datetime.timezone.utc)
    stats = PassStats()
    for log_dir in args.directories:
        stats.add(finished_backlog(log_dir, now))
    return stats


if __name__ == "__main__":
    raise SystemExit(main())
