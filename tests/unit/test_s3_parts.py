"""How many parts of one file go at once: from its size and the files uploading beside it."""

import pytest

from logjam.backends.s3_multipart import PART_SIZE, PART_WORKERS, PART_WORKERS_ALONE, part_size_for, part_workers

MiB = 1 << 20


@pytest.mark.parametrize("size, files, expected", [
    (1024 * MiB, 1, PART_WORKERS_ALONE),  # alone: every part buffer the process may hold
    (1024 * MiB, 2, PART_WORKERS),        # beside others: they share the buffers
    (1024 * MiB, 4, PART_WORKERS),
    (24 * MiB, 1, 3),                     # never more than the file has parts
    (17 * MiB, 3, 3),
    (1, 1, 1),
])
def test_part_workers(size, files, expected):
    assert part_workers(size, 8 * MiB, files_in_flight=files) == expected


@pytest.mark.parametrize("files, limit", [(1, PART_WORKERS_ALONE), (2, PART_WORKERS)])
def test_larger_parts_go_fewer_at_once_to_hold_the_same_bytes(files, limit):
    size = 200 * 1024 * MiB  # over 10,000 parts of 8 MiB: 32 MiB parts
    part_size = part_size_for(size)
    assert part_size == 32 * MiB
    workers = part_workers(size, part_size, files_in_flight=files)
    assert workers * part_size <= limit * PART_SIZE
    assert workers == max(1, limit // 4)


def test_smaller_parts_never_go_more_than_the_buffers():
    assert part_workers(1024 * MiB, 5 * MiB, files_in_flight=1) == PART_WORKERS_ALONE
