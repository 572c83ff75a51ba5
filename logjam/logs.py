"""Log output: one-line and JSON formatters, the structured fields of
per-file events, and the logging set-up of the commands."""


from __future__ import annotations

import contextlib
import datetime
import json
import logging
import sys
from typing import TextIO

log = logging.getLogger("logjam")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def fields(event: str, **values: object) -> dict[str, dict[str, object]]:
    """Takes an event name and its values (file, destination, bytes_in,
    bytes_out, duration, error). Returns the extra= of a log call: the
    structured fields --log-format json adds to the record."""
    return {"logjam_fields": {"event": event, **{key: value for key, value in values.items() if value is not None}}}


# Control characters a file name may hold: in a log line or an error line
# they would end the line (and could forge the next one) or move the cursor.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """Takes a message. Returns it with control characters (newlines, tabs,
    escapes, U+2028) written as backslash escapes, so that it stays one line."""
    return text.translate(_CONTROLS)


class LineFormatter(logging.Formatter):
    """The plain format: one line per record, whatever names it mentions
    (a traceback, shown only with --log-level debug, follows as is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (--log-format json), with
    the structured fields of logjam's per-file events (see fields())."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in getattr(record, "logjam_fields", {}).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, *, stream: TextIO | None = None, json_format: bool = False) -> None:
    """One line per record on stderr. Library loggers stay quiet: botocore's
    debug output carries request signatures and would bury ours."""
    if stream is None:
        # File names may hold bytes that are not UTF-8: show them escaped
        # rather than fail to log.
        with contextlib.suppress(AttributeError, ValueError):  # a stream put in its place
            getattr(sys.stderr, "reconfigure")(errors="backslashreplace")
        stream = sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter() if json_format else LineFormatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3 warns with a traceback about replies cut off mid-header; botocore
    # retries those, and logjam reports what finally fails in one line.
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def describe_error(error: BaseException) -> str:
    """Takes an exception. Returns its type name and message, for one log line."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
