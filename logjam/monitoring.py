"""Monitoring: error reports to Sentry (with credentials scrubbed) and the
Prometheus metrics file written after each pass."""


from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from logjam import __version__
from logjam.errors import UsageError

if TYPE_CHECKING:
    from sentry_sdk.types import Event

    from logjam.runner import PassStats

log = logging.getLogger("logjam")


def configure_sentry(*, environ: Mapping[str, str] = os.environ) -> None:
    """Reports errors to Sentry when SENTRY_DSN is set (in environ) and sentry-sdk is installed."""
    dsn = environ.get("SENTRY_DSN")
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


def _scrub_credentials(event: Event, hint: dict[str, Any]) -> Event:
    secrets = [os.environ[name] for name in CREDENTIAL_VARIABLES if len(os.environ.get(name, "")) >= 8]
    if not secrets:
        return event
    text = json.dumps(event)
    for secret in secrets:
        text = text.replace(json.dumps(secret)[1:-1], "[removed]")
    return cast("Event", json.loads(text))


def capture_message(message: str, *, environ: Mapping[str, str] = os.environ) -> None:
    """Sends an error line to Sentry, if it is configured (a cron run's usage error)."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is not None and environ.get("SENTRY_DSN"):
        sentry_sdk.capture_message(message, level="error")


def capture_exception(error: BaseException, *, environ: Mapping[str, str] = os.environ) -> None:
    """Sends an unexpected error to Sentry, if it is configured."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is not None and environ.get("SENTRY_DSN"):
        sentry_sdk.capture_exception(error)


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


def read_kept_metrics(path: str, *, command: str) -> dict[str, float]:
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


def metrics_writer(prog: str, *, path: str, clock: Callable[[], float] = time.time) -> Callable[[PassStats, float], None]:
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
    kept = read_kept_metrics(path, command=command)
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
