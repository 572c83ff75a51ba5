"""Retention (--delete-uploaded-after): which uploaded archives are old enough
to delete, and their deletion once the destination proves it holds them."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import logging
import os
from collections.abc import Iterable

from logjam import fsutil
from logjam.backends.base import Uploader
from logjam.errors import Skipped
from logjam.integrity import Fingerprint
from logjam.ledger import Ledger
from logjam.markers import Confirmation, Destination
from logjam.parse import parse_filename
from logjam.passes import PassContext
from logjam.proof import Proof, prove

log = logging.getLogger("logjam.upload")


def expired(uploaded_names: Iterable[str], cutoff: datetime.datetime) -> list[str]:
    """Takes the ledger's names and a cutoff time. Returns the recorded names
    whose log hour is before cutoff, sorted (the file may be gone already,
    leaving only its marker)."""
    logfiles = (parse_filename(name) for name in uploaded_names)
    return sorted(logfile.filename for logfile in logfiles if logfile is not None and logfile.timestamp < cutoff)


def expire(
    context: PassContext, uploader: Uploader, ledger: Ledger, *, name: str, confirmation: Confirmation,
    delete_after: datetime.timedelta,
) -> None:
    """Deletes the archived file name of context's directory if the object
    recorded at uploader's destination proves it holds it (else keeps it, and
    forgets the record where the file is to be uploaded again)."""
    # Deleting the only local copy is the one irreversible step logjam takes:
    # the object at this run's destination must prove it holds the file.
    archive_fd = context.dir_fd
    try:
        os.stat(name, dir_fd=archive_fd, follow_symlinks=False)
    except FileNotFoundError:
        ledger.forget(name)  # a marker whose file is already gone
        return
    local, md5 = _local_fingerprint(archive_fd, name)
    if local is None or not confirmation.matches(local):
        # Not the file that was uploaded (a late copy took the name): upload it.
        log.warning("%s/%s is not the file recorded as uploaded; kept, and will upload it", context.path, name)
        ledger.forget(name)
        return
    uploader.connect()
    # thorough: a plain MD5 ETag is compared even where a checksum agrees
    # (the local MD5 came with the fingerprint, in the same read).
    verdict = prove(uploader, confirmation, archive_fd=archive_fd, name=name, md5=md5, thorough=True)
    if verdict.proof is Proof.UNCONFIRMED:
        log.warning("%s/%s: kept: %s is %s", context.path, name, confirmation.location, verdict.detail)
        return
    if not verdict.confirmed:
        log.warning("%s is missing (or changed) at the destination; kept %s/%s and will upload it again (%s)",
                    confirmation.location, context.path, name, verdict.detail)
        ledger.forget(name, Destination.of(uploader))
        return
    # Marker first: a crash in between leaves a file that is sent again (and
    # found identical), never a marker that vouches for a file it never saw.
    ledger.forget(name)
    os.unlink(name, dir_fd=archive_fd)
    fsutil.fsync_dir(archive_fd)
    log.info("deleted %s/%s (uploaded to %s, older than %s)", context.path, name, confirmation.location,
             _format_duration(delete_after))


def _local_fingerprint(archive_fd: int, name: str) -> tuple[Fingerprint | None, str | None]:
    """The archived file's fingerprint (size, SHA-256) and MD5, in one read; (None, None) if unreadable."""
    try:
        fd, _ = fsutil.open_regular(archive_fd, name)  # never a FIFO or device
    except (OSError, Skipped):
        return None, None
    try:
        sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        size = 0
        for chunk in fsutil.read_chunks(fd):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
        return Fingerprint(size, sha256.hexdigest()), md5.hexdigest()
    finally:
        os.close(fd)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# The longest duration an option takes: 100 years. Longer ones overflow the
# date arithmetic (now minus the duration is before year 1).
MAX_DURATION = datetime.timedelta(days=36500)


def parse_duration(text: str) -> datetime.timedelta:
    """'36h' -> 36 hours. Units: s m h d w; at most MAX_DURATION (100 years)."""
    number, unit = text[:-1], text[-1:].lower()
    if unit not in DURATION_UNITS or not (number.isascii() and number.isdigit()):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 36h, 7d, 2w)")
    if int(number) * DURATION_UNITS[unit] > MAX_DURATION.total_seconds():
        raise argparse.ArgumentTypeError(f"longer than {MAX_DURATION.days}d (100 years): {text!r}")
    return datetime.timedelta(seconds=int(number) * DURATION_UNITS[unit])


def _format_duration(duration: datetime.timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in sorted(DURATION_UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
