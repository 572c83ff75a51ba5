"""logjam.catalog: keys read back through the template, queries, listing plans, times."""

from __future__ import annotations

import datetime

import pytest

from logjam.catalog import KeyMatcher, Query, listing_prefixes, original_name, parse_time
from logjam.errors import UsageError
from logjam.parse import parse_filename
from logjam.template import KeyTemplate, upload_duplicate_filename

UTC = datetime.timezone.utc
NOW = datetime.datetime(2013, 8, 1, 1, 30, tzinfo=UTC)
PLAIN = "{prefix}/{year}/{month}/{day}/{filename}"


def at(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)


@pytest.mark.parametrize("name, original, duplicate", [
    ("db-20130727T1200Z.log.gz", "db-20130727T1200Z.log.gz", 0),
    ("db-20130727T1200Z-logjam-upload-duplicate-01.log.gz", "db-20130727T1200Z.log.gz", 1),
    ("db-20130727T1200Z-err-logjam-upload-duplicate-12.log.zst", "db-20130727T1200Z-err.log.zst", 12),
    ("db-2013-07-27T12:00Z-a-b-logjam-upload-duplicate-100.log.gz", "db-2013-07-27T12:00Z-a-b.log.gz", 100),
    ("db-20130727T1200Z-logjam-upload-duplicate.log.gz", "db-20130727T1200Z-logjam-upload-duplicate.log.gz", 0),
    ("README", None, None),
    (".db-20130727T1200Z.log.gz.logjam-tmp-1-ab", None, None),
])
def test_original_name(name, original, duplicate):
    found = original_name(name)
    if original is None:
        assert found is None
        return
    logfile, number = found
    assert (logfile.filename, number) == (original, duplicate)
    assert logfile == parse_filename(original)


def test_original_name_inverts_upload_duplicate_filename():
    for name in ("db-20130727T1200Z.log.gz", "db-20130727T1200Z-x-y.log.gz", "a-b-20130727T1200Z.log.json.gz"):
        logfile = parse_filename(name)
        for number in (1, 7, 99, 123):
            assert original_name(upload_duplicate_filename(logfile, number)) == (logfile, number)


@pytest.mark.parametrize("template, key, expected", [
    (PLAIN, "db/2013/07/27/db-20130727T1200Z.log.gz", ("db", "2013-07-27T12:00", None, None, 0)),
    (PLAIN, "db/2013/07/27/db-20130727T1200Z-err.log.gz", ("db", "2013-07-27T12:00", "err", None, 0)),
    (PLAIN, "db/2013/07/28/db-20130727T1200Z.log.gz", None),  # folder and name disagree
    (PLAIN, "web/2013/07/27/db-20130727T1200Z.log.gz", None),
    (PLAIN, "db/2013/07/27/notes.txt", None),
    (PLAIN, "db/2013/07/27/x/db-20130727T1200Z.log.gz", None),
    ("{hostname}/{prefix}/{year}/{month}/{day}/{filename}",
     "web-1/db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-02.log.gz",
     ("db", "2013-07-27T12:00", None, "web-1", 2)),
    # hyphens on both sides of a field: the file name settles where each ends
    ("{year}/{month}/{day}/{hostname}-{prefix}-{hour}/{filename}",
     "2013/07/27/a-b-my-db-12/my-db-20130727T1200Z-x.log.gz", ("my-db", "2013-07-27T12:00", "x", "a-b", 0)),
    ("{year}/{month}/{day}/{hostname}-{prefix}-{hour}/{filename}",
     "2013/07/27/a-b-my-db-13/my-db-20130727T1200Z-x.log.gz", None),
    ("{prefix}/{suffix}/{year}{month}{day}/{filename}", "db//20130727/db-20130727T1200Z.log.gz",
     ("db", "2013-07-27T12:00", None, None, 0)),
    ("{prefix}/{suffix}/{year}{month}{day}/{filename}", "db/err/20130727/db-20130727T1200Z.log.gz", None),
])
def test_key_matcher(template, key, expected):
    archived = KeyMatcher(template).match(key, 42)
    if expected is None:
        assert archived is None
        return
    prefix, hour, suffix, hostname, duplicate = expected
    assert (archived.logfile.prefix, archived.hour, archived.logfile.suffix, archived.hostname,
            archived.duplicate, archived.size) == (prefix, at(hour), suffix, hostname, duplicate, 42)


def test_key_matcher_reads_back_what_the_template_writes():
    template = KeyTemplate.parse("{hostname}/{prefix}/{year}/{month}/{day}/{hour}/{suffix}/{filename}")
    matcher = KeyMatcher(template.text)
    for name in ("db-20130727T1200Z.log.gz", "a-b-20131231T2300Z-c-d.log.zst", "db-2013-07-27T12:00Z.log.gz"):
        logfile = parse_filename(name)
        for hostname in ("h", "web-1.example.com"):
            archived = matcher.match(template.format(logfile, hostname=hostname), 1)
            assert (archived.logfile, archived.hostname, archived.duplicate) == (logfile, hostname, 0)
            dup = upload_duplicate_filename(logfile, 3)
            archived = matcher.match(template.format(logfile, hostname=hostname, filename=dup), 1)
            assert (archived.logfile, archived.name, archived.duplicate) == (logfile, dup, 3)


def test_order_is_hour_prefix_suffix_none_first_name_then_duplicates():
    matcher = KeyMatcher("{hostname}/" + PLAIN)
    keys = [
        "h1/db/2013/07/27/db-20130727T1300Z.log.gz",
        "h1/web/2013/07/27/web-20130727T1200Z.log.gz",
        "h2/db/2013/07/27/db-20130727T1200Z.log.gz",
        "h1/db/2013/07/27/db-20130727T1200Z-a.log.gz",
        "h1/db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz",
        "h1/db/2013/07/27/db-20130727T1200Z.log.gz",
        "h1/db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-02.log.gz",
    ]
    ordered = sorted((matcher.match(key, 1) for key in keys), key=lambda archived: archived.order())
    assert [archived.key for archived in ordered] == [
        "h1/db/2013/07/27/db-20130727T1200Z.log.gz",
        "h1/db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz",
        "h1/db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-02.log.gz",
        "h2/db/2013/07/27/db-20130727T1200Z.log.gz",
        "h1/db/2013/07/27/db-20130727T1200Z-a.log.gz",
        "h1/web/2013/07/27/web-20130727T1200Z.log.gz",
        "h1/db/2013/07/27/db-20130727T1300Z.log.gz",
    ]


@pytest.mark.parametrize("since, until, days", [
    ("2013-07-27T12:00", "2013-07-27T13:00", ["2013-07-27"]),
    ("2013-07-31T23:40", "2013-08-01T00:00", ["2013-07-31"]),  # until is exclusive
    ("2013-07-31T23:40", "2013-08-01T00:01", ["2013-07-31", "2013-08-01"]),
    ("2013-02-28T00:00", "2013-03-02T00:00", ["2013-02-28", "2013-03-01"]),
    ("2012-12-31T22:00", "2013-01-01T02:00", ["2012-12-31", "2013-01-01"]),
])
def test_days(since, until, days):
    assert [day.isoformat() for day in Query(at(since), at(until)).days()] == days


@pytest.mark.parametrize("since, until, hour, selected", [
    ("2013-07-27T12:00", "2013-07-27T14:00", "2013-07-27T12:00", True),
    ("2013-07-27T12:40", "2013-07-27T14:00", "2013-07-27T12:00", True),  # the file holds 12:40
    ("2013-07-27T12:00", "2013-07-27T14:00", "2013-07-27T14:00", False),
    ("2013-07-27T12:00", "2013-07-27T14:00", "2013-07-27T11:00", False),
    ("2013-07-27T12:00", "2013-07-27T14:00", "2013-07-27T13:59", True),
])
def test_query_range_is_on_the_files_hour(since, until, hour, selected):
    archived = KeyMatcher(PLAIN).match(f"db/{hour[:4]}/{hour[5:7]}/{hour[8:10]}/db-{at(hour):%Y%m%dT%H%MZ}.log.gz", 1)
    assert Query(at(since), at(until)).selects(archived) is selected


def test_query_filters():
    matcher = KeyMatcher("{hostname}/" + PLAIN)
    plain = matcher.match("h1/db/2013/07/27/db-20130727T1200Z.log.gz", 1)
    suffixed = matcher.match("h2/db/2013/07/27/db-20130727T1200Z-err.log.gz", 1)
    span = (at("2013-07-27T00:00"), at("2013-07-28T00:00"))
    assert Query(*span, suffixes=(None,)).selects(plain) and not Query(*span, suffixes=(None,)).selects(suffixed)
    assert Query(*span, suffixes=("err",)).selects(suffixed) and not Query(*span, suffixes=("err",)).selects(plain)
    assert Query(*span, hostnames=("h2",)).selects(suffixed) and not Query(*span, hostnames=("h2",)).selects(plain)
    assert not Query(*span, prefixes=("web",)).selects(plain)


def fake_levels(keys, calls):
    def levels(prefix):
        calls.append(prefix)
        return sorted({prefix + key[len(prefix):].split("/")[0] + "/"
                       for key in keys if key.startswith(prefix) and "/" in key[len(prefix):]})
    return levels


DAY = (at("2013-07-27T00:00"), at("2013-07-28T00:00"))
SUFFIXED = "{prefix}/{suffix}/{year}/{month}/{day}/{filename}"  # the README's example
ACROSS_MONTHS = (at("2013-07-31T22:00"), at("2013-08-01T02:00"))
HOSTS = ["h1/db/2013/07/27/x", "h2/db/2013/07/27/x", "h2/web/2013/07/27/x", "h3/web/2013/07/26/x"]


@pytest.mark.parametrize("template, query, keys, prefixes, levels_listed", [
    (PLAIN, Query(*DAY, prefixes=("db",)), [], ["db/2013/07/27/db-"], []),
    (PLAIN, Query(*ACROSS_MONTHS, prefixes=("db", "web")), [],
     ["db/2013/07/31/db-", "db/2013/08/01/db-", "web/2013/07/31/web-", "web/2013/08/01/web-"], []),
    # {prefix} not given: the prefixes are read off one delimiter listing, once
    (PLAIN, Query(*ACROSS_MONTHS), ["db/2013/07/31/x", "web/2013/08/01/x", "top.txt"],
     ["db/2013/07/31/", "db/2013/08/01/", "web/2013/07/31/", "web/2013/08/01/"], [""]),
    ("{year}/{month}/{day}/{hostname}/{filename}", Query(*DAY), [], ["2013/07/27/"], []),
    ("{year}/{month}/{day}/{hostname}/{filename}", Query(*DAY, hostnames=("h1", "h2")), [],
     ["2013/07/27/h1/", "2013/07/27/h2/"], []),
    ("{hostname}/" + PLAIN, Query(*DAY, prefixes=("db",)), HOSTS,
     ["h1/db/2013/07/27/db-", "h2/db/2013/07/27/db-", "h3/db/2013/07/27/db-"], [""]),
    ("{hostname}/" + PLAIN, Query(*DAY), HOSTS,
     ["h1/db/2013/07/27/", "h2/db/2013/07/27/", "h2/web/2013/07/27/", "h3/web/2013/07/27/"],
     ["", "h1/", "h2/", "h3/"]),
    ("{hostname}/" + PLAIN, Query(*DAY, hostnames=("h2",), prefixes=("db",)), HOSTS, ["h2/db/2013/07/27/db-"], []),
    # a date field in the level being discovered: only that day's folders match
    ("logs/{hostname}-{year}{month}{day}/{filename}", Query(*DAY), ["logs/a-20130727/x", "logs/a-20130726/x",
                                                                    "logs/b-c-20130727/x"],
     ["logs/a-20130727/", "logs/b-c-20130727/"], ["logs/"]),
    # an empty whole-segment {suffix}: collapsed keys (since 2026-11) and old ones ("db//") both found
    (SUFFIXED, Query(*DAY, suffixes=(None, "err")), ["db//2013/07/27/x"],
     ["db//2013/07/27/", "db/2013/07/27/", "db/err/2013/07/27/"], ["", "db/"]),
    (SUFFIXED, Query(*DAY), ["web/2013/07/27/x", "web/err/2013/07/27/x", "web//2013/07/27/x", "web/2012/01/01/x"],
     ["web//2013/07/27/", "web/2013/07/27/", "web/err/2013/07/27/"], ["", "web/", "web/2012/", "web/2013/"]),
    # a suffix that looks like the year is one when the level below it says so
    (SUFFIXED, Query(*DAY), ["web/2013/2013/07/27/x", "web/2013/07/27/x"],
     ["web/2013/07/27/", "web/2013/2013/07/27/"], ["", "web/", "web/2013/"]),
    # --suffix '': the old layout's "web//" is listed only where "web/" holds it
    (SUFFIXED, Query(*DAY, prefixes=("web",), suffixes=(None,)), [], ["web/2013/07/27/web-"], ["web/"]),
    (SUFFIXED, Query(*ACROSS_MONTHS, prefixes=("web",), suffixes=(None,)), ["web//2013/07/31/x"],
     ["web//2013/07/31/web-", "web//2013/08/01/web-", "web/2013/07/31/web-", "web/2013/08/01/web-"], ["web/"]),
    (SUFFIXED, Query(*DAY, prefixes=("web",), suffixes=("err",)), [], ["web/err/2013/07/27/web-"], []),
    ("{hostname}/" + SUFFIXED, Query(*DAY, prefixes=("web",)), ["h1/web/2013/07/27/x", "h1/web/e/2013/07/27/x"],
     ["h1/web/2013/07/27/web-", "h1/web/e/2013/07/27/web-"],
     ["", "h1/web/", "h1/web/2013/"]),
    ("{prefix}-{year}{month}{day}{filename}", Query(*DAY), [], [""], []),  # no level to list by
])
def test_listing_prefixes(template, query, keys, prefixes, levels_listed):
    calls = []
    assert listing_prefixes(template, query, fake_levels(keys, calls)) == prefixes
    assert sorted(set(calls)) == levels_listed


def test_listing_prefixes_collapsed_for_a_store_without_empty_segments():
    # file://: "web//2013/" is the folder "web/2013/": one listing, no "//" in the keys
    query = Query(*DAY, prefixes=("web",), suffixes=(None, "err"))
    assert listing_prefixes(SUFFIXED, query, lambda prefix: [], collapse=True) == [
        "web/2013/07/27/web-", "web/err/2013/07/27/web-"]


def test_listing_prefixes_never_nest():
    query = Query(*DAY, prefixes=("db", "db-x"))
    assert listing_prefixes(PLAIN, query, lambda prefix: []) == ["db-x/2013/07/27/db-x-", "db/2013/07/27/db-"]
    assert listing_prefixes("{year}/{month}/{day}/{filename}", query, lambda prefix: []) == ["2013/07/27/db-"]


@pytest.mark.parametrize("text, expected", [
    ("2013-07-27T12:00Z", "2013-07-27T12:00"),
    ("2013-07-27T12Z", "2013-07-27T12:00"),
    ("2013-07-27", "2013-07-27T00:00"),
    ("20130727T1200Z", "2013-07-27T12:00"),
    ("2013-07-27T14:00+02:00", "2013-07-27T12:00"),
    ("now", "2013-08-01T01:30"),
    ("90m", "2013-08-01T00:00"),
    ("6h", "2013-07-31T19:30"),
    ("2d", "2013-07-30T01:30"),
])
def test_parse_time(text, expected):
    assert parse_time(text, now=NOW, option="--since") == at(expected)


@pytest.mark.parametrize("text", ["", "yesterday", "2013-07-27T12:00", "12h ago", "-5h", "2013-13-01", "h",
                                  "2013-07-27 12:00", "2013-07-27 12", "20130727T1200"])
def test_parse_time_refuses(text):
    # every time of day without Z or an offset, whatever separates it from the date
    with pytest.raises(UsageError, match="^--until .*not a UTC time"):
        parse_time(text, now=NOW, option="--until")


@pytest.mark.parametrize("text", ["99999999d", "9" * 30 + "w", "0001-01-01", "9999-12-31", "9999-12-31T23:00-05:00"])
def test_parse_time_out_of_range(text):
    with pytest.raises(UsageError, match=f"^--since '{text}': out of range"):
        parse_time(text, now=NOW, option="--since")
