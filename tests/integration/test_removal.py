"""Removing the original after compression: a writer that replaces the log by
rename (rsync -t, write-to-temp-then-rename) at the worst moment, and a crash
in the middle of the removal, must never cost a version of the log.

The race is made deterministic through the seam removal.remove_original offers
(in_window), not by timing loops."""

from __future__ import annotations

import functools
import gzip
import os
import subprocess
import sys

import pytest

from logjam import compress, removal
from tests.conftest import clean_env

OLD = "app-20130727T1200Z.log"


def replace_by_rename(log_dir, name: str, data: bytes) -> None:
    """What rsync -t and write-to-temp-then-rename writers do."""
    temp = log_dir / f".{name}.rsync-tmp"
    temp.write_bytes(data)
    os.rename(temp, log_dir / name)


@pytest.mark.parametrize("stage", ["before-move", "before-unlink"])
def test_a_log_replaced_while_its_original_is_removed_survives(make_logs, monkeypatch, stage):
    log_dir = make_logs({OLD: b"first version\n"})
    seen = []

    def writer(now: str) -> None:
        seen.append(now)
        if now == stage:
            replace_by_rename(log_dir, OLD, b"second version\n")

    monkeypatch.setattr(removal, "remove_original",
                        functools.partial(removal.remove_original, in_window=writer))
    assert compress.main(["--once", str(log_dir)]) == 0
    assert stage in seen
    assert (log_dir / OLD).read_bytes() == b"second version\n"
    assert gzip.decompress((log_dir / "archive" / (OLD + ".gz")).read_bytes()) == b"first version\n"
    assert [name for name in os.listdir(log_dir) if name.startswith(".logjam")] == [".logjam-compress.lock"]


def test_a_log_replaced_twice_keeps_every_version(make_logs, monkeypatch, capsys):
    # Replaced before the move (so the move takes the second version) and
    # again before it can be put back: both later versions stay, visibly.
    log_dir = make_logs({OLD: b"first version\n"})

    def writer(now: str) -> None:
        if now == "before-move":
            replace_by_rename(log_dir, OLD, b"second version\n")
        elif now == "before-put-back":
            replace_by_rename(log_dir, OLD, b"third version\n")

    monkeypatch.setattr(removal, "remove_original",
                        functools.partial(removal.remove_original, in_window=writer))
    assert compress.main(["--once", str(log_dir)]) == 0
    assert (log_dir / OLD).read_bytes() == b"third version\n"
    kept = log_dir / "app-logjam-compress-duplicate-timestamp-20130727T1200Z.log"
    assert kept.read_bytes() == b"second version\n"
    assert f"stored the displaced version as {kept.name}" in capsys.readouterr().err

    # The next pass, with no writer in the window, archives each version
    # under its own name.
    monkeypatch.undo()
    assert compress.main(["--once", "--min-quiet", "0", str(log_dir)]) == 0
    archived = {name: gzip.decompress((log_dir / "archive" / name).read_bytes())
                for name in os.listdir(log_dir / "archive") if name.endswith(".gz")}
    assert sorted(archived.values()) == [b"first version\n", b"second version\n", b"third version\n"]


CRASH_IN_WINDOW = """
import functools, os, sys
from logjam import compress, removal

def crash(stage):
    if stage == "before-unlink":
        os._exit(9)  # power cut: no cleanup runs

removal.remove_original = functools.partial(removal.remove_original, in_window=crash)
sys.exit(compress.main(["--once", sys.argv[1]]))
"""


def hidden_names(log_dir) -> list[str]:
    return sorted(name for name in os.listdir(log_dir) if name.startswith(removal.REMOVING_MARKER))


def test_a_crash_in_the_middle_of_removal_is_finished_by_the_next_pass(make_logs, capsys):
    log_dir = make_logs({OLD: b"only copy\n"})
    crashed = subprocess.run([sys.executable, "-c", CRASH_IN_WINDOW, str(log_dir)], env=clean_env(),
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 9, crashed.stderr
    assert not (log_dir / OLD).exists()
    assert len(hidden_names(log_dir)) == 1  # the log is not lost: it waits under a hidden name

    assert compress.main(["--once", str(log_dir)]) == 0
    # Its archived copy reads back the same: the removal is finished.
    assert hidden_names(log_dir) == []
    assert not (log_dir / OLD).exists()
    assert gzip.decompress((log_dir / "archive" / (OLD + ".gz")).read_bytes()) == b"only copy\n"
    assert "finished removing" in capsys.readouterr().err


def test_a_leftover_that_is_not_the_archived_version_is_put_back(make_logs, capsys):
    log_dir = make_logs({OLD: b"first version\n"})
    assert compress.main(["--once", str(log_dir)]) == 0
    # As if a crash came after a replaced log was moved aside.
    (log_dir / removal.removing_name(OLD)).write_bytes(b"second version\n")

    assert compress.main(["--once", str(log_dir)]) == 0
    assert hidden_names(log_dir) == []
    assert (log_dir / OLD).read_bytes() == b"second version\n"
    assert f"put back {OLD}" in capsys.readouterr().err


def test_a_leftover_whose_name_was_taken_again_is_kept_beside_it(make_logs):
    log_dir = make_logs({OLD: b"first version\n"})
    assert compress.main(["--once", str(log_dir)]) == 0
    (log_dir / removal.removing_name(OLD)).write_bytes(b"second version\n")
    (log_dir / OLD).write_bytes(b"third version\n")

    assert compress.main(["--once", "--min-quiet", "0", str(log_dir)]) == 0
    assert hidden_names(log_dir) == []
    archived = sorted(gzip.decompress((log_dir / "archive" / name).read_bytes())
                      for name in os.listdir(log_dir / "archive") if name.endswith(".gz"))
    left = sorted((log_dir / name).read_bytes() for name in os.listdir(log_dir) if name.startswith("app-"))
    assert sorted(archived + left) == [b"first version\n", b"second version\n", b"third version\n"]


def test_a_leftover_of_unknown_name_is_left_with_a_warning(make_logs, capsys):
    log_dir = make_logs({OLD: b"a log\n"})
    stray = log_dir / removal.removing_name("gone-20130727T1100Z.log")
    stray.write_bytes(b"who knows\n")
    assert compress.main(["--once", str(log_dir)]) == 0
    assert stray.read_bytes() == b"who knows\n"
    assert "left in place" in capsys.readouterr().err


@pytest.mark.parametrize("kernel", ["renameat2", "without renameat2"])
def test_rename_noreplace_moves_but_never_replaces(tmp_path, monkeypatch, kernel):
    import ctypes
    import errno

    from logjam import fsutil

    if kernel != "renameat2":
        def enosys(*args) -> int:
            ctypes.set_errno(errno.ENOSYS)
            return -1

        monkeypatch.setattr(fsutil, "_renameat2", enosys)
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert fsutil.rename_noreplace(dir_fd, source="a", target="b") is False
        assert fsutil.rename_noreplace(dir_fd, source="a", target="c") is True
    finally:
        os.close(dir_fd)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == {"b": b"b", "c": b"a"}
