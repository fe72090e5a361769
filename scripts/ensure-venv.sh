#!/usr/bin/env bash
# Create or refresh .venv from requirements.lock (idempotent: a stamp holds the lock's hash).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
lock_hash=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
stamp=.venv/.onestop-lock-hash
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ]; then
  exit 0
fi
echo "==> preparing Python environment (.venv)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
# The rooms are imported from the working tree (no build step): a .pth file puts it on the path.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pwd > "$site/onestop-worktree.pth"
echo "$lock_hash" > "$stamp"
