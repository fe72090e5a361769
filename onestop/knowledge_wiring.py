"""The knowledge base wired to the rooms that use it: the bot's search port, the
console's knowledge desk (staff API), and the citizens' help pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

import knowledge
from agent_console.api import KNOWLEDGE_KEY
from bot.actions import KnowledgeHit
from knowledge import web as knowledge_web
from knowledge.articles import KnowledgeRepository
from knowledge.service import KnowledgeService
from onestop.settings import AppSettings

#: Below this score a hit is not shown to a citizen by the bot. Measured in the running
#: app on the demo content: right first answers to short Thai questions score about 2
#: with the language filter on; questions the base cannot answer find nothing at all.
BOT_SCORE_FLOOR = 1.0


class KnowledgeAdapter:
    """One object, two ports: `bot.actions.KnowledgeSearch` and the console's desk."""

    def __init__(self, service: KnowledgeService, public_url: str) -> None:
        self.service = service
        self.public_url = public_url.rstrip("/")

    async def search(self, query: str, *, language: str, limit: int = 3,
                     source: str = "bot") -> Sequence[KnowledgeHit]:
        hits = await self.service.search(query, language, limit, source=source)
        return [KnowledgeHit(h.title, h.snippet, f"{self.public_url}/help/{h.id}"
                             f"?lang={h.language}", h.score)
                for h in hits if source != "bot" or h.score >= BOT_SCORE_FLOOR]

    async def find(self, query: str, language: str | None, limit: int) -> list[dict[str, Any]]:
        hits = await self.service.search(query, language, limit, source="console")
        return [{"slug": h.id, "title": h.title, "snippet": h.snippet, "score": h.score,
                 "language": h.language, "url": f"{self.public_url}/help/{h.id}"}
                for h in hits]

    async def propose(self, *, case_summary: str, resolution: str, category: str,
                      author: str, title_th: str | None, title_en: str | None) -> str:
        article = await self.service.repository.propose_from_case(
            case_summary, author=author, category=category, resolution=resolution,
            title_th=title_th, title_en=title_en)
        return article.slug

    async def publish(self, slug: str, reviewer: str) -> None:
        await self.service.publish(slug, reviewer)

    async def gaps(self, since: datetime) -> list[dict[str, Any]]:
        rows = await self.service.repository.zero_result_report(since)
        return [{"query": r.query, "language": r.language, "count": r.count,
                 "last": r.last_seen} for r in rows]

    async def overdue(self) -> list[dict[str, Any]]:
        return [{"slug": a.slug, "title": a.th.title, "department": a.department,
                 "review_by": a.review_by} for a in await self.service.repository.review_overdue()]


def setup(app: web.Application, db_engine: Any, settings: AppSettings) -> KnowledgeAdapter:
    """Create the knowledge service, load the shipped content at start-up, and serve it."""
    backend = knowledge.create_backend(
        elasticsearch_url=settings.elasticsearch_url,
        index_path=settings.data_dir / "knowledge-search.sqlite3")
    service = KnowledgeService(KnowledgeRepository(db_engine), backend)
    adapter = KnowledgeAdapter(service, settings.public_url)
    app[KNOWLEDGE_KEY] = adapter
    knowledge_web.setup(app, service)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await service.import_content()
        yield
        await backend.close()

    app.cleanup_ctx.append(lifecycle)
    return adapter
