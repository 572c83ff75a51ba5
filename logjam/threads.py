"""Threads that leave the stop signals to the main thread.

CPython runs signal handlers in the main thread only, but the kernel may
hand a process's SIGTERM to any thread that does not block it. Delivered
to a worker, it interrupts nothing the main thread is waiting on (a lock,
a future), so the handler, and the stop, waits until the main thread wakes
by itself: seen as a SIGTERM during --splay never acted on. Every thread
logjam starts blocks the stop signals, so they reach the main thread.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def block_stop_signals() -> None:
    """Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call it
    first thing in a thread, or as a ThreadPoolExecutor initializer)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
