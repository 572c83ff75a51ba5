"""The recipes in docs/cat.rst, run as written against an archive that
logjam-compress and logjam-upload made."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from logjam import compress, upload
from logjam.cli import main_runner
from logjam.signals import Stop
from tests.conftest import BIN, clean_env

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cat.rst").read_text(encoding="utf-8")
TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"


def block(marker: str) -> str:
    """The code block of docs/cat.rst whose first line is marker."""
    for found in re.finditer(r"\.\. code-block:: \w+\n\n((?:    .*\n|\n)+)", DOC):
        text = "\n".join(line[4:] for line in found.group(1).splitlines())
        if text.lstrip().startswith(marker):
            return text
    raise AssertionError(f"no code block starting with {marker!r} in docs/cat.rst")


@pytest.fixture
def archive_root(tmp_path):
    """A file:// archive of two gzip streams and one zstd JSON stream, across a month end."""
    root = tmp_path / "mnt-logs"
    root.mkdir()
    logs = {
        "app-20130731T2300Z.log": b"app 23 INFO ok\napp 23 ERROR disk\n",
        "app-20130801T0000Z.log": b"app 00 ERROR net\n",
        "db-20130731T2300Z.log": b"db 23 ERROR lock\ndb 23 INFO fine\n",
        "api-20130731T2200Z.log": b'{"level": "info"}\n{"level": "error"}\n{"level": "info"}\n',
    }
    for codec, names in (("gzip", [name for name in logs if not name.startswith("api")]), ("zstd", ["api-20130731T2200Z.log"])):
        log_dir = tmp_path / f"src-{codec}"
        log_dir.mkdir()
        then = time.time() - 7200
        for name in names:
            (log_dir / name).write_bytes(logs[name])
            os.utime(log_dir / name, (then, then))
        assert main_runner("logjam-compress", compress.build_parser(), compress.make_job,
                           ["--once", "--log-level", "warning", "--codec", codec, str(log_dir)], stop=Stop()) == 0
        assert main_runner("logjam-upload", upload.build_parser(), upload.make_job,
                           ["--once", "--log-level", "warning", str(log_dir / "archive"), f"file://{root}/{TEMPLATE}"],
                           stop=Stop()) == 0
    return root


def test_duckdb_recipes_read_the_archive_in_place(archive_root):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    lines = con.sql(block("-- recipe: duckdb-lines").replace("/mnt/logs", str(archive_root))).fetchall()
    assert lines == [
        ("app", "20130731T2300Z", "app 23 ERROR disk"),
        ("db", "20130731T2300Z", "db 23 ERROR lock"),
    ]  # July only, as the glob says: the August hour is not read
    levels = con.sql(block("-- recipe: duckdb-json").replace("/mnt/logs", str(archive_root))).fetchall()
    assert levels == [("error", 1), ("info", 2)]


def test_replay_recipe_sends_every_hour_of_the_day_once(archive_root, tmp_path):
    script = block("#!/bin/bash")
    script = script.replace("s3://my-logs", f"file://{archive_root}")
    script = script.replace("vector --config replay.toml", 'cat >> "$REPLAYED"')
    (tmp_path / "replay-day.sh").write_text(script)
    replayed = tmp_path / "replayed"
    env = clean_env(REPLAYED=str(replayed), PATH=f"{BIN}:{os.environ['PATH']}")
    result = subprocess.run(["bash", str(tmp_path / "replay-day.sh"), "2013-07-31", "20"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert replayed.read_bytes() == b"app 23 INFO ok\napp 23 ERROR disk\n"
    assert result.stderr.splitlines() == [f"replayed 2013-07-31T{hour}Z" for hour in range(20, 24)]
