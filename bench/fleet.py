#!/usr/bin/env python3
"""A fleet of logjam-upload hosts against one bucket, at five past the hour.

Run by hand (not in CI), with logjam and moto[server] installed, e.g. in the
virtualenv ./test_all.sh makes::

    .venv/bin/python bench/fleet.py --quick
    .venv/bin/python bench/fleet.py --hosts 40 --files 20 --rate 50 --splay 30

Each simulated host is a process running logjam-upload's entry point
(``logjam.upload.main([... "--once" ...])``) over an archive of its own with
--files new files (one per stream, all of the same hour). The processes load
Python and boto3 first and then start their pass at the same second. They
talk to moto (a server process on loopback) through a rate-limiting front
that answers ``503 SlowDown`` to any request above --rate requests per
second for one key prefix (the key's first path component), as S3 does
while it scales a prefix.

Modes: standard and adaptive retries (botocore), each without and with
--splay. For each mode it prints the time until every file is stored (from
the common start), the number of 503s, the peak requests per second that
reached the front, the objects stored against the files, and the files
whose retries ran out (left for the next pass). It exits 1 if any file is
lost (recorded as uploaded but not stored, or stored with other bytes) or
stored twice.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from tests.s3proxy import SLOW_DOWN, Fault, PrefixRateLimit, S3Proxy  # noqa: E402  (the tests' fault proxy)

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "fleet-key-id",
    "AWS_SECRET_ACCESS_KEY": "fleet-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Date first: every host and stream of an hour shares one prefix, the case
# S3's per-prefix limit is about.
TEMPLATE = "{year}/{month}/{day}/{hour}/{hostname}/{prefix}/{filename}"
HOUR = "20260101T0000Z"

# A host: load everything, wait for the common start, then one real pass.
HOST_PROGRAM = """\
import sys, time
from logjam import upload
import boto3, botocore.retries.adaptive  # noqa: F401  (loaded before the start)
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
sys.exit(upload.main(sys.argv[2:]))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Simulates N hosts uploading at once through a "
        "front that answers 503 SlowDown above R requests/s per key prefix, and prints one row per mode.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Columns: time until every file is stored (from the common start), 503s sent by the front, "
               "requests in the busiest second, all requests, objects stored/files, files left for the next "
               "pass (retries ran out), files lost, duplicate objects, exit statuses of the hosts. "
               "Exit status 1 if any file is lost or duplicated. Results: docs/fleet.rst.",
    )
    parser.add_argument("--hosts", type=int, default=24, help="simulated hosts (one process each)")
    parser.add_argument("--files", type=int, default=20, help="new files per host (one per stream)")
    parser.add_argument("--rate", type=float, default=40.0,
                        help="requests per second per key prefix above which the front answers 503 SlowDown")
    parser.add_argument("--splay", type=float, default=30.0, help="--splay SECONDS for the modes that use it")
    parser.add_argument("--jobs", type=int, default=4, help="--jobs of each host")
    parser.add_argument("--retries", type=int, default=5, help="--retries of each host (attempts per request)")
    parser.add_argument("--template", default=TEMPLATE, help="the key template every host uses")
    parser.add_argument("--modes", default="standard,adaptive,standard+splay,adaptive+splay",
                        help="comma-separated modes to run: standard|adaptive, optionally +splay")
    parser.add_argument("--quick", action="store_true",
                        help="a small run (8 hosts x 5 files, rate 10/s, splay 8 s) to check the bench works")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (host archives, logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.hosts, args.files, args.rate, args.splay = 8, 5, 10.0, 8.0
    if min(args.hosts, args.files, args.jobs, args.retries) < 1 or args.rate <= 0 or args.splay < 0:
        parser.error("--hosts, --files, --jobs, --retries and --rate must be positive, --splay 0 or more")
    return args


# -- one mode -------------------------------------------------------------------------

@dataclass
class Result:
    mode: str
    seconds: float  # from the common start until the last file was stored
    slowdowns: int
    peak: int  # requests in the busiest second, at the front
    requests: int
    stored: int
    files: int
    failed: int  # files left for the next pass (their retries ran out)
    lost: int
    duplicates: int
    exits: collections.Counter


def make_archives(root: Path, hosts: int, files: int) -> list[Path]:
    rng = random.Random(0)
    archives = []
    for host in range(hosts):
        archive = root / f"host{host:05d}" / "archive"
        archive.mkdir(parents=True)
        for stream in range(files):
            lines = b"".join(b"%d %d %d\n" % (host, stream, rng.getrandbits(64)) for _ in range(200))
            (archive / f"s{stream:02d}-{HOUR}.log.gz").write_bytes(gzip.compress(lines, mtime=0))
        archives.append(archive)
    return archives


def run_mode(mode: str, args: argparse.Namespace, endpoint: str, root: Path) -> Result:
    import boto3

    retry_mode, _, splay = mode.partition("+")
    bucket = f"fleet-{mode.replace('+', '-')}-{int(time.time())}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket=bucket)
    archives = make_archives(root / mode, args.hosts, args.files)

    limit = PrefixRateLimit(args.rate)
    proxy = S3Proxy(endpoint).start()
    proxy.set_faults(Fault(SLOW_DOWN, where=limit))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SENTRY_"))}
    env.update(CREDENTIALS, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(REPO))
    # Enough lead for every host to load Python and boto3 on a busy machine.
    start = time.time() + 3 + 0.15 * args.hosts
    processes = []
    for number, archive in enumerate(archives):
        argv = [sys.executable, "-c", HOST_PROGRAM, repr(start), "--once", "--log-level", "warning",
                "--endpoint-url", proxy.url, "--hostname", f"host{number:05d}",
                "--retry-mode", retry_mode, "--retries", str(args.retries), "--jobs", str(args.jobs),
                *(["--splay", str(args.splay)] if splay else []), str(archive), f"s3://{bucket}/{args.template}"]
        log = open(archive.parent / "stderr.txt", "w")  # noqa: SIM115  (closed below)
        processes.append((subprocess.Popen(argv, env=env, stdout=log, stderr=log), log))
    exits: collections.Counter = collections.Counter()
    for process, log in processes:
        exits[process.wait()] += 1
        log.close()
    proxy.stop()

    requests = proxy.matching(lambda request: request.started >= 0)
    mono_start = time.monotonic() - (time.time() - start)
    stored_at = [request.finished for request in requests
                 if request.method == "PUT" and request.fault is None and request.finished is not None]
    seconds = max(stored_at) - mono_start if stored_at else float("nan")
    per_second = collections.Counter(int(request.started - mono_start) for request in requests)
    stored, lost, duplicates, failed = check_bucket(s3, bucket, archives, args.template)
    return Result(mode, seconds, sum(1 for request in requests if request.fault), max(per_second.values(), default=0),
                  len(requests), stored, args.hosts * args.files, failed, lost, duplicates, exits)


def check_bucket(s3, bucket: str, archives: list[Path], template: str) -> tuple[int, int, int, int]:
    """Returns (objects stored, files lost, duplicates, files left for the next pass)."""
    from logjam.parse import parse_filename
    from logjam.template import KeyTemplate

    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            objects[item["Key"]] = item["Size"]
    expected = set()
    lost = failed = 0
    for number, archive in enumerate(archives):
        recorded = set(os.listdir(archive / ".uploaded")) if (archive / ".uploaded").exists() else set()
        for name in sorted(os.listdir(archive)):
            logfile = parse_filename(name)
            if logfile is None:
                continue
            key = KeyTemplate.parse(template).format(logfile, hostname=f"host{number:05d}")
            expected.add(key)
            size = (archive / name).stat().st_size
            if key in objects:
                if objects[key] != size or s3.get_object(Bucket=bucket, Key=key)["Body"].read() \
                        != (archive / name).read_bytes():
                    lost += 1  # other bytes under its key
            elif name in recorded:
                lost += 1  # recorded as uploaded, but not there
            else:
                failed += 1  # still waiting in the archive: the next pass sends it
    duplicates = sum(1 for key in objects if key not in expected)
    return len(objects), lost, duplicates, failed


# -- the table ------------------------------------------------------------------------

def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{platform.node()}: {model}, {len(os.sched_getaffinity(0))} CPUs, load average {load}; "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def table(results: list[Result], args: argparse.Namespace) -> str:
    header = ("mode", "all stored", "503s", "peak req/s", "requests", "stored/files", "left for next pass",
              "lost", "duplicates", "exit statuses")
    rows = [header]
    for result in results:
        exits = " ".join(f"{status}x{count}" for status, count in sorted(result.exits.items()))
        rows.append((result.mode, f"{result.seconds:.1f} s", str(result.slowdowns), str(result.peak),
                     str(result.requests), f"{result.stored}/{result.files}", str(result.failed),
                     str(result.lost), str(result.duplicates), exits))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    rule = "  ".join("=" * width for width in widths)
    lines = [rule, "  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip(), rule]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows[1:]]
    lines.append(rule)
    settings = (f"{args.hosts} hosts x {args.files} files, front: 503 SlowDown above {args.rate:g} requests/s "
                f"per key prefix, --jobs {args.jobs}, --retries {args.retries}, --splay {args.splay:g} "
                f"(+splay modes), template {args.template}")
    return "\n".join([settings, machine(), "", *lines])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "INITIAL_NO_AUTH_ACTION_COUNT"}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise SystemExit("fleet.py: the moto server did not start (pip install 'moto[server]')")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    for mode in modes:
        if mode.partition("+")[0] not in ("standard", "adaptive") or mode.partition("+")[2] not in ("", "splay"):
            raise SystemExit(f"fleet.py: unknown mode {mode!r} (standard|adaptive, optionally +splay)")
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    moto, endpoint = start_moto()
    root = Path(tempfile.mkdtemp(prefix="logjam-fleet-"))
    results = []
    try:
        for mode in modes:
            print(f"running {mode} ...", file=sys.stderr, flush=True)
            results.append(run_mode(mode, args, endpoint, root))
    finally:
        moto.terminate()
        moto.wait(timeout=10)
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(table(results, args))
    bad = [result.mode for result in results if result.lost or result.duplicates]
    if bad:
        print(f"fleet.py: files lost or duplicated in: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "fleet"
    raise SystemExit(main())
