"""Backends by URI scheme: the registry. Each backend declares its options
(a table of base.Option) and builds its uploader from a typed config made
from the parsed arguments; the commands ask this module for both and name
no backend themselves. The S3 backend loads lazily, so boto3 is imported
only when an s3:// destination is used."""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from logjam.backends import file, s3_options
from logjam.backends.base import SHARED_OPTIONS, Option, Uploader, add_options, given_flags
from logjam.errors import UsageError


class MakeUploader(Protocol):
    def __call__(self, uri: str, args: argparse.Namespace, *, jobs: int, hostname: str | None) -> Uploader: ...


@dataclass(frozen=True)
class Backend:
    """One kind of destination: its scheme, its options (shown under title
    in --help), the check of their values (run whatever the destination, so
    a bad value is an error even before the backend is chosen) and how to
    make its uploader from a URI and parsed arguments."""

    scheme: str
    title: str
    options: tuple[Option, ...]
    make: MakeUploader
    check: Callable[[argparse.Namespace], None] = lambda args: None


def _s3_uploader(uri: str, args: argparse.Namespace, *, jobs: int, hostname: str | None) -> Uploader:
    from logjam.backends.s3 import S3Uploader  # boto3 loads only when S3 is used

    return S3Uploader(uri, s3_options.from_args(args, jobs=jobs, hostname=hostname))


def _file_uploader(uri: str, args: argparse.Namespace, *, jobs: int, hostname: str | None) -> Uploader:
    return file.FileUploader(uri, file.from_args(args))


UPLOADERS: dict[str, Backend] = {
    "s3": Backend("s3", "S3 options (s3:// destinations, named as the AWS CLI names them)", s3_options.OPTIONS, _s3_uploader,
                  s3_options.check_args),
    "file": Backend("file", "file:// options", file.OPTIONS, _file_uploader, file.check_args),
}


def add_arguments(parser: argparse.ArgumentParser, *, only: Collection[str] | None = None,
                  uploaders: Mapping[str, Backend] = UPLOADERS) -> None:
    """Adds the options every backend shares, then each backend's in a group
    of its own; with only (flags such as "--endpoint-url"), just those. The
    others still get their defaults, so get_uploader works whichever
    command parsed the arguments."""
    add_options(parser, SHARED_OPTIONS, only=only)
    for backend in uploaders.values():
        if backend.options:
            add_options(parser.add_argument_group(backend.title), backend.options, only=only)


def get_uploader(uri: str, args: argparse.Namespace | None = None, *, jobs: int = 1, hostname: str | None = None,
                 uploaders: Mapping[str, Backend] = UPLOADERS) -> Uploader:
    """Takes a destination URI and arguments parsed by a parser given
    add_arguments (None: every option's default), and the command's own
    --jobs and --hostname. Returns the uploader of the URI's scheme; raises
    UsageError for an unknown scheme, a bad URI or an option that belongs
    to another backend."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme not in uploaders:
        known = ", ".join(f"{name}://" for name in sorted(uploaders))
        raise UsageError(f"{uri}: no uploader for scheme {scheme + '://' if scheme else '(none)'!s} (known: {known})")
    if args is None:
        defaults = argparse.ArgumentParser(add_help=False)
        add_arguments(defaults, uploaders=uploaders)
        args = defaults.parse_args([])
    for backend in uploaders.values():
        backend.check(args)
    for other in uploaders.values():
        foreign = given_flags(args, other.options) if other.scheme != scheme else []
        if foreign:
            raise UsageError(f"{', '.join(foreign)}: for {other.scheme}:// destinations only")
    return uploaders[scheme].make(uri, args, jobs=jobs, hostname=hostname)
