"""Late writers, two instances, insecure directories and hard links: real
processes holding real files and locks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import call, clean_env, script, wait_for

OLD = "app-20130727T1200Z.log"

HOLD_OPEN = """
import sys
log = open(sys.argv[1], "ab")
log.write(b"late line\\n"); log.flush()
print("ready", flush=True)
sys.stdin.read()
"""

HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def hold(code: str, path, ready: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == ready
    return process


def release(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(timeout=10)
    process.stdout.close()


def test_file_held_open_for_writing_waits_for_its_writer(make_logs):
    log_dir = make_logs({OLD: b"early line\n"})
    writer = hold(HOLD_OPEN, log_dir / OLD, "ready")
    try:
        hour_ago = time.time() - 3600
        os.utime(log_dir / OLD, (hour_ago, hour_ago))  # quiet, but still open
        result = call("logjam-compress", "--once", log_dir)
        assert result.returncode == 0, result.stderr
        assert (log_dir / OLD).exists()
        assert "still open for writing" in result.stderr
    finally:
        release(writer)

    result = call("logjam-compress", "--once", log_dir)
    assert result.returncode == 0, result.stderr
    assert not (log_dir / OLD).exists()
    assert os.listdir(log_dir / "archive") == [OLD + ".gz"]


def test_recently_modified_file_waits_for_min_quiet(make_logs):
    log_dir = make_logs({OLD: b"just appended\n"}, quiet_for=5)
    result = call("logjam-compress", "--once", log_dir)
    assert result.returncode == 0
    assert (log_dir / OLD).exists()
    assert "--min-quiet 60" in result.stderr

    assert call("logjam-compress", "--once", "--min-quiet", "4", log_dir).returncode == 0
    assert not (log_dir / OLD).exists()


def test_second_instance_skips_a_locked_directory(make_logs):
    log_dir = make_logs({OLD: b"x\n"})
    holder = hold(HOLD_LOCK, log_dir / ".logjam-compress.lock", "locked")
    try:
        result = call("logjam-compress", "--once", log_dir)
    finally:
        release(holder)
    assert result.returncode == 0
    assert "another logjam-compress is working here; skipping" in result.stderr
    assert (log_dir / OLD).exists()


def test_wait_lock_waits_then_works(make_logs):
    log_dir = make_logs({OLD: b"x\n"})
    lock = log_dir / ".logjam-compress.lock"
    holder = hold(HOLD_LOCK, lock, "locked")
    waiter = subprocess.Popen([script("logjam-compress"), "--once", "--wait-lock", str(log_dir)],
                              env=clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        # The waiter has opened the lock file: it is now waiting for the lock.
        wait_for(lambda: any(os.path.realpath(f"/proc/{waiter.pid}/fd/{fd}") == str(lock)
                             for fd in os.listdir(f"/proc/{waiter.pid}/fd")), message="the waiter to open the lock")
        assert waiter.poll() is None
        assert (log_dir / OLD).exists()
    finally:
        release(holder)
    _, stderr = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, stderr
    assert not (log_dir / OLD).exists()


def test_upload_skips_a_locked_archive(tmp_path):
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    (archive / "db-20130727T1200Z.log.gz").write_bytes(b"x")
    holder = hold(HOLD_LOCK, archive / ".logjam-upload.lock", "locked")
    try:
        result = call("logjam-upload", "--once", archive, f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}")
    finally:
        release(holder)
    assert result.returncode == 0
    assert "another logjam-upload is working here; skipping" in result.stderr
    assert os.listdir(dest) == []


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the insecure-directory check applies to root")


@needs_root
@pytest.mark.parametrize(
    "mode, owner, reason",
    [
        (0o777, (0, 0), "world-writable"),
        (0o770, (0, 65534), "writable by group 65534"),
        (0o755, (65534, 0), "owned by uid 65534"),
    ],
)
def test_root_refuses_a_directory_a_user_can_write(make_logs, mode, owner, reason):
    log_dir = make_logs({OLD: b"x\n"})
    os.chown(log_dir, *owner)
    os.chmod(log_dir, mode)

    result = call("logjam-compress", "--once", log_dir)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "--allow-insecure-dir" in lines[0]
    assert (log_dir / OLD).exists()

    allowed = call("logjam-compress", "--once", "--allow-insecure-dir", log_dir)
    assert allowed.returncode == 0, allowed.stderr
    assert not (log_dir / OLD).exists()


@needs_root
def test_root_leaves_hard_linked_files_alone(make_logs, tmp_path):
    elsewhere = tmp_path / "secret"
    elsewhere.write_bytes(b"not a log\n")
    log_dir = make_logs({})
    os.link(elsewhere, log_dir / OLD)

    result = call("logjam-compress", "--once", log_dir)

    assert result.returncode == 0
    assert "hard links" in result.stderr
    assert (log_dir / OLD).exists() and elsewhere.read_bytes() == b"not a log\n"
    assert not (log_dir / "archive").exists() or os.listdir(log_dir / "archive") == []


@pytest.fixture
def bind_mount(tmp_path):
    """bind_mount(source) -> another path to the same directory (skips where mounting is not allowed)."""
    mounted = []

    def mount(source):
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        result = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"mount --bind is not allowed here: {result.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_writer_through_a_bind_mount_is_seen(make_logs, bind_mount):
    # A container volume or bind mount shows the log under another path: the
    # writer is found by the open file's (device, inode), not by its path.
    log_dir = make_logs({OLD: b"early line\n"})
    volume = bind_mount(log_dir)
    writer = hold(HOLD_OPEN, volume / OLD, "ready")
    try:
        hour_ago = time.time() - 3600
        os.utime(log_dir / OLD, (hour_ago, hour_ago))
        result = call("logjam-compress", "--once", log_dir)
        assert result.returncode == 0, result.stderr
        assert "still open for writing" in result.stderr
        assert (log_dir / OLD).read_bytes() == b"early line\nlate line\n"
    finally:
        release(writer)


def test_an_mtime_in_the_future_is_clock_skew_not_a_recent_change(make_logs, capsys):
    from logjam import compress
    from logjam.logs import configure_logging
    from logjam.signals import Stop

    log_dir = make_logs({OLD: b"early line\n"})
    writer = hold(HOLD_OPEN, log_dir / OLD, "ready")
    try:
        tomorrow = time.time() + 86400  # a bad hardware clock
        os.utime(log_dir / OLD, (tomorrow, tomorrow))
        configure_logging("info")
        job = compress.make_job(compress.build_parser().parse_args(["--once", str(log_dir)]))
        for _ in range(2):  # two passes of one run: still written, so still kept
            assert job(Stop()).ok
        err = capsys.readouterr().err
        assert err.count("s in the future (clock skew?)") == 1
        assert err.count("still open for writing") == 2
        assert "--min-quiet 60)" not in err
    finally:
        release(writer)

    assert compress.main(["--once", str(log_dir)]) == 0
    assert not (log_dir / OLD).exists()
    assert os.listdir(log_dir / "archive") == [OLD + ".gz"]
