"""logjam-upload: send archived logs to a destination chosen by URI scheme,
each exactly once, never over another object, and remember what was sent.

The ledger (logjam.ledger) records, per file, each destination that
confirmed its upload; a file counts as uploaded only for those. A pass lists
the archive and the ledger and makes no request at all when nothing is new.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from logjam import fleet, fsutil
from logjam.backends import add_arguments as add_backend_arguments
from logjam.backends import get_uploader
from logjam.backends.base import LocalFile, PutResult, Uploader
from logjam.cli import (
    EXIT_STATUS_HELP,
    ArgumentParser,
    Environment,
    add_common_arguments,
    main_runner,
    without_credentials,
)
from logjam.codecs import CORRUPT_STREAM_ERRORS, codec_for_filename
from logjam.concurrency import map_concurrently
from logjam.errors import FileError, Skipped, UsageError
from logjam.integrity import file_fingerprint
from logjam.ledger import LEDGER_DIRNAME, Ledger, Standing
from logjam.logs import fields
from logjam.markers import Confirmation, Destination
from logjam.parse import LogFile, utc_now
from logjam.passes import PassContext, PassSettings, check_directory, run_pass
from logjam.progress import progress
from logjam.retention import expire, expired, parse_duration
from logjam.runner import PassStats
from logjam.selection import select_pending
from logjam.signals import Stop
from logjam.template import KeyTemplate, upload_duplicate_filename
from logjam.verify import VerifyJob, join_verify_value

log = logging.getLogger("logjam.upload")

# LEDGER_DIRNAME and Ledger now live in logjam.ledger; importing them from here still works.
LOCK_NAME = ".logjam-upload.lock"
MAX_UPLOAD_DUPLICATES = 99


# -- pure -------------------------------------------------------------------

def candidate_keys(template: KeyTemplate, logfile: LogFile, *, hostname: str) -> list[str]:
    """Takes an archived LogFile. Returns its key, then its duplicate keys in order."""
    keys = [template.format(logfile, hostname=hostname)]
    keys.extend(
        template.format(logfile, hostname=hostname, filename=upload_duplicate_filename(logfile, number))
        for number in range(1, MAX_UPLOAD_DUPLICATES + 1)
    )
    return keys


# -- effects ----------------------------------------------------------------

@dataclass
class UploadJob:
    """One archive directory and one destination, as the runner calls it."""

    archive_dir: str
    uploader: Uploader
    template: KeyTemplate
    hostname: str
    jobs: int = 1

    settings: PassSettings = PassSettings()  # lock, directory check, dry run
    delete_after: datetime.timedelta | None = None  # retention of uploaded archive files
    clock: Callable[[], datetime.datetime] = utc_now
    # Logged after the run's first stored file (so a failing run's errors
    # stay one line each), then never again in this process.
    shared_keys_warning: str | None = None
    _warning_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def destination(self) -> Destination:
        """Where this job's uploads count (scheme, endpoint, bucket or root)."""
        return Destination.of(self.uploader)

    @property
    def one_shot(self) -> bool:
        """A dry run reports one pass."""
        return self.settings.dry_run

    def __call__(self, stop: Stop) -> PassStats:
        return scan_and_upload(self, stop=stop)

    def backlog(self) -> PassStats:
        """What waits for upload, from local state only (the runner's metrics after a failed pass)."""
        return upload_backlog(self)


def scan_and_upload(job: UploadJob, *, stop: Stop | None = None) -> PassStats:
    """Uploads every archived file not yet confirmed at this destination (a
    dry run: says which it would, from local state only). Returns what it did and left."""
    return run_pass(job.archive_dir, lambda context: _upload_pass(job, context), settings=job.settings,
                    command="logjam-upload", stop=stop, now=job.clock())


def _upload_pass(job: UploadJob, context: PassContext) -> None:
    # A dry run reads only: it cleans no stale marker and sends no request.
    ledger = Ledger(context.dir_fd)
    archive_names = os.listdir(context.dir_fd)
    standing = Standing.of(ledger, job.destination, clean=not context.dry_run)
    if job.delete_after is not None:
        _expire_uploaded(job, context, ledger, standing=standing, archive_names=archive_names)
        if not context.dry_run:
            archive_names = os.listdir(context.dir_fd)
            standing = Standing.of(ledger, job.destination)
    if not context.dry_run:
        _report_ledger(job, standing, archive_names)
    pending = select_pending(archive_names, uploaded=standing.here)
    if not pending:
        log.debug("%s: nothing to upload", job.archive_dir)
        return
    if not context.dry_run:
        job.uploader.connect()
        job.uploader.begin_pass(context.dir_fd)  # S3: cleanup of a killed pass; the conditional-write probe
    _upload_all(job, context, ledger, pending)


def _expire_uploaded(
    job: UploadJob, context: PassContext, ledger: Ledger, *, standing: Standing, archive_names: list[str]
) -> None:
    assert job.delete_after is not None
    for name in expired(standing.here, context.now - job.delete_after):
        context.stop.check()
        if context.dry_run:
            if name in archive_names:
                print(f"would delete {job.archive_dir}/{name} (uploaded to "
                      f"{standing.here[name].location}; confirmed by HEAD first)", flush=True)
            continue
        try:
            expire(context, job.uploader, ledger, name=name, confirmation=standing.here[name],
                   delete_after=job.delete_after)
        except (FileError, OSError) as error:
            # Could not confirm: keep the file; the pass goes on.
            log.warning("%s/%s: kept, could not confirm its upload: %s", job.archive_dir, name,
                        error.strerror if isinstance(error, OSError) and error.strerror else error)


def _report_ledger(job: UploadJob, standing: Standing, archive_names: Iterable[str]) -> None:
    # Once per pass: files in the archive that count as not uploaded here
    # although the ledger has something to say about them.
    present = set(archive_names)
    for name in sorted(present & standing.bad.keys()):
        log.warning("%s/%s/%s: %s; the file counts as not uploaded", job.archive_dir, LEDGER_DIRNAME, name,
                    standing.bad[name])
    others = sorted(present & standing.elsewhere.keys())
    if others:
        places = sorted({str(c.destination) for name in others for c in standing.elsewhere[name].confirmations})
        log.info("%s: %d file(s) recorded as uploaded to %s, not to %s; sending them here too",
                 job.archive_dir, len(others), ", ".join(places), job.destination)


def _same_file(dir_fd: int, name: str, opened: os.stat_result) -> bool:
    """Whether name still is the file that was opened (and uploaded)."""
    try:
        current = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)


def _upload_all(job: UploadJob, context: PassContext, ledger: Ledger, pending: list[LogFile]) -> None:
    # A dry run prints its lines instead of a bar, one file at a time (in name order).
    files, total = (0, 0) if context.dry_run else (
        len(pending), sum(fsutil.size_or_zero(context.dir_fd, logfile.filename) for logfile in pending))
    with progress("uploading", files=files, size=total) as bar:
        context.progress = bar
        _upload_each(job, context, ledger, pending)


def _upload_each(job: UploadJob, context: PassContext, ledger: Ledger, pending: list[LogFile]) -> None:
    stats = context.stats

    def one(logfile: LogFile) -> None:
        context.stop.check()
        if context.dry_run:
            _would_upload(job, context, logfile)
            return
        try:
            uploaded = upload_logfile(job, context, ledger, logfile)
        except (FileError, OSError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            log.error("%s/%s: %s", job.archive_dir, logfile.filename, reason,
                      extra=fields("failed", file=f"{job.archive_dir}/{logfile.filename}", error=reason))
            stats.waiting(logfile.timestamp, failed=True)
            return
        if uploaded is not None:
            _warn_shared_keys_once(job)
            stats.done(uploaded)
            context.progress.advance(fsutil.size_or_zero(context.dir_fd, logfile.filename))

    map_concurrently(one, pending, workers=1 if context.dry_run else job.jobs)


def _would_upload(job: UploadJob, context: PassContext, logfile: LogFile) -> None:
    # Where a real pass would upload: say so, from local state only (no request).
    key = job.template.format(logfile, hostname=job.hostname)
    try:
        size = os.stat(logfile.filename, dir_fd=context.dir_fd, follow_symlinks=False).st_size
    except OSError:
        return
    print(f"would upload {job.archive_dir}/{logfile.filename} -> {job.uploader.describe(key)} ({size} bytes)",
          flush=True)
    context.stats.done(size)


def _warn_shared_keys_once(job: UploadJob) -> None:
    with job._warning_lock:
        message, job.shared_keys_warning = job.shared_keys_warning, None
    if message:
        log.warning("%s", message)


def upload_logfile(job: UploadJob, context: PassContext, ledger: Ledger, logfile: LogFile) -> int | None:
    """Uploads one archived file to its key (or the first free duplicate key),
    then records it. Returns the bytes sent, or None if skipped."""
    name, archive_fd, check_stop = logfile.filename, context.dir_fd, context.stop.check
    started = time.monotonic()
    try:
        fd, source = fsutil.open_regular(archive_fd, name)
    except Skipped as skipped:
        log.warning("%s/%s", job.archive_dir, skipped, extra=fields(
            "skipped", file=f"{job.archive_dir}/{name}", error=str(skipped).removeprefix(f"{name}: ")))
        return None
    except FileNotFoundError:
        return None  # removed since the listing
    except OSError as error:
        raise FileError(f"cannot open: {error.strerror}") from None
    try:
        codec = codec_for_filename(name)
        try:
            print_ = file_fingerprint(fd, codec, check_stop=check_stop)
        except CORRUPT_STREAM_ERRORS as error:
            # Still the only copy: ship the bytes as they are, without a log fingerprint.
            log.warning("%s/%s does not decompress (%s); uploading it as it is", job.archive_dir, name, error)
            print_ = file_fingerprint(fd, None, check_stop=check_stop)
        size = print_.size
        local = LocalFile(
            fd=fd, name=name, fingerprint=print_,
            content_type=codec.content_type if codec else "application/octet-stream",
        )
        keys = candidate_keys(job.template, logfile, hostname=job.hostname)
        for index, key in enumerate(keys):
            result = job.uploader.put(local, key, check_stop=check_stop)
            if result is PutResult.CONFLICT:
                continue
            destination = job.uploader.describe(key)
            if index and result is PutResult.STORED:
                log.warning("%s holds other content; uploaded %s beside it as %s",
                            job.uploader.describe(keys[0]), name, destination)
            if os.fstat(fd).st_size != size or not _same_file(archive_fd, name, source):
                raise FileError("changed while uploading; will retry")
            ledger.record(name, Confirmation(job.destination, key, print_, location=destination), source=source)
            verb = "uploaded" if result is PutResult.STORED else "found already uploaded"
            log.info("%s %s/%s -> %s (%d bytes)", verb, job.archive_dir, name, destination, size, extra=fields(
                "uploaded" if result is PutResult.STORED else "already_uploaded", file=f"{job.archive_dir}/{name}",
                destination=destination, bytes_in=size, bytes_out=size if result is PutResult.STORED else 0,
                duration=round(time.monotonic() - started, 3)))
            return size if result is PutResult.STORED else 0
        raise FileError(f"{keys[0]} and all {MAX_UPLOAD_DUPLICATES} duplicate keys hold other content")
    finally:
        os.close(fd)


def check_archive_dir(archive_dir: str, settings: PassSettings) -> None:
    """Guards against pointing logjam-upload at live logs (upstream's rule)
    and, as root, at a directory a non-root user can write."""
    if os.path.basename(os.path.normpath(archive_dir)) != "archive":
        raise UsageError(f"{archive_dir}: the archive directory's last component must be 'archive' "
                         "(the one logjam-compress fills)")
    check_directory(archive_dir, settings)


# -- command line -----------------------------------------------------------

EPILOG = """\
examples:
  logjam-upload --once /var/log/app/archive 's3://my-logs/{prefix}/{year}/{month}/{day}/{filename}'
  logjam-upload /var/log/app/archive 's3://my-logs/{hostname}/{prefix}/{year}/{month}/{day}/{filename}'
  logjam-upload --once /var/log/app/archive 'file:///mnt/nfs/logs/{prefix}/{year}/{month}/{day}/{filename}'

key fields: {prefix} {year} {month} {day} {filename} (required), {hour} {minute}
{suffix} {hostname}. Credentials and region come from the usual AWS variables,
profiles or instance role; --endpoint-url (or AWS_ENDPOINT_URL) selects an
S3-compatible store.
""" + EXIT_STATUS_HELP


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="logjam-upload",
        description="Upload archived log files to S3 (or a directory), each once, never over another object.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("archive_dir", metavar="ARCHIVE_DIR", help="the archive/ directory logjam-compress fills")
    parser.add_argument("uri", metavar="URI", help="destination: s3://BUCKET/TEMPLATE or file:///PATH/TEMPLATE")
    parser.add_argument("--hostname", type=fleet.hostname_value, default=None, metavar="NAME",
                        help=fleet.HOSTNAME_HELP)
    parser.add_argument("--jobs", type=int, default=4, metavar="N",
                        help="files uploaded at once, over one connection pool (default: %(default)s)")
    # nargs="?" for the usage line only: main() has already joined
    # "--verify full" and turned a bare --verify into --verify=head.
    parser.add_argument("--verify", nargs="?", const="head", choices=("head", "full"), default=None,
                        help="check the recorded uploads instead of uploading: sizes and checksums "
                             "by HEAD (head, the default), or download everything (full); implies --once")
    parser.add_argument("--delete-uploaded-after", type=parse_duration, default=None, metavar="DURATION",
                        help="delete archived files whose upload is recorded (and confirmed by a HEAD) once "
                             "their log hour is older than this, e.g. 36h, 7d, 2w")
    add_backend_arguments(parser)  # --max-bandwidth, then each backend's (S3: --endpoint-url, --retries, ...)
    add_common_arguments(parser)
    return parser


def make_job(args: argparse.Namespace, *,
             clock: Callable[[], datetime.datetime] = utc_now) -> UploadJob | VerifyJob:
    """Checks the template, URI and directory before anything else happens.
    Returns the job the runner runs: an upload pass, or --verify's check."""
    if not args.uri.strip():
        raise UsageError("the destination URI is empty: give it as the second argument "
                         "(the contrib/ files take it from LOGJAM_URI in /etc/default/logjam)")
    uploader = get_uploader(args.uri, args, jobs=args.jobs, hostname=args.hostname)
    template = KeyTemplate.parse(uploader.template)
    uploader.check_uri()
    settings = PassSettings.from_args(args)
    check_archive_dir(args.archive_dir, settings)
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1")
    if args.verify and args.dry_run:
        raise UsageError("--verify and --dry-run do not go together (--verify only reads, but it asks the destination)")
    shared = fleet.shares_keys_across_hosts(template.text) and not args.verify and not args.dry_run
    hostname = args.hostname or socket.gethostname()
    template.check_hostname(hostname)  # one line now, not every file failing every pass
    if args.verify:  # its own job on the same runner: one pass that checks instead of uploading
        return VerifyJob(args.archive_dir, uploader, full=args.verify == "full", settings=settings)
    return UploadJob(args.archive_dir, uploader, template, hostname, jobs=args.jobs, clock=clock,
                     settings=settings, delete_after=args.delete_uploaded_after,
                     shared_keys_warning=fleet.SHARED_KEYS_WARNING.format(template=template.text) if shared else None)


def upload_backlog(job: UploadJob) -> PassStats:
    """Takes an upload job. Returns the archived files not yet confirmed at
    its destination, as waiting, from local state only (no lock, no request)."""
    stats = PassStats()
    archive_fd = fsutil.open_given_dir(job.archive_dir)
    try:
        confirmed = Standing.of(Ledger(archive_fd), job.destination, clean=False).here
        for logfile in select_pending(os.listdir(archive_fd), uploaded=confirmed):
            stats.waiting(logfile.timestamp)
    finally:
        os.close(archive_fd)
    return stats


def describe(args: argparse.Namespace) -> str:
    """What an upload loop works on, for its start line (no credentials)."""
    endpoint = f" (endpoint {without_credentials(args.endpoint_url)})" if args.endpoint_url else ""
    return f"{args.archive_dir} -> {without_credentials(args.uri)}{endpoint}"


def main(argv: Sequence[str] | None = None, *, env: Environment | None = None) -> int:
    """Entry point of logjam-upload. Returns the exit status."""
    env = env or Environment()
    argv = join_verify_value(sys.argv[1:] if argv is None else argv)
    return main_runner("logjam-upload", build_parser(), functools.partial(make_job, clock=env.clock), argv,
                       describe=describe, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
