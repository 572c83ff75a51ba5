"""Names near NAME_MAX (255 bytes): every name logjam makes (temporary names,
archived names, duplicate names, ledger markers) stays within it, and a log
that cannot be archived under a name that fits is left with one warning,
not a failure every pass."""

from __future__ import annotations

import gzip
import os

from logjam import compress, upload
from logjam.logs import configure_logging
from logjam.signals import Stop


def log_name(length: int) -> str:
    """A log name of exactly length bytes."""
    tail = "-20130727T1200Z.log"
    return "x" * (length - len(tail)) + tail


def test_a_252_byte_name_is_compressed_and_uploaded(make_logs, tmp_path):
    name = log_name(252)
    log_dir = make_logs({name: b"a long-named log\n"})
    assert compress.main(["--once", str(log_dir)]) == 0
    archived = log_dir / "archive" / (name + ".gz")
    assert gzip.decompress(archived.read_bytes()) == b"a long-named log\n"
    assert not (log_dir / name).exists()

    dest = tmp_path / "dest"
    dest.mkdir()
    uri = f"file://{dest}/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}"
    assert upload.main(["--once", str(log_dir / "archive"), uri]) == 0
    assert (dest / name[:-19] / "2013" / "07" / "27" / (name + ".gz")).read_bytes() == archived.read_bytes()
    assert os.listdir(log_dir / "archive" / ".uploaded") == [name + ".gz"]  # recorded: not sent again


def run_passes(log_dir, passes: int) -> list:
    """Runs several passes of one logjam-compress run (as its loop does)."""
    configure_logging("info")  # as main() does, onto this test's stderr
    args = compress.build_parser().parse_args(["--once", str(log_dir)])
    job = compress.make_job(args)
    return [job(Stop()) for _ in range(passes)]


def test_a_name_too_long_for_gz_is_left_with_one_warning(make_logs, capsys):
    name = log_name(253)
    log_dir = make_logs({name: b"kept\n", "app-20130727T1200Z.log": b"archived\n"})
    results = run_passes(log_dir, 3)
    assert all(stats.ok for stats in results)
    err = capsys.readouterr().err
    assert err.count("name too long to archive (256 bytes with .gz, the limit is 255); left alone") == 1
    assert (log_dir / name).read_bytes() == b"kept\n"
    assert (log_dir / "archive" / "app-20130727T1200Z.log.gz").exists()
    assert compress.main(["--once", str(log_dir)]) == 0


def test_a_duplicate_name_that_would_not_fit_leaves_the_late_copy_with_one_warning(make_logs, capsys):
    name = log_name(230)  # fits with .gz; its duplicate name would not
    log_dir = make_logs({name: b"first copy\n"})
    assert compress.main(["--once", str(log_dir)]) == 0
    (log_dir / name).write_bytes(b"late copy\n")
    os.utime(log_dir / name, (0, 0))

    results = run_passes(log_dir, 2)
    assert all(stats.ok for stats in results)
    err = capsys.readouterr().err
    assert err.count("a duplicate name for this copy would be longer than 255 bytes; left alone") == 1
    assert (log_dir / name).read_bytes() == b"late copy\n"
    assert sorted(os.listdir(log_dir / "archive")) == [name + ".gz"]


def test_a_duplicate_name_that_fits_is_used(make_logs):
    name = log_name(200)
    log_dir = make_logs({name: b"first copy\n"})
    assert compress.main(["--once", str(log_dir)]) == 0
    (log_dir / name).write_bytes(b"late copy\n")
    os.utime(log_dir / name, (0, 0))
    assert compress.main(["--once", str(log_dir)]) == 0
    assert len(os.listdir(log_dir / "archive")) == 2
    assert not (log_dir / name).exists()
