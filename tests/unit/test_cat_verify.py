"""logjam.cat.verify: which fingerprint an object is checked against, and what fails."""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import tempfile

import pytest

from logjam.backends.base import Download
from logjam.cat import verify
from logjam.codecs import GZIP, ZSTD
from logjam.errors import FileError

LOG = b"a line\n" * 100
GOOD = gzip.compress(LOG, mtime=0)
OTHER = gzip.compress(b"another log\n", mtime=0)
DAMAGED = GOOD[:-5] + bytes([GOOD[-5] ^ 1]) + GOOD[-4:]  # the stored CRC-32 no longer holds


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


META = {"logjam-sha256": sha256(GOOD)}


# (what the store says, the bytes that arrived, codec) -> what it was checked against, or the error
@pytest.mark.parametrize("metadata, store_sha256, etag_md5, arrived, codec, outcome", [
    (META, None, None, GOOD, GZIP, "its logjam-sha256 metadata"),
    (META, None, None, OTHER, GZIP, FileError("does not match its logjam-sha256 metadata")),
    # the store's checksums describe the forgery; logjam's fingerprint wins
    (META, sha256(OTHER), md5(OTHER), OTHER, GZIP, FileError("logjam-sha256")),
    # the store's checksums prove the transfer, not a whole log: the stream is checked too
    ({}, sha256(GOOD), None, GOOD, GZIP, "the store's SHA-256 checksum and its gzip checksums"),
    ({}, sha256(GOOD), None, OTHER, GZIP, FileError("does not match the store's SHA-256 checksum")),
    ({}, None, md5(GOOD), GOOD, GZIP, "its MD5 ETag and its gzip checksums"),
    ({}, None, md5(GOOD), OTHER, GZIP, FileError("does not match its MD5 ETag")),
    ({}, None, md5(GOOD[:20]), GOOD[:20], GZIP, FileError("damaged: not a whole gzip stream")),
    ({}, sha256(GOOD[:-1]), None, GOOD[:-1], GZIP, FileError("damaged")),
    ({}, None, md5(b"plain text\n"), b"plain text\n", None, "its MD5 ETag"),
    ({}, None, None, GOOD, GZIP, "its gzip checksums"),
    ({}, None, None, DAMAGED, GZIP, FileError("damaged: not a whole gzip stream")),
    ({}, None, None, GOOD[:-1], GZIP, FileError("damaged")),
    ({}, None, None, GOOD, ZSTD, FileError("not a whole zstd stream")),
    ({}, None, None, b"plain text\n", None, "nothing"),
])
def test_verify(metadata, store_sha256, etag_md5, arrived, codec, outcome, caplog):
    download = Download(io.BytesIO(), len(arrived), metadata, sha256=store_sha256, md5=etag_md5)
    with tempfile.TemporaryFile() as spool:
        spool.write(arrived)
        spool.flush()
        md5_arrived = md5(arrived) if etag_md5 else None
        if isinstance(outcome, FileError):
            with pytest.raises(FileError, match=str(outcome)) as raised:
                verify(download, spool.fileno(), codec, sha256=sha256(arrived), md5=md5_arrived, where="s3://b/key")
            assert str(raised.value).startswith("s3://b/key: ") and "not passed on" in str(raised.value)
        else:
            with caplog.at_level(logging.WARNING, logger="logjam.cat"):
                assert verify(download, spool.fileno(), codec, sha256=sha256(arrived), md5=md5_arrived, where="s3://b/key") == outcome
            assert ("passed on unchecked" in caplog.text) == (outcome == "nothing")

