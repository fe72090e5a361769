"""The knowledge loop end to end: repository and search index kept in step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from knowledge import KnowledgeRepository, KnowledgeService, Status, create_backend
from knowledge.embedded import EmbeddedSearch
from knowledge.markdown_io import default_content_dir, load_directory


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[KnowledgeService]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    repository = KnowledgeRepository(engine)
    await repository.create_tables()
    backend = create_backend(index_path=tmp_path / "search.sqlite3")
    yield KnowledgeService(repository, backend)
    await backend.close()
    await engine.dispose()


def test_the_backend_follows_the_settings() -> None:
    assert isinstance(create_backend(), EmbeddedSearch)


async def test_importing_the_demo_content_makes_it_searchable_once(
    service: KnowledgeService,
) -> None:
    imported = await service.import_content()
    assert len(imported) == len(load_directory(default_content_dir()))
    assert await service.import_content() == []  # unchanged files are not saved again
    hits = await service.search("บัตรประชาชนหาย")
    assert hits[0].id == "id-card-lost"


async def test_a_case_becomes_searchable_only_when_published(service: KnowledgeService) -> None:
    draft = await service.repository.propose_from_case(
        "ขอใบขับขี่สากลต้องทำอย่างไร",
        resolution="ยื่นที่สำนักงานขนส่ง ใช้ใบขับขี่และหนังสือเดินทาง",
        author="agent-7",
        category="general",
        title_en="International driving permit",
    )
    assert await service.search("ใบขับขี่สากล") == []
    await service.publish(draft, "reviewer")
    assert (await service.search("ใบขับขี่สากล"))[0].id == draft.slug
    await service.archive(draft.slug, "reviewer")
    assert await service.search("ใบขับขี่สากล") == []


async def test_zero_result_searches_are_recorded(service: KnowledgeService) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    await service.search("หนังสือเดินทางราชการ", source="bot")
    await service.search("", source="bot")  # empty: nothing to learn from
    report = await service.repository.zero_result_report(since)
    assert [(t.query, t.count, t.sources) for t in report] == [("หนังสือเดินทางราชการ", 1, ("bot",))]


async def test_rebuilding_the_index_uses_published_articles(service: KnowledgeService) -> None:
    await service.import_content()
    renew = await service.repository.get("id-card-renew")
    assert renew is not None
    await service.repository.archive(renew, "editor")  # behind the index's back
    assert await service.rebuild_index() == len(
        await service.repository.list_articles(status=Status.PUBLISHED)
    )
    assert "id-card-renew" not in [h.id for h in await service.search("ต่ออายุบัตร", limit=10)]
