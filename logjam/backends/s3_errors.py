"""S3 error codes as logjam reads them: taken keys, races, refusals."""

from __future__ import annotations

import botocore.config
import botocore.exceptions

CREDENTIAL_ERRORS = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
    "403",  # a HEAD's refusal: no body, so no code
}


TAKEN_ERRORS = {"PreconditionFailed"}  # 412: If-None-Match found an object


RACE_ERRORS = {"ConditionalRequestConflict"}  # 409: a concurrent write; try again


DENIED_ERRORS = {"AccessDenied", "AllAccessDisabled"}


MISSING_ERRORS = {"404", "NoSuchKey", "NotFound"}


class KeyTaken(Exception):
    """A HEAD found an object at the key (on a store without conditional writes)."""


def is_taken(error: botocore.exceptions.ClientError) -> bool:
    """Whether If-None-Match found an object: a 412, even one whose error
    body was lost (botocore then has only the status for a code)."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(error) in TAKEN_ERRORS or status == 412


def error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
