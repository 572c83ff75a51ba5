"""The pass skeleton every command shares (logjam.passes), and the jobs built
on it: one context, one lock, a dry run that is the same pass reading only."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator

import pytest

from logjam import compress, fsutil, upload
from logjam.errors import UsageError
from logjam.passes import PassContext, PassSettings, run_pass
from logjam.runner import PassStats
from logjam.signals import Stop
from logjam.verify import VerifyJob

NOW = datetime.datetime(2013, 7, 27, 15, 0, tzinfo=datetime.timezone.utc)


@contextlib.contextmanager
def _held_lock(path: str, name: str) -> Iterator[bool]:
    # Another instance's lock: flock conflicts between open file descriptions, even in one process.
    dir_fd = fsutil.open_dir(path)
    try:
        with fsutil.directory_lock(dir_fd, name) as locked:
            yield locked
    finally:
        os.close(dir_fd)


def test_the_pass_gets_its_context_and_its_stats_are_the_result(tmp_path):
    seen: list[PassContext] = []

    def body(context: PassContext) -> None:
        seen.append(context)
        assert sorted(os.listdir(context.dir_fd)) == [".logjam-compress.lock"]
        context.stats.done(7)

    stop = Stop()
    stats = run_pass(str(tmp_path), body, settings=PassSettings(), command="logjam-compress", stop=stop, now=NOW)
    assert stats == PassStats(files=1, bytes=7)
    [context] = seen
    assert (context.path, context.now, context.stop, context.dry_run) == (str(tmp_path), NOW, stop, False)
    with pytest.raises(OSError):  # closed once the pass is over
        os.fstat(context.dir_fd)


def test_a_locked_directory_is_skipped_but_a_dry_run_reads_it_without_the_lock(tmp_path):
    calls: list[bool] = []

    def body(context: PassContext) -> None:
        calls.append(context.dry_run)

    with _held_lock(str(tmp_path), ".logjam-upload.lock") as locked:
        assert locked
        assert run_pass(str(tmp_path), body, settings=PassSettings(), command="logjam-upload") == PassStats()
        assert calls == []
        run_pass(str(tmp_path), body, settings=PassSettings(dry_run=True), command="logjam-upload")
        run_pass(str(tmp_path), body, settings=PassSettings(), command=None)  # a pass that only reads
    assert calls == [True, False]


def test_a_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        run_pass(str(tmp_path / "gone"), lambda context: None, settings=PassSettings(), command="logjam-compress")


def test_verify_is_its_own_one_shot_job_and_leaves_the_arguments_alone(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (tmp_path / "dest").mkdir()
    args = upload.build_parser().parse_args(["--verify=full", str(archive), f"file://{tmp_path}/dest/{{prefix}}/{{year}}/{{month}}/{{day}}/{{filename}}"])
    job = upload.make_job(args)
    assert isinstance(job, VerifyJob) and job.full and job.one_shot
    assert args.once is False  # the job says it runs once; make_job no longer rewrites --once
    assert job(Stop()) == PassStats()  # nothing recorded: nothing to check, no problem
    assert job.backlog() is None


def test_a_dry_run_job_is_one_shot_and_a_real_one_is_not(tmp_path):
    for argv, one_shot in ((["--dry-run"], True), ([], False)):
        args = compress.build_parser().parse_args([*argv, str(tmp_path)])
        assert compress.make_job(args).one_shot is one_shot
