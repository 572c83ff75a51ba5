"""FIFOs, sockets and devices named like logs or archived files: never opened
(opening a FIFO releases a writer blocked on it, whose line is then thrown
away), a warning and exit 0, in every command that touches such names."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from logjam import compress, upload
from tests.conftest import wait_for

OLD = "app-20130727T1200Z.log"

BLOCKED_WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)  # blocks until a reader opens the FIFO
os.write(fd, b"a line\\n")
"""


def blocked_writer(fifo) -> subprocess.Popen:
    """A process blocked opening fifo for writing, as a logger writing to a pipe is."""
    os.mkfifo(fifo)
    writer = subprocess.Popen([sys.executable, "-c", BLOCKED_WRITER, str(fifo)], stderr=subprocess.DEVNULL)

    def blocked() -> bool:
        with open(f"/proc/{writer.pid}/wchan") as wchan:
            return wchan.read() == "wait_for_partner"

    wait_for(blocked, message="the writer to block on the FIFO")
    return writer


def line_still_waiting(fifo, writer: subprocess.Popen) -> bytes:
    """Opens fifo as its reader now. Returns what the writer sends: its line
    if nothing released it before, b"" if it was released and lost it."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        writer.wait(timeout=30)
        return os.read(fd, 100)
    finally:
        os.close(fd)


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_fifo_named_like_a_log_is_never_opened(make_logs, capsys, dry_run):
    log_dir = make_logs({})
    writer = blocked_writer(log_dir / OLD)
    try:
        status = compress.main(["--once", *(["--dry-run"] if dry_run else []), str(log_dir)])
        assert status == 0
        assert f"{OLD}: a FIFO (named pipe); left alone" in capsys.readouterr().err
        assert writer.poll() is None  # still blocked: nobody opened the FIFO
    finally:
        assert line_still_waiting(log_dir / OLD, writer) == b"a line\n"


def test_a_socket_named_like_a_log_is_a_warning_not_a_failure(make_logs, capsys):
    log_dir = make_logs({"app-20130727T1100Z.log": b"a real log\n"})
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(log_dir / OLD))
        for _ in range(2):  # every pass, not only the first
            assert compress.main(["--once", str(log_dir)]) == 0
        err = capsys.readouterr().err
    assert f"{OLD}: a socket; left alone" in err
    assert (log_dir / "archive" / "app-20130727T1100Z.log.gz").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_fifo_in_the_archive_is_never_opened_by_upload(make_logs, tmp_path, capsys, dry_run):
    archive = make_logs({}) / "archive"
    archive.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    writer = blocked_writer(archive / (OLD + ".gz"))
    try:
        status = upload.main(["--once", *(["--dry-run"] if dry_run else []), str(archive),
                              f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}"])
        assert status == 0
        assert writer.poll() is None
        if not dry_run:
            assert f"{OLD}.gz: a FIFO (named pipe); left alone" in capsys.readouterr().err
    finally:
        assert line_still_waiting(archive / (OLD + ".gz"), writer) == b"a line\n"
    assert list(dest.rglob("*.gz")) == []
