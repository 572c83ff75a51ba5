"""The upload guarantees that matter, against two S3 implementations: moto
(honours If-None-Match as S3 does) and s3rver (accepts the header and
overwrites anyway). logjam probes the store once per archive and, where
conditional writes are not honoured, checks each key with HEAD first.

logjam-upload runs in-process (main_runner with its own Stop), with the
store's credentials in the environment; a counting proxy sits in front of
the store where a test counts requests."""

from __future__ import annotations

import collections
import gzip
import json
import os
import threading
import urllib.parse

import pytest

from logjam.backends.s3 import S3Uploader
from logjam.backends.s3_state import STATE_NAME
from logjam.cli import main_runner
from logjam.markers import LedgerEntry
from logjam.signals import Stop
from logjam.upload import build_parser, make_job
from tests.conftest import clean_env
from tests.s3proxy import (
    Fault,
    S3Proxy,
    delay,
    hold,
    is_complete_multipart,
    is_create_multipart,
    is_put_object,
)
from tests.s3proxy import status as answer

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
NAME = "db-20130727T1200Z.log.gz"
KEY = "db/2013/07/27/" + NAME
DUPLICATE = "db/2013/07/27/db-20130727T1200Z-logjam-upload-duplicate-01.log.gz"
MULTIPART = ("--multipart-threshold", "5MiB")


@pytest.fixture
def proxy(s3_store):
    """A counting proxy in front of the store; logjam talks to this one."""
    with S3Proxy(s3_store.endpoint).start() as proxy:
        yield proxy


@pytest.fixture
def upload(s3_store, proxy, archive, monkeypatch, capsys):
    """Runs logjam-upload --once in-process, through the proxy. Returns (status, stderr)."""
    for name, value in s3_store.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)

    def run(*extra: str, template: str = TEMPLATE) -> tuple[int, str]:
        argv = ["--once", "--endpoint-url", proxy.url, *extra,
                str(archive), f"s3://{s3_store.bucket}/{template}"]
        status = main_runner("logjam-upload", build_parser(), make_job, argv, stop=Stop())
        return status, capsys.readouterr().err

    return run


def archived(archive, name: str, text: bytes) -> bytes:
    data = gzip.compress(text, mtime=0)
    (archive / name).write_bytes(data)
    return data


def probe_objects(objects: dict) -> list[str]:
    return [key for key in objects if ".logjam-probe-" in key]


def test_probe_learns_what_the_store_does_and_remembers_it(s3_store, archive, upload, proxy):
    archived(archive, NAME, b"one\n")
    status, err = upload()
    assert status == 0, err
    state = json.loads((archive / STATE_NAME).read_text())
    [(store, answer)] = state["stores"].items()
    assert store == f"{proxy.url} {s3_store.bucket}"
    expected = "honoured" if s3_store.name == "moto" else "ignored"
    assert (answer["put"], answer["complete"]) == (expected, expected)
    assert state["multipart"] == [] and state["probes"] == []
    assert probe_objects(s3_store.objects()) == []  # deleted again
    race_warning = "cannot rule out a race with another writer of the same key"
    assert (race_warning in err) == (s3_store.name == "s3rver")

    # A later pass with work costs no probe: one request per file (plus a HEAD where needed).
    archived(archive, "db-20130727T1300Z.log.gz", b"two\n")
    proxy.clear()
    status, err = upload()
    assert status == 0, err
    methods = [method for method, _ in proxy.calls()]
    assert methods == (["PUT"] if s3_store.name == "moto" else ["HEAD", "PUT"])
    assert "probed" not in err


def test_object_written_during_a_multipart_upload_is_not_replaced(s3_store, archive, upload, proxy):
    # Another writer stores the key after logjam's first HEAD, while the
    # parts go up: the HEAD right before Complete (or If-None-Match) sees it.
    data = os.urandom(6 * 1024 * 1024)
    (archive / NAME).write_bytes(data)
    status, err = upload(*MULTIPART)  # the probe runs, the file is stored
    assert status == 0, err
    # Now a second archive file whose key another writer takes mid-upload.
    name = "db-20130727T1300Z.log.gz"
    key = "db/2013/07/27/" + name
    other = os.urandom(6 * 1024 * 1024)
    (archive / name).write_bytes(other)

    def plant(request):
        if request.method == "PUT" and "partNumber=1" in request.query:
            s3_store.client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"planted mid-upload")
        return False

    proxy.clear()
    proxy.set_faults(Fault(delay(0), where=plant))
    status, err = upload(*MULTIPART)
    assert status == 0, err
    objects = s3_store.objects()
    assert objects[key] == b"planted mid-upload"
    assert objects["db/2013/07/27/db-20130727T1300Z-logjam-upload-duplicate-01.log.gz"] == other


def test_multipart_upload_arrives_intact_without_listing_uploads(s3_store, archive, upload, proxy):
    archived(archive, "db-20130727T1100Z.log.gz", b"small, for the probe's pass\n")
    assert upload()[0] == 0
    data = os.urandom(12 * 1024 * 1024 + 123)
    (archive / NAME).write_bytes(data)

    proxy.clear()
    status, err = upload(*MULTIPART)
    calls = proxy.calls()
    creates, completes = proxy.matching(is_create_multipart), proxy.matching(is_complete_multipart)
    assert status == 0, err
    assert s3_store.objects()[KEY] == data
    # No ListMultipartUploads any more: a HEAD first only where the store needs it.
    methods = [method for method, _ in calls]
    if s3_store.name == "moto":
        assert methods == ["POST", "PUT", "PUT", "PUT", "POST"]
    else:
        assert methods == ["HEAD", "POST", "PUT", "PUT", "PUT", "HEAD", "POST"]
    assert len(creates) == len(completes) == 1
    assert json.loads((archive / STATE_NAME).read_text())["multipart"] == []


def test_conditional_writes_require_refuses_a_store_that_ignores_them(s3_store, archive, upload):
    data = archived(archive, NAME, b"x\n")
    status, err = upload("--conditional-writes", "require")
    if s3_store.name == "moto":
        assert status == 0, err
        assert s3_store.objects() == {KEY: data}
        return
    assert status == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("logjam-upload: error: s3://")
    assert "ignores If-None-Match: * on PutObject and CompleteMultipartUpload" in lines[-1]
    assert "--conditional-writes require" in lines[-1]
    assert "Traceback" not in err
    assert s3_store.objects() == {}
    assert not (archive / ".uploaded").exists()


def test_conditional_writes_off_makes_no_probe(s3_store, archive, upload, proxy):
    data = archived(archive, NAME, b"x\n")
    proxy.clear()
    status, err = upload("--conditional-writes", "off")
    assert [method for method, _ in proxy.calls()] == ["PUT"]
    assert len(proxy.matching(is_put_object)) == 1
    assert status == 0, err
    assert s3_store.objects() == {KEY: data}


def test_conditional_writes_off_keeps_checking_where_a_probe_found_them_ignored(s3_store, archive, upload, proxy):
    # A probe (auto) learnt what the store does; a later run with off must not
    # forget it: on s3rver each key is still checked with HEAD first.
    archived(archive, "db-20130727T1100Z.log.gz", b"first\n")
    status, err = upload()
    assert status == 0, err
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=KEY, Body=b"planted")
    data = archived(archive, NAME, b"ours\n")
    proxy.clear()

    status, err = upload("--conditional-writes", "off")

    assert status == 0, err
    objects = s3_store.objects()
    assert objects[KEY] == b"planted"
    assert objects[DUPLICATE] == data
    ignored = s3_store.name == "s3rver"
    assert (err.count("does not override that") == 1) == ignored, err
    assert proxy.calls()[0][0] == ("HEAD" if ignored else "PUT")  # checked before the write where ignored
    assert ".logjam-probe-" not in " ".join(path for _, path in proxy.calls())


COLLIDING = {
    # A file named like its neighbour's first upload duplicate: the key the
    # neighbour moves on to (its own key holds a planted object) is the other's own.
    "duplicate-name": (["x-20261121T0700Z.log.gz", "x-20261121T0700Z-logjam-upload-duplicate-01.log.gz"],
                       "x/2026/11/21/x-20261121T0700Z.log.gz",
                       "x/2026/11/21/x-20261121T0700Z-logjam-upload-duplicate-01.log.gz"),
    # Raw \xe9 and a literal %E9: utf8_key maps both names to one key.
    "escaped-name": ([os.fsdecode(b"caf\xe9-20261121T0700Z.log.gz"), "caf%E9-20261121T0700Z.log.gz"],
                     None, "caf%E9/2026/11/21/caf%E9-20261121T0700Z.log.gz"),
}


@pytest.mark.parametrize(("case", "same_bytes", "multipart"), [
    ("duplicate-name", False, False), ("duplicate-name", True, False),
    ("escaped-name", False, False), ("duplicate-name", False, True),
])
def test_two_files_of_one_pass_never_share_a_key(s3_store, archive, upload, proxy, monkeypatch, case, same_bytes,
                                                 multipart):
    """--jobs 2, two files whose candidate keys overlap. The first write to the
    shared key (PUT, or a multipart Complete) is held at the proxy until the
    other file's put() of that key has begun: without one writer per key,
    both checked the key with HEAD, found it free, and one overwrote the
    other (s3rver); with the same bytes both were recorded at one key."""
    names, planted, shared = COLLIDING[case]
    if planted:
        s3_store.client.put_object(Bucket=s3_store.bucket, Key=planted, Body=b"planted")
    files = {}
    for number, name in enumerate(names):
        if multipart:  # over the 5 MiB threshold; bytes that are no gzip stream upload as they are
            files[name] = os.urandom(6 * 1024 * 1024)
            (archive / name).write_bytes(files[name])
        else:
            files[name] = archived(archive, name, b"the same log\n" if same_bytes else f"log {number}\n".encode())
    entered: collections.Counter = collections.Counter()
    uploaders = []
    lock = threading.Lock()
    real_put = S3Uploader.put

    def counting_put(self, local, key, **kwargs):
        with lock:
            entered[key] += 1
            uploaders.append(self)
        return real_put(self, local, key, **kwargs)

    monkeypatch.setattr(S3Uploader, "put", counting_put)

    def at_shared_key(request) -> bool:
        return urllib.parse.unquote(request.path).endswith("/" + shared)

    def writes_shared_key(request) -> bool:
        return at_shared_key(request) and (is_complete_multipart(request) if multipart else is_put_object(request))

    def other_writer_is_there() -> bool:
        # The other file's put() of the key has begun, and it either waits for
        # the key in this process or has reached the store: checked the key
        # (HEAD, s3rver) or written it (PUT, moto); for multipart, its Complete.
        if entered[shared] < 2:
            return False
        claims = getattr(uploaders[0], "claims", None)
        if claims is not None and claims._writers.get(shared, (None, 0))[1] >= 2:
            return True
        [held] = proxy.matching(lambda request: request.fault is not None)
        later = proxy.matching(lambda request: request is not held and at_shared_key(request)
                               and request.started > held.started)
        return any(is_complete_multipart(request) if multipart else True for request in later)

    proxy.set_faults(Fault(hold(other_writer_is_there), where=writes_shared_key, count=1))

    status, err = upload("--jobs", "2", *(MULTIPART if multipart else ()))

    assert status == 0, err
    assert entered[shared] >= 2  # the two really met at the key
    assert not proxy.matching(lambda request: request.fault and request.finished - request.started >= 9)
    keys = {name: LedgerEntry.from_bytes(name, (archive / ".uploaded" / name).read_bytes()).confirmations[0].key
            for name in names}
    assert len(set(keys.values())) == len(names), keys
    objects = s3_store.objects()
    for name, key in keys.items():
        assert objects[key] == files[name], (name, key)
    if planted:
        assert objects[planted] == b"planted"


def test_probe_object_goes_under_the_templates_fixed_leading_text(s3_store, archive, upload, proxy):
    archived(archive, NAME, b"x\n")
    proxy.clear()
    status, err = upload(template="logs/{hostname}/" + TEMPLATE)
    paths = {path for method, path in proxy.calls() if ".logjam-probe-" in path}
    assert status == 0, err
    import socket

    prefix = f"/{s3_store.bucket}/logs/{socket.gethostname()}/.logjam-probe-"
    assert paths and all(path.startswith(prefix) for path in paths), paths
    assert probe_objects(s3_store.objects()) == []


def test_probe_denied_is_one_warning_and_uploads_go_on_with_head_first(s3_store, archive, upload, proxy):
    # A policy that allows writing logs but not the probe's key: the probe's
    # conditional PUT is refused (AccessDenied) while the real upload goes on.
    if s3_store.name == "s3rver":
        pytest.skip("the AccessDenied is the proxy's; one store shows it")
    data = archived(archive, NAME, b"x\n")
    proxy.clear()
    proxy.set_faults(Fault(answer(403, "AccessDenied"), where=lambda request: ".logjam-probe-" in request.path))
    status, err = upload()
    methods = [method for method, path in proxy.calls() if ".logjam-probe-" not in path]
    assert status == 0, err
    assert err.count("refused the conditional-write probe") == 1
    assert methods == ["HEAD", "PUT"]
    assert s3_store.objects() == {KEY: data}
    assert json.loads((archive / STATE_NAME).read_text())["stores"].popitem()[1]["put"] == "denied"


def test_endpoint_env_variable_works_for_both(s3_store, archive, monkeypatch, capsys):
    data = archived(archive, NAME, b"env\n")
    for name, value in clean_env(**s3_store.credentials, AWS_ENDPOINT_URL=s3_store.endpoint).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    status = main_runner("logjam-upload", build_parser(), make_job,
                         ["--once", str(archive), f"s3://{s3_store.bucket}/{TEMPLATE}"], stop=Stop())
    assert status == 0, capsys.readouterr().err
    assert s3_store.objects() == {KEY: data}


def test_probe_that_fails_fails_the_pass_in_one_line_and_the_next_pass_probes_again(s3_store, archive, upload, proxy):
    data = archived(archive, NAME, b"x\n")
    proxy.set_faults(Fault(answer(500, "InternalError"), where=lambda request: ".logjam-probe-" in request.path))

    status, err = upload("--retries", "1")

    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("logjam-upload: error: failed to probe s3://") and "InternalError" in lines[0], err
    assert not (archive / ".uploaded").exists()
    assert json.loads((archive / STATE_NAME).read_text())["stores"] == {}  # nothing learnt

    proxy.clear_faults()
    status, err = upload()
    assert status == 0, err
    assert s3_store.objects() == {KEY: data}  # the probe's object of the failed pass is gone too
    state = json.loads((archive / STATE_NAME).read_text())
    assert state["probes"] == [] and len(state["stores"]) == 1


@pytest.mark.parametrize("content", [
    {"version": 1, "stores": {"x": "x"}, "multipart": [{"key": 5}]},  # the tester's
    {"version": 1, "stores": [], "multipart": {}, "probes": "x"},
    "fifo",
])
def test_state_file_of_the_wrong_shape_is_one_warning_then_rewritten(s3_store, archive, upload, content):
    state = archive / STATE_NAME
    if content == "fifo":
        os.mkfifo(state)  # opening it would block the pass: never opened
    else:
        state.write_text(json.dumps(content))
    archived(archive, NAME, b"one\n")

    status, err = upload()

    assert status == 0, err
    assert "unexpected" not in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if STATE_NAME in line]) == 1, err
    rewritten = json.loads(state.read_text())
    assert list(rewritten["stores"].values())[0]["put"] in ("honoured", "ignored")
    archived(archive, "db-20130727T1300Z.log.gz", b"two\n")
    status, err = upload()
    assert status == 0 and STATE_NAME not in err, err


def test_state_file_keeps_the_well_formed_entries(archive):
    from logjam import fsutil
    from logjam.backends.s3_state import S3State

    good = {"token": "t1", "store": "s", "key": "k", "upload_id": "u1", "started": 1.0}
    (archive / STATE_NAME).write_text(json.dumps({
        "version": 1, "stores": {"s": {"put": "ignored", "complete": "ignored"}, "bad": "x"},
        "multipart": [good, {"key": 5}, {"store": "s", "key": "k2", "upload_id": None}],
        "probes": [{"store": "s", "key": "p"}, 7]}))
    fd = fsutil.open_dir(str(archive))
    try:
        state = S3State(fd)
    finally:
        os.close(fd)
    assert state.store("s") == {"put": "ignored", "complete": "ignored"}
    assert state.store("bad") is None
    entries = state.uploads("s")
    assert [entry["key"] for entry in entries] == ["k", "k2"]
    assert entries[0] == good and isinstance(entries[1]["token"], str)
    assert state.probes("s") == ["p"]
    assert json.loads((archive / STATE_NAME).read_text())["stores"].keys() == {"s"}  # rewritten
