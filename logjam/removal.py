"""Atomic removal of originals: a compressed log's original is renamed to a
hidden name, then removed; a pass that died in between puts it back or
finishes the removal (recover_removals)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence

from logjam import fsutil
from logjam.archive import ARCHIVE_DIRNAME, DUPLICATE_MARK, duplicate_timestamp_names
from logjam.codecs import CORRUPT_STREAM_ERRORS, codec_for_filename
from logjam.errors import Skipped
from logjam.integrity import file_fingerprint
from logjam.parse import parse_filename

log = logging.getLogger("logjam.compress")


REMOVING_MARKER = ".logjam-rm-"


def removing_name(name: str) -> str:
    """Takes a log's name. Returns the hidden name it has while being removed:
    fixed-size, and tied to the log's name by a digest, so that a pass after
    a crash can tell which log a leftover was."""
    return REMOVING_MARKER + fsutil.name_digest(name, 32)


def remove_original(
    dir_fd: int, name: str, source: os.stat_result, *, in_window: Callable[[str], None] = lambda stage: None
) -> None:
    # Check and delete in one atomic step: move the name aside to a hidden
    # name first (a writer renaming a new version into place from now on
    # creates a new entry we never touch), then check what was moved, and
    # unlink it only if it is the very file that was compressed, unchanged.
    # A crash in between leaves the hidden name, which the next pass
    # recognises (recover_removals). in_window is a test seam: it runs
    # where a writer's rename would do harm.
    hidden = removing_name(name)
    in_window("before-move")
    try:
        moved = fsutil.rename_noreplace(dir_fd, source=name, target=hidden)
    except FileNotFoundError:
        return
    if not moved:
        log.warning("%s: a leftover %s is in the way; the original is kept for a later pass", name, hidden)
        return
    current = os.stat(hidden, dir_fd=dir_fd, follow_symlinks=False)
    if (current.st_dev, current.st_ino) != (source.st_dev, source.st_ino):
        log.warning("%s was replaced while being compressed; the new file is left for the next pass", name)
        _put_back(dir_fd, hidden=hidden, name=name, in_window=in_window)
        return
    if (current.st_size, current.st_mtime_ns) != (source.st_size, source.st_mtime_ns):
        # Appended to after the check (a writer that opens, appends, closes):
        # keep it; the next pass archives it again as a duplicate.
        log.warning("%s changed after it was compressed; kept for the next pass", name)
        _put_back(dir_fd, hidden=hidden, name=name, in_window=in_window)
        return
    in_window("before-unlink")
    os.unlink(hidden, dir_fd=dir_fd)
    fsutil.fsync_dir(dir_fd)


def _put_back(dir_fd: int, *, hidden: str, name: str, in_window: Callable[[str], None] = lambda stage: None) -> bool:
    # Never over a file that appeared under the name meanwhile: then both
    # stay, the displaced one under the first free duplicate name beside it,
    # a log name of its own stream that the next pass archives as any other.
    in_window("before-put-back")
    candidates = [name, *(fsutil.name_fits(n) and n for n in duplicate_timestamp_names(name))]
    for candidate in candidates:
        if candidate and fsutil.rename_noreplace(dir_fd, source=hidden, target=candidate):
            fsutil.fsync_dir(dir_fd)
            if candidate != name:
                log.warning("%s was re-created meanwhile; stored the displaced version as %s", name, candidate)
            return True
    log.warning("%s: cannot put a displaced version back (the name and its duplicate names are taken "
                "or too long); left in place as %s", name, hidden)
    return False


def recover_removals(dir_fd: int, log_dir: str, names: Sequence[str]) -> None:
    """Settles the hidden names a crash in the middle of remove_original left
    in a log directory (callers hold its lock): a leftover whose archived copy
    reads back the same is removed, any other is put back under its name."""
    leftovers = [name for name in names if name.startswith(REMOVING_MARKER)]
    if not leftovers:
        return
    try:
        archive_fd: int | None = fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    except OSError:
        archive_fd = None
    try:
        archived = os.listdir(archive_fd) if archive_fd is not None else []
        # Which log name each archived file (and each current log) was.
        originals: dict[str, list[str]] = {}
        for archive_name in archived:
            original = _original_name(archive_name)
            if original is not None:
                originals.setdefault(removing_name(original), []).append(archive_name)
        by_hidden = {removing_name(n): n for n in map(_original_name, archived) if n}
        by_hidden.update({removing_name(n): n for n in names if parse_filename(n) is not None})
        for hidden in leftovers:
            original = by_hidden.get(hidden)
            if original is None:
                log.warning("%s/%s: left by an interrupted removal, but no archived file tells which log it "
                            "was; left in place (rename it to its log name to have it archived)", log_dir, hidden)
                continue
            if archive_fd is not None and _archived_already(
                    dir_fd, hidden, archive_fd=archive_fd, archive_names=originals.get(hidden, [])):
                os.unlink(hidden, dir_fd=dir_fd)
                fsutil.fsync_dir(dir_fd)
                log.info("%s/%s: finished removing %s (archived; left by an interrupted pass)",
                         log_dir, hidden, original)
            elif _put_back(dir_fd, hidden=hidden, name=original):
                log.warning("%s/%s: put back %s, left by an interrupted pass", log_dir, hidden, original)
    finally:
        if archive_fd is not None:
            os.close(archive_fd)


def _original_name(archive_name: str) -> str | None:
    # archive/NAME.gz (or a duplicate name of it) was log NAME.
    codec = codec_for_filename(archive_name)
    if codec is None or parse_filename(archive_name) is None:
        return None
    base = archive_name[: -len(codec.extension)]
    return re.sub(re.escape(DUPLICATE_MARK) + r"(-\d\d)?(?=-\d)", "", base, count=1)


def _archived_already(dir_fd: int, hidden: str, *, archive_fd: int, archive_names: list[str]) -> bool:
    try:
        fd, _ = fsutil.open_regular(dir_fd, hidden)
    except (OSError, Skipped):
        return False
    try:
        local = file_fingerprint(fd, None)
    finally:
        os.close(fd)
    for archive_name in archive_names:
        try:
            archived_fd, _ = fsutil.open_regular(archive_fd, archive_name)
        except (OSError, Skipped):
            continue
        try:
            found = file_fingerprint(archived_fd, codec_for_filename(archive_name))
        except CORRUPT_STREAM_ERRORS:
            continue
        finally:
            os.close(archived_fd)
        if (found.log_length, found.log_sha256) == (local.size, local.sha256):
            return True
    return False
