"""A full disk (ENOSPC) and I/O errors (EIO) while writing the compressed file,
the file:// copy or the ledger: the original (or the archived file) stays, the
temporary file is removed, the error is one clear line, the exit status is 1,
and once there is room again the next pass succeeds.

The disk is really full where the sandbox lets us mount a small tmpfs (as
root); everywhere, the same cases also run with the failure injected into a
real process (a hook on the codec's output, ``os.write`` or ``os.fsync``),
and compress_logfile is driven in-process with a failing writer and a reader
that returns corrupt data.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logjam.codecs import GZIP, ZSTD
from logjam.compressor import compress_logfile
from logjam.errors import FileError
from logjam.parse import parse_filename
from tests.conftest import call, clean_env

NAME = "app-20130727T1200Z.log"
SMALL = "aaa-20130727T1200Z.log"  # sorts first: handled before NAME
TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
TEMP_MARKER = ".logjam-tmp-"
ENOSPC_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device"
EIO_TEXT = os.strerror(errno.EIO)  # "Input/output error"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} logjam\.\w+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def incompressible(size: int, seed: int = 1) -> bytes:
    """Bytes no codec shrinks: the compressed copy is as big as the log."""
    return random.Random(seed).randbytes(size)


def one_error_line(stderr: str, *, mentions: str, about: str) -> str:
    """The run reported exactly one error, in one line naming the file and the cause."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), f"stray output:\n{stderr}"
    errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
    assert len(errors) == 1, f"expected one error line:\n{stderr}"
    assert mentions in errors[0] and about in errors[0], errors[0]
    return errors[0]


def temps_below(root: Path) -> list[str]:
    return sorted(str(path) for path in root.rglob("*") if TEMP_MARKER in path.name)


def files_below(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


# -- a small real filesystem --------------------------------------------------------

@pytest.fixture
def tmpfs():
    """mount(path, size) puts a size-limited tmpfs at path; resize(path, size)
    makes room. Skips the test where mounting is not allowed. Always unmounted."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a small tmpfs needs root (the injected-failure variant covers this case)")
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(path)
        return path

    def resize(path: Path, size: str) -> None:
        result = subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    mount.resize = resize
    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fills the filesystem of directory to the last byte. Returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        chunk = b"\0" * 65536
        while True:
            try:
                out.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler


# -- failures injected into a real process --------------------------------------------

# Runs logjam's main() with one fault injected:
#   "codec": the compressed output (what the codec writes to the file) fails
#            with errno once more than `after` bytes have been written;
#   "write": os.write to a file whose path matches `match` fails likewise;
#   "fsync": os.fsync of a file whose path matches `match` fails.
DRIVER = r"""
import dataclasses, io, json, os, re, sys

spec = json.loads(sys.argv[1])
prog, argv = sys.argv[2], sys.argv[3:]
failure = OSError(spec["errno"], os.strerror(spec["errno"]))
written = 0


def path_of(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def count(size):
    global written
    if written + size > spec.get("after", 0):
        raise failure
    written += size


class FailingRaw(io.RawIOBase):
    def __init__(self, raw):
        self.raw = raw

    def writable(self):
        return True

    def write(self, data):
        count(len(data))
        return self.raw.write(data)

    def flush(self):
        if not self.raw.closed:  # also called when this wrapper is collected
            self.raw.flush()


if spec["target"] == "codec":
    from logjam.codecs import CODECS

    for name, codec in list(CODECS.items()):
        def open_writer(raw, *, level, threads, real=codec.open_writer):
            return real(FailingRaw(raw), level=level, threads=threads)
        CODECS[name] = dataclasses.replace(codec, open_writer=open_writer)
elif spec["target"] == "write":
    real_write = os.write

    def write(fd, data):
        if re.search(spec["match"], path_of(fd)):
            count(len(data))
        return real_write(fd, data)

    os.write = write
elif spec["target"] == "fsync":
    real_fsync = os.fsync

    def fsync(fd):
        if re.search(spec["match"], path_of(fd)):
            raise failure
        return real_fsync(fd)

    os.fsync = fsync

if prog == "logjam-compress":
    from logjam.compress import main
else:
    from logjam.upload import main
sys.exit(main(argv))
"""


def run_injected(spec: dict, prog: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, json.dumps(spec), prog, *map(str, args)],
                          env=clean_env(), capture_output=True, text=True, timeout=120)


# -- logjam-compress: the disk of archive/ fills up -------------------------------------

@pytest.mark.parametrize("codec, threads", [("gzip", 1), ("gzip", 2), ("zstd", 1), ("zstd", 2)])
@pytest.mark.parametrize("how", ["tmpfs", "injected"])
def test_disk_full_while_compressing(make_logs, tmpfs, how, codec, threads):
    data = incompressible(3 << 20)
    # One thread: a small file first, which fits (the pass goes on after the
    # failure). Two threads: the one file alone, with the codec's own threads.
    small = b"a short log that fits\n" * 100 if threads == 1 else None
    log_dir = make_logs({NAME: data, SMALL: small} if small else {NAME: data})
    archive = log_dir / "archive"
    args = ["--once", "--codec", codec, "--threads", threads, log_dir]
    extension = {"gzip": ".gz", "zstd": ".zst"}[codec]
    smalls = [SMALL + extension] if small else []
    if how == "tmpfs":
        tmpfs(archive, "2m")
        result = call("logjam-compress", *args)
    else:
        # The first file's output fits; the second's fails part of the way through.
        spec = {"target": "codec", "errno": errno.ENOSPC, "after": 1 << 20}
        result = run_injected(spec, "logjam-compress", *args)

    assert result.returncode == 1, result.stderr
    one_error_line(result.stderr, mentions=ENOSPC_TEXT, about=f"{log_dir}/{NAME}")
    assert (log_dir / NAME).read_bytes() == data  # the original stays
    assert sorted(os.listdir(archive)) == smalls  # no temporary file, no partial copy
    assert not (log_dir / SMALL).exists()  # the pass went on with the others

    # There is room again: the next pass succeeds.
    if how == "tmpfs":
        tmpfs.resize(archive, "64m")
    result = call("logjam-compress", *args)
    assert result.returncode == 0, result.stderr
    assert not (log_dir / NAME).exists()
    assert sorted(os.listdir(archive)) == sorted([*smalls, NAME + extension])
    reader = {".gz": GZIP, ".zst": ZSTD}[extension].open_reader
    with open(archive / (NAME + extension), "rb") as raw, reader(raw) as stream:
        assert stream.read() == data


def test_disk_full_with_temporary_files_of_an_earlier_crash(make_logs, tmpfs):
    """A crash's leftover temporary file takes the room; the next pass removes it first."""
    data = incompressible(1 << 20)
    log_dir = make_logs({NAME: data})
    archive = tmpfs(log_dir / "archive", "2m")
    stale = archive / f".{NAME}.gz{TEMP_MARKER}999999-deadbeef"
    stale.write_bytes(incompressible(1536 << 10, seed=2))  # 1.5 MiB of a 2 MiB disk

    result = call("logjam-compress", "--once", log_dir)

    assert result.returncode == 0, result.stderr
    assert os.listdir(archive) == [NAME + ".gz"]
    assert gzip.decompress((archive / (NAME + ".gz")).read_bytes()) == data


# -- logjam-upload: the file:// destination fills up ---------------------------------------

@pytest.fixture
def archived(tmp_path):
    """An archive/ with one real gzip file of 3 MiB that does not compress further."""
    archive = tmp_path / "logs" / "archive"
    archive.mkdir(parents=True)
    data = gzip.compress(incompressible(3 << 20), mtime=0)
    (archive / (NAME + ".gz")).write_bytes(data)
    return archive, data


@pytest.mark.parametrize("how", ["tmpfs", "injected"])
def test_disk_full_at_the_file_destination(tmp_path, archived, tmpfs, how):
    archive, data = archived
    dest = tmp_path / "dest"
    args = ["--once", archive, f"file://{dest}/{TEMPLATE}"]
    if how == "tmpfs":
        tmpfs(dest, "2m")
        result = call("logjam-upload", *args)
    else:
        dest.mkdir()
        spec = {"target": "write", "match": f"^{re.escape(str(dest))}/", "errno": errno.ENOSPC, "after": 1 << 20}
        result = run_injected(spec, "logjam-upload", *args)

    assert result.returncode == 1, result.stderr
    one_error_line(result.stderr, mentions=ENOSPC_TEXT, about=f"{archive}/{NAME}.gz")
    assert files_below(dest) == {}  # no temporary file, no partial copy
    assert not (archive / ".uploaded").exists() or os.listdir(archive / ".uploaded") == []  # nothing recorded
    assert (archive / (NAME + ".gz")).read_bytes() == data  # the archived file stays

    if how == "tmpfs":
        tmpfs.resize(dest, "64m")
    result = call("logjam-upload", *args)
    assert result.returncode == 0, result.stderr
    assert files_below(dest) == {f"app/2013/07/27/{NAME}.gz": data}
    assert os.listdir(archive / ".uploaded") == [NAME + ".gz"]


@pytest.mark.parametrize("how", ["tmpfs", "injected"])
def test_disk_full_for_the_ledger(tmp_path, archived, tmpfs, how):
    """The copy arrived but its marker cannot be written: not recorded, no
    temporary marker left; the next pass finds the copy and records it (no duplicate)."""
    archive, data = archived
    dest = tmp_path / "dest"
    dest.mkdir()
    ledger = archive / ".uploaded"
    args = ["--once", archive, f"file://{dest}/{TEMPLATE}"]
    if how == "tmpfs":
        tmpfs(ledger, "64k")
        filler = fill(ledger)
        result = call("logjam-upload", *args)
    else:
        spec = {"target": "write", "match": "/\\.uploaded/", "errno": errno.ENOSPC, "after": 0}
        result = run_injected(spec, "logjam-upload", *args)

    assert result.returncode == 1, result.stderr
    one_error_line(result.stderr, mentions=ENOSPC_TEXT, about=f"{archive}/{NAME}.gz")
    recorded = [name for name in os.listdir(ledger) if name != "filler"] if ledger.exists() else []
    assert recorded == []  # neither a marker nor a temporary one
    assert (archive / (NAME + ".gz")).read_bytes() == data

    if how == "tmpfs":
        filler.unlink()
    result = call("logjam-upload", *args)
    assert result.returncode == 0, result.stderr
    assert "found already uploaded" in result.stderr
    assert files_below(dest) == {f"app/2013/07/27/{NAME}.gz": data}  # once, not beside itself
    assert sorted(os.listdir(ledger)) == [NAME + ".gz"]


# -- I/O errors, injected into a real process ------------------------------------------------

@pytest.mark.parametrize("target", ["codec", "fsync"])
def test_io_error_while_compressing(make_logs, target):
    data = incompressible(3 << 20)
    log_dir = make_logs({NAME: data})
    spec = {"target": target, "errno": errno.EIO, "after": 1 << 20, "match": re.escape(TEMP_MARKER)}

    result = run_injected(spec, "logjam-compress", "--once", log_dir)

    assert result.returncode == 1, result.stderr
    one_error_line(result.stderr, mentions=EIO_TEXT, about=f"{log_dir}/{NAME}")
    assert (log_dir / NAME).read_bytes() == data
    assert os.listdir(log_dir / "archive") == []


@pytest.mark.parametrize("target", ["write", "fsync"])
def test_io_error_at_the_file_destination(tmp_path, archived, target):
    archive, data = archived
    dest = tmp_path / "dest"
    dest.mkdir()
    spec = {"target": target, "match": f"^{re.escape(str(dest))}/.*{re.escape(TEMP_MARKER)}",
            "errno": errno.EIO, "after": 1 << 20}

    result = run_injected(spec, "logjam-upload", "--once", archive, f"file://{dest}/{TEMPLATE}")

    assert result.returncode == 1, result.stderr
    one_error_line(result.stderr, mentions=EIO_TEXT, about=f"{archive}/{NAME}.gz")
    assert files_below(dest) == {}
    assert not (archive / ".uploaded").exists() or os.listdir(archive / ".uploaded") == []
    assert (archive / (NAME + ".gz")).read_bytes() == data


# -- compress_logfile in-process: a failing writer, a corrupting reader -------------------------

class FailingRaw(io.RawIOBase):
    """A file object that takes `after` bytes, then fails every write with EIO."""

    def __init__(self, raw, after: int) -> None:
        self.raw = raw
        self.left = after

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.left:
            raise OSError(errno.EIO, EIO_TEXT)
        self.left -= len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        if not self.raw.closed:  # also called when this wrapper is collected
            self.raw.flush()


class FailingWriter:
    """A codec writer that compresses `after` bytes of log, then fails with EIO."""

    def __init__(self, inner, after: int) -> None:
        self.inner = inner
        self.left = after

    def write(self, data) -> int:
        if len(data) > self.left:
            raise OSError(errno.EIO, EIO_TEXT)
        self.left -= len(data)
        return self.inner.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.inner.close()


class CorruptingReader(io.RawIOBase):
    """Reads through, with one bit of the first chunk flipped."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.flipped = False

    def readable(self) -> bool:
        return True

    def read(self, size=-1) -> bytes:
        data = self.inner.read(size)
        if data and not self.flipped:
            self.flipped = True
            data = bytes([data[0] ^ 1]) + data[1:]
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.inner.close()


@pytest.fixture
def one_log(make_logs):
    """(dir_fd, archive_fd, logfile, data, log_dir) for compress_logfile."""
    rng = random.Random(3)
    data = b"".join(b"line %d of a finished hour req=%s\n" % (i, rng.randbytes(8).hex().encode())
                    for i in range(120_000))  # 5 MB, 2 MB compressed
    log_dir = make_logs({NAME: data})
    (log_dir / "archive").mkdir()
    dir_fd = os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY)
    archive_fd = os.open(log_dir / "archive", os.O_RDONLY | os.O_DIRECTORY)
    yield dir_fd, archive_fd, parse_filename(NAME), data, log_dir
    os.close(dir_fd)
    os.close(archive_fd)


def assert_untouched(log_dir: Path, data: bytes) -> None:
    assert (log_dir / NAME).read_bytes() == data
    assert os.listdir(log_dir / "archive") == []  # no temporary file, no partial copy


@pytest.mark.parametrize("codec", [GZIP, ZSTD], ids=lambda codec: codec.name)
@pytest.mark.parametrize("layer", ["codec-writer", "file-under-the-codec"])
def test_compress_logfile_writer_io_error(one_log, codec, layer):
    dir_fd, archive_fd, logfile, data, log_dir = one_log
    after = 1 << 20  # fails part of the way through
    if layer == "codec-writer":
        def open_writer(raw, *, level, threads):
            return FailingWriter(codec.open_writer(raw, level=level, threads=threads), after)
    else:
        def open_writer(raw, *, level, threads):
            return codec.open_writer(FailingRaw(raw, after // 8), level=level, threads=threads)
    failing = dataclasses.replace(codec, open_writer=open_writer)

    with pytest.raises(OSError) as raised:
        compress_logfile(dir_fd, logfile, archive_fd=archive_fd, codec=failing)

    assert raised.value.errno == errno.EIO
    assert_untouched(log_dir, data)


def test_compress_logfile_fsync_io_error(one_log, monkeypatch):
    dir_fd, archive_fd, logfile, data, log_dir = one_log
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith("."):  # the temporary file
            raise OSError(errno.EIO, EIO_TEXT)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as raised:
        compress_logfile(dir_fd, logfile, archive_fd=archive_fd)

    assert raised.value.errno == errno.EIO
    assert_untouched(log_dir, data)


def test_compress_logfile_read_error_on_the_original(one_log, monkeypatch):
    dir_fd, archive_fd, logfile, data, log_dir = one_log
    real_pread = os.pread

    def pread(fd, size, offset):
        if offset >= 1 << 20 and os.readlink(f"/proc/self/fd/{fd}").endswith("/" + NAME):
            raise OSError(errno.EIO, EIO_TEXT)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", pread)
    with pytest.raises(OSError) as raised:
        compress_logfile(dir_fd, logfile, archive_fd=archive_fd)

    assert raised.value.errno == errno.EIO
    assert_untouched(log_dir, data)


@pytest.mark.parametrize("codec", [GZIP, ZSTD], ids=lambda codec: codec.name)
def test_compress_logfile_verification_catches_corrupt_read_back(one_log, codec):
    dir_fd, archive_fd, logfile, data, log_dir = one_log
    corrupting = dataclasses.replace(codec, open_reader=lambda raw: CorruptingReader(codec.open_reader(raw)))

    with pytest.raises(FileError, match="does not match"):
        compress_logfile(dir_fd, logfile, archive_fd=archive_fd, codec=corrupting)

    assert_untouched(log_dir, data)


def test_compress_logfile_succeeds_with_the_same_codec_unbroken(one_log):
    """The control: with nothing injected, the same call archives the log."""
    dir_fd, archive_fd, logfile, data, log_dir = one_log
    done = compress_logfile(dir_fd, logfile, archive_fd=archive_fd, codec=dataclasses.replace(GZIP))
    assert done.archived == NAME + ".gz"
    assert not (log_dir / NAME).exists()
    assert gzip.decompress((log_dir / "archive" / done.archived).read_bytes()) == data


def test_compress_read_back_that_raises_a_codec_error_is_a_file_error(tmp_path):
    import dataclasses

    from zlib_ng import zlib_ng

    from logjam.codecs import GZIP
    from logjam.compressor import compress_logfile
    from logjam.errors import FileError
    from logjam.parse import parse_filename

    class BrokenReader(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            raise zlib_ng.error("Error -3 while decompressing data: invalid block type")

    codec = dataclasses.replace(GZIP, open_reader=lambda raw: BrokenReader())
    log_dir = tmp_path / "logs"
    (log_dir / "archive").mkdir(parents=True)
    (log_dir / NAME).write_bytes(b"the only copy\n")
    dir_fd = os.open(log_dir, os.O_RDONLY)
    archive_fd = os.open(log_dir / "archive", os.O_RDONLY)
    try:
        with pytest.raises(FileError, match="does not read back"):
            compress_logfile(dir_fd, parse_filename(NAME), archive_fd=archive_fd, codec=codec)
    finally:
        os.close(dir_fd)
        os.close(archive_fd)
    assert (log_dir / NAME).read_bytes() == b"the only copy\n"
    assert os.listdir(log_dir / "archive") == []
