"""Multipart uploads to S3: part sizes, part workers and the shared part
buffers (a mixin of S3Uploader)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import botocore.config
import botocore.exceptions

from logjam.backends.base import LocalFile, OffsetReader, Throttle
from logjam.backends.s3_errors import KeyTaken, error_code
from logjam.backends.s3_state import S3State
from logjam.concurrency import map_concurrently
from logjam.errors import FileError

log = logging.getLogger("logjam.upload")


PART_SIZE = 8 * 1024 * 1024  # memory held per part in flight (as the AWS CLI)


MAX_PARTS = 10_000


PART_WORKERS = 4  # parts in flight for the whole process while several files upload


# Parts in flight while one file uploads alone: the AWS CLI keeps 10 (80 MiB).
# Uploading 1 GB in bench/ (parts no longer read again for the signature),
# interleaved at load 6-11: 6 peaked at 105 MB, 0.93x the CLI's speed; 8 at
# 122 MB, 0.86x; 10 at 139 MB, 0.90x: more parts bought no speed there.
PART_WORKERS_ALONE = 6


def part_workers(size: int, part_size: int, *, files_in_flight: int) -> int:
    """Takes a file's size, its part size and how many multipart uploads are
    under way (this one included). Returns how many of its parts to send at
    once: all the process may hold when it is alone, fewer when files share
    the part buffers, fewer when its parts are larger than PART_SIZE (over
    80 GiB) so the bytes held stay the same, never more than it has parts."""
    limit = PART_WORKERS_ALONE if files_in_flight <= 1 else PART_WORKERS
    return max(1, min(limit, limit * PART_SIZE // part_size, -(-size // part_size)))


def part_size_for(size: int, *, part_size: int = PART_SIZE) -> int:
    """Takes a file size. Returns a part size that keeps the upload within S3's 10,000 parts."""
    while size > part_size * MAX_PARTS:
        part_size *= 2
    return part_size


def b64(digest: bytes) -> str:
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


class MultipartUploads:
    """S3Uploader's multipart uploads: parts sent from a shared pool of buffers,
    each upload journalled in the state file so a killed pass's is aborted."""

    if TYPE_CHECKING:  # provided by S3Uploader
        client: Any
        bucket: str
        state: S3State | None
        multipart_threshold: int
        throttle: Throttle
        honours_complete: bool
        _part_buffers: queue.SimpleQueue[bytearray]
        _part_buffer_count: int
        _part_buffer_lock: threading.Lock
        _multipart_in_flight: int

        def describe(self, key: str) -> str: ...
        def _store_id(self) -> str: ...
        def _exists(self, key: str) -> bool: ...
        def _object_args(self, local: LocalFile) -> dict[str, Any]: ...


    def _put_multipart(self, local: LocalFile, key: str, check_stop: Callable[[], None]) -> None:
        if not self.honours_complete and self._exists(key):
            raise KeyTaken  # no parts sent to a key that is taken
        token, upload_id = self._create_upload(key, ChecksumAlgorithm="SHA256", **self._object_args(local))
        try:
            part_size = part_size_for(local.size, part_size=min(PART_SIZE, self.multipart_threshold))

            def upload_part(number: int) -> dict[str, Any]:
                # One pool of part slots for all files at once: memory stays at
                # PART_WORKERS parts however many --jobs run.
                with self._part_buffer(part_size) as buffer:
                    check_stop()
                    offset = (number - 1) * part_size
                    body = _pread_into(local.fd, buffer, min(part_size, local.size - offset), offset)
                    self.throttle.consume(len(body), check_stop)
                    checksum = b64(hashlib.sha256(body).digest())
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
                raise KeyTaken  # written meanwhile: Complete would replace it
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, IfNoneMatch="*",
            )
        except BaseException:
            # Stored parts cost money until aborted; never leave them behind.
            self._abort(key, upload_id, token)
            raise
        self._forget_upload(token)

    def _create_upload(self, key: str, **args: Any) -> tuple[str | None, str]:
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
            if error_code(error) == "NoSuchUpload":  # completed or aborted already
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
            if error_code(error) == "NoSuchBucket":
                raise
            log.warning("could not look for an unfinished multipart upload of %s %s: %s; left for the bucket's "
                        "lifecycle rule", self.describe(key), reason, error)
        except botocore.exceptions.BotoCoreError as error:
            log.warning("could not look for an unfinished multipart upload of %s %s: %s (will try again on the "
                        "next pass)", self.describe(key), reason, error)
            return
        self._forget_upload(token)

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
