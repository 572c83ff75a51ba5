"""The documentation stays true: every test the README and docs/ name
exists, every option of every command is documented in the reference
(docs/), the exit statuses are the ones the code has, the README stays a
short entry point, and every page of docs/ is reachable from its index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from logjam import cat, compress, status, upload
from logjam.errors import ExitStatus

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = (ROOT / "README.rst").read_text(encoding="utf-8")
PAGES = {path.stem: path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.rst"))}
REFERENCE = "\n".join(PAGES.values())
README_MAX_LINES = 300


def documents(text: str, option: str) -> bool:
    """Takes a text and an option. Returns whether the text names the option
    whole: "--sse" is not documented by "--sse-kms-key-id", nor "--list" by "--listing"."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_documents_matches_whole_option_names_only():
    assert documents("``--sse AES256``, or ``--sse=aws:kms``", "--sse")
    assert not documents("``--sse-kms-key-id KEY_ID``", "--sse")
    assert not documents("--ssex", "--sse")
    assert not documents("x--sse", "--sse")


def test_every_test_the_documentation_names_exists():
    refs = set(re.findall(r"(test_\w+\.py)::(test_\w+)", README + REFERENCE))
    assert len(refs) > 20
    missing = []
    for filename, name in sorted(refs):
        paths = list((ROOT / "tests").rglob(filename))
        if not any(re.search(rf"def {name}\b", path.read_text(encoding="utf-8")) for path in paths):
            missing.append(f"{filename}::{name}")
    assert missing == []


def test_the_guarantees_page_names_a_test_for_every_promise():
    # Each promise is a definition-list term followed by its text; its text
    # must name at least one test.
    promises = re.findall(r"^(\S.*)\n(    .*\n(?:    .*\n|\n)*)", PAGES["guarantees"], re.MULTILINE)
    assert len(promises) >= 15
    untested = [term for term, body in promises if not re.search(r"test_\w+\.py::test_\w+", body)]
    assert untested == []


@pytest.mark.parametrize("module", [compress, upload, status, cat], ids=["compress", "upload", "status", "cat"])
def test_every_option_is_documented_in_the_reference(module):
    parser = module.build_parser()
    options = {option for action in parser._actions for option in action.option_strings
               if option.startswith("--") and option not in ("--help", "--version")}
    assert options
    undocumented = sorted(option for option in options if not documents(REFERENCE, option))
    assert undocumented == []


def test_every_exit_status_is_documented():
    readme_statuses = set(re.findall(r"^- \*\*(\d+)\*\*:", README, re.MULTILINE))
    assert readme_statuses == {str(int(exit_status)) for exit_status in ExitStatus}
    assert "**128 + N**" in README
    table = PAGES["operations"].split("\nExit status\n", 1)[1]
    rows = set(re.findall(r"^(\d+)  ", table, re.MULTILINE))
    assert rows == {str(int(exit_status)) for exit_status in ExitStatus}
    assert re.search(r"^128 \+ N  ", table, re.MULTILINE)


def test_readme_is_a_short_entry_point():
    assert len(README.splitlines()) <= README_MAX_LINES


def test_readme_links_to_pages_that_exist():
    links = set(re.findall(r"<(docs/[\w/.-]+)>`", README))
    assert links
    assert sorted(link for link in links if not (ROOT / link).is_file()) == []
    assert "docs/iam/logjam-upload.json" in README and (DOCS / "iam" / "logjam-upload.json").is_file()


def test_every_page_is_in_the_index_toctree():
    toctree = re.search(r"^\.\. toctree::\n((?:   .*\n|\n)+)", PAGES["index"], re.MULTILINE)
    assert toctree
    entries = {line.strip() for line in toctree.group(1).splitlines() if line.strip() and not line.strip().startswith(":")}
    assert entries == set(PAGES) - {"index"}
