"""contrib/: the deployment files are valid and make names logjam parses."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from logjam.parse import parse_filename

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
SYSTEMD = CONTRIB / "systemd"
UNITS = [
    "logjam-compress.service",
    "logjam-compress.timer",
    "logjam-upload.service",
    "logjam-upload.timer",
    "logjam-compress-daemon.service",
    "logjam-upload-daemon.service",
]
RUN_SCRIPTS = [CONTRIB / "runit" / name / "run" for name in ("logjam-compress", "logjam-upload")]
UPSTART_JOBS = [CONTRIB / "upstart" / name for name in ("logjam-compress.conf", "logjam-upload.conf")]
CRON_FILE = CONTRIB / "cron.d" / "logjam"
DEFAULTS_FILE = CONTRIB / "default" / "logjam"
RSYSLOG_CONF = CONTRIB / "rsyslog" / "logjam.conf"
SYSLOG_NG_CONF = CONTRIB / "syslog-ng" / "logjam.conf"
INSTALLED_BIN = "/usr/local/bin/"

# The sample moment macros are replaced with: day 27 cannot be a month and
# hour 13 cannot be a day's month, so a swapped field fails the parse check.
SAMPLE = datetime.datetime(2013, 7, 27, 13, 0, tzinfo=datetime.timezone.utc)


def test_every_listed_file_exists():
    expected = [SYSTEMD / unit for unit in UNITS] + RUN_SCRIPTS + UPSTART_JOBS
    expected += [CRON_FILE, RSYSLOG_CONF, SYSLOG_NG_CONF, DEFAULTS_FILE, CONTRIB / "README.rst"]
    missing = [str(path.relative_to(CONTRIB)) for path in expected if not path.is_file()]
    assert missing == []


def test_readme_describes_every_file():
    readme = (CONTRIB / "README.rst").read_text()
    for path in sorted(CONTRIB.rglob("*")):
        if path.is_file() and path.name != "README.rst":
            relative = str(path.relative_to(CONTRIB))
            assert relative in readme, f"contrib/README.rst does not mention {relative}"


# -- systemd ------------------------------------------------------------------

def parse_unit(text: str) -> list[tuple[str, str, str]]:
    """Takes a unit file's text. Returns its (section, key, value) settings, in order
    (configparser cannot: Environment= may repeat)."""
    settings, section = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.append((section, key.strip(), value.strip()))
    return settings


def unit_values(name: str, key: str) -> list[str]:
    return [value for _, k, value in parse_unit((SYSTEMD / name).read_text()) if k == key]


def verify_units(directory: Path, names: list[str], tmp_path: Path) -> tuple[int, list[str]]:
    """Runs systemd-analyze verify on copies of the units in directory.

    The copies run stub logjam-* executables from tmp_path (verify refuses
    an ExecStart= binary that does not exist). Returns the exit status and
    every diagnostic line that names one of our units: systemd reports most
    mistakes (unknown keys, unparsable values, unknown sections) as warnings
    ("..., ignoring") and still exits 0, so the lines matter as much as the status.
    """
    units_dir = tmp_path / "units"
    bin_dir = tmp_path / "bin"
    units_dir.mkdir(exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    for stub in ("logjam-compress", "logjam-upload"):
        (bin_dir / stub).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / stub).chmod(0o755)
    for path in directory.iterdir():
        if path.suffix in (".service", ".timer"):
            text = path.read_text().replace(INSTALLED_BIN, f"{bin_dir}/")
            (units_dir / path.name).write_text(text)
    environment = {**os.environ, "SYSTEMD_LOG_LEVEL": "info", "SYSTEMD_LOG_COLOR": "0",
                   "SYSTEMD_PAGER": "", "LC_ALL": "C"}
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(units_dir / name) for name in names)],
        capture_output=True, text=True, env=environment, timeout=120,
    )
    output = (result.stdout + result.stderr).splitlines()
    problems = [line for line in output if any(name in line for name in names)]
    return result.returncode, problems


@pytest.fixture(scope="module")
def systemd_analyze(tmp_path_factory):
    """Skips unless systemd-analyze is on PATH and verify works here at all
    (checked with a unit that must pass)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not on PATH")
    directory = tmp_path_factory.mktemp("known-good")
    (directory / "logjam-known-good.service").write_text(
        "[Unit]\nDescription=known good\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    status, problems = verify_units(directory, ["logjam-known-good.service"],
                                    tmp_path_factory.mktemp("scratch"))
    if status != 0 or problems:
        pytest.skip(f"systemd-analyze verify does not work here: {problems}")


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_unit_verifies(systemd_analyze, tmp_path, unit):
    status, problems = verify_units(SYSTEMD, [unit], tmp_path)
    assert problems == []
    assert status == 0


@pytest.mark.parametrize(
    ("unit", "good", "broken"),
    [
        ("logjam-compress-daemon.service", "NoNewPrivileges=yes", "NoNewPrivilegs=yes"),
        ("logjam-compress-daemon.service", "Restart=on-failure", "Restart=sometimes"),
        ("logjam-compress-daemon.service", "[Service]", "[Servce]"),
        ("logjam-upload.service", "Type=oneshot", "Type=oneshott"),
        ("logjam-upload.service", "ReadWritePaths=/var/log/app", "ReadWritePaths=var/log/app"),
        ("logjam-upload.service", "/usr/local/bin/logjam-upload", "/usr/local/bin/logjam-uplaod"),
        ("logjam-compress.timer", "OnCalendar=*:0/5", "OnCalendar=every five minutes"),
        ("logjam-upload.timer", "Persistent=true", "Persistent=ture"),
        ("logjam-upload.timer", "[Timer]", "[Timr]"),
        # (verify says nothing of a timer whose Unit= does not exist: the
        # timer test below checks that by name.)
    ],
)
def test_systemd_check_rejects_a_broken_unit(systemd_analyze, tmp_path, unit, good, broken):
    """The check above is only worth something if it fails on mistakes."""
    directory = tmp_path / "broken"
    directory.mkdir()
    for path in SYSTEMD.iterdir():
        shutil.copy(path, directory / path.name)
    text = (directory / unit).read_text()
    assert good in text
    (directory / unit).write_text(text.replace(good, broken, 1))
    status, problems = verify_units(directory, [unit], tmp_path)
    assert status != 0 or problems, f"{broken!r} in {unit} went unnoticed"


@pytest.mark.parametrize("unit", [u for u in UNITS if u.endswith(".service")])
def test_systemd_services_are_configured_alike(unit):
    settings = parse_unit((SYSTEMD / unit).read_text())
    values = {key: value for _, key, value in settings}
    assert "-/etc/default/logjam" in unit_values(unit, "EnvironmentFile")
    assert values["ProtectSystem"] == "strict"
    assert "/var/log/app" in values["ReadWritePaths"].split()
    assert values["NoNewPrivileges"] == "yes"
    assert values["PrivateTmp"] == "yes"
    if unit.startswith("logjam-upload"):
        # boto3 reads /root/.aws/credentials: ProtectHome=yes would hide it,
        # and a bind mount into /root does not help then (systemd.exec(5)).
        assert values["ProtectHome"] == "read-only"
    else:
        assert values["ProtectHome"] == "yes"
    command = values["ExecStart"].split()
    assert command[0] == INSTALLED_BIN + unit.split(".")[0].removesuffix("-daemon")
    if unit.endswith("-daemon.service"):
        assert "--once" not in command
        assert values["Restart"] == "on-failure"
        assert "2" in values["RestartPreventExitStatus"].split()
        assert ("Install", "WantedBy", "multi-user.target") in settings
    else:
        assert "--once" in command
        assert values["Type"] == "oneshot"
        assert "Restart" not in values


@pytest.mark.parametrize("timer", [u for u in UNITS if u.endswith(".timer")])
def test_systemd_timers_start_the_oneshot_service(timer):
    service = timer.replace(".timer", ".service")
    assert unit_values(timer, "Unit") == [service]
    assert unit_values(service, "Type") == ["oneshot"]
    assert unit_values(timer, "WantedBy") == ["timers.target"]


@pytest.mark.parametrize("unit", [u for u in UNITS if u.startswith("logjam-upload") and u.endswith(".service")])
def test_upload_unit_can_read_root_aws_credentials(systemd_analyze, tmp_path, unit):
    """With the shipped settings the unit verifies, and its ProtectHome= leaves
    /root readable (read-only); "yes" would make it inaccessible."""
    status, problems = verify_units(SYSTEMD, [unit], tmp_path)
    assert (status, problems) == (0, [])
    assert unit_values(unit, "ProtectHome") == ["read-only"]
    assert not any(path.startswith(("/root", "-/root")) for value in unit_values(unit, "InaccessiblePaths")
                   for path in value.split())


# -- the environment file --------------------------------------------------------

SYSTEMD_COMMENTS, SYSTEMD_WHITESPACE, SYSTEMD_NEWLINE = "#;", " \t\n\r", "\n\r"
SYSTEMD_SHELL_NEED_ESCAPE = '"\\`$'


def systemd_environment_file(text: str) -> dict[str, str]:
    """Takes the text of an EnvironmentFile=. Returns what systemd sets: a
    port of parse_env_file_internal() (src/basic/env-file.c, systemd 252-256).
    Notably a "#" after a value is part of the value (systemd issue 12527)."""
    result: dict[str, str] = {}
    state, key, value = "PRE_KEY", "", ""
    key_ws: int | None = None  # where trailing whitespace of the key starts
    value_ws: int | None = None

    def push() -> None:
        nonlocal key, value
        name = key[:key_ws] if key_ws is not None else key
        result[name] = value
        key, value = "", ""

    for c in text:
        if state == "PRE_KEY":
            if c in SYSTEMD_COMMENTS:
                state = "COMMENT"
            elif c not in SYSTEMD_WHITESPACE:
                state, key, key_ws = "KEY", c, None
        elif state == "KEY":
            if c in SYSTEMD_NEWLINE:
                state, key = "PRE_KEY", ""
            elif c == "=":
                state, value_ws = "PRE_VALUE", None
            else:
                if c not in SYSTEMD_WHITESPACE:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key += c
        elif state == "PRE_VALUE":
            if c in SYSTEMD_NEWLINE:
                state = "PRE_KEY"
                push()
            elif c == "'":
                state = "SINGLE"
            elif c == '"':
                state = "DOUBLE"
            elif c == "\\":
                state = "VALUE_ESCAPE"
            elif c not in SYSTEMD_WHITESPACE:
                state, value = "VALUE", value + c
        elif state == "VALUE":
            if c in SYSTEMD_NEWLINE:
                state = "PRE_KEY"
                if value_ws is not None:
                    value = value[:value_ws]
                push()
            elif c == "\\":
                state, value_ws = "VALUE_ESCAPE", None
            else:
                if c not in SYSTEMD_WHITESPACE:
                    value_ws = None
                elif value_ws is None:
                    value_ws = len(value)
                value += c
        elif state == "VALUE_ESCAPE":
            state = "VALUE"
            if c not in SYSTEMD_NEWLINE:
                value += c
        elif state == "SINGLE":
            if c == "'":
                state = "PRE_VALUE"
            else:
                value += c
        elif state == "DOUBLE":
            if c == '"':
                state = "PRE_VALUE"
            elif c == "\\":
                state = "DOUBLE_ESCAPE"
            else:
                value += c
        elif state == "DOUBLE_ESCAPE":
            state = "DOUBLE"
            if c in SYSTEMD_SHELL_NEED_ESCAPE:
                value += c
            elif c != "\n":
                value += "\\" + c
        elif state == "COMMENT":
            if c == "\\":
                state = "COMMENT_ESCAPE"
            elif c in SYSTEMD_NEWLINE:
                state = "PRE_KEY"
        elif state == "COMMENT_ESCAPE":
            state = "PRE_KEY" if c in SYSTEMD_NEWLINE else "COMMENT"
    if state in ("PRE_VALUE", "VALUE", "VALUE_ESCAPE", "SINGLE", "DOUBLE", "DOUBLE_ESCAPE"):
        if state == "VALUE" and value_ws is not None:
            value = value[:value_ws]
        push()
    return result


def sh_environment_file(path: Path) -> dict[str, str]:
    """Takes an environment file. Returns the variables it sets when the runit
    and upstart scripts source it (set -a; . FILE)."""
    script = ('set -a; . "$1"; set +a; exec python3 -c '
              '"import json, os; print(json.dumps(dict(os.environ)))"')
    result = subprocess.run(["sh", "-c", script, "sh", str(path)], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"]}, timeout=30, check=True)
    environment = json.loads(result.stdout)
    return {key: value for key, value in environment.items() if key.startswith(("LOGJAM_", "AWS_", "SENTRY_"))}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\n", {"A": "1"}),
        ("A=1 # note\n", {"A": "1 # note"}),  # the trap: systemd keeps the comment
        ('A="x y"\n', {"A": "x y"}),
        ("A='x y'\n", {"A": "x y"}),
        ("  A = spaced  \n", {"A": "spaced"}),
        ("# c\n; c\nA=\n", {"A": ""}),
        ('A="a\\"b"\n', {"A": 'a"b'}),
        ("A=one\\\ntwo\n", {"A": "onetwo"}),
        ("A=1", {"A": "1"}),
    ],
)
def test_systemd_environment_file_parser(text, expected):
    assert systemd_environment_file(text) == expected


def test_environment_file_reads_the_same_in_systemd_and_sh():
    systemd = systemd_environment_file(DEFAULTS_FILE.read_text())
    assert set(systemd) >= {"LOGJAM_DIR", "LOGJAM_ARCHIVE_DIR", "LOGJAM_URI", "LOGJAM_INTERVAL",
                            "LOGJAM_LOG_LEVEL", "LOGJAM_COMPRESS_OPTS", "LOGJAM_UPLOAD_OPTS"}
    assert sh_environment_file(DEFAULTS_FILE) == systemd
    assert all("#" not in value for value in systemd.values())


@pytest.mark.parametrize(
    "broken",
    ['LOGJAM_DIR="/var/log/app" # the logs\n', "LOGJAM_DIR=/var/log/app /srv/logs\n",
     "LOGJAM_UPLOAD_OPTS=--endpoint-url   http://h:9000\n"],
)
def test_environment_file_check_catches_what_the_two_read_differently(tmp_path, broken):
    path = tmp_path / "logjam"
    path.write_text(DEFAULTS_FILE.read_text() + broken)
    try:
        shell = sh_environment_file(path)
    except subprocess.CalledProcessError:
        return  # sh refuses it outright: caught as well
    assert shell != systemd_environment_file(path.read_text())


def test_environment_file_values_are_the_unit_defaults():
    """The shipped file changes nothing unless edited (but says where the URI goes)."""
    values = systemd_environment_file(DEFAULTS_FILE.read_text())
    for unit in UNITS:
        if unit.endswith(".service"):
            for setting in unit_values(unit, "Environment"):
                key, _, default = setting.partition("=")
                assert values[key] == default, (unit, key)
    assert values["LOGJAM_URI"] == ""


def test_several_directories_reach_both_commands_the_same(tmp_path):
    defaults = tmp_path / "logjam"
    defaults.write_text(DEFAULTS_FILE.read_text().replace('LOGJAM_DIR="/var/log/app"',
                                                          'LOGJAM_DIR="/srv/a /srv/b"'))
    assert systemd_environment_file(defaults.read_text())["LOGJAM_DIR"] == "/srv/a /srv/b"
    # systemd splits an unbraced $LOGJAM_DIR at whitespace in ExecStart=; sh splits ${LOGJAM_DIR}.
    for unit in ("logjam-compress.service", "logjam-compress-daemon.service"):
        assert unit_values(unit, "ExecStart")[0].split()[-1] == "$LOGJAM_DIR"
    text = (CONTRIB / "runit" / "logjam-compress" / "run").read_text()
    assert run_shell_fragment(text, tmp_path, {}, ["sh", "-c"], defaults=defaults)[-2:] == ["/srv/a", "/srv/b"]


# -- runit and upstart ---------------------------------------------------------

@pytest.mark.parametrize("script", RUN_SCRIPTS, ids=lambda path: path.parent.name)
def test_runit_run_script_is_executable_sh(script):
    mode = script.stat().st_mode
    assert mode & stat.S_IXUSR and mode & stat.S_IXGRP and mode & stat.S_IXOTH, oct(mode)
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert re.search(r"^exec 2>&1$", text, re.MULTILINE)
    assert re.search(rf"^exec chpst -n \d+ {script.parent.name} ", text, re.MULTILINE)
    subprocess.run(["sh", "-n", str(script)], check=True)


def run_shell_fragment(text: str, tmp_path: Path, env: dict[str, str], shell: list[str], *,
                       defaults: Path | None = None) -> list[str]:
    """Runs a run script (or an upstart script block) with stub programs and
    /etc/default/logjam replaced by a file in tmp_path. Returns the argv the
    stub logjam-* command received."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    argv_file = tmp_path / "argv"
    recorder = f'#!/bin/sh\nfor a in "$0" "$@"; do printf "%s\\n" "$a"; done > "{argv_file}"\n'
    for name in ("logjam-compress", "logjam-upload", "sleep"):
        (bin_dir / name).write_text(recorder)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "chpst").write_text('#!/bin/sh\n[ "$1" = -n ] && shift 2\nexec "$@"\n')
    (bin_dir / "chpst").chmod(0o755)
    if defaults is None:
        defaults = tmp_path / "default-logjam"
        defaults.write_text("".join(f"{key}={value!r}\n" for key, value in env.items()))
    text = re.sub(r"^(\s*)PATH=.*$", rf"\1PATH={bin_dir}:/usr/bin:/bin", text, flags=re.MULTILINE)
    text = text.replace("/etc/default/logjam", str(defaults))
    subprocess.run([*shell, text], check=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    lines = argv_file.read_text().splitlines()
    return [Path(lines[0]).name, *lines[1:]]


@pytest.mark.parametrize(
    ("name", "env", "expected"),
    [
        ("logjam-compress", {},
         ["logjam-compress", "--interval", "60", "--log-level", "info", "/var/log/app"]),
        ("logjam-compress",
         {"LOGJAM_DIR": "/srv/a /srv/b", "LOGJAM_INTERVAL": "30", "LOGJAM_COMPRESS_OPTS": "--codec gzip"},
         ["logjam-compress", "--interval", "30", "--log-level", "info", "--codec", "gzip",
          "/srv/a", "/srv/b"]),
        ("logjam-upload", {"LOGJAM_URI": "s3://b/{prefix}/{year}/{month}/{day}/{filename}"},
         ["logjam-upload", "--interval", "60", "--log-level", "info", "/var/log/app/archive",
          "s3://b/{prefix}/{year}/{month}/{day}/{filename}"]),
        ("logjam-upload",
         {"LOGJAM_URI": "file:///mnt/a/{filename}", "LOGJAM_UPLOAD_OPTS": "--endpoint-url http://h:9000",
          "LOGJAM_LOG_LEVEL": "debug"},
         ["logjam-upload", "--interval", "60", "--log-level", "debug", "--endpoint-url",
          "http://h:9000", "/var/log/app/archive", "file:///mnt/a/{filename}"]),
        ("logjam-upload", {}, ["sleep", "60"]),  # no URI: wait, do not spin
    ],
)
def test_runit_run_script_arguments(tmp_path, name, env, expected):
    text = (CONTRIB / "runit" / name / "run").read_text()
    assert run_shell_fragment(text, tmp_path, env, ["sh", "-c"]) == expected


def upstart_script(path: Path) -> str:
    match = re.search(r"^script\n(.*?)^end script$", path.read_text(), re.MULTILINE | re.DOTALL)
    assert match, f"{path.name} has no script ... end script block"
    return match.group(1)


@pytest.mark.parametrize("job", UPSTART_JOBS, ids=lambda path: path.name)
def test_upstart_job_respawns_and_execs(job):
    text = job.read_text()
    stanzas = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "respawn" in stanzas
    assert any(line.startswith("start on ") for line in stanzas)
    assert any(line.startswith("stop on ") for line in stanzas)
    assert re.search(rf"^\s+exec {job.stem} ", upstart_script(job), re.MULTILINE)
    # Upstart runs script blocks with sh -e.
    subprocess.run(["sh", "-n", "-e", "-c", upstart_script(job)], check=True)


@pytest.mark.parametrize("job", UPSTART_JOBS, ids=lambda path: path.name)
def test_upstart_script_arguments(tmp_path, job):
    env = {"LOGJAM_URI": "s3://b/{filename}", "LOGJAM_DIR": "/srv/a /srv/b"}
    argv = run_shell_fragment(upstart_script(job), tmp_path, env, ["sh", "-e", "-c"])
    assert argv[:5] == [job.stem, "--interval", "60", "--log-level", "info"]
    if job.stem == "logjam-compress":
        assert argv[5:] == ["/srv/a", "/srv/b"]
    else:
        assert argv[5:] == ["/var/log/app/archive", "s3://b/{filename}"]


# -- cron ----------------------------------------------------------------------

CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\d+(-\d+)?)(/\d+)?)*$")
CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def test_cron_file_lines():
    entries = []
    for line in CRON_FILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            continue
        fields = line.split()
        assert len(fields) >= 7, f"not 5 time fields, a user and a command: {line!r}"
        for field, (low, high) in zip(fields[:5], CRON_RANGES):
            assert CRON_FIELD.match(field), f"bad time field {field!r} in {line!r}"
            for number in re.findall(r"(?<!/)\b\d+", field):
                assert low <= int(number) <= high, f"{field!r} out of range in {line!r}"
        assert fields[5] == "root"
        assert fields[6].startswith("logjam-"), line
        assert "--once" in fields[7:], f"cron runs must be single passes: {line!r}"
        assert "%" not in line, "cron turns an unescaped % into a newline"
        entries.append(fields[6])
    assert sorted(entries) == ["logjam-compress", "logjam-upload"]


def test_cron_file_sets_path_and_ends_with_newline():
    text = CRON_FILE.read_text()
    assert re.search(r"^PATH=.*(^|:)/usr/local/bin(:|$)", text, re.MULTILINE)
    assert text.endswith("\n")  # cron ignores a last line without one
    assert "." not in CRON_FILE.name  # run-parts style: cron.d skips names with dots


# -- rsyslog and syslog-ng -----------------------------------------------------

RSYSLOG_VALUES = {
    "programname:::secpath-replace": "flask-requests",
    "$year-utc": f"{SAMPLE:%Y}",
    "$month-utc": f"{SAMPLE:%m}",
    "$day-utc": f"{SAMPLE:%d}",
    "$hour-utc": f"{SAMPLE:%H}",
}


def rsyslog_template() -> str:
    match = re.search(r'template\(name="LogjamHourlyFile"\s+type="string"\s+string="([^"]+)"\)',
                      RSYSLOG_CONF.read_text())
    assert match, "the LogjamHourlyFile template is missing"
    return match.group(1)


def test_rsyslog_template_uses_utc_properties_only():
    properties = re.findall(r"%([^%]+)%", rsyslog_template())
    time_properties = [p for p in properties if p.startswith("$")]
    assert time_properties and all(p.endswith("-utc") for p in time_properties), properties


def test_rsyslog_names_parse():
    template = rsyslog_template()

    def substitute(match: re.Match[str]) -> str:
        assert match.group(1) in RSYSLOG_VALUES, f"no sample value for %{match.group(1)}%"
        return RSYSLOG_VALUES[match.group(1)]

    path = re.sub(r"%([^%]+)%", substitute, template)
    assert os.path.dirname(path) == "/var/log/app"
    logfile = parse_filename(os.path.basename(path))
    assert logfile is not None, path
    assert (logfile.prefix, logfile.timestamp, logfile.suffix, logfile.extension) == (
        "flask-requests", SAMPLE, None, ".log")


def test_rsyslog_action_writes_with_the_template():
    text = RSYSLOG_CONF.read_text()
    assert re.search(r'action\(type="omfile"\s+dynaFile="LogjamHourlyFile"', text)


SYSLOG_NG_VALUES = {
    "$(sanitize ${PROGRAM})": "flask-requests",
    "${R_YEAR}": f"{SAMPLE:%Y}",
    "${R_MONTH}": f"{SAMPLE:%m}",
    "${R_DAY}": f"{SAMPLE:%d}",
    "${R_HOUR}": f"{SAMPLE:%H}",
}


def syslog_ng_destination() -> str:
    match = re.search(r"destination d_logjam_hourly \{(.*?)\n\};", SYSLOG_NG_CONF.read_text(), re.DOTALL)
    assert match, "the d_logjam_hourly destination is missing"
    return match.group(1)


def test_syslog_ng_names_parse():
    match = re.search(r'file\("([^"]+)"', syslog_ng_destination())
    assert match
    path = match.group(1)
    for macro, value in SYSLOG_NG_VALUES.items():
        path = path.replace(macro, value)
    assert "$" not in path, f"a macro has no sample value: {path}"
    assert os.path.dirname(path) == "/var/log/app"
    logfile = parse_filename(os.path.basename(path))
    assert logfile is not None, path
    assert (logfile.prefix, logfile.timestamp, logfile.suffix, logfile.extension) == (
        "flask-requests", SAMPLE, None, ".log")


def test_syslog_ng_expands_the_name_in_utc():
    destination = syslog_ng_destination()
    # File names are expanded in the local-time-zone(); time-zone() would only
    # change the timestamps inside the file.
    assert re.search(r'^\s*local-time-zone\("UTC"\)', destination, re.MULTILINE)
    assert not re.search(r"\$\{?(S_|C_)?(YEAR|MONTH|DAY|HOUR)\b", destination), \
        "use the R_ (received) macros"


# The two examples must name a program's files alike, or switching daemons
# splits a stream in two. Each daemon's rules are modelled below from its
# documentation, and the patterns are read from the shipped files.
SYSLOG_TAGS = [
    # (the syslog tag, the PREFIX of the files both write, or None: skipped)
    ("postfix/smtpd[1234]:", "postfix"),
    ("postfix/qmgr[99]:", "postfix"),
    ("flask-requests:", "flask-requests"),
    ("CRON[5]:", "CRON"),
    ("app/a/b:", "app"),
    ("/usr/sbin/cron[1]:", None),
    ("[12]:", None),
]


def rsyslog_prefix(tag: str) -> str | None:
    # programname: the tag up to the first ":", "[", "/" or non-printable
    # character (parser.permitSlashInProgramName off, the default).
    text = RSYSLOG_CONF.read_text()
    assert not re.search(r"^[^#]*permitSlashInProgramName", text, re.MULTILINE | re.IGNORECASE)
    assert '$programname != ""' in text
    assert "%programname:::secpath-replace%-" in rsyslog_template()
    name = re.match(r"[^:\[/\x00-\x1f\x7f]*", tag).group(0)
    return name.replace("/", "_") or None


def syslog_ng_prefix(tag: str) -> str | None:
    # PROGRAM: the tag up to "[" or ":"; then the filter, the rewrite and
    # $(sanitize), which turns "/" and control characters into "_".
    text = SYSLOG_NG_CONF.read_text()
    program = re.match(r"[^\[:]*", tag).group(0)
    wanted = re.search(r'filter f_logjam \{[^}]*\bprogram\("([^"]+)"\)', text).group(1)
    if not program or not re.search(wanted, program):
        return None
    pattern, replacement = re.search(r'subst\("([^"]+)", "([^"]*)", value\("PROGRAM"\)\)', text).groups()
    assert re.search(r"log \{[^}]*filter\(f_logjam\);\s*rewrite\(r_logjam_program\);\s*destination", text)
    program = re.sub(pattern, replacement, program, count=1)
    assert "$(sanitize ${PROGRAM})-" in syslog_ng_destination()
    return re.sub(r"[/\x00-\x1f]", "_", program) or None


@pytest.mark.parametrize(("tag", "prefix"), SYSLOG_TAGS)
def test_rsyslog_and_syslog_ng_name_a_program_the_same(tag, prefix):
    assert rsyslog_prefix(tag) == prefix
    assert syslog_ng_prefix(tag) == prefix
    if prefix is not None:
        logfile = parse_filename(f"{prefix}-20130727T1300Z.log")
        assert logfile is not None and logfile.prefix == prefix


# When the daemons are installed, their own checkers get the last word.

def test_rsyslog_accepts_the_config(tmp_path):
    rsyslogd = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")
    if rsyslogd is None:
        pytest.skip("rsyslogd is not installed")
    main = tmp_path / "rsyslog.conf"
    main.write_text(f'global(workDirectory="{tmp_path}")\ninclude(file="{RSYSLOG_CONF}")\n')
    result = subprocess.run([rsyslogd, "-N1", "-f", str(main)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "error" not in result.stderr.lower(), result.stderr


def test_syslog_ng_accepts_the_config(tmp_path):
    syslog_ng = shutil.which("syslog-ng") or shutil.which("syslog-ng", path="/usr/sbin:/sbin")
    if syslog_ng is None:
        pytest.skip("syslog-ng is not installed")
    version = subprocess.run([syslog_ng, "--version"], capture_output=True, text=True, timeout=60)
    match = re.search(r"Config version: (\d+\.\d+)", version.stdout) or re.search(
        r"syslog-ng \d+ \((\d+\.\d+)", version.stdout)
    assert match, version.stdout
    main = tmp_path / "syslog-ng.conf"
    main.write_text(
        f"@version: {match.group(1)}\n"
        f'source s_src {{ unix-dgram("{tmp_path}/log.sock"); }};\n'
        f'@include "{SYSLOG_NG_CONF}"\n'
    )
    result = subprocess.run([syslog_ng, "--syntax-only", "-f", str(main)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
