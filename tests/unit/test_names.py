"""Names logjam makes: bounded temporary and hidden names, recognised in
both the current and the earlier style."""

from __future__ import annotations

import os

import pytest

from logjam import fsutil
from logjam.archive import DUPLICATE_MARK
from logjam.removal import _original_name, removing_name

LONG = "x" * 233 + "-20130727T1200Z.log"  # 252 bytes
WIDE = "é" * 100 + "-20130727T1200Z.log"  # 219 characters, 219 + 100 bytes: too long, but a temp must still fit


@pytest.mark.parametrize("final", ["app-20130727T1200Z.log.gz", LONG + ".gz", "x" * 255, WIDE])
def test_temp_names_are_bounded_and_recognised(final):
    name = fsutil.temp_name(final)
    assert len(os.fsencode(name)) <= 126
    assert fsutil.is_temp_name(name)
    assert fsutil.is_temp_for(name, final_name=final)
    assert not fsutil.is_temp_for(name, final_name=final + "x")
    assert fsutil.temp_name(final) != name  # unique


@pytest.mark.parametrize(
    ("name", "final", "for_it"),
    [
        (".app-20130727T1200Z.log.gz.logjam-tmp-999999-deadbeef", "app-20130727T1200Z.log.gz", True),  # old style
        (".app-20130727T1200Z.log.gz.logjam-tmp-999999-deadbeef", "app-20130727T1300Z.log.gz", False),
        ("app-20130727T1200Z.log.gz", "app-20130727T1200Z.log.gz", False),
    ],
)
def test_is_temp_for_reads_both_styles(name, final, for_it):
    assert fsutil.is_temp_for(name, final_name=final) is for_it
    assert fsutil.is_temp_name(name) is name.startswith(".")


def test_removing_names_are_fixed_size_hidden_and_not_temporary():
    names = {removing_name(n) for n in ["a-20130727T1200Z.log", LONG]}
    assert len(names) == 2
    assert {len(n) for n in names} == {len(".logjam-rm-") + 32}
    assert not any(fsutil.is_temp_name(n) for n in names)  # stale-temp cleanup must never take a log


@pytest.mark.parametrize(
    ("archived", "original"),
    [
        ("app-20130727T1200Z.log.gz", "app-20130727T1200Z.log"),
        ("app-20130727T1200Z-web1.log.zst", "app-20130727T1200Z-web1.log"),
        (f"app{DUPLICATE_MARK}-20130727T1200Z.log.gz", "app-20130727T1200Z.log"),
        (f"app{DUPLICATE_MARK}-07-20130727T1200Z.log.gz", "app-20130727T1200Z.log"),
        ("app-20130727T1200Z.log", None),  # not an archived file
        ("notes.txt.gz", None),
    ],
)
def test_an_archived_name_tells_which_log_it_was(archived, original):
    assert _original_name(archived) == original
