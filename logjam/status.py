"""logjam-status: what is where, per stream, from local state only.

For each stream (prefix, suffix, extension) of each directory: files still
being written, finished files not yet compressed, compressed files waiting
for upload, and uploaded files still kept locally (count and bytes), and how
long the oldest waiting file has waited.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from logjam import __version__, fsutil
from logjam.archive import ARCHIVE_DIRNAME
from logjam.backends import add_arguments as add_backend_arguments
from logjam.backends import get_uploader
from logjam.backends.base import Uploader
from logjam.cli import ArgumentParser, Environment, main_runner
from logjam.codecs import codec_for_filename
from logjam.errors import FileError, UsageError
from logjam.ledger import LEDGER_DIRNAME, Ledger
from logjam.markers import Destination, MarkerError, only_elsewhere
from logjam.parse import LogFile, parse_filename
from logjam.passes import PassContext, PassSettings, run_pass
from logjam.proof import Proof, Verdict, prove
from logjam.runner import PassStats
from logjam.selection import yield_old_logfiles
from logjam.signals import Stop
from logjam.template import KeyTemplate


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0


@dataclass
class StreamStatus:
    stream: str
    live: Tally = field(default_factory=Tally)
    finished: Tally = field(default_factory=Tally)  # finished, not yet compressed
    archived: Tally = field(default_factory=Tally)  # compressed, waiting for upload
    uploaded: Tally = field(default_factory=Tally)  # uploaded, kept locally
    missing: Tally | None = None  # of those, missing or other bytes at the destination (with --check)
    unconfirmed: Tally | None = None  # of those, nothing proves the object is the file, or no answer
    elsewhere: Tally | None = None  # with --check: kept files recorded as uploaded only to other destinations
    destinations: dict[str, Tally] = field(default_factory=dict)  # kept files recorded per destination
    oldest_waiting: datetime.datetime | None = None

    def waiting(self, hour: datetime.datetime) -> None:
        if self.oldest_waiting is None or hour < self.oldest_waiting:
            self.oldest_waiting = hour


def _stream_name(logfile: LogFile, extension: str) -> str:
    suffix = logfile.suffix
    return f"{logfile.prefix}-*{'-' + suffix if suffix else ''}{extension}"


def directory_status(
    context: PassContext, *, uploader: Uploader | None = None, problems: list[str] | None = None
) -> list[StreamStatus]:
    """Takes a pass over a log directory. Returns the status of each of its
    streams, sorted. With an uploader, a file counts as uploaded only if it is
    confirmed at that destination, and each one kept locally must prove it is
    there (proof.prove: one HEAD each); what does not is added to problems."""
    log_dir, dir_fd = context.path, context.dir_fd
    names = os.listdir(dir_fd)
    streams: dict[str, StreamStatus] = {}

    def status_of(logfile: LogFile, extension: str) -> StreamStatus:
        name = _stream_name(logfile, extension)
        return streams.setdefault(name, StreamStatus(name))

    finished = {logfile.filename for logfile in yield_old_logfiles(names, context.now)}
    for name in names:
        logfile = parse_filename(name)
        if logfile is None:
            continue
        status = status_of(logfile, logfile.extension)
        tally = status.finished if name in finished else status.live
        tally.files += 1
        tally.bytes += fsutil.size_or_zero(dir_fd, name)
        if name in finished:
            status.waiting(logfile.timestamp)

    archive = os.path.join(log_dir, ARCHIVE_DIRNAME)
    try:
        archive_fd = fsutil.open_dir(ARCHIVE_DIRNAME, dir_fd=dir_fd)
    except FileNotFoundError:
        return [streams[name] for name in sorted(streams)]
    except OSError as error:
        raise UsageError(f"{archive}: {error.strerror}") from None
    try:
        _archive_status(archive, archive_fd, status_of, uploader=uploader, problems=problems)
    finally:
        os.close(archive_fd)
    return [streams[name] for name in sorted(streams)]


def _archive_status(archive: str, archive_fd: int, status_of: Callable[[LogFile, str], StreamStatus], *,
                    uploader: Uploader | None, problems: list[str] | None) -> None:
    ledger = Ledger(archive_fd)
    destination = Destination.of(uploader) if uploader is not None else None
    try:
        archived = os.listdir(archive_fd)
        entries = ledger.entries()
    except OSError as error:
        # Guessing "nothing uploaded" would misreport every file.
        raise UsageError(f"{archive}/{LEDGER_DIRNAME}: {error.strerror} (run as the user logjam-upload runs as)") from None
    only_elsewhere_entries = []
    any_here = False
    for name in archived:
        logfile = parse_filename(name)
        if logfile is None:
            continue
        codec = codec_for_filename(name)
        extension = logfile.extension[: -len(codec.extension)] if codec else logfile.extension
        status = status_of(logfile, extension)
        entry = entries.get(name)
        if isinstance(entry, MarkerError):
            if problems is not None:
                problems.append(f"{archive}/{LEDGER_DIRNAME}/{name}: {entry}; counted as not uploaded")
            entry = None
        # Uploaded means: confirmed at the destination checked, or (without
        # --check) at any destination.
        confirmation = None
        if entry is not None:
            confirmation = entry.at(destination) if destination is not None else entry.confirmations[0]
        size = fsutil.size_or_zero(archive_fd, name)
        tally = status.uploaded if confirmation is not None else status.archived
        tally.files += 1
        tally.bytes += size
        if entry is not None:
            for recorded in entry.confirmations:
                by = status.destinations.setdefault(str(recorded.destination), Tally())
                by.files += 1
                by.bytes += size
        elsewhere = None
        if destination is not None:
            elsewhere = status.elsewhere = status.elsewhere or Tally()
        if confirmation is None:
            status.waiting(logfile.timestamp)
            if entry is not None and elsewhere is not None:  # kept, uploaded only elsewhere: not here
                only_elsewhere_entries.append(entry)
                elsewhere.files += 1
                elsewhere.bytes += size
            continue
        if uploader is None:
            continue
        any_here = True
        status.missing = status.missing or Tally()
        status.unconfirmed = status.unconfirmed or Tally()
        try:
            verdict = prove(uploader, confirmation, archive_fd=archive_fd, name=name)
        except FileError as error:  # UsageError (a refused credential) ends the run
            verdict = Verdict(Proof.UNCONFIRMED, f"cannot check: {error}")
        if verdict.confirmed:
            continue
        bad = status.unconfirmed if verdict.proof is Proof.UNCONFIRMED else status.missing
        bad.files += 1
        bad.bytes += size
        if problems is not None:
            problems.append(f"{archive}/{name}: {confirmation.location}: {verdict.detail}")
    if only_elsewhere_entries and problems is not None and destination is not None:
        problems.append(f"{archive}: {only_elsewhere(only_elsewhere_entries, destination, any_here=any_here)}")


def _human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"


def _human_age(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m"


def format_table(log_dir: str, streams: list[StreamStatus], *, now: datetime.datetime) -> str:
    """The human view: one row per stream."""
    checked = any(status.missing is not None for status in streams)
    header = ("STREAM", "LIVE", "TO COMPRESS", "TO UPLOAD", "UPLOADED, KEPT",
              *(("NOT AT DESTINATION", "UNCONFIRMED") if checked else ()), "OLDEST WAITING")
    rows = [header]
    for status in streams:
        cells = [status.stream]
        tallies = [status.live, status.finished, status.archived, status.uploaded]
        if checked:
            tallies += [status.missing or Tally(), status.unconfirmed or Tally()]
        for tally in tallies:
            cells.append(f"{tally.files}" + (f" ({_human_bytes(tally.bytes)})" if tally.files else ""))
        age = (now - status.oldest_waiting).total_seconds() if status.oldest_waiting else None
        cells.append(_human_age(age) if age is not None else "-")
        rows.append(tuple(cells))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [f"{log_dir}:"]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if not streams:
        lines.append("  (no log files)")
    by_destination: dict[str, Tally] = {}
    for status in streams:
        for destination, tally in status.destinations.items():
            total = by_destination.setdefault(destination, Tally())
            total.files += tally.files
            total.bytes += tally.bytes
    if by_destination:
        lines.append("  kept files recorded as uploaded, per destination:")
        lines += [f"    {destination}: {tally.files} ({_human_bytes(tally.bytes)})"
                  for destination, tally in sorted(by_destination.items())]
    return "\n".join(lines)


def to_json(log_dir: str, streams: list[StreamStatus], *, now: datetime.datetime) -> dict[str, Any]:
    """The script view (--json)."""
    result = []
    for status in streams:
        entry = asdict(status)
        entry["oldest_waiting"] = status.oldest_waiting.isoformat().replace("+00:00", "Z") if status.oldest_waiting else None
        entry["oldest_waiting_age_seconds"] = (
            int((now - status.oldest_waiting).total_seconds()) if status.oldest_waiting else None
        )
        result.append(entry)
    return {"directory": log_dir, "streams": result}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="logjam-status",
        description="Show, per stream, what logjam has still to compress and upload (local state only).",
        epilog="example:\n  logjam-status /var/log/app\n  logjam-status --json /var/log/app | jq .\n\n"
               "what the archive holds (streams, hours): logjam-cat URI --since 7d --list\n\n"
               "exit status: 0 all is well, 1 --check found an upload missing, not matching or\n"
               "unconfirmed at the destination (or could not check it), or kept files recorded as\n"
               "uploaded only to other destinations, 2 usage or configuration",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directories", nargs="+", metavar="DIR", help="a directory logjam-compress works on")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--check", metavar="URI", default=None,
                        help="count as uploaded only what is confirmed at this destination, and check "
                             "each uploaded file kept locally there (one HEAD request each; credentials "
                             "as for logjam-upload); exit status 1 if one is missing or unconfirmed")
    add_backend_arguments(parser, only=("--endpoint-url",))  # for --check
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # What the shared runner (cli.main_runner) reads of the other commands'
    # options: one pass, warnings only on stderr (the report is on stdout).
    parser.set_defaults(once=True, interval=60.0, log_level="warning", log_format="plain", metrics_file=None,
                        dry_run=False, splay=0.0, wait_lock=False, allow_insecure_dir=False)
    return parser


# logjam-status only reads and writes nothing: the check that keeps a root
# pass from writing where another user can (safety) does not apply, and it
# takes no lock, so it may run beside the passes it reports on.
READ_ONLY = PassSettings(allow_insecure_dir=True, dry_run=True)


@dataclass
class StatusJob:
    """The directories to report on (and the destination to check them at), as the runner calls it."""

    directories: list[str]
    uploader: Uploader | None
    json: bool
    env: Environment

    @property
    def one_shot(self) -> bool:
        """A report is one pass."""
        return True

    def __call__(self, stop: Stop) -> PassStats:
        if self.uploader is not None:
            # In the job, not make_job: the runner's signal handling is in
            # place, so Ctrl-C on an endpoint that never answers is exit 130.
            self.uploader.connect()
            self.uploader.check_destination()  # a mistyped bucket is a usage error, not N missing files
        now = self.env.clock()
        problems: list[str] = []
        report: list[tuple[str, list[StreamStatus]]] = []
        for log_dir in self.directories:
            def body(context: PassContext, log_dir: str = log_dir) -> None:
                report.append((log_dir, directory_status(context, uploader=self.uploader, problems=problems)))

            run_pass(log_dir, body, settings=READ_ONLY, command=None, stop=stop, now=now)
        for problem in problems:
            print(f"logjam-status: {problem}", file=self.env.stderr)
        if self.json:
            text = json.dumps([to_json(log_dir, streams, now=now) for log_dir, streams in report], indent=2)
        else:
            text = "\n\n".join(format_table(log_dir, streams, now=now) for log_dir, streams in report)
        try:
            print(text, file=self.env.stdout, flush=True)
        except BrokenPipeError:  # logjam-status | head
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.env.stdout.fileno())
        checked_bad = any(tally is not None and tally.files for _, streams in report for status in streams
                          for tally in (status.missing, status.unconfirmed, status.elsewhere))
        return PassStats(errors=1 if checked_bad else 0)

    def backlog(self) -> PassStats | None:
        """A report leaves nothing waiting."""
        return None


def make_job(args: argparse.Namespace, *, env: Environment) -> StatusJob:
    """Checks the destination URI given with --check, without a request.
    Returns the report the runner runs once."""
    uploader = None
    if args.check is not None:
        if not args.check.strip():
            raise UsageError("--check: the destination URI is empty")
        uploader = get_uploader(args.check, args)
        KeyTemplate.parse(uploader.template)
        uploader.check_uri()
    return StatusJob(list(args.directories), uploader, args.json, env)


def main(argv: Sequence[str] | None = None, *, env: Environment | None = None) -> int:
    """Entry point of logjam-status. Returns the exit status: 0 all is well,
    1 --check found a problem, 2 usage or configuration."""
    env = env or Environment()
    return main_runner("logjam-status", build_parser(), lambda args: make_job(args, env=env), argv, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
