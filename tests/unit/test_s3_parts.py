"""How many parts of one file go at once: from its size and the files uploading beside it."""

import pytest

from logjam.backends.s3_multipart import PART_WORKERS, PART_WORKERS_ALONE, part_workers

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
