"""Property tests (hypothesis) of the pure parts: the file name grammar, key
templates, selection of finished files, S3 part sizes."""

from __future__ import annotations

import datetime
import math
import os

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from logjam.backends.s3_multipart import MAX_PARTS, PART_SIZE, part_size_for
from logjam.parse import LogFile, group_filenames, parse_filename, unparse_filename
from logjam.selection import ONE_HOUR_PLUS, yield_old_logfiles
from logjam.template import FIELDS, KeyTemplate, upload_duplicate_filename

UTC = datetime.timezone.utc

# No example database: the suite leaves nothing behind in the work tree.
FAST = settings(max_examples=200, database=None, deadline=None)

# -- strategies ----------------------------------------------------------------------

# Lower case only: the timestamp needs upper-case 'T' and 'Z', so a prefix can
# never hold a second timestamp-shaped part (the grammar takes the first one).
SAFE = "abcdefghijklmnopqrstuvwxyz0123456789_-"

prefixes = st.text(alphabet=SAFE, min_size=1, max_size=20)
suffixes = st.none() | st.text(alphabet=SAFE, min_size=1, max_size=20)
# A '.' then anything but '/' and NUL (dots and hyphens included).
extensions = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
).map(lambda text: "." + text)

# Every year 0001..9999 (years before 1000 must still be written with four digits).
timestamps = st.datetimes(
    min_value=datetime.datetime(1, 1, 1),
    max_value=datetime.datetime(9999, 12, 31, 23, 59),
    timezones=st.just(UTC),
).map(lambda moment: moment.replace(second=0, microsecond=0))

def basic(moment: datetime.datetime) -> str:
    # not strftime: glibc's %Y does not zero-pad years before 1000
    return f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T{moment.hour:02d}{moment.minute:02d}Z"


def extended(moment: datetime.datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}Z"


# Any text for the free parts, for "never raises" properties.
any_prefixes = st.text(min_size=1, max_size=20).filter(lambda text: not text.startswith("."))
any_suffixes = st.none() | st.text(
    alphabet=st.characters(blacklist_characters=".", blacklist_categories=("Cs",)), min_size=1, max_size=20
)

hostnames = st.text(max_size=30)

templates = st.permutations(FIELDS).flatmap(
    lambda fields: st.lists(st.sampled_from(["/", "-", "_", "", "x/", "{{", "}}"]),
                            min_size=len(fields), max_size=len(fields)).map(
        lambda separators: "".join(sep + "{%s}" % field for sep, field in zip(separators, fields))
    )
)


# Arbitrary text around a real timestamp (basic or extended form): most of it parses.
texty_names = st.builds(
    lambda head, stamp, mark, tail: f"{head}-{stamp}{mark}{tail}",
    st.one_of(st.text(max_size=15), st.text(max_size=15).map(lambda text: "." + text)),
    timestamps.flatmap(lambda moment: st.sampled_from(
        [basic(moment), extended(moment)])),
    st.sampled_from([".", "-", "-x.", ""]),
    st.text(max_size=15),
)


# -- parse_filename ----------------------------------------------------------------

def check_parsed(name):
    """What any successful parse must look like."""
    logfile = parse_filename(name)
    if logfile is not None:
        assert logfile.filename == name
        assert logfile.prefix
        assert not name.startswith(".")
        assert logfile.extension.startswith(".") and len(logfile.extension) > 1
        assert "/" not in logfile.extension and "\x00" not in logfile.extension
        assert logfile.suffix is None or (logfile.suffix and "." not in logfile.suffix)
        assert logfile.timestamp.utcoffset() == datetime.timedelta(0)
        assert logfile.timestamp.second == logfile.timestamp.microsecond == 0
        assert name.startswith(logfile.prefix + "-") and name.endswith(logfile.extension)
    return logfile


@FAST
@given(st.text())
def test_parse_filename_never_raises(name):
    check_parsed(name)


@FAST
@given(st.from_regex(r"\A[a-z-]{0,6}-\d{4}-?\d{2}-?\d{2}T\d{2}:?\d{2}Z(-[a-z0-9]{0,4})?(\.[a-z.]{0,4})?\Z"))
def test_parse_filename_never_raises_on_near_misses(name):
    # timestamp-shaped names with any digits: bad dates return None, never raise
    logfile = parse_filename(name)
    if logfile is not None:
        assert logfile.timestamp.second == logfile.timestamp.microsecond == 0


@FAST
@given(texty_names)
def test_parse_filename_never_raises_on_text_around_a_timestamp(name):
    check_parsed(name)


@FAST
@given(prefixes, timestamps, suffixes, extensions)
def test_unparse_parse_round_trip(prefix, timestamp, suffix, extension):
    name = unparse_filename(prefix, timestamp, suffix=suffix, extension=extension)
    logfile = parse_filename(name)
    assert logfile is not None, name
    assert (logfile.prefix, logfile.timestamp, logfile.suffix, logfile.extension, logfile.filename) == (
        prefix, timestamp, suffix, extension, name)
    assert logfile.timestamp.utcoffset() == datetime.timedelta(0)
    assert unparse_filename(logfile.prefix, logfile.timestamp, suffix=logfile.suffix, extension=logfile.extension) == name


@FAST
@given(prefixes, timestamps, suffixes, extensions)
def test_extended_form_parses_like_basic_form(prefix, timestamp, suffix, extension):
    from_basic = parse_filename(unparse_filename(prefix, timestamp, suffix=suffix, extension=extension))
    extended_name = "-".join(
        [prefix, extended(timestamp)] + ([suffix] if suffix is not None else [])
    ) + extension
    parsed = parse_filename(extended_name)
    assert parsed is not None, extended_name
    assert (parsed.prefix, parsed.timestamp, parsed.suffix, parsed.extension) == (
        from_basic.prefix, from_basic.timestamp, from_basic.suffix, from_basic.extension)


@FAST
@given(st.lists(st.one_of(
    st.builds(
        unparse_filename,
        st.sampled_from(["db", "db-x"]),
        timestamps,
        suffix=st.sampled_from([None, "a"]),
        extension=st.sampled_from([".log", ".log.gz"]),
    ),
    st.builds(unparse_filename, prefixes, timestamps, suffix=suffixes, extension=extensions),
    st.text(max_size=30),
), max_size=20))
def test_group_filenames(names):
    groups = group_filenames(names)
    grouped = [logfile for group in groups.values() for logfile in group]
    parsed = [logfile for logfile in map(parse_filename, names) if logfile is not None]
    assert sorted(grouped, key=LogFile.sort_key) == sorted(parsed, key=LogFile.sort_key)
    for stream, group in groups.items():
        assert group and all(logfile.stream == stream for logfile in group)
        assert [logfile.timestamp for logfile in group] == sorted(logfile.timestamp for logfile in group)


# -- KeyTemplate.format ------------------------------------------------------------

@FAST
@given(templates, any_prefixes, timestamps, any_suffixes, extensions, hostnames)
def test_format_never_raises_for_a_parsed_name(text, prefix, timestamp, suffix, extension, hostname):
    template = KeyTemplate.parse(text)
    logfile = parse_filename(unparse_filename(prefix, timestamp, suffix=suffix, extension=extension))
    assume(logfile is not None)
    key = template.format(logfile, hostname=hostname)
    assert logfile.filename in key
    assert key.encode("utf-8")
    duplicate = template.format(logfile, hostname=hostname, filename=upload_duplicate_filename(logfile, 99))
    assert "-logjam-upload-duplicate-99" in duplicate


# The same, shaped so that nearly all of it parses (little for assume() to reject).
parsable_texty_names = st.builds(
    lambda head, stamp, mark, tail: f"{head}-{stamp}{mark}{tail}",
    st.text(min_size=1, max_size=15).filter(lambda text: not text.startswith(".")),
    timestamps.flatmap(lambda moment: st.sampled_from(
        [basic(moment), extended(moment)])),
    st.sampled_from([".log", "-x.log", "-{}.gz"]),
    st.text(max_size=15),
)


@FAST
@given(parsable_texty_names, hostnames)
def test_format_never_raises_for_any_parsed_text(name, hostname):
    logfile = parse_filename(name)
    assume(logfile is not None)
    key = KeyTemplate.parse("{hostname}/{prefix}/{suffix}/{year}/{month}/{day}/{hour}/{minute}/{filename}").format(
        logfile, hostname=hostname)
    assert key.endswith("/" + name)


@FAST
@given(st.binary(max_size=15), timestamps, st.binary(max_size=15), hostnames)
def test_format_never_raises_for_undecodable_names(head, timestamp, tail, hostname):
    # names as os.listdir gives them: undecodable bytes as surrogate escapes
    def clean(raw: bytes) -> bytes:
        return raw.replace(b"/", b"").replace(b"\x00", b"")

    name = os.fsdecode(clean(head).lstrip(b".") + b"x-" + basic(timestamp).encode() + b".log" + clean(tail))
    logfile = parse_filename(name)
    assume(logfile is not None)
    key = KeyTemplate.parse("{hostname}/{prefix}/{year}/{month}/{day}/{filename}").format(logfile, hostname=hostname)
    key.encode("utf-8")  # always a valid UTF-8 key


@FAST
@given(st.text(max_size=60))
def test_template_parse_raises_only_usage_error(text):
    from logjam.errors import UsageError

    try:
        template = KeyTemplate.parse(text)
    except UsageError:
        return
    logfile = parse_filename("db-20130727T1200Z-s.log.gz")
    assert "db-20130727T1200Z-s.log.gz" in template.format(logfile, hostname="h")


# -- yield_old_logfiles ------------------------------------------------------------

BASE = datetime.datetime(2013, 7, 27, 12, 0, tzinfo=UTC)


@st.composite
def listings(draw):
    """A directory listing and a time to judge it at.

    File timestamps are drawn relative to now's minute, often right at the
    1 h 5 min boundary, at now itself and just after it (the future)."""
    now_minute = BASE + datetime.timedelta(minutes=draw(st.integers(min_value=-300, max_value=300)))
    now = now_minute + datetime.timedelta(
        microseconds=draw(st.one_of(st.just(0), st.just(1), st.integers(min_value=0, max_value=59_999_999))))
    offsets = st.one_of(
        st.sampled_from([-66, -65, -64, -1, 0, 1, 60]),
        st.integers(min_value=-600, max_value=120),
    )
    stream_names = st.builds(
        lambda prefix, minutes, suffix, extension: unparse_filename(
            prefix, now_minute + datetime.timedelta(minutes=minutes), suffix=suffix, extension=extension),
        st.sampled_from(["db", "flask-requests", "db-x"]),
        offsets,
        st.sampled_from([None, "a", "us-west-2"]),
        st.sampled_from([".log", ".log.json"]),
    )
    names = draw(st.lists(
        st.one_of(stream_names, st.sampled_from(["messages", ".db-20130727T1200Z.log", "archive"])),
        max_size=25,
        unique=True,
    ))
    return names, now


def at(hour: int, minute: int, microsecond: int = 0) -> datetime.datetime:
    return datetime.datetime(2013, 7, 27, hour, minute, 0, microsecond, tzinfo=UTC)


@FAST
@given(listings())
@example((["db-20130727T1200Z.log", "db-20130727T1230Z.log"], at(12, 30)))  # superseded by a file stamped now
@example((["db-20130727T1200Z.log", "db-20130727T1231Z.log"], at(12, 30)))  # not by a future one
@example((["db-20130727T1200Z.log"], at(13, 5)))  # exactly 1 h 5 min: not finished
@example((["db-20130727T1200Z.log"], at(13, 5, 1)))  # 1 µs later: finished
def test_yield_old_logfiles_properties(listing):
    names, now = listing
    result = list(yield_old_logfiles(names, now))
    filenames = [logfile.filename for logfile in result]
    # a subset of the input, each once, sorted, none stamped in the future
    assert set(filenames) <= set(names)
    assert len(filenames) == len(set(filenames))
    assert result == sorted(result, key=LogFile.sort_key)
    assert all(logfile.timestamp <= now for logfile in result)
    # exactly the finished ones: old, or superseded by a newer current file of the stream
    current = [logfile for logfile in map(parse_filename, names)
               if logfile is not None and logfile.timestamp <= now]
    expected = {
        logfile.filename for logfile in current
        if now - logfile.timestamp > ONE_HOUR_PLUS
        or any(other.stream == logfile.stream and other.timestamp > logfile.timestamp for other in current)
    }
    assert set(filenames) == expected


@FAST
@given(listings())
def test_future_files_change_nothing(listing):
    # adding or removing future-stamped files never changes the selection
    names, now = listing
    current = [name for name in names if (parse_filename(name) is None or parse_filename(name).timestamp <= now)]
    assert list(yield_old_logfiles(names, now)) == list(yield_old_logfiles(current, now))


@FAST
@given(listings(), st.integers(min_value=0, max_value=600))
def test_finished_stays_finished(listing, later_minutes):
    # time only moves files into the finished set
    names, now = listing
    earlier = set(yield_old_logfiles(names, now))
    later = set(yield_old_logfiles(names, now + datetime.timedelta(minutes=later_minutes)))
    assert earlier <= later


# -- part_size_for -----------------------------------------------------------------

@FAST
@given(st.integers(min_value=0, max_value=50 * 1024**4))
def test_part_size_for(size):
    part_size = part_size_for(size)
    assert part_size >= PART_SIZE
    assert math.ceil(size / part_size) <= MAX_PARTS
    # the smallest doubling that fits: half of it would not
    if part_size > PART_SIZE:
        assert math.ceil(size / (part_size // 2)) > MAX_PARTS
