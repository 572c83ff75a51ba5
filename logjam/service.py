"""The one runner both console scripts share: arguments, logging, signals,
the polling loop, the per-directory lock and the mapping of errors to exit
statuses. Everything else in logjam raises; only this module decides how a
process ends.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import fcntl
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from logjam import __version__, fleet, fsutil
from logjam.concurrency import block_stop_signals
from logjam.errors import ExitStatus, Interrupted, LogjamError, UsageError

log = logging.getLogger("logjam")

MIN_SLEEP = 1.0
STOP_GRACE = 4.0  # seconds from SIGTERM to a forced (but clean) exit
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
EXIT_STATUS_HELP = """\
exit status (--once): 0 all done, 1 some files failed (retried next pass),
2 usage or configuration error, 128+N stopped by signal N.
"""
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


@dataclass
class Stop:
    """Set by SIGTERM/SIGINT. Long work calls check() between chunks."""

    event: threading.Event = field(default_factory=threading.Event)
    signum: int = 0

    def request(self, signum: int) -> None:
        self.signum = signum
        self.event.set()

    def check(self) -> None:
        """Raises Interrupted if a stop was requested."""
        if self.event.is_set():
            raise Interrupted(self.signum)

    def wait(self, seconds: float) -> bool:
        # In slices: between them the main thread runs any signal handler
        # that is due, whichever thread the kernel handed the signal to.
        deadline = time.monotonic() + seconds
        while not self.event.wait(max(0.0, min(1.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return False
        return True


@dataclass
class PassStats:
    """What one pass did and left, for the exit status, metrics and progress."""

    files: int = 0  # files compressed or uploaded
    bytes: int = 0  # their sizes (input bytes for compression)
    errors: int = 0
    pending: int = 0  # files still waiting after the pass
    oldest_pending: datetime.datetime | None = None  # the hour of the oldest one

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def done(self, size: int) -> None:
        self.files += 1
        self.bytes += size

    def waiting(self, hour: datetime.datetime, *, failed: bool = False) -> None:
        self.pending += 1
        self.errors += failed
        if self.oldest_pending is None or hour < self.oldest_pending:
            self.oldest_pending = hour

    def add(self, other: PassStats) -> None:
        self.files += other.files
        self.bytes += other.bytes
        self.errors += other.errors
        self.pending += other.pending
        if other.oldest_pending is not None:
            self.waiting(other.oldest_pending)
            self.pending -= 1


Job = Callable[[Stop], PassStats]


class ArgumentParser(argparse.ArgumentParser):
    """argparse for all three commands: a usage error is one line naming the
    problem and one hint line, exit status 2 (not the whole usage, which
    buries the problem in 15 lines of options)."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())  # one line, whatever argparse built
        self.exit(ExitStatus.USAGE,
                  f"{self.prog}: error: {one_line(message)}\nTry '{self.prog} --help' for more information.\n")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both commands take."""
    parser.add_argument(
        "--once", action="store_true", help="run one pass and exit (for cron); default: loop"
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between the starts of two passes in loop mode (default: %(default)g)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        type=str.lower,
        help="least severe messages to log to stderr (default: %(default)s)",
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be done, change nothing (no lock, no request)")
    parser.add_argument("--log-format", choices=("plain", "json"), default="plain",
                        help="plain lines (default) or one JSON object per line")
    parser.add_argument("--metrics-file", metavar="PATH", default=None,
                        help="write Prometheus metrics here after each pass (node_exporter textfile collector)")
    parser.add_argument("--wait-lock", action="store_true",
                        help="wait for another instance working on the same directory, instead of skipping it")
    parser.add_argument("--allow-insecure-dir", action="store_true",
                        help="run as root even in a directory that a non-root user can write")
    parser.add_argument("--splay", type=fleet.non_negative_seconds, default=0.0, metavar="SECONDS",
                        help=fleet.SPLAY_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= fleet.MAX_WAIT_SECONDS:  # longer waits overflow a timed wait
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, at most {fleet.MAX_WAIT_SECONDS} "
                                         f"(a year): {text!r}")
    return value


def fields(event: str, **values: object) -> dict[str, dict[str, object]]:
    """Takes an event name and its values (file, destination, bytes_in,
    bytes_out, duration, error). Returns the extra= of a log call: the
    structured fields --log-format json adds to the record."""
    return {"logjam_fields": {"event": event, **{key: value for key, value in values.items() if value is not None}}}


# Control characters a file name may hold: in a log line or an error line
# they would end the line (and could forge the next one) or move the cursor.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """Takes a message. Returns it with control characters (newlines, tabs,
    escapes, U+2028) written as backslash escapes, so that it stays one line."""
    return text.translate(_CONTROLS)


class LineFormatter(logging.Formatter):
    """The plain format: one line per record, whatever names it mentions
    (a traceback, shown only with --log-level debug, follows as is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (--log-format json), with
    the structured fields of logjam's per-file events (see fields())."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in getattr(record, "logjam_fields", {}).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, *, stream=None, json_format: bool = False) -> None:
    """One line per record on stderr. Library loggers stay quiet: botocore's
    debug output carries request signatures and would bury ours."""
    if stream is None:
        # File names may hold bytes that are not UTF-8: show them escaped
        # rather than fail to log.
        with contextlib.suppress(AttributeError, ValueError):
            sys.stderr.reconfigure(errors="backslashreplace")
        stream = sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter() if json_format else LineFormatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3 warns with a traceback about replies cut off mid-header; botocore
    # retries those, and logjam reports what finally fails in one line.
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def configure_sentry() -> None:
    """Reports errors to Sentry when SENTRY_DSN is set and sentry-sdk is installed."""
    dsn = os.environ.get("SENTRY_DSN")
    if not dsn:
        return
    try:
        import sentry_sdk
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed (pip install sentry-sdk)")
        return
    sentry_sdk.init(
        dsn=dsn,
        release=f"logjam@{__version__}",
        send_default_pii=False,
        # Frames inside botocore hold signed requests (access key id, session
        # token): never ship local variables, and scrub what else might.
        include_local_variables=False,
        before_send=_scrub_credentials,
        # No tracing headers on S3 requests.
        trace_propagation_targets=[],
        traces_sample_rate=0,
    )


CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def _scrub_credentials(event: dict, hint: dict) -> dict:
    secrets = [os.environ[name] for name in CREDENTIAL_VARIABLES if len(os.environ.get(name, "")) >= 8]
    if not secrets:
        return event
    text = json.dumps(event)
    for secret in secrets:
        text = text.replace(json.dumps(secret)[1:-1], "[removed]")
    return json.loads(text)


def capture_message(message: str) -> None:
    """Sends an error line to Sentry, if it is configured (a cron run's usage error)."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is not None and os.environ.get("SENTRY_DSN"):
        sentry_sdk.capture_message(message, level="error")


def capture_exception(error: BaseException) -> None:
    """Sends an unexpected error to Sentry, if it is configured."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is not None and os.environ.get("SENTRY_DSN"):
        sentry_sdk.capture_exception(error)


def install_signal_handlers(stop: Stop, *, once: bool) -> None:
    """SIGTERM, SIGINT and SIGHUP request a stop; the file in hand is finished or rolled back.

    SIGHUP (a closed terminal, runit's ``sv hup``) would otherwise kill the
    process and leave a temporary file and a multipart upload behind. A
    SIGHUP that is ignored already (``nohup``) stays ignored.

    Work checks for the stop every chunk, but a request may be waiting on a
    slow server: a watchdog then removes the temporary files and exits at
    STOP_GRACE seconds, so a service stop never takes longer than 5 s.
    """

    global _signal_target
    _signal_target = (stop, once)
    write_fd = _signal_relay()

    def handle(received: int, frame) -> None:
        os.write(write_fd, bytes([received]))  # no lock, nothing but a write

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, handle)


# The handler only writes the signal's number to a pipe; a thread acts on
# it. Python runs handlers in the main thread between bytecodes, and
# Event.set() takes the lock that Event.wait() holds for an instant in that
# same thread: a signal arriving then would deadlock the process (seen: a
# SIGTERM during --splay, under load, was never acted on). One pipe and one
# thread per process, acting for the Stop installed last.
_signal_target: tuple[Stop, bool] | None = None


@functools.cache
def _signal_relay() -> int:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    threading.Thread(target=_act_on_signals, args=(read_fd,), daemon=True, name="logjam-signals").start()
    return write_fd


def _act_on_signals(read_fd: int) -> None:
    block_stop_signals()
    while received := os.read(read_fd, 1):
        if _signal_target is None:
            continue
        stop, once = _signal_target
        signum = received[0]
        first = not stop.event.is_set()
        stop.request(signum)
        status = 128 + signum if once else ExitStatus.SUCCESS
        if first:
            threading.Thread(target=_watchdog, args=(status,), daemon=True).start()
        else:  # a second signal: stop now
            _force_exit(status)


def _watchdog(status: int) -> None:
    block_stop_signals()
    time.sleep(STOP_GRACE)
    log.warning("still busy %.0f s after the stop request; exiting now (exit status %d)", STOP_GRACE, status)
    _force_exit(status)


def _force_exit(status: int) -> None:
    fsutil.remove_live_temp_files()
    logging.shutdown()
    os._exit(status)


@contextlib.contextmanager
def directory_lock(dir_fd: int, name: str, *, wait: bool = False,
                   check_stop: Callable[[], None] = lambda: None) -> Iterator[bool]:
    """Holds an exclusive flock on a hidden lock file in a directory.

    Yields False, holding nothing, when another process has it (unless wait):
    two instances (a cron run beside a daemon) must never work on one
    directory at once.
    """
    fd = os.open(
        name,
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dir_fd,
    )
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if not wait:
                    yield False
                    return
            check_stop()
            time.sleep(0.2)  # flock has no timeout; poll so a stop is seen
        yield True
    finally:
        os.close(fd)


def run(
    job: Job, *, once: bool, interval: float, stop: Stop,
    after_pass: Callable[[PassStats, float], None] = lambda stats, seconds: None,
    first_delay: float = 0.0,
) -> ExitStatus:
    """Runs job once, or every interval seconds (from the start of each pass) until stopped.

    The first pass waits first_delay seconds (--splay); a stop during the
    wait ends the run at once, with no pass. Returns the exit status: with
    once, ERROR if the pass left work undone; in loop mode SUCCESS after a
    stop (a service stop is normal). With once, an error that ends the whole
    pass (LogjamError) is raised, after after_pass has recorded the failed
    pass.
    """
    if first_delay > 0:
        log.info("waiting %.1f s before the first pass (--splay)", first_delay)
        if stop.wait(first_delay):
            return ExitStatus.SUCCESS  # main_runner reports a stopped --once as 128+N
    while True:
        started = time.monotonic()
        try:
            stats = _run_pass(job, stop, once=once)
        except LogjamError:
            after_pass(_failed_pass(job), time.monotonic() - started)
            raise
        after_pass(stats, time.monotonic() - started)
        if once:
            return ExitStatus.SUCCESS if stats.ok else ExitStatus.ERROR
        if stop.wait(max(interval - (time.monotonic() - started), MIN_SLEEP)):
            return ExitStatus.SUCCESS


def _run_pass(job: Job, stop: Stop, *, once: bool) -> PassStats:
    try:
        stats = job(stop)
        if isinstance(stats, bool):  # a plain job may just say whether it succeeded
            stats = PassStats(errors=0 if stats else 1)
        return stats
    except LogjamError as error:
        if once:  # the runner reports it as the one line that ends the command
            raise
        log.error("%s", error)
        log.info("will try again on the next pass")
        return _failed_pass(job)
    except Exception as error:
        if once:
            raise
        # A daemon outlives one bad pass; the error is logged and reported.
        log.error("unexpected error: %s", _describe(error), exc_info=log.isEnabledFor(logging.DEBUG))
        capture_exception(error)
        return _failed_pass(job)


def _failed_pass(job: Job) -> PassStats:
    # A pass that failed as a whole still leaves its files waiting: count
    # them from local state (job.backlog), so that the metrics show the
    # backlog during an outage instead of "nothing pending".
    stats = PassStats(errors=1)
    backlog = getattr(job, "backlog", None)
    if backlog is not None:
        try:
            stats.add(backlog())
        except Exception as error:  # the metrics must not end the process
            log.debug("cannot count the waiting files: %s", _describe(error))
    return stats


# Gauges that a --once run reads back from the previous metrics file, so that
# they describe the history of the installation, not of one process.
KEPT_ACROSS_RUNS = ("logjam_last_success_timestamp_seconds", "logjam_last_failure_timestamp_seconds",
                    "logjam_consecutive_failed_passes")


def check_metrics_path(path: str) -> None:
    """Raises UsageError unless path can be a metrics file: a missing
    directory is a configuration problem to report at start, not a line
    after every pass."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--metrics-file {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--metrics-file {path}: is a directory")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"--metrics-file {path}: cannot write to {directory}")


def read_kept_metrics(path: str, command: str) -> dict[str, float]:
    """Takes a metrics file and a command label. Returns the KEPT_ACROSS_RUNS
    values it holds for that command ({} when there is no readable file)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        log.warning("cannot read the previous metrics in %s (%s); starting afresh", path, error)
        return {}
    values = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in KEPT_ACROSS_RUNS and sample.labels.get("command") == command:
                    values[sample.name] = sample.value
    except ValueError as error:
        log.warning("cannot parse the previous metrics in %s (%s); starting afresh", path, error)
        return {}
    return values


def _metrics_writer(prog: str, path: str, *, clock: Callable[[], float] = time.time) -> Callable[[PassStats, float], None]:
    """Returns an after_pass hook that keeps counters across passes and writes
    them atomically (a temporary file renamed over path) after each pass.

    The last success, the last failure and the run of failed passes survive
    the process: they are read back from the file the previous run wrote."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile

    command = prog.removeprefix("logjam-")
    registry = CollectorRegistry()
    labels = {"command": command}
    files = Counter("logjam_files", "Files compressed or uploaded", ["command"], registry=registry)
    size = Counter("logjam_bytes", "Bytes compressed (input) or uploaded", ["command"], registry=registry)
    errors = Counter("logjam_errors", "Files or passes that failed", ["command"], registry=registry)
    pending = Gauge("logjam_pending_files", "Files waiting after the last pass", ["command"], registry=registry)
    oldest = Gauge("logjam_oldest_pending_age_seconds", "Age of the oldest waiting file's hour",
                   ["command"], registry=registry)
    success = Gauge("logjam_last_success_timestamp_seconds",
                    "When a pass last finished without errors (0: never), across runs",
                    ["command"], registry=registry)
    failure = Gauge("logjam_last_failure_timestamp_seconds",
                    "When a pass last had an error (0: never), across runs", ["command"], registry=registry)
    failing = Gauge("logjam_consecutive_failed_passes",
                    "Passes in a row, across runs, that had errors (0 after a clean pass)",
                    ["command"], registry=registry)
    duration = Gauge("logjam_pass_duration_seconds", "How long the last pass took", ["command"], registry=registry)
    for metric in (files, size, errors):
        metric.labels(**labels)  # present (at 0) from the first write
    kept = read_kept_metrics(path, command)
    success.labels(**labels).set(kept.get("logjam_last_success_timestamp_seconds", 0))
    failure.labels(**labels).set(kept.get("logjam_last_failure_timestamp_seconds", 0))
    failing.labels(**labels).set(kept.get("logjam_consecutive_failed_passes", 0))

    def after_pass(stats: PassStats, seconds: float) -> None:
        files.labels(**labels).inc(stats.files)
        size.labels(**labels).inc(stats.bytes)
        errors.labels(**labels).inc(stats.errors)
        pending.labels(**labels).set(stats.pending)
        now = clock()
        age = now - stats.oldest_pending.timestamp() if stats.oldest_pending else 0
        oldest.labels(**labels).set(max(age, 0))
        if stats.ok:
            success.labels(**labels).set(now)
            failing.labels(**labels).set(0)
        else:
            failure.labels(**labels).set(now)
            failing.labels(**labels).inc()
        duration.labels(**labels).set(seconds)
        try:
            write_to_textfile(path, registry)
        except OSError as error:
            log.error("cannot write metrics to %s: %s", path, error.strerror or error)

    return after_pass


def without_credentials(url: str) -> str:
    """Takes a URL. Returns it without a user or password (for log lines)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def main_runner(
    prog: str,
    parser: argparse.ArgumentParser,
    make_job: Callable[[argparse.Namespace], Job],
    argv: Sequence[str] | None = None,
    *,
    stop: Stop | None = None,
    describe: Callable[[argparse.Namespace], str] = lambda args: "",
    start_backlog: Callable[[argparse.Namespace], PassStats] | None = None,
) -> int:
    """Parses argv, builds the job, runs it and maps what happens to an exit status.

    describe says what a loop works on (directories, destination without
    credentials) for the line logged when it starts. start_backlog counts
    what waits when the job cannot even be built (a configuration error),
    so that the metrics file records that failed run with its backlog."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse has printed its message
        return int(exit.code or 0)
    if args.dry_run:
        args.once = True  # a dry run reports one pass
    configure_logging(args.log_level, json_format=args.log_format == "json")
    configure_sentry()
    looping = False
    try:
        if args.metrics_file:
            check_metrics_path(args.metrics_file)
        try:
            job = make_job(args)  # may settle args.once (a dry run, --verify)
        except LogjamError:
            if args.metrics_file:
                failed = PassStats(errors=1)
                with contextlib.suppress(Exception):
                    failed.add(start_backlog(args) if start_backlog else PassStats())
                _metrics_writer(prog, args.metrics_file)(failed, 0.0)
            raise
        if stop is None:
            stop = Stop()
            install_signal_handlers(stop, once=args.once)
        after_pass = _metrics_writer(prog, args.metrics_file) if args.metrics_file else (lambda *_: None)
        if not args.once:
            looping = True
            what = describe(args)
            log.info("%s %s started%s, a pass every %g s", prog, __version__, f": {what}" if what else "",
                     args.interval, extra=fields("started", version=__version__, interval=args.interval))
        status: int = run(job, once=args.once, interval=args.interval, stop=stop, after_pass=after_pass,
                          first_delay=fleet.splay_for(args))
    except Interrupted as interrupted:
        status = 128 + interrupted.signum if args.once else ExitStatus.SUCCESS
        _log_stop(prog, interrupted.signum, status)
        return status
    except LogjamError as error:
        print(f"{prog}: error: {one_line(str(error))}", file=sys.stderr)
        capture_message(f"{prog}: error: {error}")
        return error.exit_status
    except Exception as error:
        capture_exception(error)
        if log.isEnabledFor(logging.DEBUG):
            raise
        print(f"{prog}: error: unexpected {_describe(error)} (run with --log-level debug for details)",
              file=sys.stderr)
        return ExitStatus.ERROR
    if stop.event.is_set():
        if args.once:
            status = 128 + stop.signum
        _log_stop(prog, stop.signum, status)
    elif looping:
        log.info("%s stopped; exit status %d", prog, status, extra=fields("stopped", status=status))
    return status


def _log_stop(prog: str, signum: int, status: int) -> None:
    log.info("%s stopped by %s; exit status %d", prog, _signal_name(signum), status,
             extra=fields("stopped", signal=_signal_name(signum), status=status))
