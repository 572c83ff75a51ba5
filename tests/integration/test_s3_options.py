"""S3 object options: the stored object really carries each one."""

from __future__ import annotations

import gzip
import os
import time

import pytest

from tests.conftest import run, tree
from tests.integration.test_upload_s3 import NAME, TEMPLATE, upload

KEY = f"db/2013/07/27/{NAME}"


@pytest.fixture(params=["single", "multipart"])
def archived(request, archive):
    data = gzip.compress(b"x\n") if request.param == "single" else os.urandom(6 * 1024 * 1024)
    (archive / NAME).write_bytes(data)
    return ["--multipart-threshold", "5MiB"] if request.param == "multipart" else []


def test_storage_class_encryption_acl_and_tags(archive, archived, bucket, s3_proxy, s3_client):
    result = upload(archive, bucket, s3_proxy, *archived, "--storage-class", "STANDARD_IA", "--sse", "AES256",
                    "--acl", "bucket-owner-full-control", "--tag", "team=ops", "--tag", "retention=7 years")

    assert result.returncode == 0, result.stderr
    head = s3_client.head_object(Bucket=bucket, Key=KEY)
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ServerSideEncryption"] == "AES256"
    tags = s3_client.get_object_tagging(Bucket=bucket, Key=KEY)["TagSet"]
    assert sorted((tag["Key"], tag["Value"]) for tag in tags) == [("retention", "7 years"), ("team", "ops")]
    grants = s3_client.get_object_acl(Bucket=bucket, Key=KEY)["Grants"]
    assert {grant["Permission"] for grant in grants} == {"FULL_CONTROL"}


def test_sse_kms_with_a_key(archive, bucket, s3_proxy, s3_client):
    (archive / NAME).write_bytes(gzip.compress(b"secret\n"))
    result = upload(archive, bucket, s3_proxy, "--sse", "aws:kms", "--sse-kms-key-id", "alias/logs")
    assert result.returncode == 0, result.stderr
    head = s3_client.head_object(Bucket=bucket, Key=KEY)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/logs")
    # A second pass after losing the ledger recognises the object (its ETag is no MD5 under KMS).
    (archive / ".uploaded" / NAME).unlink()
    again = upload(archive, bucket, s3_proxy, "--sse", "aws:kms", "--sse-kms-key-id", "alias/logs")
    assert again.returncode == 0 and "found already uploaded" in again.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sse-kms-key-id", "k"], "--sse-kms-key-id needs --sse aws:kms"),
        (["--storage-class", "COLD"], "invalid choice"),
        (["--tag", "novalue"], "not KEY=VALUE"),
        (["--acl", "everyone"], "invalid choice"),
        (["--max-bandwidth", "fast"], "not a rate"),
    ],
)
def test_bad_options_are_usage_errors(archive, s3_proxy, args, message):
    result = upload(archive, "bucket", s3_proxy, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_s3_options_are_refused_for_file_destinations(archive, tmp_path):
    result = run("logjam-upload", "--once", "--storage-class", "GLACIER_IR", archive, f"file://{tmp_path}/{TEMPLATE}")
    assert result.returncode == 2
    assert "--storage-class: for s3:// destinations only" in result.stderr


def test_max_bandwidth_keeps_uploads_under_the_rate(archive, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    for hour in range(3):
        (archive / f"db-20130727T{hour:02d}00Z.log.gz").write_bytes(os.urandom(100_000))

    started = time.monotonic()
    result = run("logjam-upload", "--once", "--max-bandwidth", "150000", "--jobs", "3",
                 archive, f"file://{dest}/{TEMPLATE}")
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert len(tree(dest)) == 3
    # 300,000 bytes at 150,000 B/s, all jobs together: at least about 2 s
    # (the first chunk goes at once, so allow for it).
    assert elapsed >= (300_000 - 100_000) / 150_000


def test_from_args_builds_the_config_every_command_shares():
    from logjam import cat, status
    from logjam import upload as upload_command
    from logjam.backends.s3_options import S3Config, from_args

    args = upload_command.build_parser().parse_args([
        "--endpoint-url", "http://store", "--retries", "3", "--storage-class", "GLACIER_IR", "--sse", "aws:kms",
        "--sse-kms-key-id", "alias/k", "--tag", "a=b", "--conditional-writes", "off", "--max-bandwidth", "1MiB",
        "--multipart-threshold", "8MiB", "ARCHIVE", "s3://b/" + TEMPLATE])
    config = from_args(args, jobs=2, hostname="h")
    assert config == S3Config(endpoint_url="http://store", retries=3, retry_mode="adaptive", jobs=2,
                              multipart_threshold=8 << 20, max_bandwidth=1 << 20, storage_class="GLACIER_IR",
                              sse="aws:kms", sse_kms_key_id="alias/k", tags=(("a", "b"),),
                              conditional_writes="off", hostname="h")
    assert config.object_args() == {"StorageClass": "GLACIER_IR", "ServerSideEncryption": "aws:kms",
                                    "SSEKMSKeyId": "alias/k", "Tagging": "a=b"}
    # logjam-cat takes three of the options (its own default retry mode); the
    # others are not on its command line, yet their defaults reach the config.
    cat_args = cat.build_parser().parse_args(["s3://b/" + TEMPLATE, "--since", "1d", "--retries", "2"])
    assert from_args(cat_args) == S3Config(retries=2, retry_mode="standard")
    with pytest.raises(SystemExit):
        cat.build_parser().parse_args(["s3://b/" + TEMPLATE, "--since", "1d", "--storage-class", "STANDARD"])
    status_args = status.build_parser().parse_args(["--check", "s3://b/" + TEMPLATE, "--endpoint-url", "http://s", "d"])
    assert from_args(status_args) == S3Config(endpoint_url="http://s")
