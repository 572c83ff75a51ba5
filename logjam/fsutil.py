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
import fcntl
import hashlib
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator

TEMP_MARKER = ".logjam-tmp-"
# Longest file name most Linux filesystems accept (NAME_MAX, in bytes).
NAME_MAX = 255
# How much of the final name a temporary name repeats, for the operator's
# eye: whatever the final name's length, a temporary name stays far below
# NAME_MAX (at most 1 + 4 * 24 + 12 + 8 + 1 + 8 = 126 bytes).
_TEMP_HEAD = 24
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


def name_fits(name: str) -> bool:
    """Whether a directory can hold an entry of this name (at most NAME_MAX bytes)."""
    return len(os.fsencode(name)) <= NAME_MAX


def name_digest(name: str, length: int = 8) -> str:
    """A short, stable hex digest of a file name (to tie a fixed-size name to it)."""
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:length]


def temp_prefix(final_name: str) -> str:
    """The fixed leading part of every temporary name made for final_name."""
    return f".{final_name[:_TEMP_HEAD]}{TEMP_MARKER}{name_digest(final_name)}-"


def temp_name(final_name: str) -> str:
    """Takes a final file name. Returns a unique hidden temporary name for it.

    Of bounded length whatever the final name's (the first 24 characters of
    the final name, a digest of all of it and 8 random hex digits), so that a
    final name of up to NAME_MAX bytes still gets a temporary name.
    """
    return temp_prefix(final_name) + secrets.token_hex(4)


def is_temp_name(name: str) -> bool:
    """True for names made by temp_name, and by earlier releases' (which put the
    whole final name and the PID in it). Never log files: they start with a dot."""
    return name.startswith(".") and TEMP_MARKER in name


def is_temp_for(name: str, *, final_name: str) -> bool:
    """True if name is a temporary name made for final_name (either style)."""
    return name.startswith(temp_prefix(final_name)) or name.startswith(f".{final_name}{TEMP_MARKER}")


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
    file; other OSErrors go to the caller.

    Nothing is opened that lstat does not show as a regular file: opening a
    FIFO would release a writer blocked on it (its line then thrown away),
    and a socket cannot be opened at all. O_NONBLOCK|O_NOFOLLOW and an fstat
    afterwards close the gap should the entry be swapped in between.
    """
    from logjam.errors import Skipped

    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):
        raise Skipped(f"{name}: {describe_type(info.st_mode)}; {'never followed, ' if stat.S_ISLNK(info.st_mode) else ''}left alone")
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO):
            raise Skipped(f"{name}: no longer a regular file; left alone") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Skipped(f"{name}: {describe_type(info.st_mode)}; left alone")
    return fd, info


_FILE_TYPES = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def describe_type(mode: int) -> str:
    """Takes an st_mode. Returns what kind of file it is, e.g. 'a FIFO (named pipe)'."""
    for test, description in _FILE_TYPES:
        if test(mode):
            return description
    return "not a regular file"


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


def copy_metadata(src: os.stat_result, fd: int, *, mode_mask: int = 0o777, times: bool = True) -> None:
    """Gives fd the source's owner and group where allowed, its permission bits
    (within mode_mask) and, with times, its access and modification times.

    The one rule for every copy logjam makes of a user's file (archived
    copies, file:// copies, ledger markers): the copy is readable by no more
    users than the original. Owner before mode, as chown may clear mode bits.
    As root the copy takes the original's owner and group. Otherwise it is
    given the original's group if this user may (a member of that group);
    if it still has another group (the user's primary group, say), its group
    bits are dropped, since they would grant that other group access.
    Set-user-ID, set-group-ID and sticky bits are never copied.
    """
    if os.geteuid() == 0:
        os.fchown(fd, src.st_uid, src.st_gid)
    elif os.fstat(fd).st_gid != src.st_gid:
        with contextlib.suppress(PermissionError):
            os.fchown(fd, -1, src.st_gid)
    mode = stat.S_IMODE(src.st_mode) & 0o777 & mode_mask
    if os.fstat(fd).st_gid != src.st_gid:
        mode &= ~0o070
    os.fchmod(fd, mode)
    if times:
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

    Returns None, leaving temp in place, when every candidate is taken (or
    too long for a name). Never replaces an existing file. The directory is
    fsynced before returning.
    """
    for name in candidates:
        if not name_fits(name):
            continue
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno != errno.EPERM:
                raise
            # Some filesystems (e.g. FAT, some FUSE) have no hard links.
            if not _rename_noreplace(dir_fd, temp=temp, name=name):
                continue
            fsync_dir(dir_fd)
            return name
        os.unlink(temp, dir_fd=dir_fd)
        fsync_dir(dir_fd)
        return name
    return None


def _rename_noreplace(dir_fd: int, *, temp: str, name: str) -> bool:
    # Without hard links, renameat2(RENAME_NOREPLACE) moves the file into
    # place atomically and refuses an existing name. (A placeholder created
    # first would show readers an empty file under the final name.)
    error = _renameat2_noreplace(dir_fd, source=temp, target=name)
    if error in (0, errno.EEXIST):
        return error == 0
    raise OSError(error, f"cannot move into place without replacing ({os.strerror(error)})", name)


def rename_noreplace(dir_fd: int, *, source: str, target: str) -> bool:
    """Renames source to target within dir_fd, never replacing an existing target.
    Returns False (and changes nothing) when target exists.

    renameat2(RENAME_NOREPLACE) where the kernel and filesystem have it;
    otherwise a hard link and an unlink (the file has both names for a moment,
    never neither); without hard links either, a plain rename after checking
    that target is free, which is safe only for names no one else creates
    (logjam's own hidden names).
    """
    error = _renameat2_noreplace(dir_fd, source=source, target=target)
    if error in (0, errno.EEXIST):
        return error == 0
    if error not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        raise OSError(error, os.strerror(error), source)
    try:
        os.link(source, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as link_error:
        if link_error.errno != errno.EPERM:
            raise
        if os.path.lexists(f"/proc/self/fd/{dir_fd}/{target}"):
            return False
        os.rename(source, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True
    os.unlink(source, dir_fd=dir_fd)
    return True


RENAME_NOREPLACE = 1


def _renameat2_noreplace(dir_fd: int, *, source: str, target: str) -> int:
    """renameat2(RENAME_NOREPLACE) within dir_fd. Returns 0 when moved, else
    the errno (EEXIST: target exists; ENOSYS and the like: not supported)."""
    if _renameat2(dir_fd, os.fsencode(source), dir_fd, os.fsencode(target), RENAME_NOREPLACE) == 0:
        return 0
    return ctypes.get_errno()


def _renameat2(*args: int | bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        ctypes.set_errno(errno.ENOSYS)
        return -1
    return int(libc.renameat2(*args))


@contextlib.contextmanager
def directory_lock(dir_fd: int, name: str, *, wait: bool = False,
                   check_stop: Callable[[], None] = lambda: None) -> Iterator[bool]:
    """Holds an exclusive flock on a hidden lock file in a directory.

    Yields False, holding nothing, when another process has it (unless wait):
    two instances (a cron run beside a daemon) must never work on one
    directory at once.
    """
    fd = os.open(
        name,
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dir_fd,
    )
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if not wait:
                    yield False
                    return
            check_stop()
            time.sleep(0.2)  # flock has no timeout; poll so a stop is seen
        yield True
    finally:
        os.close(fd)
