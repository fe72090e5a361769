"""Elasticsearch search backend (``ONESTOP_ELASTICSEARCH_URL``), for several app nodes.

Written against the official async client (``elasticsearch[async]`` 9.x) and its documented
API; the shared contract suite (tests/knowledge/test_search_contract.py) runs against it
wherever a server is reachable.

* One document per language version of an article, ``_id`` = ``<slug>:<lang>``.
* Thai fields use Elasticsearch's ``thai`` analyzer, with a tone-mark-folded sub-field and a
  character-trigram sub-field (typos); English fields use the ``english`` analyzer (stemming,
  stop words) with a trigram sub-field. Two more fields hold the very tokens the embedded
  backend indexes (PyThaiNLP segmentation, folded, stemmed: ``knowledge.text``), so both
  backends understand a citizen's spelling alike.
* Searches and writes go through the alias ``onestop-knowledge``; ``reindex`` builds a new
  versioned index, then moves the alias in one atomic ``update_aliases`` call and drops the
  old index, so searches are never interrupted. (Writes made *during* a reindex go to the old
  index and are lost with it: run reindex from the articles as they are at its end, or index
  the changed articles again afterwards.)
* Client 9.x sends "compatible-with=9" headers: use an Elasticsearch 9 server, or install the
  8.x client for an 8.x server (the calls used here exist in both).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch.helpers import async_bulk

from knowledge.articles import Article, Status
from knowledge.search import DEFAULT_LIMIT, Hit, clamp_limit, documents, snippet_of
from knowledge.text import MAX_QUERY_CHARS, analyse, analyse_query, strip_html

DEFAULT_ALIAS = "onestop-knowledge"

# Thai signs folded away (tone marks etc.), as knowledge.text.fold does.
_FOLDED_MARKS = [f"\\u{code:04X}=>" for code in range(0x0E46, 0x0E4F)]
# Thai vowel signs are Unicode marks, not letters: the trigram tokenizer must keep them.
_THAI_MARKS = "".join(chr(c) for c in [0x0E31, *range(0x0E34, 0x0E3B), *range(0x0E47, 0x0E4F)])

INDEX_SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "analysis": {
        "char_filter": {"thai_fold": {"type": "mapping", "mappings": _FOLDED_MARKS}},
        "tokenizer": {
            "trigram": {
                "type": "ngram",
                "min_gram": 3,
                "max_gram": 3,
                "token_chars": ["letter", "digit", "custom"],
                "custom_token_chars": _THAI_MARKS,
            }
        },
        "analyzer": {
            "thai_folded": {
                "type": "custom",
                "char_filter": ["thai_fold"],
                "tokenizer": "thai",
                "filter": ["lowercase", "decimal_digit"],
            },
            "trigrams": {
                "type": "custom",
                "char_filter": ["thai_fold"],
                "tokenizer": "trigram",
                "filter": ["lowercase"],
            },
        },
    },
}


def _thai_text() -> dict[str, Any]:
    return {
        "type": "text",
        "analyzer": "thai",
        "fields": {
            "folded": {"type": "text", "analyzer": "thai_folded"},
            "grams": {"type": "text", "analyzer": "trigrams"},
        },
    }


def _english_text() -> dict[str, Any]:
    return {
        "type": "text",
        "analyzer": "english",
        "fields": {"grams": {"type": "text", "analyzer": "trigrams"}},
    }


_STORED = {"type": "keyword", "index": False, "doc_values": False}
INDEX_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "slug": {"type": "keyword"},
        "language": {"type": "keyword"},
        "category": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "display_title": _STORED,
        "snippet": _STORED,
        **{f"{field}_th": _thai_text() for field in ("title", "summary", "tags_text", "body")},
        **{f"{field}_en": _english_text() for field in ("title", "summary", "tags_text", "body")},
        # knowledge.text's tokens, already analysed: split on whitespace only.
        "words_head": {"type": "text", "analyzer": "whitespace"},
        "words_body": {"type": "text", "analyzer": "whitespace"},
    },
}

_FIELD_WEIGHTS = {"title": 10, "tags_text": 6, "summary": 4, "body": 1}


class ElasticsearchSearch:
    """Search backend on Elasticsearch through the alias ``onestop-knowledge``.

    Pass a configured ``AsyncElasticsearch`` (it stays the caller's to close) or ``url``.
    ``refresh=True`` makes every write visible to the next search (tests, small admin edits);
    leave it off for bulk loads.
    """

    def __init__(
        self,
        client: AsyncElasticsearch | None = None,
        *,
        url: str | None = None,
        alias: str = DEFAULT_ALIAS,
        refresh: bool = False,
        index_settings: dict[str, Any] | None = None,
    ) -> None:
        if client is None and url is None:
            raise ValueError("pass an AsyncElasticsearch client or a url")
        self._owns_client = client is None
        self._client = client if client is not None else AsyncElasticsearch(url)
        self.alias = alias
        self._refresh = refresh
        self._settings = {**INDEX_SETTINGS, **(index_settings or {})}
        self._ready = False

    async def index(self, articles: Iterable[Article]) -> None:
        """Add or replace ``articles``; unpublished ones are removed from the index."""
        await self._ensure_index()
        await self._bulk(self._actions(articles, self.alias))

    async def delete(self, id: str) -> None:
        """Remove the article with slug ``id`` in every language."""
        await self._ensure_index()

        async def actions() -> AsyncIterator[dict[str, Any]]:
            for lang in ("th", "en"):
                yield {"_op_type": "delete", "_index": self.alias, "_id": f"{id}:{lang}"}

        await self._bulk(actions())

    async def search(
        self,
        query: str,
        language: str | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        category: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> list[Hit]:
        """Return the best hits for ``query`` (see :class:`knowledge.search.SearchBackend`)."""
        limit = clamp_limit(limit)
        text = " ".join(strip_html(query or "")[:MAX_QUERY_CHARS].split())
        if not text or limit == 0 or (language is not None and language not in ("th", "en")):
            return []
        body = build_query(text, language, category, tags)
        try:
            response = await self._client.search(
                index=self.alias,
                query=body,
                size=limit * 2,  # both versions of an article may match; keep `limit` articles
                source_includes=["slug", "language", "display_title", "snippet", "category"],
            )
        except NotFoundError:
            return []  # nothing indexed yet: the alias does not exist
        prefer = language or ("th" if any("\u0e00" <= c <= "\u0e7f" for c in text) else "en")
        return _hits(response["hits"]["hits"], limit, prefer)

    async def reindex(self, articles: Iterable[Article]) -> None:
        """Build a new versioned index from ``articles`` and move the alias to it atomically."""
        name = f"{self.alias}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        await self._client.indices.create(
            index=name, settings=self._settings, mappings=INDEX_MAPPINGS
        )
        try:
            await self._bulk(self._actions(articles, name), refresh=False)
            await self._client.indices.refresh(index=name)
            old = await self._indices_behind_alias()
            actions: list[dict[str, Any]] = [
                {"remove": {"index": index, "alias": self.alias}} for index in old
            ]
            actions.append({"add": {"index": name, "alias": self.alias}})
            # One call, applied atomically: searches see the old index or the new, never none.
            await self._client.indices.update_aliases(actions=actions)
        except BaseException:
            await self._client.options(ignore_status=404).indices.delete(index=name)
            raise
        for index in old:
            await self._client.options(ignore_status=404).indices.delete(index=index)
        self._ready = True

    async def close(self) -> None:
        """Close the client if this backend created it."""
        if self._owns_client:
            await self._client.close()

    async def _ensure_index(self) -> None:
        if self._ready:
            return
        if not await self._client.indices.exists_alias(name=self.alias):
            # A fixed first name: two nodes starting together create one index, not two.
            first = f"{self.alias}-v1"
            await self._client.options(ignore_status=400).indices.create(
                index=first,
                settings=self._settings,
                mappings=INDEX_MAPPINGS,
                aliases={self.alias: {}},
            )
        self._ready = True

    async def _indices_behind_alias(self) -> list[str]:
        try:
            response = await self._client.indices.get_alias(name=self.alias)
        except NotFoundError:
            return []
        return list(response.body.keys())

    async def _bulk(
        self, actions: AsyncIterator[dict[str, Any]], *, refresh: bool | None = None
    ) -> None:
        refresh = self._refresh if refresh is None else refresh
        await async_bulk(
            self._client,
            actions,
            chunk_size=500,
            # Deleting what is not there is fine: "remove if present" is what we mean.
            ignore_status=(404,),
            refresh="wait_for" if refresh else "false",
        )

    async def _actions(
        self, articles: Iterable[Article], index: str
    ) -> AsyncIterator[dict[str, Any]]:
        for article in articles:
            present = set()
            if article.status is Status.PUBLISHED:
                for doc in to_documents(article):
                    present.add(doc["language"])
                    yield {
                        "_op_type": "index",
                        "_index": index,
                        "_id": f"{article.slug}:{doc['language']}",
                        "_source": doc,
                    }
            for lang in {"th", "en"} - present:
                yield {"_op_type": "delete", "_index": index, "_id": f"{article.slug}:{lang}"}


def to_documents(article: Article) -> list[dict[str, Any]]:
    """Return the Elasticsearch documents (one per language) of a published article."""
    docs = []
    for lang, title, summary, body in documents(article):
        tags_text = " ".join(article.tags)
        docs.append(
            {
                "slug": article.slug,
                "language": lang,
                "category": article.category,
                "tags": [_tag(tag) for tag in article.tags],
                "display_title": title,
                "snippet": snippet_of(summary, body),
                f"title_{lang}": title,
                f"summary_{lang}": summary,
                f"tags_text_{lang}": tags_text,
                f"body_{lang}": strip_html(body),
                "words_head": " ".join(analyse(f"{title} {tags_text}")),
                "words_body": " ".join(analyse(f"{summary} {body}")),
            }
        )
    return docs


def build_query(
    text: str, language: str | None, category: str | None, tags: tuple[str, ...]
) -> dict[str, Any]:
    """Return the Query DSL for a citizen's ``text`` (match queries only: no syntax to break)."""
    languages = [language] if language else ["th", "en"]
    fields: list[str] = []
    gram_fields: list[str] = []
    for lang in languages:
        for field, weight in _FIELD_WEIGHTS.items():
            fields.append(f"{field}_{lang}^{weight}")
            if lang == "th":
                fields.append(f"{field}_th.folded^{weight}")
            if field in ("title", "tags_text", "summary"):
                gram_fields.append(f"{field}_{lang}.grams^{weight}")
    words = " ".join(analyse_query(text))
    should: list[dict[str, Any]] = [
        {"multi_match": {"query": text, "fields": fields, "type": "most_fields"}},
        {"multi_match": {"query": text, "fields": gram_fields, "boost": 0.2}},
    ]
    if words:
        should.append({"multi_match": {"query": words, "fields": ["words_head^8", "words_body"]}})
    if language != "th":
        # English typos ("registraion"): edit-distance matching on the English fields.
        should.append(
            {
                "multi_match": {
                    "query": text,
                    "fields": [f"{f}_en^{w}" for f, w in _FIELD_WEIGHTS.items()],
                    "fuzziness": "AUTO",
                    "prefix_length": 1,
                    "boost": 0.3,
                }
            }
        )
    filters: list[dict[str, Any]] = []
    if language:
        filters.append({"term": {"language": language}})
    if category:
        filters.append({"term": {"category": category}})
    filters.extend({"term": {"tags": _tag(tag)}} for tag in tags)
    return {"bool": {"should": should, "minimum_should_match": 1, "filter": filters}}


def _tag(tag: str) -> str:
    # Tag filters match regardless of case and stray spaces, as in the embedded backend.
    return tag.strip().lower()


def _hits(raw: list[dict[str, Any]], limit: int, prefer: str) -> list[Hit]:
    by_slug: dict[str, tuple[float, dict[str, Any]]] = {}
    for item in raw:
        source = item["_source"]
        score = float(item.get("_score") or 0.0)
        best, shown = by_slug.get(source["slug"], (score, source))
        if source["language"] == prefer:
            shown = source
        by_slug[source["slug"]] = (max(best, score), shown)
    ranked = sorted(by_slug.values(), key=lambda item: -item[0])[:limit]
    return [
        Hit(
            id=source["slug"],
            title=source["display_title"],
            snippet=source["snippet"],
            score=round(score, 6),
            language=source["language"],
            category=source.get("category", ""),
        )
        for score, source in ranked
    ]
