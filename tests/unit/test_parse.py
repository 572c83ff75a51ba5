"""The file name grammar ``PREFIX-TIMESTAMP[-SUFFIX].EXTENSION`` (logjam.parse)."""

from __future__ import annotations

import datetime

import pytest

from logjam.parse import LogFile, group_filenames, parse_filename, unparse_filename

UTC = datetime.timezone.utc


def utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


NOON = utc(2013, 7, 27, 12, 0)


# -- parse_filename: names that match ----------------------------------------

@pytest.mark.parametrize(
    ("name", "prefix", "timestamp", "suffix", "extension"),
    [
        # the examples
        ("flask-requests-20130727T1200Z-us-west-2-i-ae23fega.log",
         "flask-requests", NOON, "us-west-2-i-ae23fega", ".log"),
        ("flask-requests-20130727T1200Z.log", "flask-requests", NOON, None, ".log"),
        # extended ISO 8601 form: date hyphens and time colon
        ("flask-requests-2013-07-27T12:00Z.log", "flask-requests", NOON, None, ".log"),
        ("flask-2013-07-27T12:00Z-us-west-2.log", "flask", NOON, "us-west-2", ".log"),
        # multi-part and compressed extensions
        ("flask-20130727T1200Z.log.json", "flask", NOON, None, ".log.json"),
        ("flask-20130727T1200Z-i-1.log.json", "flask", NOON, "i-1", ".log.json"),
        ("flask-20130727T1200Z.log.gz", "flask", NOON, None, ".log.gz"),
        ("db-20130727T1200Z-host.log.json.gz", "db", NOON, "host", ".log.json.gz"),
        # one-character parts
        ("a-20130727T1200Z.b", "a", NOON, None, ".b"),
        ("a-20130727T1200Z-s.b", "a", NOON, "s", ".b"),
        # prefix with many hyphens (including a trailing one)
        ("a-b-c-d-20130727T1200Z.log", "a-b-c-d", NOON, None, ".log"),
        ("a--20130727T1200Z.log", "a-", NOON, None, ".log"),
        # prefix made of digits
        ("2013-20130727T1200Z.log", "2013", NOON, None, ".log"),
        # minutes other than :00 and edge times of day / year
        ("flask-20130727T1259Z.log", "flask", utc(2013, 7, 27, 12, 59), None, ".log"),
        ("flask-20130727T0000Z.log", "flask", utc(2013, 7, 27, 0, 0), None, ".log"),
        ("flask-20131231T2359Z.log", "flask", utc(2013, 12, 31, 23, 59), None, ".log"),
        ("flask-20120229T1200Z.log", "flask", utc(2012, 2, 29, 12, 0), None, ".log"),
        ("flask-20000101T0000Z.log", "flask", utc(2000, 1, 1, 0, 0), None, ".log"),
        # suffix that itself looks like a timestamp is still the suffix
        ("flask-20130727T1200Z-20130727T1300Z.log", "flask", NOON,
         "20130727T1300Z", ".log"),
        # non-ASCII parts
        ("journal-é-20130727T1200Z-ü.log", "journal-é", NOON, "ü", ".log"),
    ],
)
def test_parse_filename_matches(name, prefix, timestamp, suffix, extension):
    logfile = parse_filename(name)
    assert logfile == LogFile(prefix=prefix, timestamp=timestamp, suffix=suffix, extension=extension, filename=name)


@pytest.mark.parametrize(
    "name",
    [
        "flask-20130727T1200Z.log",
        "flask-2013-07-27T12:00Z.log",
        "flask-20130727T1200Z-us-west-2.log.json",
    ],
)
def test_parse_filename_timestamp_is_aware_utc(name):
    timestamp = parse_filename(name).timestamp
    assert timestamp.tzinfo is not None
    assert timestamp.utcoffset() == datetime.timedelta(0)
    assert timestamp.tzname() == "UTC"


def test_basic_and_extended_forms_give_the_same_timestamp():
    basic = parse_filename("flask-20130727T1234Z.log")
    extended = parse_filename("flask-2013-07-27T12:34Z.log")
    assert basic.timestamp == extended.timestamp == utc(2013, 7, 27, 12, 34)
    assert basic.stream == extended.stream


# -- parse_filename: names that do not match (None, never an exception) -------

@pytest.mark.parametrize(
    "name",
    [
        # the examples
        "messages",
        "20130727T1200Z-x.log",  # no prefix
        "flask-20131301T1200Z.log",  # month 13
        "flask-20130727T1200Z-x",  # no extension
        # names starting with a dot (temporary files, locks, the ledger)
        ".flask-20130727T1200Z.log",
        ".logjam-compress.lock",
        ".uploaded",
        # empty and trivial names
        "",
        "-",
        ".",
        "..",
        # no prefix
        "-20130727T1200Z.log",
        # no extension, with and without suffix
        "flask-20130727T1200Z",
        # extension that is only a dot
        "flask-20130727T1200Z.",
        # empty suffix
        "flask-20130727T1200Z-.log",
        # invalid dates and times
        "flask-20130732T1200Z.log",  # day 32
        "flask-20130230T1200Z.log",  # 30 February
        "flask-20130229T1200Z.log",  # 29 February in a common year
        "flask-20130027T1200Z.log",  # month 0
        "flask-20130700T1200Z.log",  # day 0
        "flask-20130727T2500Z.log",  # hour 25
        "flask-20130727T2400Z.log",  # hour 24 (would roll over to the next day)
        "flask-20130727T1260Z.log",  # minute 60
        "flask-00000727T1200Z.log",  # year 0
        "flask-\u0662\u0660\u0661\u06630727T1200Z.log",  # Arabic-Indic digits: int() reads them, no name round-trips
        "flask-20130727T\uff11200Z.log",  # a fullwidth digit
        # not to the minute, not UTC, not ISO
        "flask-20130727T12Z.log",
        "flask-20130727T120000Z.log",
        "flask-20130727T1200.log",
        "flask-20130727T1200+0000.log",
        "flask-20130727t1200z.log",
        "flask-20130727 1200Z.log",
        "flask-2013727T1200Z.log",
        "flask-130727T1200Z.log",
        # missing hyphen between prefix and timestamp or timestamp and suffix
        "flask20130727T1200Z.log",
        "flask-20130727T1200Zsuffix.log",
        # a slash or NUL in the extension
        "flask-20130727T1200Z.log/x",
        "flask-20130727T1200Z.log\x00",
        # ... or anywhere else: no file's name holds one (the key would lose a segment)
        "/-20000101T0000Z.log",
        "a/b-20130727T1200Z.log",
        "flask-20130727T1200Z-s/x.log",
        "fl\x00ask-20130727T1200Z.log",
    ],
)
def test_parse_filename_rejects(name):
    assert parse_filename(name) is None


@pytest.mark.parametrize("name", [None, b"flask-20130727T1200Z.log", 42])
def test_parse_filename_rejects_non_strings(name):
    assert parse_filename(name) is None


# -- unparse_filename ---------------------------------------------------------

@pytest.mark.parametrize(
    ("prefix", "timestamp", "suffix", "extension", "name"),
    [
        ("flask-requests", NOON, "us-west-2-i-ae23fega", ".log",
         "flask-requests-20130727T1200Z-us-west-2-i-ae23fega.log"),
        ("flask-requests", NOON, None, ".log", "flask-requests-20130727T1200Z.log"),
        ("db", utc(2013, 1, 2, 3, 4), None, ".log.json.gz", "db-20130102T0304Z.log.json.gz"),
        ("db", utc(2013, 12, 31, 23, 59), "x", ".log", "db-20131231T2359Z-x.log"),
        # an aware non-UTC timestamp is written in UTC
        ("db", datetime.datetime(2013, 7, 27, 14, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
         None, ".log", "db-20130727T1200Z.log"),
        # a naive timestamp is taken as UTC
        ("db", datetime.datetime(2013, 7, 27, 12, 0), None, ".log", "db-20130727T1200Z.log"),
    ],
)
def test_unparse_filename(prefix, timestamp, suffix, extension, name):
    assert unparse_filename(prefix, timestamp, suffix=suffix, extension=extension) == name


@pytest.mark.parametrize(
    "name",
    [
        "flask-requests-20130727T1200Z-us-west-2-i-ae23fega.log",
        "flask-requests-20130727T1200Z.log",
        "a-b-c-20131231T2359Z-d-e.log.json.gz",
        "x-20000229T0000Z.log",
        "x-99991231T2359Z.log",
        "x-10000101T0000Z.log",
    ],
)
def test_unparse_round_trips_parse(name):
    logfile = parse_filename(name)
    unparsed = unparse_filename(logfile.prefix, logfile.timestamp, suffix=logfile.suffix, extension=logfile.extension)
    assert unparsed == name
    assert parse_filename(unparsed) == logfile


def test_unparse_writes_extended_names_in_basic_form():
    logfile = parse_filename("flask-2013-07-27T12:00Z-s.log")
    unparsed = unparse_filename(logfile.prefix, logfile.timestamp, suffix=logfile.suffix, extension=logfile.extension)
    assert unparsed == "flask-20130727T1200Z-s.log"


# years before 1000 stay four digits (glibc's strftime('%Y') would not zero-pad them)
@pytest.mark.parametrize("name", ["x-09990102T0304Z.log", "x-00010101T0000Z.log", "x-00991231T2359Z-s.log"])
def test_unparse_round_trips_years_before_1000(name):
    logfile = parse_filename(name)
    assert logfile is not None  # the parser accepts these years
    unparsed = unparse_filename(logfile.prefix, logfile.timestamp, suffix=logfile.suffix, extension=logfile.extension)
    assert unparsed == name


# -- group_filenames ----------------------------------------------------------

def test_group_filenames_groups_by_stream_sorted_by_time():
    names = [
        "flask-20130727T1300Z-a.log",
        "messages",
        "flask-20130727T1200Z-a.log",
        "flask-20130727T1100Z.log",
        "flask-20130727T1200Z-b.log",
        "flask-20130727T1000Z-a.log.json",
        ".flask-20130727T0900Z-a.log",
        "haproxy-20130727T0100Z-a.log",
        "haproxy-20130727T0000Z-a.log",
        "flask-20131301T1200Z-a.log",
    ]
    groups = group_filenames(names)
    assert {key: [logfile.filename for logfile in group] for key, group in groups.items()} == {
        ("flask", "a", ".log"): ["flask-20130727T1200Z-a.log", "flask-20130727T1300Z-a.log"],
        ("flask", None, ".log"): ["flask-20130727T1100Z.log"],
        ("flask", "b", ".log"): ["flask-20130727T1200Z-b.log"],
        ("flask", "a", ".log.json"): ["flask-20130727T1000Z-a.log.json"],
        ("haproxy", "a", ".log"): ["haproxy-20130727T0000Z-a.log", "haproxy-20130727T0100Z-a.log"],
    }


@pytest.mark.parametrize(
    "names",
    [
        [],
        ["messages"],
        ["messages", ".hidden", "20130727T1200Z-x.log", "flask-20130727T1200Z-x"],
    ],
)
def test_group_filenames_without_log_files_is_empty(names):
    assert group_filenames(names) == {}


def test_group_filenames_sorts_basic_and_extended_forms_by_time():
    names = ["db-2013-07-27T12:00Z.log", "db-20130727T1100Z.log", "db-2013-07-27T10:00Z.log"]
    (group,) = group_filenames(names).values()
    assert [logfile.filename for logfile in group] == [
        "db-2013-07-27T10:00Z.log", "db-20130727T1100Z.log", "db-2013-07-27T12:00Z.log",
    ]


def test_group_filenames_accepts_any_iterable():
    groups = group_filenames(iter(["db-20130727T1200Z.log"]))
    assert list(groups) == [("db", None, ".log")]


# -- LogFile.sort_key -------------------------------------------------------

@pytest.mark.parametrize(
    "names",
    [
        ["flask-20130727T1200Z.log", "flask-20130727T1200Z-a.log"],
        ["flask-20130727T1200Z-a.log", "flask-20130727T1200Z.log"],
        ["flask-20130727T1200Z.log", "flask-20130727T1200Z-a.log", "flask-20130727T1200Z.log.json"],
    ],
)
def test_keyfunc_sorts_none_and_str_suffixes_without_error(names):
    logfiles = [parse_filename(name) for name in names]
    ordered = sorted(logfiles, key=LogFile.sort_key)
    assert sorted(ordered, key=LogFile.sort_key) == ordered
    assert {logfile.filename for logfile in ordered} == set(names)
    # the un-suffixed file sorts before the suffixed one of the same hour
    assert ordered[0].suffix is None


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        # by prefix first
        (["zz-20130101T0000Z.log", "aa-20131231T2359Z.log"],
         ["aa-20131231T2359Z.log", "zz-20130101T0000Z.log"]),
        # then by time
        (["db-20130727T1300Z.log", "db-20130727T1200Z.log", "db-20130727T1159Z.log"],
         ["db-20130727T1159Z.log", "db-20130727T1200Z.log", "db-20130727T1300Z.log"]),
        # by time, not by the text of the name
        (["db-2013-07-27T13:00Z.log", "db-20130727T1200Z.log"],
         ["db-20130727T1200Z.log", "db-2013-07-27T13:00Z.log"]),
        # then by suffix, then extension
        (["db-20130727T1200Z-b.log", "db-20130727T1200Z-a.log.json", "db-20130727T1200Z-a.log"],
         ["db-20130727T1200Z-a.log", "db-20130727T1200Z-a.log.json", "db-20130727T1200Z-b.log"]),
    ],
)
def test_keyfunc_order(names, expected):
    ordered = sorted((parse_filename(name) for name in names), key=LogFile.sort_key)
    assert [logfile.filename for logfile in ordered] == expected


def test_keyfunc_distinguishes_names_that_differ_only_in_timestamp_form():
    basic = parse_filename("db-20130727T1200Z.log")
    extended = parse_filename("db-2013-07-27T12:00Z.log")
    assert basic.sort_key() != extended.sort_key()
