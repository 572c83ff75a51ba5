"""Checks that keep logjam from being used against the host it runs on as
root, and from taking a file some process is still writing."""

from __future__ import annotations

import os
import stat

from logjam.errors import UsageError


def insecure_reason(info: os.stat_result) -> str | None:
    """Takes a directory's stat. Returns why a non-root user could write in it, or None.

    As logrotate does for insecure parent directories: such a user could swap
    a log for a link or a trap between our check and our use.
    """
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != 0:
        return f"owned by uid {info.st_uid}"
    if mode & stat.S_IWOTH:
        return "world-writable"
    if mode & stat.S_IWGRP and info.st_gid != 0:
        return f"writable by group {info.st_gid}"
    return None


def check_directory_security(path: str, dir_fd: int, *, allow_insecure: bool) -> None:
    """Refuses (UsageError) to work as root in a directory a non-root user can write."""
    if allow_insecure or os.geteuid() != 0:
        return
    reason = insecure_reason(os.fstat(dir_fd))
    if reason is not None:
        raise UsageError(
            f"{path}: refusing to run as root in a directory writable by a non-root user ({reason}); "
            "run logjam as that user, tighten the permissions, or pass --allow-insecure-dir"
        )


def open_for_writing() -> set[tuple[int, int]]:
    """Returns the (device, inode) of every regular file some process holds
    open for writing, by looking through /proc/*/fd.

    Files are compared by (device, inode), never by path: a writer that
    reaches the log through a bind mount, a container volume, a symbolic
    link or another hard link sees another path to the same inode.
    Without root, only this user's processes can be seen; the --min-quiet
    check still covers the others.
    """
    busy: set[tuple[int, int]] = set()
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:
        return busy
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                info = os.stat(f"{fd_dir}/{fd}")  # follows to the open file itself
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) in busy:
                continue
            if _writable(pid=pid, fd=fd):
                busy.add((info.st_dev, info.st_ino))
    return busy


def _writable(*, pid: str, fd: str) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as fdinfo:
            for line in fdinfo:
                if line.startswith(b"flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError, IndexError):
        pass
    return False
