"""knowledge room: the knowledge base (articles, versions, the knowledge loop) and its search.

The composition root wires it in; nothing here imports another room. See knowledge/README.md.
"""

from __future__ import annotations

from pathlib import Path

from knowledge.articles import (
    CATEGORIES,
    Article,
    ArticleText,
    ArticleVersion,
    KnowledgeRepository,
    Status,
    ZeroResultTerm,
    metadata,
)
from knowledge.search import Hit, SearchBackend
from knowledge.service import KnowledgeService


def create_backend(
    *, elasticsearch_url: str | None = None, index_path: str | Path = ":memory:"
) -> SearchBackend:
    """Return the search backend the settings ask for.

    ``elasticsearch_url`` (``ONESTOP_ELASTICSEARCH_URL``) selects Elasticsearch; otherwise the
    embedded SQLite FTS5 index at ``index_path`` (e.g. ``var/knowledge-search.sqlite3``).
    """
    if elasticsearch_url:
        from knowledge.elastic import ElasticsearchSearch

        return ElasticsearchSearch(url=elasticsearch_url)
    from knowledge.embedded import EmbeddedSearch

    return EmbeddedSearch(index_path)


__all__ = [
    "CATEGORIES",
    "Article",
    "ArticleText",
    "ArticleVersion",
    "Hit",
    "KnowledgeRepository",
    "KnowledgeService",
    "SearchBackend",
    "Status",
    "ZeroResultTerm",
    "create_backend",
    "metadata",
]
