"""Destination keys: templates (logjam.template), candidate keys (logjam.upload),
the uploader registry and URI parsing (logjam.backends), S3 part sizes."""

from __future__ import annotations

import argparse
import math
import os

import pytest

from logjam.backends import UPLOADERS, Backend, get_uploader
from logjam.backends.file import FileUploader, _key_components
from logjam.backends.s3_multipart import MAX_PARTS, PART_SIZE, part_size_for
from logjam.errors import FileError, UsageError
from logjam.parse import parse_filename
from logjam.template import (
    FIELDS,
    MAX_KEY_BYTES,
    REQUIRED_FIELDS,
    KeyTemplate,
    collapse_key,
    key_problem,
    upload_duplicate_filename,
)
from logjam.upload import MAX_UPLOAD_DUPLICATES, candidate_keys

DEFAULT = "{prefix}/{year}/{month}/{day}/{filename}"
MiB = 1024 * 1024


# -- KeyTemplate.parse: accepted ---------------------------------------------------

@pytest.mark.parametrize(
    "text",
    [
        DEFAULT,
        "{prefix}{year}{month}{day}{filename}",
        "logs/{hostname}/{prefix}/{year}/{month}/{day}/{hour}/{filename}",
        "{prefix}/{suffix}/{year}-{month}-{day}T{hour}:{minute}/{filename}",
        "{filename}/{day}/{month}/{year}/{prefix}",
        "{prefix}/{prefix}/{year}/{month}/{day}/{filename}",  # a field twice
        "{{literal}}/{prefix}/{year}/{month}/{day}/{filename}",  # escaped braces
        "/".join("{%s}" % field for field in FIELDS),
    ],
)
def test_parse_accepts(text):
    template = KeyTemplate.parse(text)
    assert isinstance(template, KeyTemplate)
    assert template.text == text


def test_fields_and_required_fields():
    assert FIELDS == ("prefix", "year", "month", "day", "hour", "minute", "filename", "suffix", "hostname")
    assert REQUIRED_FIELDS == ("prefix", "year", "month", "day", "filename")


# -- KeyTemplate.parse: refused ----------------------------------------------------

@pytest.mark.parametrize(
    ("text", "word"),
    [
        # each mandatory field missing, one at a time
        ("{year}/{month}/{day}/{filename}", "{prefix}"),
        ("{prefix}/{month}/{day}/{filename}", "{year}"),
        ("{prefix}/{year}/{day}/{filename}", "{month}"),
        ("{prefix}/{year}/{month}/{filename}", "{day}"),
        ("{prefix}/{year}/{month}/{day}", "{filename}"),
        # a mandatory field only as escaped literal text
        ("{{prefix}}/{year}/{month}/{day}/{filename}", "{prefix}"),
        # an empty template and one with only optional fields
        ("", "missing"),
        ("{hostname}/{hour}/{minute}/{suffix}", "missing"),
    ],
)
def test_parse_refuses_missing_fields(text, word):
    with pytest.raises(UsageError) as raised:
        KeyTemplate.parse(text)
    assert "missing" in str(raised.value)
    assert word in str(raised.value)


def test_parse_names_every_missing_field():
    with pytest.raises(UsageError) as raised:
        KeyTemplate.parse("{prefix}/{hour}")
    for field in ("{year}", "{month}", "{day}", "{filename}"):
        assert field in str(raised.value)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        # unknown fields
        (DEFAULT + "/{bogus}", "unknown"),
        (DEFAULT + "/{Prefix}", "unknown"),
        (DEFAULT + "/{host}", "unknown"),
        (DEFAULT + "/{ prefix}", "unknown"),
        # positional fields
        (DEFAULT + "/{}", "unknown"),
        (DEFAULT + "/{0}", "unknown"),
        # attribute and index access
        ("{prefix.upper}/{prefix}/{year}/{month}/{day}/{filename}", "unknown"),
        ("{prefix[0]}/{prefix}/{year}/{month}/{day}/{filename}", "unknown"),
        ("{prefix}/{year.real}/{year}/{month}/{day}/{filename}", "unknown"),
        # unbalanced braces
        ("{prefix}/{year}/{month}{/{day}/{filename}", "unbalanced"),
        (DEFAULT + "}", "unbalanced"),
        ("}" + DEFAULT, "unbalanced"),
        ("}", "unbalanced"),
        (DEFAULT + "{", "unbalanced"),
        ("{", "unbalanced"),
        ("{prefix/{year}/{month}/{day}/{filename}", "unbalanced"),
        ("{prefix}/{year}/{month}/{day}/{filename", "unbalanced"),
        # conversions
        ("{prefix}/{year!r}/{month}/{day}/{filename}", "conversion"),
        ("{prefix!s}/{year}/{month}/{day}/{filename}", "conversion"),
        ("{prefix}/{year}/{month}/{day}/{filename!a}", "conversion"),
        # format specs
        ("{prefix}/{year:04}/{month}/{day}/{filename}", "format"),
        ("{prefix}/{year}/{month:>2}/{day}/{filename}", "format"),
        ("{prefix:.3}/{year}/{month}/{day}/{filename}", "format"),
        ("{prefix}/{year:{month}}/{month}/{day}/{filename}", "format"),
    ],
)
def test_parse_refuses(text, word):
    with pytest.raises(UsageError) as raised:
        KeyTemplate.parse(text)
    assert word in str(raised.value)


@pytest.mark.parametrize("text", ["{", "{bogus}", "{year!r}", "{prefix}"])
def test_parse_error_quotes_the_template(text):
    with pytest.raises(UsageError) as raised:
        KeyTemplate.parse(text)
    assert repr(text) in str(raised.value)


def test_unknown_field_error_lists_the_known_fields():
    with pytest.raises(UsageError) as raised:
        KeyTemplate.parse(DEFAULT + "/{bogus}")
    assert "{bogus}" in str(raised.value)
    for field in FIELDS:
        assert "{%s}" % field in str(raised.value)


# -- KeyTemplate.format ------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "name", "hostname", "key"),
    [
        (DEFAULT, "flask-20130727T1200Z.log.gz", "web1", "flask/2013/07/27/flask-20130727T1200Z.log.gz"),
        (DEFAULT, "flask-requests-20130727T1200Z-us-west-2-i-ae23fega.log.gz", "web1",
         "flask-requests/2013/07/27/flask-requests-20130727T1200Z-us-west-2-i-ae23fega.log.gz"),
        # month, day, hour and minute are zero-padded
        ("{prefix}/{year}/{month}/{day}/{hour}/{minute}/{filename}", "db-20130102T0304Z.log.gz", "h",
         "db/2013/01/02/03/04/db-20130102T0304Z.log.gz"),
        ("{prefix}/{year}/{month}/{day}/{hour}{minute}/{filename}", "db-20131231T2359Z.log.gz", "h",
         "db/2013/12/31/2359/db-20131231T2359Z.log.gz"),
        ("{prefix}/{year}/{month}/{day}/{hour}/{minute}/{filename}", "db-20130727T0000Z.log.gz", "h",
         "db/2013/07/27/00/00/db-20130727T0000Z.log.gz"),
        # {hostname}
        ("{hostname}/{prefix}/{year}/{month}/{day}/{filename}", "db-20130727T1200Z.log.gz",
         "ip-10-0-0-1", "ip-10-0-0-1/db/2013/07/27/db-20130727T1200Z.log.gz"),
        ("{prefix}/{year}/{month}/{day}/{hostname}-{filename}", "db-20130727T1200Z.log.gz",
         "web1.example.com", "db/2013/07/27/web1.example.com-db-20130727T1200Z.log.gz"),
        # {suffix}, present and absent (empty)
        ("{prefix}/{suffix}/{year}/{month}/{day}/{filename}", "db-20130727T1200Z-i-1.log.gz", "h",
         "db/i-1/2013/07/27/db-20130727T1200Z-i-1.log.gz"),
        # an empty {suffix} leaves no empty path segment (the same key for S3, file:// and the ledger)
        ("{prefix}/{suffix}/{year}/{month}/{day}/{filename}", "db-20130727T1200Z.log.gz", "h",
         "db/2013/07/27/db-20130727T1200Z.log.gz"),
        ("{prefix}/{year}/{month}/{day}/{filename}/{suffix}", "db-20130727T1200Z.log.gz", "h",
         "db/2013/07/27/db-20130727T1200Z.log.gz"),
        ("/logs//{prefix}/{year}/{month}/{day}/{filename}", "db-20130727T1200Z.log.gz", "h",
         "logs/db/2013/07/27/db-20130727T1200Z.log.gz"),
        ("{prefix}/{year}/{month}/{day}/{filename}[{suffix}]", "db-20130727T1200Z.log.gz", "h",
         "db/2013/07/27/db-20130727T1200Z.log.gz[]"),
        # an extended-form name keeps its filename; the fields are the same
        (DEFAULT, "db-2013-07-27T12:00Z.log.gz", "h", "db/2013/07/27/db-2013-07-27T12:00Z.log.gz"),
        # escaped braces are literal text
        ("{{x}}/{prefix}/{year}/{month}/{day}/{filename}", "db-20130727T1200Z.log.gz", "h",
         "{x}/db/2013/07/27/db-20130727T1200Z.log.gz"),
        # a prefix with hyphens, and a field used twice
        ("{prefix}/{year}/{month}/{day}/{prefix}-{filename}", "a-b-c-20130727T1200Z.log.gz", "h",
         "a-b-c/2013/07/27/a-b-c-a-b-c-20130727T1200Z.log.gz"),
        # a year before 1000 is still four digits
        (DEFAULT, "db-09990102T0304Z.log.gz", "h", "db/0999/01/02/db-09990102T0304Z.log.gz"),
        # non-ASCII parts
        (DEFAULT, "journal-é-20130727T1200Z.log.gz", "hôte", "journal-é/2013/07/27/journal-é-20130727T1200Z.log.gz"),
        ("{hostname}/{prefix}/{year}/{month}/{day}/{filename}", "db-20130727T1200Z.log.gz", "hôte",
         "hôte/db/2013/07/27/db-20130727T1200Z.log.gz"),
    ],
)
def test_format(text, name, hostname, key):
    assert KeyTemplate.parse(text).format(parse_filename(name), hostname=hostname) == key


@pytest.mark.parametrize(
    ("text", "filename", "key"),
    [
        (DEFAULT, "db-20130727T1200Z-logjam-upload-duplicate-01.log.gz",
         "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz"),
        ("{hostname}/{prefix}/{year}/{month}/{day}/{suffix}/{filename}", "other.log.gz",
         "h/db/2013/07/27/s/other.log.gz"),
    ],
)
def test_format_filename_override(text, filename, key):
    logfile = parse_filename("db-20130727T1200Z-s.log.gz") if "{suffix}" in text else \
        parse_filename("db-20130727T1200Z.log.gz")
    assert KeyTemplate.parse(text).format(logfile, hostname="h", filename=filename) == key


def test_format_does_not_use_the_filename_override_for_other_fields():
    logfile = parse_filename("db-20130727T1200Z.log.gz")
    template = KeyTemplate.parse("{prefix}/{year}/{month}/{day}/{hour}/{filename}")
    key = template.format(logfile, hostname="h", filename="zz-20991231T2359Z.log.gz")
    assert key == "db/2013/07/27/12/zz-20991231T2359Z.log.gz"


@pytest.mark.parametrize(
    ("raw", "hostname", "key"),
    [
        # os.listdir gives undecodable bytes as lone surrogates; keys carry them as %XX
        (b"db-20130727T1200Z-\xff.log.gz", "h", "db/2013/07/27/db-20130727T1200Z-%FF.log.gz"),
        (b"caf\xe9-20130727T1200Z.log.gz", "h", "caf%E9/2013/07/27/caf%E9-20130727T1200Z.log.gz"),
        (b"db-20130727T1200Z.log\xc3\x28.gz", "h", "db/2013/07/27/db-20130727T1200Z.log%C3(.gz"),
        # valid UTF-8 is kept as it is
        ("caf\u00e9-20130727T1200Z.log.gz".encode(), "h", "caf\u00e9/2013/07/27/caf\u00e9-20130727T1200Z.log.gz"),
    ],
)
def test_format_escapes_names_that_are_not_utf8(raw, hostname, key):
    logfile = parse_filename(os.fsdecode(raw))
    assert logfile is not None
    formatted = KeyTemplate.parse(DEFAULT).format(logfile, hostname=hostname)
    assert formatted == key
    formatted.encode("utf-8")  # a valid key


# -- upload_duplicate_filename -------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "number", "expected"),
    [
        ("db-20130727T1200Z.log.gz", 1, "db-20130727T1200Z-logjam-upload-duplicate-01.log.gz"),
        ("db-20130727T1200Z.log.gz", 2, "db-20130727T1200Z-logjam-upload-duplicate-02.log.gz"),
        ("db-20130727T1200Z.log.gz", 99, "db-20130727T1200Z-logjam-upload-duplicate-99.log.gz"),
        ("db-20130727T1200Z-us-west-2.log.gz", 1,
         "db-20130727T1200Z-us-west-2-logjam-upload-duplicate-01.log.gz"),
        ("db-20130727T1200Z-s.log.json.zst", 7, "db-20130727T1200Z-s-logjam-upload-duplicate-07.log.json.zst"),
        ("db-2013-07-27T12:00Z.log.gz", 1, "db-2013-07-27T12:00Z-logjam-upload-duplicate-01.log.gz"),
    ],
)
def test_upload_duplicate_filename(name, number, expected):
    assert upload_duplicate_filename(parse_filename(name), number) == expected


@pytest.mark.parametrize("name", ["db-20130727T1200Z.log.gz", "db-20130727T1200Z-us-west-2.log.gz"])
def test_upload_duplicate_filename_is_a_log_name_of_the_same_hour(name):
    original = parse_filename(name)
    duplicate = parse_filename(upload_duplicate_filename(original, 1))
    assert duplicate is not None
    assert (duplicate.prefix, duplicate.timestamp, duplicate.extension) == (
        original.prefix, original.timestamp, original.extension)


# -- candidate_keys ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "name", "folder"),
    [
        (DEFAULT, "db-20130727T1200Z.log.gz", "db/2013/07/27"),
        (DEFAULT, "db-20130727T1200Z-s.log.gz", "db/2013/07/27"),
        ("{hostname}/{prefix}/{year}/{month}/{day}/{hour}/{filename}", "db-20130727T1200Z.log.gz",
         "web1/db/2013/07/27/12"),
    ],
)
def test_candidate_keys(text, name, folder):
    logfile = parse_filename(name)
    keys = candidate_keys(KeyTemplate.parse(text), logfile, hostname="web1")
    assert len(keys) == 1 + MAX_UPLOAD_DUPLICATES == 100
    assert len(set(keys)) == len(keys)
    assert keys[0] == f"{folder}/{name}"
    assert keys[1:] == [
        f"{folder}/{upload_duplicate_filename(logfile, number)}" for number in range(1, 100)
    ]
    assert {os.path.dirname(key) for key in keys} == {folder}


def test_candidate_keys_spec_example():
    keys = candidate_keys(KeyTemplate.parse(DEFAULT), parse_filename("db-20130727T1200Z.log.gz"), hostname="h")
    assert keys[:3] == [
        "db/2013/07/27/db-20130727T1200Z.log.gz",
        "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz",
        "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-02.log.gz",
    ]
    assert keys[-1] == "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-99.log.gz"


# -- part_size_for -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, PART_SIZE),
        (1, PART_SIZE),
        (64 * MiB, PART_SIZE),
        (PART_SIZE * MAX_PARTS, PART_SIZE),  # exactly 10,000 parts
        (PART_SIZE * MAX_PARTS + 1, 2 * PART_SIZE),
        (2 * PART_SIZE * MAX_PARTS, 2 * PART_SIZE),
        (2 * PART_SIZE * MAX_PARTS + 1, 4 * PART_SIZE),
        (5 * 1024**4, 1024 * MiB),  # 5 TiB, S3's largest object
    ],
)
def test_part_size_for(size, expected):
    part_size = part_size_for(size)
    assert part_size == expected
    assert part_size >= 8 * MiB
    assert math.ceil(size / part_size) <= 10_000


def test_part_size_default_is_8_mib_as_the_aws_cli_and_at_most_10000_parts():
    assert PART_SIZE == 8 * MiB
    assert MAX_PARTS == 10_000


@pytest.mark.parametrize(
    ("size", "part_size", "expected"),
    [
        (10 * MiB, 5 * MiB, 5 * MiB),
        (5 * MiB * 10_000 + 1, 5 * MiB, 10 * MiB),
    ],
)
def test_part_size_for_custom_minimum(size, part_size, expected):
    assert part_size_for(size, part_size=part_size) == expected


# -- get_uploader and URIs ---------------------------------------------------------

@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("ftp://host/{prefix}/{year}/{month}/{day}/{filename}", "ftp://"),
        ("gs://bucket/{prefix}/{year}/{month}/{day}/{filename}", "gs://"),
        ("http://example.com/{prefix}/{year}/{month}/{day}/{filename}", "http://"),
        ("s4://bucket/{prefix}/{year}/{month}/{day}/{filename}", "s4://"),
    ],
)
def test_get_uploader_refuses_unknown_scheme(uri, scheme):
    with pytest.raises(UsageError) as raised:
        get_uploader(uri)
    assert scheme in str(raised.value)
    assert "file://" in str(raised.value) and "s3://" in str(raised.value)  # the known ones


@pytest.mark.parametrize("uri", ["/mnt/logs/{prefix}/{year}/{month}/{day}/{filename}", "bucket/{prefix}", ""])
def test_get_uploader_refuses_no_scheme(uri):
    with pytest.raises(UsageError) as raised:
        get_uploader(uri)
    assert "scheme" in str(raised.value)


def test_get_uploader_uses_the_given_registry():
    made = []

    def fake(uri, options, *, jobs, hostname):
        made.append((uri, options))
        return "uploader"

    registry = {"mem": Backend("mem", "mem options", (), fake)}
    options = argparse.Namespace()
    assert get_uploader("mem://x/{prefix}", options, uploaders=registry) == "uploader"
    assert made == [("mem://x/{prefix}", options)]
    with pytest.raises(UsageError):
        get_uploader("file:///mnt/{prefix}", uploaders=registry)


def test_registry_has_file_and_s3():
    assert set(UPLOADERS) >= {"file", "s3"}


@pytest.mark.parametrize(
    ("uri", "root", "template"),
    [
        ("file:///mnt/a/{prefix}/{year}/{month}/{day}/{filename}", "/mnt/a",
         "{prefix}/{year}/{month}/{day}/{filename}"),
        ("file:///mnt/a/b/c/{hostname}/{prefix}/{year}/{month}/{day}/{filename}", "/mnt/a/b/c",
         "{hostname}/{prefix}/{year}/{month}/{day}/{filename}"),
        # a field mid-component: the component belongs to the template
        ("file:///mnt/a/logs-{prefix}/{year}/{month}/{day}/{filename}", "/mnt/a",
         "logs-{prefix}/{year}/{month}/{day}/{filename}"),
        # the template right below the file system root
        ("file:///{prefix}/{year}/{month}/{day}/{filename}", "/", "{prefix}/{year}/{month}/{day}/{filename}"),
        # localhost is the local host
        ("file://localhost/mnt/a/{prefix}/{year}/{month}/{day}/{filename}", "/mnt/a",
         "{prefix}/{year}/{month}/{day}/{filename}"),
        # percent-encoding is decoded
        ("file:///mnt/my%20logs/{prefix}/{year}/{month}/{day}/{filename}", "/mnt/my logs",
         "{prefix}/{year}/{month}/{day}/{filename}"),
        # the scheme is case-insensitive
        ("FILE:///mnt/a/{prefix}/{year}/{month}/{day}/{filename}", "/mnt/a",
         "{prefix}/{year}/{month}/{day}/{filename}"),
    ],
)
def test_file_uploader_splits_root_and_template(uri, root, template):
    uploader = get_uploader(uri)
    assert isinstance(uploader, FileUploader)
    assert uploader.root == root
    assert uploader.template == template
    KeyTemplate.parse(uploader.template)  # what upload will check next


@pytest.mark.parametrize(
    ("uri", "word"),
    [
        ("file:///mnt/a", "template"),
        ("file:///mnt/a/prefix/year", "template"),
        ("file://otherhost/mnt/a/{prefix}/{year}/{month}/{day}/{filename}", "local"),
    ],
)
def test_file_uploader_refuses(uri, word):
    with pytest.raises(UsageError) as raised:
        FileUploader(uri)
    assert word in str(raised.value)


def test_file_uploader_describes_keys_below_its_root():
    uploader = FileUploader("file:///mnt/a/{prefix}/{year}/{month}/{day}/{filename}")
    assert uploader.describe("db/2013/07/27/x.log.gz") == "file:///mnt/a/db/2013/07/27/x.log.gz"


def test_s3_uploader_splits_bucket_and_template():
    uploader = get_uploader("s3://my-bucket/logs/{prefix}/{year}/{month}/{day}/{filename}")
    assert uploader.bucket == "my-bucket"
    assert uploader.template == "logs/{prefix}/{year}/{month}/{day}/{filename}"
    assert uploader.client is None  # nothing connects before a pass has work


def test_s3_uploader_refuses_no_bucket():
    with pytest.raises(UsageError) as raised:
        get_uploader("s3:///{prefix}/{year}/{month}/{day}/{filename}")
    assert "bucket" in str(raised.value)


# -- _key_components -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("key", "components"),
    [
        ("db/2013/07/27/db-20130727T1200Z.log.gz", ["db", "2013", "07", "27", "db-20130727T1200Z.log.gz"]),
        ("x.log.gz", ["x.log.gz"]),
        # empty components (an absent {suffix}) collapse
        ("db//2013/x.log.gz", ["db", "2013", "x.log.gz"]),
        # a leading slash stays below the root
        ("/db/x.log.gz", ["db", "x.log.gz"]),
        ("db/x.log.gz/", ["db", "x.log.gz"]),
        # dots inside a component are fine
        ("db/...x/..x/x..", ["db", "...x", "..x", "x.."]),
        ("db/.hidden", ["db", ".hidden"]),
    ],
)
def test_key_components(key, components):
    assert _key_components(key) == components


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/",
        "///",
        ".",
        "..",
        "../x.log.gz",
        "db/../../etc/passwd",
        "db/..",
        "db/./x.log.gz",
        "./x.log.gz",
        "db/x\x00.log.gz",
        "\x00",
    ],
)
def test_key_components_refuses(key):
    with pytest.raises(FileError) as raised:
        _key_components(key)
    assert "refused" in str(raised.value)


# -- keys: empty segments, '.' and '..', S3's 1,024 bytes ------------------------------

@pytest.mark.parametrize(
    ("key", "collapsed"),
    [("a/b", "a/b"), ("a//b", "a/b"), ("/a/b/", "a/b"), ("a///b//c", "a/b/c"), ("", "")],
)
def test_collapse_key(key, collapsed):
    assert collapse_key(key) == collapsed


@pytest.mark.parametrize(
    ("key", "max_bytes", "problem"),
    [
        ("db/2013/x.gz", None, None),
        ("db/../x.gz", None, "'..'"),
        ("db/./x.gz", None, "'..'"),
        ("../x.gz", None, "'..'"),
        ("db/..", None, "'..'"),
        ("db/..x/x.gz", None, None),  # only whole segments
        ("db/x\x00.gz", None, "NUL"),
        ("a" * 1024, MAX_KEY_BYTES, None),
        ("a" * 1025, MAX_KEY_BYTES, "1025 bytes, more than the 1024"),
        ("é" * 513, MAX_KEY_BYTES, "1026 bytes"),  # bytes, not characters
    ],
)
def test_key_problem(key, max_bytes, problem):
    found = key_problem(key, max_bytes=max_bytes)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    "text",
    ["../{prefix}/{year}/{month}/{day}/{filename}", "{prefix}/./{year}/{month}/{day}/{filename}",
     "{prefix}/{year}/{month}/{day}/../{filename}"],
)
def test_parse_refuses_dot_segments(text):
    with pytest.raises(UsageError, match="path segment"):
        KeyTemplate.parse(text)


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        (DEFAULT, 4 + 2 + 2 + 4),  # year, month, day and four slashes
        ("{prefix}{year}{month}{day}{hour}{minute}{filename}", 12),
        ("logs/{hostname}/" + DEFAULT, 5 + 1 + 12),
        ("é/" + DEFAULT, 3 + 12),
    ],
)
def test_fixed_bytes(text, fixed):
    assert KeyTemplate.parse(text).fixed_bytes() == fixed


@pytest.mark.parametrize(
    ("text", "leading"),
    [
        (DEFAULT, ""),
        ("logs/" + DEFAULT, "logs/"),
        ("logs-" + DEFAULT, "logs-"),
        ("/logs//" + DEFAULT, "logs/"),
        ("logs/{hostname}/" + DEFAULT, "logs/web1/"),
        ("{hostname}-" + DEFAULT, "web1-"),
        ("logs/{year}/{hostname}/{prefix}/{month}/{day}/{filename}", "logs/"),
    ],
)
def test_leading_text(text, leading):
    assert KeyTemplate.parse(text).leading_text(hostname="web1") == leading
