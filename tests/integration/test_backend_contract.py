"""One suite, every backend (rclone's fstests): what a destination promises,
checked against file:// (a directory), S3 on moto (honours If-None-Match as
S3 does) and S3 on s3rver (accepts it and overwrites anyway, so logjam
checks each key with HEAD first).

logjam-upload runs in-process (main_runner with its own Stop); S3 goes
through a counting proxy. The backend API (put, head, get, list_keys) is
also called directly, on an uploader made by the registry."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logjam import fsutil
from logjam.backends import get_uploader
from logjam.backends.base import LocalFile, PutResult
from logjam.cli import main_runner
from logjam.codecs import codec_for_filename
from logjam.errors import FileError
from logjam.integrity import file_fingerprint
from logjam.markers import Confirmation, LedgerEntry
from logjam.signals import Stop
from logjam.upload import build_parser, make_job
from tests.conftest import Store, make_store, tree
from tests.s3proxy import S3Proxy

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
NAME = "db-20130727T1200Z.log.gz"
KEY = "db/2013/07/27/" + NAME
DUPLICATE = "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz"
MULTIPART = ("--multipart-threshold", "5MiB")  # the file:// backend takes it and has nothing to split

Upload = Callable[..., tuple[int, str]]
MakeLocal = Callable[[str, bytes], LocalFile]


@dataclass
class Destination:
    """One backend under test: where its URIs point and how to look at what it holds."""

    name: str  # file, moto or s3rver
    scheme: str
    place: str  # the root or the bucket, as the ledger names it
    base: str  # the URI up to the template: file:///ROOT or s3://BUCKET
    root: Path | None = None  # file://
    store: Store | None = None  # S3
    proxy: S3Proxy | None = None  # S3: counts what logjam sends

    def uri(self, template: str = TEMPLATE) -> str:
        return f"{self.base}/{template}"

    def argv(self) -> list[str]:
        return ["--endpoint-url", self.proxy.url] if self.proxy else []

    def objects(self) -> dict[str, bytes]:
        """Everything the destination holds, by key (temporary files included)."""
        if self.store is not None:
            return self.store.objects()
        assert self.root is not None
        return tree(self.root)

    def plant(self, key: str, data: bytes) -> None:
        """Stores data at key as another writer would."""
        if self.store is not None:
            self.store.client.put_object(Bucket=self.store.bucket, Key=key, Body=data)
            return
        assert self.root is not None
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)

    def delete(self, key: str) -> None:
        if self.store is not None:
            self.store.client.delete_object(Bucket=self.store.bucket, Key=key)
        else:
            assert self.root is not None
            (self.root / key).unlink()

    def requests(self) -> list[tuple[str, str]]:
        """What logjam sent since the last clear (S3); a directory takes no requests."""
        return self.proxy.calls() if self.proxy else []

    def clear(self) -> None:
        if self.proxy:
            self.proxy.clear()


@pytest.fixture(params=["file", "moto", "s3rver"])
def destination(request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Destination]:
    if request.param == "file":
        root = tmp_path / "dest"
        root.mkdir()
        yield Destination("file", "file", str(root), f"file://{root}", root=root)
        return
    store = make_store(request, request.param)
    for name, value in store.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    with S3Proxy(store.endpoint).start() as proxy:
        yield Destination(request.param, "s3", store.bucket, f"s3://{store.bucket}", store=store, proxy=proxy)


@pytest.fixture
def upload(destination: Destination, archive: Path, capsys: pytest.CaptureFixture[str]) -> Upload:
    """Runs logjam-upload --once in-process to the destination. Returns (status, stderr)."""

    def run(*extra: str, template: str = TEMPLATE) -> tuple[int, str]:
        argv = ["--once", *destination.argv(), *extra, str(archive), destination.uri(template)]
        make: Any = make_job  # an UploadJob is the runner's job
        status = main_runner("logjam-upload", build_parser(), make, argv, stop=Stop())
        return status, capsys.readouterr().err

    return run


def archived(archive: Path, name: str, text: bytes) -> bytes:
    data = gzip.compress(text, mtime=0)
    (archive / name).write_bytes(data)
    return data


def big(archive: Path, name: str) -> bytes:
    """A file over the 5 MiB multipart threshold (random bytes upload as they are)."""
    data = os.urandom(6 * 1024 * 1024)
    (archive / name).write_bytes(data)
    return data


def confirmation(archive: Path, name: str = NAME) -> Confirmation:
    [confirmed] = LedgerEntry.from_bytes(name, (archive / ".uploaded" / name).read_bytes()).confirmations
    return confirmed


# -- through logjam-upload ---------------------------------------------------------

def test_stores_each_file_at_its_key_and_records_it(destination: Destination, archive: Path, upload: Upload) -> None:
    first = archived(archive, NAME, b"one\n")
    second = archived(archive, "web-20131231T2300Z-us-east-1.log.gz", b"two\n")

    status, err = upload()

    assert status == 0, err
    assert destination.objects() == {KEY: first, "web/2013/12/31/web-20131231T2300Z-us-east-1.log.gz": second}
    assert sorted(os.listdir(archive / ".uploaded")) == sorted([NAME, "web-20131231T2300Z-us-east-1.log.gz"])
    assert f"uploaded {archive}/{NAME} -> {destination.base}/{KEY}" in err
    marker = confirmation(archive)
    assert marker.location == f"{destination.base}/{KEY}"
    assert marker.key == KEY
    assert (marker.destination.scheme, marker.destination.bucket) == (destination.scheme, destination.place)
    assert marker.fingerprint.size == len(first)
    assert marker.fingerprint.log_sha256 == hashlib.sha256(b"one\n").hexdigest()


@pytest.mark.parametrize("multipart", [False, True], ids=["put", "multipart"])
def test_a_later_pass_sends_nothing_again(destination: Destination, archive: Path, upload: Upload,
                                          multipart: bool) -> None:
    data = big(archive, NAME) if multipart else archived(archive, NAME, b"once\n")
    extra = MULTIPART if multipart else ()
    status, err = upload(*extra)
    assert status == 0, err
    assert destination.objects() == {KEY: data}

    # Nothing is asked or written again: a copy deleted since stays deleted.
    destination.delete(KEY)
    destination.clear()
    status, err = upload(*extra)

    assert status == 0, err
    assert destination.requests() == []
    assert destination.objects() == {}


def test_a_pass_with_nothing_to_send_asks_nothing(destination: Destination, archive: Path, upload: Upload) -> None:
    status, err = upload()
    assert status == 0, err
    assert destination.requests() == []
    assert destination.objects() == {}


@pytest.mark.parametrize("multipart", [False, True], ids=["put", "multipart"])
def test_other_content_is_never_overwritten_and_ours_goes_beside_it(destination: Destination, archive: Path,
                                                                    upload: Upload, multipart: bool) -> None:
    destination.plant(KEY, b"someone else's object")
    data = big(archive, NAME) if multipart else archived(archive, NAME, b"ours\n")

    status, err = upload(*(MULTIPART if multipart else ()))

    assert status == 0, err
    assert destination.objects() == {KEY: b"someone else's object", DUPLICATE: data}
    assert "holds other content" in err
    assert confirmation(archive).location == f"{destination.base}/{DUPLICATE}"
    if multipart and destination.name == "moto":  # s3rver cannot list multipart uploads
        store = destination.store
        assert store is not None
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_identical_content_is_recorded_not_duplicated(destination: Destination, archive: Path, upload: Upload) -> None:
    # What a retry after a lost reply sees: the object is there, the ledger is not.
    data = archived(archive, NAME, b"same\n")
    destination.plant(KEY, data)

    status, err = upload()

    assert status == 0, err
    assert destination.objects() == {KEY: data}
    assert os.listdir(archive / ".uploaded") == [NAME]
    assert "found already uploaded" in err
    assert confirmation(archive).key == KEY


def test_duplicates_are_numbered_in_order(destination: Destination, archive: Path, upload: Upload) -> None:
    destination.plant(KEY, b"first other")
    destination.plant(DUPLICATE, b"second other")
    data = archived(archive, NAME, b"ours\n")

    status, err = upload()

    assert status == 0, err
    assert destination.objects() == {
        KEY: b"first other",
        DUPLICATE: b"second other",
        "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-02.log.gz": data,
    }


def test_empty_suffix_makes_no_double_slash(destination: Destination, archive: Path, upload: Upload) -> None:
    data = archived(archive, NAME, b"x\n")
    suffixed = archived(archive, "db-20130727T1200Z-eu.log.gz", b"y\n")

    status, err = upload(template="{prefix}/{suffix}/{year}/{month}/{day}/{filename}")

    assert status == 0, err
    assert destination.objects() == {KEY: data, "db/eu/2013/07/27/db-20130727T1200Z-eu.log.gz": suffixed}
    assert confirmation(archive).key == KEY
    assert confirmation(archive).location == f"{destination.base}/{KEY}"


# -- the backend API, called directly ---------------------------------------------

@pytest.fixture
def backend(destination: Destination, archive: Path) -> Iterator[Any]:
    """The registry's uploader for the destination, connected, in a pass."""
    args = build_parser().parse_args([*destination.argv(), str(archive), destination.uri()])
    uploader = get_uploader(args.uri, args)
    uploader.check_uri()
    uploader.connect()
    fd = fsutil.open_dir(str(archive))
    try:
        uploader.begin_pass(fd)
        yield uploader
    finally:
        os.close(fd)


@pytest.fixture
def local(archive: Path) -> Iterator[MakeLocal]:
    """local(name, data): an archived file opened and measured for put()."""
    fds: list[int] = []

    def make(name: str, data: bytes) -> LocalFile:
        (archive / name).write_bytes(data)
        fd = os.open(archive / name, os.O_RDONLY)
        fds.append(fd)
        codec = codec_for_filename(name)
        return LocalFile(fd=fd, name=name, fingerprint=file_fingerprint(fd, codec),
                         content_type=codec.content_type if codec else "application/octet-stream")

    yield make
    for fd in fds:
        os.close(fd)


def never_stop() -> None:
    pass


def test_put_head_get_and_list(destination: Destination, backend: Any, local: MakeLocal) -> None:
    data = gzip.compress(b"stored\n", mtime=0)
    mine = local(NAME, data)

    assert backend.head(KEY) is None
    assert backend.put(mine, KEY, check_stop=never_stop) is PutResult.STORED
    head = backend.head(KEY)
    assert head is not None and head.size == len(data)
    download = backend.get(KEY)
    with download.body:
        assert (download.size, download.body.read()) == (len(data), data)
    with backend.open_object(KEY) as stream:
        assert stream.read() == data
    assert list(backend.list_keys("db/2013/")) == [(KEY, len(data))]
    assert backend.list_levels("db/") == ["db/2013/"]
    assert backend.describe(KEY) == f"{destination.base}/{KEY}"
    assert destination.objects() == {KEY: data}


def test_put_never_replaces_and_recognises_the_same_bytes(destination: Destination, backend: Any,
                                                           local: MakeLocal) -> None:
    data = gzip.compress(b"first\n", mtime=0)
    assert backend.put(local(NAME, data), KEY, check_stop=never_stop) is PutResult.STORED
    # The same bytes again (another name: a copy of the file): identical, nothing written.
    assert backend.put(local("copy-" + NAME, data), KEY, check_stop=never_stop) is PutResult.CONFLICT
    backend.claims.new_pass()  # a later pass: the key no longer held by this pass's file
    assert backend.put(local("copy-" + NAME, data), KEY, check_stop=never_stop) is PutResult.IDENTICAL
    other = gzip.compress(b"other\n", mtime=0)
    assert backend.put(local("other-" + NAME, other), KEY, check_stop=never_stop) is PutResult.CONFLICT
    assert destination.objects() == {KEY: data}


def test_a_key_with_an_empty_segment_is_collapsed_or_refused(destination: Destination, backend: Any,
                                                              local: MakeLocal) -> None:
    # A directory tree has no empty segments ("db//x" is "db/x"): file://
    # stores such a key at the collapsed path; S3 would keep "db//x" apart
    # from "db/x", so it refuses the key (logjam's templates never make one).
    # logjam-cat lists by what collapses_empty_segments says.
    data = gzip.compress(b"x\n", mtime=0)
    if backend.collapses_empty_segments:
        assert backend.put(local(NAME, data), "db//2013/" + NAME, check_stop=never_stop) is PutResult.STORED
        assert destination.objects() == {"db/2013/" + NAME: data}
    else:
        with pytest.raises(FileError, match="empty, '.' or '..' segment"):
            backend.put(local(NAME, data), "db//2013/" + NAME, check_stop=never_stop)
        assert destination.objects() == {}
    assert backend.collapses_empty_segments is (destination.name == "file")
