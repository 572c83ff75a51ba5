"""The s3:// backend: conditional writes (If-None-Match: *), checksums S3
verifies, multipart for large files with bounded memory, and botocore errors
turned into one-line logjam errors at this boundary.

Not every S3-compatible store honours If-None-Match (s3rver, older MinIO and
Ceph accept the header and overwrite anyway). Before its first write to a
bucket, a pass probes the store once (see ``_probe``) and remembers the
answer in the archive's state file (``logjam.backends.s3_state``). On a store that
does not honour it, every write is preceded by a HEAD of the key (and a
multipart upload is checked again right before Complete): that never
overwrites what was there before, but cannot rule out a race with another
writer of the same key between the HEAD and the write.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import logging
import os
import queue
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import boto3
import botocore.config
import botocore.exceptions

from logjam import fsutil
from logjam.backends.base import Download, KeyClaims, LocalFile, OffsetReader, PutResult, RemoteObject, Throttle, reader
from logjam.backends.s3_state import DENIED, HONOURED, IGNORED, STATE_NAME, S3State
from logjam.concurrency import map_concurrently
from logjam.errors import FileError, PassError, UsageError
from logjam.proof import Proof, judge
from logjam.template import MAX_KEY_BYTES, KeyTemplate, key_problem

log = logging.getLogger("logjam.upload")

MULTIPART_THRESHOLD = 64 * 1024 * 1024  # one PUT below this: the fewest requests
PART_SIZE = 8 * 1024 * 1024  # memory held per part in flight (as the AWS CLI)
MAX_PARTS = 10_000
PART_WORKERS = 4  # parts in flight for the whole process while several files upload
# Parts in flight while one file uploads alone: the AWS CLI keeps 10 (80 MiB);
# 6 kept pace with it in bench/ (256 MB: 1.12x its speed) at 126 MB peak; 8
# reached 150 MB, over the bound.
PART_WORKERS_ALONE = 6


def part_workers(size: int, part_size: int, *, files_in_flight: int) -> int:
    """Takes a file's size, its part size and how many multipart uploads are
    under way (this one included). Returns how many of its parts to send at
    once: all the process may hold when it is alone, fewer when files share
    the part buffers, never more than it has parts."""
    limit = PART_WORKERS_ALONE if files_in_flight <= 1 else PART_WORKERS
    return max(1, min(limit, -(-size // part_size)))

CREDENTIAL_ERRORS = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
    "403",  # a HEAD's refusal: no body, so no code
}
TAKEN_ERRORS = {"PreconditionFailed"}  # 412: If-None-Match found an object
RACE_ERRORS = {"ConditionalRequestConflict"}  # 409: a concurrent write; try again
DENIED_ERRORS = {"AccessDenied", "AllAccessDisabled"}
MISSING_ERRORS = {"404", "NoSuchKey", "NotFound"}

CONDITIONAL_WRITES = ("auto", "require", "off")
PROBE_MARK = ".logjam-probe-"


class _KeyTaken(Exception):
    """A HEAD found an object at the key (on a store without conditional writes)."""


def object_options(options: argparse.Namespace | None) -> dict:
    """The S3 arguments chosen on the command line: storage class, encryption,
    ACL and tags, as the AWS CLI names them."""
    args: dict = {}
    if getattr(options, "storage_class", None):
        args["StorageClass"] = options.storage_class
    if getattr(options, "sse", None):
        args["ServerSideEncryption"] = options.sse
    if getattr(options, "sse_kms_key_id", None):
        args["SSEKMSKeyId"] = options.sse_kms_key_id
    if getattr(options, "acl", None):
        args["ACL"] = options.acl
    if getattr(options, "tag", None):
        args["Tagging"] = urllib.parse.urlencode(options.tag)
    return args


def part_size_for(size: int, *, part_size: int = PART_SIZE) -> int:
    """Takes a file size. Returns a part size that keeps the upload within S3's 10,000 parts."""
    while size > part_size * MAX_PARTS:
        part_size *= 2
    return part_size


class S3Uploader:
    """s3://BUCKET/TEMPLATE."""

    scheme = "s3"

    def __init__(self, uri: str, options: argparse.Namespace | None = None) -> None:
        parsed = urllib.parse.urlsplit(uri)
        if not parsed.netloc:
            raise UsageError(f"{uri}: no bucket (expected s3://BUCKET/TEMPLATE)")
        self.bucket = parsed.netloc
        self.template = urllib.parse.unquote(parsed.path).lstrip("/")
        self.endpoint_url = getattr(options, "endpoint_url", None)
        self.retries = getattr(options, "retries", None) or 5
        # adaptive: one token bucket per client, so a SlowDown slows every
        # --jobs thread (measured against standard in bench/fleet.py).
        self.retry_mode = getattr(options, "retry_mode", None) or "adaptive"
        self.jobs = getattr(options, "jobs", None) or 1
        self.multipart_threshold = getattr(options, "multipart_threshold", None) or MULTIPART_THRESHOLD
        self.client: Any = None  # a botocore S3 client (untyped), made by connect()
        self._warned_delimiter = False  # said once: the store does not group keys by delimiter
        # PART_WORKERS part buffers for the whole process, allocated once and
        # reused: fresh bytes per part let glibc's per-thread arenas
        # keep growing (measured: 300 MB for 4 x 256 MB files at --jobs 4).
        self._part_buffers: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._part_buffer_count = 0
        self._part_buffer_lock = threading.Lock()
        self._multipart_in_flight = 0
        self.throttle = Throttle(getattr(options, "max_bandwidth", None))
        self.extra_args = object_options(options)
        self.conditional_writes = getattr(options, "conditional_writes", None) or "auto"
        self.hostname = getattr(options, "hostname", None) or socket.gethostname()
        # Set by begin_pass (the state file, what the store honours).
        self.state: S3State | None = None
        self.honours_put = self.honours_complete = True
        # One writer per key in this process (see KeyClaims): HEAD then PUT
        # is not atomic between the threads of --jobs.
        self.claims = KeyClaims()
        self._warned_off = False

    def check_uri(self) -> None:
        # The bucket is checked by the first request of a pass with work; the
        # key length here, before any request.
        fixed = KeyTemplate.parse(self.template).fixed_bytes()
        if fixed > MAX_KEY_BYTES:
            raise UsageError(f"key template {self.template[:60]!r}... is too long for S3: its fixed text alone is "
                             f"{fixed} bytes, and a key may have {MAX_KEY_BYTES}")

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def destination(self) -> tuple[str, str | None, str]:
        # The endpoint as botocore will choose it; None is AWS (any region).
        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return "s3", endpoint or None, self.bucket

    def check_destination(self) -> None:
        """A HEAD of a missing object cannot tell a missing bucket: ask the
        bucket. A refusal (a policy narrowed to a prefix) proves nothing."""
        self.connect()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as error:
            if _code(error) in ("404", "NoSuchBucket", "NotFound"):
                raise UsageError(f"bucket {self.bucket!r} does not exist") from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, "", failed_to="check") from None

    def connect(self) -> None:
        if self.client is not None:
            return
        config = botocore.config.Config(
            retries={"mode": self.retry_mode, "total_max_attempts": self.retries},
            connect_timeout=10,
            max_pool_connections=max(10, PART_WORKERS_ALONE, self.jobs * PART_WORKERS),
            read_timeout=120,
        )
        try:
            self.client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, config=config)
        except (botocore.exceptions.BotoCoreError, ValueError) as error:
            raise UsageError(f"cannot set up S3 client: {error}") from None

    def begin_pass(self, archive_fd: int) -> None:
        self.state = S3State(archive_fd)
        self.claims.new_pass()
        store = self._store_id()
        try:
            self._clean_up(store)
            self._settle_conditional_writes(store)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._wrap(error, self._probe_prefix(), failed_to="probe") from None

    def _store_id(self) -> str:
        return f"{self.client.meta.endpoint_url} {self.bucket}"

    def put(self, local: LocalFile, key: str, *, check_stop: Callable[[], None]) -> PutResult:
        problem = key_problem(key, max_bytes=MAX_KEY_BYTES)
        if problem:
            raise FileError(f"{self.describe(key)[:80]}: {problem}")
        # The whole check-and-write, a multipart upload's last HEAD and
        # Complete included, with no other thread of this process at the key.
        return self.claims.put(key, local.name, lambda: self._put(local, key, check_stop))

    def _put(self, local: LocalFile, key: str, check_stop: Callable[[], None]) -> PutResult:
        try:
            if local.size < self.multipart_threshold:
                self._put_object(local, key, check_stop)
            else:
                self._put_multipart(local, key, check_stop)
            return PutResult.STORED
        except _KeyTaken:
            return self._compare(local, key)
        except botocore.exceptions.ClientError as error:
            if _taken(error):
                return self._compare(local, key)
            raise self._wrap(error, key) from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, key) from None

    def _put_object(self, local: LocalFile, key: str, check_stop: Callable[[], None]) -> None:
        if not self.honours_put and self._exists(key):
            raise _KeyTaken
        for _attempt in range(3):
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=reader(local, check_stop, self.throttle),
                    ContentLength=local.size,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_b64(bytes.fromhex(local.sha256)),
                    IfNoneMatch="*",
                    **self._object_args(local),
                )
                return
            except botocore.exceptions.ClientError as error:
                if _code(error) not in RACE_ERRORS:
                    raise
        raise FileError(f"{self.describe(key)}: concurrent writes kept conflicting")

    def _put_multipart(self, local: LocalFile, key: str, check_stop: Callable[[], None]) -> None:
        if not self.honours_complete and self._exists(key):
            raise _KeyTaken  # no parts sent to a key that is taken
        token, upload_id = self._create_upload(key, ChecksumAlgorithm="SHA256", **self._object_args(local))
        try:
            part_size = part_size_for(local.size, part_size=min(PART_SIZE, self.multipart_threshold))

            def upload_part(number: int) -> dict:
                # One pool of part slots for all files at once: memory stays at
                # PART_WORKERS parts however many --jobs run.
                with self._part_buffer(part_size) as buffer:
                    check_stop()
                    offset = (number - 1) * part_size
                    body = _pread_into(local.fd, buffer, min(part_size, local.size - offset), offset)
                    self.throttle.consume(len(body), check_stop)
                    checksum = _b64(hashlib.sha256(body).digest())
                    response = self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                        Body=OffsetReader(lambda at, size: body[at:at + size], len(body)), ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                    )
                return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}

            numbers = range(1, -(-local.size // part_size) + 1)
            with self._part_buffer_lock:
                self._multipart_in_flight += 1
                workers = part_workers(local.size, part_size, files_in_flight=self._multipart_in_flight)
            try:
                parts = map_concurrently(upload_part, numbers, workers=workers)
            finally:
                with self._part_buffer_lock:
                    self._multipart_in_flight -= 1
            check_stop()
            if not self.honours_complete and self._exists(key):
                raise _KeyTaken  # written meanwhile: Complete would replace it
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, IfNoneMatch="*",
            )
        except BaseException:
            # Stored parts cost money until aborted; never leave them behind.
            self._abort(key, upload_id, token)
            raise
        self._forget_upload(token)

    def _create_upload(self, key: str, **args) -> tuple[str | None, str]:
        """CreateMultipartUpload, journalled: the entry is made durable before
        the request and gets the upload id before the first part, so a killed
        pass's upload is aborted by the next pass (and nobody else's is).
        Returns (journal token, upload id)."""
        store = self._store_id()
        token = self.state.begin_upload(store, key) if self.state is not None else None
        try:
            response = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **args)
        except botocore.exceptions.ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500:
                self._forget_upload(token)  # refused: S3 created nothing
            raise
        upload_id = response["UploadId"]
        if self.state is not None and token is not None:
            self.state.set_upload_id(token, upload_id)
        if response.get("ResponseMetadata", {}).get("RetryAttempts"):
            # botocore sent the create again: an earlier attempt may have
            # created an upload whose reply was lost. Its id never reached us
            # and it cannot be told from another writer's upload of this key
            # (aborting that would break a host in flight): it is left.
            log.warning("CreateMultipartUpload of %s was sent again after a lost reply: an upload S3 may have "
                        "created for the lost one is left for the bucket's AbortIncompleteMultipartUpload "
                        "lifecycle rule", self.describe(key))
        return token, upload_id

    def _forget_upload(self, token: str | None) -> None:
        if self.state is not None and token is not None:
            self.state.drop_upload(token)

    def _abort(self, key: str, upload_id: str, token: str | None, *, reason: str | None = None) -> None:
        """Aborts one multipart upload of ours. Its journal entry is kept only
        when the abort may succeed later (a connection error, a 5xx)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError as error:
            if _code(error) == "NoSuchUpload":  # completed or aborted already
                self._forget_upload(token)
                return
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            later = " (will try again on the next pass)" if status >= 500 else "; left for the bucket's lifecycle rule"
            log.warning("could not abort multipart upload %s of %s: %s%s", upload_id, self.describe(key), error, later)
            if status < 500:
                self._forget_upload(token)
            return
        except botocore.exceptions.BotoCoreError as error:
            log.warning("could not abort multipart upload %s of %s: %s (will try again on the next pass)",
                        upload_id, self.describe(key), error)
            return
        self._forget_upload(token)
        if reason:
            log.info("aborted multipart upload %s of %s, %s", upload_id, self.describe(key), reason)

    def _abort_unseen(self, key: str, *, token: str, reason: str) -> None:
        """Aborts the unfinished uploads of exactly key: after a pass was killed
        between CreateMultipartUpload's reply and recording its id (a few
        milliseconds), the one case that lists uploads. With keys shared by
        several hosts (no {hostname}), another host's upload of this key in
        flight at that moment is aborted too: its Complete fails and it sends
        the file again on its next pass; nothing is lost. Needs
        s3:ListBucketMultipartUploads; without it, the lifecycle rule is the
        backstop."""
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=key)
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] == key:
                        self._abort(key, upload["UploadId"], None, reason=reason)
        except botocore.exceptions.ClientError as error:
            if _code(error) == "NoSuchBucket":
                raise
            log.warning("could not look for an unfinished multipart upload of %s %s: %s; left for the bucket's "
                        "lifecycle rule", self.describe(key), reason, error)
        except botocore.exceptions.BotoCoreError as error:
            log.warning("could not look for an unfinished multipart upload of %s %s: %s (will try again on the "
                        "next pass)", self.describe(key), reason, error)
            return
        self._forget_upload(token)

    # -- before the first write of a pass ------------------------------------------

    def _clean_up(self, store: str) -> None:
        """Aborts the multipart uploads a killed pass left (from the journal,
        and only those) and deletes its probe objects."""
        assert self.state is not None
        for entry in self.state.uploads(store):
            if entry["upload_id"]:
                self._abort(entry["key"], entry["upload_id"], entry["token"], reason="left by an interrupted pass")
            else:
                self._abort_unseen(entry["key"], token=entry["token"], reason="left by an interrupted pass")
        for key in self.state.probes(store):
            self._delete_probe(store, key)

    def _settle_conditional_writes(self, store: str) -> None:
        assert self.state is not None
        answer = self.state.store(store)
        if self.conditional_writes == "off":
            # off: no probe, trust If-None-Match; but never against what an
            # earlier probe of this archive learnt: where it found the header
            # ignored, keep checking with HEAD (an overwrite loses a log).
            self.honours_put = (answer or {}).get("put") != IGNORED
            self.honours_complete = (answer or {}).get("complete") != IGNORED
            if not (self.honours_put and self.honours_complete) and not self._warned_off:
                self._warned_off = True
                log.warning("s3://%s at %s %s (found by an earlier probe, kept in %s): --conditional-writes off "
                            "does not override that; logjam checks each key with HEAD before writing it",
                            self.bucket, self.client.meta.endpoint_url, _describe_answer(answer or {}), STATE_NAME)
            return
        if answer is None:
            answer = self._probe(store)
            self.state.set_store(store, answer)
        self.honours_put = answer.get("put") == HONOURED
        self.honours_complete = answer.get("complete") == HONOURED
        if self.honours_put and self.honours_complete:
            return
        where = f"s3://{self.bucket} at {self.client.meta.endpoint_url}"
        if self.conditional_writes == "require":
            raise UsageError(f"{where} {_describe_answer(answer)}; --conditional-writes require refuses it")
        log.warning("%s %s: logjam checks each key with HEAD before writing it, which never overwrites an "
                    "earlier object but cannot rule out a race with another writer of the same key (a template "
                    "with {hostname} gives each host its own keys)", where, _describe_answer(answer))

    def _probe_prefix(self) -> str:
        leading = KeyTemplate(self.template).leading_text(hostname=self.hostname)
        return leading[: MAX_KEY_BYTES - 64]

    def _probe(self, store: str) -> dict[str, str]:
        """Asks the store whether it honours If-None-Match: * on PutObject and
        on CompleteMultipartUpload: a conditional PUT of a small object at a
        key unique to this archive (under the template's fixed leading text,
        so a prefix-narrowed policy covers it), then the same again, which
        must fail with 412; then a one-part multipart upload to the same key,
        whose conditional Complete must fail with 412. The object is deleted
        afterwards where that is allowed. Returns {'put': ..., 'complete': ...},
        each honoured, ignored or denied (AccessDenied)."""
        assert self.state is not None
        key = f"{self._probe_prefix()}{PROBE_MARK}{secrets.token_hex(8)}"
        self.state.add_probe(store, key)  # deleted by a later pass if this one is killed
        try:
            denied = self._probe_first_put(key)
        except BaseException as error:
            refused = isinstance(error, botocore.exceptions.ClientError) \
                and error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500
            if refused or isinstance(error, botocore.exceptions.EndpointConnectionError):
                self.state.drop_probe(store, key)  # nothing was stored
            # else it may have been stored: the next pass deletes it
            raise
        if denied:
            self.state.drop_probe(store, key)  # nothing was stored
            put = complete = DENIED
        else:
            try:
                put = self._probe_second_put(key)
                complete = DENIED if put == DENIED else self._probe_complete(key)
            finally:
                self._delete_probe(store, key)
        answer = {"put": put, "complete": complete}
        if DENIED in answer.values():
            log.warning("s3://%s refused the conditional-write probe at %s (AccessDenied): treating it as a store "
                        "without conditional writes (to probe again once it is allowed, delete .logjam-s3-state.json "
                        "in the archive directory)", self.bucket, key)
        log.info("probed s3://%s at %s: If-None-Match on PutObject %s, on CompleteMultipartUpload %s",
                 self.bucket, self.client.meta.endpoint_url, put, complete)
        return answer

    def _probe_first_put(self, key: str) -> bool:
        """The probe's first conditional PUT. Returns True if it was denied."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"logjam conditional-write probe\n",
                                   IfNoneMatch="*", **self.extra_args)
        except botocore.exceptions.ClientError as error:
            if _code(error) in DENIED_ERRORS:
                return True
            raise
        return False

    def _probe_second_put(self, key: str) -> str:
        for _attempt in range(3):
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=b"logjam conditional-write probe, again\n",
                                       IfNoneMatch="*", **self.extra_args)
                return IGNORED
            except botocore.exceptions.ClientError as error:
                if _taken(error):
                    return HONOURED
                if _code(error) in DENIED_ERRORS:
                    return DENIED
                if _code(error) not in RACE_ERRORS:
                    raise
        raise FileError(f"{self.describe(key)}: concurrent writes kept conflicting")

    def _probe_complete(self, key: str) -> str:
        try:
            token, upload_id = self._create_upload(key, ChecksumAlgorithm="SHA256", **self.extra_args)
        except botocore.exceptions.ClientError as error:
            if _code(error) in DENIED_ERRORS:
                return DENIED
            raise
        body = b"logjam conditional-write probe, multipart\n"
        checksum = _b64(hashlib.sha256(body).digest())
        try:
            part = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=body,
                                           ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, IfNoneMatch="*",
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": checksum}]},
            )
        except botocore.exceptions.ClientError as error:
            self._abort(key, upload_id, token)
            if _taken(error):
                return HONOURED
            if _code(error) in DENIED_ERRORS:
                return DENIED
            raise
        except BaseException:
            self._abort(key, upload_id, token)
            raise
        self._forget_upload(token)
        return IGNORED

    def _delete_probe(self, store: str, key: str) -> None:
        assert self.state is not None
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            if _code(error) in ("NoSuchBucket", *MISSING_ERRORS):
                self.state.drop_probe(store, key)
                return
            if status >= 500:
                log.warning("could not delete the probe object %s: %s (will try again on the next pass)",
                            self.describe(key), error)
                return
            # AccessDenied (no s3:DeleteObject, as a least-privilege policy
            # has): the small object stays; nothing is wrong.
            log.info("left the probe object %s: %s", self.describe(key), _code(error))
        except botocore.exceptions.BotoCoreError as error:
            log.warning("could not delete the probe object %s: %s (will try again on the next pass)",
                        self.describe(key), error)
            return
        self.state.drop_probe(store, key)

    @contextlib.contextmanager
    def _part_buffer(self, size: int) -> Iterator[bytearray]:
        """Lends one of the part buffers (PART_WORKERS_ALONE while one file
        uploads, PART_WORKERS while several do), waiting for one to come back."""
        with self._part_buffer_lock:
            if self._part_buffer_count < self._part_buffer_limit() and self._part_buffers.empty():
                self._part_buffers.put(bytearray(0))
                self._part_buffer_count += 1
        buffer = self._part_buffers.get()
        try:
            if len(buffer) < size:
                buffer = bytearray(size)  # calloc'd: no second copy while it grows
            yield buffer
        finally:
            with self._part_buffer_lock:
                if self._part_buffer_count > self._part_buffer_limit():
                    self._part_buffer_count -= 1  # several files now share: let this one go
                else:
                    self._part_buffers.put(buffer)

    def _part_buffer_limit(self) -> int:
        return PART_WORKERS_ALONE if self._multipart_in_flight <= 1 else PART_WORKERS

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            if _code(error) in MISSING_ERRORS:
                return False
            raise
        return True

    def head(self, key: str) -> RemoteObject | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except botocore.exceptions.ClientError as error:
            if _code(error) in MISSING_ERRORS:
                return None
            raise self._wrap(error, key, failed_to="check") from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, key, failed_to="check") from None
        return RemoteObject(head["ContentLength"], head.get("Metadata", {}), *_digests(head))

    def open_object(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._wrap(error, key, failed_to="read") from None

    # -- reading back (logjam-cat) ------------------------------------------

    def list_keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every key that starts with prefix, with its size (one LIST per 1,000 keys)."""
        client: Any = self.client  # set by connect()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"], item["Size"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._wrap(error, prefix, failed_to="list") from None

    def list_levels(self, prefix: str) -> list[str]:
        """The common prefixes of the keys below prefix, up to the next "/"."""
        client: Any = self.client
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/")
            levels = [item["Prefix"] for page in pages for item in page.get("CommonPrefixes", [])]
            if levels or not client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1).get("Contents"):
                return levels
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._wrap(error, prefix, failed_to="list") from None
        # Keys below prefix, yet no common prefix: the store does not group
        # by delimiter (s3rver skips keys more than one level down). An empty
        # answer would read as "no logs"; derive the levels from the keys.
        if not self._warned_delimiter:
            self._warned_delimiter = True
            log.info("%s does not group keys by delimiter; listing every key below %r instead",
                        self.describe(""), prefix)
        found = {key[: len(prefix) + key.index("/", len(prefix)) - len(prefix) + 1]
                 for key, _size in self.list_keys(prefix) if "/" in key[len(prefix):]}
        return sorted(found)

    def get(self, key: str) -> Download:
        """The object at key: one GET, its body streamed, with its metadata
        and whatever checksum S3 kept of the whole object."""
        client: Any = self.client
        try:
            response = client.get_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._wrap(error, key, failed_to="read") from None
        sha256, md5 = _digests(response)
        return Download(response["Body"], response["ContentLength"], response.get("Metadata", {}),
                        sha256=sha256, md5=md5)

    def _object_args(self, local: LocalFile) -> dict:
        return {
            "ContentType": local.content_type,
            "Metadata": local.fingerprint.metadata(),
            **self.extra_args,
        }

    def _compare(self, local: LocalFile, key: str) -> PutResult:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except botocore.exceptions.ClientError as error:
            if _code(error) in MISSING_ERRORS:
                # Deleted between our PUT and HEAD: let the caller retry later.
                raise FileError(f"{self.describe(key)}: object vanished while checking it; will retry") from None
            raise self._wrap(error, key) from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, key) from None
        if head.get("ContentLength") != local.size:
            return PutResult.CONFLICT
        same = _same_by_checksum(head, local)
        if same is None:
            # Stored by another tool without a checksum we can read: compare the bytes.
            same = self._same_by_download(local, key)
        return PutResult.IDENTICAL if same else PutResult.CONFLICT

    def _same_by_download(self, local: LocalFile, key: str) -> bool:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            digest = hashlib.sha256()
            for chunk in iter(lambda: body.read(fsutil.CHUNK_SIZE), b""):
                digest.update(chunk)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._wrap(error, key) from None
        return digest.hexdigest() == local.sha256

    def _wrap(self, error: Exception, key: str, *, failed_to: str = "upload to") -> Exception:
        """A botocore error as a one-line logjam error; failed_to says what
        was being done (upload to, check, read) the destination."""
        destination = self.describe(key)
        if isinstance(error, botocore.exceptions.ClientError):
            code = _code(error)
            message = error.response.get("Error", {}).get("Message") or code
            if code == "NoSuchBucket":
                return UsageError(f"bucket {self.bucket!r} does not exist")
            if code in CREDENTIAL_ERRORS:
                return UsageError(f"S3 refused the credentials for {destination}: {code}: {message}")
            return FileError(f"failed to {failed_to} {destination}: {code}: {message}")
        if isinstance(error, botocore.exceptions.NoCredentialsError):
            return UsageError("no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an instance role)")
        if isinstance(error, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)):
            return PassError(f"cannot reach S3 endpoint: {error}")
        return FileError(f"failed to {failed_to} {destination}: {error}")


def _same_by_checksum(head: dict, local: LocalFile) -> bool | None:
    """Takes a HEAD response of an object of the right size. Returns whether it
    holds local's bytes, or None when nothing in it tells. The rule is
    ledger.judge's: any evidence that contradicts (an MD5 ETag against the
    local bytes too) wins over metadata that agrees."""

    def md5() -> str:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in fsutil.read_chunks(local.fd):
            digest.update(chunk)
        return digest.hexdigest()

    remote = RemoteObject(local.size, head.get("Metadata", {}), *_digests(head))
    verdict = judge(remote, local.fingerprint, local_md5=md5, thorough=True)
    return None if verdict.proof is Proof.UNCONFIRMED else verdict.confirmed


def _digests(response: dict) -> tuple[str | None, str | None]:
    """Takes a HEAD or GET response. Returns (sha256, md5) in hex where it
    states them for the whole object: a full-object ChecksumSHA256, an ETag
    that is the MD5 of the bytes (not multipart, not SSE-KMS or SSE-C).

    A multipart object's SHA-256 is a checksum of its parts' checksums. S3
    marks it ("...-3", ChecksumType COMPOSITE), but some stores (moto 5.2)
    send it bare: with a multipart ETag, only a checksum typed FULL_OBJECT
    is taken for the whole object's."""
    etag = str(response.get("ETag", "")).strip('"')
    multipart = "-" in etag
    sha256 = None
    checksum = response.get("ChecksumSHA256")
    full_object = response.get("ChecksumType", "FULL_OBJECT" if not multipart else None) == "FULL_OBJECT"
    if checksum and "-" not in checksum and full_object:
        with contextlib.suppress(ValueError):
            sha256 = base64.b64decode(checksum, validate=True).hex()
    plain = len(etag) == 32 and not multipart \
        and response.get("ServerSideEncryption") not in ("aws:kms", "aws:kms:dsse") \
        and "SSECustomerAlgorithm" not in response
    return sha256, etag.lower() if plain else None


def _describe_answer(answer: dict[str, str]) -> str:
    """{'put': 'ignored', 'complete': 'honoured'} -> 'ignores If-None-Match: * on PutObject'."""
    if DENIED in answer.values():
        return "could not be probed for conditional writes (AccessDenied)"
    ignored = [name for field, name in (("put", "PutObject"), ("complete", "CompleteMultipartUpload"))
               if answer.get(field) != HONOURED]
    return f"ignores If-None-Match: * on {' and '.join(ignored)}"


def _taken(error: botocore.exceptions.ClientError) -> bool:
    """Whether If-None-Match found an object: a 412, even one whose error
    body was lost (botocore then has only the status for a code)."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _code(error) in TAKEN_ERRORS or status == 412


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _pread_into(fd: int, buffer: bytearray, length: int, offset: int) -> memoryview:
    view = memoryview(buffer)[:length]
    done = 0
    while done < length:
        count = os.preadv(fd, [view[done:]], offset + done)
        if not count:
            raise FileError("file shrank while uploading")
        done += count
    return view
