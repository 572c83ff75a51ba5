"""Compression formats as data: one table, no subclasses (as xopen does).

gzip goes through python-zlib-ng (zlib-compatible output, about twice the
speed of zlib), threaded when given more than one thread; zstd through the
zstandard package with its own worker threads. Both write one ordinary
stream that gzip/zcat and zstd read.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import zstandard
from zlib_ng import gzip_ng, gzip_ng_threaded, zlib_ng


@dataclass(frozen=True)
class Codec:
    """How to write, read back and label one compressed format."""

    name: str
    extension: str
    content_type: str
    default_level: int
    levels: range
    open_writer: Callable[[BinaryIO, int, int], BinaryIO]  # (raw, level, threads)
    open_reader: Callable[[BinaryIO], BinaryIO]


def _gzip_writer(raw: BinaryIO, level: int, threads: int) -> BinaryIO:
    # mtime=0 and no file name in the header: the same log always gives the
    # same bytes, so a re-upload is recognised as identical content.
    if threads > 1:
        return gzip_ng_threaded.open(raw, "wb", compresslevel=level, threads=threads)
    return gzip_ng.GzipNGFile(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0)


def _gzip_reader(raw: BinaryIO) -> BinaryIO:
    return gzip_ng.GzipNGFile(fileobj=raw, mode="rb")


def _zstd_writer(raw: BinaryIO, level: int, threads: int) -> BinaryIO:
    compressor = zstandard.ZstdCompressor(level=level, threads=threads if threads > 1 else 0,
                                          write_checksum=True)
    return compressor.stream_writer(raw, closefd=False)


def _zstd_reader(raw: BinaryIO) -> BinaryIO:
    return zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)


GZIP = Codec(
    name="gzip",
    extension=".gz",
    content_type="application/gzip",
    default_level=6,
    levels=range(1, 10),
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
    OSError, EOFError, ValueError, zlib.error, zlib_ng.error, zstandard.ZstdError,
)


def codec_for_filename(name: str) -> Codec | None:
    """Takes an archived file name. Returns the codec its extension names, if any."""
    for codec in CODECS.values():
        if name.endswith(codec.extension):
            return codec
    return None


def crc32(data: bytes, value: int = 0) -> int:
    """CRC-32 as gzip stores it."""
    return zlib.crc32(data, value)


def available_cores() -> int:
    """The cores this process may run on (respects taskset and cgroups' cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
