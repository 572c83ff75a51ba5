"""The file:// backend: archives stored in a local or mounted directory."""

from __future__ import annotations

import argparse
import errno
import io
import os
import stat
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from logjam import fsutil
from logjam.backends.base import Download, KeyClaims, LocalFile, Option, PutResult, RemoteObject, Throttle
from logjam.errors import FileError, UsageError
from logjam.integrity import file_fingerprint

OPTIONS: tuple[Option, ...] = ()  # none of its own: it takes the shared ones (base.SHARED_OPTIONS)


@dataclass(frozen=True)
class FileConfig:
    """What FileUploader is told, apart from the URI."""

    max_bandwidth: int | None = None  # bytes per second, all copies together


def check_args(args: argparse.Namespace) -> None:
    """Nothing to check beyond what argparse does."""


def from_args(args: argparse.Namespace) -> FileConfig:
    """Takes arguments parsed with the registry's add_arguments. Returns the FileConfig."""
    return FileConfig(max_bandwidth=args.max_bandwidth)


class FileUploader:
    """file:///ROOT/TEMPLATE: a local or mounted directory, e.g. an NFS archive.

    ROOT is the part of the path before the first field; it must exist, so an
    unmounted mount point never fills the local disk. Keys are resolved below
    ROOT one component at a time without following links, so no key, however
    odd, can write outside it.
    """

    scheme = "file"
    collapses_empty_segments = True  # a directory tree has no empty segments: "web//2026/" is "web/2026/"

    def __init__(self, uri: str, config: FileConfig = FileConfig()) -> None:
        parsed = urllib.parse.urlsplit(uri)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"{uri}: file:// URIs name a local path (file:///path/...)")
        path = urllib.parse.unquote(parsed.path)
        head, brace, _ = path.partition("{")
        if not brace:
            raise UsageError(f"{uri}: the path needs a key template, e.g. file:///mnt/logs/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}")
        root = head.rsplit("/", 1)[0] or "/"
        self.uri = uri
        self.throttle = Throttle(config.max_bandwidth)
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
    fsutil.remove_stale_temp_files(dir_fd, [n for n in os.listdir(dir_fd) if fsutil.is_temp_for(n, final_name=name)])
