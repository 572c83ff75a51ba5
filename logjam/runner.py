"""The polling loop: a job runs once (--once) or every interval until
stopped, and each pass reports what it did and left (PassStats)."""


from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from logjam.errors import ExitStatus, LogjamError
from logjam.logs import describe_error
from logjam.monitoring import capture_exception
from logjam.signals import Stop

log = logging.getLogger("logjam")

MIN_SLEEP = 1.0


@dataclass
class PassStats:
    """What one pass did and left, for the exit status, metrics and progress."""

    files: int = 0  # files compressed or uploaded
    bytes: int = 0  # their sizes (input bytes for compression)
    errors: int = 0
    pending: int = 0  # files still waiting after the pass
    oldest_pending: datetime.datetime | None = None  # the hour of the oldest one

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def done(self, size: int) -> None:
        self.files += 1
        self.bytes += size

    def waiting(self, hour: datetime.datetime, *, failed: bool = False) -> None:
        self.pending += 1
        self.errors += failed
        if self.oldest_pending is None or hour < self.oldest_pending:
            self.oldest_pending = hour

    def add(self, other: PassStats) -> None:
        self.files += other.files
        self.bytes += other.bytes
        self.errors += other.errors
        self.pending += other.pending
        if other.oldest_pending is not None:
            self.waiting(other.oldest_pending)
            self.pending -= 1


class Job(Protocol):
    """What the runner runs: one pass per call, reporting what it did and left."""

    @property
    def one_shot(self) -> bool:
        """Whether the job runs one pass whatever --once says (a dry run, --verify, status)."""
        ...

    def __call__(self, stop: Stop) -> PassStats:
        ...

    def backlog(self) -> PassStats | None:
        """What waits, from local state only, for the metrics after a pass that
        failed as a whole (None: nothing to count)."""
        ...


def run(
    job: Job, *, once: bool, interval: float, stop: Stop,
    after_pass: Callable[[PassStats, float], None] = lambda stats, seconds: None,
    first_delay: float = 0.0,
) -> ExitStatus:
    """Runs job once, or every interval seconds (from the start of each pass) until stopped.

    The first pass waits first_delay seconds (--splay); a stop during the
    wait ends the run at once, with no pass. Returns the exit status: with
    once, ERROR if the pass left work undone; in loop mode SUCCESS after a
    stop (a service stop is normal). With once, an error that ends the whole
    pass (LogjamError) is raised, after after_pass has recorded the failed
    pass.
    """
    if first_delay > 0:
        log.info("waiting %.1f s before the first pass (--splay)", first_delay)
        if stop.wait(first_delay):
            return ExitStatus.SUCCESS  # main_runner reports a stopped --once as 128+N
    while True:
        started = time.monotonic()
        try:
            stats = _run_pass(job, stop, once=once)
        except LogjamError:
            after_pass(_failed_pass(job), time.monotonic() - started)
            raise
        after_pass(stats, time.monotonic() - started)
        if once:
            return ExitStatus.SUCCESS if stats.ok else ExitStatus.ERROR
        if stop.wait(max(interval - (time.monotonic() - started), MIN_SLEEP)):
            return ExitStatus.SUCCESS


def _run_pass(job: Job, stop: Stop, *, once: bool) -> PassStats:
    try:
        return job(stop)
    except LogjamError as error:
        if once:  # the runner reports it as the one line that ends the command
            raise
        log.error("%s", error)
        log.info("will try again on the next pass")
        return _failed_pass(job)
    except Exception as error:
        if once:
            raise
        # A daemon outlives one bad pass; the error is logged and reported.
        log.error("unexpected error: %s", describe_error(error), exc_info=log.isEnabledFor(logging.DEBUG))
        capture_exception(error)
        return _failed_pass(job)


def _failed_pass(job: Job) -> PassStats:
    # A pass that failed as a whole still leaves its files waiting: count
    # them from local state (job.backlog), so that the metrics show the
    # backlog during an outage instead of "nothing pending".
    stats = PassStats(errors=1)
    try:
        backlog = job.backlog()
    except Exception as error:  # the metrics must not end the process
        log.debug("cannot count the waiting files: %s", describe_error(error))
        return stats
    if backlog is not None:
        stats.add(backlog)
    return stats
