"""HourlyFileHandler: names logjam parses, a clean switch at each UTC hour."""

from __future__ import annotations

import datetime
import logging
import os
import threading

import pytest

from logjam.handlers import HourlyFileHandler
from logjam.parse import parse_filename

UTC = datetime.timezone.utc


def at(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0,
       microsecond: int = 0, tz: datetime.tzinfo = UTC) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tz)


class FakeClock:
    """An injectable clock: tests move time by assigning .now (no sleeps)."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> datetime.datetime:
        self.calls += 1
        return self.now


def make_record(message: str) -> logging.LogRecord:
    return logging.LogRecord("test", logging.INFO, __file__, 1, message, None, None)


@pytest.fixture
def handlers():
    """Closes every handler a test makes, even when the test fails."""
    made: list[HourlyFileHandler] = []

    def make(*args, **kwargs) -> HourlyFileHandler:
        handler = HourlyFileHandler(*args, **kwargs)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


def read(path: str | os.PathLike[str]) -> list[str]:
    with open(path, encoding="utf-8") as file:
        return file.read().splitlines()


# -- names ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("prefix", "suffix", "extension", "expected"),
    [
        ("app", None, ".log", "app-20130727T1200Z.log"),
        (
            "flask-requests",
            "us-west-2-i-ae23fega",
            ".log",
            "flask-requests-20130727T1200Z-us-west-2-i-ae23fega.log",
        ),
        ("worker", "3", ".log.json", "worker-20130727T1200Z-3.log.json"),
        ("my.app", None, ".txt", "my.app-20130727T1200Z.txt"),
    ],
)
def test_name_format(tmp_path, handlers, prefix, suffix, extension, expected):
    clock = FakeClock(at(2013, 7, 27, 12, 34, 56, 789))
    handler = handlers(tmp_path, prefix, suffix=suffix, extension=extension, utc_now=clock)
    assert handler.baseFilename == os.path.join(str(tmp_path), expected)
    handler.emit(make_record("hello"))
    handler.flush()
    assert os.listdir(tmp_path) == [expected]
    assert read(tmp_path / expected) == ["hello"]


@pytest.mark.parametrize(
    ("prefix", "suffix", "extension"),
    [
        ("app", None, ".log"),
        ("flask-requests", "us-west-2-i-ae23fega", ".log"),
        ("a-b-c", "x-20130727T1200Z", ".log.json"),  # a timestamp-shaped suffix is fine
        ("my.app", "1", ".log"),
    ],
)
def test_names_parse_back(tmp_path, handlers, prefix, suffix, extension):
    now = at(2013, 12, 31, 23, 59, 59)
    handler = handlers(tmp_path, prefix, suffix=suffix, extension=extension,
                       utc_now=FakeClock(now), delay=True)
    logfile = parse_filename(os.path.basename(handler.baseFilename))
    assert logfile is not None
    assert logfile.prefix == prefix
    assert logfile.suffix == suffix
    assert logfile.extension == extension
    assert logfile.timestamp == at(2013, 12, 31, 23)
    assert logfile.timestamp.utcoffset() == datetime.timedelta(0)


def test_aware_non_utc_clock_is_converted_to_utc(tmp_path, handlers):
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    clock = FakeClock(at(2013, 7, 28, 1, 30, tz=plus_two))  # 2013-07-27 23:30 UTC
    handler = handlers(tmp_path, "app", utc_now=clock, delay=True)
    assert os.path.basename(handler.baseFilename) == "app-20130727T2300Z.log"


def test_naive_clock_is_refused(tmp_path):
    with pytest.raises(ValueError, match="aware"):
        HourlyFileHandler(tmp_path, "app", utc_now=lambda: datetime.datetime(2013, 7, 27, 12))
    assert os.listdir(tmp_path) == []


def test_default_clock_is_utc_now(tmp_path, handlers):
    before = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    handler = handlers(tmp_path, "app", delay=True)
    after = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert handler.hour in (before, after)
    assert handler.hour.tzinfo is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": ""}, "prefix must not be empty"),
        ({"prefix": ".hidden"}, "must not start with '.'"),
        ({"prefix": "a/b"}, "must not contain '/'"),
        ({"prefix": "a\x00b"}, "must not contain '/' or NUL"),
        ({"prefix": "app-20130727T1200Z"}, "would not read back"),
        ({"prefix": "x" * 250}, "leaving no room"),
        ({"prefix": "x" * 194}, "213 bytes long, leaving no room for logjam-compress's extension and duplicate mark"),
        ({"prefix": "x" * 190, "suffix": "host"}, "leaving no room"),
        ({"prefix": 42}, "must be a str"),
        ({"suffix": ""}, "suffix must not be empty"),
        ({"suffix": "host.example.com"}, "suffix must not contain '.'"),
        ({"suffix": "a/b"}, "must not contain '/'"),
        ({"extension": "log"}, "extension must be a '.'"),
        ({"extension": "."}, "extension must be a '.'"),
        ({"extension": ""}, "extension must not be empty"),
        ({"extension": ".log/x"}, "must not contain '/'"),
    ],
)
def test_invalid_parts_are_refused(tmp_path, kwargs, message):
    arguments = {"prefix": "app", "suffix": None, "extension": ".log", **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        HourlyFileHandler(tmp_path, utc_now=FakeClock(at(2013, 7, 27, 12)), **arguments)
    assert os.listdir(tmp_path) == []


# -- switching hours ----------------------------------------------------------

def test_switches_file_when_the_hour_changes(tmp_path, handlers):
    clock = FakeClock(at(2013, 7, 27, 12, 0))
    handler = handlers(tmp_path, "app", suffix="i-1", utc_now=clock)
    handler.emit(make_record("first"))
    clock.now = at(2013, 7, 27, 12, 59, 59, 999999)
    handler.emit(make_record("last of twelve"))
    old_stream = handler.stream
    assert not old_stream.closed

    clock.now = at(2013, 7, 27, 13, 0)
    handler.emit(make_record("first of thirteen"))

    assert old_stream.closed
    assert handler.stream is not old_stream and not handler.stream.closed
    assert handler.baseFilename == str(tmp_path / "app-20130727T1300Z-i-1.log")
    handler.flush()
    assert sorted(os.listdir(tmp_path)) == ["app-20130727T1200Z-i-1.log", "app-20130727T1300Z-i-1.log"]
    assert read(tmp_path / "app-20130727T1200Z-i-1.log") == ["first", "last of twelve"]
    assert read(tmp_path / "app-20130727T1300Z-i-1.log") == ["first of thirteen"]


def test_same_hour_keeps_the_same_stream(tmp_path, handlers):
    clock = FakeClock(at(2013, 7, 27, 12, 0))
    handler = handlers(tmp_path, "app", utc_now=clock)
    stream = handler.stream
    for minute in range(60):
        clock.now = at(2013, 7, 27, 12, minute, 30)
        handler.emit(make_record(f"minute {minute}"))
    assert handler.stream is stream
    handler.flush()
    assert os.listdir(tmp_path) == ["app-20130727T1200Z.log"]
    assert len(read(tmp_path / "app-20130727T1200Z.log")) == 60


def test_switch_across_year_end(tmp_path, handlers):
    clock = FakeClock(at(2013, 12, 31, 23, 59, 59))
    handler = handlers(tmp_path, "app", utc_now=clock)
    handler.emit(make_record("old year"))
    clock.now = at(2014, 1, 1, 0, 0, 0)
    handler.emit(make_record("new year"))
    handler.flush()
    assert sorted(os.listdir(tmp_path)) == ["app-20131231T2300Z.log", "app-20140101T0000Z.log"]


def test_no_file_for_an_hour_without_records(tmp_path, handlers):
    clock = FakeClock(at(2013, 7, 27, 12, 10))
    handler = handlers(tmp_path, "app", utc_now=clock)
    handler.emit(make_record("twelve"))
    clock.now = at(2013, 7, 27, 15, 10)  # 13:00 and 14:00 had no records
    handler.emit(make_record("fifteen"))
    handler.flush()
    assert sorted(os.listdir(tmp_path)) == ["app-20130727T1200Z.log", "app-20130727T1500Z.log"]


def test_delay_opens_nothing_until_the_first_record(tmp_path, handlers):
    handler = handlers(tmp_path, "app", utc_now=FakeClock(at(2013, 7, 27, 12)), delay=True)
    assert os.listdir(tmp_path) == []
    handler.emit(make_record("now"))
    assert os.listdir(tmp_path) == ["app-20130727T1200Z.log"]


def test_restart_within_the_hour_appends(tmp_path, handlers):
    clock = FakeClock(at(2013, 7, 27, 12, 10))
    first = handlers(tmp_path, "app", utc_now=clock)
    first.emit(make_record("before restart"))
    first.close()
    second = handlers(tmp_path, "app", utc_now=clock)
    second.emit(make_record("after restart"))
    second.flush()
    assert read(tmp_path / "app-20130727T1200Z.log") == ["before restart", "after restart"]


def test_close_closes_the_current_file(tmp_path, handlers):
    clock = FakeClock(at(2013, 7, 27, 12))
    handler = handlers(tmp_path, "app", utc_now=clock)
    handler.emit(make_record("x"))
    stream = handler.stream
    handler.close()
    assert stream.closed and handler.stream is None


def test_clock_errors_go_to_handle_error(tmp_path, handlers, monkeypatch):
    clock = FakeClock(at(2013, 7, 27, 12))
    handler = handlers(tmp_path, "app", utc_now=clock)
    errors: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", errors.append)
    clock.now = datetime.datetime(2013, 7, 27, 13)  # naive
    record = make_record("lost")
    handler.emit(record)
    assert errors == [record]


def test_works_through_a_logger_with_a_formatter(tmp_path, handlers):
    clock = FakeClock(at(2013, 7, 27, 12))
    handler = handlers(tmp_path, "app", utc_now=clock)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("logjam.tests.handlers")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("one %s", "arg")
        clock.now = at(2013, 7, 27, 13, 0, 1)
        logger.warning("two")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    handler.flush()
    assert read(tmp_path / "app-20130727T1200Z.log") == ["INFO one arg"]
    assert read(tmp_path / "app-20130727T1300Z.log") == ["WARNING two"]


def test_switch_is_thread_safe(tmp_path, handlers):
    """The clock flips to the next hour after SWITCH_AT calls: exactly that many
    records land in the first file, the rest in the second, none lost or torn."""
    threads_count, per_thread, switch_at = 8, 250, 700
    lock = threading.Lock()
    calls = 0

    def clock() -> datetime.datetime:
        nonlocal calls
        with lock:
            calls += 1
            late = calls > switch_at + 1  # the constructor makes the first call
        return at(2013, 7, 27, 13 if late else 12, 0, 0)

    handler = handlers(tmp_path, "app", utc_now=clock)
    handler.setFormatter(logging.Formatter("%(message)s"))
    start = threading.Barrier(threads_count)

    def work(number: int) -> None:
        start.wait()
        for index in range(per_thread):
            handler.handle(make_record(f"t{number}-{index}-" + "x" * 200))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.flush()

    twelve = read(tmp_path / "app-20130727T1200Z.log")
    thirteen = read(tmp_path / "app-20130727T1300Z.log")
    assert len(twelve) == switch_at
    assert len(thirteen) == threads_count * per_thread - switch_at
    lines = twelve + thirteen
    assert len(set(lines)) == len(lines)
    assert all(line.endswith("x" * 200) and line.count("-") == 2 for line in lines)


# -- what logjam-compress makes of the files ---------------------------------

def test_compress_selects_the_earlier_hour_once_the_hour_rolled_over(tmp_path, handlers):
    compress = pytest.importorskip("logjam.compress", reason="logjam.compress has not landed yet")
    clock = FakeClock(at(2013, 7, 27, 12, 58))
    handler = handlers(tmp_path, "flask-requests", suffix="us-west-2-i-ae23fega", utc_now=clock)
    handler.emit(make_record("twelve"))

    # Still 12:59: the only file is the current one; nothing is finished.
    now = at(2013, 7, 27, 12, 59)
    assert list(compress.yield_old_logfiles(os.listdir(tmp_path), now)) == []

    clock.now = at(2013, 7, 27, 13, 0, 1)
    handler.emit(make_record("thirteen"))
    now = at(2013, 7, 27, 13, 0, 2)
    finished = list(compress.yield_old_logfiles(os.listdir(tmp_path), now))
    assert [logfile.filename for logfile in finished] == [
        "flask-requests-20130727T1200Z-us-west-2-i-ae23fega.log"
    ]
    # ... and the handler is no longer writing it.
    assert handler.baseFilename.endswith("flask-requests-20130727T1300Z-us-west-2-i-ae23fega.log")


def test_compress_selects_a_quiet_streams_file_after_the_grace_period(tmp_path, handlers):
    compress = pytest.importorskip("logjam.compress", reason="logjam.compress has not landed yet")
    handler = handlers(tmp_path, "app", utc_now=FakeClock(at(2013, 7, 27, 12, 30)))
    handler.emit(make_record("only record"))
    names = os.listdir(tmp_path)
    # No newer file ever appears; the 12:00 file is finished after 13:05.
    assert list(compress.yield_old_logfiles(names, at(2013, 7, 27, 13, 4))) == []
    finished = list(compress.yield_old_logfiles(names, at(2013, 7, 27, 13, 6)))
    assert [logfile.filename for logfile in finished] == ["app-20130727T1200Z.log"]


def test_the_longest_accepted_name_can_be_archived_even_as_a_duplicate(tmp_path):
    from logjam.archive import duplicate_timestamp_names
    from logjam.codecs import CODECS

    handler = HourlyFileHandler(tmp_path, "x" * 193, utc_now=FakeClock(at(2013, 7, 27, 12)), delay=True)
    name = os.path.basename(handler.baseFilename)
    assert len(name) == 212
    for codec in CODECS.values():
        final = name + codec.extension
        assert all(len(os.fsencode(candidate)) <= 255 for candidate in [final, *duplicate_timestamp_names(final)])
    handler.close()
