"""The uploader interface every backend implements, and the pieces backends
share (local file identity, key claims, throttled readers). Another
destination is one new class registered in ``logjam.backends.UPLOADERS``.

A backend stores one local archived file at a key and reports what happened:

- ``STORED``: the key was free and now holds the file (confirmed);
- ``IDENTICAL``: the key already held exactly this content (a retry after a
  lost reply ends here);
- ``CONFLICT``: the key holds something else, which was left untouched.

It never overwrites anything. The upload loop in ``logjam.upload`` turns a
CONFLICT into a try at the next duplicate key.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import io
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from logjam.integrity import Fingerprint
from logjam.sizes import parse_bandwidth


class PutResult(enum.Enum):
    STORED = "stored"
    IDENTICAL = "identical"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class LocalFile:
    """An archived file opened for upload: an fd and what was measured of it."""

    fd: int
    name: str
    fingerprint: Fingerprint
    content_type: str = "application/octet-stream"

    @property
    def size(self) -> int:
        return self.fingerprint.size

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes as stored."""
        return self.fingerprint.sha256


class Uploader(Protocol):
    """What every backend provides. The constructor checks the URI (UsageError)."""

    template: str  # the key template part of the URI
    # Whether keys with an empty segment ("web//2026/x") land where the key
    # without it does (a directory tree), as logjam-cat must know to list them.
    collapses_empty_segments: bool

    def check_uri(self) -> None:
        """Checks what can be checked without a request (UsageError)."""

    def describe(self, key: str) -> str:
        """Returns the full destination of key, for log lines and the ledger."""

    def destination(self) -> tuple[str, str | None, str]:
        """Names where uploads go, apart from the key: (scheme, endpoint or
        None for the default, bucket or root). The ledger records it."""

    def check_destination(self) -> None:
        """Raises UsageError if the destination does not exist (a mistyped bucket)."""

    def connect(self) -> None:
        """Prepares for a pass with work (no network request needed)."""

    def begin_pass(self, archive_fd: int) -> None:
        """Called under the archive's lock before the first write of a pass;
        archive_fd stays open until the pass ends. The S3 backend cleans up
        after a killed pass and learns whether the store honours conditional
        writes (state kept in the archive directory)."""

    def put(self, local: LocalFile, key: str, *, check_stop: Callable[[], None]) -> PutResult:
        """Stores local at key unless the key is taken. See the module docstring."""

    def head(self, key: str) -> RemoteObject | None:
        """What the destination holds at key (size, metadata), or None if nothing."""

    def open_object(self, key: str) -> BinaryIO:
        """A stream of the object's bytes (for --verify=full)."""


class Option:
    """One command-line option of a backend: add_argument's arguments as
    data, so a command can take some of a backend's options and still get
    every one's default. only_here: an error with any other backend."""

    def __init__(self, flag: str, *, only_here: bool = False, **settings: Any) -> None:
        self.flag = flag
        self.only_here = only_here
        self.settings = settings
        self.dest: str = settings.get("dest") or flag.removeprefix("--").replace("-", "_")


def add_options(group: argparse._ActionsContainer, options: Iterable[Option], *,
                only: Collection[str] | None = None) -> None:
    """Adds options to an argparse parser or group; with only (flags), just
    those. The others still get their defaults in the parsed namespace, so a
    backend's from_args finds every option whichever command parsed them."""
    for option in options:
        if only is None or option.flag in only:
            group.add_argument(option.flag, **option.settings)
        else:
            group.set_defaults(**{option.dest: option.settings.get("default")})


def given_flags(args: argparse.Namespace, options: Iterable[Option]) -> list[str]:
    """Takes parsed arguments. Returns the only_here flags of options given in them."""
    return [option.flag for option in options if option.only_here and vars(args)[option.dest]]


class KeyClaims:
    """Within one process: one writer per key at a time, and which local file
    each key was stored or found identical for during this pass.

    A backend's check-and-write of a key (HEAD then PUT where the store
    ignores If-None-Match; a file:// existence check then link) is not atomic
    between the threads of --jobs. Two files of one archive can want one key:
    a file literally named like another's upload duplicate
    (``x-...T0700Z-logjam-upload-duplicate-01.log.gz``), or names that
    utf8_key's %XX escaping maps to one key. Holding the key's lock around
    the whole check-and-write makes the second writer see the first's
    object and move on to its next duplicate key; a key already taken by
    another local file of this pass is a CONFLICT even if it holds the same
    bytes, so the ledger never records two files at one key. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writers: dict[str, tuple[threading.Lock, int]] = {}  # key -> (its lock, threads using it)
        self._holders: dict[str, str] = {}  # key -> the local file name it holds

    def new_pass(self) -> None:
        """Forgets the holders (memory stays bounded by one pass in loop mode)."""
        with self._lock:
            self._holders.clear()

    def put(self, key: str, name: str, write: Callable[[], PutResult]) -> PutResult:
        """Runs write() (the backend's check-and-write of key for local file
        name) with no other thread of this process writing key. Returns its
        result, or CONFLICT without calling it when key holds another file."""
        with self._exclusive(key):
            with self._lock:
                holder = self._holders.get(key)
            if holder is not None and holder != name:
                return PutResult.CONFLICT
            result = write()
            if result is not PutResult.CONFLICT:
                with self._lock:
                    self._holders[key] = name
            return result

    @contextlib.contextmanager
    def _exclusive(self, key: str) -> Iterator[None]:
        with self._lock:
            lock, users = self._writers.get(key) or (threading.Lock(), 0)
            self._writers[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._writers[key]
                if users == 1:
                    del self._writers[key]
                else:
                    self._writers[key] = (lock, users - 1)


@dataclass(frozen=True)
class RemoteObject:
    size: int
    metadata: dict[str, str]
    sha256: str | None = None  # hex, of the whole object, as the store reports it
    md5: str | None = None  # hex, when the store's ETag is the MD5 of the bytes


@dataclass(frozen=True)
class Download:
    """An object being read: its bytes, and what the store says about them."""

    body: BinaryIO
    size: int
    metadata: dict[str, str]
    sha256: str | None = None  # hex, a full-object checksum the store kept
    md5: str | None = None  # hex, when the ETag is the MD5 of the bytes


class Throttle:
    """Keeps the bytes sent by every upload of this process, together, under a
    rate (--max-bandwidth), for hosts on thin links. Thread-safe."""

    def __init__(self, bytes_per_second: float | None) -> None:
        self.rate = bytes_per_second
        self._lock = threading.Lock()
        self._free_at = time.monotonic()

    def consume(self, size: int, check_stop: Callable[[], None]) -> None:
        """Waits until size more bytes may go out; checks for a stop while waiting."""
        if not self.rate or size <= 0:
            return
        with self._lock:
            start = max(time.monotonic(), self._free_at)
            self._free_at = start + size / self.rate
        while (delay := start - time.monotonic()) > 0:
            check_stop()
            time.sleep(min(delay, 0.2))


UNTHROTTLED = Throttle(None)

# Options every backend takes (the file:// backend has no others).
SHARED_OPTIONS = (
    Option("--max-bandwidth", type=parse_bandwidth, default=None, metavar="BYTES_PER_SECOND",
           help="keep all uploads together under this rate, e.g. 1000000 or 5MiB (thin links)"),
)


def reader(local: LocalFile, check_stop: Callable[[], None], throttle: Throttle = UNTHROTTLED) -> io.RawIOBase:
    """A seekable file object over local.fd that stops mid-body on a stop request."""
    return OffsetReader(
        lambda offset, size: os.pread(local.fd, size, offset),
        local.size,
        before_read=check_stop,
        after_read=lambda count: throttle.consume(count, check_stop),
    )


class OffsetReader(io.RawIOBase):
    """A seekable body for botocore over bytes fetched by offset (a file by
    pread, a part buffer by slicing): nothing is copied in advance, and a
    retry can seek back to the start."""

    def __init__(
        self,
        read_at: Callable[[int, int], bytes | memoryview],
        size: int,
        *,
        before_read: Callable[[], None] = lambda: None,
        after_read: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._read_at = read_at
        self._size = size
        self._before_read = before_read
        self._after_read = after_read
        self._offset = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._offset, io.SEEK_END: self._size}[whence]
        self._offset = base + offset
        return self._offset

    def readinto(self, buffer: Any) -> int:
        self._before_read()
        data = self._read_at(self._offset, len(buffer))
        buffer[: len(data)] = data
        self._offset += len(data)
        self._after_read(len(data))
        return len(data)
