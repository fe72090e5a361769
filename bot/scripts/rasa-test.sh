#!/usr/bin/env bash
# Run Rasa's own evaluation on the current model and keep the reports under var/bot/rasa-test/:
#   core/  - the test stories in bot/rasa/tests/ (story and action-level reports, failed stories)
#   nlu/   - the held-out NLU sets in bot/rasa/eval/ (intent report, confusion matrix, histogram)
# Trains first if the project changed (the same cached model bot/manager.py serves).
set -euo pipefail
BOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(dirname "$BOT_DIR")"
OUT="$REPO_DIR/var/bot/rasa-test"
cd "$REPO_DIR"
"$BOT_DIR/scripts/ensure-venv.sh"
MODEL="$("$REPO_DIR/.venv/bin/python" -c '
import asyncio
from bot.manager import RasaManager
print(asyncio.run(RasaManager().train_if_needed()))')"
export RASA_TELEMETRY_ENABLED=false PYTHONPATH="$BOT_DIR/rasa"
export RASA_CACHE_DIRECTORY="${ONESTOP_CACHE_DIR:-$REPO_DIR/.cache}/rasa-train-cache"
export ONESTOP_HTTP_PORT="${ONESTOP_HTTP_PORT:-8080}" ONESTOP_BOT_ACTION_TOKEN="${ONESTOP_BOT_ACTION_TOKEN:-unused}"
rm -rf "$OUT" && mkdir -p "$OUT"
cd "$BOT_DIR/rasa"
"$BOT_DIR/.venv/bin/rasa" test core --model "$MODEL" --stories tests --out "$OUT/core" \
    --endpoints endpoints.yml
"$BOT_DIR/.venv/bin/rasa" test nlu --model "$MODEL" --nlu eval --out "$OUT/nlu"
echo "rasa test reports: $OUT"
