"""The uploader interface, the registry of backends by URI scheme, and the
file:// backend. Another destination is one new class registered in UPLOADERS.

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
import errno
import io
import os
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from logjam import fsutil
from logjam.errors import FileError, UsageError
from logjam.integrity import Fingerprint, file_fingerprint


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


class FileUploader:
    """file:///ROOT/TEMPLATE: a local or mounted directory, e.g. an NFS archive.

    ROOT is the part of the path before the first field; it must exist, so an
    unmounted mount point never fills the local disk. Keys are resolved below
    ROOT one component at a time without following links, so no key, however
    odd, can write outside it.
    """

    scheme = "file"

    def __init__(self, uri: str, options: argparse.Namespace | None = None) -> None:
        parsed = urllib.parse.urlsplit(uri)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"{uri}: file:// URIs name a local path (file:///path/...)")
        path = urllib.parse.unquote(parsed.path)
        head, brace, _ = path.partition("{")
        if not brace:
            raise UsageError(f"{uri}: the path needs a key template, e.g. file:///mnt/logs/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}")
        root = head.rsplit("/", 1)[0] or "/"
        self.uri = uri
        self.throttle = Throttle(getattr(options, "max_bandwidth", None))
        self.root = root
        self.template = path[len(root):].lstrip("/")
        self.claims = KeyClaims()

    def check_uri(self) -> None:
        if not os.path.isdir(self.root):
            raise UsageError(f"{self.uri}: destination root {self.root} does not exist (is it mounted?)")

    def describe(self, key: str) -> str:
        return "file://" + os.path.join(self.root, key)

    def destination(self) -> tuple[str, str | None, str]:
        return "file", None, self.root

    def check_destination(self) -> None:
        self.check_uri()

    def connect(self) -> None:
        pass

    def begin_pass(self, archive_fd: int) -> None:
        # link() never replaces a name: nothing to learn about the store.
        self.claims.new_pass()

    def put(self, local: LocalFile, key: str, *, check_stop: Callable[[], None]) -> PutResult:
        # One writer per path in this process: a second thread would remove
        # the first's temporary file as stale, or find its finished copy
        # identical and record a second file at the same path.
        path = "/".join(_key_components(key))
        return self.claims.put(path, local.name, lambda: self._put(local, key, check_stop))

    def _put(self, local: LocalFile, key: str, check_stop: Callable[[], None]) -> PutResult:
        *folders, name = _key_components(key)
        for component in (*folders, name):
            size = len(os.fsencode(component))
            if size > NAME_MAX:
                # Checked before any write: without it every duplicate name
                # failed alike and each pass tried all 99 of them again.
                raise FileError(f"{component[:40]}...: a name of {size} bytes in key {self.describe(key)!r} is longer "
                                f"than the {NAME_MAX} a directory entry may have; file left in the archive, "
                                "rename it or shorten the template")
        dir_fd = fsutil.open_dir(self.root)
        try:
            for folder in folders:
                dir_fd = _enter(dir_fd, folder, key)  # closes the parent
            # A crash after linking may have left our temporary name beside
            # the finished copy: clear it before anything else.
            _remove_own_stale_temps(dir_fd, name)
            existing = _existing(dir_fd, name, local, check_stop)
            if existing is not None:
                if existing is PutResult.IDENTICAL:
                    fsutil.fsync_dir(dir_fd)  # durable before it is recorded
                return existing
            with fsutil.temp_file(dir_fd, name) as (temp_fd, temp):
                source = os.fstat(local.fd)
                fsutil.copy_metadata(source, temp_fd)
                for chunk in fsutil.read_chunks(local.fd, check=check_stop):
                    self.throttle.consume(len(chunk), check_stop)
                    fsutil.write_all(temp_fd, chunk)
                os.fsync(temp_fd)
                published = fsutil.publish(dir_fd, temp, [name])
                if published is None:  # another writer took the name meanwhile
                    raise FileExistsError(errno.EEXIST, "appeared while copying", name)
            return PutResult.STORED
        except FileExistsError:
            return _existing(dir_fd, name, local, check_stop) or PutResult.CONFLICT
        finally:
            os.close(dir_fd)


    def head(self, key: str) -> RemoteObject | None:
        try:
            info = os.stat(os.path.join(self.root, *_key_components(key)), follow_symlinks=False)
        except FileNotFoundError:
            return None
        return RemoteObject(info.st_size, {})

    def open_object(self, key: str) -> BinaryIO:
        return open(os.path.join(self.root, *_key_components(key)), "rb")  # noqa: SIM115

    # -- reading back (logjam-cat) ------------------------------------------

    def list_keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every key that starts with prefix, with its size (links and
        logjam's temporary files left out; no order promised)."""
        folder, _, partial = prefix.rpartition("/")
        dir_fd = self._open_folder(folder)
        if dir_fd is None:
            return
        try:
            yield from _walk(dir_fd, folder + "/" if folder else "", partial)
        finally:
            os.close(dir_fd)

    def list_levels(self, prefix: str) -> list[str]:
        """The common prefixes of the keys below prefix, up to the next "/"
        (what an S3 listing with Delimiter="/" returns)."""
        folder, _, partial = prefix.rpartition("/")
        dir_fd = self._open_folder(folder)
        if dir_fd is None:
            return []
        try:
            head = folder + "/" if folder else ""
            with os.scandir(dir_fd) as entries:
                return [f"{head}{entry.name}/" for entry in entries
                        if entry.name.startswith(partial) and entry.is_dir(follow_symlinks=False)]
        finally:
            os.close(dir_fd)

    def get(self, key: str) -> Download:
        """The object at key, opened for reading (never through a link)."""
        *folders, name = _key_components(key)
        dir_fd = self._open_folder("/".join(folders))
        if dir_fd is None:
            raise FileError(f"{self.describe(key)}: no such file")
        try:
            fd, info = fsutil.open_regular(dir_fd, name)
        except FileNotFoundError:
            raise FileError(f"{self.describe(key)}: no such file") from None
        except OSError as error:
            raise FileError(f"{self.describe(key)}: cannot read: {error.strerror or error}") from None
        finally:
            os.close(dir_fd)
        return Download(io.FileIO(fd, "rb"), info.st_size, {})

    def _open_folder(self, folder: str) -> int | None:
        dir_fd = fsutil.open_dir(self.root)
        try:
            for part in _key_components(folder) if folder.strip("/") else []:
                child = fsutil.open_dir(part, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = child
        except OSError:
            os.close(dir_fd)
            return None
        return dir_fd


NAME_MAX = 255  # bytes in one directory entry's name (Linux, and most file systems)


def _key_components(key: str) -> list[str]:
    parts = [part for part in key.split("/") if part]
    if not parts or any(part in (".", "..") or "\x00" in part for part in parts):
        raise FileError(f"key {key!r} would leave the destination root; refused")
    return parts


def _enter(dir_fd: int, folder: str, key: str) -> int:
    try:
        os.mkdir(folder, 0o755, dir_fd=dir_fd)
        fsutil.fsync_dir(dir_fd)  # the new folder outlives a power cut
    except FileExistsError:
        pass
    try:
        child = fsutil.open_dir(folder, dir_fd=dir_fd)
    except OSError as error:
        raise FileError(f"{folder} in key {key!r} is not a directory ({error.strerror})") from None
    os.close(dir_fd)
    return child


def _existing(dir_fd: int, name: str, local: LocalFile, check_stop: Callable[[], None]) -> PutResult | None:
    try:
        fd = os.open(name, fsutil.READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError:
        return PutResult.CONFLICT  # a link or something else we will not read
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return PutResult.CONFLICT
        theirs = file_fingerprint(fd, None, check_stop=check_stop)
        same = (theirs.size, theirs.sha256) == (local.size, local.sha256)
        return PutResult.IDENTICAL if same else PutResult.CONFLICT
    finally:
        os.close(fd)


def _walk(dir_fd: int, head: str, partial: str = "") -> Iterator[tuple[str, int]]:
    with os.scandir(dir_fd) as entries:
        found = [(entry.name, entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False))
                 for entry in entries if entry.name.startswith(partial)]
    for name, is_dir, is_file in sorted(found):
        if is_dir:
            try:
                child = fsutil.open_dir(name, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                yield from _walk(child, f"{head}{name}/")
            finally:
                os.close(child)
        elif is_file and not fsutil.is_temp_name(name):
            yield f"{head}{name}", os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size


def _remove_own_stale_temps(dir_fd: int, name: str) -> None:
    # Only temporary files for this very name: other hosts may be writing
    # their own files into a shared folder right now.
    fsutil.remove_stale_temp_files(dir_fd, [n for n in os.listdir(dir_fd) if fsutil.is_temp_for(n, name)])


def _s3_uploader(uri: str, options: argparse.Namespace | None = None) -> Uploader:
    from logjam.s3_uploader import S3Uploader  # boto3 loads only when S3 is used

    return S3Uploader(uri, options)


UPLOADERS: dict[str, Callable[[str, argparse.Namespace | None], Uploader]] = {
    "s3": _s3_uploader,
    "file": FileUploader,
}


def get_uploader(uri: str, options: argparse.Namespace | None = None, *, uploaders=UPLOADERS) -> Uploader:
    """Takes a destination URI. Returns its uploader; raises UsageError for an unknown scheme."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme not in uploaders:
        known = ", ".join(f"{name}://" for name in sorted(uploaders))
        raise UsageError(f"{uri}: no uploader for scheme {scheme + '://' if scheme else '(none)'!s} (known: {known})")
    return uploaders[scheme](uri, options)


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

    def readinto(self, buffer) -> int:
        self._before_read()
        data = self._read_at(self._offset, len(buffer))
        buffer[: len(data)] = data
        self._offset += len(data)
        self._after_read(len(data))
        return len(data)
