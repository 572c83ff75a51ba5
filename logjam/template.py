"""Destination key templates: ``{prefix}/{year}/{month}/{day}/{filename}``. Pure."""

from __future__ import annotations

import codecs
import datetime
import re
import string
from dataclasses import dataclass

from logjam.errors import UsageError
from logjam.parse import LogFile

FIELDS = ("prefix", "year", "month", "day", "hour", "minute", "filename", "suffix", "hostname")
REQUIRED_FIELDS = ("prefix", "year", "month", "day", "filename")
UPLOAD_DUPLICATE_MARK = "-logjam-upload-duplicate-"
MAX_KEY_BYTES = 1024  # S3's limit on a key's UTF-8 length
FIXED_WIDTH_FIELDS = {"year": 4, "month": 2, "day": 2, "hour": 2, "minute": 2}


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
        dots = [segment for segment in text.split("/") if segment in (".", "..")]
        if dots:
            raise UsageError(f"bad key template {text!r}: a {dots[0]!r} path segment (keys never step out of a folder)")
        return cls(text)

    def fixed_bytes(self) -> int:
        """The UTF-8 length every key of this template has at least: its
        literal text and its fixed-width fields ({year} is 4 bytes...)."""
        total = 0
        for literal, field, _spec, _conversion in string.Formatter().parse(self.text):
            total += len(literal.encode("utf-8", "surrogateescape"))
            total += FIXED_WIDTH_FIELDS.get(field or "", 0)
        return total

    def leading_text(self, *, hostname: str) -> str:
        """The text every key of this host starts with: the template up to its
        first field that depends on the file ({hostname} is filled in), with
        empty path segments collapsed. 'logs/{hostname}/{prefix}/...' -> 'logs/web1/'."""
        text = ""
        for literal, field, _spec, _conversion in string.Formatter().parse(self.text):
            text += literal
            if field is None:
                continue
            if field != "hostname":
                break
            text += hostname
        return re.sub("/+", "/", utf8_key(text)).lstrip("/")

    def check_hostname(self, hostname: str) -> None:
        """Raises UsageError if {hostname} = hostname makes keys no backend may
        write (a '.' or '..' segment, e.g. '{hostname}' = '..', or
        'logs-{hostname}' is fine but '{hostname}.' with '.' is not; a NUL or
        control character): one line at start instead of every file failing
        every pass."""
        if any(ord(char) < 32 or ord(char) == 127 for char in hostname):
            raise UsageError(f"host name {hostname!r} has a control character; give --hostname")
        sample = LogFile(prefix="logjam", timestamp=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc),
                         suffix=None, extension=".log.gz", filename="logjam-20000101T0000Z.log.gz")
        key = self.format(sample, hostname=hostname)
        problem = key_problem(key)
        if problem:
            raise UsageError(f"host name {hostname!r} in key template {self.text!r} makes keys such as {key!r}, "
                             "with an empty, '.' or '..' segment; give another --hostname")

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
        return collapse_key(utf8_key(key))


def collapse_key(key: str) -> str:
    """Drops empty path segments, so that every backend and the ledger see the
    same key: an empty {suffix} in 'web/{suffix}/x.gz' gives 'web/x.gz', not 'web//x.gz'."""
    return "/".join(segment for segment in key.split("/") if segment)


def key_problem(key: str, *, max_bytes: int | None = None) -> str | None:
    """Takes a formatted key. Returns why no backend may write it (a '.' or
    '..' segment, a NUL, or more than max_bytes of UTF-8), or None."""
    segments = key.split("/")
    if not key or any(segment in ("", ".", "..") or "\x00" in segment for segment in segments):
        return f"key {key!r} has an empty, '.' or '..' segment or a NUL (it could leave its folder); refused"
    size = len(key.encode("utf-8", "surrogateescape"))
    if max_bytes is not None and size > max_bytes:
        return f"key is {size} bytes, more than the {max_bytes} allowed: {key[:60]}...{key[-40:]}"
    return None


def utf8_key(text: str) -> str:
    """Keys must be UTF-8: bytes of a file name that are not (read from the
    disk as surrogate escapes) become %XX, e.g. b"caf\\xe9" -> "caf%E9"."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "logjam-percent")


def _percent_escape(error: UnicodeError) -> tuple[str, int]:
    # Registered for decoding only (logjam-percent above).
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start:error.end]
    return "".join(f"%{byte:02X}" for byte in bad), error.end


codecs.register_error("logjam-percent", _percent_escape)


def upload_duplicate_filename(logfile: LogFile, number: int) -> str:
    """``db-20130727T1200Z.log.gz`` -> ``db-20130727T1200Z-logjam-upload-duplicate-01.log.gz``."""
    stem = logfile.filename[: len(logfile.filename) - len(logfile.extension)]
    return f"{stem}{UPLOAD_DUPLICATE_MARK}{number:02d}{logfile.extension}"
