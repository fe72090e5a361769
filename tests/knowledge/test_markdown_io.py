"""The Markdown content format: the demo knowledge base, round trips, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.articles import CATEGORIES, Status
from knowledge.markdown_io import (
    ContentError,
    default_content_dir,
    load_directory,
    parse_article,
    render_article,
    write_directory,
)

REQUIRED_TOPICS = {
    "id_card",
    "house_registration",
    "civil_registration",
    "tax",
    "fines",
    "business",
    "elderly_allowance",
    "disability",
    "child_support",
    "welfare_card",
    "social_work",
    "complaints",
    "case_status",
    "office_hours",
    "locations",
    "appointments",
    "consultation",
    "documents",
    "fees",
}


def test_the_demo_knowledge_base_has_forty_bilingual_articles_over_the_catalogue() -> None:
    articles = load_directory(default_content_dir())
    assert len(articles) >= 40
    assert {a.category for a in articles} >= REQUIRED_TOPICS
    for article in articles:
        assert article.category in CATEGORIES
        assert article.en is not None, article.slug
        assert article.th.summary and article.en.summary, article.slug
        assert len(article.th.body) > 200 and len(article.en.body) > 200, article.slug
        assert article.department and article.tags and article.review_by, article.slug
        assert article.status is Status.PUBLISHED


def test_every_content_file_round_trips(tmp_path: Path) -> None:
    articles = load_directory(default_content_dir())
    write_directory(articles, tmp_path)
    assert load_directory(tmp_path) == articles
    for article in articles:
        assert parse_article(render_article(article)) == article


def test_a_thai_only_article_round_trips() -> None:
    article = load_directory(default_content_dir())[0]
    from dataclasses import replace

    thai_only = replace(article, en=None, review_by=None)
    text = render_article(thai_only)
    assert "# en" not in text
    assert parse_article(text) == thai_only


GOOD = """---
slug: sample
category: tax
status: published
review_by: 2027-01-31
tags: [ภาษี]
title_th: ตัวอย่าง
title_en: Sample
---
# th
เนื้อหา
# en
Body
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("slug: x\n", 1, "must start with '---'"),
        ("---\nslug: x\n", 1, "not closed"),
        (GOOD.replace("category: tax", "category: [tax"), 3, "not valid YAML"),
        (GOOD.replace("category: tax\n", ""), 1, "'category' is missing"),
        (GOOD.replace("status: published", "status: live"), 4, "'status' must be"),
        (GOOD.replace("review_by: 2027-01-31", "review_by: soon"), 5, "must be a date"),
        (GOOD.replace("tags: [ภาษี]", "tags: ภาษี"), 6, "'tags' must be a list"),
        (GOOD.replace("slug: sample", "slug: Sample Slug"), 2, "slug 'Sample Slug'"),
        (GOOD.replace("category: tax", "category: taxes"), 2, "unknown category"),
        (GOOD.replace("title_en: Sample\n", ""), 1, "'title_en' is missing"),
        (GOOD.replace("# th\n", "intro\n# th\n"), 10, "text before the '# th'"),
        (GOOD + "# th\nagain\n", 14, "a second '# th'"),
        (GOOD.replace("title_en: Sample", "title_en: Sample\nauthor: me"), 9, "unknown key"),
    ],
)
def test_mistakes_are_reported_with_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ContentError) as caught:
        parse_article(text, "content/sample.md")
    assert caught.value.path == "content/sample.md"
    assert caught.value.line == line, str(caught.value)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"content/sample.md:{line}: ")


def test_a_slug_used_twice_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.md").write_text(GOOD, encoding="utf-8")
    with pytest.raises(ContentError, match="also used by"):
        load_directory(tmp_path)
