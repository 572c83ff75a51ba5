"""logjam-upload against S3 that fails: the real console script, a real S3
server (moto) on loopback, and tests/s3proxy.py between them answering 500
InternalError and 503 SlowDown, resetting connections, delaying and cutting
replies short. No mocking of boto3; retries and backoff are botocore's own.

What must hold whatever the faults: a file is recorded in the ledger only
once S3 confirmed it, and deleted (--delete-uploaded-after) only once a HEAD
confirmed it is still there; --once exits 1 while anything is left to
upload; a failed multipart upload is aborted; and once the faults stop the
next pass stores every file intact, exactly once.

Runtime is kept to about 30 s: botocore's backoff after a SlowDown starts at
up to 1 s (50 ms after other errors), so throttling tests use few requests
and every test that expects failure passes a small --retries.
"""

from __future__ import annotations

import collections
import gzip
import os
import re

import pytest

from tests.conftest import call
from tests.s3proxy import (
    INTERNAL_ERROR,
    SLOW_DOWN,
    Fault,
    S3Proxy,
    delay,
    is_complete_multipart,
    is_create_multipart,
    is_put_object,
    is_upload_part,
    reset_before,
    reset_mid_body,
    truncate_response,
)

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
MULTIPART = ("--multipart-threshold", "5MiB")
def label(action) -> str:
    return str(action).replace(" ", "-")


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [\w.]+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def archived(archive, hours: range, *, size: int = 2048) -> dict[str, bytes]:
    """Archived gzip logs db-20130727T{hh}00Z.log.gz. Returns {key: bytes}."""
    files = {}
    for hour in hours:
        name = f"db-20130727T{hour:02d}00Z.log.gz"
        data = gzip.compress(os.urandom(size), compresslevel=1, mtime=0)
        (archive / name).write_bytes(data)
        files[f"db/2013/07/27/{name}"] = data
    return files


def upload(archive, bucket, proxy: S3Proxy, *extra: str):
    # moto honours If-None-Match: no probe here, so that these tests count
    # the upload path's own requests (test_stores.py puts faults on the probe).
    return call("logjam-upload", "--once", "--endpoint-url", proxy.url, "--conditional-writes", "off", *extra,
                archive, f"s3://{bucket}/{TEMPLATE}")


def stored(s3_client, bucket) -> dict[str, bytes]:
    listed = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def ledger(archive) -> list[str]:
    folder = archive / ".uploaded"
    return sorted(os.listdir(folder)) if folder.exists() else []


def names(files: dict[str, bytes]) -> list[str]:
    return sorted(key.rsplit("/", 1)[1] for key in files)


def pending_uploads(s3_client, bucket) -> list[str]:
    return [upload["UploadId"] for upload in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def assert_failed_cleanly(result, archive, files: dict[str, bytes]) -> None:
    """Exit 1, one ERROR line per file, nothing but log lines, nothing recorded or deleted."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert all(LOG_LINE.match(line) for line in lines), result.stderr
    errors = [line for line in lines if " ERROR " in line]
    for name in names(files):
        assert len([line for line in errors if f"/{name}: " in line]) == 1, result.stderr
    assert ledger(archive) == []
    assert sorted(path.name for path in archive.iterdir() if not path.name.startswith(".")) == names(files)


def assert_all_uploaded(result, archive, bucket, s3_client, files: dict[str, bytes]) -> None:
    """Exit 0, every file stored intact under its own key (no duplicates), all recorded, no upload left open."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert stored(s3_client, bucket) == files
    assert ledger(archive) == names(files)
    assert pending_uploads(s3_client, bucket) == []


def assert_every_fault_was_retried(proxy: S3Proxy) -> None:
    """Each request was sent once more than it got a fault: it got through in the end, and only once."""
    faults = collections.Counter(request.target for request in proxy.faulted())
    for target, attempts in proxy.attempts().items():
        assert attempts == faults[target] + 1, (target, attempts, faults[target])


# -- transient errors at a rate ------------------------------------------------------


@pytest.mark.parametrize(
    "action, mode, multipart",
    [(INTERNAL_ERROR, "standard", True), (SLOW_DOWN, "standard", True), (SLOW_DOWN, "adaptive", False)],
    ids=["500-standard", "503-standard", "503-adaptive"],
)
def test_transient_errors_at_a_rate_are_retried_and_every_file_arrives_intact(
        archive, bucket, s3_proxy, s3_client, action, mode, multipart):
    # Adaptive mode also paces every request after a SlowDown (about one a
    # second here): without the multipart file it has fewer to send.
    files = archived(archive, range(10, 13))
    if multipart:
        files.update(archived(archive, range(13, 14), size=6 << 20))  # two parts
    # Half the requests fail, none more than twice: with 3 attempts each gets
    # through. With --jobs 1 the seeded draws make the first requests' faults
    # the same every run (the first PUT gets one).
    s3_proxy.set_faults(Fault(action, rate=0.5, per_request=2), seed=1)

    result = upload(archive, bucket, s3_proxy, "--retries", "3", "--retry-mode", mode, "--jobs", "1", *MULTIPART)

    assert_all_uploaded(result, archive, bucket, s3_client, files)
    assert len(s3_proxy.faulted()) >= 2
    assert {request.fault for request in s3_proxy.faulted()} == {str(action)}
    assert_every_fault_was_retried(s3_proxy)


# -- every request fails: nothing recorded, and the next pass does it all -----------------


@pytest.mark.parametrize(
    "action",
    [INTERNAL_ERROR, SLOW_DOWN, reset_before(), reset_mid_body(), truncate_response()],
    ids=label,
)
def test_failing_pass_records_nothing_and_the_next_pass_uploads_each_file_once(
        archive, bucket, s3_proxy, s3_client, action):
    files = archived(archive, range(10, 12), size=256 << 10)
    s3_proxy.set_faults(Fault(action))

    failed = upload(archive, bucket, s3_proxy, "--retries", "2")

    assert_failed_cleanly(failed, archive, files)
    assert all(request.fault for request in s3_proxy.requests)
    # The first attempt and one retry of each request (after a reply is
    # lost, the PUT's retry finds the object there and the HEAD fails).
    assert set(s3_proxy.attempts().values()) == {2}
    methods = {method for method, _, _ in s3_proxy.attempts()}
    assert methods == ({"PUT", "HEAD"} if action.kind == "truncate_response" else {"PUT"})
    if action.kind == "truncate_response":
        # S3 stored the objects; only the replies were lost, so nothing is recorded.
        assert stored(s3_client, bucket) == files
    else:
        assert stored(s3_client, bucket) == {}

    s3_proxy.clear_faults()
    s3_proxy.clear()
    passed = upload(archive, bucket, s3_proxy, "--retries", "2")

    assert_all_uploaded(passed, archive, bucket, s3_client, files)
    assert s3_proxy.faulted() == []
    if action.kind == "truncate_response":
        assert passed.stderr.count("found already uploaded") == 2


# -- --retries and backoff ---------------------------------------------------------


@pytest.mark.parametrize("retries", [1, 3])
def test_retries_sets_the_attempts_per_request(archive, bucket, s3_proxy, s3_client, retries):
    files = archived(archive, range(10, 11))
    s3_proxy.set_faults(Fault(INTERNAL_ERROR, where=is_put_object))

    result = upload(archive, bucket, s3_proxy, "--retries", str(retries))

    assert_failed_cleanly(result, archive, files)
    assert len(s3_proxy.matching(is_put_object)) == retries
    assert s3_proxy.calls() == [("PUT", f"/{bucket}/{key}") for key in files] * retries


def test_retries_back_off(archive, bucket, s3_proxy, s3_client):
    """botocore's standard mode waits rand(0, 1) * 50 ms * 2**i before retry i+1
    (1 s * 2**i after throttling). Five retries after InternalError wait
    0.775 s on average, and under 40 ms in all with a chance of 3e-6, while
    immediate retries on loopback take about 5 ms in all."""
    files = archived(archive, range(10, 11))
    s3_proxy.set_faults(Fault(INTERNAL_ERROR, where=is_put_object, count=5))

    result = upload(archive, bucket, s3_proxy, "--retries", "6")

    assert_all_uploaded(result, archive, bucket, s3_client, files)
    attempts = s3_proxy.matching(is_put_object)
    assert [request.fault for request in attempts] == [str(INTERNAL_ERROR)] * 5 + [None]
    gaps = [later.started - earlier.finished for earlier, later in zip(attempts, attempts[1:])]
    assert all(gap >= 0 for gap in gaps)
    assert sum(gaps) > 0.04, gaps


def test_adaptive_mode_paces_requests_after_a_slow_down(archive, bucket, s3_proxy, s3_client):
    """After a throttling error, botocore's adaptive mode sends through a token
    bucket refilled at a rate measured from the requests so far (about one a
    second for a client that just started): the next file's PUT waits for a
    token, where standard mode would send it at once."""
    files = archived(archive, range(10, 12))
    s3_proxy.set_faults(Fault(SLOW_DOWN, where=is_put_object, count=1))

    result = upload(archive, bucket, s3_proxy, "--retry-mode", "adaptive", "--jobs", "1")

    assert_all_uploaded(result, archive, bucket, s3_client, files)
    slowed, retried, following = s3_proxy.matching(is_put_object)
    assert (slowed.fault, retried.fault, following.fault) == (str(SLOW_DOWN), None, None)
    assert slowed.path == retried.path != following.path
    assert following.started - retried.finished > 0.1


# -- resets, delays and lost replies -----------------------------------------------------


@pytest.mark.parametrize("action", [reset_before(), reset_mid_body()], ids=label)
def test_connection_reset_is_retried(archive, bucket, s3_proxy, s3_client, action):
    files = archived(archive, range(10, 11), size=1 << 20)
    s3_proxy.set_faults(Fault(action, where=is_put_object, count=1))

    result = upload(archive, bucket, s3_proxy)

    assert_all_uploaded(result, archive, bucket, s3_client, files)
    assert [request.fault for request in s3_proxy.matching(is_put_object)] == [str(action), None]


def test_slow_replies_are_waited_for_not_retried(archive, bucket, s3_proxy, s3_client):
    files = archived(archive, range(10, 12))
    s3_proxy.set_faults(Fault(delay(0.3)))

    result = upload(archive, bucket, s3_proxy, "--jobs", "1")

    assert_all_uploaded(result, archive, bucket, s3_client, files)
    puts = s3_proxy.matching(is_put_object)
    assert len(puts) == 2  # no retry
    assert all(request.finished - request.started >= 0.3 for request in puts)


@pytest.mark.parametrize("cut", [1, 2], ids=["reply-lost", "reply-lost-then-412-cut"])
def test_lost_reply_to_a_stored_put_ends_recorded_without_a_duplicate(archive, bucket, s3_proxy, s3_client, cut):
    # S3 stores the object but its reply is cut: the retry's If-None-Match
    # gets 412 (whose XML error body may be cut too), and the HEAD shows the
    # object is this very file.
    files = archived(archive, range(10, 11))
    s3_proxy.set_faults(Fault(truncate_response(), where=is_put_object, count=cut))

    result = upload(archive, bucket, s3_proxy)

    assert_all_uploaded(result, archive, bucket, s3_client, files)
    assert "found already uploaded" in result.stderr
    assert [method for method, _ in s3_proxy.calls()] == ["PUT", "PUT", "HEAD"]


def test_reply_cut_in_its_headers_logs_no_traceback(archive, bucket, s3_proxy, s3_client):
    files = archived(archive, range(10, 11))
    s3_proxy.set_faults(Fault(truncate_response(in_headers=True), where=is_put_object, count=1))

    result = upload(archive, bucket, s3_proxy)

    # The 200 status line arrived whole: S3 confirmed the upload.
    assert_all_uploaded(result, archive, bucket, s3_client, files)
    assert all(LOG_LINE.match(line) for line in result.stderr.strip().splitlines()), result.stderr


# -- multipart -----------------------------------------------------------------------


@pytest.mark.parametrize("action", [INTERNAL_ERROR, reset_mid_body()], ids=label)
def test_multipart_upload_whose_parts_fail_is_aborted(archive, bucket, s3_proxy, s3_client, action):
    files = archived(archive, range(10, 11), size=6 << 20)  # two parts
    s3_proxy.set_faults(Fault(action, where=is_upload_part))

    failed = upload(archive, bucket, s3_proxy, "--retries", "2", *MULTIPART)

    assert_failed_cleanly(failed, archive, files)
    assert pending_uploads(s3_client, bucket) == []
    assert stored(s3_client, bucket) == {}
    parts = collections.Counter(request.query for request in s3_proxy.matching(is_upload_part))
    assert sorted(parts.values()) == [2, 2]
    assert [method for method, _ in s3_proxy.calls()][-1] == "DELETE"  # the abort, after the parts

    s3_proxy.clear_faults()
    passed = upload(archive, bucket, s3_proxy, "--retries", "2", *MULTIPART)

    assert_all_uploaded(passed, archive, bucket, s3_client, files)


@pytest.mark.parametrize("action", [INTERNAL_ERROR, truncate_response()], ids=label)
def test_multipart_upload_whose_completion_fails_is_aborted(archive, bucket, s3_proxy, s3_client, action):
    files = archived(archive, range(10, 11), size=6 << 20)
    s3_proxy.set_faults(Fault(action, where=is_complete_multipart))

    failed = upload(archive, bucket, s3_proxy, "--retries", "1", *MULTIPART)

    assert_failed_cleanly(failed, archive, files)
    assert pending_uploads(s3_client, bucket) == []
    assert [method for method, _ in s3_proxy.calls()][-1] == "DELETE"
    # A completion whose reply was lost did complete; one that failed did not.
    assert stored(s3_client, bucket) == (files if action.kind == "truncate_response" else {})

    s3_proxy.clear_faults()
    passed = upload(archive, bucket, s3_proxy, *MULTIPART)

    assert_all_uploaded(passed, archive, bucket, s3_client, files)
    if action.kind == "truncate_response":
        assert "found already uploaded" in passed.stderr


def test_upload_started_by_a_create_whose_reply_was_lost_is_left_to_the_lifecycle_rule(
        archive, bucket, s3_proxy, s3_client):
    # S3 creates the upload but the reply is cut; botocore creates another.
    # The first one's id never reached logjam, and another host's upload of
    # the same key looks the same in a listing: logjam says so, lists nothing
    # and aborts nothing it did not start (README, "Interrupted multipart uploads").
    files = archived(archive, range(10, 11), size=6 << 20)
    s3_proxy.set_faults(Fault(truncate_response(), where=is_create_multipart, count=1))

    result = upload(archive, bucket, s3_proxy, *MULTIPART)

    assert result.returncode == 0, result.stderr
    assert stored(s3_client, bucket) == files
    assert ledger(archive) == names(files)
    assert len(s3_proxy.matching(is_create_multipart)) == 2
    assert "sent again after a lost reply" in result.stderr and "lifecycle rule" in result.stderr
    assert {method for method, _ in s3_proxy.calls()} == {"POST", "PUT"}  # no list, no abort
    assert len(pending_uploads(s3_client, bucket)) == 1


# -- retention: the only deletion -----------------------------------------------------


@pytest.mark.parametrize("action", [INTERNAL_ERROR, reset_before(), truncate_response()], ids=label)
def test_file_is_not_deleted_while_its_upload_cannot_be_confirmed(archive, bucket, s3_proxy, s3_client, action):
    files = archived(archive, range(10, 11))
    (name,) = names(files)
    assert upload(archive, bucket, s3_proxy).returncode == 0
    data = (archive / name).read_bytes()
    s3_proxy.clear()
    s3_proxy.set_faults(Fault(action, method="HEAD"))

    kept = upload(archive, bucket, s3_proxy, "--retries", "2", "--delete-uploaded-after", "36h")

    # Nothing is left to upload: a file kept for now is a warning, not a failure.
    assert kept.returncode == 0, kept.stderr
    assert kept.stderr.strip().splitlines() == [kept.stderr.strip()]
    assert re.match(LOG_LINE.pattern + rf".*/{name}: kept, could not confirm its upload: "
                    rf"failed to check s3://{bucket}/db/2013/07/27/{name}: ", kept.stderr), kept.stderr
    assert (archive / name).read_bytes() == data
    assert ledger(archive) == [name]
    assert [request.fault for request in s3_proxy.requests] == [str(action)] * 2

    s3_proxy.clear_faults()
    passed = upload(archive, bucket, s3_proxy, "--delete-uploaded-after", "36h")

    assert passed.returncode == 0, passed.stderr
    assert not (archive / name).exists() and ledger(archive) == []
    assert stored(s3_client, bucket) == files


def test_failed_retention_check_does_not_hold_up_uploads(archive, bucket, s3_proxy, s3_client):
    old = archived(archive, range(10, 11))
    assert upload(archive, bucket, s3_proxy).returncode == 0
    new = archived(archive, range(11, 12))
    s3_proxy.set_faults(Fault(INTERNAL_ERROR, method="HEAD"))

    result = upload(archive, bucket, s3_proxy, "--retries", "1", "--delete-uploaded-after", "36h")

    assert result.returncode == 0, result.stderr
    assert "kept, could not confirm its upload" in result.stderr
    assert names(old)[0] in os.listdir(archive)
    assert stored(s3_client, bucket) == {**old, **new}
    assert ledger(archive) == names({**old, **new})
