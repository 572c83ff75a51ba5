"""Bad input, in one table: one row per case, each asserting the message,
the exit status, and that nothing was lost.

Every row arranges a fresh directory tree, runs one command on it (its main()
in-process; as a real process as nobody, where a row needs permission bits) and
then checks, besides its own expectations:

- stderr has no traceback, and its lines other than INFO/DEBUG records are
  exactly the row's lines (a failure is one line);
- the exit status is the row's;
- nothing was lost: every file present before is still there with the same
  bytes, or (for a log that was compressed) its archive copy decompresses to
  those bytes; and when the run fails, the tree is exactly as it was (lock
  files aside): no half-written file, no ledger entry.

Unreadable directories and files need permission bits that bite: as root
they do not, so those commands run as ``nobody`` (uid 65534) against files
owned by root. The tree lives in its own world-traversable directory for
that reason (pytest's base temporary directory is private to root).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import gzip
import os
import re
import shutil
import site
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import call, clean_env, run, script, tree

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
OLD = "app-20130727T1200Z.log"
ARCHIVED = "db-20130727T1200Z.log.gz"
NOBODY = 65534
LOCKS = {".logjam-compress.lock", ".logjam-upload.lock"}
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<logger>\S+) (?P<level>[A-Z]+) (?P<message>.*)")

# Names that are not plain ASCII: a space, Unicode, and a byte that is not UTF-8.
ODD_NAMES = [
    b"app log-20130727T1200Z.log",
    "café-20130727T1200Z.log".encode(),
    "日本-20130727T1200Z.log".encode(),
    b"caf\xe9-20130727T1200Z.log",
]
ODD_KEYS = {  # archived name -> key: undecodable bytes become %XX
    b"app log-20130727T1200Z.log.gz": "app log/2013/07/27/app log-20130727T1200Z.log.gz",
    "café-20130727T1200Z.log.gz".encode(): "café/2013/07/27/café-20130727T1200Z.log.gz",
    "日本-20130727T1200Z.log.gz".encode(): "日本/2013/07/27/日本-20130727T1200Z.log.gz",
    b"caf\xe9-20130727T1200Z.log.gz": "caf%E9/2013/07/27/caf%E9-20130727T1200Z.log.gz",
}


# -- what stderr says ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Line:
    """An expected stderr line: printed by the runner (level None) or a log
    record at level. text is the exact message, or a compiled regex."""

    text: str | re.Pattern
    level: str | None = None

    def matches(self, level: str | None, message: str) -> bool:
        if level != self.level:
            return False
        if isinstance(self.text, re.Pattern):
            return self.text.fullmatch(message) is not None
        return message == self.text


def printed(text: str | re.Pattern) -> Line:
    return Line(text)


def logged(level: str, text: str | re.Pattern) -> Line:
    return Line(text, level)


def complaints(stderr: str) -> list[tuple[str | None, str]]:
    """The stderr lines that are not INFO/DEBUG records, as (level or None, message)."""
    found = []
    for line in stderr.splitlines():
        record = RECORD.fullmatch(line)
        if record is None:
            found.append((None, line))
        elif record["level"] not in ("INFO", "DEBUG") and "nor {suffix}" not in record["message"]:
            # (the shared-keys warning of a template without {hostname}: tests/integration/test_fleet.py)
            found.append((record["level"], record["message"]))
    return found


def infos(stderr: str) -> list[str]:
    return [record["message"] for record in map(RECORD.fullmatch, stderr.splitlines())
            if record is not None and record["level"] == "INFO"]


# -- running a command as a user for whom permission bits count ------------------------

@functools.cache
def _unprivileged_python() -> tuple[str, str] | None:
    """(interpreter, PYTHONPATH) with which uid 65534 can run logjam, or None.

    The virtualenv's interpreter may live under /root (not searchable by
    nobody); a system interpreter of the same version runs the same code
    from the same site-packages.
    """
    import logjam

    path = os.pathsep.join([str(Path(logjam.__file__).resolve().parent.parent), *site.getsitepackages()])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable), f"/usr/bin/python{version}", f"/usr/local/bin/python{version}",
                  shutil.which(f"python{version}")]
    probe = f"import sys, logjam.compress, logjam.upload; assert sys.version_info[:2] == ({version.replace('.', ', ')})"
    for candidate in dict.fromkeys(filter(None, candidates)):
        try:
            result = subprocess.run([candidate, "-c", probe], env=clean_env(PYTHONPATH=path), cwd="/",
                                    user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, timeout=60)
        except OSError:
            continue
        if result.returncode == 0:
            return candidate, path
    return None


def run_unprivileged(name: str, *args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs a console script as nobody when we are root (else as ourselves)."""
    if os.geteuid() != 0:
        return run(name, *args, env=env, timeout=timeout)
    found = _unprivileged_python()
    if found is None:
        pytest.skip("running as root, where permission bits do not stop reads, and no Python "
                    f"{sys.version_info.major}.{sys.version_info.minor} that uid {NOBODY} can execute was found")
    python, path = found
    environment = dict(env or clean_env())
    environment["PYTHONPATH"] = path
    return subprocess.run([python, script(name), *map(str, args)], env=environment, cwd="/",
                          user=NOBODY, group=NOBODY, extra_groups=[],
                          capture_output=True, text=True, timeout=timeout)


# -- the arrangement a row makes ---------------------------------------------------------

@dataclasses.dataclass
class Run:
    """One command a row runs, and the names its expectations refer to."""

    command: str
    args: list
    env: dict | None = None
    unprivileged: bool = False
    timeout: float = 120
    where: dict = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str):
        if name == "where":
            raise AttributeError(name)
        try:
            return self.where[name]
        except KeyError:
            raise AttributeError(name) from None


class Context:
    """A fresh world-traversable directory tree, and the fixtures a row asks for."""

    def __init__(self, root: Path, request: pytest.FixtureRequest) -> None:
        self.root = root
        self.request = request
        self._restore: list[tuple[Path, int]] = []

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    def logs(self, files: dict, directory: str = "logs", *, quiet_for: float = 3600) -> Path:
        """Writes log files (str or bytes names) with an mtime quiet_for seconds ago."""
        path = self.root / directory
        path.mkdir(parents=True, exist_ok=True)
        then = time.time() - quiet_for
        for name, data in files.items():
            full = os.path.join(os.fsencode(path), os.fsencode(name))
            with open(full, "wb") as file:
                file.write(data)
            os.utime(full, (then, then))
        return path

    def archive(self, files: dict) -> Path:
        """Writes archived (gzip) files into logs/archive."""
        return self.logs({name: gzip.compress(text, mtime=0) for name, text in files.items()}, "logs/archive")

    def dest(self) -> Path:
        path = self.root / "dest"
        path.mkdir(exist_ok=True)
        return path

    def unreadable(self, path: Path) -> None:
        """Makes path unreadable (and, for a directory, unsearchable) for run_unprivileged."""
        if os.geteuid() == 0:
            os.chown(path, 0, 0)
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
        else:
            self._restore.append((path, stat.S_IMODE(path.stat().st_mode)))
            os.chmod(path, 0)

    def give_to_runner(self, path: Path) -> None:
        """Makes path belong to the user run_unprivileged runs as."""
        if os.geteuid() == 0:
            os.chown(path, NOBODY, NOBODY)

    def restore(self) -> None:
        for path, mode in reversed(self._restore):
            os.chmod(path, mode)
        self._restore.clear()

    def run(self, planned: Run) -> subprocess.CompletedProcess:
        runner = run_unprivileged if planned.unprivileged else call
        return runner(planned.command, *planned.args, env=planned.env, timeout=planned.timeout)


def compress(*args, **kwargs) -> Run:
    return Run("logjam-compress", ["--once", *args], **kwargs)


def upload(*args, **kwargs) -> Run:
    return Run("logjam-upload", ["--once", *args], **kwargs)


# -- the rows' arrangements ------------------------------------------------------------------

def dir_missing(ctx: Context) -> Run:
    return compress(ctx.root / "missing", where={"dir": ctx.root / "missing"})


def dir_is_a_file(ctx: Context) -> Run:
    path = ctx.root / OLD  # a log-named file, given where a directory belongs
    path.write_bytes(b"a file, not a directory\n")
    return compress(path, where={"dir": path})


def dir_unreadable(ctx: Context) -> Run:
    path = ctx.logs({OLD: b"cannot be listed\n"})
    ctx.unreadable(path)
    return compress(path, unprivileged=True, where={"dir": path})


def log_unreadable(ctx: Context) -> Run:
    path = ctx.logs({OLD: b"cannot be read\n", "db-20130727T1200Z.log": b"can be read\n"})
    ctx.give_to_runner(path)
    ctx.give_to_runner(path / "db-20130727T1200Z.log")
    ctx.unreadable(path / OLD)
    return compress(path, unprivileged=True, where={"dir": path})


def zero_byte_log(ctx: Context) -> Run:
    return compress(ctx.logs({OLD: b""}), where={"dir": ctx.root / "logs"})


def zero_byte_log_uploaded(ctx: Context) -> Run:
    logs = ctx.logs({OLD: b""})
    first = call("logjam-compress", "--once", logs)
    assert first.returncode == 0, first.stderr
    dest = ctx.dest()
    return upload(logs / "archive", f"file://{dest}/{TEMPLATE}", where={"archive": logs / "archive", "dest": dest})


def odd_names(ctx: Context) -> Run:
    logs = ctx.logs({name: b"line of " + name + b"\n" for name in ODD_NAMES})
    return compress(logs, where={"dir": logs})


def odd_names_to_file(ctx: Context) -> Run:
    archive = ctx.archive({name + b".gz": b"line of " + name + b"\n" for name in ODD_NAMES})
    dest = ctx.dest()
    return upload(archive, f"file://{dest}/{TEMPLATE}", where={"archive": archive, "dest": dest})


def odd_names_to_s3(ctx: Context) -> Run:
    archive = ctx.archive({name + b".gz": b"line of " + name + b"\n" for name in ODD_NAMES})
    bucket, proxy = ctx.fixture("bucket"), ctx.fixture("s3_proxy")
    return upload("--endpoint-url", proxy.url, archive, f"s3://{bucket}/{TEMPLATE}",
                  where={"archive": archive, "bucket": bucket})


def future_timestamps(ctx: Context) -> Run:
    now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
    stamp = "%Y%m%dT%H%MZ"
    logs = ctx.logs({
        f"app-{now:{stamp}}.log": b"this hour's log, still written\n",
        f"app-{now + datetime.timedelta(hours=2):{stamp}}.log": b"from a clock two hours fast\n",
        "app-20990101T0000Z.log": b"far in the future\n",
        "web-20990101T0000Z-eu.log": b"only a future hour in this stream\n",
    })
    return compress(logs, where={"dir": logs})


TEN_THOUSAND = 10_000


def ten_thousand_files(ctx: Context) -> Run:
    start = datetime.datetime(2013, 1, 1)
    files = {f"app{n % 10}-{start + datetime.timedelta(hours=n // 10):%Y%m%dT%H%MZ}.log": b"line %d\n" % n
             for n in range(TEN_THOUSAND)}
    logs = ctx.logs(files)
    return compress(logs, timeout=900, where={"dir": logs})


def bad_template(template: str, scheme: str = "s3") -> Callable[[Context], Run]:
    def arrange(ctx: Context) -> Run:
        archive = ctx.archive({ARCHIVED: b"x\n"})
        if scheme == "s3":  # nothing listens there: a request would fail with another message
            uri = f"s3://bucket/{template}"
            extra = ["--endpoint-url", f"http://127.0.0.1:{ctx.fixture('unused_port')}"]
        else:
            uri, extra = f"file://{ctx.dest()}/{template}", []
        return upload(*extra, archive, uri, where={"template": template})

    return arrange


def unknown_scheme(uri: str) -> Callable[[Context], Run]:
    def arrange(ctx: Context) -> Run:
        return upload(ctx.archive({ARCHIVED: b"x\n"}), uri, where={"uri": uri})

    return arrange


def missing_bucket(ctx: Context) -> Run:
    archive = ctx.archive({ARCHIVED: b"x\n"})
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    return upload("--endpoint-url", ctx.fixture("s3_proxy").url, archive, f"s3://{bucket}/{TEMPLATE}",
                  where={"bucket": bucket})


def wrong_credentials(ctx: Context) -> Run:
    archive = ctx.archive({ARCHIVED: b"x\n"})
    env = clean_env(AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG0", AWS_SECRET_ACCESS_KEY="wrong")
    return upload("--endpoint-url", ctx.fixture("authenticating_s3_server"), archive, f"s3://bucket/{TEMPLATE}",
                  env=env)


def refusing_endpoint(ctx: Context) -> Run:
    archive = ctx.archive({ARCHIVED: b"x\n"})
    port = ctx.fixture("unused_port")
    return upload("--retries", "1", "--endpoint-url", f"http://127.0.0.1:{port}", archive,
                  f"s3://bucket/{TEMPLATE}", where={"port": port})


def archive_dir_missing(ctx: Context) -> Run:
    (ctx.root / "logs").mkdir()
    path = ctx.root / "logs" / "archive"
    return upload(path, f"file://{ctx.dest()}/{TEMPLATE}", where={"dir": path})


def archive_dir_is_a_file(ctx: Context) -> Run:
    (ctx.root / "logs").mkdir()
    path = ctx.root / "logs" / "archive"
    path.write_bytes(gzip.compress(b"a file named archive\n"))
    return upload(path, f"file://{ctx.dest()}/{TEMPLATE}", where={"dir": path})


def archive_dir_unreadable(ctx: Context) -> Run:
    path = ctx.archive({ARCHIVED: b"cannot be listed\n"})
    ctx.unreadable(path)
    return upload(path, f"file://{ctx.dest()}/{TEMPLATE}", unprivileged=True, where={"dir": path})


# -- row-specific checks (after the generic ones) ----------------------------------------------

def gzip_of_nothing(ctx: Context, planned: Run, result) -> None:
    archived = planned.dir / "archive" / (OLD + ".gz")
    assert gzip.decompress(archived.read_bytes()) == b""
    assert not (planned.dir / OLD).exists()


def empty_log_at_destination(ctx: Context, planned: Run, result) -> None:
    archived = (planned.archive / (OLD + ".gz")).read_bytes()
    assert tree(planned.dest) == {"app/2013/07/27/" + OLD + ".gz": archived}
    assert gzip.decompress(archived) == b""
    assert os.listdir(planned.archive / ".uploaded") == [OLD + ".gz"]


def odd_names_archived(ctx: Context, planned: Run, result) -> None:
    assert sorted(os.listdir(os.fsencode(planned.dir / "archive"))) == sorted(name + b".gz" for name in ODD_NAMES)
    assert [name for name in os.listdir(os.fsencode(planned.dir)) if name.endswith(b".log")] == []
    # The undecodable byte is logged escaped, not lost and not a crash.
    assert any("caf\\udce9-20130727T1200Z.log" in line for line in infos(result.stderr)), result.stderr


def odd_names_at_file_destination(ctx: Context, planned: Run, result) -> None:
    archive = os.fsencode(planned.archive)
    expected = {key: Path(os.fsdecode(os.path.join(archive, name))).read_bytes() for name, key in ODD_KEYS.items()}
    assert tree(planned.dest) == expected
    assert sorted(os.listdir(os.path.join(archive, b".uploaded"))) == sorted(ODD_KEYS)


def odd_names_at_s3(ctx: Context, planned: Run, result) -> None:
    client = ctx.fixture("s3_client")
    archive = os.fsencode(planned.archive)
    expected = {key: Path(os.fsdecode(os.path.join(archive, name))).read_bytes() for name, key in ODD_KEYS.items()}
    listed = client.list_objects_v2(Bucket=planned.bucket).get("Contents", [])
    stored = {item["Key"]: client.get_object(Bucket=planned.bucket, Key=item["Key"])["Body"].read()
              for item in listed}
    assert stored == expected
    assert sorted(os.listdir(os.path.join(archive, b".uploaded"))) == sorted(ODD_KEYS)


def only_the_readable_one_compressed(ctx: Context, planned: Run, result) -> None:
    assert (planned.dir / OLD).read_bytes() == b"cannot be read\n"
    assert os.listdir(planned.dir / "archive") == ["db-20130727T1200Z.log.gz"]
    assert not (planned.dir / "db-20130727T1200Z.log").exists()
    if os.geteuid() == 0:  # the run really was unprivileged
        assert (planned.dir / "archive").stat().st_uid == NOBODY


def all_ten_thousand_compressed(ctx: Context, planned: Run, result) -> None:
    archived = os.listdir(planned.dir / "archive")
    assert len(archived) == TEN_THOUSAND and all(name.endswith(".log.gz") for name in archived)
    assert sorted(os.listdir(planned.dir)) == [".logjam-compress.lock", "archive"]


# -- the table ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    arrange: Callable[[Context], Run]
    status: int
    lines: Callable[[Run], list[Line]]
    check: Callable[[Context, Run, subprocess.CompletedProcess], None] | None = None
    unchanged: bool | None = None  # the tree stays exactly as it was; default: when the run fails

    @property
    def must_stay_unchanged(self) -> bool:
        return self.status != 0 if self.unchanged is None else self.unchanged


def template_error(template: str, problem: str) -> Callable[[Run], list[Line]]:
    start = f"logjam-upload: error: bad key template {template!r}: "
    return lambda r: [printed(re.compile(re.escape(start) + ".*" + re.escape(problem) + ".*"))]


BAD_TEMPLATES = [
    # (id, template, what the message names)
    ("missing-prefix", "{year}/{month}/{day}/{filename}", "missing {prefix}"),
    ("missing-year", "{prefix}/{month}/{day}/{filename}", "missing {year}"),
    ("missing-month", "{prefix}/{year}/{day}/{filename}", "missing {month}"),
    ("missing-day", "{prefix}/{year}/{month}/{filename}", "missing {day}"),
    ("missing-filename", "{prefix}/{year}/{month}/{day}", "missing {filename}"),
    ("missing-all", "logs/{hour}", "missing {prefix}, {year}, {month}, {day}, {filename}"),
    ("unknown-field", "{prefix}/{yr}/{month}/{day}/{filename}", "unknown field {yr}"),
    ("empty-field", "{prefix}/{}/{year}/{month}/{day}/{filename}", "unknown field {}"),
    ("positional-field", "{prefix}/{0}/{year}/{month}/{day}/{filename}", "unknown field {0}"),
    ("attribute", "{prefix.upper}/{year}/{month}/{day}/{filename}", "unknown field {prefix.upper}"),
    ("index", "{prefix[0]}/{year}/{month}/{day}/{filename}", "unknown field {prefix[0]}"),
    ("unbalanced-open-inside", "{prefix}/{year}/{month}{/{day}/{filename}", "unbalanced braces"),
    ("unbalanced-unclosed", "{prefix}/{year}/{month}/{day}/{filename", "unbalanced braces"),
    ("unbalanced-stray-close", "{prefix}/{year}/{month}/{day}}/{filename}", "unbalanced braces"),
    ("unbalanced-lone-open", "{prefix}/{year}/{month}/{day}/{filename}/{", "unbalanced braces"),
    ("conversion", "{prefix}/{year!r}/{month}/{day}/{filename}", "takes no format or conversion"),
    ("format-spec", "{prefix}/{year:>6}/{month}/{day}/{filename}", "takes no format or conversion"),
    ("conversion-and-spec", "{prefix!s:10}/{year}/{month}/{day}/{filename}", "takes no format or conversion"),
]

CASES = [
    # -- logjam-compress DIR
    Case("dir-missing", dir_missing, 2,
         lambda r: [printed(f"logjam-compress: error: {r.dir}: no such directory")]),
    Case("dir-is-a-file", dir_is_a_file, 2,
         lambda r: [printed(f"logjam-compress: error: {r.dir}: not a directory")]),
    Case("dir-unreadable", dir_unreadable, 2,
         lambda r: [printed(f"logjam-compress: error: {r.dir}: permission denied")]),
    Case("log-unreadable", log_unreadable, 1,
         lambda r: [logged("ERROR", f"{r.dir}/{OLD}: cannot open: Permission denied")],
         only_the_readable_one_compressed, unchanged=False),
    Case("zero-byte-log", zero_byte_log, 0, lambda r: [], gzip_of_nothing),
    Case("odd-names", odd_names, 0, lambda r: [], odd_names_archived),
    Case("future-timestamps", future_timestamps, 0, lambda r: [], unchanged=True),
    Case("ten-thousand-files", ten_thousand_files, 0, lambda r: [], all_ten_thousand_compressed),
    # -- logjam-upload ARCHIVE_DIR URI
    Case("archive-dir-missing", archive_dir_missing, 2,
         lambda r: [printed(f"logjam-upload: error: {r.dir}: no such directory")]),
    Case("archive-dir-is-a-file", archive_dir_is_a_file, 2,
         lambda r: [printed(f"logjam-upload: error: {r.dir}: not a directory")]),
    Case("archive-dir-unreadable", archive_dir_unreadable, 2,
         lambda r: [printed(f"logjam-upload: error: {r.dir}: permission denied")]),
    Case("zero-byte-log-uploaded", zero_byte_log_uploaded, 0, lambda r: [], empty_log_at_destination),
    Case("odd-names-to-file", odd_names_to_file, 0, lambda r: [], odd_names_at_file_destination),
    Case("odd-names-to-s3", odd_names_to_s3, 0, lambda r: [], odd_names_at_s3),
    *[Case(f"template-{name}", bad_template(template), 2, template_error(template, problem))
      for name, template, problem in BAD_TEMPLATES],
    Case("template-unbalanced-file-uri", bad_template("{prefix}/{year}/{month}{/{day}/{filename}", "file"), 2,
         template_error("{prefix}/{year}/{month}{/{day}/{filename}", "unbalanced braces")),
    Case("unknown-scheme", unknown_scheme(f"ftp://example.com/{TEMPLATE}"), 2,
         lambda r: [printed(re.compile(re.escape(f"logjam-upload: error: {r.uri}: no uploader for scheme ftp:// "
                                                 "(known: ") + r".*\bfile://.*\bs3://.*\)"))]),
    Case("no-scheme", unknown_scheme(f"/srv/logs/{TEMPLATE}"), 2,
         lambda r: [printed(re.compile(re.escape(f"logjam-upload: error: {r.uri}: no uploader for scheme (none) "
                                                 "(known: ") + r".*\)"))]),
    Case("missing-bucket", missing_bucket, 2,
         lambda r: [printed(f"logjam-upload: error: bucket {r.bucket!r} does not exist")]),
    Case("wrong-credentials", wrong_credentials, 2,
         # the first request is the file's PUT, or the conditional-write probe's (at the template's leading text)
         lambda r: [printed(re.compile(re.escape("logjam-upload: error: S3 refused the credentials for s3://bucket/")
                                       + f"(db/2013/07/27/{re.escape(ARCHIVED)})?: "
                                       + r"(InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied): .+"))]),
    Case("endpoint-refuses-connections", refusing_endpoint, 1,
         lambda r: [printed(re.compile(r"logjam-upload: error: cannot reach S3 endpoint: .*127\.0\.0\.1:%d\b.*"
                                       % r.port))]),
]


# -- the test ---------------------------------------------------------------------------------------

@pytest.fixture
def ctx(request):
    root = Path(tempfile.mkdtemp(prefix="logjam-bad-input-"))
    os.chmod(root, 0o755)  # searchable by the unprivileged runs; writable by root only
    context = Context(root, request)
    yield context
    context.restore()
    shutil.rmtree(root)


def assert_nothing_lost(before: dict[str, bytes], after: dict[str, bytes], *, unchanged: bool) -> None:
    before, after = ({path: data for path, data in files.items() if Path(path).name not in LOCKS}
                     for files in (before, after))
    if unchanged:
        assert after == before, "the tree changed although it should not have"
        return
    for path, data in before.items():
        if after.get(path) == data:
            continue
        compressed = str(Path(path).parent / "archive" / (Path(path).name + ".gz"))
        assert compressed in after, f"{path} is gone, and not to {compressed}"
        assert gzip.decompress(after[compressed]) == data, f"{compressed} does not hold what {path} held"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, ctx: Context):
    planned = case.arrange(ctx)
    before = tree(ctx.root)
    started = time.monotonic()
    result = ctx.run(planned)
    seconds = time.monotonic() - started
    ctx.restore()
    after = tree(ctx.root)
    print(f"{case.id}: {planned.command} exited {result.returncode} in {seconds:.1f} s")

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == case.status, result.stderr
    expected = case.lines(planned)
    found = complaints(result.stderr)
    assert len(found) == len(expected) and all(
        line.matches(level, message) for line, (level, message) in zip(expected, found)
    ), f"stderr lines {found} do not match {expected}"
    assert_nothing_lost(before, after, unchanged=case.must_stay_unchanged)
    if case.check is not None:
        case.check(ctx, planned, result)
