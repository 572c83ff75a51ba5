"""logjam-status's human-readable sizes: units change at 1024, never past TiB."""

import pytest

from logjam.status import _human_bytes


@pytest.mark.parametrize("size, shown", [
    (0, "0 B"),
    (1023, "1023 B"),
    (1024, "1.0 KiB"),
    (1536, "1.5 KiB"),
    (1024**2 - 1, "1024.0 KiB"),  # rounds up without changing unit
    (1024**2, "1.0 MiB"),
    (5 * 1024**3, "5.0 GiB"),
    (1024**4, "1.0 TiB"),
    (3 * 1024**5, "3072.0 TiB"),
])
def test_human_bytes(size, shown):
    assert _human_bytes(size) == shown
