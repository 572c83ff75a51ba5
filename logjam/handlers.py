"""A logging handler that writes the hourly files logjam-compress expects.

Applications that log through Python's :mod:`logging` can write
``DIRECTORY/PREFIX-YYYYMMDDTHH00Z[-SUFFIX].log`` directly, with no syslog
daemon in between::

    import logging
    from logjam.handlers import HourlyFileHandler

    logging.getLogger().addHandler(
        HourlyFileHandler("/var/log/app", "flask-requests", suffix="i-ae23fega")
    )
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable

from logjam.parse import parse_filename, unparse_filename, utc_now

__all__ = ["HourlyFileHandler", "utc_now"]

# Longest file name most Linux filesystems accept (NAME_MAX, in bytes).
NAME_MAX = 255
# What logjam-compress may add to a name: the longest codec extension
# (".zst") and, for a late copy of an hour already archived, the duplicate
# mark "-logjam-compress-duplicate-timestamp-NN". A name needs this much
# room below NAME_MAX to be archived in every case.
ARCHIVE_ROOM = len(".zst") + len("-logjam-compress-duplicate-timestamp-NN")

# Any aware time works for checking that the parts round-trip; the name's
# shape does not depend on which hour it is.
_SAMPLE_HOUR = datetime.datetime(2013, 7, 27, 12, 0, tzinfo=datetime.timezone.utc)


def validate_parts(prefix: str, *, suffix: str | None, extension: str) -> None:
    """Raises ValueError unless the parts make names logjam parses back unchanged.

    A name logjam cannot parse would never be compressed or uploaded, so a
    mistake here must fail when the handler is made, not an hour later.
    """
    for label, value in (("prefix", prefix), ("suffix", suffix), ("extension", extension)):
        if value is None and label == "suffix":
            continue
        if not isinstance(value, str):
            raise ValueError(f"{label} must be a str, not {type(value).__name__}")
        if not value:
            raise ValueError(f"{label} must not be empty")
        if "/" in value or "\x00" in value:
            raise ValueError(f"{label} must not contain '/' or NUL: {value!r}")
    if prefix.startswith("."):
        raise ValueError(f"prefix must not start with '.' (hidden files are skipped): {prefix!r}")
    if suffix is not None and "." in suffix:
        raise ValueError(f"suffix must not contain '.': {suffix!r}")
    if not extension.startswith(".") or len(extension) < 2:
        raise ValueError(f"extension must be a '.' followed by something, e.g. '.log': {extension!r}")

    name = unparse_filename(prefix, _SAMPLE_HOUR, suffix=suffix, extension=extension)
    length = len(os.fsencode(name))
    if length > NAME_MAX - ARCHIVE_ROOM:
        raise ValueError(
            f"file names would be {length} bytes long, leaving no room for logjam-compress's "
            f"extension and duplicate mark ({ARCHIVE_ROOM} bytes) below the {NAME_MAX}-byte limit "
            f"(at most {NAME_MAX - ARCHIVE_ROOM}): {name!r}"
        )
    parsed = parse_filename(name)
    if parsed is None or (parsed.prefix, parsed.timestamp, parsed.suffix, parsed.extension) != (
        prefix,
        _SAMPLE_HOUR,
        suffix,
        extension,
    ):
        # E.g. a prefix that itself holds a timestamp-shaped part.
        raise ValueError(
            f"prefix {prefix!r}, suffix {suffix!r} and extension {extension!r} make names "
            f"like {name!r} that logjam would not read back the same"
        )


class HourlyFileHandler(logging.FileHandler):
    """Writes records to ``DIRECTORY/PREFIX-YYYYMMDDTHH00Z[-SUFFIX].EXT``, one file per UTC hour.

    The hour is checked at every record: the first record of a new hour
    closes the previous file before opening the next, so by the time a newer
    file exists (the sign logjam-compress takes for "finished") the older one
    is no longer written. Files are opened for appending, so a restart within
    the hour continues the same file. Thread-safe: the switch happens under
    the handler's lock, like the standard library's rotating handlers.

    Several processes must not share one stream: give each its own suffix
    (e.g. the worker or instance id), or one process may still write to a
    file that another has already superseded.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        prefix: str,
        suffix: str | None = None,
        extension: str = ".log",
        encoding: str | None = "utf-8",
        utc_now: Callable[[], datetime.datetime] = utc_now,
        delay: bool = False,
        errors: str | None = None,
    ) -> None:
        validate_parts(prefix, suffix=suffix, extension=extension)
        self.directory = os.path.abspath(os.fspath(directory))
        self.prefix = prefix
        self.suffix = suffix
        self.extension = extension
        self.utc_now = utc_now
        self.hour = self._current_hour()
        super().__init__(
            self.path_for(self.hour), mode="a", encoding=encoding, delay=delay, errors=errors
        )

    def path_for(self, hour: datetime.datetime) -> str:
        """Takes an aware datetime. Returns the path of that hour's file."""
        hour = hour.astimezone(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
        return os.path.join(
            self.directory, unparse_filename(self.prefix, hour, suffix=self.suffix, extension=self.extension)
        )

    def _current_hour(self) -> datetime.datetime:
        now = self.utc_now()
        if not isinstance(now, datetime.datetime) or now.utcoffset() is None:
            # A naive time would be read as local time: wrong names, silently.
            raise ValueError(f"utc_now() must return an aware datetime, not {now!r}")
        return now.astimezone(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)

    def should_switch(self) -> datetime.datetime | None:
        """Returns the current hour if it differs from the open file's, else None."""
        hour = self._current_hour()
        return hour if hour != self.hour else None

    def switch_to(self, hour: datetime.datetime) -> None:
        """Closes the current file and points the handler at hour's file.

        The new file is opened by the next write (FileHandler opens lazily
        when its stream is None), so no empty file is left for an hour with
        no records.
        """
        self.acquire()
        try:
            if self.stream is not None:
                stream, self.stream = self.stream, None
                try:
                    stream.flush()
                finally:
                    stream.close()
            self.hour = hour
            self.baseFilename = self.path_for(hour)
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        """Writes the record to the current hour's file, switching files first if the hour changed."""
        self.acquire()
        try:
            hour = self.should_switch()
            if hour is not None:
                self.switch_to(hour)
            super().emit(record)
        except RecursionError:  # as the standard library's handlers do
            raise
        except Exception:
            self.handleError(record)
        finally:
            self.release()
