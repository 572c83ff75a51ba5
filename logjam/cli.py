"""The command-line layer the console scripts share: common arguments, and
main_runner, which sets up logging, signals, Sentry and metrics, runs the
loop (logjam.runner) and maps errors to exit statuses. Everything else in
logjam raises; only this module decides how a process ends. Only the command
modules (compress, upload, status, cat) import it. Environment is what a
command takes from its process (streams, clock, environment variables), so
that tests can run a command in-process with their own.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, TextIO

from logjam import __version__, fleet
from logjam.errors import ExitStatus, Interrupted, LogjamError
from logjam.logs import LOG_LEVELS, configure_logging, describe_error, fields, one_line
from logjam.monitoring import capture_exception, capture_message, check_metrics_path, configure_sentry, metrics_writer
from logjam.parse import utc_now
from logjam.runner import Job, PassStats, run
from logjam.signals import Stop, install_signal_handlers, signal_name

log = logging.getLogger("logjam")

EXIT_STATUS_HELP = """\
exit status (--once): 0 all done, 1 some files failed (retried next pass),
2 usage or configuration error, 128+N stopped by signal N.
"""


@dataclass
class Environment:
    """What a command takes from the process it runs in, in the style of
    httpie's Environment: its streams, its clock and its environment
    variables. Environment() is the real process's, read when it is made (so
    a test's captured sys.stdout counts); a test passes its own to main()."""

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    clock: Callable[[], datetime.datetime] = utc_now


class ArgumentParser(argparse.ArgumentParser):
    """argparse for all four commands: a usage error is one line naming the
    problem and one hint line, exit status 2 (not the whole usage, which
    buries the problem in 15 lines of options)."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())  # one line, whatever argparse built
        self.exit(ExitStatus.USAGE,
                  f"{self.prog}: error: {one_line(message)}\nTry '{self.prog} --help' for more information.\n")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options logjam-compress and logjam-upload share."""
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


def without_credentials(url: str) -> str:
    """Takes a URL. Returns it without a user or password (for log lines)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def main_runner(
    prog: str,
    parser: argparse.ArgumentParser,
    make_job: Callable[[argparse.Namespace], Job],
    argv: Sequence[str] | None = None,
    *,
    stop: Stop | None = None,
    describe: Callable[[argparse.Namespace], str] = lambda args: "",
    start_backlog: Callable[[argparse.Namespace], PassStats] | None = None,
    env: Environment | None = None,
) -> int:
    """Parses argv, builds the job, runs it and maps what happens to an exit status.

    describe says what a loop works on (directories, destination without
    credentials) for the line logged when it starts. start_backlog counts
    what waits when the job cannot even be built (a configuration error),
    so that the metrics file records that failed run with its backlog.
    env gives the streams for the log and error lines and the environment
    variables the runner reads (SENTRY_DSN); default: the process's."""
    env = env or Environment()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse has printed its message
        return int(exit.code or 0)
    # File names may hold bytes that are not UTF-8: show them escaped
    # rather than fail to log (or to print the error line).
    with contextlib.suppress(AttributeError, ValueError):
        env.stderr.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    configure_logging(args.log_level, stream=env.stderr, json_format=args.log_format == "json")
    configure_sentry(environ=env.environ)
    looping = False
    try:
        if args.metrics_file:
            check_metrics_path(args.metrics_file)
        try:
            job = make_job(args)
        except LogjamError:
            if args.metrics_file:
                failed = PassStats(errors=1)
                with contextlib.suppress(Exception):
                    failed.add(start_backlog(args) if start_backlog else PassStats())
                metrics_writer(prog, path=args.metrics_file)(failed, 0.0)
            raise
        args.once = args.once or job.one_shot  # a dry run, --verify, logjam-status: one pass
        if stop is None:
            stop = Stop()
            install_signal_handlers(stop, once=args.once)
        after_pass = metrics_writer(prog, path=args.metrics_file) if args.metrics_file else (lambda *_: None)
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
        print(f"{prog}: error: {one_line(str(error))}", file=env.stderr)
        capture_message(f"{prog}: error: {error}", environ=env.environ)
        return error.exit_status
    except Exception as error:
        capture_exception(error, environ=env.environ)
        if log.isEnabledFor(logging.DEBUG):
            raise
        print(f"{prog}: error: unexpected {describe_error(error)} (run with --log-level debug for details)",
              file=env.stderr)
        return ExitStatus.ERROR
    if stop.event.is_set():
        if args.once:
            status = 128 + stop.signum
        _log_stop(prog, stop.signum, status)
    elif looping:
        log.info("%s stopped; exit status %d", prog, status, extra=fields("stopped", status=status))
    return status


def _log_stop(prog: str, signum: int, status: int) -> None:
    log.info("%s stopped by %s; exit status %d", prog, signal_name(signum), status,
             extra=fields("stopped", signal=signal_name(signum), status=status))
