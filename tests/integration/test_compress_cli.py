"""logjam-compress as users run it, on real directories: main() in-process
(call), and the installed script (run) for the entry points."""

from __future__ import annotations

import gzip
import os
import stat

import pytest

from logjam.archive import DUPLICATE_MARK
from tests.conftest import call, run, tree

OLD = "app-20130727T1200Z.log"
NEWER = "app-20130727T1300Z.log"
FUTURE = "app-29990101T0000Z.log"


def body(seed: int, lines: int = 2000) -> bytes:
    return b"".join(b"%d host=web-%d GET /item/%d 200 %d\n" % (seed, i % 7, i * seed, i) for i in range(lines))


def test_compresses_finished_files_and_removes_originals(make_logs):
    log_dir = make_logs({OLD: body(1), NEWER: body(2), FUTURE: body(3), "messages": b"not a log\n"})
    before = tree(log_dir)

    result = run("logjam-compress", "--once", log_dir)  # the installed script, end to end

    assert result.returncode == 0, result.stderr
    # Both past hours are finished (the 1300Z hour is long over too); the future one is not.
    assert sorted(os.listdir(log_dir / "archive")) == [OLD + ".gz", NEWER + ".gz"]
    assert not (log_dir / OLD).exists() and not (log_dir / NEWER).exists()
    assert (log_dir / FUTURE).read_bytes() == before[FUTURE]
    assert (log_dir / "messages").read_bytes() == b"not a log\n"
    for name in (OLD, NEWER):
        assert gzip.decompress((log_dir / "archive" / (name + ".gz")).read_bytes()) == before[name]
    assert f"compressed {log_dir}/{OLD} -> archive/{OLD}.gz" in result.stderr


def test_output_is_one_deterministic_gzip_member(make_logs, tmp_path):
    first = make_logs({OLD: body(5)})
    call("logjam-compress", "--once", first)
    other = tmp_path / "other"
    other.mkdir()
    make_logs({OLD: body(5)}, other)
    call("logjam-compress", "--once", other)
    data = (first / "archive" / (OLD + ".gz")).read_bytes()
    assert data == (other / "archive" / (OLD + ".gz")).read_bytes()
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # mtime 0 in the header


def test_keeps_mode_and_mtime_and_never_widens_access(make_logs):
    log_dir = make_logs({OLD: body(1)})
    os.chmod(log_dir / OLD, 0o640)
    os.utime(log_dir / OLD, ns=(1_374_926_400_000_000_000, 1_374_930_000_123_456_789))

    assert call("logjam-compress", "--once", log_dir).returncode == 0

    archived = os.stat(log_dir / "archive" / (OLD + ".gz"))
    assert stat.S_IMODE(archived.st_mode) == 0o640
    assert archived.st_mtime_ns == 1_374_930_000_123_456_789


def test_current_hour_is_left_alone(make_logs):
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H00Z")
    live = f"app-{now}.log"
    log_dir = make_logs({live: b"still being written\n"})
    assert call("logjam-compress", "--once", log_dir).returncode == 0
    assert (log_dir / live).exists()
    assert not (log_dir / "archive").exists() or not os.listdir(log_dir / "archive")


def test_late_copy_goes_to_duplicate_name(make_logs):
    log_dir = make_logs({OLD: body(1)})
    assert call("logjam-compress", "--once", log_dir).returncode == 0
    first = (log_dir / "archive" / (OLD + ".gz")).read_bytes()

    make_logs({OLD: b"late lines\n"})  # a late writer re-created the finished hour
    result = call("logjam-compress", "--once", log_dir)

    assert result.returncode == 0, result.stderr
    duplicate = log_dir / "archive" / f"app{DUPLICATE_MARK}-20130727T1200Z.log.gz"
    assert gzip.decompress(duplicate.read_bytes()) == b"late lines\n"
    assert (log_dir / "archive" / (OLD + ".gz")).read_bytes() == first
    assert "stored the late copy" in result.stderr


def test_all_duplicate_names_taken_keeps_original_and_fails(make_logs):
    log_dir = make_logs({OLD: b"the only copy\n"})
    archive = log_dir / "archive"
    archive.mkdir()
    names = [OLD + ".gz", f"app{DUPLICATE_MARK}-20130727T1200Z.log.gz"]
    names += [f"app{DUPLICATE_MARK}-{n:02d}-20130727T1200Z.log.gz" for n in range(1, 25)]
    for name in names:
        (archive / name).write_bytes(b"taken")

    result = call("logjam-compress", "--once", log_dir)

    assert result.returncode == 1
    assert (log_dir / OLD).read_bytes() == b"the only copy\n"
    assert "original left in place" in result.stderr
    assert sorted(os.listdir(archive)) == sorted(names)  # nothing overwritten, no temp left
    assert all((archive / name).read_bytes() == b"taken" for name in names)


def test_stale_temporary_file_is_removed(make_logs):
    log_dir = make_logs({OLD: body(1)})
    archive = log_dir / "archive"
    archive.mkdir()
    stale = archive / f".{OLD}.gz.logjam-tmp-999999-deadbeef"
    stale.write_bytes(b"half a gzip")

    result = call("logjam-compress", "--once", log_dir)

    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert sorted(os.listdir(archive)) == [OLD + ".gz"]


def test_symlink_named_like_a_log_is_never_followed(make_logs, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:secret\n")
    log_dir = make_logs({OLD: body(1)})
    (log_dir / "shadow-20130101T0000Z.log").symlink_to(secret)

    result = call("logjam-compress", "--once", log_dir)

    assert result.returncode == 0, result.stderr  # a warning, not a failure retried forever
    assert (log_dir / "shadow-20130101T0000Z.log").is_symlink()
    assert secret.read_bytes() == b"root:secret\n"
    assert sorted(os.listdir(log_dir / "archive")) == [OLD + ".gz"]
    assert "shadow-20130101T0000Z.log: a symbolic link; never followed" in result.stderr


def test_archive_that_is_a_symlink_is_refused(make_logs, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log_dir = make_logs({OLD: body(1)})
    (log_dir / "archive").symlink_to(elsewhere)

    result = call("logjam-compress", "--once", log_dir)

    assert result.returncode == 2  # configuration: refused at start, not a failure every pass
    assert os.listdir(elsewhere) == []
    assert (log_dir / OLD).exists()
    assert result.stderr.splitlines() == [
        f"logjam-compress: error: {log_dir}/archive: a symbolic link, not a directory "
        "(logjam-compress keeps the archive there); move it away"]


@pytest.mark.parametrize("command", ["logjam-compress", "logjam-upload"])
def test_archive_that_is_a_regular_file_is_a_usage_error(make_logs, tmp_path, command):
    log_dir = make_logs({OLD: body(1)})
    (log_dir / "archive").write_bytes(b"not a directory")
    args = [log_dir] if command == "logjam-compress" else [
        log_dir / "archive", f"file://{tmp_path}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}"]

    result = call(command, "--once", *args)

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert f"{log_dir}/archive: " in result.stderr and "not a directory" in result.stderr
    assert (log_dir / OLD).exists() and (log_dir / "archive").read_bytes() == b"not a directory"


@pytest.mark.skipif(os.geteuid() != 0, reason="the insecure-directory check applies to root")
@pytest.mark.parametrize("command", ["logjam-compress", "logjam-upload"])
def test_root_refuses_an_archive_owned_by_another_user_at_start(make_logs, tmp_path, command):
    log_dir = make_logs({OLD: body(1)})
    (log_dir / "archive").mkdir()
    os.chown(log_dir / "archive", 65534, 65534)
    args = [log_dir] if command == "logjam-compress" else [
        log_dir / "archive", f"file://{tmp_path}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}"]

    result = call(command, "--once", *args)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{command}: error: {log_dir}/archive: refusing to run as root in a directory writable by a "
        "non-root user (owned by uid 65534); run logjam as that user, tighten the permissions, "
        "or pass --allow-insecure-dir"]
    assert (log_dir / OLD).exists()


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p / "missing", "no such directory"),
        (lambda p: (p / "file").write_text("x") and p / "file", "not a directory"),
    ],
    ids=["missing", "a-file"],
)
def test_bad_directory_is_a_usage_error(tmp_path, setup, message):
    path = setup(tmp_path)
    result = call("logjam-compress", "--once", path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"logjam-compress: error: {path}: {message}"]


def test_several_directories_in_one_run(make_logs, tmp_path):
    first = make_logs({OLD: body(1)})
    second = tmp_path / "second"
    second.mkdir()
    make_logs({"db-20130727T0100Z-replica.log": body(2)}, second)
    assert call("logjam-compress", "--once", first, second).returncode == 0
    assert os.listdir(first / "archive") == [OLD + ".gz"]
    assert os.listdir(second / "archive") == ["db-20130727T0100Z-replica.log.gz"]


def test_help_shows_examples():
    result = run("logjam-compress", "--help")
    assert result.returncode == 0
    assert "logjam-compress --once /var/log/app" in result.stdout
    assert "exit status" in result.stdout


def test_python_dash_m_works(make_logs):
    import subprocess
    import sys

    log_dir = make_logs({OLD: body(1)})
    result = subprocess.run([sys.executable, "-m", "logjam.compress", "--once", str(log_dir)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.listdir(log_dir / "archive") == [OLD + ".gz"]


def gzip_members(data: bytes) -> list[bytes]:
    """Takes a gzip file. Returns what each of its members holds."""
    import zlib

    members = []
    while data:
        decompressor = zlib.decompressobj(31)
        members.append(decompressor.decompress(data))
        assert decompressor.eof
        data = decompressor.unused_data
    return members


@pytest.fixture(scope="module")
def archived_8mb(tmp_path_factory):
    """(original, archive bytes) of one 8 MB log compressed on 1 and on 2 threads."""
    original = body(7, lines=200_000)  # 8 MB: two gzip members of 4 MiB of log
    out = {}
    for threads in ("1", "2"):
        log_dir = tmp_path_factory.mktemp(f"threads{threads}")
        (log_dir / OLD).write_bytes(original)
        os.utime(log_dir / OLD, (0, 0))
        assert call("logjam-compress", "--once", "--threads", threads, log_dir).returncode == 0
        out[threads] = (log_dir / "archive" / (OLD + ".gz")).read_bytes()
    assert out["1"] == out["2"]  # the thread count changes nothing in the output
    return original, out["2"]


@pytest.mark.parametrize("reader", ["python-gzip", "gzip -dc", "zcat", "pigz -dc"])
def test_gzip_output_is_read_by_every_gzip_reader(archived_8mb, reader):
    import shutil
    import subprocess

    original, data = archived_8mb
    assert b"".join(gzip_members(data)) == original
    assert len(gzip_members(data)) == 2  # independent members, the second at 4 MiB of log
    if reader == "python-gzip":
        assert gzip.decompress(data) == original
        return
    argv = reader.split()
    if argv[0] == "pigz" and shutil.which("pigz") is None:
        pytest.skip("pigz is not installed")
    result = subprocess.run(argv, input=data, capture_output=True, check=True)
    assert result.stdout == original


def test_zstd_codec_writes_zst_files(make_logs):
    import zstandard

    log_dir = make_logs({OLD: body(3)})
    result = call("logjam-compress", "--once", "--codec", "zstd", "--level", "19", log_dir)
    assert result.returncode == 0, result.stderr
    data = (log_dir / "archive" / (OLD + ".zst")).read_bytes()
    assert zstandard.ZstdDecompressor().stream_reader(data).read() == body(3)
    assert not (log_dir / OLD).exists()


@pytest.mark.parametrize("args", [["--codec", "zstd", "--level", "23"], ["--level", "0"], ["--threads", "0"]])
def test_bad_codec_settings_are_usage_errors(make_logs, args):
    log_dir = make_logs({OLD: b"x"})
    result = call("logjam-compress", "--once", *args, log_dir)
    assert result.returncode == 2
    assert (log_dir / OLD).exists()
