"""The gzip writer: independent members on any number of threads, read by every gzip reader."""

from __future__ import annotations

import gzip
import io
import random
import zlib

import pytest

from logjam.codecs import GZIP, GzipMembers


def log_text(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        line = b"%08d host%02d GET /item/%d 200 %d\n" % (total, rng.randrange(30), rng.randrange(10**6), total)
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


def members(data: bytes) -> list[bytes]:
    out = []
    while data:
        decompressor = zlib.decompressobj(31)
        out.append(decompressor.decompress(data))
        assert decompressor.eof
        data = decompressor.unused_data
    return out


def compress(data: bytes, *, threads: int, pieces: list[int], member_size: int) -> bytes:
    raw = io.BytesIO()
    with GzipMembers(raw, level=GZIP.default_level, threads=threads, member_size=member_size) as writer:
        offset = 0
        for size in pieces:
            writer.write(data[offset:offset + size])
            offset += size
        writer.write(data[offset:])
    return raw.getvalue()


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("pieces, expected_members", [
    ([], 1),                      # one write of everything: one member per write that is whole
    ([1000] * 40, 3),             # small writes gather into members of at least member_size
    ([20_000, 1, 20_000, 7], 3),  # odd sizes
])
def test_members_hold_the_log_in_order_whatever_the_threads(threads, pieces, expected_members):
    data = log_text(60_000)
    out = compress(data, threads=threads, pieces=pieces, member_size=20_000)
    assert gzip.decompress(out) == data
    assert b"".join(members(out)) == data
    assert len(members(out)) == expected_members
    assert out == compress(data, threads=1, pieces=pieces, member_size=20_000)  # same bytes on any threads


def test_empty_log_is_one_empty_member():
    raw = io.BytesIO()
    with GzipMembers(raw, level=7, threads=2):
        pass
    assert members(raw.getvalue()) == [b""]


def test_header_has_no_time_and_no_name():
    out = compress(b"x\n" * 100, threads=1, pieces=[], member_size=1 << 20)
    assert out[:4] == b"\x1f\x8b\x08\x00" and out[4:8] == b"\0\0\0\0"


def test_a_failure_inside_abandons_the_members_in_flight():
    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            raise OSError(28, "No space left on device")

    data = log_text(200_000)
    with pytest.raises(OSError), GzipMembers(Full(), level=7, threads=2, member_size=10_000) as writer:
        for start in range(0, len(data), 10_000):
            writer.write(data[start:start + 10_000])
    assert writer.closed
