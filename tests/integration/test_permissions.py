"""Permissions the archive must not widen: archive/ keeps the log directory's
sticky and set-group-ID bits (and group), and a copy made by a user who is
not root carries the original's group, or no group access at all.

The unprivileged runs use uid 65534 with its own primary group and one extra
group, SHARED, as a member of a group-shared log directory would."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from logjam import compress
from tests.conftest import clean_env, script
from tests.integration.test_bad_input import NOBODY, _unprivileged_python

OLD = "app-20130727T1200Z.log"
SHARED = 4242  # a group the unprivileged user is a member of
FOREIGN = 4343  # a group it is not

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to set up owners and switch users")


@pytest.fixture
def world():
    """A directory tree uid 65534 can reach (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="logjam-permissions-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def shared_log_dir(root: Path, *, file_group: int = SHARED) -> Path:
    """A set-group-ID directory of group SHARED, with one finished log of the
    unprivileged user that its group may read and others may not."""
    log_dir = root / "logs"
    log_dir.mkdir()
    os.chown(log_dir, 0, SHARED)
    os.chmod(log_dir, 0o2775)
    log = log_dir / OLD
    log.write_bytes(b"for the group only\n")
    os.chown(log, NOBODY, file_group)
    os.chmod(log, 0o640)
    os.utime(log, (0, 0))
    return log_dir


def compress_as_member(log_dir: Path) -> subprocess.CompletedProcess:
    found = _unprivileged_python()
    if found is None:
        pytest.skip(f"no Python that uid {NOBODY} can execute")
    python, path = found
    return subprocess.run([python, script("logjam-compress"), "--once", str(log_dir)],
                          env=clean_env(PYTHONPATH=path), cwd="/", user=NOBODY, group=NOBODY,
                          extra_groups=[SHARED], capture_output=True, text=True, timeout=120)


def owner_group_mode(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


@needs_root
def test_archive_dir_keeps_sticky_and_setgid_bits_and_group(make_logs):
    log_dir = make_logs({OLD: b"a log\n"})
    os.chown(log_dir, 0, SHARED)
    os.chmod(log_dir, 0o3777)  # sticky, set-group-ID, world-writable (as /var/log/shared may be)
    assert compress.main(["--once", "--allow-insecure-dir", str(log_dir)]) == 0
    assert owner_group_mode(log_dir / "archive") == (0, SHARED, 0o3777)


@needs_root
def test_a_copy_in_a_setgid_shared_directory_keeps_the_group(world):
    log_dir = shared_log_dir(world)
    result = compress_as_member(log_dir)
    assert result.returncode == 0, result.stderr
    archive = log_dir / "archive"
    assert owner_group_mode(archive) == (NOBODY, SHARED, 0o2775)
    assert owner_group_mode(archive / (OLD + ".gz")) == (NOBODY, SHARED, 0o640)
    assert gzip.decompress((archive / (OLD + ".gz")).read_bytes()) == b"for the group only\n"


@needs_root
def test_a_copy_into_an_archive_without_setgid_is_given_the_original_group(world):
    log_dir = shared_log_dir(world)
    archive = log_dir / "archive"
    archive.mkdir()
    os.chown(archive, NOBODY, NOBODY)
    os.chmod(archive, 0o755)  # made by an older release: no set-group-ID bit
    result = compress_as_member(log_dir)
    assert result.returncode == 0, result.stderr
    assert owner_group_mode(archive / (OLD + ".gz")) == (NOBODY, SHARED, 0o640)


@needs_root
def test_a_copy_that_cannot_have_the_original_group_has_no_group_access(world):
    log_dir = shared_log_dir(world, file_group=FOREIGN)  # the user owns it, but is not in its group
    result = compress_as_member(log_dir)
    assert result.returncode == 0, result.stderr
    uid, gid, mode = owner_group_mode(log_dir / "archive" / (OLD + ".gz"))
    assert gid != FOREIGN
    assert mode == 0o600  # group bits dropped: they would have been for another group
