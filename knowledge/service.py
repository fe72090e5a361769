"""The knowledge base as the rest of OneStop uses it: articles, search, and the knowledge loop.

:class:`KnowledgeService` keeps the search index in step with the repository (publishing an
article indexes it, archiving removes it) and records searches that found nothing, so that the
zero-result report tells editors what citizens looked for in vain.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from knowledge.articles import Article, KnowledgeRepository, Status
from knowledge.markdown_io import default_content_dir, load_directory
from knowledge.search import DEFAULT_LIMIT, Hit, SearchBackend


class KnowledgeService:
    """Articles (``repository``) and their search index (``backend``) kept together."""

    def __init__(self, repository: KnowledgeRepository, backend: SearchBackend) -> None:
        self.repository = repository
        self.backend = backend

    async def search(
        self,
        query: str,
        language: str | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        category: str | None = None,
        tags: tuple[str, ...] = (),
        source: str = "",
    ) -> list[Hit]:
        """Search, and record the query when it found nothing (``source``: bot, console…)."""
        hits = await self.backend.search(query, language, limit, category=category, tags=tags)
        if not hits and query and query.strip():
            await self.repository.record_zero_result(query, language=language, source=source)
        return hits

    async def save(self, article: Article, *, author: str, note: str = "") -> Article:
        """Store a new version of ``article`` and update the index to match its status."""
        stored = await self.repository.save(article, author=author, note=note)
        await self.backend.index([stored])
        return stored

    async def publish(self, article: Article | str, reviewer: str, *, note: str = "") -> Article:
        """Publish ``article`` as reviewed by ``reviewer`` and make it searchable at once."""
        published = await self.repository.publish(article, reviewer, note=note)
        await self.backend.index([published])
        return published

    async def archive(self, article: Article | str, author: str, *, note: str = "") -> Article:
        """Archive ``article`` and take it out of search."""
        archived = await self.repository.archive(article, author, note=note)
        await self.backend.delete(archived.slug)
        return archived

    async def rebuild_index(self) -> int:
        """Rebuild the whole index from the published articles; return how many."""
        published = await self.repository.list_articles(status=Status.PUBLISHED)
        await self.backend.reindex(published)
        return len(published)

    async def import_content(
        self, directory: str | Path | None = None, *, author: str = "content-import"
    ) -> list[str]:
        """Load Markdown articles into the repository, saving only new or changed ones.

        Returns the slugs saved; the index is updated for them. Safe to run at every start.
        """
        saved: list[Article] = []
        for article in load_directory(directory or default_content_dir()):
            current = await self.repository.get(article.slug)
            if current is not None and _same_content(current, article):
                continue
            base = (
                article
                if current is None
                else dataclasses.replace(article, version=current.version)
            )
            saved.append(await self.repository.save(base, author=author, note="imported"))
        if saved:
            await self.backend.index(saved)
        return [article.slug for article in saved]


def _same_content(a: Article, b: Article) -> bool:
    keep = ("slug", "category", "th", "en", "tags", "department", "status", "review_by")
    return all(getattr(a, name) == getattr(b, name) for name in keep)
