"""logjam-cat: the archived hours of chosen streams, read back from the
destination logjam-upload wrote to, in time order, each object checked
against its fingerprint before any of its bytes are passed on.

Requests: one delimiter LIST per level of a field before the date that is
not given (e.g. the prefixes under ``{prefix}/``), one LIST (per 1,000 keys)
per day and known key prefix, and one GET per file in the range.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import datetime
import errno
import functools
import hashlib
import io
import itertools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import BinaryIO, Protocol, TypeVar

from logjam import __version__, fsutil
from logjam.backends import add_arguments as add_backend_arguments
from logjam.backends import get_uploader
from logjam.backends.base import Download
from logjam.backends.file import _enter, _key_components, _remove_own_stale_temps
from logjam.catalog import ArchivedKey, KeyMatcher, Query, listing_prefixes, parse_time
from logjam.cli import ArgumentParser, Environment
from logjam.codecs import CORRUPT_STREAM_ERRORS, Codec, codec_for_filename
from logjam.errors import ExitStatus, FileError, LogjamError, UsageError
from logjam.integrity import METADATA_SHA256, file_fingerprint
from logjam.logs import LOG_LEVELS, configure_logging
from logjam.template import KeyTemplate

PROG = "logjam-cat"
log = logging.getLogger("logjam.cat")
T = TypeVar("T")
R = TypeVar("R")

EPILOG = """\
TIME is ISO 8601 UTC (2013-07-27T12:00Z, 2013-07-27T12Z, 2013-07-27), "now",
or a span back from now (90m, 6h, 2d, 1w). A file is in the range when its
hour is: --since 12:40 includes the 12:00 file, --until 15:00 ends with 14:00.

examples:
  logjam-cat s3://my-bucket/{prefix}/{year}/{month}/{day}/{filename} --prefix app --since 6h | grep ERROR
  logjam-cat s3://my-bucket/{prefix}/{year}/{month}/{day}/{filename} --since 2013-07-27 --until 2013-07-28 --list
  logjam-cat file:///mnt/logs/{prefix}/{year}/{month}/{day}/{filename} --since 2d --output-dir restored

exit status: 0 all done, 1 some files failed (missing, damaged or forged: named
on stderr, the others still delivered), 2 usage or configuration error.
"""


class Archive(Protocol):
    """What logjam-cat needs of a destination (the uploaders provide it)."""

    template: str
    collapses_empty_segments: bool

    def check_uri(self) -> None: ...
    def connect(self) -> None: ...
    def describe(self, key: str) -> str: ...
    def list_keys(self, prefix: str) -> Iterable[tuple[str, int]]: ...
    def list_levels(self, prefix: str) -> list[str]: ...
    def get(self, key: str) -> Download: ...


class Closed(Exception):
    """The reader went away: work in hand stops."""


def find(archive: Archive, query: Query, *, matcher: KeyMatcher | None = None) -> list[ArchivedKey]:
    """Takes a destination and a query. Returns the files it asks for, in output order."""
    matcher = matcher or KeyMatcher(archive.template)
    levels = functools.lru_cache(maxsize=None)(archive.list_levels)  # each level listed once, not per day
    found: dict[str, ArchivedKey] = {}
    # A directory tree has no empty segments: "web//2026/" is "web/2026/".
    for prefix in listing_prefixes(archive.template, query, levels, collapse=archive.collapses_empty_segments):
        for key, size in archive.list_keys(prefix):
            archived = matcher.match(key, size)
            if archived is not None and query.selects(archived):
                found[key] = archived
    return sorted(found.values(), key=ArchivedKey.order)


def receive(download: Download, fd: int, stop: threading.Event, where: str) -> tuple[str, str | None]:
    """Copies a download's body into fd. Returns the hex SHA-256 and (when
    the store's ETag is one) MD5 of what arrived; raises FileError."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if download.md5 else None
    size = 0
    with download.body:
        while True:
            if stop.is_set():
                raise Closed
            try:
                chunk = download.body.read(fsutil.CHUNK_SIZE)
            except Exception as error:  # whatever the store's stream raises: this file failed
                raise FileError(f"{where}: download failed: {error}") from None
            if not chunk:
                break
            fsutil.write_all(fd, chunk)
            sha256.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            size += len(chunk)
    if size != download.size:
        raise FileError(f"{where}: download cut short ({size} of {download.size} bytes)")
    return sha256.hexdigest(), md5.hexdigest() if md5 else None


def verify(download: Download, fd: int, codec: Codec | None, *, sha256: str, md5: str | None, where: str) -> str:
    """Checks what arrived in fd against the best fingerprint there is.
    Returns what it was checked against; raises FileError if it does not match.

    logjam's own metadata was taken of the whole compressed log: a match
    settles it. The store's checksum or MD5 ETag only proves that the store
    kept what it was sent (perhaps half a file): the compressed stream is
    then also decompressed to its end (frames, checksums, lengths) here,
    before any of its bytes are passed on."""
    expected = download.metadata.get(METADATA_SHA256)
    if expected is not None:
        if expected.lower() != sha256:
            raise FileError(f"{where}: does not match its {METADATA_SHA256} metadata (forged or damaged); "
                            "not passed on")
        return f"its {METADATA_SHA256} metadata"
    against = []
    if download.sha256 is not None:
        if download.sha256 != sha256:
            raise FileError(f"{where}: does not match the store's SHA-256 checksum (forged or damaged); not passed on")
        against.append("the store's SHA-256 checksum")
    elif md5 is not None:
        if download.md5 != md5:
            raise FileError(f"{where}: does not match its MD5 ETag (forged or damaged); not passed on")
        against.append("its MD5 ETag")
    if codec is not None:
        try:
            file_fingerprint(fd, codec)  # decompresses it all: frames, checksums, lengths
        except CORRUPT_STREAM_ERRORS as error:
            raise FileError(f"{where}: damaged: not a whole {codec.name} stream ({error}); not passed on") from None
        against.append(f"its {codec.name} checksums")
    if not against:
        log.warning("%s: no fingerprint to check it against; passed on unchecked", printable(where))
        return "nothing"
    return " and ".join(against)


def spool(archive: Archive, archived: ArchivedKey, stop: threading.Event) -> BinaryIO:
    """Downloads one object into an unnamed temporary file and verifies it.
    Returns the file, at its start; raises FileError."""
    where = archive.describe(archived.key)
    download = archive.get(archived.key)
    temp = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller)
    try:
        sha256, md5 = receive(download, temp.fileno(), stop, where)
        verify(download, temp.fileno(), codec_for_filename(archived.name), sha256=sha256, md5=md5, where=where)
        temp.seek(0)
        return temp
    except BaseException:
        temp.close()
        raise


def restore(archive: Archive, archived: ArchivedKey, out_fd: int, stop: threading.Event) -> bool:
    """Writes one object, verified and still compressed, to DIR/KEY (temporary
    file, fsync, link; never over another file). Returns False if an identical
    file was already there; raises FileError."""
    where = archive.describe(archived.key)
    *folders, name = _key_components(archived.key)
    for component in (*folders, name):
        if not fsutil.name_fits(component):
            raise FileError(f"{where}: {component[:40]!r}... is {len(os.fsencode(component))} bytes, longer than "
                            f"a file name may be ({fsutil.NAME_MAX}); not restored")
    dir_fd = os.dup(out_fd)
    try:
        for folder in folders:
            dir_fd = _enter(dir_fd, folder, archived.key)  # closes the parent
        _remove_own_stale_temps(dir_fd, name)  # left by a killed run
        existing = _existing_sha256(dir_fd, name)
        download = archive.get(archived.key)
        if existing is not None and download.metadata.get(METADATA_SHA256) == existing:
            download.body.close()  # the GET's headers settle it: no body to read
            return False
        with fsutil.temp_file(dir_fd, name) as (temp_fd, temp):
            sha256, md5 = receive(download, temp_fd, stop, where)
            verify(download, temp_fd, codec_for_filename(name), sha256=sha256, md5=md5, where=where)
            if existing is not None:
                os.unlink(temp, dir_fd=dir_fd)
                if existing == sha256:
                    return False
                raise FileError(f"{where}: {name} is already in the output directory with other content; left alone")
            os.fsync(temp_fd)
            if fsutil.publish(dir_fd, temp, [name]) is None:
                raise FileError(f"{where}: {name} appeared in the output directory while writing it; left alone")
        return True
    finally:
        os.close(dir_fd)


def _existing_sha256(dir_fd: int, name: str) -> str | None:
    try:
        fd, _info = fsutil.open_regular(dir_fd, name)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:  # this file system's limit is below NAME_MAX
            raise FileError(f"{name}: too long a name for the output directory's file system; not restored") from None
        raise FileError(f"{name} in the output directory cannot be read ({error}); left alone") from None
    except LogjamError as error:
        raise FileError(f"{name} in the output directory cannot be read ({error}); left alone") from None
    try:
        return file_fingerprint(fd, None).sha256
    finally:
        os.close(fd)


def in_order(function: Callable[[T], R], items: Sequence[T], *, jobs: int,
             stop: threading.Event) -> Generator[tuple[T, R | LogjamError], None, None]:
    """Yields (item, function(item) or the LogjamError it raised), in the
    items' order, with up to jobs calls running ahead of the consumer.
    Closing the iterator stops the calls in hand."""

    def outcome(item: T) -> R | LogjamError:
        try:
            return function(item)
        except LogjamError as error:
            return error

    if jobs <= 1:
        for item in items:
            yield item, outcome(item)
        return
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    window: collections.deque[tuple[T, concurrent.futures.Future[R | LogjamError]]] = collections.deque()
    rest = iter(items)
    try:
        for item in itertools.islice(rest, jobs):
            window.append((item, pool.submit(outcome, item)))
        while window:
            item, future = window.popleft()
            result = future.result()
            for following in itertools.islice(rest, 1):
                window.append((following, pool.submit(outcome, following)))
            yield item, result
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for _item, future in window:  # ready but never consumed: close their spools
            if not future.cancelled() and future.exception() is None:
                with contextlib.suppress(Exception):  # a bool (restore's) has no close
                    getattr(future.result(), "close")()


def emit(source: BinaryIO, codec: Codec | None, *, out: BinaryIO, where: str) -> None:
    """Writes a verified file to out, decompressed, with a newline added if
    it does not end with one (its last line is not glued to the next
    file's first). Raises FileError if it does not decompress; out's errors
    (a closed reader) go to the caller."""
    last = b"\n"
    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(codec.open_reader(source)) if codec else source
        while True:
            try:
                chunk = reader.read(fsutil.CHUNK_SIZE)
            except CORRUPT_STREAM_ERRORS as error:
                raise FileError(f"{where}: does not decompress ({error}); output cut short") from None
            if not chunk:
                break
            out.write(chunk)
            last = chunk[-1:]
    if last != b"\n":
        out.write(b"\n")
    out.flush()


# What --list and the error lines print of a name: one line whatever it holds.
ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def printable(text: str) -> str:
    """Takes a name or message. Returns it on one line, without control
    characters: a backslash, tab, newline and carriage return as \\\\, \\t,
    \\n, \\r, any other control character as \\xNN (or \\uNNNN)."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(ESCAPES.get(char) or (char if char.isprintable() else _escape(char)) for char in text)


def _escape(char: str) -> str:
    if 0xDC80 <= ord(char) <= 0xDCFF:  # a byte that is not UTF-8, read from a file name
        return char
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Write the archived hours of chosen streams to stdout (decompressed, in time order), "
                    "or to a directory, each checked against its fingerprint first.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("uri", metavar="URI",
                        help="the destination and key template given to logjam-upload: "
                             "s3://BUCKET/TEMPLATE or file:///PATH/TEMPLATE")
    parser.add_argument("--since", required=True, metavar="TIME", help="first hour wanted (inclusive)")
    parser.add_argument("--until", default="now", metavar="TIME", help="end of the range (exclusive; default: now)")
    parser.add_argument("--prefix", action="append", default=[], metavar="P",
                        help="only this stream prefix (repeatable; default: all)")
    parser.add_argument("--suffix", action="append", default=[], metavar="S",
                        help="only this suffix, '' for files without one (repeatable; default: all)")
    parser.add_argument("--hostname", action="append", default=[], metavar="H",
                        help="only this host's files, for a template with {hostname} (repeatable)")
    parser.add_argument("--output-dir", default=None, metavar="DIR",
                        help="write the stored objects (still compressed) to DIR/KEY instead of stdout")
    parser.add_argument("--list", action="store_true",
                        help="print the matching files (hour, size, location) without downloading")
    parser.add_argument("--jobs", type=int, default=4, metavar="N",
                        help="downloads at once; the output keeps its order (default: %(default)s)")
    add_backend_arguments(parser, only=("--endpoint-url", "--retries", "--retry-mode"))
    parser.set_defaults(retry_mode="standard")  # reads: nothing to gain from adaptive's slowing down
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning", type=str.lower,
                        help="least severe messages to log to stderr (default: %(default)s)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def make_query(args: argparse.Namespace, *, now: datetime.datetime, uses_hostname: bool) -> Query:
    """Checks the range and filters (UsageError). Returns the Query."""
    since = parse_time(args.since, now=now, option="--since")
    until = parse_time(args.until, now=now, option="--until")
    if until <= since:
        raise UsageError(f"--until {args.until} is not after --since {args.since}: an empty range")
    if args.hostname and not uses_hostname:
        raise UsageError("--hostname needs a key template with {hostname}")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1")
    if args.list and args.output_dir:
        raise UsageError("--list and --output-dir do not go together (--list downloads nothing)")
    return Query(since, until, prefixes=tuple(args.prefix),
                 suffixes=tuple(suffix or None for suffix in args.suffix), hostnames=tuple(args.hostname))


def run(args: argparse.Namespace, out: BinaryIO, *, now: datetime.datetime) -> int:
    """Does what args ask. Returns the exit status; raises LogjamError for
    what stops everything (a bad URI, an unreadable listing)."""
    archive: Archive = get_uploader(args.uri, args, jobs=args.jobs)  # type: ignore[assignment]
    KeyTemplate.parse(archive.template)
    archive.check_uri()
    matcher = KeyMatcher(archive.template)
    query = make_query(args, now=now, uses_hostname=matcher.uses_hostname)
    out_fd = None
    if args.output_dir:
        with contextlib.suppress(OSError):  # a failure is reported by opening it
            os.makedirs(args.output_dir, exist_ok=True)
        out_fd = fsutil.open_given_dir(args.output_dir)
    archive.connect()
    try:
        wanted = find(archive, query, matcher=matcher)
        log.info("%d files in range", len(wanted))
        if args.list:
            for archived in wanted:
                out.write(f"{archived.hour:%Y-%m-%dT%H:%MZ}\t{archived.size}\t"
                          f"{printable(archive.describe(archived.key))}\n"
                          .encode("utf-8", "surrogateescape"))
            out.flush()
            return ExitStatus.SUCCESS
        stop = threading.Event()
        failed = 0
        if out_fd is not None:
            restored = 0
            work: Callable[[ArchivedKey], bool | BinaryIO] = lambda archived: restore(archive, archived, out_fd, stop)  # noqa: E731
        else:
            work = lambda archived: spool(archive, archived, stop)  # noqa: E731
        results = in_order(work, wanted, jobs=args.jobs, stop=stop)
        try:
            for archived, result in results:
                if isinstance(result, LogjamError):
                    failed += 1
                    print(f"{PROG}: error: {printable(str(result))}", file=sys.stderr, flush=True)
                elif isinstance(result, bool):  # restore's
                    restored += result
                else:
                    with result:
                        try:
                            emit(result, codec_for_filename(archived.name), out=out, where=archive.describe(archived.key))
                        except FileError as error:
                            failed += 1
                            print(f"{PROG}: error: {printable(str(error))}", file=sys.stderr, flush=True)
        finally:
            results.close()
        if out_fd is not None:
            log.info("%d restored, %d already there", restored, len(wanted) - restored - failed)
        return ExitStatus.ERROR if failed else ExitStatus.SUCCESS
    finally:
        if out_fd is not None:
            os.close(out_fd)


def main(argv: Sequence[str] | None = None, *, env: Environment | None = None) -> int:
    """Entry point of logjam-cat. Returns the exit status. It writes bytes
    (the logs as stored), to env.stdout's binary buffer."""
    env = env or Environment()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # argparse has printed its message
        return int(exit.code or 0)
    configure_logging(args.log_level)
    out = env.stdout.buffer
    try:
        return run(args, out, now=env.clock())
    except BrokenPipeError:
        # The reader went away (| head): that ends the command, quietly.
        # Nothing may be written to the closed pipe again, not even at exit.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return ExitStatus.SUCCESS
    except KeyboardInterrupt:
        return 130
    except LogjamError as error:
        print(f"{PROG}: error: {printable(str(error))}", file=sys.stderr)
        return error.exit_status
    except Exception as error:
        if log.isEnabledFor(logging.DEBUG):
            raise
        print(f"{PROG}: error: unexpected {type(error).__name__}: {error} (run with --log-level debug for details)",
              file=sys.stderr)
        return ExitStatus.ERROR


if __name__ == "__main__":
    raise SystemExit(main())
