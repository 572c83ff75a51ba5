"""Metrics files, JSON logs: what operators read."""

from __future__ import annotations

import json
import time

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run


def metrics(path) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            values[sample.name] = sample.value
            assert sample.labels.get("command") in ("compress", "upload")
    return values


def test_compress_writes_prometheus_metrics(make_logs, tmp_path):
    log_dir = make_logs({
        "app-20130727T1200Z.log": b"a" * 1000,
        "app-20130727T1300Z.log": b"b" * 500,
        "web-20130727T1200Z.log": b"fresh\n",
    })
    import os
    os.utime(log_dir / "web-20130727T1200Z.log")  # just written: waits for --min-quiet
    path = tmp_path / "compress.prom"

    started = time.time()
    result = run("logjam-compress", "--once", "--metrics-file", path, log_dir)

    assert result.returncode == 0, result.stderr
    values = metrics(path)
    assert values["logjam_files_total"] == 2
    assert values["logjam_bytes_total"] == 1500
    assert values["logjam_errors_total"] == 0
    assert values["logjam_pending_files"] == 1
    hour = 1374926400  # 2013-07-27T12:00Z
    assert started - hour - 5 <= values["logjam_oldest_pending_age_seconds"] <= time.time() - hour + 5
    assert values["logjam_last_success_timestamp_seconds"] >= started - 1
    assert values["logjam_pass_duration_seconds"] >= 0
    assert not [p for p in tmp_path.iterdir() if p.name != "compress.prom" and p.name.startswith("compress.prom")]


def test_upload_metrics_count_errors_and_pending(tmp_path):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    (archive / "db-20130727T1200Z.log.gz").write_bytes(b"x" * 10)
    (archive / "db-20130727T1300Z.log.gz").write_bytes(b"y" * 20)
    dest = tmp_path / "dest"
    dest.mkdir()
    blocker = dest / "db"
    blocker.write_text("a file where a folder should be")
    path = tmp_path / "upload.prom"

    result = run("logjam-upload", "--once", "--metrics-file", path, archive,
                 f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}")

    assert result.returncode == 1
    values = metrics(path)
    assert values["logjam_errors_total"] == 2
    assert values["logjam_pending_files"] == 2
    assert values["logjam_files_total"] == 0
    assert "logjam_last_success_timestamp_seconds" not in values or values["logjam_last_success_timestamp_seconds"] == 0

    blocker.unlink()
    assert run("logjam-upload", "--once", "--metrics-file", path, archive,
               f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}").returncode == 0
    values = metrics(path)
    assert values["logjam_files_total"] == 2 and values["logjam_bytes_total"] == 30
    assert values["logjam_pending_files"] == 0


def test_json_log_format_is_one_object_per_line(make_logs):
    log_dir = make_logs({"app-20130727T1200Z.log": b"x\n"})
    result = run("logjam-compress", "--once", "--log-format", "json", log_dir)
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()
    entries = [json.loads(line) for line in lines]
    assert any(entry["message"].startswith(f"compressed {log_dir}/app-20130727T1200Z.log") for entry in entries)
    assert all(set(entry) >= {"time", "level", "logger", "message"} for entry in entries)
    assert all(entry["time"].endswith("Z") for entry in entries)
