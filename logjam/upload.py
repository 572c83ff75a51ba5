"""logjam-upload: send archived logs to a destination chosen by URI scheme,
each exactly once, never over another object, and remember what was sent.

The ledger (logjam.ledger) records, per file, each destination that
confirmed its upload; a file counts as uploaded only for those. A pass lists
the archive and the ledger and makes no request at all when nothing is new.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from logjam import fleet, fsutil
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
from logjam.fsutil import directory_lock
from logjam.integrity import file_fingerprint
from logjam.ledger import LEDGER_DIRNAME, Ledger, Standing
from logjam.logs import fields
from logjam.markers import Confirmation, Destination
from logjam.options import CANNED_ACLS, STORAGE_CLASSES, parse_bandwidth, parse_tag, parse_threshold
from logjam.parse import LogFile, parse_filename
from logjam.progress import Progress, progress
from logjam.retention import expire, expired, parse_duration
from logjam.runner import PassStats
from logjam.safety import check_directory_security
from logjam.signals import Stop
from logjam.template import KeyTemplate, upload_duplicate_filename
from logjam.verify import join_verify_value, verify_uploads

log = logging.getLogger("logjam.upload")

# LEDGER_DIRNAME and Ledger now live in logjam.ledger; importing them from here still works.
LOCK_NAME = ".logjam-upload.lock"
MAX_UPLOAD_DUPLICATES = 99


# -- pure -------------------------------------------------------------------

def select_pending(archive_names: Iterable[str], uploaded_names: Iterable[str]) -> list[LogFile]:
    """Takes the archive's and the ledger's file names. Returns the archived
    LogFiles not yet recorded as uploaded, in LogFile.sort_key order."""
    done = set(uploaded_names)
    pending = (parse_filename(name) for name in archive_names if name not in done)
    return sorted((logfile for logfile in pending if logfile is not None), key=LogFile.sort_key)


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

    verify: str | None = None  # "head" or "full": check recorded uploads instead
    wait_lock: bool = False
    allow_insecure_dir: bool = False
    dry_run: bool = False
    delete_after: datetime.timedelta | None = None  # retention of uploaded archive files
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc)
    # Logged after the run's first stored file (so a failing run's errors
    # stay one line each), then never again in this process.
    shared_keys_warning: str | None = None
    _warning_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def destination(self) -> Destination:
        """Where this job's uploads count (scheme, endpoint, bucket or root)."""
        return Destination.of(self.uploader)

    def __call__(self, stop: Stop) -> PassStats | bool:
        if self.verify:
            return verify_uploads(self, full=self.verify == "full", stop=stop)
        return scan_and_upload(self, stop=stop)

    def backlog(self) -> PassStats:
        """What waits for upload, from local state only (the runner's metrics after a failed pass)."""
        return upload_backlog(self)


def scan_and_upload(job: UploadJob, *, stop: Stop | None = None) -> PassStats:
    """Uploads every archived file not yet confirmed at this destination. Returns what it did and left."""
    check_stop = stop.check if stop is not None else (lambda: None)
    archive_fd = fsutil.open_given_dir(job.archive_dir)
    try:
        check_directory_security(job.archive_dir, archive_fd, allow_insecure=job.allow_insecure_dir)
        if job.dry_run:
            return _dry_run(job, archive_fd)
        with directory_lock(archive_fd, LOCK_NAME, wait=job.wait_lock, check_stop=check_stop) as locked:
            if not locked:
                log.info("%s: another logjam-upload is working here; skipping", job.archive_dir)
                return PassStats()
            ledger = Ledger(archive_fd)
            destination = job.destination
            archive_names = os.listdir(archive_fd)
            standing = Standing.of(ledger, destination)
            if job.delete_after is not None:
                for name in expired(standing.here, job.clock() - job.delete_after):
                    check_stop()
                    try:
                        expire(job, archive_fd, ledger, name, standing.here[name])
                    except (FileError, OSError) as error:
                        # Could not confirm: keep the file; the pass goes on.
                        log.warning("%s/%s: kept, could not confirm its upload: %s", job.archive_dir, name,
                                    error.strerror if isinstance(error, OSError) and error.strerror else error)
                archive_names = os.listdir(archive_fd)
                standing = Standing.of(ledger, destination)
            _report_ledger(job, standing, archive_names)
            pending = select_pending(archive_names, standing.here)
            if not pending:
                log.debug("%s: nothing to upload", job.archive_dir)
                return PassStats()
            job.uploader.connect()
            job.uploader.begin_pass(archive_fd)  # S3: cleanup of a killed pass; the conditional-write probe
            return _upload_all(job, archive_fd, ledger, pending, check_stop)
    finally:
        os.close(archive_fd)


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


def _dry_run(job: UploadJob, archive_fd: int) -> PassStats:
    # What a pass would do, from local state only: no lock, no request, no write.
    stats = PassStats()
    archive_names = os.listdir(archive_fd)
    standing = Standing.of(Ledger(archive_fd), job.destination, clean=False)
    if job.delete_after is not None:
        for name in expired(standing.here, job.clock() - job.delete_after):
            if name in archive_names:
                print(f"would delete {job.archive_dir}/{name} (uploaded to "
                      f"{standing.here[name].location}; confirmed by HEAD first)", flush=True)
    for logfile in select_pending(archive_names, standing.here):
        key = job.template.format(logfile, hostname=job.hostname)
        try:
            size = os.stat(logfile.filename, dir_fd=archive_fd, follow_symlinks=False).st_size
        except OSError:
            continue
        print(f"would upload {job.archive_dir}/{logfile.filename} -> {job.uploader.describe(key)} ({size} bytes)",
              flush=True)
        stats.done(size)
    return stats


def _upload_all(
    job: UploadJob, archive_fd: int, ledger: Ledger, pending: list[LogFile], check_stop: Callable[[], None]
) -> PassStats:
    total = sum(fsutil.size_or_zero(archive_fd, logfile.filename) for logfile in pending)
    with progress("uploading", files=len(pending), size=total) as bar:
        return _upload_each(job, archive_fd, ledger, pending, check_stop, bar)


def _upload_each(
    job: UploadJob, archive_fd: int, ledger: Ledger, pending: list[LogFile],
    check_stop: Callable[[], None], bar: Progress,
) -> PassStats:
    stats = PassStats()

    def one(logfile: LogFile) -> None:
        check_stop()
        try:
            uploaded = upload_logfile(job, archive_fd, ledger, logfile, check_stop=check_stop)
        except (FileError, OSError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            log.error("%s/%s: %s", job.archive_dir, logfile.filename, reason,
                      extra=fields("failed", file=f"{job.archive_dir}/{logfile.filename}", error=reason))
            stats.waiting(logfile.timestamp, failed=True)
            return
        if uploaded is not None:
            _warn_shared_keys_once(job)
            stats.done(uploaded)
            bar.advance(fsutil.size_or_zero(archive_fd, logfile.filename))

    map_concurrently(one, pending, workers=job.jobs)
    return stats


def _warn_shared_keys_once(job: UploadJob) -> None:
    with job._warning_lock:
        message, job.shared_keys_warning = job.shared_keys_warning, None
    if message:
        log.warning("%s", message)


def upload_logfile(
    job: UploadJob, archive_fd: int, ledger: Ledger, logfile: LogFile, *, check_stop: Callable[[], None]
) -> int | None:
    """Uploads one archived file to its key (or the first free duplicate key),
    then records it. Returns the bytes sent, or None if skipped."""
    name = logfile.filename
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
            ledger.record(name, Confirmation(job.destination, key, print_, destination), source=source)
            verb = "uploaded" if result is PutResult.STORED else "found already uploaded"
            log.info("%s %s/%s -> %s (%d bytes)", verb, job.archive_dir, name, destination, size, extra=fields(
                "uploaded" if result is PutResult.STORED else "already_uploaded", file=f"{job.archive_dir}/{name}",
                destination=destination, bytes_in=size, bytes_out=size if result is PutResult.STORED else 0,
                duration=round(time.monotonic() - started, 3)))
            return size if result is PutResult.STORED else 0
        raise FileError(f"{keys[0]} and all {MAX_UPLOAD_DUPLICATES} duplicate keys hold other content")
    finally:
        os.close(fd)


def check_archive_dir(archive_dir: str, *, allow_insecure: bool = False) -> None:
    """Guards against pointing logjam-upload at live logs (upstream's rule)
    and, as root, at a directory a non-root user can write."""
    if os.path.basename(os.path.normpath(archive_dir)) != "archive":
        raise UsageError(f"{archive_dir}: the archive directory's last component must be 'archive' "
                         "(the one logjam-compress fills)")
    archive_fd = fsutil.open_given_dir(archive_dir)
    try:
        check_directory_security(archive_dir, archive_fd, allow_insecure=allow_insecure)
    finally:
        os.close(archive_fd)


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
    parser.add_argument("--endpoint-url", default=None, metavar="URL",
                        help="an S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")
    parser.add_argument("--hostname", type=fleet.hostname_value, default=None, metavar="NAME",
                        help=fleet.HOSTNAME_HELP)
    parser.add_argument("--retries", type=int, default=5, metavar="N",
                        help="attempts per S3 request, with backoff (default: %(default)s)")
    parser.add_argument("--retry-mode", choices=("standard", "adaptive"), default="adaptive",
                        help="botocore's retry mode; adaptive also slows the whole process down after "
                             "503 SlowDown or 429 (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=4, metavar="N",
                        help="files uploaded at once, over one connection pool (default: %(default)s)")
    # nargs="?" for the usage line only: main() has already joined
    # "--verify full" and turned a bare --verify into --verify=head.
    parser.add_argument("--verify", nargs="?", const="head", choices=("head", "full"), default=None,
                        help="check the recorded uploads instead of uploading: sizes and checksums "
                             "by HEAD (head, the default), or download everything (full); implies --once")
    s3 = parser.add_argument_group("S3 object options (as the AWS CLI names them)")
    s3.add_argument("--storage-class", default=None, choices=STORAGE_CLASSES, metavar="CLASS",
                    help="e.g. STANDARD_IA, GLACIER_IR, INTELLIGENT_TIERING (default: the bucket's)")
    s3.add_argument("--sse", default=None, choices=("AES256", "aws:kms", "aws:kms:dsse"),
                    help="server-side encryption")
    s3.add_argument("--sse-kms-key-id", default=None, metavar="KEY_ID", help="the KMS key, with --sse aws:kms")
    s3.add_argument("--acl", default=None, choices=CANNED_ACLS, metavar="ACL",
                    help="a canned ACL, e.g. bucket-owner-full-control for a bucket in another account")
    s3.add_argument("--tag", action="append", type=parse_tag, default=None, metavar="KEY=VALUE",
                    help="an object tag (repeatable)")
    s3.add_argument("--conditional-writes", choices=("auto", "require", "off"), default="auto",
                    help="whether the store honours If-None-Match (never overwrite): auto probes it once per "
                         "bucket, and checks each key with HEAD first where it does not; require refuses such a "
                         "store; off trusts it without probing (default: %(default)s)")
    parser.add_argument("--max-bandwidth", type=parse_bandwidth, default=None, metavar="BYTES_PER_SECOND",
                        help="keep all uploads together under this rate, e.g. 1000000 or 5MiB (thin links)")
    parser.add_argument("--delete-uploaded-after", type=parse_duration, default=None, metavar="DURATION",
                        help="delete archived files whose upload is recorded (and confirmed by a HEAD) once "
                             "their log hour is older than this, e.g. 36h, 7d, 2w")
    parser.add_argument("--multipart-threshold", type=parse_threshold, default=None, metavar="BYTES",
                        help="S3: files of this size or more go multipart, 5MiB to 5GiB (default: 64MiB)")
    add_common_arguments(parser)
    return parser


def make_job(args: argparse.Namespace) -> UploadJob:
    """Checks the template, URI and directory before anything else happens."""
    if not args.uri.strip():
        raise UsageError("the destination URI is empty: give it as the second argument "
                         "(the contrib/ files take it from LOGJAM_URI in /etc/default/logjam)")
    uploader = get_uploader(args.uri, args)
    template = KeyTemplate.parse(uploader.template)
    uploader.check_uri()
    check_archive_dir(args.archive_dir, allow_insecure=args.allow_insecure_dir)
    if args.retries < 1:
        raise UsageError(f"--retries {args.retries}: must be at least 1 (one attempt, no retry)")
    if args.sse_kms_key_id and args.sse not in ("aws:kms", "aws:kms:dsse"):
        raise UsageError("--sse-kms-key-id needs --sse aws:kms")
    s3_only = [flag for flag, value in (("--storage-class", args.storage_class), ("--sse", args.sse),
                                         ("--acl", args.acl), ("--tag", args.tag)) if value]
    if s3_only and getattr(uploader, "scheme", None) != "s3":
        raise UsageError(f"{', '.join(s3_only)}: for s3:// destinations only")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1")
    if args.verify:
        if args.dry_run:
            raise UsageError("--verify and --dry-run do not go together (--verify only reads, but it asks the destination)")
        args.once = True
    shared = fleet.shares_keys_across_hosts(template.text) and not args.verify and not args.dry_run
    hostname = args.hostname or socket.gethostname()
    template.check_hostname(hostname)  # one line now, not every file failing every pass
    return UploadJob(args.archive_dir, uploader, template, hostname, jobs=args.jobs,
                     verify=args.verify, wait_lock=args.wait_lock, allow_insecure_dir=args.allow_insecure_dir,
                     dry_run=args.dry_run, delete_after=args.delete_uploaded_after,
                     shared_keys_warning=fleet.SHARED_KEYS_WARNING.format(template=template.text) if shared else None)


def upload_backlog(job: UploadJob) -> PassStats:
    """Takes an upload job. Returns the archived files not yet confirmed at
    its destination, as waiting, from local state only (no lock, no request)."""
    stats = PassStats()
    if job.verify:
        return stats
    archive_fd = fsutil.open_given_dir(job.archive_dir)
    try:
        confirmed = Standing.of(Ledger(archive_fd), job.destination, clean=False).here
        for logfile in select_pending(os.listdir(archive_fd), confirmed):
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
    return main_runner("logjam-upload", build_parser(), lambda args: replace(make_job(args), clock=env.clock), argv,
                       describe=describe, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
