"""The signal relay starts no thread when a stop is requested.

A thread starting while the main thread finalises after a clean stop
crashed Python 3.10 (a segfault in _PyThreadState_Init, about one SIGTERM in
six in PYTHONDEVMODE): the stop's grace period is the relay thread's own
timeout, not a watchdog thread started on the signal. These run in a fresh
process because they install real signal handlers and end with os._exit.
"""

from __future__ import annotations

import signal
import subprocess
import sys

# The first SIGTERM requests the stop; the second (sent once the first was
# acted on) makes the relay exit at once. The relay handles the two in order,
# so any thread it started for the first has started, and printed, by then.
REQUEST_TWICE = """
import os, signal, threading
from logjam import signals
signals.STOP_GRACE = {grace}
stop = signals.Stop()
signals.install_signal_handlers(stop, once=True)
start = threading.Thread.start
def reporting_start(self, *args, **kwargs):
    print("thread started:", self.name, flush=True)
    return start(self, *args, **kwargs)
threading.Thread.start = reporting_start
os.kill(os.getpid(), signal.SIGTERM)
stop.event.wait(30)
print("stop requested", flush=True)
if {twice}:
    os.kill(os.getpid(), signal.SIGTERM)
threading.Event().wait(30)  # busy: only the relay can end the process
print("not ended", flush=True)
"""


def run_script(*, grace: float, twice: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REQUEST_TWICE.format(grace=grace, twice=twice)],
                          capture_output=True, text=True, timeout=60)


def test_a_stop_request_starts_no_thread():
    result = run_script(grace=60, twice=True)

    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stdout == "stop requested\n", result.stderr


def test_a_stop_the_process_does_not_finish_ends_after_the_grace_period():
    result = run_script(grace=0.2, twice=False)

    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stdout == "stop requested\n"
    assert "still busy 0 s after the stop request; exiting now (exit status 143)" in result.stderr
