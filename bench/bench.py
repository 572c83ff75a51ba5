#!/usr/bin/env python3
"""Benchmarks logjam-compress and logjam-upload against the usual tools.

Run by hand through ``bench/run.sh`` (it makes the virtualenv and installs
the tools); not part of the test suite. Everything runs on this machine:
the S3 server is moto in a subprocess on loopback, behind the counting proxy
of tests/s3proxy.py, so request counts are exact.

Sections (each tool gets a fresh copy of the same input; medians of --reps):

1. compression: logjam gzip/zstd vs gzip -6, pigz -6 -pN and zstd -3 -T0;
2. upload: logjam-upload vs ``aws s3 cp --recursive`` (time, requests per file);
3. idle pass: 100,000 archived files, all uploaded: time and requests;
4. peak RSS of logjam-compress and logjam-upload on large files (one 4 GB file; four at once);
5. issue 11 (``--single`` runs only this): one hourly file of the loghub samples repeated
   (138 MB, 1 GB), 8 files of 1, 8, 17 and 64 MB, one process with nothing to
   compress (what a pass costs before its first byte), each loghub system on its
   own against gzip -6, and one large upload against ``aws s3 cp``.

Prints one table and writes it to bench/results/latest.txt (and the raw
numbers to latest.json).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from tests.s3proxy import S3Proxy  # noqa: E402  (the counting proxy the tests use)

MB = 1 << 20
BIN = Path(sys.executable).parent
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench-key-id",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
RSS_TARGET_MB = 150
NPROC = len(os.sched_getaffinity(0))
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


# -- running and measuring one process ------------------------------------------

@dataclass
class Run:
    seconds: float
    cpu: float  # user + system seconds of the child
    rss_mb: float  # the child's peak resident set
    requests: int = 0


def tool(name: str) -> str:
    """The executable from this venv, else from PATH."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"bench: {name} not found; run bench/run.sh")
    return found


def tool_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(CREDENTIALS)
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


class Child:
    """One measured process: GNU time around it reports its own peak RSS (the
    ru_maxrss of a child forked straight from this large process would count
    pages this process had before the exec)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.err = tempfile.TemporaryFile()
        self.rss = tempfile.NamedTemporaryFile("r")
        wrapper = [GNU_TIME, "-f", "%M", "-o", self.rss.name] if GNU_TIME else []
        self.start = time.perf_counter()
        self.process = subprocess.Popen(wrapper + argv, env=tool_env(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self.err)

    def wait(self) -> Run:
        _, status, usage = os.wait4(self.process.pid, 0)  # this child's CPU, with its children
        seconds = time.perf_counter() - self.start
        self.process.returncode = os.waitstatus_to_exitcode(status)
        try:
            if self.process.returncode != 0:
                self.err.seek(0)
                tail = self.err.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"{' '.join(self.argv)} exited {self.process.returncode}:\n{tail}")
            rss_kb = int(self.rss.read().split()[-1]) if GNU_TIME else usage.ru_maxrss
        finally:
            self.err.close()
            self.rss.close()
        return Run(seconds, usage.ru_utime + usage.ru_stime, rss_kb / 1024)


def run(argv: list[str]) -> Run:
    """Runs argv to completion; returns its wall time, CPU time and peak RSS."""
    return Child(argv).wait()


def run_parallel(argvs: list[list[str]]) -> Run:
    """Runs commands at the same time; wall time until the last one ends."""
    start = time.perf_counter()
    runs = [child.wait() for child in [Child(argv) for argv in argvs]]
    return Run(time.perf_counter() - start, sum(r.cpu for r in runs), max(r.rss_mb for r in runs))


def run_each(argvs: list[list[str]]) -> Run:
    """Runs commands one after another, like a user's shell loop."""
    start = time.perf_counter()
    runs = [run(argv) for argv in argvs]
    return Run(time.perf_counter() - start, sum(r.cpu for r in runs), max(r.rss_mb for r in runs))


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.cpu for r in runs),
        max(r.rss_mb for r in runs),
        int(statistics.median(r.requests for r in runs)),
    )


def settle() -> None:
    """Flushes dirty pages (from copying inputs) so their writeback does not land in a timing."""
    os.sync()


# -- corpus -------------------------------------------------------------------

DIGITS = re.compile(rb"(\d+)")


class Corpus:
    """Makes varied log text from the loghub samples (else from built-in templates).

    Lines come in bursts of up to 200 from one system (continuing where that
    system left off), each with a rising time and a host name in front, and a
    quarter of the long numbers (ids, block numbers, ports) replaced, so no
    stretch repeats within a compressor's window.
    """

    def __init__(self, loghub: Path) -> None:
        files = sorted(glob.glob(str(loghub / "*.log")))
        systems = []
        for path in files:
            with open(path, "rb") as handle:
                lines = [line for line in handle.read().splitlines() if line.strip()]
            if lines:
                systems.append([DIGITS.split(line) for line in lines])
        if systems:
            self.source = f"loghub samples ({len(systems)} systems, {loghub})"
            self.original = b"".join(b"".join(p) + b"\n" for s in systems for p in s)
        else:
            self.source = "generated lines (no loghub samples found)"
            systems = [[DIGITS.split(line.encode()) for line in _synthetic_lines(system)]
                       for system in range(16)]
            self.original = b""
        self.systems = systems

    def block(self, size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        rand, randrange = rng.random, rng.randrange
        systems = self.systems
        hosts = [b"node%03d" % i for i in range(randrange(20, 60))]
        cursors = [randrange(len(s)) for s in systems]
        out: list[bytes] = []
        total = 0
        clock = 0
        while total < size:
            index = randrange(len(systems))
            lines, cursor = systems[index], cursors[index]
            host = hosts[randrange(len(hosts))]
            for _ in range(1 + int(rand() * 200)):
                pieces = lines[cursor]
                cursor = cursor + 1 if cursor + 1 < len(lines) else 0
                parts = [
                    b"%d" % randrange(10 ** (len(piece) - 1), 10 ** len(piece))
                    if i & 1 and len(piece) > 4 and rand() < 0.25 else piece
                    for i, piece in enumerate(pieces)
                ]
                clock += randrange(1, 2000)
                line = b"%02d:%02d.%06d %s %s\n" % (
                    clock // 60_000_000 % 60, clock // 1_000_000 % 60, clock % 1_000_000,
                    host, b"".join(parts))
                out.append(line)
                total += len(line)
            cursors[index] = cursor
        return b"".join(out)[:size]


def _synthetic_lines(system: int) -> list[str]:
    rng = random.Random(system)
    words = ["INFO", "WARN", "ERROR", "DEBUG", "connection", "request", "worker", "session",
             "opened", "closed", "timeout", "retry", "block", "user", "served", "queue"]
    return [
        f"2024-05-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d},{i % 1000:03d} "
        f"{rng.choice(words[:4])} [svc{system}.{rng.choice(words[4:])}] "
        f"{' '.join(rng.choice(words[4:]) for _ in range(rng.randrange(3, 12)))} "
        f"id={rng.randrange(10**9)} port={rng.randrange(1024, 65535)} took {rng.randrange(1, 5000)}ms"
        for i in range(2000)
    ]


def hour_name(prefix: str, hours_ago: int, extension: str = ".log") -> str:
    base = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
    stamp = base - datetime.timedelta(hours=hours_ago + 2)
    return f"{prefix}-{stamp:%Y%m%dT%H%MZ}{extension}"


def write_file(path: Path, block: bytes, size: int) -> None:
    """Writes size bytes by repeating block (never holds more than block in memory)."""
    with open(path, "wb") as handle:
        left = size
        while left:
            piece = block[:left]
            handle.write(piece)
            left -= len(piece)


def fresh_copy(source: Path, names: list[str], target: Path) -> Path:
    """A fresh copy of names from source in target (emptied first), each
    back-dated an hour and synced: what every tool gets before its clock starts."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for n in names:
        shutil.copyfile(source / n, target / n)
        backdate(target / n)
    settle()
    return target


def backdate(path: Path) -> None:
    """Makes a log look finished an hour ago (logjam-compress waits for files
    to be quiet for --min-quiet seconds before taking them)."""
    then = time.time() - 3600
    os.utime(path, (then, then))


def dir_bytes(path: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def gzip_ratio(data: bytes) -> float:
    if not data:
        return 0.0
    out = subprocess.run(["gzip", "-6", "-c"], input=data, capture_output=True, check=True).stdout
    return len(data) / len(out)


# -- results table --------------------------------------------------------------

COLUMNS = ["measurement", "seconds", "MB/s", "out MB", "in/out", "CPU s", "requests", "req/file",
           "RSS MB", "comparison"]


@dataclass
class Table:
    rows: list = field(default_factory=list)  # ("section", text) or ("row", dict)
    raw: dict = field(default_factory=dict)

    def section(self, text: str) -> None:
        self.rows.append(("section", text))

    def row(self, name: str, **values) -> None:
        self.rows.append(("row", {"measurement": name, **values}))

    def render(self) -> str:
        cells = [[_cell(row.get(c)) for c in COLUMNS] for kind, row in self.rows if kind == "row"]
        widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(COLUMNS)]

        def line(values):
            out = [values[0].ljust(widths[0])]
            out += [v.rjust(w) for v, w in zip(values[1:-1], widths[1:-1])]
            out.append(values[-1])
            return "  ".join(out).rstrip()

        rule = "-" * (sum(widths[:-1]) + 2 * (len(widths) - 1) + max(10, widths[-1]))
        text = [line(COLUMNS), rule]
        for kind, row in self.rows:
            if kind == "section":
                text.append(row)
            else:
                text.append(line([_cell(row.get(c)) for c in COLUMNS]))
        return "\n".join(text)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


# -- 1. compression ---------------------------------------------------------------

def bench_compression(args, corpus: Corpus, work: Path, table: Table, *, files: int, file_mb: int,
                      label: str, seed: int, tools: list[str]) -> dict[str, dict]:
    source = work / f"corpus-{label}"
    source.mkdir()
    names = []
    for i in range(files):
        name = hour_name(f"app{i:02d}", i)
        (source / name).write_bytes(corpus.block(file_mb * MB, seed + i))
        names.append(name)
    total = files * file_mb * MB
    sample = (source / names[0]).read_bytes()[: 8 * MB]
    table.raw[f"corpus_{label}_gzip_ratio_8MB"] = gzip_ratio(sample)

    commands = {
        "gzip -6": ("cli", lambda p: ["gzip", "-6", p], (".gz",)),
        f"pigz -6 -p{NPROC}": ("cli", lambda p: ["pigz", "-6", "-p", str(NPROC), p], (".gz",)),
        f"logjam gzip (--threads {NPROC})": ("logjam", ["--codec", "gzip"], (".gz",)),
        "logjam gzip --threads 1": ("logjam", ["--codec", "gzip", "--threads", "1"], (".gz",)),
        "zstd -3 -T0": ("cli", lambda p: ["zstd", "-3", "-T0", "-q", "--rm", p], (".zst",)),
        f"logjam zstd (--threads {NPROC})": ("logjam", ["--codec", "zstd"], (".zst",)),
        # Not a logjam mode: what compressing big files side by side (one
        # thread each) instead of one after another (threads inside) would give.
        f"experiment: {NPROC} x logjam gzip --threads 1": ("split", ["--codec", "gzip", "--threads", "1"], (".gz",)),
    }
    commands = {k: v for k, v in commands.items() if any(k.startswith(t) for t in tools)}
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    out_bytes: dict[str, int] = {}
    order = list(commands)
    for rep in range(args.reps):
        for name in order[rep % len(order):] + order[: rep % len(order)]:  # rotate the order
            kind, command, suffixes = commands[name]
            target = fresh_copy(source, names, work / "run")
            if kind == "cli":
                result = run_each([command(str(target / n)) for n in names])
            elif kind == "logjam":
                result = run([tool("logjam-compress"), "--once", "--log-level", "warning", *command, str(target)])
            else:  # split the files over NPROC directories, one logjam-compress each, all at once
                parts = [target / f"part{i}" for i in range(NPROC)]
                for i, n in enumerate(names):
                    parts[i % NPROC].mkdir(exist_ok=True)
                    os.rename(target / n, parts[i % NPROC] / n)
                settle()
                result = run_parallel([[tool("logjam-compress"), "--once", "--log-level", "warning", *command,
                                        str(part)] for part in parts if part.exists()])
            if kind != "cli":
                made = sorted(p.name for p in target.rglob("*") if p.parent.name == "archive"
                              and p.name.endswith(suffixes))
                if len(made) != files or any(p.name in names for p in target.rglob("*.log")):
                    raise RuntimeError(f"{name}: expected {files} archived files, got {made}")
            out_bytes[name] = dir_bytes(target, suffixes)
            runs[name].append(result)
            progress(f"  {label} rep {rep + 1}: {name}: {result.seconds:.2f} s")
    shutil.rmtree(work / "run", ignore_errors=True)
    shutil.rmtree(source)

    results = {}
    for name in commands:
        med = median_run(runs[name])
        results[name] = {
            "seconds": med.seconds, "mbps": total / MB / med.seconds, "cpu": med.cpu,
            "out_mb": out_bytes[name] / MB, "ratio": total / out_bytes[name],
            "all_seconds": [r.seconds for r in runs[name]],
        }
    table.raw[f"compression_{label}"] = results
    return results


def add_compression_rows(table: Table, results: dict[str, dict]) -> None:
    def find(prefix):
        return next((v for k, v in results.items() if k.startswith(prefix)), None)

    gzip_ref, pigz_ref, zstd_ref = find("gzip -6"), find("pigz"), find("zstd -3")
    for name, r in results.items():
        notes = []
        if name.startswith("logjam gzip") or name.startswith("experiment"):
            if pigz_ref:
                notes.append(f"{pigz_ref['seconds'] / r['seconds']:.2f}x pigz")
            if gzip_ref:
                notes.append(f"{gzip_ref['seconds'] / r['seconds']:.2f}x gzip")
                notes.append(f"size {r['out_mb'] / gzip_ref['out_mb']:.3f} of gzip -6")
        elif name.startswith("logjam zstd") and zstd_ref:
            notes.append(f"{zstd_ref['seconds'] / r['seconds']:.2f}x zstd")
            notes.append(f"size {r['out_mb'] / zstd_ref['out_mb']:.3f} of zstd -3")
        elif name.startswith("pigz") and gzip_ref:
            notes.append(f"{gzip_ref['seconds'] / r['seconds']:.2f}x gzip")
        table.row("  " + name, seconds=r["seconds"], **{"MB/s": r["mbps"], "out MB": r["out_mb"],
                  "in/out": r["ratio"], "CPU s": r["cpu"]}, comparison=", ".join(notes))


# -- S3 server ----------------------------------------------------------------------

class MotoServer:
    """moto's S3 server in its own process (so it does not share a GIL with the proxy)."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                                   aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                   aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def bucket(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def count(self, bucket: str) -> int:
        paginator = self.client.get_paginator("list_objects_v2")
        return sum(page.get("KeyCount", 0) for page in paginator.paginate(Bucket=bucket))

    def reset(self) -> None:
        """Drops every bucket (moto keeps objects in memory)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=120).read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def upload_argv(archive: Path, bucket: str, endpoint: str, *extra: str) -> list[str]:
    return [tool("logjam-upload"), "--once", "--log-level", "warning", "--endpoint-url", endpoint,
            *extra, str(archive), f"s3://{bucket}/{TEMPLATE}"]


def aws_argv(source: Path, bucket: str, endpoint: str) -> list[str]:
    return [tool("aws"), "--endpoint-url", endpoint, "s3", "cp", "--recursive", "--only-show-errors",
            "--exclude", ".*", str(source), f"s3://{bucket}/aws/"]


def methods(proxy: S3Proxy) -> str:
    """The requests the proxy saw, by HTTP method: "GET 1, POST 2, PUT 64"."""
    kinds: dict[str, int] = {}
    for method, _path in proxy.calls():
        kinds[method] = kinds.get(method, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))


def forget_uploads(archive: Path) -> None:
    shutil.rmtree(archive / ".uploaded", ignore_errors=True)
    for lock in archive.glob(".logjam-upload.lock*"):
        lock.unlink()


# -- 2. upload ----------------------------------------------------------------------

def bench_upload(args, work: Path, s3: MotoServer, proxy: S3Proxy, table: Table) -> dict:
    archive = work / "upload" / "archive"
    archive.mkdir(parents=True)
    rng = random.Random(7)
    total = 0
    count = 0
    for i in range(args.upload_small):
        size = rng.randrange(args.upload_small_kb * 512, args.upload_small_kb * 1536)
        (archive / hour_name(f"web{i % 10}", i // 10, ".log.gz")).write_bytes(os.urandom(size))
        total += size
        count += 1
    for i in range(args.upload_big):
        size = args.upload_big_mb * MB
        (archive / hour_name(f"batch{i}", 0, ".log.gz")).write_bytes(os.urandom(size))
        total += size
        count += 1
    settle()

    tools = {
        "aws s3 cp --recursive": lambda bucket: aws_argv(archive, bucket, proxy.url),
        "logjam-upload (--jobs 4, default)": lambda bucket: upload_argv(archive, bucket, proxy.url),
    }
    for jobs in args.upload_jobs:
        tools[f"logjam-upload --jobs {jobs}"] = (
            lambda bucket, jobs=jobs: upload_argv(archive, bucket, proxy.url, "--jobs", str(jobs)))
    runs: dict[str, list[Run]] = {name: [] for name in tools}
    breakdown: dict[str, dict] = {}
    order = list(tools)
    for rep in range(args.upload_reps):
        for name in order[rep % len(order):] + order[: rep % len(order)]:
            s3.reset()
            bucket = s3.bucket()
            forget_uploads(archive)
            proxy.clear()
            result = run(tools[name](bucket))
            calls = proxy.calls()
            result.requests = len(calls)
            stored = s3.count(bucket)
            if stored != count:
                raise RuntimeError(f"{name}: {stored} objects in the bucket, expected {count}")
            kinds: dict[str, int] = {}
            for method, _path in calls:
                kinds[method] = kinds.get(method, 0) + 1
            breakdown[name] = kinds
            runs[name].append(result)
            progress(f"  upload rep {rep + 1}: {name}: {result.seconds:.2f} s, {result.requests} requests")
    forget_uploads(archive)
    s3.reset()
    shutil.rmtree(work / "upload")

    results = {}
    for name in tools:
        med = median_run(runs[name])
        results[name] = {"seconds": med.seconds, "mbps": total / MB / med.seconds, "cpu": med.cpu,
                         "requests": med.requests, "per_file": med.requests / count,
                         "methods": breakdown[name], "all_seconds": [r.seconds for r in runs[name]]}
    table.raw["upload"] = {"files": count, "bytes": total, "results": results}
    aws = results["aws s3 cp --recursive"]
    for name, r in results.items():
        note = ", ".join(f"{k} {v}" for k, v in sorted(r["methods"].items()))
        if name.startswith("logjam"):
            note = f"{aws['seconds'] / r['seconds']:.2f}x aws speed; " + note
        table.row("  " + name, seconds=r["seconds"], **{"MB/s": r["mbps"], "CPU s": r["cpu"],
                  "requests": r["requests"], "req/file": r["per_file"]}, comparison=note)
    return {"files": count, "bytes": total, "results": results}


# -- 3. idle pass -------------------------------------------------------------------

def bench_idle(args, work: Path, s3: MotoServer, proxy: S3Proxy, table: Table) -> dict:
    """Every archived file has a real marker, as logjam-upload writes it,
    confirming it at this run's destination (an empty marker counts as not
    uploaded, so the pass would upload everything)."""
    import hashlib

    from logjam.integrity import Fingerprint
    from logjam.markers import Confirmation, Destination, LedgerEntry, normalise_endpoint

    log_dir = work / "idle"
    archive = log_dir / "archive"
    ledger = archive / ".uploaded"
    ledger.mkdir(parents=True)
    bucket = s3.bucket()
    destination = Destination(scheme="s3", bucket=bucket, endpoint=normalise_endpoint(proxy.url))
    print_ = Fingerprint(1, hashlib.sha256(b"x").hexdigest())
    start = time.perf_counter()
    for i in range(args.idle_files):
        name = hour_name(f"svc{i % 100:02d}", i // 100, ".log.gz")
        fd = os.open(archive / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x")
        os.close(fd)
        key = f"svc{i % 100:02d}/{name}"
        marker = LedgerEntry(name, (Confirmation(destination, key, print_, location=f"s3://{bucket}/{key}"),)).to_bytes()
        fd = os.open(ledger / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, marker)
        os.close(fd)
    progress(f"  made {args.idle_files} archived files and markers in {time.perf_counter() - start:.1f} s")
    uploads, compresses, statuses = [], [], []
    for rep in range(args.reps):
        proxy.clear()
        result = run(upload_argv(archive, bucket, proxy.url))
        result.requests = len(proxy.calls())
        uploads.append(result)
        compresses.append(run([tool("logjam-compress"), "--once", "--log-level", "warning", str(log_dir)]))
        statuses.append(run([tool("logjam-status"), "--json", str(log_dir)]))
        progress(f"  idle rep {rep + 1}: upload {uploads[-1].seconds:.2f} s ({result.requests} requests), "
                 f"compress {compresses[-1].seconds:.2f} s, status {statuses[-1].seconds:.2f} s")
    shutil.rmtree(log_dir)
    up, comp, status = median_run(uploads), median_run(compresses), median_run(statuses)
    requests = max(r.requests for r in uploads)
    table.row(f"  logjam-upload --once ({args.idle_files:,} uploaded)", seconds=up.seconds,
              **{"CPU s": up.cpu, "requests": requests, "RSS MB": up.rss_mb},
              comparison=f"{1e6 * up.seconds / args.idle_files:.1f} us per file")
    table.row(f"  logjam-compress --once ({args.idle_files:,} archived)", seconds=comp.seconds,
              **{"CPU s": comp.cpu, "RSS MB": comp.rss_mb}, comparison="no new logs")
    table.row(f"  logjam-status ({args.idle_files:,} uploaded)", seconds=status.seconds,
              **{"CPU s": status.cpu, "RSS MB": status.rss_mb}, comparison="local state only")
    result = {"files": args.idle_files, "upload_seconds": up.seconds, "upload_requests": requests,
              "upload_rss_mb": up.rss_mb, "compress_seconds": comp.seconds, "compress_rss_mb": comp.rss_mb,
              "status_seconds": status.seconds, "status_rss_mb": status.rss_mb}
    table.raw["idle"] = result
    return result


# -- 4. peak RSS -----------------------------------------------------------------------

def bench_rss(args, corpus: Corpus, work: Path, s3: MotoServer, proxy: S3Proxy, table: Table) -> dict:
    """Each command gets a freshly written file of its own (logjam leaves files
    with more than one hard link alone, so no hard-linked copies)."""
    block = corpus.block(min(64, args.rss_mb) * MB, 999)
    root = work / "rss"
    root.mkdir()
    results: dict[str, dict] = {}

    def make(path: Path, size_mb: int) -> None:
        start = time.perf_counter()
        write_file(path, block, size_mb * MB)
        backdate(path)
        settle()
        progress(f"  wrote {size_mb} MB in {time.perf_counter() - start:.1f} s")

    def record(name: str, result: Run, size_mb: int, note: str = "") -> None:
        results[name] = {"seconds": result.seconds, "rss_mb": result.rss_mb, "cpu": result.cpu,
                         "size_mb": size_mb, "requests": result.requests}
        table.row("  " + name, seconds=result.seconds, **{"MB/s": size_mb / result.seconds,
                  "CPU s": result.cpu, "RSS MB": result.rss_mb,
                  "requests": result.requests if "S3" in name or "aws" in name else None},
                  comparison=note)
        progress(f"  {name}: {result.seconds:.1f} s, {result.rss_mb:.0f} MB RSS")

    for codec in args.rss_codecs:
        logs = root / f"logs-{codec}"
        logs.mkdir()
        name = hour_name("big", 0)
        make(logs / name, args.rss_mb)
        result = run([tool("logjam-compress"), "--once", "--log-level", "warning", "--codec", codec, str(logs)])
        made = list((logs / "archive").iterdir())
        if (logs / name).exists() or len(made) != 1:
            raise RuntimeError(f"logjam-compress {codec}: {name} was not compressed")
        record(f"logjam-compress {codec} {args.rss_mb} MB", result, args.rss_mb,
               f"-> {made[0].stat().st_size / MB:.0f} MB")
        shutil.rmtree(logs)

    # Upload: a file of that size under an archived name (upload does not look inside).
    archive = root / "up" / "archive"
    archive.mkdir(parents=True)
    name = hour_name("big", 0, ".log.gz")
    make(archive / name, args.rss_mb)
    dest = root / "dest"
    dest.mkdir()
    result = run([tool("logjam-upload"), "--once", "--log-level", "warning", str(archive),
                  f"file://{dest}/{TEMPLATE}"])
    copied = [p for p in dest.rglob("*") if p.is_file()]
    if len(copied) != 1 or copied[0].stat().st_size != args.rss_mb * MB:
        raise RuntimeError(f"logjam-upload file://: expected one copy of {name}, found {copied}")
    record(f"logjam-upload {args.rss_mb} MB -> file://", result, args.rss_mb, "copy + fsync")
    shutil.rmtree(dest)
    forget_uploads(archive)

    s3_mb = args.rss_s3_mb
    if s3_mb != args.rss_mb:
        os.unlink(archive / name)
        make(archive / name, s3_mb)
    for label, argv in (
        (f"logjam-upload {s3_mb} MB -> S3 multipart", lambda b: upload_argv(archive, b, proxy.url)),
        (f"aws s3 cp {s3_mb} MB (reference)", lambda b: aws_argv(archive, b, proxy.url)),
    ):
        s3.reset()
        bucket = s3.bucket()
        forget_uploads(archive)
        proxy.clear()
        result = run(argv(bucket))
        result.requests = len(proxy.calls())
        if s3.count(bucket) != 1:
            raise RuntimeError(f"{label}: the object is not in the bucket")
        record(label, result, s3_mb, ("8 MiB parts, 4 at once; " if label.startswith("logjam")
                                      else "8 MiB parts, 10 at once; ") + methods(proxy))
    # Several big files at once: --jobs files in flight, each with its parts in flight.
    os.unlink(archive / name)
    count, each_mb = args.rss_multi
    for i in range(count):
        make(archive / hour_name(f"big{i}", 0, ".log.gz"), each_mb)
    s3.reset()
    bucket = s3.bucket()
    forget_uploads(archive)
    proxy.clear()
    result = run(upload_argv(archive, bucket, proxy.url))
    result.requests = len(proxy.calls())
    if s3.count(bucket) != count:
        raise RuntimeError("logjam-upload: not every big file is in the bucket")
    record(f"logjam-upload {count} x {each_mb} MB -> S3 multipart", result, count * each_mb,
           "--jobs 4 (default) files at once; " + methods(proxy))
    s3.reset()
    shutil.rmtree(root)
    table.raw["rss"] = results
    return results


# -- 5. issue 11: one hourly file, several files, every loghub system ---------------------

def loghub_samples(loghub: Path) -> dict[str, bytes]:
    """The loghub samples by system name, as the files hold them."""
    return {Path(path).name.split("_")[0]: Path(path).read_bytes()
            for path in sorted(glob.glob(str(loghub / "*.log")))}


def gzip6_size(path: Path) -> int:
    with open(path, "rb") as source:
        out = subprocess.run(["gzip", "-6", "-c"], stdin=source, capture_output=True, check=True).stdout
    return len(out)


def bench_single(args, work: Path, s3: MotoServer | None, proxy: S3Proxy | None, table: Table,
                 targets: list) -> dict:
    """Issue 11's workloads, whole processes side by side in one run: one hourly
    file (the 16 loghub samples together, repeated), several files, each
    system on its own, and one large upload."""
    samples = loghub_samples(args.loghub)
    if not samples:
        sys.exit(f"bench: --single needs the loghub samples ({args.loghub})")
    together = b"".join(samples.values())
    pigz_name = f"pigz -6 -p{NPROC}"
    results: dict[str, dict] = {}

    def workload(label: str, sizes_mb: list[float]) -> None:
        source = work / "single-source"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir()
        names = []
        for i, size_mb in enumerate(sizes_mb):
            name = hour_name(f"app{i:02d}", i)
            turn = (i * 1_000_003) % len(together)  # each file starts elsewhere in the samples
            write_file(source / name, together[turn:] + together[:turn], int(size_mb * MB))
            names.append(name)
        total = sum(int(size_mb * MB) for size_mb in sizes_mb)
        gzip_bytes = sum(gzip6_size(source / name) for name in names)
        commands = {
            pigz_name: lambda target: run_each([["pigz", "-6", "-p", str(NPROC), str(target / n)] for n in names]),
            "logjam-compress": lambda target: run([tool("logjam-compress"), "--once", "--log-level", "warning",
                                                   str(target)]),
        }
        for level in args.single_levels:  # for information: the same at other gzip levels
            commands[f"logjam-compress --level {level}"] = (
                lambda target, level=level: run([tool("logjam-compress"), "--once", "--log-level", "warning",
                                                 "--level", str(level), str(target)]))
        runs: dict[str, list[Run]] = {name: [] for name in commands}
        out_bytes: dict[str, int] = {}
        order = list(commands)
        for rep in range(args.reps):
            for name in order[rep % len(order):] + order[: rep % len(order)]:
                target = fresh_copy(source, names, work / "single-run")
                result = commands[name](target)
                if name.startswith("logjam-compress") and any((target / n).exists() for n in names):
                    raise RuntimeError(f"{label}: logjam-compress left originals")
                out_bytes[name] = dir_bytes(target, (".gz",))
                runs[name].append(result)
                progress(f"  {label} rep {rep + 1}: {name}: {result.seconds:.2f} s, {result.cpu:.2f} CPU s")
        shutil.rmtree(work / "single-run", ignore_errors=True)
        shutil.rmtree(source)
        table.section(f"{label}: {total / MB:.0f} MB of loghub samples repeated; gzip -6 makes "
                      f"{gzip_bytes / MB:.1f} MB")
        meds = {name: median_run(runs[name]) for name in commands}
        pigz, logjam = meds[pigz_name], meds["logjam-compress"]
        for name, med in meds.items():
            size = out_bytes[name] / gzip_bytes
            note = f"size {size:.3f} of gzip -6"
            if name.startswith("logjam-compress"):
                note = (f"{pigz.seconds / med.seconds:.2f}x pigz speed, CPU {med.cpu / pigz.cpu:.2f} of pigz's, "
                        + note)
            table.row("  " + name, seconds=med.seconds, **{"MB/s": total / MB / med.seconds,
                      "out MB": out_bytes[name] / MB, "in/out": total / out_bytes[name], "CPU s": med.cpu,
                      "RSS MB": med.rss_mb}, comparison=note)
        speed = pigz.seconds / logjam.seconds
        size = out_bytes["logjam-compress"] / gzip_bytes
        results[label] = {"bytes": total, "gzip6_bytes": gzip_bytes, "speed_vs_pigz": speed,
                          "cpu_vs_pigz": logjam.cpu / pigz.cpu, "size_vs_gzip6": size,
                          "runs": {n: [vars(r) for r in runs[n]] for n in runs}}
        targets.append((f"{label}: logjam / pigz throughput", f"{speed:.2f}x", ">= 1.5x", speed >= 1.5))
        if len(sizes_mb) == 1:
            cpu = logjam.cpu / pigz.cpu
            targets.append((f"{label}: logjam CPU s / pigz CPU s", f"{cpu:.2f}", "<= 0.60", cpu <= 0.6))
        targets.append((f"{label}: logjam output / gzip -6", f"{size:.3f}", "<= 1.000", size <= 1.0))
        targets.append((f"{label}: peak RSS logjam-compress", f"{logjam.rss_mb:.0f} MB", f"< {RSS_TARGET_MB} MB",
                        logjam.rss_mb < RSS_TARGET_MB))

    for size_mb in args.single_mb:
        progress(f"single: one file of {size_mb} MB")
        workload(f"One file, {size_mb} MB", [size_mb])
    for size_mb in args.single_files_mb:
        progress(f"single: 8 files of {size_mb} MB")
        workload(f"8 files x {size_mb} MB", [size_mb] * 8)

    # What a process costs before it compresses a byte: what small files
    # cannot win back (logjam runs once per pass, pigz once per file).
    progress("single: one process with nothing to compress")
    idle = work / "single-idle"
    (idle / "archive").mkdir(parents=True)  # as on a host after its first pass
    (idle / "empty").write_bytes(b"")
    fixed = {pigz_name + " (empty file)": ["pigz", "-6", "-p", str(NPROC), "-k", "-f", str(idle / "empty")],
             "logjam-compress (no logs)": [tool("logjam-compress"), "--once", "--log-level", "warning", str(idle)]}
    fixed_runs: dict[str, list[Run]] = {name: [] for name in fixed}
    for _ in range(max(args.reps, 5)):
        for name, argv in fixed.items():
            fixed_runs[name].append(run(argv))
    shutil.rmtree(idle)
    table.section("One process with nothing to compress (start, imports, exit)")
    for name, runs_ in fixed_runs.items():
        med = median_run(runs_)
        table.row("  " + name, seconds=med.seconds, **{"CPU s": med.cpu, "RSS MB": med.rss_mb})
    results["fixed"] = {name: [vars(r) for r in runs_] for name, runs_ in fixed_runs.items()}

    # Each system on its own: every one must come out no larger than with gzip -6.
    progress("single: each loghub system on its own")
    logs = work / "systems"
    logs.mkdir()
    for system, data in samples.items():
        (logs / hour_name(system, 0)).write_bytes(data)
        backdate(logs / hour_name(system, 0))
    gzip_sizes = {system: gzip6_size(logs / hour_name(system, 0)) for system in samples}
    other_levels: dict[int, dict[str, float]] = {}
    for level in args.single_levels:
        copy = work / f"systems-level{level}"
        shutil.copytree(logs, copy)
        run([tool("logjam-compress"), "--once", "--log-level", "warning", "--level", str(level), str(copy)])
        other_levels[level] = {system: (copy / "archive" / (hour_name(system, 0) + ".gz")).stat().st_size
                               / gzip_sizes[system] for system in samples}
        shutil.rmtree(copy)
    run([tool("logjam-compress"), "--once", "--log-level", "warning", str(logs)])
    table.section("Each loghub system on its own (the 2,000-line sample): logjam gzip against gzip -6")
    per_system = {}
    for system, data in samples.items():
        size = (logs / "archive" / (hour_name(system, 0) + ".gz")).stat().st_size
        per_system[system] = size / gzip_sizes[system]
        table.row(f"  {system}", **{"out MB": size / MB, "in/out": len(data) / size},
                  comparison=f"size {per_system[system]:.3f} of gzip -6 ({gzip_sizes[system]:,} -> {size:,} bytes)"
                  + "".join(f"; --level {level}: {sizes[system]:.3f}" for level, sizes in other_levels.items()))
    shutil.rmtree(logs)
    worst = max(per_system, key=per_system.__getitem__)
    targets.append(("every loghub system: logjam output / gzip -6", f"{per_system[worst]:.3f}",
                    "<= 1.000", per_system[worst] <= 1.0))
    results["per_system"] = per_system

    if s3 is not None and proxy is not None and args.single_upload_mb:
        size_mb = args.single_upload_mb
        progress(f"single: upload of one {size_mb} MB file")
        archive = work / "single-up" / "archive"
        archive.mkdir(parents=True)
        name = hour_name("big", 0, ".log.gz")
        with open(archive / name, "wb") as out:
            for _ in range(size_mb):
                out.write(os.urandom(MB))
        settle()
        tools_ = {"aws s3 cp": lambda b: aws_argv(archive, b, proxy.url),
                  "logjam-upload": lambda b: upload_argv(archive, b, proxy.url)}
        up_runs: dict[str, list[Run]] = {n: [] for n in tools_}
        order = list(tools_)
        for rep in range(args.reps):
            for label in order[rep % 2:] + order[: rep % 2]:
                s3.reset()
                bucket = s3.bucket()
                forget_uploads(archive)
                proxy.clear()
                result = run(tools_[label](bucket))
                result.requests = len(proxy.calls())
                if s3.count(bucket) != 1:
                    raise RuntimeError(f"{label}: the object is not in the bucket")
                up_runs[label].append(result)
                progress(f"  upload rep {rep + 1}: {label}: {result.seconds:.2f} s")
        s3.reset()
        shutil.rmtree(work / "single-up")
        table.section(f"Upload of one {size_mb} MB file to S3 (moto on loopback, through the counting proxy)")
        meds = {n: median_run(up_runs[n]) for n in tools_}
        for label, med in meds.items():
            note = "" if label == "aws s3 cp" else f"{meds['aws s3 cp'].seconds / med.seconds:.2f}x aws speed"
            table.row("  " + label, seconds=med.seconds, **{"MB/s": size_mb / med.seconds, "CPU s": med.cpu,
                      "requests": med.requests, "RSS MB": med.rss_mb}, comparison=note)
        ratio = meds["logjam-upload"].seconds / meds["aws s3 cp"].seconds
        targets.append((f"upload {size_mb} MB: logjam time / aws s3 cp time", f"{ratio:.2f}", "<= 1.00",
                        ratio <= 1.0))
        targets.append((f"upload {size_mb} MB: peak RSS logjam-upload", f"{meds['logjam-upload'].rss_mb:.0f} MB",
                        f"< {RSS_TARGET_MB} MB", meds["logjam-upload"].rss_mb < RSS_TARGET_MB))
        results["upload"] = {n: [vars(r) for r in up_runs[n]] for n in up_runs}
    table.raw["single"] = results
    return results


# -- the run ------------------------------------------------------------------------------

def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def git_state() -> str:
    """The commit measured, and whether logjam/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %cs"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "logjam"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {head}" + (" + uncommitted changes in logjam/" if dirty else "")


def machine_lines() -> list[str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / MB:.1f} GiB"
    versions = []
    for package in ("logjam", "deflate", "zlib-ng", "zstandard", "boto3", "botocore", "moto", "awscli"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} -")
    tools = []
    for command in (["gzip", "--version"], ["pigz", "--version"], ["zstd", "--version"]):
        try:
            out = subprocess.run(command, capture_output=True, text=True).stdout or ""
            out = out or subprocess.run(command, capture_output=True, text=True).stderr
            tools.append(out.splitlines()[0].strip(" *") if out else command[0])
        except OSError:
            tools.append(f"{command[0]} missing")
    return [
        f"date:     {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"machine:  {NPROC} cores usable ({os.cpu_count()} online), {cpu}, {memory} RAM, "
        f"Linux {platform.release()}",
        f"python:   {platform.python_version()} ({sys.executable})",
        f"packages: {', '.join(versions)}",
        f"tools:    {'; '.join(tools)}",
        f"logjam:   {git_state()}",
        f"load avg at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 repetitions (a minute or two)")
    parser.add_argument("--loghub", type=Path, default=REPO.parent / "shared" / "data" / "loghub",
                        help="directory of loghub *.log samples (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per measurement (default 3)")
    parser.add_argument("--upload-reps", type=int, default=None,
                        help="repetitions of the upload runs, which are short (default 5)")
    parser.add_argument("--files", type=int, default=None, help="compression corpus: files (default 8)")
    parser.add_argument("--file-mb", type=int, default=None, help="compression corpus: MB per file (default 64)")
    parser.add_argument("--small-files", type=int, default=None,
                        help="small-file compression corpus: files of 2 MB (default 64; 0 skips)")
    parser.add_argument("--upload-small", type=int, default=None, help="upload: small files (default 200)")
    parser.add_argument("--upload-small-kb", type=int, default=100, help="upload: mean KB of small files")
    parser.add_argument("--upload-big", type=int, default=None, help="upload: 20 MB files (default 3)")
    parser.add_argument("--upload-big-mb", type=int, default=20)
    parser.add_argument("--upload-jobs", type=lambda s: [int(x) for x in s.split(",") if x], default=None,
                        help="extra logjam-upload --jobs values to measure, comma-separated (default 10)")
    parser.add_argument("--idle-files", type=int, default=None, help="idle pass: archived files (default 100000)")
    parser.add_argument("--rss-mb", type=int, default=None, help="peak RSS: file size (default 4096)")
    parser.add_argument("--rss-s3-mb", type=int, default=None,
                        help="peak RSS: size uploaded to S3 (default 1024; moto holds it in memory)")
    parser.add_argument("--rss-multi", type=lambda s: tuple(int(x) for x in s.lower().split("x")), default=None,
                        metavar="NxMB", help="peak RSS: several big files uploaded to S3 in one pass (default 4x256)")
    parser.add_argument("--rss-codecs", type=lambda s: [c for c in s.split(",") if c], default=["gzip", "zstd"],
                        help="codecs for the logjam-compress RSS rows (default: gzip,zstd)")
    parser.add_argument("--only", type=lambda s: set(s.split(",")), default=None,
                        help="sections to run: compress,upload,idle,rss,single (default: all; "
                             "--quick: all but single)")
    parser.add_argument("--single", action="store_true",
                        help="only issue 11's workloads (one hourly file, 8 files, each loghub system, "
                             "one large upload): --only single")
    parser.add_argument("--single-mb", type=lambda s: [int(x) for x in s.split(",") if x], default=None,
                        help="one-file sizes in MB (default 138,1024)")
    parser.add_argument("--single-files-mb", type=lambda s: [float(x) for x in s.split(",") if x], default=None,
                        help="sizes of the 8-file runs in MB (default 1,8,17,64)")
    parser.add_argument("--single-levels", type=lambda s: [int(x) for x in s.split(",") if x], default=[],
                        help="also run logjam-compress at these gzip levels, for information (e.g. 6)")
    parser.add_argument("--single-upload-mb", type=int, default=None,
                        help="one-file upload size in MB (default 1024; 0 skips)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.txt")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "reps": (3, 2), "upload_reps": (5, 2), "files": (8, 4), "file_mb": (64, 16), "small_files": (64, 16),
        "upload_small": (200, 50), "upload_big": (3, 1), "upload_jobs": ([10], []),
        "idle_files": (100_000, 10_000), "rss_mb": (4096, 512), "rss_s3_mb": (1024, 256),
        "rss_multi": ((4, 256), (4, 64)),
        "single_mb": ([138, 1024], [138]), "single_files_mb": ([1, 8, 17, 64], [1, 8]),
        "single_upload_mb": (1024, 256),
    }
    if args.only is None:
        args.only = ({"single"} if args.single else
                     {"compress", "upload", "idle", "rss"} | (set() if quick else {"single"}))
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    header = machine_lines()
    for line in header:
        progress(line)
    table = Table()
    corpus = Corpus(args.loghub)
    table.raw["corpus_source"] = corpus.source
    if corpus.original:
        table.raw["loghub_gzip_ratio"] = gzip_ratio(corpus.original)
    work = Path(tempfile.mkdtemp(prefix="logjam-bench-", dir=args.workdir))
    s3 = proxy = None
    targets = []
    try:
        if "compress" in args.only:
            total = args.files * args.file_mb
            progress(f"compression: {args.files} x {args.file_mb} MB")
            table.section(f"Compression: {args.files} files x {args.file_mb} MB = {total} MB "
                          f"(gzip -6, pigz -6, logjam's default levels, zstd -3; each tool per file, one after another)")
            big = bench_compression(args, corpus, work, table, files=args.files, file_mb=args.file_mb,
                                    label="big", seed=1, tools=["gzip", "pigz", "logjam", "zstd", "experiment"])
            add_compression_rows(table, big)
            pigz = next(v for k, v in big.items() if k.startswith("pigz"))
            gzip = big["gzip -6"]
            logjam = next(v for k, v in big.items() if k.startswith("logjam gzip ("))
            speed = pigz["seconds"] / logjam["seconds"]
            size = logjam["out_mb"] / gzip["out_mb"]
            targets.append(("logjam gzip / pigz throughput", f"{speed:.2f}x", ">= 1.5x", speed >= 1.5))
            targets.append(("logjam gzip output / gzip -6 output", f"{size:.3f}", "<= 1.000", size <= 1.0))
            # Not a target: the same comparison in CPU seconds, which other load on the machine hardly moves.
            cpu_ratio = pigz["cpu"] / logjam["cpu"]
            targets.append(("  (info) pigz CPU s / logjam gzip CPU s", f"{cpu_ratio:.2f}x", "", None))
            if args.small_files:
                progress(f"compression: {args.small_files} x 2 MB")
                table.section(f"Compression, small files: {args.small_files} files x 2 MB "
                              f"(logjam compresses several files side by side)")
                small = bench_compression(args, corpus, work, table, files=args.small_files, file_mb=2,
                                          label="small", seed=100, tools=["gzip", "pigz", "logjam gzip ("])
                add_compression_rows(table, small)
        if args.only & {"upload", "idle", "rss"} or ("single" in args.only and args.single_upload_mb):
            s3 = MotoServer()
            proxy = S3Proxy(s3.url).start()
        if "upload" in args.only:
            progress(f"upload: {args.upload_small} x ~{args.upload_small_kb} KB + "
                     f"{args.upload_big} x {args.upload_big_mb} MB")
            table.section(f"Upload to S3 (moto on loopback, through the counting proxy): "
                          f"{args.upload_small} x ~{args.upload_small_kb} KB + "
                          f"{args.upload_big} x {args.upload_big_mb} MB, fresh bucket each")
            up = bench_upload(args, work, s3, proxy, table)
            aws = up["results"]["aws s3 cp --recursive"]
            logjam = up["results"]["logjam-upload (--jobs 4, default)"]
            ratio = logjam["seconds"] / aws["seconds"]
            targets.append(("logjam-upload time / aws s3 cp time", f"{ratio:.2f}", "<= 1.00", ratio <= 1.0))
            targets.append(("S3 requests per new file (logjam-upload)", f"{logjam['per_file']:.2f}", "1.00",
                            abs(logjam["per_file"] - 1.0) < 1e-9))
        if "idle" in args.only:
            progress(f"idle: {args.idle_files} archived files, all uploaded")
            table.section("Idle pass: nothing new (archive and ledger already in the page cache)")
            idle = bench_idle(args, work, s3, proxy, table)
            targets.append((f"S3 requests per idle pass ({args.idle_files:,} files)",
                            str(idle["upload_requests"]), "0", idle["upload_requests"] == 0))
        if "rss" in args.only:
            progress(f"peak RSS: {args.rss_mb} MB file")
            table.section(f"Peak RSS, large files (gzip/zstd compress and file:// copy of {args.rss_mb} MB; "
                          f"S3 upload of {args.rss_s3_mb} MB, then of {args.rss_multi[0]} x {args.rss_multi[1]} MB)")
            rss = bench_rss(args, corpus, work, s3, proxy, table)
            compress_peak = max((v["rss_mb"] for k, v in rss.items() if k.startswith("logjam-compress")), default=0)
            upload_peak = max(v["rss_mb"] for k, v in rss.items() if k.startswith("logjam-upload"))
            if args.rss_codecs:
                targets.append(("peak RSS logjam-compress", f"{compress_peak:.0f} MB", f"< {RSS_TARGET_MB} MB",
                                compress_peak < RSS_TARGET_MB))
            targets.append(("peak RSS logjam-upload", f"{upload_peak:.0f} MB", f"< {RSS_TARGET_MB} MB",
                            upload_peak < RSS_TARGET_MB))
        if "single" in args.only:
            progress("issue 11: one hourly file, several files, each system, one upload")
            bench_single(args, work, s3, proxy, table, targets)
    finally:
        if proxy is not None:
            proxy.stop()
        if s3 is not None:
            s3.stop()
        shutil.rmtree(work, ignore_errors=True)

    if targets:
        table.section("Targets")
        for name, value, target, met in targets:
            if met is None:
                table.row("  " + name, comparison=f"{value:>8}  (not a target)")
            else:
                table.row("  " + name, comparison=f"{value:>8}  target {target:<9} {'met' if met else 'NOT met'}")
    corpus_line = f"corpus:   {corpus.source}"
    if "loghub_gzip_ratio" in table.raw:
        corpus_line += f"; gzip -6 ratio of the samples themselves {table.raw['loghub_gzip_ratio']:.2f}"
    if "corpus_big_gzip_ratio_8MB" in table.raw:
        corpus_line += f", of the generated corpus {table.raw['corpus_big_gzip_ratio_8MB']:.2f}"
    footer = [f"load avg at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"total bench time {time.perf_counter() - began:.0f} s; medians of {args.reps} runs "
              f"({args.upload_reps} for uploads)"]
    text = "\n".join(header + [corpus_line, "", table.render(), "", *footer]) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    table.raw["targets"] = [{"name": n, "value": v, "target": t, "met": m} for n, v, t, m in targets]
    table.raw["args"] = {k: (str(v) if isinstance(v, (Path, set)) else v) for k, v in vars(args).items()}
    args.out.with_suffix(".json").write_text(json.dumps(table.raw, indent=2, default=str) + "\n")
    progress(f"wrote {args.out}")
    return 0 if all(met is not False for *_, met in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
