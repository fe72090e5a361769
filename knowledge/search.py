"""The one search interface every backend implements, and what a search returns.

Agents, the bot and the citizen website call only :class:`SearchBackend`; which backend runs
(embedded SQLite FTS5 or Elasticsearch) is the composition root's choice, made from settings.

A search document is one language version of one published article, identified by the
article's slug. ``index`` is idempotent (indexing again replaces), and an article passed to
``index`` that is not published is removed instead, so the caller can hand over whatever
changed without sorting it first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from knowledge.articles import Article

DEFAULT_LIMIT = 5
MAX_LIMIT = 50


@dataclass(frozen=True)
class Hit:
    """One search result: which article, in which language, what to show, how relevant."""

    id: str  # the article's slug
    title: str
    snippet: str
    score: float
    language: str
    category: str = ""


@dataclass(frozen=True)
class SearchFilters:
    """Optional restrictions of a search (all given ones must hold)."""

    category: str | None = None
    tags: tuple[str, ...] = ()


@runtime_checkable
class SearchBackend(Protocol):
    """A full-text index of knowledge articles."""

    async def index(self, articles: Iterable[Article]) -> None:
        """Add or replace the given articles (unpublished ones are removed from the index)."""
        ...

    async def delete(self, id: str) -> None:
        """Remove the article with slug ``id`` in all languages; unknown ids are ignored."""
        ...

    async def search(
        self,
        query: str,
        language: str | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        category: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> list[Hit]:
        """Return at most ``limit`` hits for ``query``, best first.

        ``language`` ("th"/"en") restricts to one language version; ``category`` and ``tags``
        restrict to articles with that category and all those tags. Never raises for what a
        citizen can type: an empty query returns [], and syntax characters are plain text.
        """
        ...

    async def reindex(self, articles: Iterable[Article]) -> None:
        """Replace the whole index with ``articles``; searches keep working meanwhile."""
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...


def clamp_limit(limit: int) -> int:
    """Return ``limit`` within 0…MAX_LIMIT (a caller asking for 10 000 hits gets 50)."""
    return max(0, min(int(limit), MAX_LIMIT))


def documents(article: Article) -> list[tuple[str, str, str, str]]:
    """Return (language, title, summary, body) for each language version of ``article``."""
    docs = []
    for language in article.languages():
        text = article.text(language)
        assert text is not None
        docs.append((language, text.title, text.summary, text.body))
    return docs


def snippet_of(summary: str, body: str, size: int = 240) -> str:
    """Return the answer snippet shown under a hit: the summary, else the body's beginning."""
    from knowledge.text import strip_html

    text = summary.strip() or strip_html(body)
    # Markdown headings and emphasis would look odd in a chat bubble or an IVR prompt.
    cleaned = " ".join(line.lstrip("#>*- ").strip() for line in text.splitlines() if line.strip())
    return cleaned if len(cleaned) <= size else cleaned[: size - 1].rstrip() + "…"
