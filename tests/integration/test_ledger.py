"""The ledger on disk: names no line splitting may cut (issue #8 §7), markers
of the old format, and markers that are not markers (§9), through main()."""

from __future__ import annotations

import gzip
import logging
import os

import pytest

from logjam.markers import LedgerEntry
from tests.conftest import tree

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
OLD = "db-20130727T1200Z.log.gz"


@pytest.fixture(autouse=True)
def fresh_logging(monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


def old_marker(dest, key: str, data: bytes) -> bytes:
    """A marker as logjam wrote it before the JSON format."""
    import hashlib

    return (f"destination=file://{dest}/{key}\nkey={key}\nsize={len(data)}\n"
            f"sha256={hashlib.sha256(data).hexdigest()}\n").encode()


# str.splitlines() splits on all of these; a name may hold any of them.
@pytest.mark.parametrize("prefix", ["cr\rlf", "nel\x85x", "ls\u2028x", "ff\x0cx"])
@pytest.mark.parametrize("format", ["json", "old"])
def test_names_with_line_separators_are_recorded_under_their_own_key(archive, dest, run_upload, prefix, format):
    name = f"{prefix}-20130727T1200Z.log.gz"
    key = f"{prefix}/2013/07/27/{name}"
    data = gzip.compress(b"odd\n")
    (archive / name).write_bytes(data)
    uri = f"file://{dest}/{TEMPLATE}"
    assert run_upload(archive, uri)[0] == 0
    if format == "old":
        (archive / ".uploaded" / name).write_bytes(old_marker(dest, key, data))
    else:
        [confirmation] = LedgerEntry.from_bytes(name, (archive / ".uploaded" / name).read_bytes()).confirmations
        assert confirmation.key == key

    status, err = run_upload("--verify", archive, uri)

    assert status == 0, err
    assert "verified 1 of 1 recorded uploads (head): 0 problem(s), 0 not checked" in err

    status, err = run_upload("--delete-uploaded-after", "1d", archive, uri)

    assert status == 0, err
    assert not (archive / name).exists()  # confirmed at its key, so deleted
    assert tree(dest) == {key: data}  # and never sent again


def test_an_old_marker_counts_as_uploaded(archive, dest, run_upload):
    data = gzip.compress(b"old\n")
    (archive / OLD).write_bytes(data)
    (dest / "db/2013/07/27").mkdir(parents=True)
    (dest / "db/2013/07/27" / OLD).write_bytes(data)
    (archive / ".uploaded").mkdir(mode=0o700)
    (archive / ".uploaded" / OLD).write_bytes(old_marker(dest, f"db/2013/07/27/{OLD}", data))
    (dest / "db/2013/07/27" / OLD).unlink()  # if the pass looked, it would copy it again

    assert run_upload(archive, f"file://{dest}/{TEMPLATE}") == (0, "")
    assert tree(dest) == {}


def test_verify_reports_markers_that_are_not_markers_and_goes_on(archive, dest, run_upload):
    uri = f"file://{dest}/{TEMPLATE}"
    names = [f"db-20130727T{hour}00Z.log.gz" for hour in ("10", "11", "12")]
    for name in names:
        (archive / name).write_bytes(gzip.compress(name.encode()))
    assert run_upload(archive, uri)[0] == 0
    ledger = archive / ".uploaded"
    (ledger / names[0]).unlink()
    (ledger / names[0]).mkdir()
    (ledger / names[1]).write_bytes(b"")

    status, err = run_upload("--verify", archive, uri)

    assert status == 1
    assert f"{names[0]}: marker is not a regular file" in err
    assert f"{names[1]}: empty marker" in err
    assert "verified 3 of 3 recorded uploads (head): 2 problem(s), 0 not checked" in err


def test_an_empty_marker_does_not_count_as_uploaded(archive, dest, run_upload):
    uri = f"file://{dest}/{TEMPLATE}"
    (archive / OLD).write_bytes(gzip.compress(b"x\n"))
    (archive / ".uploaded").mkdir(mode=0o700)
    (archive / ".uploaded" / OLD).write_bytes(b"")

    status, err = run_upload(archive, uri)

    assert status == 0, err
    assert f"{archive}/.uploaded/{OLD}: empty marker; the file counts as not uploaded" in err
    assert tree(dest) == {f"db/2013/07/27/{OLD}": (archive / OLD).read_bytes()}
    assert LedgerEntry.from_bytes(OLD, (archive / ".uploaded" / OLD).read_bytes()).confirmations


def test_a_marker_that_is_a_directory_fails_that_file_each_pass(archive, dest, run_upload):
    uri = f"file://{dest}/{TEMPLATE}"
    (archive / OLD).write_bytes(gzip.compress(b"x\n"))
    (archive / ".uploaded" / OLD).mkdir(parents=True)

    status, err = run_upload("--delete-uploaded-after", "1s", archive, uri)

    assert status == 1
    assert f"cannot record the upload: .uploaded/{OLD} is a directory" in err
    assert (archive / OLD).exists()
    assert os.path.isdir(archive / ".uploaded" / OLD)


def test_an_idle_pass_reads_each_marker_with_few_system_calls(archive, dest, monkeypatch, run_upload):
    # Review item 6: the ledger directory was opened (and closed) again for
    # every marker, each marker lstat'ed and read into a 1 MiB buffer. Now:
    # the directory once, then open, fstat, one read of its size, close.
    names = [f"db-20130727T{hour:02d}00Z.log.gz" for hour in range(20)]
    for name in names:
        (archive / name).write_bytes(gzip.compress(name.encode()))
    assert run_upload(archive, f"file://{dest}/{TEMPLATE}")[0] == 0
    os.mkfifo(archive / ".uploaded" / "web-20130727T0000Z.log.gz")  # listed as a FIFO: never opened
    from logjam import ledger as ledger_module
    from logjam.ledger import Ledger, Standing
    from logjam.markers import Destination

    calls: dict[str, list] = {"open": [], "read": [], "stat": []}
    real = {name: getattr(os, name) for name in calls}

    def counting(name):
        def call(*args, **kwargs):
            calls[name].append(args[:2])
            return real[name](*args, **kwargs)
        return call

    fd = os.open(archive, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in calls:
            monkeypatch.setattr(ledger_module.os, name, counting(name))
        standing = Standing.of(Ledger(fd), Destination(scheme="file", bucket=str(dest)), clean=False)
    finally:
        monkeypatch.undo()
        os.close(fd)

    assert sorted(standing.here) == names
    assert list(standing.bad) == ["web-20130727T0000Z.log.gz"] and "not a regular file" in str(
        standing.bad["web-20130727T0000Z.log.gz"])
    opened = [args[0] for args in calls["open"]]
    assert opened[0] == ".uploaded" and sorted(opened[1:]) == names  # the directory once; never the FIFO
    assert len(calls["read"]) == len(names) and all(size < 4096 for _, size in calls["read"])
    assert calls["stat"] == []
