"""Measure search quality on the labelled questions: MRR@5 and recall@5 per language.

Run: ``python -m knowledge.evaluate`` (embedded backend, demo content) — prints the figures and
the questions whose answer was not in the top 5. The test suite asserts floors on the same
figures, so a change that makes search worse fails the build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from knowledge.articles import Article
from knowledge.markdown_io import default_content_dir, load_directory
from knowledge.search import SearchBackend

CUTOFF = 5


@dataclass(frozen=True)
class Question:
    """A citizen's question, its language, and the slug of the article that answers it."""

    text: str
    language: str
    slug: str


@dataclass
class LanguageScore:
    """Quality figures for the questions of one language."""

    questions: int = 0
    reciprocal_rank_sum: float = 0.0
    found: int = 0
    misses: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def mrr(self) -> float:
        """Mean reciprocal rank of the right article within the top 5 (0 when not there)."""
        return self.reciprocal_rank_sum / self.questions if self.questions else 0.0

    @property
    def recall(self) -> float:
        """Share of questions whose right article is in the top 5."""
        return self.found / self.questions if self.questions else 0.0


def default_questions_path() -> Path:
    """Return the path of the labelled question set shipped with OneStop."""
    return Path(__file__).parent / "eval" / "questions.yml"


def load_questions(path: str | Path | None = None) -> list[Question]:
    """Read the labelled questions (YAML: ``questions: [{q, lang, slug}, …]``)."""
    data = yaml.safe_load(Path(path or default_questions_path()).read_text(encoding="utf-8"))
    return [
        Question(text=str(item["q"]), language=str(item["lang"]), slug=str(item["slug"]))
        for item in data["questions"]
    ]


async def evaluate(
    backend: SearchBackend,
    questions: Sequence[Question],
    *,
    use_language_filter: bool = False,
) -> dict[str, LanguageScore]:
    """Search every question on an already indexed ``backend`` and score the results.

    By default questions are searched without a language filter, as a citizen's free text
    arrives; ``use_language_filter`` searches only the question's language.
    """
    scores: dict[str, LanguageScore] = {}
    for question in questions:
        hits = await backend.search(
            question.text,
            language=question.language if use_language_filter else None,
            limit=CUTOFF,
        )
        ids = [hit.id for hit in hits]
        score = scores.setdefault(question.language, LanguageScore())
        score.questions += 1
        if question.slug in ids:
            score.found += 1
            score.reciprocal_rank_sum += 1.0 / (ids.index(question.slug) + 1)
        else:
            score.misses.append((question.text, question.slug, ids))
    return scores


async def evaluate_embedded(
    articles: Sequence[Article] | None = None,
    questions: Sequence[Question] | None = None,
    *,
    use_language_filter: bool = False,
) -> dict[str, LanguageScore]:
    """Index ``articles`` (default: the demo content) in memory and evaluate ``questions``."""
    from knowledge.embedded import EmbeddedSearch

    backend = EmbeddedSearch(":memory:")
    try:
        await backend.index(
            articles if articles is not None else load_directory(default_content_dir())
        )
        return await evaluate(
            backend,
            questions if questions is not None else load_questions(),
            use_language_filter=use_language_filter,
        )
    finally:
        await backend.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: print MRR@5 and recall@5 per language, and the misses."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=Path, default=default_questions_path())
    parser.add_argument("--content", type=Path, default=default_content_dir())
    parser.add_argument("--language-filter", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    scores = asyncio.run(
        evaluate_embedded(
            load_directory(args.content),
            load_questions(args.questions),
            use_language_filter=args.language_filter,
        )
    )
    if args.json:
        figures = {
            lang: {"questions": s.questions, "mrr@5": s.mrr, "recall@5": s.recall}
            for lang, s in scores.items()
        }
        print(json.dumps(figures, indent=2))
        return
    for lang, score in sorted(scores.items(), key=lambda item: item[0] != "th"):
        print(
            f"{lang}: {score.questions} questions  MRR@5 {score.mrr:.3f}  "
            f"recall@5 {score.recall:.3f}"
        )
    for lang, score in scores.items():
        for text, slug, ids in score.misses:
            print(f"  miss [{lang}] {text!r}: want {slug}, got {ids}")


if __name__ == "__main__":
    main()
