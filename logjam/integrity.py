"""Fingerprints of archived files: what was stored (size, SHA-256) and what
it decompresses to (the log's length and SHA-256), computed in one read.

The log's fingerprint travels with the object as metadata, so anyone can
check an archived object against the log it came from, years later.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from logjam import fsutil
from logjam.codecs import Codec

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

METADATA_SHA256 = "logjam-sha256"  # of the object's bytes
METADATA_LOG_SHA256 = "logjam-log-sha256"  # of the uncompressed log
METADATA_LOG_LENGTH = "logjam-log-length"
# What each metadata field is called in a message.
METADATA_LABELS = {METADATA_SHA256: "sha256", METADATA_LOG_SHA256: "log sha256", METADATA_LOG_LENGTH: "log length"}


@dataclass(frozen=True)
class Fingerprint:
    size: int
    sha256: str
    # Of the log it decompresses to; None for a file that does not.
    log_length: int | None = field(default=None, kw_only=True)
    log_sha256: str | None = field(default=None, kw_only=True)

    def metadata(self) -> dict[str, str]:
        """The object metadata that carries this fingerprint (the one place
        its fields become metadata), a field not known left out."""
        meta = {METADATA_SHA256: self.sha256}
        if self.log_sha256 is not None:
            meta[METADATA_LOG_SHA256] = self.log_sha256
            if self.log_length is not None:
                meta[METADATA_LOG_LENGTH] = str(self.log_length)
        return meta

    def mismatch(self, recorded: Fingerprint) -> str | None:
        """Takes the fingerprint a file was recorded with. Returns the first
        field in which this one differs ("log_length is 7, recorded 6"), or
        None if it agrees with every field recorded."""
        for attr in ("size", "sha256", "log_sha256", "log_length"):
            value, expected = getattr(self, attr), getattr(recorded, attr)
            if expected is not None and value != expected:
                return f"{attr} is {value}, recorded {expected}"
        return None


class _HashingReader(io.RawIOBase):
    """Reads through to raw, hashing and counting every byte, checking for a stop."""

    def __init__(self, raw: BinaryIO, check_stop: Callable[[], None]) -> None:
        self.raw = raw
        self.check_stop = check_stop
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self.check_stop()
        with memoryview(buffer) as view:
            data = self.raw.read(len(view))
            if not data:
                return 0
            view[: len(data)] = data
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def fingerprint(
    raw: BinaryIO, codec: Codec | None, *, check_stop: Callable[[], None] = lambda: None
) -> Fingerprint:
    """Takes a stream positioned at the start of an archived file, and its codec.
    Returns its Fingerprint; raises ValueError/OSError/EOFError if it does not decompress.
    One pass over the bytes, in constant memory."""
    hashing = _HashingReader(raw, check_stop)
    buffered = io.BufferedReader(hashing, fsutil.CHUNK_SIZE)
    log_length = log_sha256 = None
    if codec is not None:
        log_digest = hashlib.sha256()
        log_length = 0
        with codec.open_reader(buffered) as reader:
            while chunk := reader.read(fsutil.CHUNK_SIZE):
                log_digest.update(chunk)
                log_length += len(chunk)
        log_sha256 = log_digest.hexdigest()
    while buffered.read(fsutil.CHUNK_SIZE):  # whatever follows the stream counts too
        pass
    return Fingerprint(hashing.size, hashing.digest.hexdigest(), log_length=log_length, log_sha256=log_sha256)


def file_fingerprint(
    fd: int, codec: Codec | None, *, check_stop: Callable[[], None] = lambda: None
) -> Fingerprint:
    """Fingerprint of an open file, from its start (its offset is left at the end)."""
    raw = io.FileIO(fd, "rb", closefd=False)
    raw.seek(0)
    return fingerprint(raw, codec, check_stop=check_stop)
