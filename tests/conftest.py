"""Shared fixtures: commands run in-process (call) or as real processes
(run), real directories, a real S3 over HTTP on loopback."""

from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.s3proxy import S3Proxy

BIN = Path(sys.executable).parent
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def script(name: str) -> str:
    """The installed console script (a packaging mistake fails here)."""
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed; run ./test_all.sh (pip install -e '.[test]')")
        return found
    return str(path)


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "SENTRY_"))}
    env.update(CREDENTIALS)
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


def run(name: str, *args: str, env: dict | None = None, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Runs a console script to completion; returns the completed process (text)."""
    return subprocess.run(
        [script(name), *map(str, args)],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


COMMANDS = {"logjam-compress": "logjam.compress", "logjam-upload": "logjam.upload",
            "logjam-status": "logjam.status", "logjam-cat": "logjam.cat"}


def call(name: str, *args: str, env: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Runs a command's main() in this process, as run() runs its script:
    with env as the whole environment (os.environ too, which boto3 reads)
    and streams of its own. Returns a completed process (text), like run().

    For what a process is needed for, use run(): signals, crashes, another
    user, Sentry (its client is global). timeout is run()'s; unused here."""
    environ = env or clean_env()
    if "SENTRY_DSN" in environ:
        raise AssertionError("sentry-sdk configures the whole process: run() this one")
    main = importlib.import_module(COMMANDS[name]).main
    stdout, stderr = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in range(2))
    saved = dict(os.environ)
    _set_environ(environ)
    try:
        # argparse (--help, usage errors) prints to sys.stdout/sys.stderr.
        with process_state_kept(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            from logjam.cli import Environment

            # The in-process moto server's request log is not the command's.
            logging.getLogger("werkzeug").disabled = True
            try:
                status = main([*map(str, args)], env=Environment(stdout=stdout, stderr=stderr, environ=environ))
            except SystemExit as exit:
                status = exit.code if isinstance(exit.code, int) else 1
            except Exception:  # --log-level debug re-raises: a process prints the traceback, exits 1
                traceback.print_exc(file=stderr)
                status = 1
    finally:
        _set_environ(saved)
    return subprocess.CompletedProcess([name, *map(str, args)], int(status),
                                       *(stream.buffer.getvalue().decode() for stream in (stdout, stderr)))


class BytesOut(io.TextIOWrapper):
    """A stdout for Environment whose bytes a test reads back with getvalue()
    (logjam-cat writes bytes, to stdout's buffer)."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)

    def getvalue(self) -> bytes:
        return self.buffer.getvalue()


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    """A command run in-process (call(), main()) installs signal handlers and
    configures logging for the whole process: puts back what was there."""
    signums = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    handlers = {signum: signal.getsignal(signum) for signum in signums}
    loggers = [logging.getLogger(name) for name in ("", "logjam", "botocore", "boto3", "s3transfer", "urllib3")]
    levels = [logger.level for logger in loggers]
    root_handlers = logging.getLogger().handlers[:]
    werkzeug_disabled = logging.getLogger("werkzeug").disabled
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        from logjam import signals

        signals._signal_target = None
        logging.getLogger("werkzeug").disabled = werkzeug_disabled
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        logging.getLogger().handlers[:] = root_handlers


def _set_environ(environ: dict[str, str]) -> None:
    # Never empty on the way: the in-process S3 servers' threads read it too.
    os.environ.update(environ)
    for name in set(os.environ) - set(environ):
        del os.environ[name]


@pytest.fixture(autouse=True)
def restore_process_state():
    """No test sees another's signal handlers, log levels or log streams."""
    with process_state_kept():
        yield


def hour(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y%m%dT%H%MZ").replace(tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_proxy(s3_server):
    """A counting proxy in front of the S3 server; logjam talks to this one."""
    proxy = S3Proxy(s3_server).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def s3_client(s3_server):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def bucket(s3_client):
    name = f"logjam-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def dest(tmp_path):
    """An empty destination root for file:// uploads."""
    path = tmp_path / "dest"
    path.mkdir()
    return path


@pytest.fixture
def run_upload(capsys):
    """run_upload(*args) -> (status, stderr): logjam-upload --once in-process."""
    from logjam.upload import main as upload_main

    def upload(*args) -> tuple[int, str]:
        status = upload_main(["--once", "--jobs", "1", *map(str, args)])
        return status, capsys.readouterr().err
    return upload


@pytest.fixture
def archive(tmp_path):
    """An empty DIR/archive/, as logjam-compress leaves it for logjam-upload."""
    path = tmp_path / "logs" / "archive"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def make_logs(tmp_path):
    """Creates log files: make_logs({"app-20130727T1200Z.log": b"..."}) -> the log dir."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)

    def make(files: dict[str, bytes], directory: Path = log_dir, *, quiet_for: float = 3600) -> Path:
        # Written an hour ago unless told otherwise: quiet files, as a
        # finished hour's log is (logjam-compress waits out --min-quiet).
        then = time.time() - quiet_for
        for name, data in files.items():
            (directory / name).write_bytes(data)
            os.utime(directory / name, (then, then))
        return directory

    return make


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file below root, by relative path, with its bytes."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, *, timeout: float = 30.0, interval: float = 0.05, message: str = "condition"):
    """Polls condition() until it returns a true value; fails the test after timeout."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def authenticating_s3_server(tmp_path_factory):
    """A moto S3 server (own process) that checks credentials, as real S3 does."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def listening():
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, message="the moto server to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- a second S3 implementation: s3rver (npm) -------------------------------------

ROOT = Path(__file__).resolve().parent.parent
S3RVER = ROOT / ".s3rver" / "node_modules" / ".bin" / "s3rver"  # test_all.sh installs it
S3RVER_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"}  # the only keys it knows


@pytest.fixture(scope="session")
def s3rver_server(tmp_path_factory):
    """s3rver on a free loopback port, storing in a temporary directory, for the
    whole session. It accepts If-None-Match and overwrites anyway, and answers
    ListMultipartUploads and AbortMultipartUpload with errors (docs/stores.rst)."""
    if not S3RVER.exists():
        pytest.skip("s3rver is not installed: ./test_all.sh installs it with npm into .s3rver/")
    root = tmp_path_factory.mktemp("s3rver")
    output = root / "output.txt"
    with open(output, "wb") as out:
        # Port 0: s3rver picks a free port and names it in its first line.
        # s3rver 3.7 makes continuation tokens (a truncated LIST) with a
        # cipher OpenSSL 3 keeps in its legacy provider (Node 17+).
        env = {**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"}
        process = subprocess.Popen([str(S3RVER), "-d", str(root / "data"), "-a", "127.0.0.1", "-p", "0"],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)

    def listening():
        if process.poll() is not None:
            pytest.fail(f"s3rver exited {process.returncode}: {output.read_text(errors='replace')[-2000:]}")
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", output.read_text(errors="replace"))
        return found and found.group(1)

    try:
        port = wait_for(listening, message="s3rver to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Store:
    """One S3 implementation under test: its endpoint, a client and a fresh bucket."""

    name: str
    endpoint: str
    client: Any
    bucket: str
    credentials: dict[str, str]

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for logjam with this store's credentials."""
        return clean_env(**self.credentials, **extra)

    def objects(self) -> dict[str, bytes]:
        """Every object in the bucket: key -> bytes."""
        listed = self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {item["Key"]: self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                for item in listed}


@pytest.fixture(params=["moto", "s3rver"])
def s3_store(request) -> Store:
    """Each upload test that matters runs against moto, which honours
    If-None-Match as S3 does, and against s3rver, which ignores it."""
    return make_store(request, request.param)


def make_store(request, name: str) -> Store:
    """A fresh bucket on the S3 implementation name ("moto" or "s3rver"),
    for fixtures that choose the implementation themselves."""
    import boto3

    if name == "moto":
        endpoint = request.getfixturevalue("s3_server")
        credentials = {key: CREDENTIALS[key] for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    else:
        endpoint = request.getfixturevalue("s3rver_server")
        credentials = dict(S3RVER_CREDENTIALS)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"])
    bucket = f"logjam-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return Store(name, endpoint, client, bucket, credentials)
