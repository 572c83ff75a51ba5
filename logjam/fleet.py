"""Behaving as one host of many: a stable per-host start delay (--splay) and
the check that a key template keeps hosts apart. Pure, apart from reading
the host name when none is given.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import string

SPLAY_HELP = ("wait a delay in [0, SECONDS) before the pass (loop mode: before the first pass), "
              "the same every run for this host and directory, so a fleet spreads out (default: 0)")
HOSTNAME_HELP = "the value of {hostname} in key templates (default: this machine's host name)"
SHARED_KEYS_WARNING = (
    "the key template {template!r} has neither {{hostname}} nor {{suffix}}: hosts that upload files "
    "with the same prefixes would write the same keys (see docs/fleet.rst for a fleet template)"
)


def splay_delay(seconds: float, *, hostname: str, directory: str) -> float:
    """Takes the --splay width, the host name and the directory. Returns a
    delay in [0, seconds) that is the same for the same host and directory
    on every run, and spread evenly across hosts (as systemd's
    RandomizedDelaySec= with FixedRandomDelay=yes)."""
    if seconds <= 0:
        return 0.0
    # A cryptographic hash, not hash(): the same on every run and Python
    # version, and host names that differ by one letter land far apart.
    seed = hashlib.sha256(f"logjam-splay\0{hostname}\0{directory}".encode("utf-8", "surrogateescape")).digest()
    fraction = int.from_bytes(seed[:8], "big") / 2**64
    return fraction * seconds


def splay_for(args: argparse.Namespace) -> float:
    """Takes a command's parsed arguments. Returns the delay before its first
    pass: 0 without --splay and for a dry run (which only reports)."""
    seconds = getattr(args, "splay", 0.0) or 0.0
    if seconds <= 0 or getattr(args, "dry_run", False):
        return 0.0
    hostname = getattr(args, "hostname", None) or socket.gethostname()
    directories = getattr(args, "directories", None) or [getattr(args, "archive_dir", "")]
    directory = "\0".join(os.path.abspath(path) for path in directories)
    return splay_delay(seconds, hostname=hostname, directory=directory)


def shares_keys_across_hosts(template: str) -> bool:
    """Takes a key template's text. Returns True when nothing in it differs
    from one host to another: no {hostname} and no {suffix}."""
    fields = {field for _literal, field, _spec, _conversion in string.Formatter().parse(template) if field}
    return not fields & {"hostname", "suffix"}


# The longest wait an option may ask for (--splay, --interval): a year. Far
# longer waits overflow the clock arithmetic of a timed wait (OverflowError).
MAX_WAIT_SECONDS = 366 * 86400


def non_negative_seconds(text: str) -> float:
    """argparse type for --splay: a number of seconds, 0 to MAX_WAIT_SECONDS."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= MAX_WAIT_SECONDS:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_WAIT_SECONDS} seconds (a year): {text!r}")
    return value


def hostname_value(text: str) -> str:
    """argparse type for --hostname: any non-empty name without a slash or a
    control character (NUL included), and not '.' or '..' (a key segment that
    would step out of its folder). The key it makes with the template is
    checked again at start (KeyTemplate.check_hostname)."""
    if not text or text in (".", "..") or "/" in text or any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise argparse.ArgumentTypeError(
            f"not a host name: {text!r} (non-empty, not '.' or '..', no '/', no control characters)")
    return text
