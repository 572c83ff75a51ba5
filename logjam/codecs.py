"""Compression formats as data: one table, no subclasses (as xopen does).

gzip is written by libdeflate (the ``deflate`` package) in independent
pieces of GZIP_MEMBER_SIZE, each one gzip member, compressed on as many
threads as the caller gives; gzip -d, zcat, pigz -d and Python's gzip read
the members as one file. It is read back through python-zlib-ng. zstd goes
through the zstandard package with its own worker threads. See
docs/benchmarks.rst for the measurements behind these choices.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

import deflate
import zstandard
from zlib_ng import gzip_ng, zlib_ng

from logjam.concurrency import block_stop_signals

if TYPE_CHECKING:
    from types import TracebackType

# One gzip member per this much log: big enough that the members' headers
# and restarted dictionaries cost under 0.5 % of the size (measured on the
# loghub corpus: 1 MiB pieces 0.949 of gzip -6, 4 MiB 0.945), small enough
# that a 17 MB file still spreads over two threads.
GZIP_MEMBER_SIZE = 4 << 20


class OpenWriter(Protocol):
    """Takes the raw file, a level and a thread count. Returns the file object that compresses into raw."""

    def __call__(self, raw: BinaryIO, *, level: int, threads: int) -> BinaryIO: ...


@dataclass(frozen=True, kw_only=True)
class Codec:
    """How to write, read back and label one compressed format."""

    name: str
    extension: str
    content_type: str
    default_level: int
    levels: range
    open_writer: OpenWriter
    open_reader: Callable[[BinaryIO], BinaryIO]


class GzipMembers:
    """A write-only file object that compresses what it is given as gzip
    members of about member_size each, on `threads` threads (1: in the
    caller's thread), and writes them to raw in order.

    libdeflate has no streaming interface, and independent members are
    what lets the threads work without sharing a dictionary. Its header has
    mtime 0 and no file name: the same log always gives the same bytes, so a
    re-upload is recognised as identical content. At most 2 x threads
    members are in flight, so memory stays bounded whatever the file size.
    """

    def __init__(self, raw: BinaryIO, *, level: int, threads: int,
                 member_size: int = GZIP_MEMBER_SIZE) -> None:
        self._raw = raw
        self._level = level
        self._member_size = member_size
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._members = 0
        self._window = 2 * threads
        self._pool = (concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="logjam-gzip",
                                                            initializer=block_stop_signals)
                      if threads > 1 else None)
        self._in_flight: collections.deque[concurrent.futures.Future[bytearray]] = collections.deque()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        if not self._pending and size >= self._member_size:
            self._submit(data)  # the usual case: a whole read, compressed without a copy
            return size
        self._pending.append(bytes(data))
        self._pending_size += size
        if self._pending_size >= self._member_size:
            self._submit_pending()
        return size

    def flush(self) -> None:
        pass  # whole members only: a partial one would change the output

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self._pending or not self._members:
                self._submit_pending()  # an empty log still gives a valid (empty) member
            while self._in_flight:
                self._write_member(self._in_flight.popleft().result())
        finally:
            self._shut_down()

    def __enter__(self) -> GzipMembers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.closed = True  # the file is being abandoned: write nothing more
            self._shut_down()

    def _submit_pending(self) -> None:
        data = b"".join(self._pending)
        self._pending = []
        self._pending_size = 0
        self._submit(data)

    def _submit(self, data: bytes | bytearray | memoryview) -> None:
        self._members += 1
        if self._pool is None:
            self._write_member(deflate.gzip_compress(data, self._level))
            return
        self._in_flight.append(self._pool.submit(deflate.gzip_compress, data, self._level))
        # Write what is ready, in order; wait only when the window is full.
        while self._in_flight and (self._in_flight[0].done() or len(self._in_flight) > self._window):
            self._write_member(self._in_flight.popleft().result())

    def _write_member(self, member: bytearray) -> None:
        view = memoryview(member)
        while view:
            written = self._raw.write(view)
            if not written:
                raise OSError(f"short write of a gzip member ({written!r})")
            view = view[written:]

    def _shut_down(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._in_flight.clear()
        self._pending = []


def _gzip_writer(raw: BinaryIO, *, level: int, threads: int) -> BinaryIO:
    return GzipMembers(raw, level=level, threads=threads)  # type: ignore[return-value]


def _gzip_reader(raw: BinaryIO) -> BinaryIO:
    return cast(BinaryIO, gzip_ng.GzipNGFile(fileobj=raw, mode="rb"))  # a GzipFile: a binary stream


def _zstd_writer(raw: BinaryIO, *, level: int, threads: int) -> BinaryIO:
    compressor = zstandard.ZstdCompressor(level=level, threads=threads if threads > 1 else 0,
                                          write_checksum=True)
    return compressor.stream_writer(raw, closefd=False)


def _zstd_reader(raw: BinaryIO) -> BinaryIO:
    return zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)


GZIP = Codec(
    name="gzip",
    extension=".gz",
    content_type="application/gzip",
    # libdeflate's levels. 7 is the lowest whose output is no larger than
    # gzip -6's on every one of the 16 loghub systems (the worst, Android,
    # 0.983; at 6 Hadoop's is 1.030): see docs/benchmarks.rst.
    default_level=7,
    levels=range(1, 13),
    open_writer=_gzip_writer,
    open_reader=_gzip_reader,
)
ZSTD = Codec(
    name="zstd",
    extension=".zst",
    content_type="application/zstd",
    default_level=3,
    levels=range(1, 23),
    open_writer=_zstd_writer,
    open_reader=_zstd_reader,
)

CODECS: dict[str, Codec] = {codec.name: codec for codec in (GZIP, ZSTD)}

# What reading a damaged compressed stream raises, whichever codec.
CORRUPT_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, zlib.error, zstandard.ZstdError, deflate.DeflateError,
    cast("type[BaseException]", zlib_ng.error),  # a class; its stub says an instance
)


def codec_for_filename(name: str) -> Codec | None:
    """Takes an archived file name. Returns the codec its extension names, if any."""
    for codec in CODECS.values():
        if name.endswith(codec.extension):
            return codec
    return None


def crc32(data: bytes, value: int = 0) -> int:
    """CRC-32 as gzip stores it (zlib-ng's: several times the speed of the system zlib's)."""
    return zlib_ng.crc32(data, value)


def available_cores() -> int:
    """The cores this process may run on (respects taskset and cgroups' cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
