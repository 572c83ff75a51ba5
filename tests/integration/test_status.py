"""logjam-status: per-stream counts from local state, for people and scripts."""

from __future__ import annotations

import datetime
import hashlib
import json

from logjam.cli import Environment
from logjam.integrity import Fingerprint
from logjam.markers import Confirmation, Destination, LedgerEntry
from logjam.status import main
from tests.conftest import call, run

NOW = datetime.datetime(2013, 7, 27, 13, 36, tzinfo=datetime.timezone.utc)


def marker(name: str, data: bytes, *, destination: Destination = Destination(scheme="file", bucket="/srv/logs")) -> bytes:
    """A marker recording data as confirmed at destination."""
    print_ = Fingerprint(len(data), hashlib.sha256(data).hexdigest())
    key = f"app/{name}"
    return LedgerEntry(name, (Confirmation(destination, key, print_, location=f"{destination}/{key}"),)).to_bytes()


def populate(log_dir):
    (log_dir / "app-20130727T1300Z.log").write_bytes(b"l" * 10)  # live (current hour)
    (log_dir / "app-20130727T1200Z.log").write_bytes(b"f" * 20)  # finished, not compressed
    (log_dir / "messages").write_bytes(b"not a log")
    archive = log_dir / "archive"
    (archive / ".uploaded").mkdir(parents=True)
    (archive / "app-20130727T1100Z.log.gz").write_bytes(b"a" * 30)  # waiting for upload
    (archive / "app-20130727T1000Z.log.gz").write_bytes(b"u" * 40)  # uploaded, kept
    (archive / ".uploaded" / "app-20130727T1000Z.log.gz").write_bytes(marker("app-20130727T1000Z.log.gz", b"u" * 40))
    (archive / "db-20130726T0000Z-r1.log.zst").write_bytes(b"z" * 5)


def test_json_counts_each_state_per_stream(tmp_path, capsys):
    populate(tmp_path)
    assert main(["--json", str(tmp_path)], env=Environment(clock=lambda: NOW)) == 0
    [report] = json.loads(capsys.readouterr().out)
    streams = {entry["stream"]: entry for entry in report["streams"]}
    assert sorted(streams) == ["app-*.log", "db-*-r1.log"]
    app = streams["app-*.log"]
    assert app["live"] == {"files": 1, "bytes": 10}
    assert app["finished"] == {"files": 1, "bytes": 20}
    assert app["archived"] == {"files": 1, "bytes": 30}
    assert app["uploaded"] == {"files": 1, "bytes": 40}
    assert app["oldest_waiting"] == "2013-07-27T11:00:00Z"
    assert app["oldest_waiting_age_seconds"] == 2 * 3600 + 36 * 60
    assert streams["db-*-r1.log"]["archived"] == {"files": 1, "bytes": 5}


def test_table_for_people(tmp_path, capsys):
    populate(tmp_path)
    assert main([str(tmp_path)], env=Environment(clock=lambda: NOW)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path}:"
    assert lines[1].split() == ["STREAM", "LIVE", "TO", "COMPRESS", "TO", "UPLOAD", "UPLOADED,", "KEPT", "OLDEST", "WAITING"]
    assert lines[2].split() == ["app-*.log", "1", "(10", "B)", "1", "(20", "B)", "1", "(30", "B)", "1", "(40", "B)", "2h36m"]
    assert lines[-2:] == ["  kept files recorded as uploaded, per destination:", "    file:///srv/logs: 1 (40 B)"]


def test_reads_only(tmp_path):
    populate(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run("logjam-status", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "app-*.log" in result.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_missing_directory_is_a_usage_error(tmp_path):
    result = call("logjam-status", tmp_path / "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == f"logjam-status: error: {tmp_path / 'nope'}: no such directory"


def test_check_looks_up_each_kept_upload_at_the_destination(tmp_path, s3_proxy, s3_client, bucket):
    import gzip

    from tests.conftest import clean_env
    from tests.integration.test_upload_s3 import TEMPLATE

    log_dir = tmp_path / "logs"
    archive = log_dir / "archive"
    archive.mkdir(parents=True)
    for hour in ("10", "11"):
        (archive / f"app-20130727T{hour}00Z.log.gz").write_bytes(gzip.compress(hour.encode()))
    uri = f"s3://{bucket}/{TEMPLATE}"
    assert call("logjam-upload", "--once", "--endpoint-url", s3_proxy.url, archive, uri).returncode == 0
    s3_client.delete_object(Bucket=bucket, Key="app/2013/07/27/app-20130727T1000Z.log.gz")
    s3_proxy.clear()

    result = call("logjam-status", "--json", "--check", uri, "--endpoint-url", s3_proxy.url, log_dir,
                  env=clean_env())

    assert result.returncode == 1, result.stderr  # a kept upload missing at the destination is a problem
    assert result.stderr == (f"logjam-status: {archive}/app-20130727T1000Z.log.gz: s3://{bucket}/"
                             "app/2013/07/27/app-20130727T1000Z.log.gz: missing at the destination\n")
    [report] = json.loads(result.stdout)
    [app] = report["streams"]
    assert app["uploaded"]["files"] == 2
    assert app["missing"]["files"] == 1
    assert app["unconfirmed"]["files"] == 0
    # One HEAD of the bucket (a mistyped one is a usage error), one per kept file.
    assert sorted(s3_proxy.calls()) == [("HEAD", f"/{bucket}"), ("HEAD", f"/{bucket}/app/2013/07/27/app-20130727T1000Z.log.gz"),
                                        ("HEAD", f"/{bucket}/app/2013/07/27/app-20130727T1100Z.log.gz")]
    local_only = call("logjam-status", "--json", log_dir)
    assert json.loads(local_only.stdout)[0]["streams"][0]["missing"] is None
