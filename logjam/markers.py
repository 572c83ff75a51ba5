"""What a ledger marker says: the destinations (Destination) a file is
confirmed at, each with its key and fingerprint (Confirmation), and the
marker's encoding (LedgerEntry, JSON, and the older field=value format)."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from logjam.backends.base import Uploader
from logjam.errors import FileError
from logjam.integrity import Fingerprint

FORMAT = "logjam-ledger/2"


UNKNOWN_ENDPOINT = "?"  # markers of the old format did not record the endpoint


class MarkerError(FileError):
    """A marker that cannot be read or understood: its file counts as not uploaded."""


@dataclass(frozen=True, kw_only=True)
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
        return cls(scheme=scheme, bucket=bucket, endpoint=normalise_endpoint(endpoint))

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


@dataclass(frozen=True)
class Confirmation:
    """One destination's confirmation of a file: its key there and the fingerprint confirmed."""

    destination: Destination
    key: str
    fingerprint: Fingerprint
    location: str = field(default="", kw_only=True)  # the full destination of key, for people (uploader.describe)

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
                    Destination(scheme=str(u["scheme"]), bucket=str(u["bucket"]),
                                endpoint=None if u.get("endpoint") is None else str(u["endpoint"])),
                    str(u["key"]),
                    Fingerprint(int(u["size"]), str(u["sha256"]),
                                log_length=None if u.get("log_length") is None else int(u["log_length"]),
                                log_sha256=None if u.get("log_sha256") is None else str(u["log_sha256"])),
                    location=str(u.get("location") or ""),
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
                                 log_length=int(fields["log_length"]) if fields.get("log_length") else None,
                                 log_sha256=fields.get("log_sha256") or None)
        except ValueError as error:
            raise MarkerError(f"unreadable marker: {error}") from None
        location = fields.get("destination", "")
        return cls(name, (Confirmation(_old_destination(location, key=key), key, print_, location=location),))


def _old_destination(location: str, *, key: str) -> Destination:
    # The old format recorded the full location ("s3://BUCKET/KEY",
    # "file:///ROOT/KEY"): the bucket or root is what precedes the key.
    scheme, sep, rest = location.partition("://")
    if sep and rest.endswith(key):
        place = rest[: len(rest) - len(key)]
        if scheme == "file":
            return Destination(scheme="file", bucket=place.rstrip("/") or "/")
        return Destination(scheme=scheme, bucket=place.rstrip("/"), endpoint=UNKNOWN_ENDPOINT)
    return Destination(scheme=scheme or "unknown", bucket=location, endpoint=UNKNOWN_ENDPOINT)


def only_elsewhere(entries: Iterable[LedgerEntry], destination: Destination, *, any_here: bool) -> str:
    """The one line --verify and logjam-status --check give for kept files
    recorded as uploaded only to other destinations (a mistyped or wrong
    URI, or a backlog not yet sent here): they are missing at destination."""
    entries = list(entries)
    places = sorted({str(c.destination) for entry in entries for c in entry.confirmations})
    count = f"{len(entries)} file{'s are' if len(entries) != 1 else ' is'}"
    where = "none at" if not any_here else "not at"
    return f"{count} recorded as uploaded only to {', '.join(places)}; {where} {destination}"
