"""The ledger: what was confirmed uploaded, where, and what proves it.

``ARCHIVE_DIR/.uploaded/`` holds one marker per archived file, named like the
file, written only after a destination confirmed the upload. A marker lists
each destination the file is confirmed at (scheme, endpoint, bucket or
``file://`` root), with its key there and the file's fingerprint. A file
counts as uploaded only for the destinations its marker lists.

The marker is JSON (ASCII, every other character escaped), so any file name
and any key survives it; markers in the older ``field=value`` format are
still read. This module is the only place that reads or writes marker files
(their contents: logjam.markers); ``logjam.proof.prove`` is the one rule for
whether an object at a destination holds a file.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from logjam import fsutil
from logjam.markers import (
    Confirmation,
    Destination,
    LedgerEntry,
    MarkerError,
)

LEDGER_DIRNAME = ".uploaded"
MAX_MARKER_SIZE = 1 << 20  # a marker is a few hundred bytes per destination


# -- the directory -----------------------------------------------------------

class Ledger:
    """ARCHIVE_DIR/.uploaded/, through the archive's directory descriptor."""

    def __init__(self, archive_fd: int) -> None:
        self.archive_fd = archive_fd

    def _open(self) -> int | None:
        try:
            return fsutil.open_dir(LEDGER_DIRNAME, dir_fd=self.archive_fd)
        except FileNotFoundError:
            return None

    def _open_or_create(self) -> int:
        fd = self._open()
        if fd is not None:
            return fd
        with contextlib.suppress(FileExistsError):  # another upload thread made it
            os.mkdir(LEDGER_DIRNAME, 0o700, dir_fd=self.archive_fd)
            fsutil.fsync_dir(self.archive_fd)
        return fsutil.open_dir(LEDGER_DIRNAME, dir_fd=self.archive_fd)

    def names(self, *, clean: bool = True) -> set[str]:
        """The names that have a marker. With clean (only under the archive's
        lock), stale temporary markers are removed."""
        fd = self._open()
        if fd is None:
            return set()
        try:
            return set(self._names(fd, clean=clean))
        finally:
            os.close(fd)

    def read(self, name: str) -> LedgerEntry | None:
        """name's entry, or None if it has no marker. Raises MarkerError for a
        marker that is not a regular file, cannot be read or says nothing."""
        fd = self._open()
        if fd is None:
            return None
        try:
            return LedgerEntry.from_bytes(name, _read_marker(fd, name))
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)

    def entries(self, names: Iterable[str] | None = None, *,
                clean: bool = False) -> dict[str, LedgerEntry | MarkerError]:
        """The entries of names (default: every marker) that have a marker; a
        bad marker as its MarkerError. One pass over the ledger directory,
        opened once. With clean (under the archive's lock), stale temporary
        markers go first."""
        result: dict[str, LedgerEntry | MarkerError] = {}
        # Without the cyclic collector while the entries pile up: they make no
        # cycles, and its runs over every object kept so far cost more than
        # the parsing (a third of logjam-status over 100,000 files).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for name, data in self.contents(names, clean=clean):
                if isinstance(data, MarkerError):
                    result[name] = data
                    continue
                try:
                    result[name] = LedgerEntry.from_bytes(name, data)
                except MarkerError as error:
                    result[name] = error
        finally:
            if collecting:
                gc.enable()
        return result

    def contents(self, names: Iterable[str] | None = None, *,
                 clean: bool = False) -> Iterator[tuple[str, bytes | MarkerError]]:
        """The bytes of each marker of names (default: every marker), or why
        it cannot be read: the ledger directory opened once, the listing's
        file types trusted (no stat), then open, fstat, read, close each.
        This is what an idle pass costs (see Standing.of)."""
        fd = self._open()
        if fd is None:
            return
        try:
            regular = self._scan(fd, clean=clean) if names is None else dict.fromkeys(names, False)
            for name, listed in regular.items():
                try:
                    if listed is None:
                        raise MarkerError("marker is not a regular file")
                    data: bytes | MarkerError = _read_marker(fd, name, listed=listed)
                except FileNotFoundError:
                    continue  # removed since the listing
                except MarkerError as error:
                    data = error
                yield name, data
        finally:
            os.close(fd)

    @staticmethod
    def _names(fd: int, *, clean: bool) -> list[str]:
        names = os.listdir(fd)
        if clean:
            fsutil.remove_stale_temp_files(fd, names)
        return [name for name in names if not fsutil.is_temp_name(name)]

    @staticmethod
    def _scan(fd: int, *, clean: bool) -> dict[str, bool | None]:
        # Each marker's name -> True if the listing shows a regular file
        # (d_type: no system call), None if it shows anything else.
        with os.scandir(fd) as listing:
            kinds = {entry.name: True if entry.is_file(follow_symlinks=False) else None for entry in listing}
        if clean:
            for name in fsutil.remove_stale_temp_files(fd, list(kinds)):
                del kinds[name]
        return {name: kind for name, kind in kinds.items() if not fsutil.is_temp_name(name)}

    def record(self, name: str, confirmation: Confirmation, *, source: os.stat_result) -> None:
        """Durably records name as confirmed at confirmation's destination,
        keeping its confirmations elsewhere. The marker gets the file's owner
        and no wider permissions than source (the archived file)."""
        fd = self._open_or_create()
        try:
            try:
                old = LedgerEntry.from_bytes(name, _read_marker(fd, name))
            except FileNotFoundError:
                old = None
            except MarkerError:
                old = None  # an empty or garbled marker is replaced
            entry = (old or LedgerEntry(name)).with_confirmation(confirmation)
            with fsutil.temp_file(fd, name) as (temp_fd, temp):
                fsutil.write_all(temp_fd, entry.to_bytes())
                _give_permissions(source, temp_fd)
                os.fsync(temp_fd)
                if old is None and fsutil.publish(fd, temp, [name]) is not None:
                    return
                # Adding a destination to a marker (or replacing a garbled
                # one) must replace it; this pass holds the archive's lock.
                try:
                    os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
                except IsADirectoryError:
                    raise MarkerError(f"cannot record the upload: {LEDGER_DIRNAME}/{name} is a directory") from None
                fsutil.fsync_dir(fd)
        finally:
            os.close(fd)

    def forget(self, name: str, destination: Destination | None = None) -> None:
        """Removes name's marker (its file is deleted, or must be sent again);
        with destination, only that destination's confirmation."""
        fd = self._open()
        if fd is None:
            return
        try:
            if destination is not None:
                try:
                    entry = LedgerEntry.from_bytes(name, _read_marker(fd, name)).without(destination)
                except FileNotFoundError:
                    return
                if entry.confirmations:
                    with fsutil.temp_file(fd, name) as (temp_fd, temp):
                        fsutil.write_all(temp_fd, entry.to_bytes())
                        _give_permissions(os.stat(name, dir_fd=fd, follow_symlinks=False), temp_fd)
                        os.fsync(temp_fd)
                        os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
                    fsutil.fsync_dir(fd)
                    return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
                fsutil.fsync_dir(fd)
        finally:
            os.close(fd)


class Confirmations(Mapping[str, Confirmation]):
    """The confirmations at one destination, by name, parsed when asked for:
    an idle pass needs only the names (what not to upload)."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._markers: dict[str, bytes | Confirmation] = {}

    def add(self, name: str, marker: bytes | Confirmation) -> None:
        self._markers[name] = marker

    def __getitem__(self, name: str) -> Confirmation:
        marker = self._markers[name]
        if isinstance(marker, Confirmation):
            return marker
        confirmation = LedgerEntry.from_bytes(name, marker).at(self.destination)
        if confirmation is None:  # cannot be: the signature was found (see Standing.of)
            raise MarkerError(f"marker names no confirmation at {self.destination}")
        self._markers[name] = confirmation
        return confirmation

    def __contains__(self, name: object) -> bool:
        return name in self._markers

    def __iter__(self) -> Iterator[str]:
        return iter(self._markers)

    def __len__(self) -> int:
        return len(self._markers)


@dataclass
class Standing:
    """The ledger as one destination sees it."""

    here: Confirmations  # confirmed at this destination
    elsewhere: dict[str, LedgerEntry] = field(default_factory=dict)  # confirmed only at others
    bad: dict[str, MarkerError] = field(default_factory=dict)  # markers that count for nothing

    @classmethod
    def of(cls, ledger: Ledger, destination: Destination, *, clean: bool = True) -> Standing:
        """Reads every marker once. With clean (under the archive's lock),
        stale temporary markers are removed first.

        The idle pass: a marker as this version writes it (complete, and
        holding this destination's scheme, endpoint and bucket as
        LedgerEntry.to_bytes lays them out) is taken as confirmed here
        without parsing; its Confirmation is parsed when asked for. The
        layout has raw newlines between fields, which JSON strings cannot
        hold, so the signature cannot come from inside a name or a key.
        Anything else is parsed in full."""
        standing = cls(Confirmations(destination))
        signature = _signature(destination)
        for name, data in ledger.contents(clean=clean):
            if isinstance(data, MarkerError):
                standing.bad[name] = data
                continue
            if data.startswith(_HEADER) and data.endswith(_TRAILER) and signature in data:
                standing.here.add(name, data)
                continue
            try:
                entry = LedgerEntry.from_bytes(name, data)
            except MarkerError as error:
                standing.bad[name] = error
                continue
            if (confirmation := entry.at(destination)) is not None:
                standing.here.add(name, confirmation)
            else:
                standing.elsewhere[name] = entry
        return standing


_HEADER = b'{\n "format": "logjam-ledger/2",\n "uploads": [\n'
_TRAILER = b"\n ]\n}\n"


def _signature(destination: Destination) -> bytes:
    """How LedgerEntry.to_bytes lays out a confirmation's destination."""
    return ("\n   " + ",\n   ".join(f"{json.dumps(field)}: {json.dumps(value, ensure_ascii=True)}" for field, value in (
        ("scheme", destination.scheme), ("endpoint", destination.endpoint), ("bucket", destination.bucket)))
        + ",\n").encode("ascii")


def _read_marker(ledger_fd: int, name: str, *, listed: bool = False) -> bytes:
    # The idle pass reads every marker: four system calls each (open, fstat,
    # read, close) and a buffer of the marker's size, not MAX_MARKER_SIZE.
    # Never a FIFO (opening one releases its writer): the caller knows the
    # entry is a regular file from the directory listing (listed) or an
    # lstat; O_NOFOLLOW|O_NONBLOCK and the fstat close the gap.
    if not listed:
        mode = os.stat(name, dir_fd=ledger_fd, follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise MarkerError("marker is not a regular file")
    try:
        fd = os.open(name, fsutil.READ_FLAGS, dir_fd=ledger_fd)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise MarkerError("marker is not a regular file") from None
        raise MarkerError(f"cannot read marker: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MarkerError("marker is not a regular file")
        want = min(info.st_size + 1, MAX_MARKER_SIZE)
        data = os.read(fd, want)  # short: the end of the file
        if len(data) == want < MAX_MARKER_SIZE:  # grown since the fstat
            data += os.read(fd, MAX_MARKER_SIZE - want)
    except OSError as error:
        raise MarkerError(f"cannot read marker: {error.strerror}") from None
    finally:
        os.close(fd)
    return data


def _give_permissions(source: os.stat_result, fd: int) -> None:
    # The one rule for what logjam makes from a file (owner, group, mode no
    # wider than the original's), as for compressed and file:// copies.
    fsutil.copy_metadata(source, fd, mode_mask=0o666, times=False)


