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
