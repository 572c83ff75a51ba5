"""Sphinx configuration of logjam's reference (docs/).

Build it with ``sphinx-build -W docs OUTDIR`` (``./test_all.sh`` does, into a
temporary directory); ``-b man`` makes the man pages.
"""

from __future__ import annotations

import re
from pathlib import Path

project = "logjam"
author = "the logjam authors"
copyright = "2013-2026, the logjam authors"  # noqa: A001 - Sphinx's name
# The version is read from setup.py rather than by importing logjam, so the
# docs build without logjam's dependencies installed.
release = re.search(r'version="([^"]+)"', (Path(__file__).parents[1] / "setup.py").read_text()).group(1)
version = release

extensions = ["sphinx.ext.autosectionlabel"]
# A section is linked as :ref:`page:Section title`; titles repeat across pages
# ("Dry run", "Options"), so the label starts with the page's name.
autosectionlabel_prefix_document = True

root_doc = "index"
# docs/iam holds the IAM policy as JSON (tests/integration/test_iam.py reads it).
exclude_patterns = ["_build", "iam"]
highlight_language = "none"

html_theme = "alabaster"
html_title = "logjam"

# sphinx-build -b man docs OUTDIR: a page per command (section 1) and per
# reference subject (section 7), from the same sources as the HTML.
man_pages = [
    ("compress", "logjam-compress", "compress finished hourly log files, safely", [author], 1),
    ("upload", "logjam-upload", "upload archived log files to S3 or a directory, each once", [author], 1),
    ("cat", "logjam-cat", "read archived hours back, verified, in time order", [author], 1),
    ("operations", "logjam-operations",
     "logjam's common options, logs, metrics, logjam-status, signals and exit statuses", [author], 7),
    ("stores", "logjam-stores", "logjam's credentials, IAM policy and S3-compatible stores", [author], 7),
    ("deployment", "logjam-deployment", "installing and running logjam: cron, systemd, runit, syslog", [author], 7),
    ("guarantees", "logjam-guarantees", "what logjam guarantees, and the tests that check it", [author], 7),
]
