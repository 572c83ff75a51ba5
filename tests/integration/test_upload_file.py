"""logjam-upload to a file:// destination (a local or mounted directory)."""

from __future__ import annotations

import gzip
import os
import stat
import threading

from logjam.markers import LedgerEntry
from tests.conftest import run, tree

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
NAME = "db-20130727T1200Z.log.gz"


def upload(archive, uri):
    return run("logjam-upload", "--once", archive, uri)


def test_copies_to_keyed_paths_and_records(archive, dest):
    # Where the copy goes and what the ledger records: test_backend_contract.py
    # (test_stores_each_file_at_its_key_and_records_it); here, the modes.
    data = gzip.compress(b"hello\n", mtime=0)
    (archive / NAME).write_bytes(data)
    os.chmod(archive / NAME, 0o640)

    result = upload(archive, f"file://{dest}/{TEMPLATE}")

    assert result.returncode == 0, result.stderr
    assert tree(dest) == {"db/2013/07/27/" + NAME: data}
    assert stat.S_IMODE(os.stat(dest / "db/2013/07/27" / NAME).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(archive / ".uploaded" / NAME).st_mode) == 0o640  # no wider than the log
    assert not [name for name in os.listdir(dest / "db/2013/07/27") if name.startswith(".")]


def test_missing_root_is_a_usage_error(archive, tmp_path):
    (archive / NAME).write_bytes(b"x")
    result = upload(archive, f"file://{tmp_path}/not-mounted/{TEMPLATE}")
    assert result.returncode == 2
    assert "does not exist (is it mounted?)" in result.stderr
    assert not (tmp_path / "not-mounted").exists()


def test_symlink_inside_root_is_not_followed(archive, dest, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "db").symlink_to(outside)
    (archive / NAME).write_bytes(b"x")

    result = upload(archive, f"file://{dest}/{TEMPLATE}")

    assert result.returncode == 1
    assert os.listdir(outside) == []
    assert not (archive / ".uploaded").exists()


def test_dot_dot_in_a_key_cannot_escape_root(archive, dest, tmp_path):
    (archive / NAME).write_bytes(b"x")
    result = upload(archive, f"file://{dest}/{{prefix}}/../../{{year}}/{{month}}/{{day}}/{{filename}}")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "bad key template" in line and "'..' path segment" in line
    assert sorted(os.listdir(tmp_path)) == ["dest", "logs"]
    assert tree(dest) == {}
    assert not (archive / ".uploaded").exists()


def test_unknown_scheme_is_a_usage_error(archive):
    result = upload(archive, f"ftp://host/{TEMPLATE}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"logjam-upload: error: ftp://host/{TEMPLATE}: no uploader for scheme ftp:// (known: file://, s3://)"
    ]


def test_a_corrupt_archive_is_shipped_as_it_is_and_stops_nothing(archive, dest):
    good = {f"db-20130727T{hour:02d}00Z.log.gz": gzip.compress(b"good %d\n" % hour) for hour in range(1, 6)}
    for name, data in good.items():
        (archive / name).write_bytes(data)
    corrupt = gzip.compress(b"x" * 100_000)
    corrupt = corrupt[:40] + bytes(b ^ 0xFF for b in corrupt[40:60]) + corrupt[60:]
    (archive / NAME).write_bytes(corrupt)

    result = run("logjam-upload", "--once", "--jobs", "1", archive, f"file://{dest}/{TEMPLATE}")

    assert result.returncode == 0, result.stderr
    assert "does not decompress" in result.stderr and "uploading it as it is" in result.stderr
    assert tree(dest) == {f"db/2013/07/27/{name}": data for name, data in {**good, NAME: corrupt}.items()}


def test_retention_never_deletes_a_file_that_is_not_the_one_uploaded(archive, dest):
    (archive / NAME).write_bytes(b"first copy, uploaded")
    assert upload(archive, f"file://{dest}/{TEMPLATE}").returncode == 0
    # The name now holds other bytes of the same size (a late copy archived
    # under a freed name, or a marker left by a crash): never delete them.
    (archive / NAME).unlink()
    (archive / NAME).write_bytes(b"later copy, not sent")

    result = run("logjam-upload", "--once", "--delete-uploaded-after", "1d", archive, f"file://{dest}/{TEMPLATE}")

    assert result.returncode == 0, result.stderr
    assert (archive / NAME).read_bytes() == b"later copy, not sent"
    assert "is not the file recorded as uploaded" in result.stderr
    assert tree(dest) == {
        f"db/2013/07/27/{NAME}": b"first copy, uploaded",
        "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz": b"later copy, not sent",
    }


def test_duplicate_name_longer_than_name_max_fails_once_and_leaves_the_file(archive, dest):
    # 232 bytes fit; with -logjam-upload-duplicate-01 (27 more) the name does not.
    name = "d" * 210 + "-20130727T1200Z.log.gz"
    assert len(name) == 232
    ours = gzip.compress(b"ours\n", mtime=0)
    (archive / name).write_bytes(ours)
    folder = dest / ("d" * 210) / "2013" / "07" / "27"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"someone else's")

    result = upload(archive, f"file://{dest}/{TEMPLATE}")

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert "longer than the 255 a directory entry may have" in errors[0]
    assert "file left in the archive" in errors[0]
    assert (archive / name).read_bytes() == ours
    assert sorted(os.listdir(folder)) == [name]  # nothing written, no temporary file left
    assert not (archive / ".uploaded").exists()


def test_two_files_of_one_pass_never_share_a_path(archive, dest, monkeypatch, capsys):
    """--jobs 2: a file named like its neighbour's first upload duplicate,
    with the same bytes, wants the path the neighbour moves on to (its own
    holds other content). The first thread's existence check of that path
    waits until the other thread's put() of it has begun: without one writer
    per path, the second removed the first's temporary file as stale or found
    its copy identical, and both files were recorded at one path."""
    from logjam.backends import file as file_backend
    from logjam.upload import main

    names = ["x-20261121T0700Z.log.gz", "x-20261121T0700Z-logjam-upload-duplicate-01.log.gz"]
    shared = "x/2026/11/21/" + names[1]
    (dest / "x/2026/11/21").mkdir(parents=True)
    (dest / "x/2026/11/21" / names[0]).write_bytes(b"planted")
    data = gzip.compress(b"the same log\n", mtime=0)
    for name in names:
        (archive / name).write_bytes(data)
    entered = []
    both_in = threading.Event()
    real_put, real_existing = file_backend.FileUploader.put, file_backend._existing

    def counting_put(self, local, key, **kwargs):
        entered.append(key)
        if entered.count(shared) >= 2:
            both_in.set()
        return real_put(self, local, key, **kwargs)

    def waiting_existing(dir_fd, name, local, check_stop):
        if name == names[1]:
            assert both_in.wait(10), "the second put() of the shared path never began"
        return real_existing(dir_fd, name, local, check_stop)

    monkeypatch.setattr(file_backend.FileUploader, "put", counting_put)
    monkeypatch.setattr(file_backend, "_existing", waiting_existing)

    status = main(["--once", "--jobs", "2", str(archive), f"file://{dest}/{TEMPLATE}"])

    err = capsys.readouterr().err
    assert status == 0, err
    keys = {name: LedgerEntry.from_bytes(name, (archive / ".uploaded" / name).read_bytes()).confirmations[0].key
            for name in names}
    assert len(set(keys.values())) == 2, keys
    assert all((dest / key).read_bytes() == data for key in keys.values())
    assert (dest / "x/2026/11/21" / names[0]).read_bytes() == b"planted"
