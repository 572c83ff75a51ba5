"""Destination key templates: ``{prefix}/{year}/{month}/{day}/{filename}``. Pure."""

from __future__ import annotations

import codecs
import string
from dataclasses import dataclass

from logjam.errors import UsageError
from logjam.parse import LogFile

FIELDS = ("prefix", "year", "month", "day", "hour", "minute", "filename", "suffix", "hostname")
REQUIRED_FIELDS = ("prefix", "year", "month", "day", "filename")
UPLOAD_DUPLICATE_MARK = "-logjam-upload-duplicate-"


@dataclass(frozen=True)
class KeyTemplate:
    """A checked template; format() never raises for a parsed LogFile."""

    text: str

    @classmethod
    def parse(cls, text: str) -> KeyTemplate:
        """Takes template text. Returns a KeyTemplate, or raises UsageError naming the problem."""
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as error:
            raise UsageError(f"bad key template {text!r}: unbalanced braces ({error})") from None
        used = []
        for _literal, field, spec, conversion in parts:
            if field is None:
                continue
            if field not in FIELDS:
                known = " ".join("{%s}" % name for name in FIELDS)
                raise UsageError(f"bad key template {text!r}: unknown field {{{field}}} (known: {known})")
            if spec or conversion:
                raise UsageError(f"bad key template {text!r}: {{{field}}} takes no format or conversion")
            used.append(field)
        missing = [name for name in REQUIRED_FIELDS if name not in used]
        if missing:
            names = ", ".join("{%s}" % name for name in missing)
            raise UsageError(f"bad key template {text!r}: missing {names}")
        return cls(text)

    def format(self, logfile: LogFile, *, hostname: str, filename: str | None = None) -> str:
        """Takes an archived LogFile. Returns its key (filename may be overridden for duplicates)."""
        stamp = logfile.timestamp
        key = self.text.format(
            prefix=logfile.prefix,
            year=f"{stamp.year:04d}",
            month=f"{stamp.month:02d}",
            day=f"{stamp.day:02d}",
            hour=f"{stamp.hour:02d}",
            minute=f"{stamp.minute:02d}",
            filename=logfile.filename if filename is None else filename,
            suffix=logfile.suffix or "",
            hostname=hostname,
        )
        return utf8_key(key)


def utf8_key(text: str) -> str:
    """Keys must be UTF-8: bytes of a file name that are not (read from the
    disk as surrogate escapes) become %XX, e.g. b"caf\\xe9" -> "caf%E9"."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "logjam-percent")


def _percent_escape(error: UnicodeDecodeError) -> tuple[str, int]:
    bad = error.object[error.start:error.end]
    return "".join(f"%{byte:02X}" for byte in bad), error.end


codecs.register_error("logjam-percent", _percent_escape)


def upload_duplicate_filename(logfile: LogFile, number: int) -> str:
    """``db-20130727T1200Z.log.gz`` -> ``db-20130727T1200Z-logjam-upload-duplicate-01.log.gz``."""
    stem = logfile.filename[: len(logfile.filename) - len(logfile.extension)]
    return f"{stem}{UPLOAD_DUPLICATE_MARK}{number:02d}{logfile.extension}"
