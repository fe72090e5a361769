"""Scores the bot's NLU on the held-out test sets through a running Rasa server.

    .venv/bin/python -m bot.evaluate --url http://127.0.0.1:5005

For each language it sends every example of ``bot/rasa/eval/nlu_test_<lang>.yml`` to
``/model/parse`` and reports:

- macro-F1 over the gold intents. ``nlu_fallback`` (FallbackClassifier: confidence under the
  threshold, or two intents too close) and ``out_of_scope`` both mean "the bot will not answer
  this", so a prediction of ``nlu_fallback`` is scored as ``out_of_scope``;
- OOS recall: the share of out-of-scope examples (nonsense, unrelated topics) that the bot does
  not answer as if they were a service question;
- the in-scope fallback rate: in-scope questions the bot would not answer.

Results are printed and written as JSON (default ``var/bot/eval.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.client import RasaClient

BOT_DIR = Path(__file__).resolve().parent
EVAL_DIR = BOT_DIR / "rasa" / "eval"
OUT_OF_SCOPE = "out_of_scope"
FALLBACK = "nlu_fallback"
_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]+\)")


@dataclass
class LanguageReport:
    """Scores for one language's test set."""

    language: str
    examples: int
    accuracy: float
    macro_f1: float
    oos_recall: float
    in_scope_fallback_rate: float
    per_intent_f1: dict[str, float]
    errors: list[dict[str, Any]] = field(default_factory=list)


def load_examples(path: Path) -> list[tuple[str, str]]:
    """``(text, intent)`` pairs from a Rasa NLU YAML file, entity annotations removed."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    pairs: list[tuple[str, str]] = []
    for block in data.get("nlu", []):
        intent = block.get("intent")
        if not intent:
            continue
        for line in str(block.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                pairs.append((_ANNOTATION.sub(r"\1", line[2:].strip()), intent))
    return pairs


def macro_f1(gold: list[str], predicted: list[str]) -> tuple[float, dict[str, float]]:
    """Macro-averaged F1 over the gold labels, and F1 per label."""
    labels = sorted(set(gold))
    scores: dict[str, float] = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return (sum(scores.values()) / len(scores) if scores else 0.0), scores


def score(language: str, gold: list[str], raw: list[str], texts: list[str]) -> LanguageReport:
    """Builds a language report from gold intents and the server's raw predictions."""
    predicted = [OUT_OF_SCOPE if p == FALLBACK else p for p in raw]
    f1, per_intent = macro_f1(gold, predicted)
    oos = [p for g, p in zip(gold, predicted, strict=True) if g == OUT_OF_SCOPE]
    in_scope = [r for g, r in zip(gold, raw, strict=True) if g != OUT_OF_SCOPE]
    errors = [
        {"text": t, "gold": g, "predicted": r}
        for t, g, r, p in zip(texts, gold, raw, predicted, strict=True)
        if g != p
    ]
    return LanguageReport(
        language=language,
        examples=len(gold),
        accuracy=sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold),
        macro_f1=f1,
        oos_recall=(sum(p == OUT_OF_SCOPE for p in oos) / len(oos)) if oos else 0.0,
        in_scope_fallback_rate=(
            (sum(r in (FALLBACK, OUT_OF_SCOPE) for r in in_scope) / len(in_scope))
            if in_scope
            else 0.0
        ),
        per_intent_f1=per_intent,
        errors=errors,
    )


async def evaluate(
    url: str,
    languages: tuple[str, ...] = ("th", "en"),
    *,
    eval_dir: Path = EVAL_DIR,
    token: str | None = None,
    concurrency: int = 4,
) -> dict[str, Any]:
    """Runs the held-out sets through ``url``'s ``/model/parse``; returns the JSON report."""
    reports: dict[str, Any] = {}
    latencies: list[float] = []
    async with RasaClient(url, timeout=30.0, token=token) as client:
        limit = asyncio.Semaphore(concurrency)

        async def predict(text: str) -> str:
            async with limit:
                started = time.perf_counter()
                result = await client.parse(text)
                latencies.append(time.perf_counter() - started)
                return result.intent.name

        for language in languages:
            pairs = load_examples(eval_dir / f"nlu_test_{language}.yml")
            texts = [text for text, _ in pairs]
            gold = [intent for _, intent in pairs]
            raw = await asyncio.gather(*(predict(text) for text in texts))
            reports[language] = asdict(score(language, gold, list(raw), texts))
    latencies.sort()
    return {
        "url": url,
        "languages": reports,
        "parse_latency_ms": {
            "median": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
            "p95": round(1000 * latencies[int(len(latencies) * 0.95)], 1) if latencies else None,
            "requests": len(latencies),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: evaluate a running server and write the JSON report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:5005")
    parser.add_argument("--token", default=None, help="Rasa --auth-token, if set")
    parser.add_argument("--out", type=Path, default=BOT_DIR.parent / "var" / "bot" / "eval.json")
    parser.add_argument("--languages", default="th,en")
    args = parser.parse_args(argv)
    report = asyncio.run(evaluate(args.url, tuple(args.languages.split(",")), token=args.token))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    for language, rep in report["languages"].items():
        print(
            f"{language}: n={rep['examples']} macro-F1={rep['macro_f1']:.3f} "
            f"accuracy={rep['accuracy']:.3f} OOS recall={rep['oos_recall']:.3f} "
            f"in-scope fallback={rep['in_scope_fallback_rate']:.3f}"
        )
        worst = Counter(e["gold"] for e in rep["errors"]).most_common(5)
        if worst:
            print("   most errors:", ", ".join(f"{intent}×{n}" for intent, n in worst))
    print(f"parse latency ms: {report['parse_latency_ms']}")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
