"""Search quality on the labelled citizen questions must not fall below its floors.

Measured when the floors were set (embedded backend, demo content, no language filter):
Thai MRR@5 0.972 / recall@5 1.000, English MRR@5 0.981 / recall@5 1.000.
"""

from __future__ import annotations

import pytest

from knowledge.evaluate import LanguageScore, evaluate_embedded, load_questions
from knowledge.markdown_io import default_content_dir, load_directory

FLOORS = {
    "th": {"mrr": 0.93, "recall": 0.97},
    "en": {"mrr": 0.93, "recall": 0.97},
}


def test_the_question_set_is_big_enough_and_points_at_real_articles() -> None:
    questions = load_questions()
    slugs = {article.slug for article in load_directory(default_content_dir())}
    assert sum(q.language == "th" for q in questions) >= 60
    assert sum(q.language == "en" for q in questions) >= 40
    assert {q.slug for q in questions} <= slugs
    assert len({q.text for q in questions}) == len(questions)


@pytest.fixture(scope="module")
def scores() -> dict[str, LanguageScore]:
    import asyncio

    return asyncio.run(evaluate_embedded())


@pytest.mark.parametrize("language", ["th", "en"])
def test_quality_floors_hold(scores: dict[str, LanguageScore], language: str) -> None:
    score = scores[language]
    misses = "\n".join(f"{q!r}: want {want}, got {got}" for q, want, got in score.misses)
    assert score.mrr >= FLOORS[language]["mrr"], f"MRR@5 {score.mrr:.3f}\n{misses}"
    assert score.recall >= FLOORS[language]["recall"], f"recall@5 {score.recall:.3f}\n{misses}"


def test_quality_holds_with_the_language_filter_too() -> None:
    import asyncio

    filtered = asyncio.run(evaluate_embedded(use_language_filter=True))
    for language, score in filtered.items():
        assert score.mrr >= 0.90, (language, score.mrr)
