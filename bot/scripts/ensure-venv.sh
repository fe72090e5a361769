#!/usr/bin/env bash
# Create or refresh bot/.venv: Rasa Open Source 3.6 on Python 3.10, exactly as pinned in
# bot/requirements.lock. Idempotent: does nothing when the venv's stamp matches the lock's hash.
#
# Rebuilds keep every wheel in a wheelhouse (${ONESTOP_CACHE_DIR:-<repo>/.cache}/bot-wheels),
# so a second build is offline and quick; the lock is complete (pip freeze), so installs run
# with --no-deps and never resolve.
#
# Environment:
#   BOT_PYTHON        interpreter to use (default: pyenv's 3.10.13, then python3.10 on PATH)
#   BOT_VENV          where the venv lives (default: bot/.venv)
#   ONESTOP_CACHE_DIR cache root (default: <repo>/.cache)
set -euo pipefail

BOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(dirname "$BOT_DIR")"
VENV="${BOT_VENV:-$BOT_DIR/.venv}"
LOCK="$BOT_DIR/requirements.lock"
STAMP="$VENV/.onestop-lock-sha256"
CACHE_DIR="${ONESTOP_CACHE_DIR:-$REPO_DIR/.cache}"
WHEELS="$CACHE_DIR/bot-wheels"

find_python() {
    if [[ -n "${BOT_PYTHON:-}" ]]; then echo "$BOT_PYTHON"; return; fi
    local pyenv_root
    pyenv_root="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
    if [[ -x "$pyenv_root/versions/3.10.13/bin/python3.10" ]]; then
        echo "$pyenv_root/versions/3.10.13/bin/python3.10"; return
    fi
    if command -v python3.10 >/dev/null 2>&1; then command -v python3.10; return; fi
    echo "ensure-venv: no Python 3.10 found; set BOT_PYTHON or run 'uv python install 3.10'" >&2
    exit 2
}

want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
is_current() { [[ -x "$VENV/bin/rasa" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; }

if is_current; then
    echo "ensure-venv: $VENV is up to date"
    exit 0
fi

mkdir -p "$CACHE_DIR" "$WHEELS"
# Two test sessions may start at once; only one builds, the other waits and finds it current.
exec 9>"$CACHE_DIR/bot-venv.flock"
flock 9
if is_current; then
    echo "ensure-venv: $VENV is up to date"
    exit 0
fi

started=$SECONDS
PY="$(find_python)"
echo "ensure-venv: building $VENV with $PY from $LOCK"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
pip_() {
    # This machine's pip config names two local indexes that may not exist; hide that noise.
    "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
pip_ install --quiet --upgrade "pip==24.0" "setuptools==70.3.0" "wheel==0.45.1"

# Offline first, from the wheelhouse; on a miss fetch the missing wheels (building any sdist
# once) and try again.
if ! pip_ install --quiet --no-deps --no-index --find-links "$WHEELS" -r "$LOCK" 2>/dev/null; then
    echo "ensure-venv: filling wheelhouse $WHEELS"
    pip_ wheel --quiet --no-deps --find-links "$WHEELS" -w "$WHEELS" -r "$LOCK"
    pip_ install --quiet --no-deps --no-index --find-links "$WHEELS" -r "$LOCK"
fi
pip_ check
echo "$want" > "$STAMP"
echo "ensure-venv: done in $((SECONDS - started)) s ($(du -sh "$VENV" | cut -f1))"
