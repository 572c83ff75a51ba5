"""The shipped IAM policy (docs/iam/logjam-upload.json) is enough, and every
action in it is needed: a moto server that enforces IAM, a user holding
exactly the policy (or the policy less one action), and logjam-upload run
with that user's keys.

The policy's action list is data: the tests read it from the file, so a
change of the S3 calls shows up here as a failing scenario, not as a
forgotten list.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from logjam import upload
from logjam.backends.s3_state import S3State
from tests.conftest import CREDENTIALS, wait_for

POLICY_FILE = Path(__file__).resolve().parents[2] / "docs" / "iam" / "logjam-upload.json"
TEMPLATE = "{hostname}/{prefix}/{year}/{month}/{day}/{filename}"
SMALL = "db-20130727T1200Z.log.gz"
LARGE = "db-20130727T1300Z.log.gz"  # multipart at --multipart-threshold 5MiB
# Without s3:ListBucket, S3 answers a HEAD of a missing key 403 instead of
# 404, and --verify would report "403: Forbidden" instead of "missing at the
# destination". Moto answers 404 either way, so no scenario here can show
# the action is needed: it stays in the policy, documented in docs/fleet.rst.
NOT_MODELLED = {"s3:ListBucket"}


def shipped_policy(bucket: str) -> dict:
    text = POLICY_FILE.read_text(encoding="utf-8").replace("BUCKET", bucket)
    return json.loads(text)


def policy_actions() -> list[str]:
    policy = json.loads(POLICY_FILE.read_text(encoding="utf-8"))
    return [action for statement in policy["Statement"] for action in statement["Action"]]


def without(policy: dict, action: str) -> dict:
    statements = [{**statement, "Action": [a for a in statement["Action"] if a != action]}
                  for statement in policy["Statement"]]
    return {**policy, "Statement": [statement for statement in statements if statement["Action"]]}


@pytest.fixture(scope="module")
def iam_server():
    """A moto server of its own that enforces IAM after its first three
    requests: those make an administrator, whose keys then set up the rest."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening():
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, message="the IAM-enforcing moto server to listen")
        endpoint = f"http://127.0.0.1:{port}"
        import boto3

        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **_keys(CREDENTIALS))
        iam.create_user(UserName="admin")  # the three requests without auth
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        yield endpoint, admin
    finally:
        process.terminate()
        process.wait(timeout=10)


def _keys(env: dict) -> dict:
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}


class Setup:
    """The administrator's clients, and a bucket and a user per test."""

    def __init__(self, endpoint: str, admin: dict) -> None:
        import boto3

        self.endpoint = endpoint
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys(admin))
        self.iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **_keys(admin))
        self.bucket = f"logjam-iam-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=self.bucket)

    def user_with(self, policy: dict) -> dict:
        name = f"logjam-{uuid.uuid4().hex[:8]}"
        self.iam.create_user(UserName=name)
        self.iam.put_user_policy(UserName=name, PolicyName="logjam-upload", PolicyDocument=json.dumps(policy))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    def unfinished_uploads(self) -> list[str]:
        return [upload["Key"] for upload in self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]


@pytest.fixture
def setup(iam_server, monkeypatch):
    endpoint, admin = iam_server
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return Setup(endpoint, admin)


def scenario(setup: Setup, user: dict, archive: Path, monkeypatch, capsys) -> list[str]:
    """Everything logjam-upload does, with user's keys: a small and a
    multipart upload (after cleaning up an upload an earlier crash left),
    --verify=full (HEAD and GET) and retention. Returns the problems, one line
    each; [] when all went well."""
    for name, value in user.items():
        monkeypatch.setenv(name, value)
    (archive / SMALL).write_bytes(gzip.compress(os.urandom(1000), compresslevel=1, mtime=0))
    (archive / LARGE).write_bytes(gzip.compress(os.urandom(5 * 1024 * 1024 + 1000), compresslevel=1, mtime=0))
    # A multipart upload of the large file's key left by a killed pass: in
    # S3 and in the archive's journal, which is how logjam knows it is its own.
    large_key = f"web1/db/2013/07/27/{LARGE}"
    left = setup.s3.create_multipart_upload(Bucket=setup.bucket, Key=large_key)["UploadId"]
    archive_fd = os.open(archive, os.O_RDONLY | os.O_DIRECTORY)
    try:
        journal = S3State(archive_fd)
        journal.set_upload_id(journal.begin_upload(f"{setup.endpoint} {setup.bucket}", large_key), left)
    finally:
        os.close(archive_fd)

    common = ["--endpoint-url", setup.endpoint, "--hostname", "web1", "--retries", "1", "--log-level", "warning"]
    uri = f"s3://{setup.bucket}/{TEMPLATE}"
    steps = [
        ("upload", ["--once", "--multipart-threshold", "5MiB", *common, str(archive), uri]),
        ("verify=full", ["--verify=full", *common, str(archive), uri]),
        ("retention", ["--once", "--delete-uploaded-after", "1d", *common, str(archive), uri]),
    ]
    for step, argv in steps:
        status = upload.main(argv)
        output = capsys.readouterr()
        lines = [line for line in output.err.splitlines() if line.strip()]
        if status != 0 or lines:
            return [f"{step}: exit {status}: {line}" for line in lines] or [f"{step}: exit {status}"]
        if step == "upload" and setup.unfinished_uploads():
            return [f"upload: the unfinished multipart upload of {large_key} was not aborted"]
    if sorted(os.listdir(archive)) != [".logjam-s3-state.json", ".logjam-upload.lock", ".uploaded"]:
        return [f"retention: kept {sorted(os.listdir(archive))}"]
    return []


def test_the_shipped_policy_is_enough(setup, archive, monkeypatch, capsys):
    user = setup.user_with(shipped_policy(setup.bucket))
    assert scenario(setup, user, archive, monkeypatch, capsys) == []
    stored = {item["Key"] for item in setup.s3.list_objects_v2(Bucket=setup.bucket)["Contents"]}
    logs = {f"web1/db/2013/07/27/{SMALL}", f"web1/db/2013/07/27/{LARGE}"}
    # The conditional-write probe's object stays: the policy grants no
    # s3:DeleteObject, so that a host's keys cannot delete archived logs.
    probes = stored - logs
    assert logs <= stored and len(probes) == 1 and probes.pop().startswith("web1/.logjam-probe-")


def test_the_policy_grants_only_this_bucket(setup, archive, monkeypatch, capsys):
    user = setup.user_with(shipped_policy("some-other-bucket"))
    problems = scenario(setup, user, archive, monkeypatch, capsys)
    assert problems and any("S3 refused the credentials" in problem for problem in problems), problems


@pytest.mark.parametrize("action", [action for action in policy_actions() if action not in NOT_MODELLED])
def test_every_action_in_the_policy_is_needed(setup, archive, monkeypatch, capsys, action):
    user = setup.user_with(without(shipped_policy(setup.bucket), action))
    problems = scenario(setup, user, archive, monkeypatch, capsys)
    assert problems, f"nothing needed {action}"
    # Each problem is one clear line: the step and what S3 refused.
    assert all("\n" not in problem for problem in problems)
    assert any(word in problem for problem in problems for word in ("AccessDenied", "403", "not aborted")), problems

