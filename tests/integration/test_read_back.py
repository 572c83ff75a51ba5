"""The read-back check runs while the archive is written, and still checks every byte."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import threading

from logjam.codecs import GZIP, GzipMembers
from logjam.compressor import compress_logfile
from logjam.parse import parse_filename
from tests.unit.test_codecs import log_text

NAME = "app-20130727T1200Z.log"


def open_dirs(log_dir):
    (log_dir / "archive").mkdir()
    return os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY), os.open(log_dir / "archive", os.O_RDONLY | os.O_DIRECTORY)


def test_the_check_reads_the_archive_while_it_is_written(make_logs):
    # A writer that, after its first members have landed, waits until the
    # check has read some of them back. Were the check to start only after
    # the last byte (as it did before), the wait would time out.
    data = log_text(400_000)
    log_dir = make_logs({NAME: data})
    dir_fd, archive_fd = open_dirs(log_dir)
    read_back = threading.Event()

    class Waiting:
        def __init__(self, raw, *, level, threads):
            self.inner = GzipMembers(raw, level=level, threads=threads, member_size=32 << 10)
            self.waited = False

        def write(self, chunk):
            self.inner.write(chunk[:200_000])
            if not self.waited:
                self.waited = True
                assert read_back.wait(30), "nothing was read back while the archive was written"
            return self.inner.write(chunk[200_000:])

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.__exit__(*exc)

    class Noticing(io.RawIOBase):
        """The file as the check reads it (under the decompressor)."""

        def __init__(self, raw):
            self.raw = raw

        def readable(self):
            return True

        def readinto(self, buffer):
            count = self.raw.readinto(buffer)
            if count:
                read_back.set()
            return count

    codec = dataclasses.replace(GZIP, open_writer=Waiting, open_reader=lambda raw: GZIP.open_reader(Noticing(raw)))
    try:
        done = compress_logfile(dir_fd, parse_filename(NAME), archive_fd=archive_fd, codec=codec)
    finally:
        os.close(dir_fd)
        os.close(archive_fd)
    assert gzip.decompress((log_dir / "archive" / done.archived).read_bytes()) == data
    assert not (log_dir / NAME).exists()
