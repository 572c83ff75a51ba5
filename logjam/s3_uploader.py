"""The s3:// backend: conditional writes (If-None-Match: *), checksums S3
verifies, multipart for large files with bounded memory, and botocore errors
turned into one-line logjam errors at this boundary.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import logging
import os
import queue
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import BinaryIO

import boto3
import botocore.config
import botocore.exceptions

from logjam import fsutil
from logjam.errors import FileError, PassError, UsageError
from logjam.integrity import METADATA_SHA256
from logjam.service import map_concurrently
from logjam.uploaders import LocalFile, OffsetReader, PutResult, RemoteObject, Throttle, reader

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
}
TAKEN_ERRORS = {"PreconditionFailed"}  # 412: If-None-Match found an object
RACE_ERRORS = {"ConditionalRequestConflict"}  # 409: a concurrent write; try again


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
        self.retry_mode = getattr(options, "retry_mode", None) or "standard"
        self.jobs = getattr(options, "jobs", None) or 1
        self.multipart_threshold = getattr(options, "multipart_threshold", None) or MULTIPART_THRESHOLD
        self.client = None
        # PART_WORKERS part buffers for the whole process, allocated once and
        # reused: fresh bytes per part let glibc's per-thread arenas
        # keep growing (measured: 300 MB for 4 x 256 MB files at --jobs 4).
        self._part_buffers: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._part_buffer_count = 0
        self._part_buffer_lock = threading.Lock()
        self._multipart_in_flight = 0
        self.throttle = Throttle(getattr(options, "max_bandwidth", None))
        self.extra_args = object_options(options)

    def check_uri(self) -> None:
        pass  # the bucket is checked by the first request of a pass with work

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

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

    def put(self, local: LocalFile, key: str, *, check_stop: Callable[[], None]) -> PutResult:
        try:
            if local.size < self.multipart_threshold:
                self._put_object(local, key, check_stop)
            else:
                self._put_multipart(local, key, check_stop)
            return PutResult.STORED
        except botocore.exceptions.ClientError as error:
            if _taken(error):
                return self._compare(local, key)
            raise self._wrap(error, key) from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, key) from None

    def _put_object(self, local: LocalFile, key: str, check_stop: Callable[[], None]) -> None:
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
        # A process killed mid-upload (SIGKILL, power loss) could not abort:
        # its parts would be billed for ever. The key is not recorded yet and
        # this archive's lock is held, so unfinished uploads of it are ours.
        self._abort_uploads(key, reason="left by an interrupted pass")
        response = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **self._object_args(local)
        )
        upload_id = response["UploadId"]
        try:
            if response.get("ResponseMetadata", {}).get("RetryAttempts"):
                # botocore sent the create again: an earlier attempt may have
                # created an upload whose reply was lost.
                self._abort_uploads(key, keep=upload_id, reason="started by a retried request")
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
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, IfNoneMatch="*",
            )
        except BaseException:
            # Stored parts cost money until aborted; never leave them behind.
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
                log.warning("could not abort multipart upload %s of %s: %s", upload_id, self.describe(key), error)
            raise

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

    def _abort_uploads(self, key: str, *, keep: str | None = None, reason: str) -> None:
        """Aborts the unfinished multipart uploads of exactly key, except keep.
        Best effort: it needs s3:ListBucketMultipartUploads; without it, S3's
        AbortIncompleteMultipartUpload lifecycle rule is the backstop."""
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=key)
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] != key or upload["UploadId"] == keep:
                        continue
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
                    log.info("aborted multipart upload %s of %s, %s", upload["UploadId"], self.describe(key), reason)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            if isinstance(error, botocore.exceptions.ClientError) and _code(error) == "NoSuchBucket":
                raise self._wrap(error, key) from None
            log.warning("could not look for unfinished multipart uploads of %s: %s", self.describe(key), error)

    def head(self, key: str) -> RemoteObject | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            if _code(error) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._wrap(error, key, failed_to="check") from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, key, failed_to="check") from None
        return RemoteObject(head["ContentLength"], head.get("Metadata", {}))

    def open_object(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._wrap(error, key, failed_to="read") from None

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
            if _code(error) in ("404", "NoSuchKey", "NotFound"):
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
    holds local's bytes, or None when nothing in it tells."""
    if METADATA_SHA256 in head.get("Metadata", {}):
        return head["Metadata"][METADATA_SHA256] == local.sha256
    if head.get("ChecksumSHA256") and "-" not in head["ChecksumSHA256"]:
        return head["ChecksumSHA256"] == _b64(bytes.fromhex(local.sha256))
    etag = str(head.get("ETag", "")).strip('"')
    if len(etag) == 32 and "-" not in etag and head.get("ServerSideEncryption") != "aws:kms" \
            and "SSECustomerAlgorithm" not in head:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in fsutil.read_chunks(local.fd):
            digest.update(chunk)
        return digest.hexdigest() == etag
    return None


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
