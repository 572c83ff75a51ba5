"""Argument types of logjam-upload's options (sizes, rates, tags) and the
S3 option tables (storage classes, canned ACLs)."""

from __future__ import annotations

import argparse

STORAGE_CLASSES = ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
                   "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE")


CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
               "bucket-owner-read", "bucket-owner-full-control")


def parse_tag(text: str) -> tuple[str, str]:
    """--tag: takes KEY=VALUE. Returns (KEY, VALUE)."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"not KEY=VALUE: {text!r}")
    return key, value


def parse_bandwidth(text: str) -> int:
    """--max-bandwidth: takes a rate (1000000, 5MiB). Returns bytes per second."""
    try:
        return parse_size(text, minimum=1)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a rate in bytes per second: {text!r} (e.g. 1000000, 5MiB)") from None


def parse_size(text: str, *, minimum: int = 5 << 20) -> int:
    """Takes a size (5242880, 8MiB). Returns bytes; at least minimum."""
    units = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}
    number = text.rstrip("kKmMgGiIbB")
    unit = text[len(number):].lower()
    try:
        if not (number.isascii() and number.isdigit()):
            raise ValueError(number)
        value = int(number) * units[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 5242880, 8MiB)") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum} bytes: {text!r}")
    return value


def parse_threshold(text: str) -> int:
    """--multipart-threshold: 5 MiB to 5 GiB (S3's largest single PUT; above
    it every larger file would fail with EntityTooLarge)."""
    value = parse_size(text)
    if value > 5 << 30:
        raise argparse.ArgumentTypeError(f"must be at most 5GiB (S3's largest single PUT): {text!r}")
    return value
