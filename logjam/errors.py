"""Errors modelled once and mapped to exit statuses in one place (the runner)."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Exit statuses of both commands (documented in the README)."""

    SUCCESS = 0
    ERROR = 1  # some files failed; they are retried on the next pass
    USAGE = 2  # bad arguments or configuration: nothing was done


class LogjamError(Exception):
    """A failure logjam expected and can describe in one line."""

    exit_status = ExitStatus.ERROR


class UsageError(LogjamError):
    """Bad arguments or configuration (a template, a directory, a bucket)."""

    exit_status = ExitStatus.USAGE


class FileError(LogjamError):
    """One file could not be handled; the pass goes on with the others."""


class Skipped(LogjamError):
    """A file logjam will not touch (a symbolic link, a device): a warning, not a failure."""


class NotReady(Skipped):
    """A finished file that is still being written to: taken on a later pass."""


class PassError(LogjamError):
    """A whole pass could not run (e.g. the endpoint is unreachable); retried next pass."""


class Interrupted(BaseException):
    """A stop was requested (SIGTERM/SIGINT) while a file was in hand.

    A BaseException so that per-file ``except Exception`` handlers roll back
    the file in hand but never swallow the stop.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
