"""The ledger's pure parts: the marker format (new and old), destinations
as values, and what proves an upload (logjam.ledger)."""

from __future__ import annotations

import hashlib

import pytest

from logjam.backends.base import RemoteObject
from logjam.integrity import Fingerprint
from logjam.markers import (
    FORMAT,
    UNKNOWN_ENDPOINT,
    Confirmation,
    Destination,
    LedgerEntry,
    MarkerError,
    normalise_endpoint,
)
from logjam.proof import Proof, judge

DATA = b"archived bytes"
PRINT = Fingerprint(len(DATA), hashlib.sha256(DATA).hexdigest(), log_length=5, log_sha256="ab" * 32)
S3 = Destination(scheme="s3", bucket="my-logs")
MINIO = Destination(scheme="s3", bucket="my-logs", endpoint="http://minio:9000")
NFS = Destination(scheme="file", bucket="/mnt/nfs/logs")

# Names that str.splitlines() would cut: \r, \x0b, \x0c, \x1c-\x1e, U+0085,
# U+2028, U+2029; and a byte that is not UTF-8 (as os.listdir gives it).
ODD = ["a\rb", "a\x0bb", "a\x0cb", "a\x1cb", "a\x85b", "a\u2028b", "a\u2029b", "caf\udce9", "a=b", "a\nb"]


@pytest.mark.parametrize("prefix", ODD)
def test_any_name_and_key_survive_a_marker(prefix):
    name = f"{prefix}-20130727T1200Z.log.gz"
    key = f"{prefix}/2013/07/27/{name}"
    entry = LedgerEntry(name, (Confirmation(S3, key, PRINT, location=f"s3://my-logs/{key}"),
                               Confirmation(NFS, "other/" + key, PRINT, location=f"file:///mnt/nfs/logs/other/{key}")))
    data = entry.to_bytes()
    assert data.isascii()
    assert LedgerEntry.from_bytes(name, data) == entry


@pytest.mark.parametrize("prefix", ODD[:-1])  # the old format could never hold a "\n"
def test_old_format_is_read_splitting_on_newlines_only(prefix):
    name = f"{prefix}-20130727T1200Z.log.gz"
    key = f"{prefix}/2013/07/27/{name}"
    old = (f"destination=s3://my-logs/{key}\nkey={key}\nsize={PRINT.size}\nsha256={PRINT.sha256}\n"
           f"log_length=5\nlog_sha256={'ab' * 32}\n").encode("utf-8", "surrogateescape")
    [confirmation] = LedgerEntry.from_bytes(name, old).confirmations
    assert confirmation.key == key
    assert confirmation.fingerprint == PRINT
    assert confirmation.destination == Destination(scheme="s3", bucket="my-logs", endpoint=UNKNOWN_ENDPOINT)
    # It named no endpoint: it counts for any endpoint of that bucket.
    assert LedgerEntry.from_bytes(name, old).at(MINIO) == confirmation
    assert LedgerEntry.from_bytes(name, old).at(Destination(scheme="s3", bucket="other-bucket")) is None


def test_old_format_file_destination_is_its_root():
    old = b"destination=file:///mnt/nfs/logs/db/x.gz\nkey=db/x.gz\nsize=3\nsha256=00\n"
    [confirmation] = LedgerEntry.from_bytes("x.gz", old).confirmations
    assert confirmation.destination == NFS


@pytest.mark.parametrize("data, says", [
    (b"", "empty marker"),
    (b"\n  \n", "empty marker"),
    (b"s3://my-logs/x\nsize 3\nsha256 00\n", "names no key"),  # an early development format
    (b"key=x\n", "names no key"),
    (b"key=x\nsize=many\nsha256=00\n", "unreadable"),
    (b"{not json", "unreadable"),
    (b'{"format": "something else"}', "not a marker"),
    (('{"format": "%s", "uploads": []}' % FORMAT).encode(), "names no destination"),
    (('{"format": "%s", "uploads": [{"scheme": "s3"}]}' % FORMAT).encode(), "unreadable"),
])
def test_a_marker_that_says_nothing_usable_is_an_error(data, says):
    with pytest.raises(MarkerError, match=says):
        LedgerEntry.from_bytes("x", data)


def test_destinations_are_values():
    assert Destination(scheme="s3", bucket="my-logs", endpoint=None).includes(S3)
    assert not S3.includes(MINIO) and not MINIO.includes(S3)
    assert not S3.includes(Destination(scheme="s3", bucket="other"))
    assert not NFS.includes(Destination(scheme="file", bucket="/mnt/nfs"))
    assert Destination(scheme="s3", bucket="my-logs", endpoint=UNKNOWN_ENDPOINT).includes(MINIO)
    assert str(MINIO) == "s3://my-logs at http://minio:9000" and str(S3) == "s3://my-logs"
    assert str(NFS) == "file:///mnt/nfs/logs"


@pytest.mark.parametrize("given, expected", [
    (None, None),
    ("", None),
    ("http://minio:9000", "http://minio:9000"),
    ("HTTP://MinIO:9000/", "http://minio:9000"),
    ("https://user:secret@minio.example/", "https://minio.example"),  # never a credential in the ledger
    ("http://[::1]:9000", "http://[::1]:9000"),
])
def test_normalise_endpoint(given, expected):
    assert normalise_endpoint(given) == expected


def test_recording_a_destination_keeps_the_others_of_the_same_bytes_only():
    other_bytes = Fingerprint(3, "00" * 32)
    entry = LedgerEntry("x", (Confirmation(NFS, "k", other_bytes), Confirmation(MINIO, "k", PRINT)))
    updated = entry.with_confirmation(Confirmation(S3, "k2", PRINT))
    assert updated.confirmations == (Confirmation(MINIO, "k", PRINT), Confirmation(S3, "k2", PRINT))
    assert updated.without(S3).confirmations == (Confirmation(MINIO, "k", PRINT),)
    assert updated.at(S3).matches(Fingerprint(PRINT.size, PRINT.sha256))
    assert not updated.at(S3).matches(other_bytes)


MD5 = hashlib.md5(DATA).hexdigest()
SHA = PRINT.sha256


@pytest.mark.parametrize("remote, local_md5, proof", [
    (None, None, Proof.MISSING),
    (RemoteObject(PRINT.size + 1, {"logjam-sha256": SHA}), None, Proof.DIFFERENT),
    # The size alone proves nothing (issue #8 §4).
    (RemoteObject(PRINT.size, {}), None, Proof.UNCONFIRMED),
    (RemoteObject(PRINT.size, {}), MD5, Proof.UNCONFIRMED),  # no ETag that is an MD5
    (RemoteObject(PRINT.size, {"logjam-sha256": SHA}), None, Proof.CONFIRMED),
    (RemoteObject(PRINT.size, {"logjam-sha256": "0" * 64}), None, Proof.DIFFERENT),
    (RemoteObject(PRINT.size, {"logjam-sha256": SHA, "logjam-log-length": "6"}), None, Proof.DIFFERENT),
    (RemoteObject(PRINT.size, {}, sha256=SHA), None, Proof.CONFIRMED),
    (RemoteObject(PRINT.size, {}, sha256="0" * 64), None, Proof.DIFFERENT),
    # What the store computed outranks metadata a copy carried along.
    (RemoteObject(PRINT.size, {"logjam-sha256": SHA}, sha256="0" * 64), None, Proof.DIFFERENT),
    (RemoteObject(PRINT.size, {}, md5=MD5), MD5, Proof.CONFIRMED),
    (RemoteObject(PRINT.size, {}, md5="0" * 32), MD5, Proof.DIFFERENT),
    (RemoteObject(PRINT.size, {}, md5=MD5), None, Proof.UNCONFIRMED),  # the local file is gone
])
def test_what_proves_an_upload(remote, local_md5, proof):
    assert judge(remote, PRINT, local_md5=lambda: local_md5).proof is proof


@pytest.mark.parametrize("remote, thorough, proof, md5_read", [
    # Review item 3: any evidence that contradicts wins over metadata that agrees.
    (RemoteObject(PRINT.size, {"logjam-sha256": SHA}, md5="0" * 32), False, Proof.DIFFERENT, True),
    (RemoteObject(PRINT.size, {"logjam-sha256": SHA}, md5=MD5), False, Proof.CONFIRMED, True),
    # A store-computed SHA-256 that agrees: --verify/--check do not read the
    # local file; retention (thorough) compares the ETag all the same.
    (RemoteObject(PRINT.size, {"logjam-sha256": SHA}, sha256=SHA, md5="0" * 32), False, Proof.CONFIRMED, False),
    (RemoteObject(PRINT.size, {"logjam-sha256": SHA}, sha256=SHA, md5="0" * 32), True, Proof.DIFFERENT, True),
    (RemoteObject(PRINT.size, {"logjam-sha256": SHA}, sha256=SHA, md5=MD5), True, Proof.CONFIRMED, True),
    # Already contradicted: no need to read the local file.
    (RemoteObject(PRINT.size, {"logjam-sha256": "0" * 64}, md5=MD5), True, Proof.DIFFERENT, False),
])
def test_contradicting_evidence_wins(remote, thorough, proof, md5_read):
    reads = []
    verdict = judge(remote, PRINT, local_md5=lambda: reads.append(1) or MD5, thorough=thorough)
    assert (verdict.proof, bool(reads)) == (proof, md5_read), verdict.detail


@pytest.mark.parametrize("metadata, detail", [
    ({"logjam-sha256": SHA, "logjam-log-sha256": "cd" * 32}, f"log sha256 metadata is {'cd' * 32}, recorded {'ab' * 32}"),
    ({"logjam-sha256": SHA, "logjam-log-length": "6"}, "log length metadata is 6, recorded 5"),
    ({"logjam-sha256": SHA, **PRINT.metadata()}, "sha256 metadata matches"),
])
def test_metadata_is_compared_as_the_writer_stores_it(metadata, detail):
    # The names and the values come from Fingerprint.metadata, what an upload stores.
    assert judge(RemoteObject(PRINT.size, metadata), PRINT).detail == detail


def test_metadata_leaves_out_what_is_not_known():
    assert Fingerprint(1, SHA).metadata() == {"logjam-sha256": SHA}
    assert Fingerprint(1, SHA, log_sha256="ab" * 32).metadata() == {"logjam-sha256": SHA, "logjam-log-sha256": "ab" * 32}
    assert PRINT.metadata() == {"logjam-sha256": SHA, "logjam-log-sha256": "ab" * 32, "logjam-log-length": "5"}


@pytest.mark.parametrize("found, detail", [
    (PRINT, None),
    (Fingerprint(PRINT.size, PRINT.sha256), f"log_sha256 is None, recorded {'ab' * 32}"),  # does not decompress
    (Fingerprint(PRINT.size + 1, PRINT.sha256, log_length=5, log_sha256="ab" * 32), f"size is {PRINT.size + 1}, recorded {PRINT.size}"),
    (Fingerprint(PRINT.size, "00" * 32, log_length=5, log_sha256="ab" * 32), f"sha256 is {'00' * 32}, recorded {SHA}"),
    (Fingerprint(PRINT.size, SHA, log_length=6, log_sha256="ab" * 32), "log_length is 6, recorded 5"),
])
def test_a_fingerprint_read_back_against_the_recorded_one(found, detail):
    assert found.mismatch(PRINT) == detail
    # A fingerprint recorded without the log's (a file that did not decompress): only size and sha256 count.
    assert found.mismatch(Fingerprint(PRINT.size, PRINT.sha256)) == (None if detail is None or "log" in detail else detail)


# -- the idle pass's shortcut agrees with a full parse (review item 6) ------------

def _marker(*confirmations: Confirmation) -> bytes:
    return LedgerEntry("n", confirmations).to_bytes()


def _at(destination: Destination, key: str = "k") -> Confirmation:
    return Confirmation(destination, key, PRINT, location=f"{destination}/{key}")


SIGNATURE_LOOKALIKE = '",\n   "endpoint": null,\n   "bucket": "my-logs",\n'  # inside a key: escaped


@pytest.mark.parametrize("data, here", [
    (_marker(_at(S3)), True),
    (_marker(_at(NFS), _at(S3)), True),
    (_marker(_at(MINIO)), False),  # same bucket, other endpoint
    (_marker(_at(Destination(scheme="s3", bucket="my-logs-2"))), False),  # a bucket the name is a prefix of
    (_marker(_at(Destination(scheme="s3", bucket="my-logs", endpoint=UNKNOWN_ENDPOINT))), True),  # old marker's "any endpoint", parsed
    (_marker(_at(NFS, key=SIGNATURE_LOOKALIKE)), False),
    (_marker(_at(S3))[:-3], None),  # cut short: parsed, and unreadable
    (b"key=a/k\nsize=14\nsha256=" + PRINT.sha256.encode() + b"\ndestination=s3://my-logs/a/k\n", True),  # old format
    (b"", None),
])
def test_standing_takes_a_marker_as_a_full_parse_does(tmp_path, data, here):
    import os

    from logjam.ledger import Ledger, Standing

    (tmp_path / ".uploaded").mkdir()
    (tmp_path / ".uploaded" / "n").write_bytes(data)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        standing = Standing.of(Ledger(fd), S3, clean=False)
    finally:
        os.close(fd)
    assert ("n" in standing.here, "n" in standing.elsewhere, "n" in standing.bad) == (
        here is True, here is False, here is None)
    if here:
        try:
            expected = LedgerEntry.from_bytes("n", data).at(S3)
        except MarkerError:
            expected = None
        assert standing.here["n"] == expected and standing.here["n"].destination.includes(S3)
