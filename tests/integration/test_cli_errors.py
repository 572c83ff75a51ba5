"""Usage errors of all three commands: one line naming the problem, at most
one hint line, exit status 2; and the option forms the usage line shows work."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest

from logjam import compress, status, upload, verify

TEMPLATE = "{prefix}/{year}/{month}/{day}/{filename}"


@pytest.fixture
def in_process():
    """main() in-process installs signal handlers and logging: put them back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def dirs(tmp_path):
    log_dir = tmp_path / "logs"
    (log_dir / "archive").mkdir(parents=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    return {"DIR": str(log_dir), "ARCHIVE": str(log_dir / "archive"), "URI": f"file://{dest}/{TEMPLATE}",
            "MISSING": str(tmp_path / "no-such-dir" / "x.prom")}


MAINS = {"logjam-compress": compress.main, "logjam-upload": upload.main, "logjam-status": status.main}

# (command, arguments, what the error line must name). DIR, ARCHIVE, URI and
# MISSING are replaced with real paths, so that only the named argument is bad.
BAD = [
    ("logjam-compress", ["--interval", "0", "DIR"], "--interval"),
    ("logjam-compress", ["--interval", "soon", "DIR"], "--interval"),
    ("logjam-compress", ["--codec", "bzip2", "DIR"], "--codec"),
    ("logjam-compress", ["--level", "x", "DIR"], "--level"),
    ("logjam-compress", ["--level", "13", "DIR"], "--level"),
    ("logjam-compress", ["--threads", "0", "DIR"], "--threads"),
    ("logjam-compress", ["--min-quiet", "-1", "DIR"], "--min-quiet"),
    ("logjam-compress", ["--log-level", "loud", "DIR"], "--log-level"),
    ("logjam-compress", ["--log-format", "xml", "DIR"], "--log-format"),
    ("logjam-compress", ["--bogus", "DIR"], "--bogus"),
    ("logjam-compress", [], "DIR"),
    ("logjam-compress", ["--once", "--metrics-file", "MISSING", "DIR"], "--metrics-file"),
    ("logjam-upload", ["--delete-uploaded-after", "7y", "ARCHIVE", "URI"], "--delete-uploaded-after"),
    ("logjam-upload", ["--once", "--delete-uploaded-after", "1000000000d", "ARCHIVE", "URI"],
     "--delete-uploaded-after"),
    ("logjam-upload", ["--once", "--delete-uploaded-after", "36501d", "ARCHIVE", "URI"], "--delete-uploaded-after"),
    ("logjam-upload", ["--once", "--delete-uploaded-after", "99999999999999999999w", "ARCHIVE", "URI"],
     "--delete-uploaded-after"),
    ("logjam-upload", ["--once", "--delete-uploaded-after", "\u00b2d", "ARCHIVE", "URI"], "--delete-uploaded-after"),
    ("logjam-upload", ["--once", "--interval", "1e300", "ARCHIVE", "URI"], "--interval"),
    ("logjam-upload", ["--once", "--splay", "1e300", "ARCHIVE", "URI"], "--splay"),
    ("logjam-compress", ["--once", "--interval", "1e300", "DIR"], "--interval"),
    ("logjam-compress", ["--once", "--splay", "99999999999", "DIR"], "--splay"),
    ("logjam-upload", ["--once", "--hostname", ".", "ARCHIVE", "URI"], "--hostname"),
    ("logjam-upload", ["--once", "--hostname", "..", "ARCHIVE", "URI"], "--hostname"),
    ("logjam-upload", ["--once", "--hostname", "a\x00b", "ARCHIVE", "URI"], "--hostname"),
    ("logjam-upload", ["--multipart-threshold", "6GiB", "ARCHIVE", "URI"], "--multipart-threshold"),
    ("logjam-upload", ["--multipart-threshold", "\u0665M", "ARCHIVE", "URI"], "--multipart-threshold"),
    ("logjam-upload", ["--multipart-threshold", "1M", "ARCHIVE", "URI"], "--multipart-threshold"),
    ("logjam-upload", ["--max-bandwidth", "fast", "ARCHIVE", "URI"], "--max-bandwidth"),
    ("logjam-upload", ["--interval", "-5", "ARCHIVE", "URI"], "--interval"),
    ("logjam-upload", ["--retries", "0", "ARCHIVE", "URI"], "--retries"),
    ("logjam-upload", ["--retry-mode", "legacy", "ARCHIVE", "URI"], "--retry-mode"),
    ("logjam-upload", ["--jobs", "0", "ARCHIVE", "URI"], "--jobs"),
    ("logjam-upload", ["--storage-class", "COLD", "ARCHIVE", "URI"], "--storage-class"),
    ("logjam-upload", ["--tag", "novalue", "ARCHIVE", "URI"], "--tag"),
    ("logjam-upload", ["--verify", "quick", "ARCHIVE", "URI"], "unrecognized arguments"),
    ("logjam-upload", ["--verify=quick", "ARCHIVE", "URI"], "--verify"),
    ("logjam-upload", ["--verify", "full", "--dry-run", "ARCHIVE", "URI"], "--verify"),
    ("logjam-upload", ["--sse-kms-key-id", "k", "ARCHIVE", "URI"], "--sse-kms-key-id"),
    ("logjam-upload", ["ARCHIVE"], "URI"),
    ("logjam-upload", ["ARCHIVE", ""], "URI is empty"),
    ("logjam-upload", ["ARCHIVE", "  "], "URI is empty"),
    ("logjam-upload", ["ARCHIVE", "URI", "extra"], "unrecognized arguments"),
    ("logjam-upload", ["--once", "--metrics-file", "MISSING", "ARCHIVE", "URI"], "--metrics-file"),
    ("logjam-status", ["--bogus", "DIR"], "--bogus"),
    ("logjam-status", [], "DIR"),
    ("logjam-status", ["--check", "", "DIR"], "URI is empty"),
    ("logjam-status", ["--check"], "--check"),
]


@pytest.mark.parametrize(("command", "arguments", "names"), BAD,
                         ids=[f"{c.removeprefix('logjam-')}:{' '.join(a) or '(none)'}" for c, a, _ in BAD])
def test_usage_error_is_one_line_and_exit_2(in_process, dirs, capsys, command, arguments, names):
    # --once: a regression that accepts the arguments fails instead of looping.
    argv = [*(["--once"] if command != "logjam-status" else []), *(dirs.get(arg, arg) for arg in arguments)]

    status_ = MAINS[command](argv)

    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status_ == 2, err
    assert 1 <= len(lines) <= 2, err
    assert lines[0].startswith(f"{command}: error: "), err
    assert names in lines[0], err
    assert "usage:" not in err
    if len(lines) == 2:
        assert lines[1] == f"Try '{command} --help' for more information."


@pytest.mark.parametrize(("machine", "template"), [
    ("..", "{hostname}/" + TEMPLATE),  # the machine's own name is not checked by --hostname's type
    (".", "{hostname}./" + TEMPLATE),  # a '..' segment made with the template's literal text
    ("web\t1", "{hostname}/" + TEMPLATE),
])
@pytest.mark.parametrize("scheme", ["file", "s3"])
def test_host_name_that_makes_a_bad_key_is_one_line_at_start(in_process, dirs, capsys, monkeypatch, machine,
                                                             template, scheme):
    import socket

    monkeypatch.setattr(socket, "gethostname", lambda: machine)
    (Path(dirs["ARCHIVE"]) / "db-20130727T1200Z.log.gz").write_bytes(b"x")
    uri = dirs["URI"].replace(TEMPLATE, template) if scheme == "file" else f"s3://bucket/{template}"

    for extra in ([], ["--dry-run"]):
        status_ = upload.main(["--once", *extra, dirs["ARCHIVE"], uri])

        err = capsys.readouterr().err
        assert status_ == 2, err
        assert err.startswith(f"logjam-upload: error: host name {machine!r} "), err
        assert len(err.splitlines()) <= 2, err
    assert not (Path(dirs["ARCHIVE"]) / ".uploaded").exists()


def test_empty_uri_says_where_it_is_set(in_process, dirs, capsys):
    assert upload.main([dirs["ARCHIVE"], ""]) == 2
    err = capsys.readouterr().err
    assert "URI is empty" in err and "LOGJAM_URI" in err
    assert "no uploader" not in err


@pytest.mark.parametrize("form", [["--verify", "full"], ["--verify=full"]])
def test_verify_full_with_a_space_or_an_equals_sign(in_process, dirs, capsys, form):
    assert upload.main([*form, dirs["ARCHIVE"], dirs["URI"]]) == 0
    assert "recorded uploads (full)" in capsys.readouterr().err


@pytest.mark.parametrize("form", [["--verify"], ["--verify", "head"], ["--verify=head"]])
def test_verify_head_forms(in_process, dirs, capsys, form):
    assert upload.main([*form, dirs["ARCHIVE"], dirs["URI"]]) == 0
    assert "recorded uploads (head)" in capsys.readouterr().err


def test_bare_verify_last_is_head(in_process, dirs, capsys):
    assert upload.main([dirs["ARCHIVE"], dirs["URI"], "--verify"]) == 0
    assert "recorded uploads (head)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "joined"),
    [
        (["--verify", "A", "U"], ["--verify=head", "A", "U"]),
        (["--verify", "full", "A", "U"], ["--verify=full", "A", "U"]),
        (["--verify", "head", "A", "U"], ["--verify=head", "A", "U"]),
        (["A", "U", "--verify"], ["A", "U", "--verify=head"]),
        (["--verify", "--once", "A", "U"], ["--verify=head", "--once", "A", "U"]),
        (["--verify=full", "A", "U"], ["--verify=full", "A", "U"]),
        (["--", "--verify", "full"], ["--", "--verify", "full"]),
    ],
)
def test_join_verify_value(argv, joined):
    assert verify.join_verify_value(argv) == joined


def test_usage_line_shows_only_verify_forms_that_work():
    usage = upload.build_parser().format_usage()
    assert "[=full]" not in usage
    assert "[--verify [{head,full}]]" in " ".join(usage.split())


def test_metrics_file_in_a_missing_directory_is_exit_2_before_any_work(in_process, tmp_path, make_logs, capsys):
    log_dir = make_logs({"app-20130727T1200Z.log": b"x\n"})
    assert compress.main(["--once", "--metrics-file", str(tmp_path / "nope" / "c.prom"), str(log_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (log_dir / "app-20130727T1200Z.log").exists()  # nothing was done
