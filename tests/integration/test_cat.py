"""logjam-cat against archives made by logjam-compress and logjam-upload
themselves: on file:// and on S3 over HTTP on loopback."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import pytest

from logjam import cat, compress, upload
from logjam.cli import Environment, main_runner
from logjam.signals import Stop
from tests.conftest import CREDENTIALS, BytesOut, clean_env, make_store, script, tree

UTC = datetime.timezone.utc
TEMPLATE = "{hostname}/{prefix}/{year}/{month}/{day}/{filename}"
NOW = datetime.datetime(2013, 8, 2, 12, 0, tzinfo=UTC)


@dataclass
class Store:
    """One destination, as logjam-cat and the tests see it."""

    root: str  # s3://BUCKET or file:///PATH
    options: list[str]  # what logjam-upload and logjam-cat need to reach it
    read: Callable[[str], bytes]
    forge: Callable[[str, bytes], None]  # replace an object's bytes, keeping its metadata
    keys: Callable[[], list[str]]
    client: Any = None  # the boto3 client of an S3 store

    def uri(self, template: str = TEMPLATE) -> str:
        return f"{self.root}/{template}"


@pytest.fixture
def file_store(tmp_path):
    root = tmp_path / "dest"
    root.mkdir()
    return Store(
        root=f"file://{root}",
        options=[],
        read=lambda key: (root / key).read_bytes(),
        forge=lambda key, data: (root / key).write_bytes(data),
        keys=lambda: sorted(tree(root)),
    )


def _s3_destination(endpoint: str, client, bucket: str, credentials: dict[str, str], monkeypatch) -> Store:
    for name, value in {**CREDENTIALS, **credentials}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # The in-process server logs each request; stderr here is logjam-cat's.
    werkzeug = logging.getLogger("werkzeug")
    monkeypatch.setattr(werkzeug, "level", logging.WARNING)

    def forge(key, data):
        metadata = client.head_object(Bucket=bucket, Key=key)["Metadata"]
        client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata)

    def keys():
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    return Store(
        root=f"s3://{bucket}",
        options=["--endpoint-url", endpoint],
        read=lambda key: client.get_object(Bucket=bucket, Key=key)["Body"].read(),
        forge=forge,
        keys=keys,
        client=client,
    )


@pytest.fixture(params=["moto", "s3rver"])
def s3_store(request, monkeypatch):
    """The S3 destination the S3 tests here take: once on moto and once on
    s3rver (a second, independent S3 implementation)."""
    return _s3_on(request, request.param, monkeypatch)


def _s3_on(request, implementation: str, monkeypatch) -> Store:
    store = make_store(request, implementation)
    return _s3_destination(store.endpoint, store.client, store.bucket, store.credentials, monkeypatch)


@pytest.fixture
def moto_store(s3_server, s3_client, bucket, monkeypatch):
    """S3 on moto alone, for the tests that count requests through the proxy in front of it."""
    return _s3_destination(s3_server, s3_client, bucket, {}, monkeypatch)


@pytest.fixture(params=["file", "moto", "s3rver"])
def store(request, monkeypatch):
    if request.param == "file":
        return request.getfixturevalue("file_store")
    return _s3_on(request, request.param, monkeypatch)


@pytest.fixture
def put(tmp_path, monkeypatch):
    """put(store, {name: log bytes}, hostname=..., codec=...): compresses and
    uploads the logs with logjam itself, in-process."""

    def put_logs(store: Store, logs: dict[str, bytes], *, hostname: str = "h1", codec: str = "gzip",
                 template: str = TEMPLATE) -> None:
        log_dir = tmp_path / f"src-{uuid.uuid4().hex[:8]}"
        log_dir.mkdir()
        then = time.time() - 7200
        for name, data in logs.items():
            (log_dir / name).write_bytes(data)
            os.utime(log_dir / name, (then, then))
        monkeypatch.setattr(socket, "gethostname", lambda: hostname)
        assert main_runner("logjam-compress", compress.build_parser(), compress.make_job,
                           ["--once", "--log-level", "warning", "--codec", codec, str(log_dir)], stop=Stop()) == 0
        assert main_runner("logjam-upload", upload.build_parser(), upload.make_job,
                           ["--once", "--log-level", "error", *store.options, str(log_dir / "archive"), store.uri(template)], stop=Stop()) == 0

    return put_logs


def run_cat(store: Store, *args: str, template: str = TEMPLATE) -> tuple[int, bytes]:
    out = BytesOut()
    status = cat.main([store.uri(template), *store.options, *args], env=Environment(stdout=out, clock=lambda: NOW))
    return status, out.getvalue()


def line(name: str) -> bytes:
    return f"a line of {name}\n".encode()


HOURS = ["20130731T2200Z", "20130731T2300Z", "20130801T0000Z", "20130801T0100Z"]


def several_hosts_and_streams(store, put) -> None:
    for hostname in ("h1", "h2"):
        put(store, {f"{prefix}-{hour}{suffix}.log": line(f"{hostname} {prefix}-{hour}{suffix}")
                    for hour in HOURS for prefix in ("db", "web") for suffix in ("", "-err")},
            hostname=hostname)


def expected(hours, *, prefixes=("db", "web"), suffixes=("", "-err"), hostnames=("h1", "h2")) -> bytes:
    # hour, then prefix, then suffix (none first), then name, then host
    return b"".join(line(f"{hostname} {prefix}-{hour}{suffix}")
                    for hour in hours for prefix in prefixes for suffix in suffixes for hostname in hostnames)


def test_streams_hours_in_order_across_midnight_and_month_end(store, put, capsys):
    several_hosts_and_streams(store, put)

    status, out = run_cat(store, "--since", "2013-07-31T23:00Z", "--until", "2013-08-01T01Z")

    assert (status, capsys.readouterr().err) == (0, "")
    assert out == expected(HOURS[1:3])


@pytest.mark.parametrize("args, want", [
    (["--prefix", "db"], dict(prefixes=("db",))),
    (["--suffix", "err", "--hostname", "h2"], dict(suffixes=("-err",), hostnames=("h2",))),
    (["--suffix", "", "--prefix", "web", "--prefix", "db"], dict(suffixes=("",))),
])
def test_filters(file_store, put, args, want):
    several_hosts_and_streams(file_store, put)
    status, out = run_cat(file_store, "--since", "2013-07-31", "--until", "2013-08-02", *args)
    assert (status, out) == (0, expected(HOURS, **want))


def test_relative_range_and_default_until(file_store, put):
    several_hosts_and_streams(file_store, put)
    out = BytesOut()
    clock = lambda: datetime.datetime(2013, 8, 1, 1, 20, tzinfo=UTC)  # noqa: E731
    # 90m back from 01:20 is 23:50: the 23:00 file holds it; until defaults to now
    assert cat.main([file_store.uri(), "--since", "90m", "--prefix", "db"], env=Environment(stdout=out, clock=clock)) == 0
    assert out.getvalue() == expected(HOURS[1:], prefixes=("db",))


def test_duplicates_follow_the_file_they_duplicate(store, put):
    put(store, {"db-20130727T1200Z.log": b"first\n", "db-20130727T1300Z.log": b"next hour\n"})
    put(store, {"db-20130727T1200Z.log": b"second copy, other content\n"})
    put(store, {"db-20130727T1200Z-a.log": b"suffix a\n"})
    assert "h1/db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz" in store.keys()

    status, out = run_cat(store, "--since", "2013-07-27")

    assert (status, out) == (0, b"first\nsecond copy, other content\nsuffix a\nnext hour\n")


def test_zstd_and_gzip_together(store, put):
    put(store, {"db-20130727T1200Z.log": b"gzip\n" * 1000})
    put(store, {"db-20130727T1300Z.log": b"zstd\n" * 1000}, codec="zstd")
    assert any(key.endswith(".zst") for key in store.keys())

    status, out = run_cat(store, "--since", "2013-07-27T12Z", "--until", "2013-07-28")

    assert (status, out) == (0, b"gzip\n" * 1000 + b"zstd\n" * 1000)


def test_forged_object_is_named_and_never_passed_on(s3_store, put, capsys):
    # The store's own checksums match the forgery (it was stored whole):
    # only logjam's fingerprint shows it is not the log.
    put(s3_store, {f"db-{hour}.log": line(hour) for hour in HOURS})
    key = "h1/db/2013/07/31/db-20130731T2300Z.log.gz"
    s3_store.forge(key, gzip.compress(b"forged log line\n"))

    status, out = run_cat(s3_store, "--since", "2013-07-31", "--jobs", "2")

    assert status == 1
    assert out == b"".join(line(hour) for hour in HOURS if hour != "20130731T2300Z")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and key in err[0] and "logjam-sha256" in err[0], err


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not gzip"])
def test_damaged_object_is_named_and_never_passed_on(store, put, capsys, damage):
    put(store, {f"db-{hour}.log": line(hour) * 500 for hour in HOURS})
    key = "h1/db/2013/08/01/db-20130801T0000Z.log.gz"
    data = store.read(key)
    store.forge(key, {"truncated": data[:-9], "flipped": data[:20] + bytes([data[20] ^ 1]) + data[21:],
                      "not gzip": b"\x1f\x8b" + os.urandom(len(data))}[damage])

    status, out = run_cat(store, "--since", "2013-07-31")

    assert status == 1
    assert out == b"".join(line(hour) * 500 for hour in HOURS if hour != "20130801T0000Z")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and key in err[0] and "not passed on" in err[0], err


def test_output_dir_holds_the_stored_objects_and_a_rerun_skips_them(store, put, tmp_path, capsys):
    several_hosts_and_streams(store, put)
    out_dir = tmp_path / "restored"

    status, out = run_cat(store, "--since", "2013-08-01", "--prefix", "db", "--output-dir", str(out_dir))

    assert (status, out) == (0, b"")
    keys = [key for key in store.keys() if "/db/2013/08/01/" in key]
    assert len(keys) == 8
    restored = tree(out_dir)
    assert restored == {key: store.read(key) for key in keys}  # still compressed, as stored
    assert not [path for path in out_dir.rglob(".*")]  # nothing of logjam's own

    before = {path: os.stat(out_dir / path).st_ino for path in restored}
    status, out = run_cat(store, "--since", "2013-08-01", "--prefix", "db", "--output-dir", str(out_dir))
    assert (status, capsys.readouterr().err) == (0, "")
    assert {path: os.stat(out_dir / path).st_ino for path in restored} == before  # not written again
    assert tree(out_dir) == restored


def test_output_dir_never_overwrites_other_content(store, put, tmp_path, capsys):
    put(store, {"db-20130727T1200Z.log": b"one\n", "db-20130727T1300Z.log": b"two\n"})
    out_dir = tmp_path / "restored"
    mine = out_dir / "h1/db/2013/07/27/db-20130727T1200Z.log.gz"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"someone else's file")

    status, _ = run_cat(store, "--since", "2013-07-27", "--output-dir", str(out_dir))

    assert status == 1
    assert mine.read_bytes() == b"someone else's file"
    assert gzip.decompress((mine.parent / "db-20130727T1300Z.log.gz").read_bytes()) == b"two\n"
    err = capsys.readouterr().err
    assert "db-20130727T1200Z.log.gz" in err and "left alone" in err
    assert sorted(os.listdir(mine.parent)) == ["db-20130727T1200Z.log.gz", "db-20130727T1300Z.log.gz"]


def test_output_dir_clears_what_a_killed_run_left(file_store, put, tmp_path):
    put(file_store, {"db-20130727T1200Z.log": b"one\n"})
    folder = tmp_path / "restored/h1/db/2013/07/27"
    folder.mkdir(parents=True)
    stale = folder / ".db-20130727T1200Z.log.gz.logjam-tmp-999999-0badf00d"
    stale.write_bytes(b"half a download")

    status, _ = run_cat(file_store, "--since", "2013-07-27", "--output-dir", str(tmp_path / "restored"))

    assert status == 0
    assert os.listdir(folder) == ["db-20130727T1200Z.log.gz"]


def test_forged_object_never_reaches_the_output_dir(s3_store, put, tmp_path):
    put(s3_store, {"db-20130727T1200Z.log": b"one\n", "db-20130727T1300Z.log": b"two\n"})
    s3_store.forge("h1/db/2013/07/27/db-20130727T1200Z.log.gz", gzip.compress(b"forged\n"))
    out_dir = tmp_path / "restored"

    status, _ = run_cat(s3_store, "--since", "2013-07-27", "--output-dir", str(out_dir))

    assert status == 1
    assert sorted(tree(out_dir)) == ["h1/db/2013/07/27/db-20130727T1300Z.log.gz"]
    assert os.listdir(out_dir / "h1/db/2013/07/27") == ["db-20130727T1300Z.log.gz"]  # no temporary file left


def test_list_prints_hours_sizes_and_locations_without_downloading(moto_store, put, s3_proxy, capsys):
    s3_store = moto_store
    put(s3_store, {"db-20130727T2300Z.log": b"x\n", "db-20130728T0000Z-err.log": b"y\n", "db-20130729T0000Z.log": b"z\n"})
    s3_proxy.clear()

    out = BytesOut()
    status = cat.main([s3_store.uri(), "--endpoint-url", s3_proxy.url, "--since", "2013-07-27T23Z",
                       "--until", "2013-07-29", "--list"], env=Environment(stdout=out, clock=lambda: NOW))

    assert status == 0
    bucket = s3_store.root
    sizes = {key: len(s3_store.read(key)) for key in s3_store.keys()}
    assert out.getvalue().decode().splitlines() == [
        f"2013-07-27T23:00Z\t{sizes['h1/db/2013/07/27/db-20130727T2300Z.log.gz']}\t"
        f"{bucket}/h1/db/2013/07/27/db-20130727T2300Z.log.gz",
        f"2013-07-28T00:00Z\t{sizes['h1/db/2013/07/28/db-20130728T0000Z-err.log.gz']}\t"
        f"{bucket}/h1/db/2013/07/28/db-20130728T0000Z-err.log.gz",
    ]
    # LISTs only, no object read: "" and "h1/" by delimiter, then one per day
    assert [method for method, _path in s3_proxy.calls()] == ["GET"] * 4
    assert all("list-type=2" in request.query for request in s3_proxy.requests)


def test_requests_are_one_list_per_day_and_level_and_one_get_per_file(moto_store, put, s3_proxy):
    s3_store = moto_store
    several_hosts_and_streams(s3_store, put)
    s3_proxy.clear()

    out = BytesOut()
    status = cat.main([s3_store.uri(), "--endpoint-url", s3_proxy.url, "--since", "2013-07-31T23Z",
                       "--until", "2013-08-01T01Z", "--prefix", "db", "--jobs", "3"], env=Environment(stdout=out, clock=lambda: NOW))

    assert (status, out.getvalue()) == (0, expected(HOURS[1:3], prefixes=("db",)))
    lists = [request.query for request in s3_proxy.requests if "list-type=2" in request.query]
    gets = [request.path for request in s3_proxy.requests if "list-type=2" not in request.query]
    # {hostname} comes first and is not given: one delimiter listing finds
    # h1/ and h2/; then one listing per host per day, of that stream only
    assert len(lists) == 1 + 2 * 2
    assert sum("delimiter=%2F" in query for query in lists) == 1
    assert all("prefix=h" in query and "db-" in query for query in lists if "delimiter" not in query)
    assert len(gets) == 8 and len(set(gets)) == 8


def test_objects_stored_by_another_tool_are_checked_by_the_stores_checksums(s3_store, put, capsys):
    s3_client = s3_store.client
    # No logjam metadata: a full-object SHA-256 checksum, or the ETag (MD5).
    bucket = s3_store.root[len("s3://"):]
    s3_client.put_object(Bucket=bucket, Key="h1/db/2013/07/27/db-20130727T1200Z.log.gz",
                         Body=gzip.compress(b"checksum\n"), ChecksumAlgorithm="SHA256")
    s3_client.put_object(Bucket=bucket, Key="h1/db/2013/07/27/db-20130727T1300Z.log.gz",
                         Body=gzip.compress(b"etag\n"))
    status, out = run_cat(s3_store, "--since", "2013-07-27")
    assert (status, out, capsys.readouterr().err) == (0, b"checksum\netag\n", "")


def test_jobs_keep_the_order(s3_store, put):
    several_hosts_and_streams(s3_store, put)
    outputs = {jobs: run_cat(s3_store, "--since", "2013-07-31", "--jobs", jobs) for jobs in ("1", "4")}
    assert outputs["1"] == outputs["4"] == (0, expected(HOURS))


def test_bucket_of_another_template_layout(s3_store, put):
    template = "{year}/{month}/{day}/{prefix}-{hostname}/{filename}"
    put(s3_store, {"db-20130727T1200Z.log": b"a\n"}, template=template, hostname="web-1")
    put(s3_store, {"db-20130727T1200Z.log": b"b\n"}, template=template, hostname="web-2")
    status, out = run_cat(s3_store, "--since", "2013-07-27", "--hostname", "web-2", template=template)
    assert (status, out) == (0, b"b\n")


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "--since 'yesterday': not a UTC time"),
    (["--since", "2013-07-27T12:00"], "not a UTC time"),
    (["--since", "2013-07-27 12:00"], "not a UTC time"),
    (["--since", "99999999d"], "--since '99999999d': out of range"),
    (["--since", "1d", "--until", "9999-12-31T23:00Z"], "out of range"),
    (["--since", "2013-07-28", "--until", "2013-07-27"], "empty range"),
    (["--since", "1d", "--jobs", "0"], "--jobs 0"),
    (["--since", "1d", "--list", "--output-dir", "x"], "--list and --output-dir do not go together"),
])
def test_bad_arguments_give_one_line_and_status_2(file_store, args, message, capsys):
    status, out = run_cat(file_store, *args, template="{prefix}/{year}/{month}/{day}/{filename}")
    err = capsys.readouterr().err
    assert (status, out) == (2, b"")
    assert len(err.splitlines()) == 1 and err.startswith("logjam-cat: error: ") and message in err, err


@pytest.mark.parametrize("uri, message", [
    ("file:///nonexistent-root/{prefix}/{year}/{month}/{day}/{filename}", "does not exist"),
    ("file:///tmp/{prefix}/{year}/{filename}", "missing {month}, {day}"),
    ("ftp://host/{prefix}/{year}/{month}/{day}/{filename}", "no uploader for scheme"),
    ("file:///tmp/{prefix}/{year}/{month}/{day}/{filename}", "--hostname needs a key template with {hostname}"),
])
def test_bad_destinations_give_one_line_and_status_2(uri, message, capsys):
    status = cat.main([uri, "--since", "1d", "--hostname", "h"], env=Environment(stdout=BytesOut()))
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_missing_bucket_is_a_usage_error(s3_store, capsys):
    uri = s3_store.uri().replace(s3_store.root, "s3://no-such-bucket-here")
    status = cat.main([uri, *s3_store.options, "--since", "1d"], env=Environment(stdout=BytesOut()))
    assert status == 2
    assert capsys.readouterr().err == "logjam-cat: error: bucket 'no-such-bucket-here' does not exist\n"


def test_a_closed_reader_ends_it_quietly(file_store, put):
    # Enough output that logjam-cat is still writing when head has gone.
    put(file_store, {f"db-{hour}.log": line(hour) * 200_000 for hour in HOURS})
    pipeline = subprocess.run(
        f"'{script('logjam-cat')}' '{file_store.uri()}' --since 2013-07-31 --jobs 2 | head -c 100 >/dev/null;"
        " echo status=${PIPESTATUS[0]}",
        shell=True, executable="/bin/bash", env=clean_env(), capture_output=True, text=True, timeout=60)
    assert (pipeline.stdout, pipeline.stderr) == ("status=0\n", "")


def test_python_dash_m_and_an_early_close(file_store, put):
    put(file_store, {f"db-{hour}.log": line(hour) * 200_000 for hour in HOURS[:2]})
    process = subprocess.Popen([sys.executable, "-m", "logjam.cat", file_store.uri(), "--since", "2013-07-31"],
                               env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(len(line(HOURS[0]))) == line(HOURS[0])
    process.stdout.close()
    assert process.wait(timeout=60) == 0
    assert process.stderr.read() == b""
    process.stderr.close()


def test_zstd_object_without_metadata_is_checked_by_its_frames(file_store, put, capsys):
    # file:// keeps no metadata: the zstd frame checksum is what is left. The
    # log is bigger than a read, so an unchecked copy would pass most of it on.
    big = os.urandom(3 << 20).hex().encode()
    put(file_store, {"db-20130727T1200Z.log": big, "db-20130727T1300Z.log": b"two\n" * 100}, codec="zstd")
    key = "h1/db/2013/07/27/db-20130727T1200Z.log.zst"
    data = bytearray(file_store.read(key))
    data[-1] ^= 0xFF  # the frame's checksum: every byte decompresses, the check fails at the end
    file_store.forge(key, bytes(data))

    status, out = run_cat(file_store, "--since", "2013-07-27")

    assert (status, out) == (1, b"two\n" * 100)
    assert key in capsys.readouterr().err


SUFFIXED = "{prefix}/{suffix}/{year}/{month}/{day}/{filename}"  # the README's example


@pytest.mark.parametrize("template", [SUFFIXED, "{hostname}/" + SUFFIXED])
def test_empty_suffix_segment_files_are_found_with_and_without_a_suffix(store, put, template, capsys):
    # Keys are collapsed ("web/2013/..."): the empty {suffix} is no folder.
    # Keys of older uploads kept it ("web//2013/..."): those are found too.
    put(store, {"web-20130727T1200Z.log": b"plain 12\n", "web-20130727T1200Z-err.log": b"err 12\n",
                "web-20130727T1300Z.log": b"plain 13\n", "db-20130727T1200Z.log": b"db 12\n"}, template=template)
    head = "h1/" if template.startswith("{hostname}") else ""
    assert f"{head}web/2013/07/27/web-20130727T1200Z.log.gz" in store.keys()
    if store.client is not None:  # an old upload's key: S3 keeps the empty segment
        bucket = store.root[len("s3://"):]
        old = store.client.get_object(Bucket=bucket, Key=f"{head}web/2013/07/27/web-20130727T1300Z.log.gz")
        with contextlib.suppress(botocore.exceptions.ClientError):  # s3rver keeps no "//" (files on disk)
            store.client.put_object(Bucket=bucket, Key=f"{head}web//2013/07/27/web-20130727T1300Z.log.gz",
                                    Body=old["Body"].read(), Metadata=old["Metadata"])
            store.client.delete_object(Bucket=bucket, Key=f"{head}web/2013/07/27/web-20130727T1300Z.log.gz")
    since = ["--since", "2013-07-27", "--until", "2013-07-28"]

    assert run_cat(store, *since, template=template) == (0, b"db 12\nplain 12\nerr 12\nplain 13\n")
    assert run_cat(store, *since, "--prefix", "web", template=template) == (0, b"plain 12\nerr 12\nplain 13\n")
    assert run_cat(store, *since, "--suffix", "", template=template) == (0, b"db 12\nplain 12\nplain 13\n")
    assert run_cat(store, *since, "--suffix", "", "--prefix", "web", template=template) == (0, b"plain 12\nplain 13\n")
    assert run_cat(store, *since, "--suffix", "err", template=template) == (0, b"err 12\n")
    status, listed = run_cat(store, *since, "--suffix", "", "--list", template=template)
    locations = [row.split("\t")[2][len(store.root):] for row in listed.decode().splitlines()]
    assert status == 0 and len(locations) == 3
    if store.client is None:  # file://: folders, no empty segment
        assert all("//" not in location for location in locations), locations
    assert capsys.readouterr().err == ""


def test_empty_suffix_segment_costs_a_listing_per_layout_and_day(moto_store, put, s3_proxy):
    put(moto_store, {"web-20130727T1200Z.log": b"a\n", "web-20130728T1200Z-err.log": b"b\n",
                     "web-20130728T1300Z.log": b"c\n", "web-20120101T0000Z.log": b"old year\n"}, template=SUFFIXED)
    s3_proxy.clear()

    out = BytesOut()
    status = cat.main([moto_store.uri(SUFFIXED), "--endpoint-url", s3_proxy.url, "--since", "2013-07-27",
                       "--until", "2013-07-29", "--list"], env=Environment(stdout=out, clock=lambda: NOW))

    assert (status, len(out.getvalue().splitlines())) == (0, 3)
    lists = [request.query for request in s3_proxy.requests]
    # by delimiter: "" (web/), "web/" (err/, 2012/, 2013/), "web/2012/" and
    # "web/2013/" (is 2012 or 2013 a suffix? no): once each, not per day;
    # then per day: web/err/ and the collapsed web/ (2 x 2)
    assert sum("delimiter=%2F" in query for query in lists) == 4
    assert len(lists) == 4 + 2 * 2, lists

    # --suffix '': "web/" listed once shows no old "web//" folder; then the
    # collapsed web/2013/07/2x/web- per day
    s3_proxy.clear()
    status = cat.main([moto_store.uri(SUFFIXED), "--endpoint-url", s3_proxy.url, "--since", "2013-07-27",
                       "--until", "2013-07-29", "--suffix", "", "--prefix", "web", "--list"],
                      env=Environment(stdout=BytesOut(), clock=lambda: NOW))
    lists = [request.query for request in s3_proxy.requests]
    assert status == 0 and len(lists) == 1 + 2, lists


def test_object_without_metadata_is_checked_whole_before_any_byte_goes_out(s3_store, put, tmp_path, capsys):
    # put by another tool: a plain-MD5 ETag that matches what was sent, half a gzip file
    put(s3_store, {"db-20130727T1300Z.log": b"next hour\n"})
    bucket = s3_store.root[len("s3://"):]
    key = "h1/db/2013/07/27/db-20130727T1200Z.log.gz"
    whole = gzip.compress(os.urandom(1 << 20).hex().encode() + b"\n")
    s3_store.client.put_object(Bucket=bucket, Key=key, Body=whole[: len(whole) // 2])

    status, out = run_cat(s3_store, "--since", "2013-07-27")
    assert (status, out) == (1, b"next hour\n")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and key in err[0] and "not a whole gzip stream" in err[0], err

    status, out = run_cat(s3_store, "--since", "2013-07-27", "--output-dir", str(tmp_path / "restored"))
    assert (status, out) == (1, b"")
    assert sorted(tree(tmp_path / "restored")) == ["h1/db/2013/07/27/db-20130727T1300Z.log.gz"]


def test_a_last_line_without_newline_is_not_glued_to_the_next_file(store, put, tmp_path):
    put(store, {"db-20130727T1200Z.log": b"one\nno newline", "db-20130727T1300Z.log": b"two\n",
                "db-20130727T1400Z.log": b"", "db-20130727T1500Z.log": b"three"})
    assert run_cat(store, "--since", "2013-07-27") == (0, b"one\nno newline\ntwo\nthree\n")
    # --output-dir keeps the objects byte for byte
    assert run_cat(store, "--since", "2013-07-27", "--output-dir", str(tmp_path / "restored"))[0] == 0
    assert gzip.decompress(tree(tmp_path / "restored")["h1/db/2013/07/27/db-20130727T1200Z.log.gz"]) \
        == b"one\nno newline"


def test_list_and_errors_escape_control_characters_in_names(file_store, put, capsys):
    # (file:// only: moto answers 404 to a key with a newline)
    store = file_store
    name = "db-20130727T1200Z-a\nb\tc\\d.log"
    put(store, {name: b"x\n", "db-20130727T1300Z.log": b"y\n"})
    key = f"h1/db/2013/07/27/{name}.gz"

    status, out = run_cat(store, "--since", "2013-07-27", "--list")
    rows = out.decode().splitlines()
    assert status == 0 and len(rows) == 2
    assert [len(row.split("\t")) for row in rows] == [3, 3]
    assert rows[0].endswith("/h1/db/2013/07/27/db-20130727T1200Z-a\\nb\\tc\\\\d.log.gz")

    store.forge(key, b"not gzip")
    status, out = run_cat(store, "--since", "2013-07-27")
    assert (status, out) == (1, b"y\n")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "a\\nb\\tc\\\\d.log.gz" in err[0], err


def test_output_dir_names_a_name_too_long_for_the_file_system(moto_store, tmp_path, capsys):
    bucket = moto_store.root[len("s3://"):]
    key = "h1/db/2013/07/27/db-20130727T1200Z-" + "x" * 300 + ".log.gz"
    moto_store.client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b"long\n"))

    status, out = run_cat(moto_store, "--since", "2013-07-27", "--output-dir", str(tmp_path / "restored"))

    assert (status, out) == (1, b"")
    # (the in-process server's own request log may be there too, from the fixture's setup)
    err = [row for row in capsys.readouterr().err.splitlines() if row.startswith("logjam-cat")]
    assert len(err) == 1 and "longer than a file name may be (255)" in err[0] and "cannot be read" not in err[0], err
