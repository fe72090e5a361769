"""Start a Rasa server on a given model, score the held-out sets, stop it.

.venv/bin/python -m bot.scripts.eval_model var/bot/models/exp_b.tar.gz var/bot/eval-b.json
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bot.evaluate import evaluate
from bot.manager import RasaManager


async def main(model: Path, out: Path, port: int = 5055) -> None:
    """Runs one model and writes its evaluation report (with the server start time)."""
    manager = RasaManager(port=port)
    started = time.monotonic()
    await manager.start(model=model)
    start_s = time.monotonic() - started
    try:
        report = await evaluate(manager.base_url, token=manager.api_token)
    finally:
        await manager.stop()
    report["model"] = str(model)
    report["server_start_s"] = round(start_s, 1)
    await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
    text = json.dumps(report, ensure_ascii=False, indent=2)
    await asyncio.to_thread(out.write_text, text, encoding="utf-8")
    for lang, rep in report["languages"].items():
        print(
            f"{lang}: macro-F1={rep['macro_f1']:.3f} acc={rep['accuracy']:.3f} "
            f"OOS recall={rep['oos_recall']:.3f} "
            f"in-scope fallback={rep['in_scope_fallback_rate']:.3f}"
        )
    print("start", report["server_start_s"], "s; latency", report["parse_latency_ms"])


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
