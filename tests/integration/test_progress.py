"""The progress bar shows on a terminal for a backlog, and never in cron mail."""

from __future__ import annotations

import os
import pty
import subprocess

from tests.conftest import call, clean_env, script


def backlog(make_logs, count=5):
    return make_logs({f"app-20130727T{hour:02d}00Z.log": os.urandom(200_000) for hour in range(count)})


def run_on_terminal(*args) -> tuple[int, str]:
    controller, terminal = pty.openpty()
    process = subprocess.Popen([script(args[0]), *map(str, args[1:])], env=clean_env(TERM="xterm"),
                               stdout=subprocess.DEVNULL, stderr=terminal, stdin=subprocess.DEVNULL)
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        output.extend(chunk)
    os.close(controller)
    return process.wait(timeout=60), output.decode("utf-8", "replace")


def test_bar_on_a_terminal_for_a_backlog(make_logs):
    log_dir = backlog(make_logs)
    status, output = run_on_terminal("logjam-compress", "--once", log_dir)
    assert status == 0, output
    assert "compressing" in output and "5/5 files" in output
    assert output.count("INFO compressed") == 5  # log lines still arrive, above the bar


def test_no_bar_when_stderr_is_not_a_terminal(make_logs):
    log_dir = backlog(make_logs)
    result = call("logjam-compress", "--once", log_dir)
    assert result.returncode == 0
    assert "files" not in result.stderr.replace("compressed", "")
    assert "\r" not in result.stderr
    assert all(" INFO " in line for line in result.stderr.splitlines())
