"""The README's quick-start command works as the README says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_compresses_and_uploads_end_to_end(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LOGJAM_VENV": sys.prefix, "TMPDIR": str(tmp_path)}
    result = subprocess.run(["bash", str(ROOT / "demo.sh")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert output.count(" INFO compressed ") == 6
    assert output.count(" INFO uploaded ") == 6
    demo = Path(re.search(r"Everything is under (\S+)", output).group(1))
    uploaded = sorted(p.name for p in (demo / "bucket").rglob("*.gz"))
    archived = sorted(p.name for p in (demo / "var/log/app/archive").glob("*.gz"))
    assert uploaded == archived and len(uploaded) == 6
