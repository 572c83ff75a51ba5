"""Crash-safe file effects shared by the compressor and the file:// uploader.

The recipe, everywhere: write a hidden temporary file in the destination
directory, fsync it, link it to its final name (``link`` refuses an existing
name where ``rename`` would silently replace it), drop the temporary name and
fsync the directory. A crash at any point leaves either nothing or a hidden
temporary file that the next pass removes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterable, Iterator

TEMP_MARKER = ".logjam-tmp-"
CHUNK_SIZE = 1 << 20  # big enough for throughput, small enough for constant memory

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# Temporary files being written, so that a forced exit can still remove them.
_live_temps: set[tuple[int, str]] = set()
_live_temps_lock = threading.Lock()


def remove_live_temp_files() -> None:
    """Removes every temporary file still being written (for a forced exit)."""
    # A signal may arrive while this very thread holds the lock: never wait
    # long; a temporary file left now is removed by the next pass.
    if not _live_temps_lock.acquire(timeout=0.5):
        return
    try:
        for dir_fd, name in list(_live_temps):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)
        _live_temps.clear()
    finally:
        _live_temps_lock.release()


def temp_name(final_name: str) -> str:
    """Takes a final file name. Returns a unique hidden temporary name for it."""
    return f".{final_name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}"


def is_temp_name(name: str) -> bool:
    """True for names made by temp_name (never log files: they start with a dot)."""
    return name.startswith(".") and TEMP_MARKER in name


def open_dir(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> int:
    """Opens a directory without following a symbolic link. Returns its fd."""
    return os.open(path, DIR_FLAGS, dir_fd=dir_fd)


def open_given_dir(path: str) -> int:
    """Opens a directory named on the command line. Returns its fd; raises
    UsageError with a one-line reason if it cannot."""
    from logjam.errors import UsageError

    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such directory") from None
    except NotADirectoryError:
        raise UsageError(f"{path}: not a directory") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None


def fsync_dir(dir_fd: int) -> None:
    """Makes the directory's entries (links, unlinks) durable."""
    os.fsync(dir_fd)


def remove_stale_temp_files(dir_fd: int, names: Iterable[str] | None = None) -> list[str]:
    """Removes temporary files a crashed pass left in a directory. Returns their names.

    Callers hold the directory's lock, so no live pass owns them.
    """
    removed = []
    for name in os.listdir(dir_fd) if names is None else names:
        if is_temp_name(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
                removed.append(name)
    if removed:
        fsync_dir(dir_fd)
    return removed


def open_regular(dir_fd: int, name: str) -> tuple[int, os.stat_result]:
    """Opens a regular file in dir_fd for reading, never through a link.
    Returns (fd, stat). Raises Skipped for a link or anything but a regular
    file; other OSErrors go to the caller."""
    from logjam.errors import Skipped

    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Skipped(f"{name}: a symbolic link; never followed, left alone") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Skipped(f"{name}: not a regular file; left alone")
    return fd, info


def size_or_zero(dir_fd: int, name: str) -> int:
    """The size of a directory entry, not following links; 0 if it cannot be read."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size
    except OSError:
        return 0


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (short writes happen on full disks)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_chunks(fd: int, *, offset: int = 0, check: Callable[[], None] | None = None) -> Iterator[bytes]:
    """Yields the file's bytes from offset in CHUNK_SIZE pieces, calling check() before each."""
    while True:
        if check is not None:
            check()
        chunk = os.pread(fd, CHUNK_SIZE, offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def copy_metadata(src: os.stat_result, fd: int) -> None:
    """Gives fd the source's owner (when root), permission bits and times.

    Owner before mode: chown may clear mode bits. The mode is never wider
    than the original's, so the copy is readable by no more users.
    """
    if os.geteuid() == 0:
        os.fchown(fd, src.st_uid, src.st_gid)
    os.fchmod(fd, stat.S_IMODE(src.st_mode) & 0o777)
    os.utime(fd, ns=(src.st_atime_ns, src.st_mtime_ns))


@contextlib.contextmanager
def temp_file(dir_fd: int, final_name: str, *, mode: int = 0o600) -> Iterator[tuple[int, str]]:
    """Creates a hidden temporary file in dir_fd. Yields (fd, name).

    The file is removed on any exception, including an interruption, unless
    the caller has already published and unlinked it.
    """
    name = temp_name(final_name)
    fd = os.open(name, CREATE_FLAGS, mode, dir_fd=dir_fd)
    with _live_temps_lock:
        _live_temps.add((dir_fd, name))
    try:
        yield fd, name
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        raise
    finally:
        with _live_temps_lock:
            _live_temps.discard((dir_fd, name))
        os.close(fd)


def publish(dir_fd: int, temp: str, candidates: Iterable[str]) -> str | None:
    """Links temp to the first free name of candidates, then drops temp. Returns the name.

    Returns None, leaving temp in place, when every candidate is taken.
    Never replaces an existing file. The directory is fsynced before returning.
    """
    for name in candidates:
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno != errno.EPERM:
                raise
            # Some filesystems (e.g. FAT, some FUSE) have no hard links.
            if not _rename_noreplace(dir_fd, temp, name):
                continue
            fsync_dir(dir_fd)
            return name
        os.unlink(temp, dir_fd=dir_fd)
        fsync_dir(dir_fd)
        return name
    return None


def _rename_noreplace(dir_fd: int, temp: str, name: str) -> bool:
    # Without hard links, renameat2(RENAME_NOREPLACE) moves the file into
    # place atomically and refuses an existing name. (A placeholder created
    # first would show readers an empty file under the final name.)
    result = _renameat2(dir_fd, os.fsencode(temp), dir_fd, os.fsencode(name), RENAME_NOREPLACE)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error == errno.EEXIST:
        return False
    raise OSError(error, f"cannot move into place without replacing ({os.strerror(error)})", name)


RENAME_NOREPLACE = 1


def _renameat2(*args) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        ctypes.set_errno(errno.ENOSYS)
        return -1
    return libc.renameat2(*args)
