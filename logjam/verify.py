"""logjam-upload --verify: check that every recorded upload is still at its
destination (a job of its own on the shared runner)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from logjam.backends.base import Uploader
from logjam.codecs import CORRUPT_STREAM_ERRORS, codec_for_filename
from logjam.integrity import fingerprint
from logjam.ledger import Ledger
from logjam.markers import Confirmation, Destination, MarkerError, only_elsewhere
from logjam.passes import PassContext, PassSettings, run_pass
from logjam.proof import prove
from logjam.runner import PassStats
from logjam.signals import Stop

log = logging.getLogger("logjam.upload")


@dataclass
class VerifyJob:
    """logjam-upload --verify: one pass that checks the recorded uploads of one
    archive directory at one destination, on the shared runner."""

    archive_dir: str
    uploader: Uploader
    full: bool = False  # download every byte, not only HEAD
    settings: PassSettings = PassSettings()

    @property
    def one_shot(self) -> bool:
        """A check runs once, whatever --once says."""
        return True

    def __call__(self, stop: Stop) -> PassStats:
        # No lock: verify only reads, so it may run beside an upload pass.
        return run_pass(self.archive_dir, lambda context: verify_uploads(context, self.uploader, full=self.full),
                        settings=self.settings, command=None, stop=stop)

    def backlog(self) -> PassStats | None:
        """Nothing waits on a check."""
        return None


def verify_uploads(context: PassContext, uploader: Uploader, *, full: bool) -> None:
    """Checks every upload recorded for this destination in context's archive
    directory: that the object proves it holds the file (HEAD: a checksum, see
    proof.prove), or every byte and the log inside (full). Counts each problem
    as an error in context.stats."""
    archive_fd = context.dir_fd
    ledger = Ledger(archive_fd)
    destination = Destination.of(uploader)
    names = sorted(ledger.names(clean=False))  # no lock held: touch nothing
    uploader.connect()
    uploader.check_destination()
    archived = set(os.listdir(archive_fd))
    problems = skipped = 0
    elsewhere = []
    for name in names:
        context.stop.check()
        try:
            entry = ledger.read(name)
        except MarkerError as error:
            problems += 1
            log.error("%s: %s", name, error)
            continue
        if entry is None:
            skipped += 1  # removed since the listing
            continue
        confirmation = entry.at(destination)
        if confirmation is None:
            skipped += 1
            if name in archived:  # kept, yet not uploaded here: missing at this destination
                elsewhere.append(entry)
            log.debug("%s: recorded for another destination (%s); not checked",
                      name, ", ".join(str(c.destination) for c in entry.confirmations))
            continue
        problem = _verify_one(uploader, confirmation, archive_fd, name, full=full, check_stop=context.stop.check)
        if problem:
            problems += 1
            log.error("%s: %s: %s", name, confirmation.location, problem)
        else:
            log.debug("%s: %s: ok", name, confirmation.location)
    checked = len(names) - skipped
    if elsewhere:
        problems += len(elsewhere)
        log.error("%s: %s", context.path, only_elsewhere(elsewhere, destination, any_here=checked > 0))
    log.info("verified %d of %d recorded uploads (%s): %d problem(s), %d not checked",
             checked, len(names), "full" if full else "head", problems, skipped)
    context.stats.errors += problems


def _verify_one(uploader: Uploader, confirmation: Confirmation, archive_fd: int, name: str, *, full: bool,
                check_stop: Callable[[], None]) -> str | None:
    if not full:
        verdict = prove(uploader, confirmation, archive_fd=archive_fd, name=name, check_stop=check_stop)
        return None if verdict.confirmed else verdict.detail
    # Every byte, read back: the strongest proof there is.
    key, recorded = confirmation.key, confirmation.fingerprint
    remote = uploader.head(key)
    if remote is None:
        return "missing at the destination"
    if remote.size != recorded.size:
        return f"size is {remote.size}, recorded {recorded.size}"
    try:
        with contextlib.closing(uploader.open_object(key)) as stream:
            found = fingerprint(stream, codec_for_filename(key), check_stop=check_stop)
    except FileNotFoundError:
        return "missing at the destination"
    except CORRUPT_STREAM_ERRORS as error:
        return f"cannot be read back in full or does not decompress: {error}"
    return found.mismatch(recorded)


def join_verify_value(argv: Sequence[str]) -> list[str]:
    """Takes the arguments. Returns them with "--verify full" (or head) as one
    argument and a bare --verify as --verify=head: argparse alone would take
    the next argument (ARCHIVE_DIR) as the value of a bare --verify."""
    joined: list[str] = []
    arguments = iter(argv)
    for arg in arguments:
        if arg == "--":
            joined.append(arg)
            joined.extend(arguments)
            break
        if arg != "--verify":
            joined.append(arg)
            continue
        value = next(arguments, None)
        if value in ("head", "full"):
            joined.append(f"--verify={value}")
        else:
            joined.append("--verify=head")
            if value is not None:
                joined.append(value)
    return joined
