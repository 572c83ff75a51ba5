"""One pass over one directory, the skeleton every command shares: open the
directory, check it is safe, lock it (unless the pass only reads), then hand
the pass its context (PassContext). A dry run is the same pass in read-only
mode: it selects as a real pass does and prints what it would do where a
real pass would act."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from logjam import fsutil
from logjam.parse import utc_now
from logjam.progress import Progress
from logjam.runner import PassStats
from logjam.safety import check_directory_security
from logjam.signals import Stop


@dataclass(frozen=True)
class PassSettings:
    """How every pass of a run treats its directory (from the command line)."""

    wait_lock: bool = False  # wait for another instance's lock instead of skipping the directory
    allow_insecure_dir: bool = False  # as root, work even where a non-root user can write
    dry_run: bool = False  # read only: print what would be done

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PassSettings:
        """Takes the parsed common arguments. Returns the settings they give."""
        return cls(wait_lock=args.wait_lock, allow_insecure_dir=args.allow_insecure_dir, dry_run=args.dry_run)


@dataclass
class PassContext:
    """What every step of one pass over one directory works with."""

    path: str  # the directory as given, for messages
    dir_fd: int  # the directory, opened once: every name is looked up relative to it
    stop: Stop
    now: datetime.datetime
    dry_run: bool = False  # read only: print what would be done instead of doing it
    stats: PassStats = field(default_factory=PassStats)  # what the pass did and left
    progress: Progress = field(default_factory=Progress)  # a live bar on a terminal, else a no-op
    archive_fd: int | None = None  # compress: DIR/archive, once the pass has opened it


def open_directory(path: str, settings: PassSettings) -> int:
    """Opens a directory named on the command line, never through a link, and
    (as root) refuses one a non-root user can write (UsageError). Returns its fd."""
    dir_fd = fsutil.open_given_dir(path)
    try:
        check_directory_security(path, dir_fd, allow_insecure=settings.allow_insecure_dir)
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd


def check_directory(path: str, settings: PassSettings) -> None:
    """Checks at start-up what every pass will check (open_directory), so a
    configuration error ends the run at once (exit status 2)."""
    os.close(open_directory(path, settings))


def run_pass(
    path: str, body: Callable[[PassContext], None], *, settings: PassSettings, command: str | None,
    stop: Stop | None = None, now: datetime.datetime | None = None,
) -> PassStats:
    """Opens and checks the directory path, takes the command's lock there
    (.COMMAND.lock; none for a dry run or a command that only reads, command
    None) and runs body with the pass's context. Returns the pass's stats:
    empty when another instance holds the lock."""
    context = PassContext(path, open_directory(path, settings), stop or Stop(),
                          now or utc_now(), dry_run=settings.dry_run)
    try:
        if command is None or settings.dry_run:
            body(context)
            return context.stats
        with fsutil.directory_lock(context.dir_fd, f".{command}.lock", wait=settings.wait_lock,
                                   check_stop=context.stop.check) as locked:
            if not locked:
                # Under the command's own logger name, as before the skeleton was shared.
                logging.getLogger("logjam." + command.removeprefix("logjam-")).info(
                    "%s: another %s is working here; skipping", path, command)
                return PassStats()
            body(context)
            return context.stats
    finally:
        os.close(context.dir_fd)
