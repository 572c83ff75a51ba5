"""Every thread logjam starts leaves SIGTERM, SIGINT and SIGHUP to the main
thread (logjam/concurrency.py says why): otherwise the kernel may hand a stop
signal to a worker, and the main thread, asleep in a wait, never runs the
handler."""

from __future__ import annotations

import io
import signal

from logjam.codecs import CODECS
from logjam.concurrency import STOP_SIGNALS, map_concurrently


def blocked_here(_item=None) -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_the_main_thread_keeps_the_stop_signals():
    assert not STOP_SIGNALS & blocked_here()


def test_concurrent_map_workers_block_the_stop_signals():
    for blocked in map_concurrently(blocked_here, [1, 2, 3], workers=3):
        assert STOP_SIGNALS <= blocked


def test_gzip_compression_threads_block_the_stop_signals():
    writer = CODECS["gzip"].open_writer(io.BytesIO(), level=6, threads=2)
    try:
        assert writer._pool is not None
        assert STOP_SIGNALS <= writer._pool.submit(blocked_here).result()
    finally:
        writer.close()
