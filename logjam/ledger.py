"""The ledger: what was confirmed uploaded, where, and what proves it.

``ARCHIVE_DIR/.uploaded/`` holds one marker per archived file, named like the
file, written only after a destination confirmed the upload. A marker lists
each destination the file is confirmed at (scheme, endpoint, bucket or
``file://`` root), with its key there and the file's fingerprint. A file
counts as uploaded only for the destinations its marker lists.

The marker is JSON (ASCII, every other character escaped), so any file name
and any key survives it; markers in the older ``field=value`` format are
still read. This module is the only place that reads or writes markers, and
``prove`` is the one rule for whether an object at a destination holds a file.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import gc
import hashlib
import json
import os
import stat
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from logjam import fsutil
from logjam.backends.base import RemoteObject, Uploader
from logjam.codecs import CORRUPT_STREAM_ERRORS
from logjam.errors import FileError, Skipped
from logjam.integrity import METADATA_SHA256, Fingerprint, fingerprint

LEDGER_DIRNAME = ".uploaded"
FORMAT = "logjam-ledger/2"
MAX_MARKER_SIZE = 1 << 20  # a marker is a few hundred bytes per destination
UNKNOWN_ENDPOINT = "?"  # markers of the old format did not record the endpoint

# Destinations whose stored copy is read back to prove an upload: a local or
# mounted directory holds no checksum of its own, and reading it costs no
# transfer.
READ_BACK_SCHEMES = frozenset({"file"})


class MarkerError(FileError):
    """A marker that cannot be read or understood: its file counts as not uploaded."""


# -- destinations -------------------------------------------------------------

@dataclass(frozen=True)
class Destination:
    """Where uploads go, apart from the key: the scheme, the endpoint (None
    for the scheme's default, e.g. AWS) and the bucket (or the file:// root).
    A changed key template is the same destination."""

    scheme: str
    bucket: str
    endpoint: str | None = None

    @classmethod
    def of(cls, uploader: Uploader) -> Destination:
        """The destination an uploader writes to."""
        scheme, endpoint, bucket = uploader.destination()
        if scheme == "file":
            bucket = os.path.normpath(bucket)
        return cls(scheme, bucket, normalise_endpoint(endpoint))

    def includes(self, other: Destination) -> bool:
        """Whether an upload recorded for self counts for other. A marker of
        the old format named no endpoint: it counts for any endpoint."""
        if (self.scheme, self.bucket) != (other.scheme, other.bucket):
            return False
        return self.endpoint == other.endpoint or self.endpoint == UNKNOWN_ENDPOINT

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.bucket}"
        where = f"{self.scheme}://{self.bucket}"
        if self.endpoint == UNKNOWN_ENDPOINT:
            return where
        return f"{where} at {self.endpoint}" if self.endpoint else where


def normalise_endpoint(endpoint: str | None) -> str | None:
    """Takes an endpoint URL. Returns it without credentials, with the scheme
    and host in lower case and no trailing slash (None stays None)."""
    if not endpoint:
        return None
    parts = urllib.parse.urlsplit(endpoint.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


# -- entries ----------------------------------------------------------------

@dataclass(frozen=True)
class Confirmation:
    """One destination's confirmation of a file: its key there and the fingerprint confirmed."""

    destination: Destination
    key: str
    fingerprint: Fingerprint
    location: str = ""  # the full destination of key, for people (uploader.describe)

    def matches(self, other: Fingerprint) -> bool:
        """Whether other is the fingerprint of the bytes confirmed here."""
        return (self.fingerprint.size, self.fingerprint.sha256) == (other.size, other.sha256)


@dataclass(frozen=True)
class LedgerEntry:
    """What a marker says about one archived file."""

    name: str
    confirmations: tuple[Confirmation, ...] = ()

    def at(self, destination: Destination) -> Confirmation | None:
        """The confirmation that counts for destination, if any."""
        for confirmation in self.confirmations:
            if confirmation.destination.includes(destination):
                return confirmation
        return None

    def elsewhere(self, destination: Destination) -> list[Confirmation]:
        """The confirmations for other destinations than this one."""
        return [c for c in self.confirmations if not c.destination.includes(destination)]

    def with_confirmation(self, confirmation: Confirmation) -> LedgerEntry:
        """This entry with confirmation added, replacing any for the same
        destination; confirmations of other bytes (a file that changed) go."""
        kept = tuple(c for c in self.elsewhere(confirmation.destination) if c.matches(confirmation.fingerprint))
        return replace(self, confirmations=(*kept, confirmation))

    def without(self, destination: Destination) -> LedgerEntry:
        """This entry without the confirmation for destination."""
        return replace(self, confirmations=tuple(self.elsewhere(destination)))

    def to_bytes(self) -> bytes:
        """The marker's contents (JSON, ASCII only)."""
        uploads = []
        for c in self.confirmations:
            upload = {"scheme": c.destination.scheme, "endpoint": c.destination.endpoint,
                      "bucket": c.destination.bucket, "key": c.key, "location": c.location,
                      "size": c.fingerprint.size, "sha256": c.fingerprint.sha256}
            if c.fingerprint.log_sha256 is not None:
                upload.update(log_length=c.fingerprint.log_length, log_sha256=c.fingerprint.log_sha256)
            uploads.append(upload)
        return (json.dumps({"format": FORMAT, "uploads": uploads}, ensure_ascii=True, indent=1) + "\n").encode("ascii")

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> LedgerEntry:
        """Parses a marker of either format. Raises MarkerError if it says nothing usable."""
        if not data.strip():
            raise MarkerError("empty marker")
        if data.lstrip().startswith(b"{"):
            return cls._from_json(name, data)
        return cls._from_fields(name, data)

    @classmethod
    def _from_json(cls, name: str, data: bytes) -> LedgerEntry:
        try:
            document = json.loads(data.decode("utf-8", "surrogateescape"))
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise MarkerError(f"not a marker of format {FORMAT}")
            confirmations = tuple(
                Confirmation(
                    Destination(str(u["scheme"]), str(u["bucket"]),
                                None if u.get("endpoint") is None else str(u["endpoint"])),
                    str(u["key"]),
                    Fingerprint(int(u["size"]), str(u["sha256"]),
                                None if u.get("log_length") is None else int(u["log_length"]),
                                None if u.get("log_sha256") is None else str(u["log_sha256"])),
                    str(u.get("location") or ""),
                )
                for u in document.get("uploads", [])
            )
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise MarkerError(f"unreadable marker: {error}") from None
        if not confirmations:
            raise MarkerError("marker names no destination")
        return cls(name, confirmations)

    @classmethod
    def _from_fields(cls, name: str, data: bytes) -> LedgerEntry:
        # The old format: field=value lines. Split on "\n" alone:
        # str.splitlines() also splits on "\r", U+0085 and U+2028, which
        # may be part of a name or a key.
        text = data.decode("utf-8", "surrogateescape")
        fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
        key = fields.get("key")
        if key is None or "size" not in fields or "sha256" not in fields:
            raise MarkerError("marker of the old format names no key (or no fingerprint)")
        try:
            print_ = Fingerprint(int(fields["size"]), fields["sha256"],
                                 int(fields["log_length"]) if fields.get("log_length") else None,
                                 fields.get("log_sha256") or None)
        except ValueError as error:
            raise MarkerError(f"unreadable marker: {error}") from None
        location = fields.get("destination", "")
        return cls(name, (Confirmation(_old_destination(location, key), key, print_, location),))


def _old_destination(location: str, key: str) -> Destination:
    # The old format recorded the full location ("s3://BUCKET/KEY",
    # "file:///ROOT/KEY"): the bucket or root is what precedes the key.
    scheme, sep, rest = location.partition("://")
    if sep and rest.endswith(key):
        place = rest[: len(rest) - len(key)]
        if scheme == "file":
            return Destination("file", place.rstrip("/") or "/")
        return Destination(scheme, place.rstrip("/"), UNKNOWN_ENDPOINT)
    return Destination(scheme or "unknown", location, UNKNOWN_ENDPOINT)


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


def only_elsewhere(entries: Iterable[LedgerEntry], destination: Destination, *, any_here: bool) -> str:
    """The one line --verify and logjam-status --check give for kept files
    recorded as uploaded only to other destinations (a mistyped or wrong
    URI, or a backlog not yet sent here): they are missing at destination."""
    entries = list(entries)
    places = sorted({str(c.destination) for entry in entries for c in entry.confirmations})
    count = f"{len(entries)} file{'s are' if len(entries) != 1 else ' is'}"
    where = "none at" if not any_here else "not at"
    return f"{count} recorded as uploaded only to {', '.join(places)}; {where} {destination}"


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


# -- proof -------------------------------------------------------------------

class Proof(enum.Enum):
    CONFIRMED = "confirmed"  # the object's fingerprint is the file's
    MISSING = "missing"  # nothing at the key
    DIFFERENT = "different"  # the object holds other bytes
    UNCONFIRMED = "unconfirmed"  # something of the right size, but nothing proves what


@dataclass(frozen=True)
class Verdict:
    proof: Proof
    detail: str

    @property
    def confirmed(self) -> bool:
        return self.proof is Proof.CONFIRMED


def judge(remote: RemoteObject | None, expected: Fingerprint, *,
          local_md5: Callable[[], str | None] = lambda: None, thorough: bool = False) -> Verdict:
    """Takes what a destination holds at a key and the file's fingerprint.
    Returns whether the object proves it holds the file. Only a fingerprint
    proves it: logjam's sha256 metadata, a full-object SHA-256 checksum, or a
    plain MD5 ETag compared with the local bytes (local_md5). A size alone
    proves nothing, and any evidence that contradicts wins over any that
    agrees: metadata is only what the writer said (a copy or a re-PUT
    carries it along), the checksum and the ETag are what the store computed.

    local_md5 reads the whole local file. It is called when the ETag is a
    plain MD5 and nothing else contradicts already, and either thorough
    (retention, before deleting) or no store-computed SHA-256 checksum
    vouches for the bytes (metadata would otherwise be the only proof)."""
    if remote is None:
        return Verdict(Proof.MISSING, "missing at the destination")
    if remote.size != expected.size:
        return Verdict(Proof.DIFFERENT, f"size is {remote.size}, recorded {expected.size}")
    proofs = []
    if remote.sha256 is not None:
        proofs.append(("SHA-256 checksum", remote.sha256, expected.sha256))
    if METADATA_SHA256 in remote.metadata:
        proofs.append(("sha256 metadata", remote.metadata[METADATA_SHA256], expected.sha256))
        for attr in ("log_sha256", "log_length"):
            found = remote.metadata.get("logjam-" + attr.replace("_", "-"))
            recorded = getattr(expected, attr)
            if found is not None and recorded is not None:
                proofs.append((attr.replace("_", " ") + " metadata", found, str(recorded)))
    for what, found, recorded in proofs:
        if found != recorded:
            return Verdict(Proof.DIFFERENT, f"{what} is {found}, recorded {recorded}")
    if remote.md5 is not None and (thorough or remote.sha256 is None):
        mine = local_md5()
        if mine is not None:
            if remote.md5 != mine:
                also = f" (although its {proofs[0][0]} matches)" if proofs else ""
                return Verdict(Proof.DIFFERENT, f"MD5 ETag is not the local file's{also}")
            proofs.append(("MD5 ETag", remote.md5, mine))
    if proofs:
        return Verdict(Proof.CONFIRMED, f"{proofs[0][0]} matches")
    return Verdict(Proof.UNCONFIRMED, "not confirmed: the object carries no checksum that proves it holds this file")


def prove(uploader: Uploader, confirmation: Confirmation, *, archive_fd: int | None = None, name: str | None = None,
          check_stop: Callable[[], None] = lambda: None, md5: str | None = None,
          thorough: bool = False) -> Verdict:
    """Asks the destination whether it holds the file confirmed there (one
    HEAD; for file:// the stored copy is read and hashed). The local file
    (archive_fd, name), when there, answers an MD5 ETag (md5, if the caller
    has it already); thorough (retention) always compares an MD5 ETag, see
    judge. The one rule for retention, --verify and logjam-status --check."""
    remote = uploader.head(confirmation.key)
    if remote is not None and confirmation.destination.scheme in READ_BACK_SCHEMES \
            and remote.size == confirmation.fingerprint.size:
        try:
            with contextlib.closing(uploader.open_object(confirmation.key)) as stream:
                found = fingerprint(stream, None, check_stop=check_stop)
        except FileNotFoundError:
            remote = None
        except OSError as error:
            return Verdict(Proof.UNCONFIRMED, f"cannot read the stored copy: {error.strerror or error}")
        except CORRUPT_STREAM_ERRORS as error:
            return Verdict(Proof.UNCONFIRMED, f"cannot read the stored copy: {error}")
        else:
            remote = RemoteObject(found.size, {METADATA_SHA256: found.sha256})

    def mine() -> str | None:
        if md5 is not None:
            return md5
        return local_md5(archive_fd, name) if archive_fd is not None and name else None

    return judge(remote, confirmation.fingerprint, local_md5=mine, thorough=thorough)


def local_md5(archive_fd: int, name: str) -> str | None:
    """The MD5 of an archived file, or None if it cannot be read."""
    try:
        fd, _ = fsutil.open_regular(archive_fd, name)
    except (OSError, Skipped):
        return None
    try:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in fsutil.read_chunks(fd):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)

