"""Which files are finished (logjam.compress) or pending upload (logjam.upload),
and the duplicate names an archived file may take. All pure."""

from __future__ import annotations

import datetime

import pytest

from logjam.archive import duplicate_timestamp_names
from logjam.parse import LogFile, parse_filename
from logjam.selection import (
    ONE_HOUR_PLUS,
    select_pending,
    select_superseded_by_new_file,
    select_superseded_by_timestamp,
    yield_old_logfiles,
)

UTC = datetime.timezone.utc
SUFFIX = "us-west-2-i-ae23fega"
NOW = datetime.datetime(2013, 7, 27, 13, 36, tzinfo=UTC)
MICROSECOND = datetime.timedelta(microseconds=1)
MINUTE = datetime.timedelta(minutes=1)


def utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def logfiles(*names: str):
    return [parse_filename(name) for name in names]


def finished(names, now=NOW) -> list[str]:
    return [logfile.filename for logfile in yield_old_logfiles(names, now)]


# -- the example ----------------------------------------------------------

def test_spec_example():
    names = [
        f"flask-requests-20130727T1300Z-{SUFFIX}.log",
        f"flask-requests-20130727T1200Z-{SUFFIX}.log",
        f"haproxy-20130727T0000Z-{SUFFIX}.log",
        f"haproxy-20130727T0100Z-{SUFFIX}.log",
        "messages",
    ]
    assert finished(names) == [
        f"flask-requests-20130727T1200Z-{SUFFIX}.log",
        f"haproxy-20130727T0000Z-{SUFFIX}.log",
        f"haproxy-20130727T0100Z-{SUFFIX}.log",
    ]


def test_yield_old_logfiles_is_an_iterator_over_logfiles():
    result = yield_old_logfiles([f"haproxy-20130727T0000Z-{SUFFIX}.log"], NOW)
    assert iter(result) is result
    assert list(result) == logfiles(f"haproxy-20130727T0000Z-{SUFFIX}.log")


# -- the 1 h 5 min boundary -------------------------------------------------------

@pytest.mark.parametrize(
    ("age", "is_finished"),
    [
        (datetime.timedelta(0), False),
        (MINUTE, False),
        (datetime.timedelta(hours=1), False),
        (ONE_HOUR_PLUS - MINUTE, False),
        (ONE_HOUR_PLUS - MICROSECOND, False),
        (datetime.timedelta(hours=1, minutes=5), False),  # exactly 1 h 5 min: not yet
        (ONE_HOUR_PLUS + MICROSECOND, True),
        (ONE_HOUR_PLUS + datetime.timedelta(seconds=1), True),
        (ONE_HOUR_PLUS + MINUTE, True),
        (datetime.timedelta(hours=2), True),
        (datetime.timedelta(days=400), True),
    ],
)
def test_timestamp_boundary(age, is_finished):
    name = "db-20130727T1200Z.log"
    now = utc(2013, 7, 27, 12, 0) + age
    assert finished([name], now) == ([name] if is_finished else [])
    selected = select_superseded_by_timestamp(logfiles(name), now)
    assert [logfile.filename for logfile in selected] == ([name] if is_finished else [])


def test_one_hour_plus_is_one_hour_five_minutes():
    assert ONE_HOUR_PLUS == datetime.timedelta(hours=1, minutes=5)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2013, 7, 27, 13, 5), []),
        (utc(2013, 7, 27, 13, 5) + MICROSECOND, ["db-20130727T1200Z.log"]),
        (utc(2013, 7, 27, 13, 6), ["db-20130727T1200Z.log"]),
    ],
)
def test_select_superseded_by_timestamp(now, expected):
    selected = select_superseded_by_timestamp(logfiles("db-20130727T1200Z.log"), now)
    assert [logfile.filename for logfile in selected] == expected


# -- superseded by a newer file -------------------------------------------------

@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], []),
        (["db-20130727T1300Z.log"], []),
        (["db-20130727T1300Z.log", "db-20130727T1200Z.log"], ["db-20130727T1200Z.log"]),
        (["db-20130727T1100Z.log", "db-20130727T1300Z.log", "db-20130727T1200Z.log"],
         ["db-20130727T1100Z.log", "db-20130727T1200Z.log"]),
        # a newer minute supersedes too
        (["db-20130727T1200Z.log", "db-20130727T1201Z.log"], ["db-20130727T1200Z.log"]),
    ],
)
def test_select_superseded_by_new_file(names, expected):
    selected = select_superseded_by_new_file(logfiles(*names))
    assert [logfile.filename for logfile in selected] == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        # a newer file of the same stream supersedes, however recent both are
        (["db-20130727T1335Z.log", "db-20130727T1336Z.log"], ["db-20130727T1335Z.log"]),
        (["db-20130727T1300Z.log", "db-20130727T1330Z.log"], ["db-20130727T1300Z.log"]),
        # a different suffix is a different stream
        (["db-20130727T1300Z-a.log", "db-20130727T1330Z-b.log"], []),
        # no suffix and a suffix are different streams
        (["db-20130727T1300Z.log", "db-20130727T1330Z-a.log"], []),
        (["db-20130727T1300Z-a.log", "db-20130727T1330Z.log"], []),
        # a different extension is a different stream
        (["db-20130727T1300Z.log", "db-20130727T1330Z.log.json"], []),
        # a different prefix is a different stream
        (["db-20130727T1300Z.log", "dbx-20130727T1330Z.log"], []),
        (["db-20130727T1300Z.log", "db-x-20130727T1330Z.log"], []),
        # streams are judged separately
        (["db-20130727T1300Z-a.log", "db-20130727T1330Z-a.log",
          "db-20130727T1300Z-b.log", "db-20130727T1330Z-b.log"],
         ["db-20130727T1300Z-a.log", "db-20130727T1300Z-b.log"]),
        # extended and basic forms of the same stream supersede one another
        (["db-2013-07-27T13:00Z.log", "db-20130727T1330Z.log"], ["db-2013-07-27T13:00Z.log"]),
    ],
)
def test_streams(names, expected):
    assert finished(names) == expected


# -- future-stamped files --------------------------------------------------------

@pytest.mark.parametrize(
    ("names", "expected"),
    [
        # a future file is never finished
        (["db-20130727T1337Z.log"], []),
        (["db-20130727T1400Z.log"], []),
        (["db-20990101T0000Z.log"], []),
        # ...and supersedes nothing
        (["db-20130727T1300Z.log", "db-20130727T1400Z.log"], []),
        (["db-20130727T1336Z.log", "db-20130727T1337Z.log"], []),
        # a file stamped exactly now is current, not future: it supersedes
        (["db-20130727T1300Z.log", "db-20130727T1336Z.log"], ["db-20130727T1300Z.log"]),
        # an old file is still finished by its age beside a future one
        (["db-20130727T1200Z.log", "db-20130727T1400Z.log"], ["db-20130727T1200Z.log"]),
        # the newest current file is not superseded by a future one
        (["db-20130727T1100Z.log", "db-20130727T1300Z.log", "db-20130727T1500Z.log"],
         ["db-20130727T1100Z.log"]),
    ],
)
def test_future_files(names, expected):
    assert finished(names) == expected


# -- what is not a log file --------------------------------------------------------

@pytest.mark.parametrize(
    "names",
    [
        [],
        ["messages"],
        [".db-20130727T0000Z.log"],  # hidden: a temporary file
        ["db-20130727T0000Z"],  # no extension
        ["20130727T0000Z-x.log"],  # no prefix
        ["db-20131301T0000Z.log"],  # month 13
        ["archive", ".logjam-compress.lock"],
    ],
)
def test_non_log_names_are_never_selected(names):
    assert finished(names, utc(2099, 1, 1)) == []


# -- ordering -----------------------------------------------------------------------

def test_output_is_sorted_by_sort_key():
    names = [
        "zz-20130727T0000Z.log",
        "db-20130727T1000Z-b.log",
        "db-20130727T1000Z.log",
        "db-20130727T0900Z-a.log",
        "db-20130727T1000Z-a.log.json",
        "aa-20130727T1200Z.log",
        "db-20130727T1000Z-a.log",
        "aa-20130727T1300Z.log",
    ]
    result = list(yield_old_logfiles(names, NOW))
    assert result == sorted(result, key=LogFile.sort_key)
    assert [logfile.filename for logfile in result] == [
        "aa-20130727T1200Z.log",
        "db-20130727T0900Z-a.log",
        "db-20130727T1000Z.log",
        "db-20130727T1000Z-a.log",
        "db-20130727T1000Z-a.log.json",
        "db-20130727T1000Z-b.log",
        "zz-20130727T0000Z.log",
    ]


def test_each_file_is_yielded_once():
    # superseded by a newer file and by its age at once
    names = ["db-20130727T0000Z.log", "db-20130727T0100Z.log", "db-20130727T1300Z.log"]
    assert finished(names) == ["db-20130727T0000Z.log", "db-20130727T0100Z.log"]


def test_names_are_read_once():
    # a one-shot iterator is enough (os.listdir returns a list, but a generator must work)
    names = (name for name in ["db-20130727T1200Z.log", "db-20130727T1300Z.log"])
    assert finished(names) == ["db-20130727T1200Z.log"]


# -- duplicate names in the archive ------------------------------------------------

DUPLICATE = "-logjam-compress-duplicate-timestamp"


@pytest.mark.parametrize(
    ("name", "first", "second", "last"),
    [
        ("db-20130727T1200Z.log.gz",
         f"db{DUPLICATE}-20130727T1200Z.log.gz",
         f"db{DUPLICATE}-01-20130727T1200Z.log.gz",
         f"db{DUPLICATE}-24-20130727T1200Z.log.gz"),
        (f"flask-requests-20130727T1200Z-{SUFFIX}.log.gz",
         f"flask-requests{DUPLICATE}-20130727T1200Z-{SUFFIX}.log.gz",
         f"flask-requests{DUPLICATE}-01-20130727T1200Z-{SUFFIX}.log.gz",
         f"flask-requests{DUPLICATE}-24-20130727T1200Z-{SUFFIX}.log.gz"),
        ("db-20130727T1200Z-s.log.json.zst",
         f"db{DUPLICATE}-20130727T1200Z-s.log.json.zst",
         f"db{DUPLICATE}-01-20130727T1200Z-s.log.json.zst",
         f"db{DUPLICATE}-24-20130727T1200Z-s.log.json.zst"),
    ],
)
def test_duplicate_timestamp_names(name, first, second, last):
    names = list(duplicate_timestamp_names(name))
    assert len(names) == 25
    assert len(set(names)) == 25
    assert names[0] == first
    assert names[1] == second
    assert names[-1] == last
    assert name not in names


def test_duplicate_timestamp_names_are_numbered_01_to_24():
    names = list(duplicate_timestamp_names("db-20130727T1200Z-s.log.gz"))
    assert names == [f"db{DUPLICATE}-20130727T1200Z-s.log.gz"] + [
        f"db{DUPLICATE}-{number:02d}-20130727T1200Z-s.log.gz" for number in range(1, 25)
    ]


@pytest.mark.parametrize(
    "name",
    ["db-20130727T1200Z-s.log.gz", "flask-requests-2013-07-27T12:00Z.log.gz"],
)
def test_duplicate_names_keep_the_stream_and_hour(name):
    original = parse_filename(name)
    for duplicate in duplicate_timestamp_names(name):
        logfile = parse_filename(duplicate)
        assert logfile is not None, duplicate
        assert logfile.prefix.startswith(original.prefix + DUPLICATE)
        assert logfile.timestamp == original.timestamp
        assert logfile.suffix == original.suffix
        assert logfile.extension == original.extension


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        (0, f"db{DUPLICATE}-20130727T1200Z-s.log.gz"),
        (1, f"db{DUPLICATE}-01-20130727T1200Z-s.log.gz"),
        (2, f"db{DUPLICATE}-02-20130727T1200Z-s.log.gz"),
        (10, f"db{DUPLICATE}-10-20130727T1200Z-s.log.gz"),
        (24, f"db{DUPLICATE}-24-20130727T1200Z-s.log.gz"),
    ],
)
def test_duplicate_timestamp_names_come_in_the_order_compression_tries_them(taken, expected):
    # compression takes the first free name: names[taken] with `taken` names already in use
    assert list(duplicate_timestamp_names("db-20130727T1200Z-s.log.gz"))[taken] == expected


def test_duplicate_timestamp_names_of_a_name_that_is_no_log_file_are_none():
    assert list(duplicate_timestamp_names("notes.txt")) == []


# -- select_pending (logjam.selection) ---------------------------------------------

@pytest.mark.parametrize(
    ("archive", "uploaded", "expected"),
    [
        ([], [], []),
        (["db-20130727T1200Z.log.gz"], [], ["db-20130727T1200Z.log.gz"]),
        (["db-20130727T1200Z.log.gz"], ["db-20130727T1200Z.log.gz"], []),
        # the ledger may hold names no longer in the archive
        (["db-20130727T1200Z.log.gz"], ["db-20130727T1100Z.log.gz", "gone"],
         ["db-20130727T1200Z.log.gz"]),
        # non-log names are skipped: the ledger directory, the lock, temporary files, others
        ([".uploaded", ".logjam-upload.lock", ".db-20130727T1200Z.log.gz.tmp", "README", "messages",
          "db-20130727T1200Z.log.gz"], [], ["db-20130727T1200Z.log.gz"]),
        # sorted by LogFile.sort_key: prefix, then time, then suffix, extension
        (["db-20130727T1300Z.log.gz", "aa-20130727T1400Z.log.gz", "db-20130727T1200Z-b.log.gz",
          "db-20130727T1200Z.log.gz", "db-20130727T1200Z-a.log.gz"],
         ["db-20130727T1200Z-b.log.gz"],
         ["aa-20130727T1400Z.log.gz", "db-20130727T1200Z.log.gz", "db-20130727T1200Z-a.log.gz",
          "db-20130727T1300Z.log.gz"]),
        # a compress duplicate is its own file to upload
        (["db-20130727T1200Z.log.gz", f"db{DUPLICATE}-20130727T1200Z.log.gz"],
         ["db-20130727T1200Z.log.gz"], [f"db{DUPLICATE}-20130727T1200Z.log.gz"]),
    ],
)
def test_select_pending(archive, uploaded, expected):
    pending = select_pending(archive, uploaded=uploaded)
    assert [logfile.filename for logfile in pending] == expected
    assert pending == sorted(pending, key=LogFile.sort_key)


def test_select_pending_accepts_iterators():
    pending = select_pending(iter(["db-20130727T1200Z.log.gz", "db-20130727T1300Z.log.gz"]),
                             uploaded=iter(["db-20130727T1300Z.log.gz"]))
    assert [logfile.filename for logfile in pending] == ["db-20130727T1200Z.log.gz"]
