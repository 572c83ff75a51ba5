"""The fleet logic, pure: the stable per-host splay and the shared-keys check."""

from __future__ import annotations

import argparse
import statistics

import pytest

from logjam import fleet
from logjam.upload import build_parser


@pytest.mark.parametrize("seconds", [0.5, 1, 60, 3600])
@pytest.mark.parametrize("hostname, directory", [
    ("web1", "/var/log/app/archive"),
    ("web2", "/var/log/app/archive"),
    ("db-eu-17.example.com", "/srv/logs/archive"),
    ("h\udcff", "/var/log/caf\udce9"),  # names that are not UTF-8 still hash
])
def test_splay_is_within_range_and_the_same_every_run(seconds, hostname, directory):
    first = fleet.splay_delay(seconds, hostname=hostname, directory=directory)
    assert 0 <= first < seconds
    assert fleet.splay_delay(seconds, hostname=hostname, directory=directory) == first


@pytest.mark.parametrize("seconds", [0, -1, 0.0])
def test_no_splay_is_no_delay(seconds):
    assert fleet.splay_delay(seconds, hostname="web1", directory="/a") == 0.0


@pytest.mark.parametrize("hostname, directory, expected", [
    # Pinned: a host keeps its slot across releases (a changed hash would
    # move every host of a fleet at once, on the day of the upgrade).
    ("web1", "/var/log/app/archive", 26.7444),
    ("web2", "/var/log/app/archive", 19.7944),
    ("web1", "/a", 37.5391),
])
def test_splay_is_pinned(hostname, directory, expected):
    assert fleet.splay_delay(60, hostname=hostname, directory=directory) == pytest.approx(expected, abs=1e-4)


def test_splay_scales_with_the_width():
    # The same host takes the same fraction of any width: widening --splay
    # keeps the fleet's order.
    short = fleet.splay_delay(10, hostname="web1", directory="/a")
    assert fleet.splay_delay(1000, hostname="web1", directory="/a") == pytest.approx(short * 100)


def test_splay_spreads_a_fleet_evenly():
    delays = [fleet.splay_delay(600, hostname=f"web{n}", directory="/var/log/app/archive") for n in range(10_000)]
    # Every 10 s slot of the 600 s window holds about 10,000 / 60 = 167 hosts.
    slots = [0] * 60
    for delay in delays:
        slots[int(delay // 10)] += 1
    assert min(slots) > 167 * 0.7 and max(slots) < 167 * 1.3, slots
    assert statistics.mean(delays) == pytest.approx(300, rel=0.05)


def namespace(**values) -> argparse.Namespace:
    defaults = {"splay": 60.0, "dry_run": False, "hostname": "web1"}
    return argparse.Namespace(**{**defaults, **values})


@pytest.mark.parametrize("values, expected", [
    ({"archive_dir": "/var/log/app/archive"}, fleet.splay_delay(60, hostname="web1", directory="/var/log/app/archive")),
    ({"archive_dir": "/var/log/app/archive", "hostname": None, "splay": 0.0}, 0.0),
    ({"archive_dir": "/var/log/app/archive", "dry_run": True}, 0.0),  # a dry run reports at once
    ({"directories": ["/var/log/a", "/var/log/b"]},
     fleet.splay_delay(60, hostname="web1", directory="/var/log/a\0/var/log/b")),
])
def test_splay_for_the_command_line(values, expected):
    assert fleet.splay_for(namespace(**values)) == expected


def test_splay_for_a_relative_directory_is_that_of_its_absolute_path(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    relative = fleet.splay_for(namespace(archive_dir="archive"))
    assert relative == fleet.splay_for(namespace(archive_dir=str(tmp_path / "archive")))


@pytest.mark.parametrize("template, shared", [
    ("{prefix}/{year}/{month}/{day}/{filename}", True),
    ("{year}/{month}/{day}/{hour}/{prefix}/{filename}", True),
    ("{hostname}/{prefix}/{year}/{month}/{day}/{filename}", False),
    ("{prefix}/{year}/{month}/{day}/{hostname}/{filename}", False),
    ("{prefix}/{suffix}/{year}/{month}/{day}/{filename}", False),
    ("hostname/{prefix}/{year}/{month}/{day}/{filename}", True),  # literal text is not the field
    ("{{hostname}}/{prefix}/{year}/{month}/{day}/{filename}", True),  # an escaped brace neither
])
def test_shares_keys_across_hosts(template, shared):
    assert fleet.shares_keys_across_hosts(template) is shared


@pytest.mark.parametrize("text, value", [("0", 0.0), ("90", 90.0), ("2.5", 2.5)])
def test_splay_option_accepts(text, value):
    args = build_parser().parse_args(["--splay", text, "archive", "s3://b/{prefix}/{year}/{month}/{day}/{filename}"])
    assert args.splay == value


@pytest.mark.parametrize("option, text", [
    ("--splay", "-1"), ("--splay", "nan"), ("--splay", "inf"), ("--splay", "soon"),
    ("--splay", "1e300"), ("--splay", "9999999999"),
    ("--hostname", ""), ("--hostname", "a/b"), ("--hostname", "web\n1"), ("--hostname", "."), ("--hostname", ".."),
    ("--hostname", "web\x001"), ("--hostname", "web\x7f"),
])
def test_bad_values_are_one_usage_line(capsys, option, text):
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([f"{option}={text}", "archive", "s3://b/{prefix}/{year}/{month}/{day}/{filename}"])
    assert exit.value.code == 2
    error, hint = capsys.readouterr().err.strip().splitlines()  # the problem, then where to read more
    assert error.startswith("logjam-upload: error: argument " + option)
    assert hint.startswith("Try ")


# -- the rate-limiting front of bench/fleet.py (tests/s3proxy.py) ------------------------

def test_prefix_rate_limit_answers_slow_down_above_the_rate_per_prefix():
    from tests.s3proxy import PrefixRateLimit, Request

    limit = PrefixRateLimit(2)

    def sent(path: str, at: float) -> bool:
        return limit(Request("PUT", path, "", {}, started=at))

    assert [sent("/b/2026/a.gz", 0.0), sent("/b/2026/b.gz", 0.1), sent("/b/2026/c.gz", 0.2)] == [False, False, True]
    assert sent("/b/web1/a.gz", 0.3) is False  # another prefix has its own budget
    assert sent("/b/2026/c.gz", 0.9) is True  # refused requests do not count
    assert sent("/b/2026/c.gz", 1.05) is False  # the first one has left the window
    assert all(sent("/b", 1.1) is False for _ in range(5))  # bucket requests are not limited
