#!/usr/bin/env bash
# Runs every test from a fresh clone: makes its own virtualenv, installs
# logjam with its test extras, then runs the unit and integration tiers.
# Extra arguments go to pytest (e.g. ./test_all.sh -k upload -x, or test paths).
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
# Types: strict on logjam/ (settings in mypy.ini).
"$VENV/bin/mypy" logjam
# The reference in docs/ builds with no warning (a broken reference, a page
# left out of the table of contents), into a temporary directory.
docs_out=$(mktemp -d)
docs_status=0
"$VENV/bin/sphinx-build" -W --keep-going -q docs "$docs_out" || docs_status=$?
rm -rf "$docs_out"
[ "$docs_status" -eq 0 ] || exit "$docs_status"
# s3rver: a second S3 implementation for the tests (it ignores If-None-Match).
# The upload guarantees are tested against it as well as moto: without it
# the run is not a full one, so a failed install stops here.
if [ ! -x .s3rver/node_modules/.bin/s3rver ]; then
    if ! npm install --prefix .s3rver --no-audit --no-fund --silent s3rver@3.7.1 >/dev/null; then
        echo "test_all.sh: could not install s3rver with npm (needs Node.js and npm)" >&2
        exit 1
    fi
fi
export PYTHONDEVMODE=1
# Every test unless paths are given. Four workers: most tests wait on
# processes, sockets and fsync rather than the CPU (about 3 minutes on 2 cores).
paths=(tests)
for arg in "$@"; do
    case "$arg" in -*) ;; *) paths=() ;; esac
done
exec "$VENV/bin/python" -m pytest -p no:cacheprovider --strict-markers -ra \
    -n "${LOGJAM_TEST_WORKERS:-4}" "$@" "${paths[@]}"
