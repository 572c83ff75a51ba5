"""Metrics files, JSON logs: what operators read."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import call
from tests.s3proxy import S3Proxy


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
    result = call("logjam-compress", "--once", "--metrics-file", path, log_dir)

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

    result = call("logjam-upload", "--once", "--metrics-file", path, archive,
                 f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}")

    assert result.returncode == 1
    values = metrics(path)
    assert values["logjam_errors_total"] == 2
    assert values["logjam_pending_files"] == 2
    assert values["logjam_files_total"] == 0
    assert "logjam_last_success_timestamp_seconds" not in values or values["logjam_last_success_timestamp_seconds"] == 0

    blocker.unlink()
    assert call("logjam-upload", "--once", "--metrics-file", path, archive,
               f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}").returncode == 0
    values = metrics(path)
    assert values["logjam_files_total"] == 2 and values["logjam_bytes_total"] == 30
    assert values["logjam_pending_files"] == 0


def test_json_log_format_is_one_object_per_line(make_logs):
    log_dir = make_logs({"app-20130727T1200Z.log": b"x\n"})
    result = call("logjam-compress", "--once", "--log-format", "json", log_dir)
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()
    entries = [json.loads(line) for line in lines]
    assert any(entry["message"].startswith(f"compressed {log_dir}/app-20130727T1200Z.log") for entry in entries)
    assert all(set(entry) >= {"time", "level", "logger", "message"} for entry in entries)
    assert all(entry["time"].endswith("Z") for entry in entries)


# -- metrics that alert during an outage ------------------------------------------

# The alert rules moved with the metrics from the README to docs/operations.rst.
README = Path(__file__).resolve().parents[2] / "docs" / "operations.rst"
S3_TEMPLATE = "s3://{bucket}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}"


def readme_alert_rules() -> dict[str, str]:
    """The alert rules of the documented Prometheus example (docs/operations.rst): {name: expr}."""
    text = README.read_text()
    names = re.findall(r"^\s+- alert: (\w+)$", text, re.MULTILINE)
    exprs = re.findall(r"^\s+expr: (.+)$", text, re.MULTILINE)
    assert names and len(names) == len(exprs)
    return dict(zip(names, exprs))


def fires(expr: str, values: dict[str, float], *, now: float, file_mtime: float) -> bool:
    """Evaluates a README alert expression the way Prometheus would for one
    series: a metric that is absent gives no result, so the alert cannot fire."""
    selectors = {"time()": now}
    python = expr.replace("time()", "now")
    python = re.sub(r'node_textfile_mtime_seconds\{[^}]*\}', "mtime", python)
    names = set(re.findall(r"\blogjam_\w+", python))
    if any(name not in values for name in names):
        return False
    namespace = {"now": selectors["time()"], "mtime": file_mtime, **{name: values[name] for name in names}}
    return bool(eval(python, {"__builtins__": {}}, namespace))  # noqa: S307 - our own README


def test_readme_alerts_fire_after_failed_runs(tmp_path, bucket, s3_server):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    (archive / "db-20130727T1200Z.log.gz").write_bytes(b"x" * 10)
    path = tmp_path / "logjam-upload.prom"
    uri = S3_TEMPLATE.format(bucket=bucket)

    # The outage: the same endpoint stops answering (another endpoint
    # would be another destination, with the first file not uploaded there).
    proxy = S3Proxy(s3_server).start()
    endpoint = proxy.url
    ok = call("logjam-upload", "--once", "--metrics-file", path, "--endpoint-url", endpoint, archive, uri)
    proxy.stop()
    assert ok.returncode == 0, ok.stderr
    last_success = metrics(path)["logjam_last_success_timestamp_seconds"]
    (archive / "db-20130727T1300Z.log.gz").write_bytes(b"y" * 20)
    (archive / "db-20130727T1400Z.log.gz").write_bytes(b"z" * 30)

    for run_number in (1, 2):  # an outage: the endpoint does not answer, run after run
        failed = call("logjam-upload", "--once", "--metrics-file", path, "--retries", "1",
                     "--endpoint-url", endpoint, archive, uri)
        assert failed.returncode == 1, failed.stderr
        values = metrics(path)
        assert values["logjam_pending_files"] == 2  # what is really waiting
        assert values["logjam_oldest_pending_age_seconds"] >= time.time() - 1374930000 - 5  # 13:00 UTC
        assert values["logjam_last_success_timestamp_seconds"] == last_success  # kept across runs
        assert values["logjam_last_failure_timestamp_seconds"] > last_success
        assert values["logjam_consecutive_failed_passes"] == run_number

    rules = readme_alert_rules()
    now = time.time()
    mtime = path.stat().st_mtime
    assert fires(rules["LogjamBacklog"], values, now=now, file_mtime=mtime)
    assert not fires(rules["LogjamFailing"], values, now=now, file_mtime=mtime)  # 2 failed runs in a row
    values["logjam_consecutive_failed_passes"] = 3  # the next one
    assert fires(rules["LogjamFailing"], values, now=now, file_mtime=mtime)
    # Three hours into the outage, with a run every five minutes still failing:
    assert fires(rules["LogjamNoSuccess"], values, now=last_success + 3 * 3600 + 60, file_mtime=mtime)
    assert not fires(rules["LogjamNoSuccess"], values, now=last_success + 60, file_mtime=mtime)
    assert not fires(rules["LogjamMetricsStale"], values, now=now, file_mtime=mtime)

    # Back to normal: the backlog goes out and the failure run ends.
    ok = call("logjam-upload", "--once", "--metrics-file", path, "--endpoint-url", s3_server, archive, uri)
    assert ok.returncode == 0, ok.stderr
    values = metrics(path)
    assert values["logjam_pending_files"] == 0
    assert values["logjam_consecutive_failed_passes"] == 0
    assert values["logjam_last_success_timestamp_seconds"] > last_success
    assert not fires(rules["LogjamBacklog"], values, now=time.time(), file_mtime=mtime)
    assert not fires(rules["LogjamNoSuccess"], values, now=time.time(), file_mtime=mtime)


def test_a_setup_that_never_worked_alerts_too(tmp_path, unused_port):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    (archive / "db-20130727T1200Z.log.gz").write_bytes(b"x")
    path = tmp_path / "logjam-upload.prom"

    failed = call("logjam-upload", "--once", "--metrics-file", path, "--retries", "1",
                 "--endpoint-url", f"http://127.0.0.1:{unused_port}", archive, S3_TEMPLATE.format(bucket="b"))

    assert failed.returncode == 1, failed.stderr
    values = metrics(path)
    assert values["logjam_last_success_timestamp_seconds"] == 0  # never: written, not absent
    assert values["logjam_pending_files"] == 1
    assert fires(readme_alert_rules()["LogjamNoSuccess"], values, now=time.time(), file_mtime=time.time())


def test_refused_credentials_under_once_still_write_the_metrics(tmp_path, authenticating_s3_server):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    (archive / "db-20130727T1200Z.log.gz").write_bytes(b"x")
    path = tmp_path / "logjam-upload.prom"

    failed = call("logjam-upload", "--once", "--metrics-file", path, "--retries", "1",
                 "--endpoint-url", authenticating_s3_server, archive, S3_TEMPLATE.format(bucket="bucket"))

    assert failed.returncode == 2, failed.stderr
    values = metrics(path)
    assert values["logjam_errors_total"] == 1
    assert values["logjam_pending_files"] == 1
    assert values["logjam_consecutive_failed_passes"] == 1


def test_compress_failed_directory_counts_its_finished_files(make_logs, tmp_path):
    log_dir = make_logs({"app-20130727T1200Z.log": b"a", "app-20130727T1300Z.log": b"b"})
    (log_dir / "archive").write_text("a file where the archive directory should be")
    path = tmp_path / "compress.prom"

    result = call("logjam-compress", "--once", "--metrics-file", path, log_dir)

    assert result.returncode == 2, result.stderr  # a configuration error (#8): exit 2, metrics still written
    values = metrics(path)
    assert values["logjam_pending_files"] == 2
    assert values["logjam_oldest_pending_age_seconds"] >= time.time() - 1374926400 - 5


def test_metrics_read_back_ignore_another_commands_values(tmp_path):
    from logjam.monitoring import read_kept_metrics

    path = tmp_path / "x.prom"
    path.write_text('logjam_last_success_timestamp_seconds{command="compress"} 5.0\n'
                    'logjam_consecutive_failed_passes{command="upload"} 7.0\n')
    assert read_kept_metrics(str(path), command="upload") == {"logjam_consecutive_failed_passes": 7.0}
    path.write_text("this is { not a metrics file\n")
    assert read_kept_metrics(str(path), command="upload") == {}
    assert read_kept_metrics(str(tmp_path / "missing.prom"), command="upload") == {}


# -- structured JSON logs ----------------------------------------------------------

def json_records(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.strip().splitlines()]


def test_json_records_carry_fields_for_compressed_and_skipped_and_failed(make_logs):
    log_dir = make_logs({"app-20130727T1200Z.log": b"x" * 100, "web-20130727T1200Z.log": b"w\n",
                         "db-20130727T1200Z.log": b"d\n"})
    os.utime(log_dir / "web-20130727T1200Z.log")  # just written: waits for --min-quiet
    (log_dir / "db-20130727T1200Z.log").chmod(0)  # root reads it anyway: no failure then
    unreadable = not os.access(log_dir / "db-20130727T1200Z.log", os.R_OK)

    result = call("logjam-compress", "--once", "--log-format", "json", log_dir)

    events = {(entry.get("event"), entry.get("file")): entry for entry in json_records(result.stderr)}
    done = events["compressed", f"{log_dir}/app-20130727T1200Z.log"]
    assert done["destination"] == f"{log_dir}/archive/app-20130727T1200Z.log.gz"
    assert done["bytes_in"] == 100 and 0 < done["bytes_out"] < 100
    assert done["duration"] >= 0
    assert "--min-quiet" in events["skipped", f"{log_dir}/web-20130727T1200Z.log"]["error"]
    if unreadable:
        assert "Permission denied" in events["failed", f"{log_dir}/db-20130727T1200Z.log"]["error"]


def test_json_records_carry_fields_for_uploaded_and_failed(tmp_path):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    (archive / "db-20130727T1200Z.log.gz").write_bytes(b"x" * 10)
    (archive / "web-20130727T1200Z.log.gz").write_bytes(b"y" * 20)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "web").write_text("a file where a folder should be")

    result = call("logjam-upload", "--once", "--log-format", "json", archive,
                 f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}")

    assert result.returncode == 1, result.stderr
    events = {entry.get("event"): entry for entry in json_records(result.stderr)}
    up = events["uploaded"]
    assert up["file"] == f"{archive}/db-20130727T1200Z.log.gz"
    assert up["destination"] == f"file://{dest}/db/2013/07/27/db-20130727T1200Z.log.gz"
    assert up["bytes_in"] == up["bytes_out"] == 10
    assert up["duration"] >= 0
    assert events["failed"]["file"] == f"{archive}/web-20130727T1200Z.log.gz"
    assert events["failed"]["error"]
    assert events["failed"]["level"] == "error"
