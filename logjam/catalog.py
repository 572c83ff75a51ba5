"""Reading the archive back through its key template: what a stored key
names, which keys a query wants, and which key prefixes to list to find
them without listing the whole bucket. Pure: listings come in through a
``discover`` function.
"""

from __future__ import annotations

import datetime
import itertools
import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import KW_ONLY, dataclass, replace

import dateutil.parser

from logjam.errors import UsageError
from logjam.parse import LogFile, parse_filename
from logjam.template import UPLOAD_DUPLICATE_MARK, collapse_key, utf8_key

UTC = datetime.timezone.utc
HOUR = datetime.timedelta(hours=1)
DATE_FIELDS = ("year", "month", "day")

# What each field can hold in a key: no field value crosses a "/".
FIELD_PATTERNS = {
    "prefix": r"[^/]+",
    "year": r"\d{4}",
    "month": r"\d{2}",
    "day": r"\d{2}",
    "hour": r"\d{2}",
    "minute": r"\d{2}",
    "filename": r"[^/]+",
    "suffix": r"[^/]*",
    "hostname": r"[^/]*",
}
RELATIVE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DUPLICATE_SUFFIX = re.compile(rf"^(?:(?P<suffix>.+)-)?{UPLOAD_DUPLICATE_MARK[1:]}(?P<number>\d{{2,}})$")


@dataclass(frozen=True, kw_only=True)
class ArchivedKey:
    """One stored object, as its key names it."""

    key: str
    size: int
    logfile: LogFile  # the file it is a copy of (for a duplicate: the name it duplicates)
    name: str  # the stored file name
    duplicate: int  # 0, or the NN of -logjam-upload-duplicate-NN
    hostname: str | None

    @property
    def hour(self) -> datetime.datetime:
        return self.logfile.timestamp

    def order(self) -> tuple[datetime.datetime, str, bool, str, str, str, int, str]:
        """Hour, prefix, suffix (none first), name, host; a duplicate right
        after the file it duplicates."""
        suffix = self.logfile.suffix
        return (self.hour, self.logfile.prefix, suffix is not None, suffix or "",
                self.logfile.filename, self.hostname or "", self.duplicate, self.key)


def original_name(name: str) -> tuple[LogFile, int] | None:
    """Takes a stored file name. Returns the LogFile of the name it is a copy
    of and its duplicate number (0 for an original), or None if it is not a
    log file name."""
    logfile = parse_filename(name)
    if logfile is None:
        return None
    match = DUPLICATE_SUFFIX.match(logfile.suffix or "")
    if match is None:
        return logfile, 0
    stem = name[: len(name) - len(logfile.extension)]
    mark = f"{UPLOAD_DUPLICATE_MARK}{match['number']}"
    original = stem[: len(stem) - len(mark)] + logfile.extension
    return replace(logfile, suffix=match["suffix"], filename=original), int(match["number"])


def _parts(template: str) -> list[tuple[str, str | None]]:
    return [(literal, field) for literal, field, _spec, _conversion in string.Formatter().parse(template)]


def _pattern(parts: Iterable[tuple[str, str | None]], known: dict[str, str]) -> str:
    """A regex for parts: known fields as their literal values, the others as
    named groups (a field used twice must hold the same value twice)."""
    regex, seen = [], set()
    for literal, field in parts:
        regex.append(re.escape(literal))
        if field is None:
            continue
        if field in known:
            regex.append(re.escape(known[field]))
        elif field in seen:
            regex.append(f"(?P={field})")
        else:
            seen.add(field)
            regex.append(f"(?P<{field}>{FIELD_PATTERNS[field]})")
    return "".join(regex)


class KeyMatcher:
    """Reads keys made by one template back into ArchivedKeys."""

    def __init__(self, template: str) -> None:
        self.parts = _parts(template)
        self.uses_hostname = any(field == "hostname" for _, field in self.parts)
        # An empty {suffix} that is a whole path segment is dropped from the
        # key (template.collapse_key): such keys have one segment fewer.
        variants = [template]
        segments = template.split("/")
        if "{suffix}" in segments:
            variants.append("/".join(segment for segment in segments if segment != "{suffix}"))
        self._generic = [re.compile(_pattern(_parts(variant), {}), re.DOTALL) for variant in variants]

    def match(self, key: str, size: int) -> ArchivedKey | None:
        """Takes a key and its size. Returns what it names, or None if this
        template could not have made it."""
        found = next((m for m in (regex.fullmatch(key) for regex in self._generic) if m), None)
        if found is None:
            return None
        named = original_name(found["filename"])
        if named is None:
            return None
        logfile, duplicate = named
        # Check the whole key against the fields the file name fixes: only
        # {hostname} is left to read (and a template's ambiguity resolved).
        stamp = logfile.timestamp
        known = {
            "prefix": logfile.prefix, "suffix": logfile.suffix or "", "filename": found["filename"],
            "year": f"{stamp.year:04d}", "month": f"{stamp.month:02d}", "day": f"{stamp.day:02d}",
            "hour": f"{stamp.hour:02d}", "minute": f"{stamp.minute:02d}",
        }
        # Keys are collapsed since 2026-11 (no empty segments); older
        # uploads kept them ("db//2013"): both read back.
        exact = re.fullmatch(self._exact_pattern(known, collapse=True), key, re.DOTALL) \
            or re.fullmatch(self._exact_pattern(known, collapse=False), key, re.DOTALL)
        if exact is None:
            return None
        hostname = exact["hostname"] if self.uses_hostname else None
        return ArchivedKey(key=key, size=size, logfile=logfile, name=found["filename"], duplicate=duplicate,
                           hostname=hostname)

    def _exact_pattern(self, known: dict[str, str], *, collapse: bool) -> str:
        # The key the template makes from the known fields (collapsed as
        # uploads collapse it, or not), with {hostname} (never empty) to read.
        mark = "\x00"
        text = "".join(literal + ("" if field is None else known.get(field, mark)) for literal, field in self.parts)
        if collapse:
            text = collapse_key(text)
        pieces = [re.escape(piece) for piece in text.split(mark)]
        regex = pieces[0]
        for number, piece in enumerate(pieces[1:]):
            regex += ("(?P<hostname>[^/]+)" if number == 0 else "(?P=hostname)") + piece
        return regex


@dataclass(frozen=True)
class Query:
    """Which files to read back: hours in [since, until), and the streams and
    hosts asked for (empty: all)."""

    since: datetime.datetime
    until: datetime.datetime
    _: KW_ONLY
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str | None, ...] = ()
    hostnames: tuple[str, ...] = ()

    @property
    def first_hour(self) -> datetime.datetime:
        # A file holds its whole hour: --since 12:40 wants the 12:00 file.
        return self.since.replace(minute=0, second=0, microsecond=0)

    def days(self) -> list[datetime.date]:
        """The UTC days the range touches, in order."""
        day, last = self.first_hour.date(), (self.until - datetime.timedelta(microseconds=1)).date()
        days = []
        while day <= last:
            days.append(day)
            day += datetime.timedelta(days=1)
        return days

    def selects(self, archived: ArchivedKey) -> bool:
        """Whether the query asks for this file."""
        logfile = archived.logfile
        return (
            self.first_hour <= logfile.timestamp < self.until
            and (not self.prefixes or logfile.prefix in self.prefixes)
            and (not self.suffixes or logfile.suffix in self.suffixes)
            and (not self.hostnames or archived.hostname in self.hostnames)
        )


def listing_prefixes(template: str, query: Query, discover: Callable[[str], Iterable[str]], *,
                     collapse: bool = False) -> list[str]:
    """Takes a key template, a query and discover(prefix) -> the common
    prefixes below prefix up to the next "/" (a delimiter listing). Returns
    the key prefixes whose full listings hold every file the query wants:
    for each day, the key up to the first field not known. A field before
    the date that is not given is found with discover(), level by level.

    An empty {suffix} that is a whole path segment is dropped from keys
    uploaded since 2026-11 ("web/2026/..."), and kept by older ones
    ("web//2026/..."): both layouts are planned. collapse: the store has
    no empty segments (file://): plan collapsed prefixes only."""
    parts = _parts(template)
    segments = template.split("/")
    # The layout of collapsed keys without a suffix, when the query may want them.
    short = None
    if "{suffix}" in segments and (not query.suffixes or None in query.suffixes):
        short = _parts("/".join(segment for segment in segments if segment != "{suffix}"))
    found: dict[str, None] = {}
    for day in query.days():
        dated = {"year": f"{day.year:04d}", "month": f"{day.month:02d}", "day": f"{day.day:02d}"}
        for known in _choices(query, dated):
            plans = [_expand(parts, "", known, discover)]
            if short is not None and known.get("suffix", "") == "":
                plans.append(_expand(short, "", known, discover))
            for prefix in itertools.chain(*plans):
                found.setdefault(_collapse_prefix(prefix) if collapse else prefix)
    return _outermost(found)


def _collapse_prefix(prefix: str) -> str:
    collapsed = collapse_key(prefix)
    return collapsed + "/" if collapsed and prefix.endswith("/") else collapsed


def _choices(query: Query, dated: dict[str, str]) -> Iterator[dict[str, str]]:
    given: dict[str, tuple[str, ...]] = {}
    if query.prefixes:
        given["prefix"] = query.prefixes
    if query.hostnames:
        given["hostname"] = query.hostnames
    if query.suffixes:
        given["suffix"] = tuple(suffix or "" for suffix in query.suffixes)
    for values in itertools.product(*given.values()):
        yield {**dated, **dict(zip(given, values))}


def _expand(parts: list[tuple[str, str | None]], head: str, known: dict[str, str],
            discover: Callable[[str], Iterable[str]]) -> Iterator[str]:
    rendered = head
    index = 0
    while index < len(parts):
        literal, field = parts[index]
        rendered += literal
        if field is None or field not in known:
            break
        if field == "suffix" and known[field] == "" and (rendered == "" or rendered.endswith("/")) \
                and parts[index + 1:index + 2] and parts[index + 1][0].startswith("/") \
                and utf8_key(rendered) + "/" not in discover(utf8_key(rendered)):
            # An empty segment ("web//"): only old keys have it, and only
            # if the level (listed once, not per day) holds it.
            return
        rendered += known[field]
        index += 1
    else:
        yield utf8_key(rendered)
        return
    if not any(name in DATE_FIELDS for _, name in parts[index + 1:]):
        # The date is known up to here: one listing of this prefix. A file
        # name starts with its prefix, so a known prefix narrows it further.
        if field == "filename" and "prefix" in known:
            rendered += known["prefix"] + "-"
        yield utf8_key(rendered)
        return
    # An unknown field before the date: list one level ("/"), read the
    # values off what is there, and go on from each.
    end = next((i for i in range(index + 1, len(parts)) if "/" in parts[i][0]), None)
    if end is None:
        yield utf8_key(rendered)  # no level to list by: the prefix so far is the best there is
        return
    literal = parts[end][0]
    cut = literal.index("/") + 1
    level = re.compile(_pattern([("", field), *parts[index + 1:end], (literal[:cut], None)], known), re.DOTALL)
    rest = [(literal[cut:], parts[end][1]), *parts[end + 1:]]
    base = utf8_key(rendered)
    # A whole-segment {suffix} level also holds the next segment of the
    # collapsed keys without a suffix ("web/2026/" beside "web/err/"):
    # a value that could be one is a suffix only if the level below it
    # holds what the template puts next (one cached listing, not one per day).
    after = _next_segment(rest, known) if field == "suffix" and (rendered == "" or rendered.endswith("/")) \
        and literal[:cut] == "/" and end == index + 1 else None
    for common in discover(base):
        if not (common.startswith(base) and level.fullmatch(common[len(base):])):
            continue
        if after is not None and after[0].fullmatch(common[len(base):-1]) \
                and common + after[1] + "/" not in discover(common):
            continue
        yield from _expand(rest, common, known, discover)


def _next_segment(rest: list[tuple[str, str | None]], known: dict[str, str]) -> tuple[re.Pattern[str], str] | None:
    """The first path segment of rest: the pattern any value of it has, and
    its value here; None if it is not known or not followed by a "/"."""
    segment: list[tuple[str, str | None]] = []
    for literal, field in rest:
        if "/" in literal:
            segment.append((literal[: literal.index("/")], None))
            break
        segment.append((literal, field))
    else:
        return None
    if any(field is not None and field not in known for _, field in segment):
        return None
    value = "".join(literal + (known[field] if field else "") for literal, field in segment)
    return re.compile(_pattern(segment, {}), re.DOTALL), value


def _outermost(prefixes: dict[str, None]) -> list[str]:
    """Drops prefixes inside another one listed (it would list them twice)."""
    result: list[str] = []
    for prefix in sorted(prefixes):
        if not result or not prefix.startswith(result[-1]):
            result.append(prefix)
    return result


def parse_time(text: str, *, now: datetime.datetime, option: str) -> datetime.datetime:
    """Takes ISO 8601 UTC (2013-07-27T12:00Z, 2013-07-27T12Z, 2013-07-27),
    "now" or a span back from now (90m, 6h, 2d, 1w). Returns a UTC datetime;
    raises UsageError naming option and the forms it takes. A time of day
    needs its zone (Z or an offset); only a date alone is taken as UTC."""
    text = text.strip()
    if text == "now":
        return now
    number, unit = text[:-1], text[-1:]
    try:
        if number.isdigit() and unit in RELATIVE_UNITS:
            return _in_range(now - datetime.timedelta(seconds=int(number) * RELATIVE_UNITS[unit]), text=text, option=option)
        try:
            when = dateutil.parser.isoparse(text)
        except ValueError:
            when = None
        if when is None or (when.tzinfo is None and not DATE_ALONE.fullmatch(text)):
            raise UsageError(f"{option} {text!r}: not a UTC time (e.g. 2013-07-27T12:00Z, 2013-07-27, 90m, 6h, 2d)")
        if when.tzinfo is None:  # a date alone: its UTC midnight
            when = when.replace(tzinfo=UTC)
        return _in_range(when.astimezone(UTC), text=text, option=option)
    except OverflowError:
        raise UsageError(f"{option} {text!r}: out of range (years 0002 to 9998)") from None


# A date with no time of day (2013-07-27, 20130727, 2013-W30-6): UTC midnight.
DATE_ALONE = re.compile(r"[0-9W-]+")
# Far enough inside datetime's range that a day either side still computes.
EARLIEST = datetime.datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime.datetime(9998, 12, 31, tzinfo=UTC)


def _in_range(when: datetime.datetime, *, text: str, option: str) -> datetime.datetime:
    if not EARLIEST <= when <= LATEST:
        raise OverflowError
    return when
