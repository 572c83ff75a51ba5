"""The conditional-write probe: whether an S3 store honours If-None-Match on
PutObject and CompleteMultipartUpload (a mixin of S3Uploader)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

import botocore.config
import botocore.exceptions

from logjam.backends.s3_errors import DENIED_ERRORS, MISSING_ERRORS, RACE_ERRORS, error_code, is_taken
from logjam.backends.s3_multipart import b64
from logjam.backends.s3_state import DENIED, HONOURED, IGNORED, STATE_NAME, S3State
from logjam.errors import FileError, UsageError
from logjam.template import MAX_KEY_BYTES, KeyTemplate

log = logging.getLogger("logjam.upload")


PROBE_MARK = ".logjam-probe-"


def _describe_answer(answer: dict[str, str]) -> str:
    """{'put': 'ignored', 'complete': 'honoured'} -> 'ignores If-None-Match: * on PutObject'."""
    if DENIED in answer.values():
        return "could not be probed for conditional writes (AccessDenied)"
    ignored = [name for field, name in (("put", "PutObject"), ("complete", "CompleteMultipartUpload"))
               if answer.get(field) != HONOURED]
    return f"ignores If-None-Match: * on {' and '.join(ignored)}"


class ConditionalWriteProbe:
    """S3Uploader's probe of whether the store honours If-None-Match, once per
    store (the answer is kept in the state file)."""

    if TYPE_CHECKING:  # provided by S3Uploader
        client: Any
        bucket: str
        state: S3State | None
        template: str
        hostname: str
        extra_args: dict[str, str]
        conditional_writes: str
        honours_put: bool
        honours_complete: bool
        _warned_off: bool

        def describe(self, key: str) -> str: ...
        def _create_upload(self, key: str, **args: Any) -> tuple[str | None, str]: ...
        def _abort(self, key: str, upload_id: str, token: str | None, *, reason: str | None = None) -> None: ...
        def _forget_upload(self, token: str | None) -> None: ...


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
            if error_code(error) in DENIED_ERRORS:
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
                if is_taken(error):
                    return HONOURED
                if error_code(error) in DENIED_ERRORS:
                    return DENIED
                if error_code(error) not in RACE_ERRORS:
                    raise
        raise FileError(f"{self.describe(key)}: concurrent writes kept conflicting")

    def _probe_complete(self, key: str) -> str:
        try:
            token, upload_id = self._create_upload(key, ChecksumAlgorithm="SHA256", **self.extra_args)
        except botocore.exceptions.ClientError as error:
            if error_code(error) in DENIED_ERRORS:
                return DENIED
            raise
        body = b"logjam conditional-write probe, multipart\n"
        checksum = b64(hashlib.sha256(body).digest())
        try:
            part = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=body,
                                           ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, IfNoneMatch="*",
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": checksum}]},
            )
        except botocore.exceptions.ClientError as error:
            self._abort(key, upload_id, token)
            if is_taken(error):
                return HONOURED
            if error_code(error) in DENIED_ERRORS:
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
            if error_code(error) in ("NoSuchBucket", *MISSING_ERRORS):
                self.state.drop_probe(store, key)
                return
            if status >= 500:
                log.warning("could not delete the probe object %s: %s (will try again on the next pass)",
                            self.describe(key), error)
                return
            # AccessDenied (no s3:DeleteObject, as a least-privilege policy
            # has): the small object stays; nothing is wrong.
            log.info("left the probe object %s: %s", self.describe(key), error_code(error))
        except botocore.exceptions.BotoCoreError as error:
            log.warning("could not delete the probe object %s: %s (will try again on the next pass)",
                        self.describe(key), error)
            return
        self.state.drop_probe(store, key)
