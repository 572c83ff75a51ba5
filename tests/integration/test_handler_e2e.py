"""HourlyFileHandler's files are what logjam-compress takes: end to end."""

from __future__ import annotations

import datetime
import gzip
import logging
import os
import time

from logjam.handlers import HourlyFileHandler
from tests.conftest import call


def test_logjam_compress_picks_up_the_handlers_files(tmp_path):
    now = [datetime.datetime(2013, 7, 27, 12, 59, tzinfo=datetime.timezone.utc)]
    handler = HourlyFileHandler(str(tmp_path), "myapp", suffix="web-1", utc_now=lambda: now[0])
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test_handler_e2e")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("noon")
        now[0] = datetime.datetime(2013, 7, 27, 13, 0, tzinfo=datetime.timezone.utc)
        logger.info("one o'clock")
    finally:
        logger.removeHandler(handler)
        handler.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["myapp-20130727T1200Z-web-1.log", "myapp-20130727T1300Z-web-1.log"]
    hour_ago = time.time() - 3600
    for name in names:
        os.utime(tmp_path / name, (hour_ago, hour_ago))

    result = call("logjam-compress", "--once", tmp_path)

    assert result.returncode == 0, result.stderr
    archive = tmp_path / "archive"
    assert sorted(os.listdir(archive)) == [name + ".gz" for name in names]
    assert gzip.decompress((archive / (names[0] + ".gz")).read_bytes()) == b"noon\n"
    assert gzip.decompress((archive / (names[1] + ".gz")).read_bytes()) == b"one o'clock\n"
