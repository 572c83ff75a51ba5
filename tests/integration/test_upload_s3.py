"""logjam-upload against a real S3 server over HTTP on loopback (moto), through
a proxy that counts what logjam sends. No mocking of boto3."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os

import pytest

from tests.conftest import clean_env, run

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
NAME = "db-20130727T1200Z.log.gz"


def put_archived(archive, name: str, text: bytes) -> bytes:
    data = gzip.compress(text, mtime=0)
    (archive / name).write_bytes(data)
    return data


def upload(archive, bucket, proxy, *extra, template=TEMPLATE):
    return run("logjam-upload", "--once", "--endpoint-url", proxy.url, *extra, archive, f"s3://{bucket}/{template}")


def without_probe(calls: list) -> list:
    """The requests of a pass but its conditional-write probe's (test_stores.py covers those)."""
    return [call for call in calls if ".logjam-probe-" not in call[1]]


def keys(s3_client, bucket) -> dict[str, bytes]:
    listed = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def test_uploads_to_date_partitioned_keys_with_one_put_each(archive, bucket, s3_proxy):
    # The keys, the ledger and the log line: test_backend_contract.py
    # (test_stores_each_file_at_its_key_and_records_it); here, the requests.
    put_archived(archive, NAME, b"one\n")
    put_archived(archive, "web-20131231T2300Z-us-east-1.log.gz", b"two\n")

    result = upload(archive, bucket, s3_proxy)

    assert result.returncode == 0, result.stderr
    assert sorted(without_probe(s3_proxy.calls())) == [
        ("PUT", f"/{bucket}/db/2013/07/27/{NAME}"),
        ("PUT", f"/{bucket}/web/2013/12/31/web-20131231T2300Z-us-east-1.log.gz"),
    ]
    put = [request for request in s3_proxy.requests if NAME in request.path][0]
    assert put.headers.get("If-None-Match") == "*"
    assert "x-amz-checksum-sha256" in {key.lower() for key in put.headers}


def test_object_is_stored_as_the_file_it_is(archive, bucket, s3_proxy, s3_client):
    data = put_archived(archive, NAME, b"payload\n")
    assert upload(archive, bucket, s3_proxy).returncode == 0
    head = s3_client.head_object(Bucket=bucket, Key="db/2013/07/27/" + NAME, ChecksumMode="ENABLED")
    assert head["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in head
    assert head["Metadata"]["logjam-sha256"] == hashlib.sha256(data).hexdigest()
    assert head["Metadata"]["logjam-log-sha256"] == hashlib.sha256(b"payload\n").hexdigest()
    assert head["Metadata"]["logjam-log-length"] == "8"
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_pass_with_nothing_to_send_makes_no_request_even_with_a_missing_bucket(archive, s3_proxy):
    result = upload(archive, "no-such-bucket-anywhere", s3_proxy)
    assert result.returncode == 0, result.stderr
    assert s3_proxy.calls() == []


def test_template_with_every_field(archive, bucket, s3_proxy, s3_client):
    import socket

    put_archived(archive, "web-20130704T0930Z-eu-1.log.gz", b"x\n")
    template = "{hostname}/{prefix}/{suffix}/{year}-{month}-{day}T{hour}{minute}/{filename}"
    assert upload(archive, bucket, s3_proxy, template=template).returncode == 0
    assert list(keys(s3_client, bucket)) == [
        f"{socket.gethostname()}/web/eu-1/2013-07-04T0930/web-20130704T0930Z-eu-1.log.gz"
    ]


@pytest.mark.parametrize(
    "template, problem",
    [
        ("{prefix}/{year}/{month}{/{day}/{filename}", "unbalanced braces"),
        ("{prefix}/{year}/{month}/{day}/{filename", "unbalanced braces"),
        ("{prefix}/{year}/{month}/{day}}/{filename}", "unbalanced braces"),
        ("{prefix}/{year}/{month}/{filename}", "missing {day}"),
        ("{year}/{month}/{day}/{filename}", "missing {prefix}"),
        ("{prefix}/{year}/{month}/{day}", "missing {filename}"),
        ("{prefix}/{yr}/{month}/{day}/{filename}", "unknown field {yr}"),
        ("{prefix}/{year!r}/{month}/{day}/{filename}", "takes no format"),
    ],
)
def test_bad_template_is_refused_before_anything_happens(archive, s3_proxy, template, problem):
    put_archived(archive, NAME, b"x\n")
    result = upload(archive, "bucket", s3_proxy, template=template)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("logjam-upload: error: bad key template")
    assert problem in lines[0]
    assert s3_proxy.calls() == []
    assert not (archive / ".uploaded").exists()


def test_archive_dir_must_be_named_archive(tmp_path, s3_proxy):
    logs = tmp_path / "logs"
    logs.mkdir()
    result = upload(logs, "bucket", s3_proxy)
    assert result.returncode == 2
    assert "last component must be 'archive'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_bucket_is_one_line_and_exit_2(archive, s3_proxy):
    put_archived(archive, NAME, b"x\n")
    result = upload(archive, "no-such-bucket-anywhere", s3_proxy)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "logjam-upload: error: bucket 'no-such-bucket-anywhere' does not exist"
    ]
    assert not (archive / ".uploaded").exists()
    assert (archive / NAME).exists()


def test_unreachable_endpoint_is_one_line_and_exit_1(archive, unused_port):
    put_archived(archive, NAME, b"x\n")
    result = run("logjam-upload", "--once", "--retries", "1", "--endpoint-url", f"http://127.0.0.1:{unused_port}",
                 archive, f"s3://bucket/{TEMPLATE}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach S3 endpoint" in result.stderr
    assert not (archive / ".uploaded").exists()


def test_large_file_goes_multipart_and_arrives_intact(archive, bucket, s3_proxy, s3_client):
    data = os.urandom(12 * 1024 * 1024 + 123)
    (archive / NAME).write_bytes(data)

    result = upload(archive, bucket, s3_proxy, "--multipart-threshold", "5MiB")

    assert result.returncode == 0, result.stderr
    assert keys(s3_client, bucket) == {"db/2013/07/27/" + NAME: data}
    calls = without_probe(s3_proxy.calls())
    # create, 3 parts, complete: no list of unfinished uploads (the journal in
    # the archive directory knows which uploads a killed pass left)
    assert [method for method, _ in calls] == ["POST", "PUT", "PUT", "PUT", "POST"]
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_wrong_credentials_are_one_line_and_exit_2(archive, authenticating_s3_server):
    put_archived(archive, NAME, b"x\n")
    env = clean_env(AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG0", AWS_SECRET_ACCESS_KEY="wrong")
    result = run("logjam-upload", "--once", "--endpoint-url", authenticating_s3_server,
                 archive, f"s3://bucket/{TEMPLATE}", env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0]
    assert "InvalidAccessKeyId" in lines[0]
    assert not (archive / ".uploaded").exists()


def test_verify_checks_recorded_uploads_by_head_and_in_full(archive, bucket, s3_proxy, s3_client):
    put_archived(archive, NAME, b"kept\n")
    put_archived(archive, "db-20130727T1300Z.log.gz", b"tampered\n")
    put_archived(archive, "db-20130727T1400Z.log.gz", b"deleted\n")
    assert upload(archive, bucket, s3_proxy).returncode == 0
    assert upload(archive, bucket, s3_proxy, "--verify").returncode == 0
    assert upload(archive, bucket, s3_proxy, "--verify=full").returncode == 0

    # Same size, same metadata, other bytes: the plain MD5 ETag contradicts
    # the local file, and that wins over the metadata (review item 3).
    tampered_key = "db/2013/07/27/db-20130727T1300Z.log.gz"
    head = s3_client.head_object(Bucket=bucket, Key=tampered_key)
    original = s3_client.get_object(Bucket=bucket, Key=tampered_key)["Body"].read()
    s3_client.delete_object(Bucket=bucket, Key=tampered_key)
    s3_client.put_object(Bucket=bucket, Key=tampered_key, Body=bytes(b ^ 1 for b in original[:20]) + original[20:],
                         Metadata=head["Metadata"])
    s3_client.delete_object(Bucket=bucket, Key="db/2013/07/27/db-20130727T1400Z.log.gz")
    s3_proxy.clear()

    head_check = upload(archive, bucket, s3_proxy, "--verify")
    assert head_check.returncode == 1
    assert "db-20130727T1400Z.log.gz: s3://" in head_check.stderr and "missing at the destination" in head_check.stderr
    assert "db-20130727T1300Z.log.gz: s3://" in head_check.stderr and "MD5 ETag is not the local file's" in head_check.stderr
    assert {method for method, _ in s3_proxy.calls()} == {"HEAD"}

    full_check = upload(archive, bucket, s3_proxy, "--verify=full")
    assert full_check.returncode == 1
    assert "db-20130727T1300Z.log.gz" in full_check.stderr
    assert "2 problem(s)" in full_check.stderr


def test_zst_files_are_stored_as_application_zstd(archive, bucket, s3_proxy, s3_client):
    import zstandard

    name = "db-20130727T1200Z.log.zst"
    (archive / name).write_bytes(zstandard.ZstdCompressor().compress(b"zstd log\n"))
    assert upload(archive, bucket, s3_proxy).returncode == 0
    head = s3_client.head_object(Bucket=bucket, Key=f"db/2013/07/27/{name}")
    assert head["ContentType"] == "application/zstd"
    assert "ContentEncoding" not in head
    assert head["Metadata"]["logjam-log-sha256"] == hashlib.sha256(b"zstd log\n").hexdigest()


def test_template_too_long_for_s3_is_refused_before_any_request(archive, s3_proxy):
    put_archived(archive, NAME, b"x\n")
    template = "x" * 1014 + "/{prefix}/{year}/{month}/{day}/{filename}"  # 1,027 fixed bytes (5 slashes, 8 date digits)
    result = upload(archive, "bucket", s3_proxy, template=template)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("logjam-upload: error: key template 'xxxx")
    assert "its fixed text alone is 1027 bytes, and a key may have 1024" in line
    assert s3_proxy.calls() == []


def test_key_made_too_long_by_one_name_fails_that_file_and_the_pass_goes_on(archive, bucket, s3_proxy, s3_client):
    long_name = "d" * 230 + "-20130727T1200Z.log.gz"
    put_archived(archive, long_name, b"long\n")
    short = put_archived(archive, NAME, b"short\n")
    template = "y" * 700 + "/{prefix}/{year}/{month}/{day}/{filename}"  # the long name's key: 1,188 bytes

    result = upload(archive, bucket, s3_proxy, template=template)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and long_name[:40] in errors[0], result.stderr
    assert "bytes, more than the 1024 allowed" in errors[0]
    assert keys(s3_client, bucket) == {"y" * 700 + "/db/2013/07/27/" + NAME: short}
    assert os.listdir(archive / ".uploaded") == [NAME]
    assert not [path for _, path in s3_proxy.calls() if long_name[:40] in path]  # never sent


def test_dot_segment_in_an_s3_template_is_refused(archive, s3_proxy):
    put_archived(archive, NAME, b"x\n")
    result = upload(archive, "bucket", s3_proxy, template="{prefix}/../{year}/{month}/{day}/{filename}")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "'..' path segment" in line
    assert s3_proxy.calls() == []


def test_another_hosts_upload_of_the_same_key_in_flight_is_left_alone(archive, bucket, s3_proxy, s3_client):
    # Hosts sharing keys (no {hostname}): one's multipart upload must not
    # abort the other's (#12). logjam aborts only uploads it recorded.
    theirs = s3_client.create_multipart_upload(Bucket=bucket, Key="db/2013/07/27/" + NAME)["UploadId"]
    data = os.urandom(6 * 1024 * 1024)
    (archive / NAME).write_bytes(data)

    result = upload(archive, bucket, s3_proxy, "--multipart-threshold", "5MiB")

    assert result.returncode == 0, result.stderr
    assert keys(s3_client, bucket) == {"db/2013/07/27/" + NAME: data}
    left = [item["UploadId"] for item in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == [theirs]
    assert not [call for call in s3_proxy.calls() if call[0] in ("GET", "DELETE") and ".logjam-probe-" not in call[1]]


def test_the_backend_uses_a_client_it_is_given(archive, bucket, s3_client, s3_server):
    # The client seam (s3transfer's): an embedder's or a test's own boto3
    # client, here one whose every request is counted by an event hook.
    from logjam import fsutil
    from logjam.backends.base import LocalFile, PutResult
    from logjam.backends.s3 import S3Uploader
    from logjam.backends.s3_options import S3Config
    from logjam.codecs import codec_for_filename
    from logjam.integrity import file_fingerprint

    sent = []
    s3_client.meta.events.register("before-send.s3", lambda request, **kwargs: sent.append(request.method))
    uploader = S3Uploader(f"s3://{bucket}/{TEMPLATE}", S3Config(conditional_writes="off"), client=s3_client)
    uploader.connect()
    assert uploader.client is s3_client
    assert uploader.destination() == ("s3", s3_server, bucket)  # where the given client sends requests
    data = put_archived(archive, NAME, b"through the given client\n")
    archive_fd = fsutil.open_dir(str(archive))
    fd = os.open(archive / NAME, os.O_RDONLY)
    try:
        uploader.begin_pass(archive_fd)
        local = LocalFile(fd=fd, name=NAME, fingerprint=file_fingerprint(fd, codec_for_filename(NAME)))
        assert uploader.put(local, "db/2013/07/27/" + NAME, check_stop=lambda: None) is PutResult.STORED
    finally:
        os.close(fd)
        os.close(archive_fd)
    assert sent == ["PUT"]
    assert keys(s3_client, bucket) == {"db/2013/07/27/" + NAME: data}


def test_the_backend_makes_its_client_from_a_session_it_is_given(bucket, s3_client, s3_server):
    import boto3

    from logjam.backends.s3 import S3Uploader
    from logjam.backends.s3_options import S3Config

    s3_client.put_object(Bucket=bucket, Key="k", Body=b"12345")
    session = boto3.session.Session(aws_access_key_id="testing-key-id", aws_secret_access_key="testing-secret",
                                    region_name="us-east-1")
    sent = []
    session.events.register("before-send.s3", lambda request, **kwargs: sent.append(request.method))
    uploader = S3Uploader(f"s3://{bucket}/{TEMPLATE}", S3Config(endpoint_url=s3_server, retries=2), session=session)
    uploader.connect()
    assert uploader.client.meta.endpoint_url == s3_server
    assert uploader.client.meta.config.retries["total_max_attempts"] == 2  # the config still applies
    assert uploader.head("k").size == 5
    assert sent == ["HEAD"]
