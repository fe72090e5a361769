"""The Elasticsearch backend speaks the documented REST API: checked against a recording stub.

No Elasticsearch server can run here, so a small aiohttp server answers the official client
as Elasticsearch would (status codes, the product header) and records every request. The
real behaviour (analyzers, scoring) is covered by the contract suite wherever a server is
reachable; this pins the requests: mappings with the thai/english analyzers, bulk writes
through the alias, and the atomic alias swap of a reindex.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from elasticsearch import AsyncElasticsearch

from knowledge.articles import Article, ArticleText, Status
from knowledge.elastic import INDEX_MAPPINGS, ElasticsearchSearch, build_query

HEADERS = {"X-Elastic-Product": "Elasticsearch", "content-type": "application/json"}


class FakeElasticsearch:
    """Just enough of Elasticsearch's REST API for the backend, recording each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.indices: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, set[str]] = {}
        self.docs: dict[str, dict[str, Any]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body: Any = None
        if raw:
            text = raw.decode()
            if request.path.endswith("/_bulk"):
                body = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                body = json.loads(text)
        self.requests.append((request.method, request.path, body))
        parts = [p for p in request.path.split("/") if p]
        if request.method == "HEAD" and parts[:1] == ["_alias"]:
            return web.Response(status=200 if parts[1] in self.aliases else 404, headers=HEADERS)
        if request.method == "GET" and parts[:1] == ["_alias"]:
            if parts[1] not in self.aliases:
                return self.error(404, "aliases_not_found_exception")
            return self.json(
                {index: {"aliases": {parts[1]: {}}} for index in self.aliases[parts[1]]}
            )
        if parts[-1:] == ["_bulk"]:
            return self.json({"took": 1, "errors": False, "items": self.bulk(body)})
        if request.method == "PUT" and len(parts) == 1:
            if parts[0] in self.indices:
                return self.error(400, "resource_already_exists_exception")
            self.indices[parts[0]] = body
            for alias in (body or {}).get("aliases", {}):
                self.aliases.setdefault(alias, set()).add(parts[0])
            return self.json({"acknowledged": True, "index": parts[0]})
        if request.method == "POST" and parts == ["_aliases"]:
            for action in body["actions"]:
                ((kind, spec),) = action.items()
                target = self.aliases.setdefault(spec["alias"], set())
                (target.discard if kind == "remove" else target.add)(spec["index"])
            return self.json({"acknowledged": True})
        if request.method == "DELETE" and len(parts) == 1:
            if parts[0] not in self.indices:
                return self.error(404, "index_not_found_exception")
            del self.indices[parts[0]]
            return self.json({"acknowledged": True})
        if parts[-1:] == ["_refresh"]:
            return self.json({"_shards": {"total": 1, "successful": 1, "failed": 0}})
        if parts[-1:] == ["_search"]:
            hits = [
                {"_id": key, "_score": 1.0, "_source": doc}
                for key, doc in self.docs.items()
                if parts[0] in self.aliases and doc["_index"] in self.aliases[parts[0]]
            ]
            return self.json({"hits": {"total": {"value": len(hits)}, "hits": hits}})
        return self.error(400, f"unexpected {request.method} {request.path}")

    def bulk(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items = []
        i = 0
        while i < len(lines):
            ((op, meta),) = lines[i].items()
            index = meta["_index"]
            concrete = next(iter(self.aliases.get(index, {index})))
            key = f"{concrete}/{meta['_id']}"
            if op == "index":
                self.docs[key] = {**lines[i + 1], "_index": concrete}
                items.append({op: {"_id": meta["_id"], "status": 201}})
                i += 2
            else:
                found = self.docs.pop(key, None) is not None
                items.append({op: {"_id": meta["_id"], "status": 200 if found else 404}})
                i += 1
        return items

    @staticmethod
    def json(data: Any) -> web.Response:
        return web.Response(text=json.dumps(data), headers=HEADERS)

    @staticmethod
    def error(status: int, kind: str) -> web.Response:
        payload = {"error": {"type": kind, "reason": kind}, "status": status}
        return web.Response(status=status, text=json.dumps(payload), headers=HEADERS)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeElasticsearch, ElasticsearchSearch]]:
    stub = FakeElasticsearch()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stub.handle)
    server = TestServer(app)
    await server.start_server()
    client = AsyncElasticsearch(str(server.make_url("/")))
    yield stub, ElasticsearchSearch(client, refresh=True)
    await client.close()
    await server.close()


def article(slug: str, status: Status = Status.PUBLISHED) -> Article:
    return Article(
        slug=slug,
        category="id_card",
        th=ArticleText(title="บัตรประชาชนหาย", body="<b>ทำบัตรใหม่</b>", summary="ภายใน 60 วัน"),
        en=ArticleText(title="Lost ID card", body="Apply within 60 days"),
        tags=("Lost Card",),
        status=status,
    )


async def test_the_first_write_creates_a_versioned_index_behind_the_alias(fake: Any) -> None:
    stub, backend = fake
    await backend.index([article("id-card-lost"), article("old", Status.ARCHIVED)])
    (created,) = stub.indices.values()
    assert stub.aliases["onestop-knowledge"] == {"onestop-knowledge-v1"}
    properties = created["mappings"]["properties"]
    assert properties["title_th"]["analyzer"] == "thai"
    assert properties["title_en"]["analyzer"] == "english"
    assert properties == json.loads(json.dumps(INDEX_MAPPINGS["properties"]))
    bulk = next(body for method, path, body in stub.requests if path.endswith("/_bulk"))
    operations = [next(iter(line)) for line in bulk if "_id" in next(iter(line.values()), {})]
    assert operations == ["index", "index", "delete", "delete"]
    doc = bulk[1]
    assert doc["body_th"] == "ทำบัตรใหม่" and doc["tags"] == ["lost card"]
    assert doc["words_head"]  # the embedded backend's tokens travel along


async def test_reindex_swaps_the_alias_atomically_and_drops_the_old_index(fake: Any) -> None:
    stub, backend = fake
    await backend.index([article("id-card-lost")])
    await backend.reindex([article("id-card-renew")])
    (swap,) = [body for method, path, body in stub.requests if path == "/_aliases"]
    assert swap["actions"][0] == {
        "remove": {"index": "onestop-knowledge-v1", "alias": "onestop-knowledge"}
    }
    (new_index,) = stub.aliases["onestop-knowledge"]
    assert swap["actions"][1] == {"add": {"index": new_index, "alias": "onestop-knowledge"}}
    assert list(stub.indices) == [new_index]
    hits = await backend.search("บัตร")
    assert [hit.id for hit in hits] == ["id-card-renew"]
    assert hits[0].language == "th"


async def test_delete_and_search_requests(fake: Any) -> None:
    stub, backend = fake
    await backend.index([article("id-card-lost")])
    await backend.delete("id-card-lost")
    await backend.delete("never-there")
    assert await backend.search("บัตร") == []
    assert await backend.search("   ") == []
    search = [body for method, path, body in stub.requests if path.endswith("/_search")][-1]
    assert search["query"]["bool"]["minimum_should_match"] == 1


async def test_searching_before_anything_is_indexed_returns_nothing(fake: Any) -> None:
    _stub, backend = fake
    assert await backend.search("บัตร") == []


def test_queries_are_match_queries_with_filters() -> None:
    query = build_query('"บัตร" AND (NEAR*', "th", "id_card", ("Lost Card",))
    assert {"term": {"language": "th"}} in query["bool"]["filter"]
    assert {"term": {"category": "id_card"}} in query["bool"]["filter"]
    assert {"term": {"tags": "lost card"}} in query["bool"]["filter"]
    assert "query_string" not in json.dumps(query)  # no query syntax a citizen could break
    fields = query["bool"]["should"][0]["multi_match"]["fields"]
    assert "title_th^10" in fields and "body_th^1" in fields
    assert not any(field.endswith("_en^10") for field in fields)
