#!/usr/bin/env bash
# Runs every test from a fresh clone: makes its own virtualenv, installs
# logjam with its test extras, then runs the unit and integration tiers.
# Extra arguments go to pytest (e.g. ./test_all.sh -k upload -x).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${LOGJAM_VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
echo "test_all.sh: installing logjam with its test extras into $VENV (about a minute the first time)" >&2
# -qq: pip's errors only. Its warnings here were about index locations of the
# machine's pip configuration, not about logjam; a failed install still stops
# the script (set -e) with pip's error.
"$VENV/bin/python" -m pip install -qq -e '.[test]'
"$VENV/bin/ruff" check logjam tests
# s3rver: a second S3 implementation for the tests (it ignores If-None-Match).
if [ ! -x .s3rver/node_modules/.bin/s3rver ]; then
    npm install --prefix .s3rver --no-audit --no-fund --silent s3rver@3.7.1 >/dev/null \
        || echo "test_all.sh: could not install s3rver with npm; its tests are skipped" >&2
fi
export PYTHONDEVMODE=1
exec "$VENV/bin/python" -m pytest -p no:cacheprovider --strict-markers -ra "$@" tests
