"""Worker threads: a bounded map over items, and threads that leave the stop
signals to the main thread.

CPython runs signal handlers in the main thread only, but the kernel may
hand a process's SIGTERM to any thread that does not block it. Delivered
to a worker, it interrupts nothing the main thread is waiting on (a lock,
a future), so the handler, and the stop, waits until the main thread wakes
by itself: seen as a SIGTERM during --splay never acted on. Every thread
logjam starts blocks the stop signals, so they reach the main thread.
"""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Callable, Sequence
from typing import TypeVar

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def block_stop_signals() -> None:
    """Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call it
    first thing in a thread, or as a ThreadPoolExecutor initializer)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


T = TypeVar("T")
R = TypeVar("R")


def map_concurrently(function: Callable[[T], R], items: Sequence[T], *, workers: int) -> list[R]:
    """Calls function on each item, workers at a time; returns the results in order.

    On a stop or an error that ends the pass, the calls in hand finish (or
    roll back) and no new one starts, then the exception goes on.
    """
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, initializer=block_stop_signals) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
