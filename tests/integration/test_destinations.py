"""A file counts as uploaded only at the destination it was confirmed at
(issue #9), and only a fingerprint proves that an object holds it (issue #8
§4): retention, --verify and logjam-status --check, against file:// and a
real S3 over HTTP (moto), all in-process through main()."""

from __future__ import annotations

import gzip
import json
import logging
import os

import pytest

from logjam.markers import LedgerEntry
from logjam.status import main as status_main
from tests.conftest import CREDENTIALS, tree
from tests.integration.test_upload_s3 import keys

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
OLD = "db-20130727T1200Z.log.gz"
OLD_KEY = f"db/2013/07/27/{OLD}"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # main() points the root logger at this test's stderr; the in-process
    # moto server logs there too (its 404s are warnings).
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger("werkzeug"), "disabled", True)


@pytest.fixture
def run_status(capsys):
    def status(*args) -> tuple[int, str, str]:
        code = status_main([*map(str, args)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return status


def marker(archive, name: str = OLD) -> LedgerEntry:
    return LedgerEntry.from_bytes(name, (archive / ".uploaded" / name).read_bytes())


# -- a changed destination (issue #9) ------------------------------------------------

def test_switching_from_file_to_s3_and_back_sends_each_destination_its_backlog_once(
        archive, dest, bucket, s3_proxy, s3_client, run_upload, run_status):
    file_uri, s3_uri = f"file://{dest}/{TEMPLATE}", f"s3://{bucket}/{TEMPLATE}"
    s3 = ("--endpoint-url", s3_proxy.url)
    files = {f"db-20130727T{hour}00Z.log.gz": gzip.compress(hour.encode()) for hour in ("12", "13")}
    for name, data in files.items():
        (archive / name).write_bytes(data)
    assert run_upload(archive, file_uri)[0] == 0

    status, err = run_upload(*s3, archive, s3_uri)

    assert status == 0, err
    assert keys(s3_client, bucket) == {f"db/2013/07/27/{name}": data for name, data in files.items()}
    assert err.count(f"2 file(s) recorded as uploaded to file://{dest}, not to s3://{bucket} at {s3_proxy.url}") == 1
    # One marker per file, listing each destination.
    assert sorted(os.listdir(archive / ".uploaded")) == sorted(files)
    assert [str(c.destination) for c in marker(archive).confirmations] == [
        f"file://{dest}", f"s3://{bucket} at {s3_proxy.url}"]

    # A file uploaded while the URI pointed at S3 ...
    newer = "db-20130727T1400Z.log.gz"
    (archive / newer).write_bytes(gzip.compress(b"14"))
    assert run_upload(*s3, archive, s3_uri)[0] == 0
    copies = {path: os.stat(dest / path).st_ino for path in tree(dest)}

    # ... is the only one sent when it points back at file://.
    status, err = run_upload(archive, file_uri)

    assert status == 0, err
    assert tree(dest) == {f"db/2013/07/27/{name}": (archive / name).read_bytes() for name in [*files, newer]}
    assert {path: os.stat(dest / path).st_ino for path in copies} == copies  # nothing copied again
    assert f"1 file(s) recorded as uploaded to s3://{bucket} at {s3_proxy.url}, not to file://{dest}" in err
    s3_proxy.clear()
    assert run_upload(*s3, archive, s3_uri) == (0, "")
    assert s3_proxy.calls() == []  # nothing new for either: no request at all

    # logjam-status shows both destinations; with --check, this one's count.
    code, out, _ = run_status("--json", archive.parent)
    [report] = json.loads(out)
    [stream] = report["streams"]
    assert stream["uploaded"]["files"] == 3
    assert {where: tally["files"] for where, tally in stream["destinations"].items()} == {
        f"file://{dest}": 3, f"s3://{bucket} at {s3_proxy.url}": 3}


def test_retention_deletes_only_what_is_confirmed_at_this_runs_destination(
        archive, dest, bucket, s3_proxy, s3_client, run_upload):
    data = gzip.compress(b"only copy\n")
    (archive / OLD).write_bytes(data)
    assert run_upload(archive, f"file://{dest}/{TEMPLATE}")[0] == 0
    s3 = ("--endpoint-url", s3_proxy.url, "--delete-uploaded-after", "1d")

    status, err = run_upload(*s3, archive, f"s3://{bucket}/{TEMPLATE}")

    # Confirmed at file:// only: kept, and sent to S3.
    assert status == 0, err
    assert (archive / OLD).read_bytes() == data
    assert keys(s3_client, bucket) == {OLD_KEY: data}

    status, err = run_upload(*s3, archive, f"s3://{bucket}/{TEMPLATE}")

    assert status == 0, err
    assert not (archive / OLD).exists() and not (archive / ".uploaded" / OLD).exists()
    assert f"deleted {archive}/{OLD} (uploaded to s3://{bucket}/{OLD_KEY}, older than 1d)" in err


def test_a_changed_key_template_is_not_a_new_destination(archive, dest, run_upload):
    (archive / OLD).write_bytes(b"x")
    assert run_upload(archive, f"file://{dest}/{TEMPLATE}")[0] == 0

    # (For file://, the root is the path before the first field.)
    status, err = run_upload(archive, f"file://{dest}/{{prefix}}/moved/{{year}}{{month}}{{day}}/{{filename}}")

    assert (status, err) == (0, "")
    assert list(tree(dest)) == [OLD_KEY]


def test_a_mistyped_bucket_with_check_is_a_usage_error(tmp_path, archive, s3_proxy, run_status):
    (archive / OLD).write_bytes(b"x")
    (archive / ".uploaded").mkdir()
    code, out, err = run_status("--check", f"s3://no-such-bucket-here/{TEMPLATE}", "--endpoint-url", s3_proxy.url,
                                archive.parent)
    assert (code, out) == (2, "")
    assert err == "logjam-status: error: bucket 'no-such-bucket-here' does not exist\n"


# -- what proves an upload (issue #8 §4) ----------------------------------------------

def replace_object(s3_client, bucket, key, body, *, multipart=False):
    """Puts body at key as another tool would: no logjam metadata, no SHA-256 checksum."""
    s3_client.delete_object(Bucket=bucket, Key=key)
    if not multipart:
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
        return
    upload_id = s3_client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3_client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=body)["ETag"]
    s3_client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})


def test_an_object_of_the_right_size_but_other_bytes_is_no_proof(
        archive, bucket, s3_proxy, s3_client, run_upload, run_status):
    data = gzip.compress(b"precious\n")
    (archive / OLD).write_bytes(data)
    s3 = ("--endpoint-url", s3_proxy.url)
    uri = f"s3://{bucket}/{TEMPLATE}"
    assert run_upload(*s3, archive, uri)[0] == 0
    other = bytes(b ^ 0xFF for b in data)
    replace_object(s3_client, bucket, OLD_KEY, other)

    status, err = run_upload(*s3, "--verify", archive, uri)
    assert status == 1
    assert f"{OLD}: s3://{bucket}/{OLD_KEY}: MD5 ETag is not the local file's" in err

    code, out, err = run_status("--json", "--check", uri, *s3, archive.parent)
    assert code == 1
    assert json.loads(out)[0]["streams"][0]["missing"]["files"] == 1
    assert "MD5 ETag is not the local file's" in err

    status, err = run_upload(*s3, "--delete-uploaded-after", "1d", archive, uri)

    assert status == 0, err
    assert (archive / OLD).read_bytes() == data  # the only copy is kept ...
    assert "is missing (or changed) at the destination; kept" in err
    assert keys(s3_client, bucket) == {  # ... and sent again beside the impostor
        OLD_KEY: other, "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz": data}


def test_an_object_without_a_fingerprint_is_not_confirmed(archive, bucket, s3_proxy, s3_client, run_upload, run_status):
    data = gzip.compress(b"precious\n")
    (archive / OLD).write_bytes(data)
    s3 = ("--endpoint-url", s3_proxy.url)
    uri = f"s3://{bucket}/{TEMPLATE}"
    assert run_upload(*s3, archive, uri)[0] == 0
    # A multipart ETag is no MD5 of the bytes, and there is no checksum or metadata.
    replace_object(s3_client, bucket, OLD_KEY, bytes(len(data)), multipart=True)

    status, err = run_upload(*s3, "--verify", archive, uri)
    assert status == 1
    assert "not confirmed" in err and "1 problem(s)" in err

    code, out, err = run_status("--json", "--check", uri, *s3, archive.parent)
    assert code == 1
    assert json.loads(out)[0]["streams"][0]["unconfirmed"]["files"] == 1

    status, err = run_upload(*s3, "--delete-uploaded-after", "1d", archive, uri)
    assert status == 0, err
    assert (archive / OLD).read_bytes() == data
    assert f"{archive}/{OLD}: kept: s3://{bucket}/{OLD_KEY} is not confirmed" in err
    assert marker(archive).confirmations  # still recorded; nothing sent again
    assert list(keys(s3_client, bucket)) == [OLD_KEY]


def test_a_file_copy_replaced_by_other_bytes_of_the_same_size_is_no_proof(archive, dest, run_upload, run_status):
    data = gzip.compress(b"precious\n")
    (archive / OLD).write_bytes(data)
    uri = f"file://{dest}/{TEMPLATE}"
    assert run_upload(archive, uri)[0] == 0
    (dest / OLD_KEY).write_bytes(bytes(len(data)))

    status, err = run_upload("--verify", archive, uri)
    assert status == 1
    assert f"{OLD}: file://{dest}/{OLD_KEY}: sha256 metadata is" in err

    code, _, _ = run_status("--check", uri, archive.parent)
    assert code == 1

    status, err = run_upload("--delete-uploaded-after", "1d", archive, uri)
    assert status == 0, err
    assert (archive / OLD).read_bytes() == data
    assert tree(dest) == {OLD_KEY: bytes(len(data)),
                          "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz": data}


def test_matching_metadata_on_other_bytes_is_different_not_confirmed(
        s3_store, archive, monkeypatch, run_upload, run_status):
    # Review item 3: the object re-PUT with other bytes of the same size and
    # the original logjam metadata. Its plain MD5 ETag contradicts the local
    # file: that wins over the metadata, on both stores.
    for name, value in s3_store.credentials.items():
        monkeypatch.setenv(name, value)
    data = gzip.compress(os.urandom(3000))
    (archive / OLD).write_bytes(data)
    s3 = ("--endpoint-url", s3_store.endpoint)
    uri = f"s3://{s3_store.bucket}/{TEMPLATE}"
    assert run_upload(*s3, archive, uri)[0] == 0
    client, bucket = s3_store.client, s3_store.bucket
    metadata = client.head_object(Bucket=bucket, Key=OLD_KEY)["Metadata"]
    other = os.urandom(len(data))
    client.put_object(Bucket=bucket, Key=OLD_KEY, Body=other, Metadata=metadata)
    assert client.head_object(Bucket=bucket, Key=OLD_KEY)["Metadata"] == metadata

    status, err = run_upload(*s3, "--verify", archive, uri)
    assert status == 1, err
    assert f"{OLD}: s3://{bucket}/{OLD_KEY}: MD5 ETag is not the local file's (although its sha256 metadata matches)" in err

    code, out, err = run_status("--json", "--check", uri, *s3, archive.parent)
    assert code == 1, err
    assert json.loads(out)[0]["streams"][0]["missing"]["files"] == 1
    assert "MD5 ETag is not the local file's" in err

    status, err = run_upload(*s3, "--delete-uploaded-after", "1d", archive, uri)

    assert status == 0, err
    assert (archive / OLD).read_bytes() == data  # the only good copy is kept ...
    assert "is missing (or changed) at the destination; kept" in err
    # ... and sent again beside the impostor, not "found already uploaded" there.
    duplicate = "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz"
    assert s3_store.objects() == {OLD_KEY: other, duplicate: data}
    assert marker(archive).confirmations[0].key == duplicate


def test_a_wrong_destination_is_not_a_passing_check(archive, dest, tmp_path, run_upload, run_status):
    # Review item 9: --verify and --check against a destination nothing was
    # uploaded to (a typo'd bucket or root) found "0 of 3 verified" and exited 0.
    for hour in ("10", "11", "12"):
        (archive / f"db-20130727T{hour}00Z.log.gz").write_bytes(gzip.compress(hour.encode()))
    assert run_upload(archive, f"file://{dest}/{TEMPLATE}")[0] == 0
    other = tmp_path / "other"
    other.mkdir()
    wrong = f"file://{other}/{TEMPLATE}"
    line = f"3 files are recorded as uploaded only to file://{dest}; none at file://{other}"

    status, err = run_upload("--verify", archive, wrong)
    assert status == 1, err
    assert f"ERROR {archive}: {line}\n" in err
    assert err.count("\n") == 2, err  # that line and the summary, not one line per file

    code, out, err = run_status("--json", "--check", wrong, archive.parent)
    assert code == 1
    assert err == f"logjam-status: {archive}: {line}\n"
    assert json.loads(out)[0]["streams"][0]["elsewhere"] == {"files": 3, "bytes": sum(
        (archive / name).stat().st_size for name in os.listdir(archive) if name.endswith(".gz"))}

    # The right destination still passes; once one file is sent to the other
    # destination too, the other two are "not at" it.
    assert run_upload("--verify", archive, f"file://{dest}/{TEMPLATE}")[0] == 0
    assert run_status("--check", f"file://{dest}/{TEMPLATE}", archive.parent)[0] == 0
    os.rename(archive / "db-20130727T1100Z.log.gz", tmp_path / "aside")
    os.rename(archive / "db-20130727T1200Z.log.gz", tmp_path / "aside2")
    assert run_upload(archive, wrong)[0] == 0
    os.rename(tmp_path / "aside", archive / "db-20130727T1100Z.log.gz")
    os.rename(tmp_path / "aside2", archive / "db-20130727T1200Z.log.gz")
    status, err = run_upload("--verify", archive, wrong)
    assert status == 1
    assert f"2 files are recorded as uploaded only to file://{dest}; not at file://{other}" in err
