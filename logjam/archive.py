"""The archive/ directory beside each log directory: its name, opening (or
creating) it, and checking that it is safe to write to."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator

from logjam import fsutil
from logjam.errors import FileError, UsageError
from logjam.parse import parse_filename, unparse_filename
from logjam.safety import check_directory_security

log = logging.getLogger("logjam.compress")


ARCHIVE_DIRNAME = "archive"


def open_archive_dir(dir_fd: int, log_dir: str) -> int:
    """Opens (creating when missing) DIR/archive, never through a symbolic link.
    A new archive directory takes the log directory's permissions and owner."""
    try:
        return fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise FileError(f"{log_dir}/{ARCHIVE_DIRNAME}: not a directory (or a symbolic link)") from error
    parent = os.fstat(dir_fd)
    # As the logs' directory, whatever the umask, with its sticky bit (under
    # a sticky world-writable directory, no user may delete or replace
    # another's archived logs) and its set-group-ID bit (new files keep the
    # shared group). Never the set-user-ID bit.
    mode = stat.S_IMODE(parent.st_mode) & (0o777 | stat.S_ISVTX | stat.S_ISGID)
    with contextlib.suppress(FileExistsError):
        os.mkdir(ARCHIVE_DIRNAME, mode & 0o777, dir_fd=dir_fd)
        fsutil.fsync_dir(dir_fd)
    archive_fd = fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    if os.geteuid() == 0:
        os.fchown(archive_fd, parent.st_uid, parent.st_gid)
    # (Not root: under set-group-ID the kernel gave it the parent's group.)
    os.fchmod(archive_fd, mode)
    log.info("created %s/%s", log_dir, ARCHIVE_DIRNAME)
    return archive_fd


def check_archive_dir(log_dir: str, dir_fd: int, *, allow_insecure: bool = False) -> None:
    """Refuses (UsageError) an existing DIR/archive that is not a directory (a
    file, a symbolic link) or, as root, one a non-root user can write: these
    do not go away by themselves, so they are configuration, not a pass's error."""
    path = f"{log_dir}/{ARCHIVE_DIRNAME}"
    try:
        info = os.stat(ARCHIVE_DIRNAME, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return  # made on the first pass with something to archive
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        kind = "a regular file" if stat.S_ISREG(info.st_mode) else fsutil.describe_type(info.st_mode)
        raise UsageError(f"{path}: {kind}, not a directory (logjam-compress keeps the archive there); move it away")
    archive_fd = fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    try:
        check_directory_security(path, archive_fd, allow_insecure=allow_insecure)
    finally:
        os.close(archive_fd)


DUPLICATE_MARK = "-logjam-compress-duplicate-timestamp"


MAX_DUPLICATES = 24  # NN runs 01..24, after the un-numbered duplicate name


def duplicate_timestamp_names(name: str) -> Iterator[str]:
    """Takes an archived file name. Yields the 25 names a duplicate of it may take:
    ``PREFIX-logjam-compress-duplicate-timestamp[-NN]-TIMESTAMP[-SUFFIX].EXT``."""
    logfile = parse_filename(name)
    if logfile is None:
        return
    for index in range(MAX_DUPLICATES + 1):
        number = f"-{index:02d}" if index else ""
        yield unparse_filename(
            logfile.prefix + DUPLICATE_MARK + number,
            logfile.timestamp,
            suffix=logfile.suffix,
            extension=logfile.extension,
        )
