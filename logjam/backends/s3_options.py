"""The s3:// backend's options: the table logjam-upload, logjam-cat and
logjam-status take them from, the argument types and checks that are S3's
alone, and S3Config, the typed settings S3Uploader is built with.

Nothing here imports boto3: the options are declared (and a config built)
before the backend itself is loaded.
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from logjam.backends.base import Option, add_options, given_flags
from logjam.errors import UsageError
from logjam.sizes import parse_size

STORAGE_CLASSES = ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
                   "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE")

CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
               "bucket-owner-read", "bucket-owner-full-control")

KMS_ENCRYPTION = ("aws:kms", "aws:kms:dsse")

MULTIPART_THRESHOLD = 64 * 1024 * 1024  # one PUT below this: the fewest requests

MAX_PUT = 5 << 30  # S3's largest single PUT


def parse_tag(text: str) -> tuple[str, str]:
    """--tag: takes KEY=VALUE. Returns (KEY, VALUE)."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"not KEY=VALUE: {text!r}")
    return key, value


def parse_threshold(text: str) -> int:
    """--multipart-threshold: 5 MiB to 5 GiB (S3's largest single PUT; above
    it every larger file would fail with EntityTooLarge)."""
    value = parse_size(text, minimum=5 << 20)
    if value > MAX_PUT:
        raise argparse.ArgumentTypeError(f"must be at most 5GiB (S3's largest single PUT): {text!r}")
    return value


OPTIONS = (
    Option("--endpoint-url", default=None, metavar="URL",
           help="an S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)"),
    Option("--retries", type=int, default=5, metavar="N",
           help="attempts per S3 request, with backoff (default: %(default)s)"),
    Option("--retry-mode", choices=("standard", "adaptive"), default="adaptive",
           help="botocore's retry mode; adaptive also slows the whole process down after "
                "503 SlowDown or 429 (default: %(default)s)"),
    Option("--storage-class", default=None, choices=STORAGE_CLASSES, metavar="CLASS", only_here=True,
           help="e.g. STANDARD_IA, GLACIER_IR, INTELLIGENT_TIERING (default: the bucket's)"),
    Option("--sse", default=None, choices=("AES256", *KMS_ENCRYPTION), only_here=True,
           help="server-side encryption"),
    Option("--sse-kms-key-id", default=None, metavar="KEY_ID", help="the KMS key, with --sse aws:kms"),
    Option("--acl", default=None, choices=CANNED_ACLS, metavar="ACL", only_here=True,
           help="a canned ACL, e.g. bucket-owner-full-control for a bucket in another account"),
    Option("--tag", action="append", type=parse_tag, default=None, metavar="KEY=VALUE", only_here=True,
           help="an object tag (repeatable)"),
    Option("--conditional-writes", choices=("auto", "require", "off"), default="auto",
           help="whether the store honours If-None-Match (never overwrite): auto probes it once per "
                "bucket, and checks each key with HEAD first where it does not; require refuses such a "
                "store; off trusts it without probing (default: %(default)s)"),
    Option("--multipart-threshold", type=parse_threshold, default=None, metavar="BYTES",
           help="files of this size or more go multipart, 5MiB to 5GiB (default: 64MiB)"),
)


@dataclass(frozen=True)
class S3Config:
    """What S3Uploader is told, apart from the URI: the client's settings and
    the arguments every object is stored with."""

    endpoint_url: str | None = None  # None: botocore's choice (AWS, or $AWS_ENDPOINT_URL)
    retries: int = 5  # attempts per request
    # adaptive: one token bucket per client, so a SlowDown slows every
    # --jobs thread (measured against standard in bench/fleet.py).
    retry_mode: Literal["standard", "adaptive"] = "adaptive"
    jobs: int = 1  # files sent at once: sizes the connection pool
    multipart_threshold: int = MULTIPART_THRESHOLD
    max_bandwidth: int | None = None  # bytes per second, all uploads together
    storage_class: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    acl: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    conditional_writes: Literal["auto", "require", "off"] = "auto"
    hostname: str | None = None  # for the probe's key under {hostname}; None: this host's name

    def object_args(self) -> dict[str, str]:
        """The arguments every PutObject and CreateMultipartUpload carries:
        storage class, encryption, ACL and tags, as botocore names them."""
        args: dict[str, str] = {}
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.acl:
            args["ACL"] = self.acl
        if self.tags:
            args["Tagging"] = urllib.parse.urlencode(self.tags)
        return args


def add_arguments(group: argparse._ActionsContainer, *, only: Collection[str] | None = None) -> None:
    """Adds the S3 options (OPTIONS) to an argparse parser or group; with
    only, the flags named in it (the others keep their defaults)."""
    add_options(group, OPTIONS, only=only)


def check_args(args: argparse.Namespace) -> None:
    """Takes arguments parsed with add_arguments. Raises UsageError for what
    argparse cannot check alone (whatever the destination, as before)."""
    if args.retries < 1:
        raise UsageError(f"--retries {args.retries}: must be at least 1 (one attempt, no retry)")
    if args.sse_kms_key_id and args.sse not in KMS_ENCRYPTION:
        raise UsageError("--sse-kms-key-id needs --sse aws:kms")


def from_args(args: argparse.Namespace, *, jobs: int = 1, hostname: str | None = None) -> S3Config:
    """Takes arguments parsed with add_arguments, and the command's own
    --jobs and --hostname. Returns the S3Config; raises UsageError as
    check_args does."""
    check_args(args)
    return S3Config(
        endpoint_url=args.endpoint_url,
        retries=args.retries,
        retry_mode=args.retry_mode,
        jobs=jobs,
        multipart_threshold=args.multipart_threshold or MULTIPART_THRESHOLD,
        max_bandwidth=args.max_bandwidth,
        storage_class=args.storage_class,
        sse=args.sse,
        sse_kms_key_id=args.sse_kms_key_id,
        acl=args.acl,
        tags=tuple(args.tag or ()),
        conditional_writes=args.conditional_writes,
        hostname=hostname,
    )


def given_only_here(args: argparse.Namespace) -> list[str]:
    """Takes parsed arguments. Returns the S3-only flags given in them (an
    error with any other destination)."""
    return given_flags(args, OPTIONS)
