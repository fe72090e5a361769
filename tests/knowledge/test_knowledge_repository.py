"""Articles, versions and the knowledge loop on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from knowledge import metadata
from knowledge.articles import (
    Article,
    ArticleError,
    ArticleText,
    KnowledgeRepository,
    StaleArticle,
    Status,
)


@pytest.fixture
async def repository(database_url: str) -> AsyncIterator[KnowledgeRepository]:
    engine = create_async_engine(database_url)
    repo = KnowledgeRepository(engine)
    await repo.create_tables()
    yield repo
    await engine.dispose()


def draft(slug: str = "id-card-lost", **changes: object) -> Article:
    base = Article(
        slug=slug,
        category="id_card",
        th=ArticleText(title="บัตรประชาชนหาย", body="ยื่นคำขอภายใน 60 วัน", summary="ทำบัตรใหม่"),
        en=ArticleText(title="Lost ID card", body="Apply within 60 days", summary="New card"),
        tags=("บัตรหาย", "lost card"),
        department="กรมการปกครอง",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_knowledge_has_its_own_metadata() -> None:
    assert {"kb_articles", "kb_article_versions", "kb_zero_results"} <= set(metadata.tables)


async def test_a_new_article_is_version_one_and_reads_back_equal(
    repository: KnowledgeRepository,
) -> None:
    stored = await repository.save(draft(), author="somchai", note="first")
    assert stored.version == 1 and stored.id is not None
    again = await repository.get("id-card-lost")
    assert again == stored
    assert again.tags == ("บัตรหาย", "lost card")
    assert again.updated_at is not None and again.updated_at.tzinfo is not None


async def test_every_edit_is_a_new_version_with_author_time_and_note(
    repository: KnowledgeRepository,
) -> None:
    first = await repository.save(draft(), author="somchai", note="first")
    edited = dataclasses.replace(
        first, th=dataclasses.replace(first.th, body="ยื่นคำขอภายใน 60 วัน ค่าธรรมเนียม 100 บาท")
    )
    second = await repository.save(edited, author="malee", note="add the fee")
    assert second.version == 2
    history = await repository.history("id-card-lost")
    assert [(v.version, v.author, v.note) for v in history] == [
        (1, "somchai", "first"),
        (2, "malee", "add the fee"),
    ]
    assert history[0].article.th.body == "ยื่นคำขอภายใน 60 วัน"
    assert "100 บาท" in history[1].article.th.body
    assert history[0].created_at <= history[1].created_at


async def test_saving_a_stale_copy_is_refused(repository: KnowledgeRepository) -> None:
    first = await repository.save(draft(), author="somchai")
    await repository.save(first, author="malee")
    with pytest.raises(StaleArticle):
        await repository.save(first, author="somchai")


async def test_invalid_articles_are_refused(repository: KnowledgeRepository) -> None:
    with pytest.raises(ArticleError):
        await repository.save(draft(slug="Not A Slug"), author="x")
    with pytest.raises(ArticleError):
        await repository.save(draft(category="no_such_category"), author="x")


async def test_an_article_may_be_thai_only(repository: KnowledgeRepository) -> None:
    stored = await repository.save(draft(en=None), author="x")
    assert (await repository.get(stored.slug)).en is None  # type: ignore[union-attr]
    assert stored.languages() == ["th"]


async def test_a_resolved_case_becomes_a_draft_then_is_published(
    repository: KnowledgeRepository,
) -> None:
    proposed = await repository.propose_from_case(
        "ประชาชนถามว่าบัตรประชาชนหายต้องแจ้งความไหม\nเจ้าหน้าที่ตอบว่าไม่ต้อง",
        resolution="ไม่ต้องแจ้งความ ไปสำนักงานเขตพร้อมทะเบียนบ้าน",
        author="agent-7",
        category="id_card",
        title_en="Lost ID card: police report?",
        case_ref="OS-2026-000123",
    )
    assert proposed.status is Status.DRAFT
    assert proposed.slug == "lost-id-card-police-report"
    assert proposed.th.title.startswith("ประชาชนถามว่า")
    assert "ไม่ต้องแจ้งความ" in proposed.th.body
    assert (await repository.history(proposed.slug))[0].note == "proposed from case OS-2026-000123"

    published = await repository.publish(proposed.slug, "reviewer-1")
    assert published.status is Status.PUBLISHED
    assert published.version == 2
    assert published.updated_by == "reviewer-1"
    assert published.review_by is not None and published.review_by > datetime.now(UTC).date()
    assert [a.slug for a in await repository.list_articles(status=Status.PUBLISHED)] == [
        proposed.slug
    ]


async def test_two_proposals_with_one_title_get_distinct_slugs(
    repository: KnowledgeRepository,
) -> None:
    one = await repository.propose_from_case("ถามเรื่องภาษี", author="a", title_en="Tax question")
    two = await repository.propose_from_case("ถามเรื่องภาษี", author="a", title_en="Tax question")
    assert one.slug == "tax-question" and two.slug == "tax-question-2"


async def test_archiving_keeps_the_article_and_its_history(
    repository: KnowledgeRepository,
) -> None:
    stored = await repository.save(draft(status=Status.PUBLISHED), author="a")
    archived = await repository.archive(stored, "b")
    assert archived.status is Status.ARCHIVED
    assert len(await repository.history(stored.slug)) == 2


async def test_published_articles_past_review_are_flagged(repository: KnowledgeRepository) -> None:
    today = date(2026, 11, 22)
    await repository.save(
        draft("old", status=Status.PUBLISHED, review_by=today - timedelta(days=1)), author="a"
    )
    await repository.save(
        draft("fresh", status=Status.PUBLISHED, review_by=today + timedelta(days=30)), author="a"
    )
    await repository.save(draft("draft", review_by=today - timedelta(days=100)), author="a")
    overdue = await repository.review_overdue(today)
    assert [a.slug for a in overdue] == ["old"]
    assert overdue[0].is_overdue(today)
    assert not (await repository.get("draft")).is_overdue(today)  # type: ignore[union-attr]


async def test_searches_that_found_nothing_are_reported(repository: KnowledgeRepository) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    await repository.record_zero_result("ขอใบขับขี่สากล", language="th", source="bot")
    await repository.record_zero_result("  ขอใบขับขี่สากล ", language="th", source="console")
    await repository.record_zero_result("International Driving Permit", source="website")
    await repository.record_zero_result("   ")  # nothing to record
    report = await repository.zero_result_report(since)
    assert [(t.query, t.language, t.count) for t in report] == [
        ("ขอใบขับขี่สากล", "th", 2),
        ("international driving permit", None, 1),
    ]
    assert report[0].sources == ("bot", "console")
    assert report[0].last_seen >= since
    assert await repository.zero_result_report(datetime.now(UTC) + timedelta(minutes=1)) == []
