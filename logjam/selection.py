"""Which files a pass takes, from names alone (pure): the finished logs
logjam-compress takes, the archived files logjam-upload still has to send.
logjam-status counts with the same functions."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Sequence

from logjam.parse import LogFile, group_filenames, parse_filename

ONE_HOUR_PLUS = datetime.timedelta(hours=1, minutes=5)


def select_superseded_by_new_file(logfiles: Sequence[LogFile]) -> list[LogFile]:
    """Takes LogFiles of one stream. Returns all but the newest: a newer file
    of the same stream means the writer has moved on."""
    return sorted(logfiles, key=LogFile.sort_key)[:-1]


def select_superseded_by_timestamp(
    logfiles: Iterable[LogFile], now: datetime.datetime
) -> list[LogFile]:
    """Takes LogFiles and the current time. Returns those whose hour is well
    over (timestamp more than 1 h 5 min before now)."""
    return [logfile for logfile in logfiles if now - logfile.timestamp > ONE_HOUR_PLUS]


def yield_old_logfiles(filenames: Iterable[str], now: datetime.datetime) -> Iterator[LogFile]:
    """Takes file names and the current time. Yields the finished LogFiles,
    sorted by LogFile.sort_key. Files stamped in the future are ignored and
    supersede nothing."""
    finished: set[LogFile] = set()
    for logfiles in group_filenames(filenames).values():
        current = [logfile for logfile in logfiles if logfile.timestamp <= now]
        finished.update(select_superseded_by_new_file(current))
        finished.update(select_superseded_by_timestamp(current, now))
    yield from sorted(finished, key=LogFile.sort_key)


def select_pending(archive_names: Iterable[str], *, uploaded: Iterable[str]) -> list[LogFile]:
    """Takes the archive's file names and the ledger's (uploaded). Returns the archived
    LogFiles not yet recorded as uploaded, in LogFile.sort_key order."""
    done = set(uploaded)
    pending = (parse_filename(name) for name in archive_names if name not in done)
    return sorted((logfile for logfile in pending if logfile is not None), key=LogFile.sort_key)
