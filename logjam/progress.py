"""A progress bar for backlogs, only where a person is watching.

When stderr is a terminal and a pass has real work, show files, bytes, rate
and ETA (tqdm); otherwise nothing, so cron mail and journald get plain log
lines only.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

MIN_FILES = 3
MIN_BYTES = 64 * 1024 * 1024


class Progress:
    """Counts finished files and bytes; a no-op unless a bar is shown."""

    def __init__(self, bar: tqdm[NoReturn] | None = None, total_files: int = 0) -> None:
        self._bar = bar
        self._files = 0
        self._total_files = total_files
        self._lock = threading.Lock()

    def advance(self, size: int) -> None:
        if self._bar is None:
            return
        with self._lock:
            self._files += 1
            self._bar.update(size)
            self._bar.set_postfix_str(f"{self._files}/{self._total_files} files")


@contextlib.contextmanager
def progress(description: str, *, files: int, size: int, stream: TextIO | None = None) -> Iterator[Progress]:
    """Yields a Progress: a live bar on a terminal for a backlog, else a no-op."""
    stream = stream or sys.stderr
    interactive = getattr(stream, "isatty", lambda: False)()
    if not interactive or (files < MIN_FILES and size < MIN_BYTES):
        yield Progress()
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    # A terminal that reports no size (a bare pty) would get an empty bar.
    columns, lines = shutil.get_terminal_size((100, 24))
    with tqdm(total=size, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
              file=stream, ncols=columns or 100, nrows=lines or 24, leave=False) as bar:
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):
            yield Progress(bar, files)
