"""Compression formats as data: one table, no subclasses (as xopen does)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class Codec:
    """How to write, read back and label one compressed format."""

    name: str
    extension: str
    content_type: str
    default_level: int
    open_writer: Callable[[BinaryIO, int, int], BinaryIO]  # (raw, level, threads)
    open_reader: Callable[[BinaryIO], BinaryIO]


def _gzip_writer(raw: BinaryIO, level: int, threads: int) -> BinaryIO:
    # mtime=0 and no file name in the header: the same log always gives the
    # same bytes, so a re-upload is recognised as identical content.
    return gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0)


def _gzip_reader(raw: BinaryIO) -> BinaryIO:
    return gzip.GzipFile(fileobj=raw, mode="rb")


GZIP = Codec(
    name="gzip",
    extension=".gz",
    content_type="application/gzip",
    default_level=6,
    open_writer=_gzip_writer,
    open_reader=_gzip_reader,
)

CODECS: dict[str, Codec] = {GZIP.name: GZIP}


def codec_for_filename(name: str) -> Codec | None:
    """Takes an archived file name. Returns the codec its extension names, if any."""
    for codec in CODECS.values():
        if name.endswith(codec.extension):
            return codec
    return None


def crc32(data: bytes, value: int = 0) -> int:
    """CRC-32 as gzip stores it."""
    return zlib.crc32(data, value)
