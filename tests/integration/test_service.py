"""Loop mode and signals, with real processes and real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from logjam import __version__
from logjam.errors import ExitStatus
from logjam.runner import PassStats
from logjam.runner import run as run_service
from logjam.signals import Stop
from tests.conftest import clean_env, script, wait_for

OLD = "app-20130727T1200Z.log"


def start(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([script(args[0]), *map(str, args[1:])], env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def finish(process: subprocess.Popen, *, within: float) -> tuple[int, str]:
    try:
        _, stderr = process.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"process did not exit within {within}s")
    return process.returncode, stderr


def test_compress_loop_keeps_working_and_stops_cleanly_on_sigterm(make_logs):
    log_dir = make_logs({OLD: b"first\n"})
    process = start("logjam-compress", "--interval", "1", log_dir)
    wait_for(lambda: (log_dir / "archive" / (OLD + ".gz")).exists(), message="the first pass")
    make_logs({"app-20130727T1300Z.log": b"second\n"})
    wait_for(lambda: (log_dir / "archive" / "app-20130727T1300Z.log.gz").exists(), message="a later pass")

    process.send_signal(signal.SIGTERM)
    status, stderr = finish(process, within=5)

    assert status == 0, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    started = [line for line in lines if " started: " in line]
    assert len(started) == 1, stderr
    assert f"logjam-compress {__version__} started: {log_dir}, a pass every 1 s" in started[0]
    assert lines[-1].endswith("logjam-compress stopped by SIGTERM; exit status 0"), stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_once_interrupted_mid_file_rolls_back_and_exits_128_plus_signal(make_logs, signum):
    big = os.urandom(256 * 1024 * 1024)
    log_dir = make_logs({OLD: big})
    archive = log_dir / "archive"
    process = start("logjam-compress", "--once", "--level", "9", log_dir)
    wait_for(lambda: archive.exists() and any(".logjam-tmp-" in n for n in os.listdir(archive)),
             message="compression to start")

    process.send_signal(signum)
    status, stderr = finish(process, within=5)

    assert status == 128 + signum, stderr
    assert os.listdir(archive) == []  # no temporary file, nothing half-written
    assert (log_dir / OLD).stat().st_size == len(big)
    assert (log_dir / OLD).read_bytes() == big


def test_upload_loop_stops_cleanly_on_sigterm(tmp_path):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    (archive / "db-20130727T1200Z.log.gz").write_bytes(b"x")
    process = start("logjam-upload", "--interval", "1", archive, f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}")
    wait_for(lambda: (archive / ".uploaded" / "db-20130727T1200Z.log.gz").exists(), message="the upload")

    process.send_signal(signal.SIGTERM)
    status, stderr = finish(process, within=5)

    assert status == 0, stderr
    assert (dest / "db/2013/07/27/db-20130727T1200Z.log.gz").read_bytes() == b"x"
    assert f"started: {archive} -> file://{dest}/{{prefix}}/" in stderr
    assert stderr.splitlines()[-1].endswith("logjam-upload stopped by SIGTERM; exit status 0"), stderr


def test_loop_start_line_names_no_credentials_and_sighup_stops_like_sigterm(tmp_path):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    process = start("logjam-upload", "--interval", "60", "--endpoint-url", "http://key:secret@127.0.0.1:9",
                    archive, "s3://bucket/{prefix}/{year}/{month}/{day}/{filename}")
    wait_for(lambda: (archive / ".logjam-upload.lock").exists(), message="the first pass")

    process.send_signal(signal.SIGHUP)  # a closed terminal, sv hup
    status, stderr = finish(process, within=5)

    assert status == 0, stderr
    assert "(endpoint http://127.0.0.1:9)" in stderr
    assert "secret" not in stderr
    assert stderr.splitlines()[-1].endswith("logjam-upload stopped by SIGHUP; exit status 0"), stderr


def test_an_ignored_sighup_stays_ignored(make_logs):
    log_dir = make_logs({OLD: b"first\n"})
    process = start("logjam-compress", "--interval", "1", log_dir,
                    preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # nohup
    wait_for(lambda: (log_dir / "archive" / (OLD + ".gz")).exists(), message="the first pass")

    process.send_signal(signal.SIGHUP)
    make_logs({"app-20130727T1300Z.log": b"second\n"})
    wait_for(lambda: (log_dir / "archive" / "app-20130727T1300Z.log.gz").exists(), message="a later pass")
    assert process.poll() is None

    process.send_signal(signal.SIGTERM)
    status, stderr = finish(process, within=5)
    assert status == 0, stderr


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_bad_interval_is_a_usage_error(tmp_path, value):
    result = subprocess.run([script("logjam-compress"), "--interval", value, str(tmp_path)],
                            capture_output=True, text=True, env=clean_env(), timeout=30)
    assert result.returncode == 2
    assert "--interval" in result.stderr


def test_loop_sleeps_at_least_one_second_between_passes():
    stop = Stop()
    starts: list[float] = []

    def job(_stop):
        starts.append(time.monotonic())
        if len(starts) == 3:
            stop.request(signal.SIGTERM)
        return PassStats()

    assert run_service(job, once=False, interval=0.01, stop=stop) == ExitStatus.SUCCESS
    assert len(starts) == 3
    assert all(later - earlier >= 0.99 for earlier, later in zip(starts, starts[1:]))


def test_loop_interval_is_timed_from_the_start_of_each_pass():
    stop = Stop()
    starts: list[float] = []

    def job(_stop):
        starts.append(time.monotonic())
        time.sleep(0.6)  # the pass itself takes time: the work, not synchronisation
        if len(starts) == 2:
            stop.request(signal.SIGTERM)
        return PassStats()

    run_service(job, once=False, interval=1.5, stop=stop)
    assert 1.45 <= starts[1] - starts[0] < 2.0


def test_once_failure_is_exit_1_and_success_exit_0():
    # Every job reports PassStats (one result type): its errors decide the exit status.
    assert run_service(lambda stop: PassStats(errors=1), once=True, interval=60, stop=Stop()) == ExitStatus.ERROR
    assert run_service(lambda stop: PassStats(), once=True, interval=60, stop=Stop()) == ExitStatus.SUCCESS


def test_stop_within_5_seconds_even_while_s3_does_not_answer(tmp_path):
    import socket
    import threading

    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    (archive / "db-20130727T1200Z.log.gz").write_bytes(b"x" * 1000)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    received = bytearray()

    def drain(connection):
        while chunk := connection.recv(65536):
            received.extend(chunk)

    def accept_and_hold():  # reads whole requests, never answers
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)
            threading.Thread(target=drain, args=(connection,), daemon=True).start()

    threading.Thread(target=accept_and_hold, daemon=True).start()
    port = server.getsockname()[1]
    process = start("logjam-upload", "--once", "--endpoint-url", f"http://127.0.0.1:{port}",
                    "--conditional-writes", "off",  # straight to the file's PUT, no probe first
                    archive, "s3://bucket/{prefix}/{year}/{month}/{day}/{filename}")
    try:
        # The whole body is sent: logjam now only waits for a reply that never comes.
        wait_for(lambda: received.count(b"x" * 1000), message="the request body to arrive")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status, stderr = finish(process, within=6)
        assert time.monotonic() - started < 5.5
    finally:
        server.close()
        for connection in held:
            connection.close()

    assert status == 128 + signal.SIGTERM, stderr
    assert "exiting now" in stderr
    assert not (archive / ".uploaded").exists()


def test_sighup_mid_multipart_upload_aborts_it_and_records_nothing(tmp_path, s3_server, s3_client, bucket):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    (archive / "db-20130727T1200Z.log.gz").write_bytes(os.urandom(20 * 1024 * 1024))
    process = start("logjam-upload", "--once", "--endpoint-url", s3_server, "--multipart-threshold", "5MiB",
                    "--max-bandwidth", "4MiB", archive, f"s3://{bucket}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}")
    wait_for(lambda: s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads"),
             message="the multipart upload to start")

    process.send_signal(signal.SIGHUP)
    status, stderr = finish(process, within=6)

    assert status == 128 + signal.SIGHUP, stderr
    assert "stopped by SIGHUP" in stderr
    assert not s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert not (archive / ".uploaded").exists()
    assert not [name for name in os.listdir(archive) if name.startswith(".logjam-tmp")]


def test_ctrl_c_while_status_checks_an_endpoint_that_never_answers_is_exit_130(tmp_path):
    import socket

    (tmp_path / "logs" / "archive").mkdir(parents=True)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        process = start("logjam-status", "--check", "s3://bucket/{prefix}/{year}/{month}/{day}/{filename}",
                        "--endpoint-url", f"http://127.0.0.1:{server.getsockname()[1]}", tmp_path / "logs")
        connection, _ = server.accept()  # the bucket check is waiting for an answer that never comes
        process.send_signal(signal.SIGINT)
        status, stderr = finish(process, within=10)
        connection.close()
    finally:
        server.close()

    assert status == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr
