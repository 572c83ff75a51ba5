"""The README stays true: every test it names exists, and every option of
every command is documented in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from logjam import cat, compress, status, upload

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.rst").read_text(encoding="utf-8")


def test_every_test_the_readme_names_exists():
    refs = set(re.findall(r"(test_\w+\.py)::(test_\w+)", README))
    assert len(refs) > 20
    missing = []
    for filename, name in sorted(refs):
        paths = list((ROOT / "tests").rglob(filename))
        if not any(re.search(rf"def {name}\b", path.read_text(encoding="utf-8")) for path in paths):
            missing.append(f"{filename}::{name}")
    assert missing == []


@pytest.mark.parametrize("module", [compress, upload, status, cat], ids=["compress", "upload", "status", "cat"])
def test_every_option_is_documented(module):
    parser = module.build_parser()
    options = {option for action in parser._actions for option in action.option_strings
               if option.startswith("--") and option not in ("--help", "--version")}
    assert options
    undocumented = sorted(option for option in options if option not in README)
    assert undocumented == []
