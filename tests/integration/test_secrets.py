"""Credentials never reach a log line, an exception message or Sentry.

Both commands run at ``--log-level debug`` with sentinel credential values,
on the paths that succeed and on the paths that fail, with SENTRY_DSN
pointing at a fake Sentry collector on loopback; the sentinels must appear
nowhere in stdout, stderr, the ledger or any body the collector received.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import threading
import zlib

import pytest

from tests.conftest import call, clean_env, run, tree, wait_for

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
NAME = "db-20130727T1200Z.log.gz"
OLD = "app-20130727T1200Z.log"

SENTINELS = {
    "AWS_ACCESS_KEY_ID": "AKIASENTINEL0000KEY1",
    "AWS_SECRET_ACCESS_KEY": "sentinel-secret-4f1c9e2a7b3d-do-not-log",
    "AWS_SESSION_TOKEN": "sentinel-session-token-8d2b7c51e6a0-do-not-log",
}
# The values, and distinctive pieces of them (a truncated or re-encoded value is a leak too).
LEAKS = [*SENTINELS.values(), "SENTINEL0000KEY1", "4f1c9e2a7b3d", "8d2b7c51e6a0"]


def leaks(text: str | bytes) -> list[str]:
    """The sentinel pieces found in text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [piece for piece in LEAKS if piece in text]


# -- a fake Sentry on loopback ---------------------------------------------------------

class FakeSentry:
    """Accepts what sentry-sdk sends (envelopes, gzip-compressed or not) and keeps the bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    elif encoding == "br":
                        import brotli

                        body = brotli.decompress(body)
                    elif encoding:
                        raise ValueError(f"unknown Content-Encoding {encoding!r}")
                except Exception as error:  # the test reports it; the SDK gets its 200
                    with owner._lock:
                        owner.problems.append(f"{self.path}: cannot decode the body: {error!r}")
                with owner._lock:
                    owner.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://publickey@{host}:{port}/1"

    def received(self) -> list[bytes]:
        with self._lock:
            assert not self.problems, self.problems
            return list(self.bodies)

    def events(self) -> list[dict]:
        """The event items of every envelope received."""
        return [json.loads(payload) for body in self.received()
                for kind, payload in envelope_items(body) if kind == "event"]


def envelope_items(body: bytes) -> list[tuple[str | None, bytes]]:
    """Splits a Sentry envelope into (item type, payload) pairs."""
    _header, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        item_header, _, rest = rest.partition(b"\n")
        header = json.loads(item_header)
        length = header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:].removeprefix(b"\n")
        items.append((header.get("type"), payload))
    return items


@pytest.fixture
def sentry():
    collector = FakeSentry()
    collector.thread.start()
    yield collector
    collector.server.shutdown()
    collector.server.server_close()


def secret_env(sentry: FakeSentry, **extra: str) -> dict[str, str]:
    return clean_env(**SENTINELS, SENTRY_DSN=sentry.dsn, **extra)


def assert_no_leak(result, *more: tuple[str, str | bytes], sentry: FakeSentry | None = None) -> None:
    """No sentinel in the output, the more (name, text) places, or (if given) what Sentry received."""
    places = [("stdout", result.stdout), ("stderr", result.stderr), *more]
    if sentry is not None:
        places += [(f"Sentry body {number}", body) for number, body in enumerate(sentry.received())]
    found = {name: leaks(text) for name, text in places if leaks(text)}
    assert found == {}, f"credentials leaked: {found}"


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "logs" / "archive"
    path.mkdir(parents=True)
    (path / NAME).write_bytes(gzip.compress(b"a line\n", mtime=0))
    return path


def upload(archive, uri: str, env: dict, *extra: str):
    return run("logjam-upload", "--once", "--log-level", "debug", *extra, archive, uri, env=env)


# -- the commands' own output ------------------------------------------------------------

def test_upload_that_succeeds_prints_no_credential(archive, bucket, s3_proxy, sentry):
    result = upload(archive, f"s3://{bucket}/{TEMPLATE}", secret_env(sentry), "--endpoint-url", s3_proxy.url)

    assert result.returncode == 0, result.stderr
    assert f"uploaded {archive}/{NAME}" in result.stderr
    # The sentinels were really in use: they went out on the wire, signed.
    put = s3_proxy.requests[-1]
    headers = {key.lower(): value for key, value in put.headers.items()}
    assert f"Credential={SENTINELS['AWS_ACCESS_KEY_ID']}/" in headers["authorization"]
    assert headers["x-amz-security-token"] == SENTINELS["AWS_SESSION_TOKEN"]
    ledger = tree(archive / ".uploaded")
    assert ledger, "nothing recorded"
    assert_no_leak(result, *((f"ledger {name}", data) for name, data in ledger.items()), sentry=sentry)


@pytest.mark.parametrize(
    "failure, status, says",
    [
        pytest.param("refused-credentials", 2, "refused the credentials", id="refused-credentials"),
        pytest.param("unreachable-endpoint", 1, "cannot reach S3 endpoint", id="unreachable-endpoint"),
        pytest.param("missing-bucket", 2, "does not exist", id="missing-bucket"),
    ],
)
def test_upload_that_fails_prints_no_credential(archive, sentry, failure, status, says, request):
    if failure == "refused-credentials":
        endpoint, bucket = request.getfixturevalue("authenticating_s3_server"), "bucket"
    elif failure == "unreachable-endpoint":
        endpoint, bucket = f"http://127.0.0.1:{request.getfixturevalue('unused_port')}", "bucket"
    else:
        endpoint, bucket = request.getfixturevalue("s3_proxy").url, "no-such-bucket-for-secrets"

    result = upload(archive, f"s3://{bucket}/{TEMPLATE}", secret_env(sentry),
                    "--endpoint-url", endpoint, "--retries", "1")

    assert result.returncode == status, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_leak(result, sentry=sentry)


@pytest.mark.parametrize("outcome", ["compressed", "missing-dir"])
def test_compress_prints_no_credential(make_logs, tmp_path, sentry, outcome):
    log_dir = make_logs({OLD: b"a line\n"}) if outcome == "compressed" else tmp_path / "missing"

    result = run("logjam-compress", "--once", "--log-level", "debug", log_dir, env=secret_env(sentry))

    if outcome == "compressed":
        assert result.returncode == 0, result.stderr
        assert f"compressed {log_dir}/{OLD}" in result.stderr
    else:
        assert result.returncode == 2
        assert "no such directory" in result.stderr
    assert_no_leak(result, sentry=sentry)


# -- Sentry ----------------------------------------------------------------------------------

def mentions(event: dict, text: str) -> bool:
    return text in json.dumps(event, ensure_ascii=False)


def test_failed_upload_reaches_sentry_without_credentials(archive, sentry, unused_port):
    result = upload(archive, f"s3://bucket/{TEMPLATE}", secret_env(sentry),
                    "--endpoint-url", f"http://127.0.0.1:{unused_port}", "--retries", "1")

    assert result.returncode == 1, result.stderr
    events = wait_for(sentry.events, timeout=5, message="an event at the fake Sentry")
    assert any(mentions(event, "cannot reach S3 endpoint") for event in events), events
    assert all(event.get("release", "").startswith("logjam@") for event in events)
    assert_no_leak(result, sentry=sentry)


def test_refused_credentials_reach_sentry_without_credentials(archive, sentry, authenticating_s3_server):
    result = upload(archive, f"s3://bucket/{TEMPLATE}", secret_env(sentry),
                    "--endpoint-url", authenticating_s3_server)

    assert result.returncode == 2, result.stderr
    events = wait_for(sentry.events, timeout=5, message="an event at the fake Sentry")
    assert any(mentions(event, "refused the credentials") for event in events), events
    assert_no_leak(result, sentry=sentry)


# An unexpected error deep inside botocore, after the request was signed: a
# bug, a MemoryError, an exception a library forgot to wrap.
BREAK_BOTOCORE = """\
import botocore.httpsession

def send(self, request):
    raise RuntimeError("injected failure inside botocore, after signing")

botocore.httpsession.URLLib3Session.send = send
"""


@pytest.fixture
def broken_botocore(tmp_path):
    path = tmp_path / "inject"
    path.mkdir()
    (path / "sitecustomize.py").write_text(BREAK_BOTOCORE)
    return str(path)


def test_unexpected_error_inside_botocore_prints_no_credential(archive, sentry, broken_botocore, unused_port):
    result = upload(archive, f"s3://bucket/{TEMPLATE}", secret_env(sentry, PYTHONPATH=broken_botocore),
                    "--endpoint-url", f"http://127.0.0.1:{unused_port}")

    assert result.returncode == 1, result.stderr
    assert "injected failure inside botocore" in result.stderr  # at debug: the traceback, to stderr
    assert_no_leak(result)  # what reaches Sentry is the next test's


def test_unexpected_error_inside_botocore_reaches_sentry_without_credentials(
    archive, sentry, broken_botocore, unused_port
):
    result = upload(archive, f"s3://bucket/{TEMPLATE}", secret_env(sentry, PYTHONPATH=broken_botocore),
                    "--endpoint-url", f"http://127.0.0.1:{unused_port}")

    assert result.returncode == 1, result.stderr
    events = wait_for(sentry.events, timeout=5, message="an event at the fake Sentry")
    assert any(mentions(event, "injected failure inside botocore") for event in events), events
    assert_no_leak(result, sentry=sentry)


# -- SENTRY_DSN set, sentry-sdk missing --------------------------------------------------------

@pytest.fixture
def without_sentry_sdk(tmp_path):
    """A PYTHONPATH entry that shadows sentry_sdk with a module failing to import."""
    path = tmp_path / "no-sentry"
    path.mkdir()
    (path / "sentry_sdk.py").write_text('raise ImportError("No module named \'sentry_sdk\' (test stub)")\n')
    return str(path)


@pytest.mark.parametrize("command", ["logjam-compress", "logjam-upload"])
def test_dsn_without_sentry_sdk_warns_in_one_line_and_carries_on(make_logs, tmp_path, sentry, without_sentry_sdk,
                                                                    command):
    log_dir = make_logs({OLD: b"a line\n"})
    env = secret_env(sentry, PYTHONPATH=without_sentry_sdk)
    if command == "logjam-compress":
        args = [log_dir]
    else:
        assert call("logjam-compress", "--once", log_dir).returncode == 0
        dest = tmp_path / "dest"
        dest.mkdir()
        args = [log_dir / "archive", f"file://{dest}/{TEMPLATE}"]

    result = run(command, "--once", *args, env=env)

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines()
                if " INFO " not in line and "nor {suffix}" not in line]  # shared keys: test_fleet.py
    assert len(warnings) == 1, result.stderr
    assert warnings[0].endswith(" WARNING SENTRY_DSN is set but sentry-sdk is not installed (pip install sentry-sdk)")
    if command == "logjam-compress":
        assert os.listdir(log_dir / "archive") == [OLD + ".gz"]
        assert not (log_dir / OLD).exists()
    else:
        assert os.listdir(log_dir / "archive" / ".uploaded") == [OLD + ".gz"]
    assert sentry.received() == []
