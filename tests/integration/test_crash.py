"""Crash safety under SIGKILL: nothing lost, nothing left behind, no lies in the ledger.

Two kinds of test:

- ``test_random_sigkills_*`` runs the installed ``logjam-compress --once`` and
  ``logjam-upload --once`` (to ``file://`` and to S3) over many multi-megabyte
  logs and kills them with SIGKILL at random moments, dozens of times,
  checking the invariants after every kill, then lets clean passes finish and
  checks the end state. About a minute by default;
  ``LOGJAM_CRASH_ITERATIONS=N`` asks for N kills (no time limit), and
  ``LOGJAM_CRASH_SEED`` replays a run (the seed is printed).
- ``test_crash_at_*`` kills a process at one exact point (``os._exit`` from
  a hook on ``os.link``/``os.unlink`` or on one S3 operation), so that each
  narrow window a random kill only sometimes hits is covered every run.

The invariants, after every kill:

- every original is either intact in the log directory or archived, and
  every archived file (under any name but a temporary one) decompresses to
  its original;
- every marker in ``.uploaded/`` names an object that is really at the
  destination, with the recorded size and SHA-256;
- every object at the destination (under any name but a temporary one) is
  a complete copy of the archived file of that name, at that file's key.

And at the end: every original is archived and at the destination exactly
once under its own name (a crash between linking the archived copy and
removing the original may add a copy under a documented
``-logjam-compress-duplicate-timestamp`` name, holding the same log); nothing
else is at the destination; no temporary file is left anywhere; no
incomplete multipart upload is left in the bucket.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logjam.markers import LedgerEntry
from tests.conftest import clean_env, script, wait_for

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
TEMP_MARKER = ".logjam-tmp-"
COMPRESS_DUPLICATE = re.compile(r"-logjam-compress-duplicate-timestamp(?:-\d\d)?(?=-\d{8}T\d{4}Z)")
ARCHIVED_NAME = re.compile(r"^(?P<prefix>.+?)-(?P<year>\d{4})(?P<month>\d\d)(?P<day>\d\d)T\d{4}Z.*\.log\.gz$")
LOCK_FILES = {".logjam-compress.lock", ".logjam-upload.lock"}
LEDGER = ".uploaded"
PROBE_MARK = ".logjam-probe-"
HOUR_AGO = 3600


# -- data ----------------------------------------------------------------------

def _page(rng: random.Random, size: int) -> bytes:
    """About size bytes of access-log-like text, with an opaque token per line
    (so it compresses to about 40%, as real logs with request ids do)."""
    blob = base64.b64encode(rng.randbytes(size // 3))
    lines, total, pos = [], 0, 0
    while total < size:
        width = rng.randrange(8, 48)
        line = b"2013-07-27T%02d:%02d:%02dZ host=web-%02d GET /api/v1/item/%d %d %dms req=%s\n" % (
            rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(12),
            rng.randrange(5000), rng.choice((200, 200, 200, 301, 404, 500)), rng.randrange(900),
            blob[pos:pos + width],
        )
        pos = (pos + width) % (len(blob) - 64)
        lines.append(line)
        total += len(line)
    return b"".join(lines)


class TextMaker:
    """Multi-megabyte, varied, seeded log text, made quickly: each file is its
    own random sequence of 256 KiB pages from a pool, each page preceded by a
    line naming the file and the page's position (so no two files are alike)."""

    PAGE = 256 * 1024

    def __init__(self, rng: random.Random, pages: int = 48) -> None:
        self.rng = rng
        self.pages = [_page(rng, self.PAGE) for _ in range(pages)]

    def make(self, name: str, size: int) -> bytes:
        parts, total, index = [], 0, 0
        while total < size:
            head = b"# %s page %d %s\n" % (name.encode(), index, self.rng.randbytes(8).hex().encode())
            page = self.rng.choice(self.pages)
            parts += (head, page)
            total += len(head) + len(page)
            index += 1
        return b"".join(parts)[:size - 1] + b"\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_temp(name: str) -> bool:
    return TEMP_MARKER in name


def original_name(archived: str) -> str:
    """archive/NAME.gz (or a compress-duplicate of it) -> NAME."""
    assert archived.endswith(".gz"), archived
    return COMPRESS_DUPLICATE.sub("", archived[: -len(".gz")])


def expected_key(archived: str) -> str:
    """The key TEMPLATE gives an archived file, worked out here independently."""
    match = ARCHIVED_NAME.match(archived)
    assert match, f"not an archived log name: {archived}"
    return f"{match['prefix']}/{match['year']}/{match['month']}/{match['day']}/{archived}"


def temp_files_below(root: Path) -> list[str]:
    return sorted(str(path) for path in root.rglob("*") if is_temp(path.name)) if root.exists() else []


# -- the world under test --------------------------------------------------------

class Scenario:
    """Two log directories: logs-file/ is uploaded to file://ROOT/..., logs-s3/
    to s3://BUCKET/... (one ledger per archive: each archive has one destination)."""

    def __init__(self, root: Path, s3_endpoint: str, s3_client, bucket: str) -> None:
        self.root = root
        self.file_logs = root / "logs-file"
        self.s3_logs = root / "logs-s3"
        self.dest = root / "dest"
        for directory in (self.file_logs, self.s3_logs, self.dest):
            directory.mkdir()
        self.s3_endpoint = s3_endpoint
        self.s3 = s3_client
        self.bucket = bucket
        self.originals: dict[Path, dict[str, tuple[int, str]]] = {self.file_logs: {}, self.s3_logs: {}}
        self._verified: dict[tuple, str] = {}  # (where, name, identity) -> sha256 of the bytes
        self.stderr_dir = root / "stderr"
        self.stderr_dir.mkdir()
        self.runs = 0

    # setting up

    def add_logs(self, log_dir: Path, files: dict[str, bytes]) -> None:
        then = time.time() - HOUR_AGO  # quiet for an hour, as a finished hour's log is
        for name, data in files.items():
            (log_dir / name).write_bytes(data)
            os.utime(log_dir / name, (then, then))
            self.originals[log_dir][name] = (len(data), sha256(data))

    # commands

    def command(self, kind: str, *, multipart: bool = False, shuffle: random.Random | None = None) -> list[str]:
        if kind == "compress":
            directories = [str(self.file_logs), str(self.s3_logs)]
            if shuffle is not None:
                shuffle.shuffle(directories)
            return [script("logjam-compress"), "--once", *directories]
        if kind == "file":
            return [script("logjam-upload"), "--once", str(self.file_logs / "archive"),
                    f"file://{self.dest}/{TEMPLATE}"]
        if kind == "s3":
            extra = ["--multipart-threshold", "5MiB"] if multipart else []
            return [script("logjam-upload"), "--once", "--endpoint-url", self.s3_endpoint, *extra,
                    str(self.s3_logs / "archive"), f"s3://{self.bucket}/{TEMPLATE}"]
        raise ValueError(kind)

    def runnable(self, kind: str) -> bool:
        """An upload needs its archive directory (logjam-compress creates it)."""
        return kind == "compress" or (self.archive_of(kind)).is_dir()

    def archive_of(self, kind: str) -> Path:
        return (self.file_logs if kind == "file" else self.s3_logs) / "archive"

    def start(self, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        self.runs += 1
        stderr_path = self.stderr_dir / f"{self.runs:04d}.txt"
        with open(stderr_path, "wb") as stderr:
            stderr.write(("$ " + " ".join(argv) + "\n").encode())
            stderr.flush()
            process = subprocess.Popen(argv, env=clean_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        return process, stderr_path

    def run_clean(self, kind: str, *, multipart: bool = False) -> str:
        """A pass that is let finish; it must succeed."""
        process, stderr_path = self.start(self.command(kind, multipart=multipart))
        status = process.wait(timeout=300)
        output = stderr_path.read_text(errors="replace")
        assert status == 0, f"clean {kind} pass exited {status}:\n{output}"
        return output

    def recorded(self, kind: str) -> set[str]:
        ledger = self.archive_of(kind) / LEDGER
        return {name for name in os.listdir(ledger) if not is_temp(name)} if ledger.is_dir() else set()

    def has_work(self, kind: str) -> bool:
        """Whether a pass of this kind has anything to do."""
        if kind == "compress":
            return any((log_dir / name).exists() for log_dir, originals in self.originals.items() for name in originals)
        archive = self.archive_of(kind)
        return archive.is_dir() and bool(set(self.archived_names(archive)) - self.recorded(kind))

    def progress(self) -> tuple[int, ...]:
        """Counts that only grow as passes get work done."""
        archived = [len(self.archived_names(self.archive_of(kind))) if self.archive_of(kind).is_dir() else 0
                    for kind in ("file", "s3")]
        return (*archived, len(self.recorded("file")), len(self.recorded("s3")))

    # checks

    @staticmethod
    def archived_names(archive: Path) -> list[str]:
        # Dot names are logjam's own (locks, ledger, the S3 state file), never archived logs.
        return sorted(name for name in os.listdir(archive)
                      if name not in LOCK_FILES and name != LEDGER and not is_temp(name) and not name.startswith("."))

    def _bytes_sha(self, where: str, name: str, identity, read) -> str:
        key = (where, name, identity)
        if key not in self._verified:
            self._verified[key] = sha256(read())
        return self._verified[key]

    def check_archive(self, log_dir: Path) -> dict[str, str]:
        """Every archived file decompresses to its original. Returns name -> sha256 of its bytes."""
        archive = log_dir / "archive"
        originals = self.originals[log_dir]
        found: dict[str, str] = {}
        if archive.is_dir():
            for name in self.archived_names(archive):
                path = archive / name
                assert path.is_file() and not path.is_symlink(), f"{path}: not a regular file"
                source = original_name(name)
                assert source in originals, f"{path}: archived under a name no original had"
                info = path.stat()
                identity = (info.st_ino, info.st_size, info.st_mtime_ns)

                def read(path=path, source=source):
                    data = path.read_bytes()
                    log = gzip.decompress(data)
                    assert (len(log), sha256(log)) == originals[source], \
                        f"{path} does not decompress to the original {source}"
                    return data

                found[name] = self._bytes_sha("archive", str(path), identity, read)
        for name, (size, _) in originals.items():
            path = log_dir / name
            if path.exists():
                assert path.stat().st_size == size, f"{path}: the original changed size"
            else:
                assert name + ".gz" in found, f"{path} is gone but archive/{name}.gz is not there: lost"
        return found

    def file_objects(self) -> dict[str, str]:
        """Every complete object under dest/ (temporary names left out): key -> sha256."""
        objects = {}
        for path in sorted(self.dest.rglob("*")):
            if path.is_dir() or is_temp(path.name):
                continue
            assert path.is_file() and not path.is_symlink(), f"{path}: not a regular file"
            info = path.stat()
            key = str(path.relative_to(self.dest))
            objects[key] = self._bytes_sha("file", key, (info.st_ino, info.st_size, info.st_mtime_ns),
                                           path.read_bytes)
        return objects

    def probe_objects(self) -> list[str]:
        """Objects of a conditional-write probe that a killed pass could not delete yet."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return [item["Key"] for item in listed if PROBE_MARK in item["Key"]]

    def s3_objects(self) -> dict[str, str]:
        objects = {}
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        assert len(listed) < 1000
        for item in listed:
            key = item["Key"]
            if PROBE_MARK in key:
                continue  # the probe's small object: deleted by the next pass (check_final)

            def read(key=key):
                return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

            objects[key] = self._bytes_sha("s3", key, (item["ETag"], item["Size"]), read)
        return objects

    def check_destination(self, archived: dict[str, str], objects: dict[str, str], where: str) -> None:
        """Every object at the destination is a complete copy of the archived file of that name, at its key."""
        for key, digest in objects.items():
            name = key.rsplit("/", 1)[-1]
            assert "-logjam-upload-duplicate-" not in name, \
                f"{where}/{key}: a conflicting object was found at a key, so something wrong was stored there"
            assert name in archived, f"{where}/{key}: no archived file of that name"
            assert key == expected_key(name), f"{where}/{key}: not where the template puts {name}"
            assert digest == archived[name], f"{where}/{key}: not the bytes of archive/{name} (partial?)"

    def check_ledger(self, log_dir: Path, archived: dict[str, str], objects: dict[str, str], where: str) -> set[str]:
        """Every marker names an object that is really at the destination, with the recorded size and sha256."""
        ledger = log_dir / "archive" / LEDGER
        markers = set()
        if not ledger.is_dir():
            return markers
        for marker in sorted(ledger.iterdir()):
            if is_temp(marker.name):
                continue
            name = marker.name
            [recorded] = LedgerEntry.from_bytes(name, marker.read_bytes()).confirmations
            assert name in archived, f"{marker}: records a file that is not in the archive"
            key = expected_key(name)
            assert recorded.key == key, f"{marker}: key {recorded.key!r}, expected {key!r}"
            assert recorded.location == f"{where}/{key}", f"{marker}: destination {recorded.location!r}"
            assert key in objects, f"{marker}: recorded as uploaded, but {where}/{key} does not exist"
            assert recorded.fingerprint.sha256 == objects[key] == archived[name], \
                f"{marker}: recorded sha256 {recorded.fingerprint.sha256} but the destination holds {objects[key]}"
            assert recorded.fingerprint.size == (log_dir / "archive" / name).stat().st_size, f"{marker}: wrong size"
            markers.add(name)
        return markers

    def check_invariants(self) -> dict:
        """What must hold at every moment, even right after a SIGKILL."""
        file_archived = self.check_archive(self.file_logs)
        s3_archived = self.check_archive(self.s3_logs)
        file_objects = self.file_objects()
        s3_objects = self.s3_objects()
        self.check_destination(file_archived, file_objects, f"file://{self.dest}")
        self.check_destination(s3_archived, s3_objects, f"s3://{self.bucket}")
        file_markers = self.check_ledger(self.file_logs, file_archived, file_objects, f"file://{self.dest}")
        s3_markers = self.check_ledger(self.s3_logs, s3_archived, s3_objects, f"s3://{self.bucket}")
        return {
            "file": (file_archived, file_objects, file_markers),
            "s3": (s3_archived, s3_objects, s3_markers),
        }

    def multipart_uploads(self) -> list[dict]:
        return self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])

    def check_final(self) -> None:
        """After clean passes: everything archived once, uploaded once, nothing left behind."""
        state = self.check_invariants()
        for kind, log_dir in (("file", self.file_logs), ("s3", self.s3_logs)):
            archived, objects, markers = state[kind]
            originals = self.originals[log_dir]
            left = sorted(name for name in originals if (log_dir / name).exists())
            assert not left, f"originals not compressed by the clean pass: {left}"
            primaries = {name + ".gz" for name in originals}
            assert primaries <= set(archived), f"missing from the archive: {sorted(primaries - set(archived))}"
            duplicates = set(archived) - primaries
            assert all(COMPRESS_DUPLICATE.search(name) for name in duplicates), \
                f"unexpected names in the archive: {sorted(duplicates)}"
            # Each archived file, and nothing else, is at the destination once, at its key.
            assert markers == set(archived), f"{kind}: not recorded: {sorted(set(archived) - markers)}"
            assert set(objects) == {expected_key(name) for name in archived}, \
                f"{kind}: destination holds {sorted(objects)}"
            # The destination's bytes decompress to the originals (not only equal the archive's).
            for name in archived:
                key = expected_key(name)
                if kind == "file":
                    data = (self.dest / key).read_bytes()
                else:
                    data = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                log = gzip.decompress(data)
                assert (len(log), sha256(log)) == originals[original_name(name)], f"{kind}: {key}"
        temps = [path for directory in (self.file_logs, self.s3_logs, self.dest)
                 for path in temp_files_below(directory)]
        assert not temps, f"temporary files left behind: {temps}"
        assert self.multipart_uploads() == [], \
            f"incomplete multipart uploads left in the bucket: {self.multipart_uploads()}"
        assert self.probe_objects() == [], f"probe objects left in the bucket: {self.probe_objects()}"

    def verify_full(self) -> None:
        """logjam-upload --verify=full agrees, for both destinations."""
        for kind in ("file", "s3"):
            argv = self.command(kind)
            argv.insert(2, "--verify=full")
            result = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr


@pytest.fixture
def scenario(tmp_path, s3_server, s3_client, bucket) -> Scenario:
    return Scenario(tmp_path, s3_server, s3_client, bucket)


# -- random SIGKILLs ---------------------------------------------------------------

def holds_a_lock(pid: int) -> bool:
    """True once the process holds a flock (its directory lock: its pass has begun)."""
    with open("/proc/locks") as locks:
        for line in locks:
            parts = line.split()
            if len(parts) > 4 and parts[1] == "FLOCK" and parts[4] == str(pid):
                return True
    return False


def make_batch(scenario: Scenario, maker: TextMaker, rng: random.Random, day: datetime.date, *,
               file_count: int, s3_count: int, big: int) -> None:
    """Log files of 2-8 MB in both directories, and `big` of 13-15 MB in logs-s3/
    (compressed, over 5 MiB: they go multipart with --multipart-threshold 5MiB)."""
    def batch(count: int, prefix: str, low: int, high: int, first_hour: int = 0) -> dict[str, bytes]:
        names = [f"{prefix}-{day:%Y%m%d}T{hour:02d}00Z.log" for hour in range(first_hour, first_hour + count)]
        return {name: maker.make(name, rng.randrange(low, high)) for name in names}

    scenario.add_logs(scenario.file_logs, batch(file_count, "app", 2 << 20, 8 << 20))
    s3_files = batch(s3_count, "web", 2 << 20, 8 << 20)
    s3_files.update(batch(big, "db", 13 << 20, 15 << 20, first_hour=10))
    scenario.add_logs(scenario.s3_logs, s3_files)


KINDS = ("compress", "file", "s3")


def test_random_sigkills_lose_nothing_duplicate_nothing_and_leave_nothing(scenario):
    seed = int(os.environ.get("LOGJAM_CRASH_SEED") or random.randrange(1 << 32))
    requested = os.environ.get("LOGJAM_CRASH_ITERATIONS")
    target = int(requested) if requested else 40
    budget = None if requested else 45.0  # seconds of killing: the test stays about a minute
    print(f"LOGJAM_CRASH_SEED={seed} LOGJAM_CRASH_ITERATIONS={target}")
    rng = random.Random(seed)
    maker = TextMaker(rng)
    day = datetime.date(2013, 7, 27)
    make_batch(scenario, maker, rng, day, file_count=9, s3_count=6, big=3)

    # The kill comes at a random moment within `window` seconds of the pass
    # taking its lock. A window grows when a kill undid all of a pass's work
    # (so that passes still get somewhere) and shrinks when a pass finished
    # before its kill (so that kills land on work).
    window = {"compress": 0.6, "file": 0.15, "s3": 0.4}
    kills = dict.fromkeys(KINDS, 0)
    finished = dict.fromkeys(KINDS, 0)
    each = max(target // 5, 1)
    temps_seen = multipart_seen = runs = 0
    started = time.monotonic()
    while sum(kills.values()) < target or min(kills.values()) < each:
        if budget is not None and time.monotonic() - started > budget:
            break
        with_work = [kind for kind in KINDS if scenario.has_work(kind)]
        if not with_work:
            day += datetime.timedelta(days=1)  # all done: more logs, so that kills keep landing on work
            make_batch(scenario, maker, rng, day, file_count=3, s3_count=2, big=1)
            continue
        kind = min(with_work, key=lambda kind: (kills[kind], rng.random()))  # the least killed first
        before = scenario.progress()
        # A multipart upload cut off is aborted by the next pass, from the
        # journal in the archive directory.
        argv = scenario.command(kind, multipart=True, shuffle=rng)
        process, stderr_path = scenario.start(argv)
        runs += 1
        try:
            if rng.random() < 0.1:
                time.sleep(rng.uniform(0, 0.3))  # now and then, during start-up
            else:
                wait_for(lambda: process.poll() is not None or holds_a_lock(process.pid),
                         timeout=60, interval=0.005, message=f"{kind} to begin its pass")
                time.sleep(rng.uniform(0, window[kind]))  # the random moment
            process.send_signal(signal.SIGKILL)
        finally:
            status = process.wait(timeout=60)
        if status == -signal.SIGKILL:
            kills[kind] += 1
            if scenario.progress() == before:
                window[kind] = min(window[kind] * 1.5, 4.0)
        else:
            finished[kind] += 1
            window[kind] = max(window[kind] * 0.7, 0.05)
            assert status == 0, f"{kind} pass exited {status}:\n{stderr_path.read_text(errors='replace')}"
        temps_seen += bool(sum(len(temp_files_below(d)) for d in (scenario.file_logs, scenario.s3_logs, scenario.dest)))
        multipart_seen += bool(scenario.multipart_uploads())
        try:
            scenario.check_invariants()
        except AssertionError as error:
            raise AssertionError(f"after run {scenario.runs} ({kind}, exit {status}; seed {seed}): {error}") from None

    elapsed = time.monotonic() - started
    print(f"{runs} runs in {elapsed:.1f} s: killed {kills}, finished {finished}; temporary files seen "
          f"after {temps_seen} runs, incomplete multipart uploads after {multipart_seen}; windows {window}")
    # A run where kills never landed on work would prove nothing.
    assert sum(kills.values()) >= (target if budget is None else min(target, 24)), f"too few kills: {kills}"
    assert min(kills.values()) >= (each if budget is None else min(each, 3)), f"some command was hardly killed: {kills}"

    # Clean passes: everything gets done, and a second round finds nothing to do.
    scenario.run_clean("compress")
    scenario.run_clean("file")
    scenario.run_clean("s3", multipart=True)
    for kind in ("compress", "file", "s3"):
        output = scenario.run_clean(kind)
        assert "compressed " not in output and "uploaded " not in output, output
    scenario.verify_full()
    try:
        scenario.check_final()
    except AssertionError as error:
        raise AssertionError(f"seed {seed}: {error}") from None


# -- crashes at exact points ---------------------------------------------------------

# Runs logjam's main() with one hook that ends the process with os._exit(137)
# (as abruptly as SIGKILL: no finally, no atexit, no cleanup) at the nth call
# that matches, before or after the real call is made.
DRIVER = r"""
import json, os, re, sys

spec = json.loads(sys.argv[1])
prog, argv = sys.argv[2], sys.argv[3:]
calls = 0


def crash_here():
    global calls
    calls += 1
    return calls == spec.get("nth", 1)


def where(dir_fd):
    return os.readlink(f"/proc/self/fd/{dir_fd}") if dir_fd is not None else os.getcwd()


if "os" in spec:
    real = getattr(os, spec["os"])

    def hooked(*args, **kwargs):
        name, dir_fd = (args[1], kwargs.get("dst_dir_fd")) if spec["os"] == "link" else (args[0], kwargs.get("dir_fd"))
        if re.search(spec["match"], os.path.join(where(dir_fd), os.fsdecode(name))) and crash_here():
            if spec["when"] == "after":
                real(*args, **kwargs)
            os._exit(137)
        return real(*args, **kwargs)

    setattr(os, spec["os"], hooked)
else:
    import botocore.client

    real_call = botocore.client.BaseClient._make_api_call

    def hooked_call(self, operation, params):
        # "key" tells the conditional-write probe's requests (.logjam-probe-) from the uploads'.
        if operation == spec["s3"] and re.search(spec.get("key", ""), params.get("Key", "")) and crash_here():
            if spec["when"] == "after":
                real_call(self, operation, params)
            os._exit(137)
        return real_call(self, operation, params)

    botocore.client.BaseClient._make_api_call = hooked_call

if prog == "logjam-compress":
    from logjam.compress import main
else:
    from logjam.upload import main
sys.exit(main(argv))
"""

NAME = "app-20130727T0100Z.log"
BIG = "web-20130727T0200Z.log"  # compresses to over 5 MiB: multipart at --multipart-threshold 5MiB
LOG_KEY = r"\.log\.gz$"

CRASH_POINTS = {
    # logjam-compress, in the order of its steps
    "compress-before-link": ("compress", {"os": "link", "match": r"/archive/app-[^/]*\.log\.gz$", "when": "before"}),
    "compress-after-link": ("compress", {"os": "link", "match": r"/archive/app-[^/]*\.log\.gz$", "when": "after"}),
    "compress-after-temp-unlink": ("compress", {"os": "unlink", "match": r"/archive/\.app-[^/]*\.logjam-tmp-", "when": "after"}),
    # (the original is first moved to a hidden .logjam-rm- name, then unlinked)
    "compress-before-original-unlink": ("compress", {"os": "unlink", "match": r"/logs-file/\.logjam-rm-[^/]*$", "when": "before"}),
    "compress-after-original-unlink": ("compress", {"os": "unlink", "match": r"/logs-file/\.logjam-rm-[^/]*$", "when": "after"}),
    # logjam-upload to file://
    "file-before-link": ("file", {"os": "link", "match": r"/dest/.*\.log\.gz$", "when": "before"}),
    "file-after-link": ("file", {"os": "link", "match": r"/dest/.*\.log\.gz$", "when": "after"}),
    "file-after-temp-unlink": ("file", {"os": "unlink", "match": r"/dest/.*\.logjam-tmp-", "when": "after"}),
    "ledger-before-link": ("file", {"os": "link", "match": r"/\.uploaded/[^/]*$", "when": "before"}),
    "ledger-after-link": ("file", {"os": "link", "match": r"/\.uploaded/[^/]*$", "when": "after"}),
    # logjam-upload to S3
    "s3-after-put": ("s3", {"s3": "PutObject", "key": LOG_KEY, "when": "after"}),
    "s3-ledger-after-link": ("s3", {"os": "link", "match": r"/\.uploaded/[^/]*$", "when": "after"}),
    # after the create, before its id is in the journal: the next pass lists that key's uploads
    "s3-multipart-after-create": ("s3-multipart", {"s3": "CreateMultipartUpload", "key": LOG_KEY, "when": "after"}),
    # the id is in the journal: the next pass aborts exactly that upload
    "s3-multipart-before-first-part": ("s3-multipart", {"s3": "UploadPart", "key": LOG_KEY, "when": "before", "nth": 1}),
    "s3-multipart-after-first-part": ("s3-multipart", {"s3": "UploadPart", "key": LOG_KEY, "when": "after", "nth": 1}),
    "s3-multipart-after-complete": ("s3-multipart", {"s3": "CompleteMultipartUpload", "key": LOG_KEY, "when": "after"}),
    # the conditional-write probe of a fresh archive: its object and upload are cleaned up by the next pass
    "s3-probe-after-first-put": ("s3", {"s3": "PutObject", "key": PROBE_MARK, "when": "after"}),
    "s3-probe-after-create": ("s3", {"s3": "CreateMultipartUpload", "key": PROBE_MARK, "when": "after"}),
    "s3-probe-after-part": ("s3", {"s3": "UploadPart", "key": PROBE_MARK, "when": "after"}),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_crash_at_exact_point_then_clean_pass(scenario, point):
    kind, spec = CRASH_POINTS[point]
    rng = random.Random(point)
    maker = TextMaker(rng, pages=4)
    scenario.add_logs(scenario.file_logs, {NAME: maker.make(NAME, 300_000)})
    if kind.startswith("s3"):
        big = base64.encodebytes(rng.randbytes(6 << 20))  # base64 text: gzip leaves about 76%
        scenario.add_logs(scenario.s3_logs, {BIG: big} if kind == "s3-multipart" else {BIG.replace("0200Z", "0300Z"): big[:200_000]})
    if kind != "compress":
        scenario.run_clean("compress")
    upload_kind = kind.removesuffix("-multipart")
    argv = scenario.command(upload_kind, multipart=kind == "s3-multipart")
    prog = Path(argv[0]).name
    crashed = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(spec), prog, *argv[1:]],
                             env=clean_env(), capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 137, f"the crash point was never reached:\n{crashed.stderr}"
    scenario.check_invariants()

    scenario.run_clean("compress")
    for upload in ("file", "s3"):
        if scenario.runnable(upload):
            scenario.run_clean(upload, multipart=True)
    scenario.check_final()
    if point == "compress-after-temp-unlink":
        # The documented outcome: the original compressed again, under a duplicate name.
        assert (scenario.file_logs / "archive" / "app-logjam-compress-duplicate-timestamp-20130727T0100Z.log.gz").exists()
