"""logjam-status: per-stream counts from local state, for people and scripts."""

from __future__ import annotations

import datetime
import json

from logjam.status import main
from tests.conftest import run

NOW = datetime.datetime(2013, 7, 27, 13, 36, tzinfo=datetime.timezone.utc)


def populate(log_dir):
    (log_dir / "app-20130727T1300Z.log").write_bytes(b"l" * 10)  # live (current hour)
    (log_dir / "app-20130727T1200Z.log").write_bytes(b"f" * 20)  # finished, not compressed
    (log_dir / "messages").write_bytes(b"not a log")
    archive = log_dir / "archive"
    (archive / ".uploaded").mkdir(parents=True)
    (archive / "app-20130727T1100Z.log.gz").write_bytes(b"a" * 30)  # waiting for upload
    (archive / "app-20130727T1000Z.log.gz").write_bytes(b"u" * 40)  # uploaded, kept
    (archive / ".uploaded" / "app-20130727T1000Z.log.gz").write_text("key=x\n")
    (archive / "db-20130726T0000Z-r1.log.zst").write_bytes(b"z" * 5)


def test_json_counts_each_state_per_stream(tmp_path, capsys):
    populate(tmp_path)
    assert main(["--json", str(tmp_path)], clock=lambda: NOW) == 0
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
    assert main([str(tmp_path)], clock=lambda: NOW) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path}:"
    assert lines[1].split() == ["STREAM", "LIVE", "TO", "COMPRESS", "TO", "UPLOAD", "UPLOADED,", "KEPT", "OLDEST", "WAITING"]
    assert lines[2].split() == ["app-*.log", "1", "(10", "B)", "1", "(20", "B)", "1", "(30", "B)", "1", "(40", "B)", "2h36m"]


def test_reads_only(tmp_path):
    populate(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run("logjam-status", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "app-*.log" in result.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_missing_directory_is_a_usage_error(tmp_path):
    result = run("logjam-status", tmp_path / "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == f"logjam-status: error: {tmp_path / 'nope'}: no such directory"
