"""Argument types for sizes and rates (5242880, 8MiB, 5MiB per second),
shared by the options of every backend."""

from __future__ import annotations

import argparse


def parse_size(text: str, *, minimum: int) -> int:
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


def parse_bandwidth(text: str) -> int:
    """--max-bandwidth: takes a rate (1000000, 5MiB). Returns bytes per second."""
    try:
        return parse_size(text, minimum=1)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a rate in bytes per second: {text!r} (e.g. 1000000, 5MiB)") from None
