"""One host of a fleet: --splay (real time, real signals), --hostname, the
shared-keys warning, and SlowDown slowing the whole process."""

from __future__ import annotations

import gzip
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from logjam import fleet, upload
from logjam.errors import ExitStatus
from logjam.markers import LedgerEntry
from logjam.runner import PassStats
from logjam.runner import run as run_service
from logjam.signals import Stop
from tests.conftest import clean_env, script, tree

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"
HOST_TEMPLATE = "{hostname}/{prefix}/{year}/{month}/{day}/{filename}"
NAME = "db-20130727T1200Z.log.gz"


def hostname_with_delay(seconds: float, directory, *, at_least: float, at_most: float) -> str:
    """A host name whose splay for directory falls in [at_least, at_most]."""
    for number in range(10_000):
        name = f"host{number}"
        if at_least <= fleet.splay_delay(seconds, hostname=name, directory=str(directory)) <= at_most:
            return name
    raise AssertionError("no such host name")


# -- --splay ------------------------------------------------------------------------

@pytest.mark.parametrize("once, status", [(True, 128 + signal.SIGTERM), (False, 0)])
def test_sigterm_during_the_splay_stops_at_once(archive, dest, once, status):
    (archive / NAME).write_bytes(gzip.compress(b"x\n", mtime=0))
    hostname = hostname_with_delay(3600, archive, at_least=600, at_most=3600)
    process = subprocess.Popen(
        [script("logjam-upload"), *(["--once"] if once else []), "--splay", "3600", "--hostname", hostname,
         str(archive), f"file://{dest}/{HOST_TEMPLATE}"],
        env=clean_env(), stderr=subprocess.PIPE, text=True,
    )
    try:
        # The process says it is waiting once its signal handlers are in place.
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
        seen = []
        while not any("before the first pass (--splay)" in line for line in seen):
            seen.append(lines.get(timeout=30))
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        stderr = "".join(seen)
        while not lines.empty():
            stderr += lines.get()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert process.returncode == status, stderr
    assert time.monotonic() - signalled < 2  # at once, not after the watchdog's 4 s
    assert "Traceback" not in stderr
    assert tree(dest) == {}  # no pass ran


def test_once_waits_for_its_slot_then_uploads(archive, dest, capsys):
    (archive / NAME).write_bytes(b"x")
    hostname = hostname_with_delay(1, archive, at_least=0.3, at_most=0.6)
    delay = fleet.splay_delay(1, hostname=hostname, directory=str(archive))
    started = time.monotonic()

    status = upload.main(["--once", "--splay", "1", "--hostname", hostname, str(archive),
                          f"file://{dest}/{HOST_TEMPLATE}"])

    assert status == 0, capsys.readouterr().err
    assert time.monotonic() - started >= delay
    assert list(tree(dest)) == [f"{hostname}/db/2013/07/27/{NAME}"]
    assert f"waiting {delay:.1f} s before the first pass (--splay)" in capsys.readouterr().err


def test_loop_mode_offsets_only_the_first_pass(monkeypatch):
    monkeypatch.setattr("logjam.runner.MIN_SLEEP", 0.01)
    stop, starts = Stop(), []

    def job(stop: Stop) -> PassStats:
        starts.append(time.monotonic())
        if len(starts) == 2:
            stop.request(signal.SIGTERM)
        return PassStats()

    began = time.monotonic()
    status = run_service(job, once=False, interval=0.2, stop=stop, first_delay=0.3)

    assert status == ExitStatus.SUCCESS
    assert starts[0] - began >= 0.3
    # The next pass keeps the interval, with no second splay.
    assert 0.2 <= starts[1] - starts[0] < 0.45


def test_a_stop_before_the_splay_ends_runs_no_pass():
    stop = Stop()
    stop.request(signal.SIGTERM)
    calls = []
    assert run_service(lambda stop: calls.append(1), once=True, interval=60, stop=stop, first_delay=30) \
        == ExitStatus.SUCCESS
    assert calls == []


def test_dry_run_does_not_wait(archive, dest, capsys):
    (archive / NAME).write_bytes(b"x")
    hostname = hostname_with_delay(3600, archive, at_least=600, at_most=3600)
    started = time.monotonic()
    assert upload.main(["--dry-run", "--splay", "3600", "--hostname", hostname, str(archive),
                        f"file://{dest}/{HOST_TEMPLATE}"]) == 0
    assert time.monotonic() - started < 30
    assert "would upload" in capsys.readouterr().out


# -- --hostname and the shared-keys warning ------------------------------------------

def test_hostname_sets_the_key_field(archive, dest):
    (archive / NAME).write_bytes(b"x")
    assert upload.main(["--once", "--hostname", "web-17", str(archive), f"file://{dest}/{HOST_TEMPLATE}"]) == 0
    assert list(tree(dest)) == [f"web-17/db/2013/07/27/{NAME}"]
    [confirmation] = LedgerEntry.from_bytes(NAME, (archive / ".uploaded" / NAME).read_bytes()).confirmations
    assert confirmation.key == f"web-17/db/2013/07/27/{NAME}"


def test_default_hostname_is_the_hosts_name(archive, dest):
    import socket

    (archive / NAME).write_bytes(b"x")
    assert upload.main(["--once", str(archive), f"file://{dest}/{HOST_TEMPLATE}"]) == 0
    assert list(tree(dest)) == [f"{socket.gethostname()}/db/2013/07/27/{NAME}"]


@pytest.mark.parametrize("template, warnings", [
    (TEMPLATE, 1),
    (HOST_TEMPLATE, 0),
    ("{prefix}/{suffix}/{year}/{month}/{day}/{filename}", 0),
])
def test_a_template_shared_by_hosts_warns_once_per_run(archive, dest, capsys, template, warnings):
    for hour in ("12", "13", "14"):
        (archive / f"db-20130727T{hour}00Z.log.gz").write_bytes(hour.encode())
    assert upload.main(["--once", "--jobs", "2", str(archive), f"file://{dest}/{template}"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "nor {suffix}" in line]
    assert len(lines) == warnings
    for line in lines:
        assert " WARNING the key template " in line and "docs/fleet.rst" in line


def test_a_run_that_stores_nothing_does_not_warn(archive, dest, capsys):
    # Its errors stay one line each; the warning comes with the first stored file.
    (archive / NAME).write_bytes(b"x")
    (dest / "db").write_bytes(b"a file where the key needs a folder")
    assert upload.main(["--once", str(archive), f"file://{dest}/{TEMPLATE}"]) == 1
    err = capsys.readouterr().err
    assert "nor {suffix}" not in err
    assert " ERROR " in err


def test_verify_does_not_warn_about_shared_keys(archive, dest, capsys):
    (archive / NAME).write_bytes(b"x")
    assert upload.main(["--once", "--hostname", "a", str(archive), f"file://{dest}/{TEMPLATE}"]) == 0
    capsys.readouterr()
    assert upload.main(["--verify", str(archive), f"file://{dest}/{TEMPLATE}"]) == 0
    assert "nor {suffix}" not in capsys.readouterr().err


def test_splay_is_an_option_of_both_commands(tmp_path, capsys):
    from logjam import compress

    for module in (compress, upload):
        assert "--splay" in module.build_parser().format_help()
    assert compress.main(["--once", "--splay", "-5", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[0] == \
        "logjam-compress: error: argument --splay: must be 0 to 31622400 seconds (a year): '-5'"
    assert os.listdir(tmp_path) == []



# -- SlowDown slows the whole process -------------------------------------------------

def test_a_slow_down_slows_every_thread_not_just_the_throttled_one(archive, bucket, s3_proxy, s3_client,
                                                                   monkeypatch, capsys):
    """With the default (adaptive) retries, one 503 SlowDown on one thread's
    PUT makes the other thread's next PUT wait for a token too; in standard
    mode it would go at once. --jobs 2 and three files A, B, C: A's first PUT
    gets the SlowDown; B's PUT is held by the proxy until that answer is out;
    A's retry is held until C's PUT has started, so the thread that sent B
    is the one that sends C, and the gap between them is the wait."""
    from tests.conftest import CREDENTIALS
    from tests.s3proxy import SLOW_DOWN, Fault, hold, is_put_object

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    names = [f"db-20130727T{hour}00Z.log.gz" for hour in ("10", "11", "12")]
    for name in names:
        (archive / name).write_bytes(gzip.compress(name.encode(), mtime=0))

    def puts_of(name):
        return [request for request in s3_proxy.matching(is_put_object) if request.path.endswith(name)]

    def slowed_down():
        return any(request.fault == str(SLOW_DOWN) and request.finished for request in puts_of(names[0]))

    s3_proxy.set_faults(Fault(SLOW_DOWN, path=names[0], count=1),
                        Fault(hold(lambda: bool(puts_of(names[2]))), path=names[0], count=1),
                        Fault(hold(slowed_down), path=names[1], count=1))

    status = upload.main(["--once", "--jobs", "2", "--hostname", "h", "--endpoint-url", s3_proxy.url,
                          str(archive), f"s3://{bucket}/{HOST_TEMPLATE}"])

    assert status == 0, capsys.readouterr().err
    assert sorted(os.listdir(archive / ".uploaded")) == names
    puts = {name: puts_of(name) for name in names}
    assert [request.fault for request in puts[names[0]]] == [str(SLOW_DOWN), "hold"]
    (held,), (third,) = puts[names[1]], puts[names[2]]
    assert puts[names[0]][0].finished <= held.finished  # the SlowDown came first
    # Standard mode sends C within milliseconds of B (measured 0.005 s).
    # Adaptive mode waits for a token of a bucket refilled at 0.7 times the
    # rate it measured, which with this few requests is 0.1 s or more
    # (measured 0.10-2 s): the margin is the token wait, not a guess at load.
    assert third.started - held.finished > 0.05, "the other thread was not slowed down"
