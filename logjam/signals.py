"""Stopping: the Stop flag long work checks, the SIGTERM/SIGINT/SIGHUP
handlers that set it, and the watchdog that forces a clean exit when work
does not stop in time."""


from __future__ import annotations

import functools
import logging
import os
import select
import signal
import threading
import time
import types
from dataclasses import dataclass, field

from logjam import fsutil
from logjam.concurrency import block_stop_signals
from logjam.errors import ExitStatus, Interrupted

log = logging.getLogger("logjam")

STOP_GRACE = 4.0  # seconds from SIGTERM to a forced (but clean) exit


@dataclass
class Stop:
    """Set by SIGTERM/SIGINT. Long work calls check() between chunks."""

    event: threading.Event = field(default_factory=threading.Event)
    signum: int = 0

    def request(self, signum: int) -> None:
        self.signum = signum
        self.event.set()

    def check(self) -> None:
        """Raises Interrupted if a stop was requested."""
        if self.event.is_set():
            raise Interrupted(self.signum)

    def wait(self, seconds: float) -> bool:
        # In slices: between them the main thread runs any signal handler
        # that is due, whichever thread the kernel handed the signal to.
        deadline = time.monotonic() + seconds
        while not self.event.wait(max(0.0, min(1.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return False
        return True


def install_signal_handlers(stop: Stop, *, once: bool) -> None:
    """SIGTERM, SIGINT and SIGHUP request a stop; the file in hand is finished or rolled back.

    SIGHUP (a closed terminal, runit's ``sv hup``) would otherwise kill the
    process and leave a temporary file and a multipart upload behind. A
    SIGHUP that is ignored already (``nohup``) stays ignored.

    Work checks for the stop every chunk, but a request may be waiting on a
    slow server: a watchdog then removes the temporary files and exits at
    STOP_GRACE seconds, so a service stop never takes longer than 5 s.
    """

    global _signal_target
    _signal_target = (stop, once)
    write_fd = _signal_relay()

    def handle(received: int, frame: types.FrameType | None) -> None:
        os.write(write_fd, bytes([received]))  # no lock, nothing but a write

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, handle)


# The handler only writes the signal's number to a pipe; a thread acts on
# it. Python runs handlers in the main thread between bytecodes, and
# Event.set() takes the lock that Event.wait() holds for an instant in that
# same thread: a signal arriving then would deadlock the process (seen: a
# SIGTERM during --splay, under load, was never acted on). One pipe and one
# thread per process, acting for the Stop installed last.
_signal_target: tuple[Stop, bool] | None = None


@functools.cache
def _signal_relay() -> int:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    threading.Thread(target=_act_on_signals, args=(read_fd,), daemon=True, name="logjam-signals").start()
    return write_fd


def _act_on_signals(read_fd: int) -> None:
    # The watchdog is this thread's own timeout, not a thread started on the
    # signal: a thread starting while the main thread finalises after a clean
    # stop crashed Python 3.10 (a segfault in _PyThreadState_Init, about one
    # SIGTERM in six in PYTHONDEVMODE).
    block_stop_signals()
    deadline: float | None = None
    status = 0
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([read_fd], [], [], timeout)[0]:
            log.warning("still busy %.0f s after the stop request; exiting now (exit status %d)", STOP_GRACE, status)
            _force_exit(status)
        received = os.read(read_fd, 1)
        if not received:
            return
        if _signal_target is None:
            continue
        stop, once = _signal_target
        signum = received[0]
        first = not stop.event.is_set()
        stop.request(signum)
        status = 128 + signum if once else ExitStatus.SUCCESS
        if not first:  # a second signal: stop now
            _force_exit(status)
        deadline = time.monotonic() + STOP_GRACE


def _force_exit(status: int) -> None:
    fsutil.remove_live_temp_files()
    logging.shutdown()
    os._exit(status)


def signal_name(signum: int) -> str:
    """Takes a signal number. Returns its name (SIGTERM), or "signal N"."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
