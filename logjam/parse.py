"""The log file name grammar: ``PREFIX-TIMESTAMP[-SUFFIX].EXTENSION``.

TIMESTAMP is a UTC ISO 8601 basic or extended time to the minute, e.g.
``20130727T1200Z`` or ``2013-07-27T12:00Z``. Everything in this module is pure.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass

# PREFIX is non-greedy so that the first timestamp-shaped part is the one
# taken; SUFFIX may hold hyphens but no dot; EXTENSION is everything from the
# first dot after the timestamp on (".log", ".log.json", ".log.gz").
LOGFILE_PATTERN = re.compile(
    r"""
    ^(?P<prefix>.+?)
    -(?P<timestamp>
        (?P<year>\d{4})-?(?P<month>\d{2})-?(?P<day>\d{2})
        T(?P<hour>\d{2}):?(?P<minute>\d{2})Z
    )
    (?:-(?P<suffix>[^.]+))?
    (?P<extension>\.[^/\x00]+)$
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, kw_only=True)
class LogFile:
    """One log file, as its name describes it."""

    prefix: str
    timestamp: datetime.datetime
    suffix: str | None
    extension: str
    filename: str

    def sort_key(self) -> tuple[str, datetime.datetime, str, str, str]:
        """Orders by stream, then time; ``None`` never meets ``str`` here."""
        return (self.prefix, self.timestamp, self.suffix or "", self.extension, self.filename)

    @property
    def stream(self) -> tuple[str, str | None, str]:
        """The (prefix, suffix, extension) key grouping one stream's hours."""
        return (self.prefix, self.suffix, self.extension)


def _parse_timestamp(match: re.Match[str]) -> datetime.datetime | None:
    # The pattern admits only digits here, so with ASCII (\d also matches
    # other scripts' digits, which int() reads but no name round-trips) the
    # datetime constructor is the whole check; it refuses hour 24, which must
    # not read as the next midnight. Not dateutil: importing it cost each
    # logjam-compress run about 5 ms, a tenth of its start.
    if not match["timestamp"].isascii():
        return None
    try:
        return datetime.datetime(int(match["year"]), int(match["month"]), int(match["day"]),
                                 int(match["hour"]), int(match["minute"]), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def utc_now() -> datetime.datetime:
    """Returns the current time as an aware UTC datetime: every clock's default."""
    return datetime.datetime.now(datetime.timezone.utc)


def parse_filename(name: str) -> LogFile | None:
    """Takes a file name. Returns its LogFile, or None if it is not a log file name.

    Never raises: anything that is not a log file name simply does not match.
    """
    # "/" and NUL never occur in a file's name (a caller that passes a path
    # passed the wrong thing); such text names no log file.
    if not isinstance(name, str) or name.startswith(".") or "/" in name or "\x00" in name:
        return None
    match = LOGFILE_PATTERN.match(name)
    if match is None:
        return None
    timestamp = _parse_timestamp(match)
    if timestamp is None:
        return None
    return LogFile(
        prefix=match["prefix"],
        timestamp=timestamp,
        suffix=match["suffix"],
        extension=match["extension"],
        filename=name,
    )


def unparse_filename(
    prefix: str, timestamp: datetime.datetime, *, suffix: str | None, extension: str
) -> str:
    """Takes the parts of a log file name. Returns the name (basic ISO 8601 form)."""
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(datetime.timezone.utc)
    # Not strftime: glibc's %Y does not zero-pad years before 1000.
    stamp = f"{timestamp.year:04d}{timestamp.month:02d}{timestamp.day:02d}T{timestamp.hour:02d}{timestamp.minute:02d}Z"
    parts = [prefix, stamp]
    if suffix is not None:
        parts.append(suffix)
    return "-".join(parts) + extension


def group_filenames(names: Iterable[str]) -> dict[tuple[str, str | None, str], list[LogFile]]:
    """Takes file names. Returns their LogFiles grouped by stream, each group sorted by time.

    Names that do not parse are skipped.
    """
    groups: dict[tuple[str, str | None, str], list[LogFile]] = {}
    for name in names:
        logfile = parse_filename(name)
        if logfile is not None:
            groups.setdefault(logfile.stream, []).append(logfile)
    for logfiles in groups.values():
        logfiles.sort(key=LogFile.sort_key)
    return groups
