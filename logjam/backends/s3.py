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

import base64
import contextlib
import hashlib
import logging
import os
import queue
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import boto3
import botocore.config
import botocore.exceptions

from logjam import fsutil
from logjam.backends.base import Download, KeyClaims, LocalFile, PutResult, RemoteObject, Throttle, reader
from logjam.backends.s3_errors import CREDENTIAL_ERRORS, MISSING_ERRORS, RACE_ERRORS, KeyTaken, error_code, is_taken
from logjam.backends.s3_multipart import PART_WORKERS, PART_WORKERS_ALONE, MultipartUploads, b64
from logjam.backends.s3_options import S3Config
from logjam.backends.s3_probe import ConditionalWriteProbe
from logjam.backends.s3_state import S3State
from logjam.errors import FileError, PassError, UsageError
from logjam.proof import Proof, judge
from logjam.template import MAX_KEY_BYTES, KeyTemplate, key_problem

log = logging.getLogger("logjam.upload")


class S3Uploader(MultipartUploads, ConditionalWriteProbe):
    """s3://BUCKET/TEMPLATE, with the settings in config.

    client: a boto3 S3 client to use instead of making one (its own
    endpoint, retries and credentials then apply, not config's); session: a
    boto3 Session to make the client from (credentials, profile, region).
    """

    scheme = "s3"
    collapses_empty_segments = False

    def __init__(self, uri: str, config: S3Config = S3Config(), *, client: Any = None,
                 session: boto3.session.Session | None = None) -> None:
        parsed = urllib.parse.urlsplit(uri)
        if not parsed.netloc:
            raise UsageError(f"{uri}: no bucket (expected s3://BUCKET/TEMPLATE)")
        self.bucket = parsed.netloc
        self.template = urllib.parse.unquote(parsed.path).lstrip("/")
        self.config = config
        self.endpoint_url = config.endpoint_url
        self.multipart_threshold = config.multipart_threshold
        self.client: Any = client  # a botocore S3 client (untyped); connect() makes one if not given
        self._session = session
        self._warned_delimiter = False  # said once: the store does not group keys by delimiter
        # PART_WORKERS part buffers for the whole process, allocated once and
        # reused: fresh bytes per part let glibc's per-thread arenas
        # keep growing (measured: 300 MB for 4 x 256 MB files at --jobs 4).
        self._part_buffers: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._part_buffer_count = 0
        self._part_buffer_lock = threading.Lock()
        self._multipart_in_flight = 0
        self.throttle = Throttle(config.max_bandwidth)
        self.extra_args = config.object_args()
        self.conditional_writes = config.conditional_writes
        self.hostname = config.hostname or socket.gethostname()
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
        if self.client is not None and not self.endpoint_url:
            endpoint = self.client.meta.endpoint_url  # a client given: where it sends requests
        else:
            endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return "s3", endpoint or None, self.bucket

    def check_destination(self) -> None:
        """A HEAD of a missing object cannot tell a missing bucket: ask the
        bucket. A refusal (a policy narrowed to a prefix) proves nothing."""
        self.connect()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as error:
            if error_code(error) in ("404", "NoSuchBucket", "NotFound"):
                raise UsageError(f"bucket {self.bucket!r} does not exist") from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, "", failed_to="check") from None

    def connect(self) -> None:
        if self.client is not None:
            return
        config = botocore.config.Config(
            retries={"mode": self.config.retry_mode, "total_max_attempts": self.config.retries},
            connect_timeout=10,
            max_pool_connections=max(10, PART_WORKERS_ALONE, self.config.jobs * PART_WORKERS),
            read_timeout=120,
        )
        try:
            session = self._session or boto3.session.Session()
            self.client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
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
        except KeyTaken:
            return self._compare(local, key)
        except botocore.exceptions.ClientError as error:
            if is_taken(error):
                return self._compare(local, key)
            raise self._wrap(error, key) from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, key) from None

    def _put_object(self, local: LocalFile, key: str, check_stop: Callable[[], None]) -> None:
        if not self.honours_put and self._exists(key):
            raise KeyTaken
        for _attempt in range(3):
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=reader(local, check_stop, self.throttle),
                    ContentLength=local.size,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=b64(bytes.fromhex(local.sha256)),
                    IfNoneMatch="*",
                    **self._object_args(local),
                )
                return
            except botocore.exceptions.ClientError as error:
                if error_code(error) not in RACE_ERRORS:
                    raise
        raise FileError(f"{self.describe(key)}: concurrent writes kept conflicting")

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

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            if error_code(error) in MISSING_ERRORS:
                return False
            raise
        return True

    def head(self, key: str) -> RemoteObject | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except botocore.exceptions.ClientError as error:
            if error_code(error) in MISSING_ERRORS:
                return None
            raise self._wrap(error, key, failed_to="check") from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._wrap(error, key, failed_to="check") from None
        return RemoteObject(head["ContentLength"], head.get("Metadata", {}), *_digests(head))

    def open_object(self, key: str) -> BinaryIO:
        try:
            body: BinaryIO = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._wrap(error, key, failed_to="read") from None
        return body

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

    def _object_args(self, local: LocalFile) -> dict[str, Any]:
        return {
            "ContentType": local.content_type,
            "Metadata": local.fingerprint.metadata(),
            **self.extra_args,
        }

    def _compare(self, local: LocalFile, key: str) -> PutResult:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except botocore.exceptions.ClientError as error:
            if error_code(error) in MISSING_ERRORS:
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
            code = error_code(error)
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


def _same_by_checksum(head: dict[str, Any], local: LocalFile) -> bool | None:
    """Takes a HEAD response of an object of the right size. Returns whether it
    holds local's bytes, or None when nothing in it tells. The rule is
    proof.judge's: any evidence that contradicts (an MD5 ETag against the
    local bytes too) wins over metadata that agrees."""

    def md5() -> str:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in fsutil.read_chunks(local.fd):
            digest.update(chunk)
        return digest.hexdigest()

    remote = RemoteObject(local.size, head.get("Metadata", {}), *_digests(head))
    verdict = judge(remote, local.fingerprint, local_md5=md5, thorough=True)
    return None if verdict.proof is Proof.UNCONFIRMED else verdict.confirmed


def _digests(response: dict[str, Any]) -> tuple[str | None, str | None]:
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


