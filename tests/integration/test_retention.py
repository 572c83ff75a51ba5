"""--delete-uploaded-after and --dry-run: what operators do to keep disks from filling."""

from __future__ import annotations

import datetime
import gzip
import os

import pytest

from tests.conftest import call, tree
from tests.integration.test_upload_s3 import TEMPLATE, keys

OLD = "db-20130727T1200Z.log.gz"


def recent_name(hours_ago: int) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours_ago)
    return f"db-{stamp:%Y%m%dT%H}00Z.log.gz"


def upload(archive, bucket, proxy, *extra):
    return call("logjam-upload", "--once", "--endpoint-url", proxy.url, *extra, archive, f"s3://{bucket}/{TEMPLATE}")


def test_deletes_only_confirmed_uploads_older_than_the_duration(archive, bucket, s3_proxy, s3_client):
    recent = recent_name(2)
    (archive / OLD).write_bytes(gzip.compress(b"old\n"))
    (archive / recent).write_bytes(gzip.compress(b"recent\n"))
    assert upload(archive, bucket, s3_proxy).returncode == 0
    never_uploaded = "web-20130101T0000Z.log.gz"
    (archive / never_uploaded).write_bytes(gzip.compress(b"not yet sent\n"))
    (archive / ".uploaded" / "x").write_text("")  # a foreign marker is left alone
    s3_proxy.clear()

    result = upload(archive, bucket, s3_proxy, "--delete-uploaded-after", "36h", "--jobs", "1")

    assert result.returncode == 0, result.stderr
    assert not (archive / OLD).exists() and not (archive / ".uploaded" / OLD).exists()
    assert (archive / recent).exists() and (archive / ".uploaded" / recent).exists()
    # The never-uploaded file was uploaded in this pass, not deleted: its hour
    # is old, but it had no confirmed upload when retention ran.
    assert (archive / never_uploaded).exists()
    assert f"deleted {archive}/{OLD} (uploaded to s3://{bucket}/db/2013/07/27/{OLD}, older than 36h)" in result.stderr
    assert s3_proxy.calls()[0] == ("HEAD", f"/{bucket}/db/2013/07/27/{OLD}")
    assert len(keys(s3_client, bucket)) == 3


def test_file_whose_object_was_removed_remotely_is_kept_and_sent_again(archive, bucket, s3_proxy, s3_client):
    data = gzip.compress(b"precious\n")
    (archive / OLD).write_bytes(data)
    assert upload(archive, bucket, s3_proxy).returncode == 0
    s3_client.delete_object(Bucket=bucket, Key=f"db/2013/07/27/{OLD}")

    result = upload(archive, bucket, s3_proxy, "--delete-uploaded-after", "1d")

    assert result.returncode == 0, result.stderr
    assert (archive / OLD).read_bytes() == data
    assert "is missing (or changed) at the destination; kept" in result.stderr
    assert keys(s3_client, bucket) == {f"db/2013/07/27/{OLD}": data}  # uploaded again, same pass
    assert (archive / ".uploaded" / OLD).exists()


def test_failed_upload_is_never_deleted(archive, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "db").write_text("a file where a folder should be")
    (archive / OLD).write_bytes(b"only copy")
    result = call("logjam-upload", "--once", "--delete-uploaded-after", "1s", archive, f"file://{dest}/{TEMPLATE}")
    assert result.returncode == 1
    assert (archive / OLD).read_bytes() == b"only copy"


@pytest.mark.parametrize("value", ["36", "h", "1.5d", "-3d", "7y"])
def test_bad_duration_is_a_usage_error(archive, value):
    result = call("logjam-upload", "--once", f"--delete-uploaded-after={value}", archive, f"file:///tmp/{TEMPLATE}")
    assert result.returncode == 2
    assert "not a duration" in result.stderr


def test_upload_dry_run_changes_nothing_and_names_exact_keys(archive, bucket, s3_proxy, s3_client):
    (archive / OLD).write_bytes(gzip.compress(b"old\n"))
    assert upload(archive, bucket, s3_proxy).returncode == 0
    (archive / "web-20130727T0500Z-eu.log.gz").write_bytes(b"new")
    before_tree, before_bucket = tree(archive.parent), keys(s3_client, bucket)
    s3_proxy.clear()

    result = upload(archive, bucket, s3_proxy, "--dry-run", "--delete-uploaded-after", "1d")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"would delete {archive}/{OLD} (uploaded to s3://{bucket}/db/2013/07/27/{OLD}; confirmed by HEAD first)",
        f"would upload {archive}/web-20130727T0500Z-eu.log.gz -> s3://{bucket}/web/2013/07/27/web-20130727T0500Z-eu.log.gz (3 bytes)",
    ]
    assert s3_proxy.calls() == []
    assert tree(archive.parent) == before_tree
    assert keys(s3_client, bucket) == before_bucket


def test_compress_dry_run_changes_nothing(make_logs):
    log_dir = make_logs({"app-20130727T1200Z.log": b"x" * 10, "app-20990101T0000Z.log": b"future"})
    before = tree(log_dir)
    listing = sorted(os.listdir(log_dir))

    result = call("logjam-compress", "--dry-run", log_dir)  # no --once needed: a dry run is one pass

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"would compress {log_dir}/app-20130727T1200Z.log -> {log_dir}/archive/app-20130727T1200Z.log.gz (10 bytes)"
    ]
    assert tree(log_dir) == before
    assert sorted(os.listdir(log_dir)) == listing
