#!/usr/bin/env bash
# Benchmarks logjam against gzip, pigz, zstd and the AWS CLI on this machine.
# Run by hand (not in CI):  bench/run.sh [--quick] [other bench.py options]
# Makes bench/.venv, installs logjam (editable) with moto[server] and awscli,
# installs pigz, zstd and GNU time with apt-get when missing, then
# runs bench/bench.py, which prints one table and writes bench/results/latest.txt.
set -euo pipefail
cd "$(dirname "$0")"
BENCH_DIR=$(pwd)
VENV=${LOGJAM_BENCH_VENV:-$BENCH_DIR/.venv}
PYTHON=${PYTHON:-python3}

missing=()
for tool in pigz zstd gzip; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} with apt-get" >&2
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
PIP_LOG="$VENV/pip-install.log"
if ! "$VENV/bin/python" -m pip install --quiet -e .. 'moto[server]>=5.0.20' awscli >"$PIP_LOG" 2>&1; then
    cat "$PIP_LOG" >&2
    echo "bench/run.sh: pip install failed (log above)" >&2
    exit 1
fi

export PATH="$VENV/bin:$PATH"
exec "$VENV/bin/python" "$BENCH_DIR/bench.py" "$@"
