"""Proof of upload: the one rule (judge, prove) for whether an object at a
destination holds a local file."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from logjam import fsutil
from logjam.backends.base import RemoteObject, Uploader
from logjam.codecs import CORRUPT_STREAM_ERRORS
from logjam.errors import Skipped
from logjam.integrity import METADATA_LABELS, METADATA_SHA256, Fingerprint, fingerprint
from logjam.markers import Confirmation

# Destinations whose stored copy is read back to prove an upload: a local or
# mounted directory holds no checksum of its own, and reading it costs no
# transfer.
READ_BACK_SCHEMES = frozenset({"file"})


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
        # The fields the writer stored with the object, as it stores them.
        for field, recorded in expected.metadata().items():
            found = remote.metadata.get(field)
            if found is not None:
                proofs.append((f"{METADATA_LABELS[field]} metadata", found, recorded))
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
