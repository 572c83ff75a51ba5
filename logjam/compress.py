"""logjam-compress: compress finished hourly log files into DIR/archive/.

Selection is pure (``logjam.selection.yield_old_logfiles``); the effects live in
``compress_directory`` (here) and ``compress_logfile`` (logjam.compressor),
which never delete an original before its compressed copy is durable and
verified (removal in logjam.removal).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from logjam import fsutil
from logjam.archive import ARCHIVE_DIRNAME, check_archive_dir, duplicate_timestamp_names, open_archive_dir
from logjam.cli import EXIT_STATUS_HELP, ArgumentParser, Environment, add_common_arguments, main_runner
from logjam.codecs import CODECS, GZIP, Codec, available_cores
from logjam.compressor import Compressed, compress_logfile, open_source
from logjam.concurrency import map_concurrently
from logjam.errors import FileError, NotReady, Skipped, UsageError
from logjam.logs import fields
from logjam.parse import LogFile, utc_now
from logjam.passes import PassContext, PassSettings, open_directory, run_pass
from logjam.progress import progress
from logjam.removal import REMOVING_MARKER, recover_removals
from logjam.runner import PassStats
from logjam.safety import check_directory_security, open_for_writing
from logjam.selection import yield_old_logfiles
from logjam.signals import Stop

log = logging.getLogger("logjam.compress")
R = TypeVar("R")

LOCK_NAME = ".logjam-compress.lock"


class LeftAlone(Skipped):
    """A file logjam leaves for the operator, warned about once per run."""


# Warnings already given in this run (LeftAlone, clock skew): a loop that
# repeats them every minute buries everything else in the log.
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def name_problem(name: str, *, extension: str, archived: Callable[[str], bool]) -> str | None:
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
class CompressOptions:
    """How to compress, and how careful to be about files still in use."""

    codec: Codec = GZIP
    level: int | None = None
    threads: int = 1
    min_quiet: float = 60.0  # seconds without a change before a file is taken
    settings: PassSettings = PassSettings()  # lock, directory check, dry run


def compress_directory(
    log_dir: str,
    *,
    now: datetime.datetime,
    options: CompressOptions = CompressOptions(),
    stop: Stop | None = None,
) -> PassStats:
    """Compresses every finished log in log_dir (a dry run: says which it
    would). Returns what it did and left."""
    return run_pass(log_dir, lambda context: _compress_pass(context, options), settings=options.settings,
                    command="logjam-compress", stop=stop, now=now)


def _compress_pass(context: PassContext, options: CompressOptions) -> None:
    names = os.listdir(context.dir_fd)
    if not context.dry_run and any(name.startswith(REMOVING_MARKER) for name in names):
        recover_removals(context.dir_fd, context.path, names)
        names = os.listdir(context.dir_fd)
    finished = list(yield_old_logfiles(names, context.now))
    if not finished:
        log.debug("%s: nothing to compress", context.path)
        return
    context.archive_fd = _open_archive(context, options.settings)
    try:
        _compress_all(context, finished, options)
    finally:
        if context.archive_fd is not None:
            os.close(context.archive_fd)


def _open_archive(context: PassContext, settings: PassSettings) -> int | None:
    # A dry run creates nothing: a missing archive/ is one that holds nothing yet.
    if context.dry_run:
        try:
            return fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=context.dir_fd)
        except OSError:
            return None
    archive_fd = open_archive_dir(context.dir_fd, context.path)
    try:
        check_directory_security(f"{context.path}/{ARCHIVE_DIRNAME}", archive_fd,
                                 allow_insecure=settings.allow_insecure_dir)
        for name in fsutil.remove_stale_temp_files(archive_fd):
            log.info("removed %s/%s/%s left by an interrupted pass", context.path, ARCHIVE_DIRNAME, name)
    except BaseException:
        os.close(archive_fd)
        raise
    return archive_fd


CLOCK_SKEW = 300  # seconds an mtime may be ahead of the clock before it is taken for clock skew


def _warn_if_skewed(context: PassContext, name: str) -> None:
    # An mtime ahead of the clock (a bad hardware clock, a writer on another
    # host) would make --min-quiet wait for as long as the skew lasts.
    try:
        mtime = os.stat(name, dir_fd=context.dir_fd, follow_symlinks=False).st_mtime
    except OSError:
        return
    ahead = mtime - time.time()
    if ahead > CLOCK_SKEW:
        _warn_once(f"{context.path}/{name}: modified {ahead:.0f} s in the future (clock skew?); --min-quiet "
                   "cannot apply, deciding by its name's hour and whether a process still writes it")


def _readiness(min_quiet: float) -> Callable[[os.stat_result], str | None]:
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


def _compress_all(context: PassContext, logfiles: list[LogFile], options: CompressOptions) -> None:
    sizes = {logfile: fsutil.size_or_zero(context.dir_fd, logfile.filename) for logfile in logfiles}
    # A dry run goes one file at a time, so that its lines come in name order.
    threads = 1 if context.dry_run else options.threads
    if threads > 1:
        logfiles = sorted(logfiles, key=sizes.__getitem__, reverse=True)  # largest first: no long tail
    not_ready = _readiness(options.min_quiet)
    # A dry run prints its lines instead: no bar.
    files, size = (0, 0) if context.dry_run else (len(logfiles), sum(sizes.values()))
    with progress("compressing", files=files, size=size) as bar:
        context.progress = bar
        _compress_each(context, logfiles, options=options, threads=threads, not_ready=not_ready)


def _compress_each(
    context: PassContext, logfiles: list[LogFile], *, options: CompressOptions, threads: int,
    not_ready: Callable[[os.stat_result], str | None],
) -> None:
    log_dir, stats = context.path, context.stats

    def archived(final_name: str) -> bool:
        if context.archive_fd is None:
            return False
        try:
            os.stat(final_name, dir_fd=context.archive_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def compress_one(logfile: LogFile, file_threads: int) -> Compressed | int:
        problem = name_problem(logfile.filename, extension=options.codec.extension, archived=archived)
        if problem is not None:
            raise LeftAlone(problem)
        _warn_if_skewed(context, logfile.filename)
        if context.dry_run:  # the same checks, reading only: then say what would be done
            source_fd, source = open_source(context.dir_fd, logfile.filename, not_ready)
            os.close(source_fd)
            return source.st_size
        assert context.archive_fd is not None  # opened (or made) by a pass that acts
        return compress_logfile(
            context.dir_fd, logfile, archive_fd=context.archive_fd, codec=options.codec, level=options.level,
            threads=file_threads, check_stop=context.stop.check, not_ready=not_ready,
        )

    def one(logfile: LogFile, file_threads: int) -> None:
        context.stop.check()
        started = time.monotonic()
        done = _attempt(context, logfile, lambda: compress_one(logfile, file_threads))
        if done is None:
            return
        if isinstance(done, int):
            print(f"would compress {log_dir}/{logfile.filename} -> "
                  f"{log_dir}/{ARCHIVE_DIRNAME}/{logfile.filename}{options.codec.extension} ({done} bytes)",
                  flush=True)
            stats.done(done)
            return
        stats.done(done.original_size)
        context.progress.advance(done.original_size)
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


def _attempt(context: PassContext, logfile: LogFile, action: Callable[[], R]) -> R | None:
    """Runs action for one file of the pass. Returns its result, or None after
    logging why not and counting the file as waiting (and failed, for an error)."""
    log_dir, stats = context.path, context.stats
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


@dataclass
class CompressJob:
    """The log directories and how to compress them, as the runner calls it."""

    directories: list[str]
    options: CompressOptions
    clock: Callable[[], datetime.datetime]

    @property
    def one_shot(self) -> bool:
        """A dry run reports one pass."""
        return self.options.settings.dry_run

    def __call__(self, stop: Stop) -> PassStats:
        stats = PassStats()
        for log_dir in self.directories:
            try:
                stats.add(compress_directory(log_dir, now=self.clock(), options=self.options, stop=stop))
            except UsageError as error:  # a directory vanished since start-up
                log.error("%s", error)
                stats.errors += 1
            except (FileError, OSError) as error:
                log.error("%s: %s", log_dir, _reason(error, log_dir))
                stats.errors += 1
                stats.add(finished_backlog(log_dir, self.clock()))
        return stats

    def backlog(self) -> PassStats | None:
        """The runner's metrics after a failed pass: compress_directory's errors are counted per directory."""
        return None


def make_job(args: argparse.Namespace, *, clock: Callable[[], datetime.datetime] | None = None) -> CompressJob:
    """Checks the directories. Returns the pass function the runner calls."""
    _warned.clear()  # once per run
    settings = PassSettings.from_args(args)
    for log_dir in args.directories:
        dir_fd = open_directory(log_dir, settings)
        try:
            check_archive_dir(log_dir, dir_fd, allow_insecure=settings.allow_insecure_dir)
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
    options = CompressOptions(codec=codec, level=args.level, threads=args.threads or available_cores(),
                              min_quiet=args.min_quiet, settings=settings)
    return CompressJob(list(args.directories), options,
                       clock or utc_now)


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


def main(argv: Sequence[str] | None = None, *, env: Environment | None = None) -> int:
    """Entry point of logjam-compress. Returns the exit status."""
    env = env or Environment()
    return main_runner("logjam-compress", build_parser(), functools.partial(make_job, clock=env.clock), argv,
                       describe=describe, start_backlog=start_backlog, env=env)


def start_backlog(args: argparse.Namespace) -> PassStats:
    """The finished logs of every directory, for the metrics of a run that
    stopped at its start (a configuration error): the backlog still shows."""
    now = utc_now()
    stats = PassStats()
    for log_dir in args.directories:
        stats.add(finished_backlog(log_dir, now))
    return stats


if __name__ == "__main__":
    raise SystemExit(main())
