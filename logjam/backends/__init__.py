"""Backends by URI scheme: the registry. The S3 backend loads lazily, so boto3
is imported only when an s3:// destination is used."""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Callable

from logjam.backends.base import Uploader
from logjam.backends.file import FileUploader
from logjam.errors import UsageError


def _s3_uploader(uri: str, options: argparse.Namespace | None = None) -> Uploader:
    from logjam.backends.s3 import S3Uploader  # boto3 loads only when S3 is used

    return S3Uploader(uri, options)


UPLOADERS: dict[str, Callable[[str, argparse.Namespace | None], Uploader]] = {
    "s3": _s3_uploader,
    "file": FileUploader,
}


def get_uploader(uri: str, options: argparse.Namespace | None = None, *, uploaders=UPLOADERS) -> Uploader:
    """Takes a destination URI. Returns its uploader; raises UsageError for an unknown scheme."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme not in uploaders:
        known = ", ".join(f"{name}://" for name in sorted(uploaders))
        raise UsageError(f"{uri}: no uploader for scheme {scheme + '://' if scheme else '(none)'!s} (known: {known})")
    return uploaders[scheme](uri, options)
