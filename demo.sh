#!/usr/bin/env bash
# Quick start: installs logjam into .venv and runs both commands end to end
# on a generated sample log directory, uploading to a local file:// archive.
# Nothing outside a new temporary directory (and .venv) is touched.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${LOGJAM_VENV:-.venv}
echo "== installing logjam into $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet -e .
VENV=$(cd "$VENV" && pwd)
PATH="$VENV/bin:$PATH"

demo=$(mktemp -d "${TMPDIR:-/tmp}/logjam-demo.XXXXXX")
logs="$demo/var/log/app"
bucket="$demo/bucket"
mkdir -p "$logs" "$bucket"

echo "== writing sample hourly logs to $logs"
"$VENV/bin/python" - "$logs" <<'PY'
import datetime, os, sys
from logjam.parse import unparse_filename
logs = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
for stream, suffix in (("web", None), ("worker", "queue-1")):
    for hours_ago in (3, 2, 1, 0):   # the current hour is still being written
        stamp = now - datetime.timedelta(hours=hours_ago)
        name = unparse_filename(stream, stamp, suffix=suffix, extension=".log")
        with open(f"{logs}/{name}", "w") as log:
            for i in range(5000):
                log.write(f"{stamp:%Y-%m-%dT%H}:{i % 60:02d}:00Z {stream} request id={i} status=200\n")
        if hours_ago:   # a finished hour was last written at its end
            end = (stamp + datetime.timedelta(minutes=59)).timestamp()
            os.utime(f"{logs}/{name}", (end, end))
PY
ls -l "$logs"

echo
echo "== logjam-compress --once $logs"
logjam-compress --once "$logs"

echo
echo "== logjam-upload --once $logs/archive file://$bucket/{prefix}/{year}/{month}/{day}/{filename}"
logjam-upload --once "$logs/archive" "file://$bucket/{prefix}/{year}/{month}/{day}/{filename}"

echo
echo "== a second pass has nothing to do"
logjam-upload --once --log-level debug "$logs/archive" "file://$bucket/{prefix}/{year}/{month}/{day}/{filename}"

echo
echo "== what is where now"
(cd "$demo" && find . -type f -not -name '.logjam-*.lock' | sort)
echo
echo "Done. Everything is under $demo (remove it with: rm -r $demo)"
