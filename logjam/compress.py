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
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from logjam import fsutil
from logjam.codecs import CODECS, CORRUPT_STREAM_ERRORS, GZIP, Codec, available_cores, crc32
from logjam.errors import FileError, NotReady, Skipped, UsageError
from logjam.parse import LogFile, group_filenames, logfile_keyfunc, parse_filename, unparse_filename
from logjam.progress import Progress, progress
from logjam.safety import check_directory_security, open_for_writing
from logjam.service import (
    EXIT_STATUS_HELP,
    ArgumentParser,
    PassStats,
    Stop,
    add_common_arguments,
    directory_lock,
    fields,
    main_runner,
    map_concurrently,
)

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

    In order: write a hidden temporary file, fsync it, read it back and check
    its CRC-32 and length against what was read, link it to a free name,
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
            length, checksum = _write_compressed(source_fd, temp_fd, codec, level, threads, check_stop)
            fsutil.copy_metadata(source, temp_fd)  # writing moved the mtime
            os.fsync(temp_fd)
            _verify(temp_fd, codec, length, checksum, name, check_stop)
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


def _write_compressed(
    source_fd: int, temp_fd: int, codec: Codec, level: int | None, threads: int,
    check_stop: Callable[[], None],
) -> tuple[int, int]:
    length = checksum = 0
    with io.FileIO(temp_fd, "wb", closefd=False) as raw:
        writer = codec.open_writer(raw, codec.default_level if level is None else level, threads)
        with writer:
            for chunk in fsutil.read_chunks(source_fd, check=check_stop):
                writer.write(chunk)
                length += len(chunk)
                checksum = crc32(chunk, checksum)
        raw.flush()
    return length, checksum


def _verify(
    temp_fd: int, codec: Codec, length: int, checksum: int, name: str,
    check_stop: Callable[[], None],
) -> None:
    read_length = read_checksum = 0
    try:
        with io.FileIO(temp_fd, "rb", closefd=False) as raw:
            raw.seek(0)
            with codec.open_reader(raw) as reader:
                while True:
                    check_stop()
                    chunk = reader.read(fsutil.CHUNK_SIZE)
                    if not chunk:
                        break
                    read_length += len(chunk)
                    read_checksum = crc32(chunk, read_checksum)
    except CORRUPT_STREAM_ERRORS as error:
        raise FileError(f"{name}: compressed copy does not read back ({error}); original kept") from None
    if (read_length, read_checksum) != (length, checksum):
        raise FileError(
            f"{name}: compressed copy does not match (read back {read_length} bytes, "
            f"CRC-32 {read_checksum:08x}; expected {length} bytes, {checksum:08x})"
        )


def _remove_original(dir_fd: int, name: str, source: os.stat_result) -> None:
    # Unlink only the very file that was compressed: if the name now points
    # elsewhere (a writer re-created it), leave it for the next pass.
    try:
        current = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if (current.st_dev, current.st_ino) != (source.st_dev, source.st_ino):
        log.warning("%s was replaced while being compressed; the new file is left for the next pass", name)
        return
    if (current.st_size, current.st_mtime_ns) != (source.st_size, source.st_mtime_ns):
        # Appended to after the check (a writer that opens, appends, closes):
        # keep it; the next pass archives it again as a duplicate.
        log.warning("%s changed after it was compressed; kept for the next pass", name)
        return
    os.unlink(name, dir_fd=dir_fd)
    fsutil.fsync_dir(dir_fd)


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
    with contextlib.suppress(FileExistsError):
        os.mkdir(ARCHIVE_DIRNAME, stat.S_IMODE(parent.st_mode) & 0o777, dir_fd=dir_fd)
        fsutil.fsync_dir(dir_fd)
    archive_fd = fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    if os.geteuid() == 0:
        os.fchown(archive_fd, parent.st_uid, parent.st_gid)
    os.fchmod(archive_fd, stat.S_IMODE(parent.st_mode) & 0o777)  # as the logs' directory, whatever the umask
    log.info("created %s/%s", log_dir, ARCHIVE_DIRNAME)
    return archive_fd


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
    for logfile in yield_old_logfiles(os.listdir(dir_fd), now):
        opened = _attempt(lambda: open_source(dir_fd, logfile.filename, not_ready), log_dir, logfile, stats)
        if opened is None:
            continue
        source_fd, source = opened
        os.close(source_fd)
        print(f"would compress {log_dir}/{logfile.filename} -> "
              f"{log_dir}/{ARCHIVE_DIRNAME}/{logfile.filename}{options.codec.extension} ({source.st_size} bytes)",
              flush=True)
        stats.done(source.st_size)
    return stats


def _readiness(log_dir: str, min_quiet: float) -> Callable[[os.stat_result], str | None]:
    # A late writer (rsyslog keeps finished hours open) may still append:
    # wait until no process holds the file open for writing and it has been
    # quiet for min_quiet seconds. /proc is read once per pass, when needed.
    busy: set[tuple[int, int]] | None = None

    def not_ready(info: os.stat_result) -> str | None:
        nonlocal busy
        age = time.time() - info.st_mtime
        if age < min_quiet:
            return f"modified {max(age, 0):.0f} s ago (--min-quiet {min_quiet:g})"
        if busy is None:
            busy = open_for_writing(log_dir)
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

    def one(logfile: LogFile, file_threads: int) -> None:
        check_stop()
        started = time.monotonic()
        done = _attempt(
            lambda: compress_logfile(
                dir_fd, archive_fd, logfile, codec=options.codec, level=options.level,
                threads=file_threads, check_stop=check_stop, not_ready=not_ready,
            ),
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

    # Several files go side by side, one thread each: measured on 2 cores,
    # two single-threaded zlib-ng streams ran 1.4 times as fast as one
    # threaded stream (bench/). A lone file gets every thread.
    if threads > 1 and len(logfiles) > 1:
        map_concurrently(lambda logfile: one(logfile, 1), logfiles, workers=threads)
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
                        help="compression level: gzip 1-9 (default 6), zstd 1-22 (default 3)")
    parser.add_argument("--min-quiet", type=float, default=60.0, metavar="SECONDS",
                        help="leave a finished file until it has not changed for this long "
                             "(late writers; default: %(default)g)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="compression threads (default: all cores, here %d)" % available_cores())
    add_common_arguments(parser)
    return parser


def make_job(args: argparse.Namespace, *, clock: Callable[[], datetime.datetime] | None = None):
    """Checks the directories. Returns the pass function the runner calls."""
    clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
    for log_dir in args.directories:
        dir_fd = fsutil.open_given_dir(log_dir)
        try:
            check_directory_security(log_dir, dir_fd, allow_insecure=args.allow_insecure_dir)
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
    return main_runner("logjam-compress", build_parser(), make_job, argv, describe=describe)


if __name__ == "__main__":
    raise SystemExit(main())
