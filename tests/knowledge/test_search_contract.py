"""The one contract every search backend keeps, run against each backend.

Embedded (SQLite FTS5, in memory and in a file) always; Elasticsearch when
ONESTOP_ELASTICSEARCH_URL points at a reachable server (skipped with the reason otherwise).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from knowledge.articles import Article, ArticleText, Status
from knowledge.search import Hit, SearchBackend

ES_URL_VARIABLE = "ONESTOP_ELASTICSEARCH_URL"


def article(
    slug: str,
    title_th: str,
    body_th: str,
    title_en: str | None = None,
    body_en: str = "",
    *,
    category: str = "general",
    tags: tuple[str, ...] = (),
    status: Status = Status.PUBLISHED,
) -> Article:
    return Article(
        slug=slug,
        category=category,
        th=ArticleText(title=title_th, body=body_th, summary=""),
        en=ArticleText(title=title_en, body=body_en) if title_en else None,
        tags=tags,
        status=status,
    )


ARTICLES = [
    article(
        "id-card-lost",
        "บัตรประชาชนหาย ทำบัตรใหม่",
        "ยื่นคำขอทำบัตรใหม่ภายใน 60 วัน ที่สำนักงานเขตหรือที่ว่าการอำเภอ ค่าธรรมเนียม 100 บาท",
        "Lost ID card",
        "Apply for a replacement card within 60 days at any district office. Fee 100 baht.",
        category="id_card",
        tags=("บัตรหาย", "lost card"),
    ),
    article(
        "id-card-renew",
        "ต่ออายุบัตรประจำตัวประชาชน",
        "บัตรหมดอายุ ยื่นทำบัตรใหม่ได้ก่อนหมดอายุ 60 วัน ไม่เสียค่าธรรมเนียม",
        "Renewing an ID card",
        "Renew your expired card at any district office; renewal is free.",
        category="id_card",
    ),
    article(
        "elderly-allowance",
        "เบี้ยยังชีพผู้สูงอายุ",
        "ผู้มีอายุ 60 ปีขึ้นไป ลงทะเบียนที่เทศบาลหรือ อบต. รับเงินทุกเดือนภายในวันที่ 10",
        "Elderly allowance",
        "People aged 60 or over register at the municipality and are paid monthly.",
        category="elderly_allowance",
        tags=("เบี้ยคนแก่", "old age"),
    ),
    article(
        "traffic-fine",
        "ชำระค่าปรับใบสั่งจราจร",
        "จ่ายค่าปรับได้ที่ธนาคาร ไปรษณีย์ หรือออนไลน์ภายใน 7 วัน",
        "Paying a traffic fine",
        "Pay the fine at a bank, post office or online within 7 days.",
        category="fines",
    ),
    article(
        "thai-only",
        "ศูนย์ช่วยเหลือสังคม สายด่วน 1300",
        "โทร 1300 ตลอด 24 ชั่วโมง เมื่อพบความรุนแรงในครอบครัว",
        category="social_work",
    ),
]


def _elasticsearch_reachable(url: str) -> str | None:
    """Return why Elasticsearch cannot be used, or None when it answers."""
    from elasticsearch import AsyncElasticsearch

    async def ping() -> bool:
        client = AsyncElasticsearch(url, request_timeout=3)
        try:
            return bool(await client.ping())
        finally:
            await client.close()

    try:
        return None if asyncio.run(ping()) else f"{url} does not answer ping"
    except Exception as exc:  # any failure to connect means "not here"
        return f"{url} unreachable: {exc}"


@pytest.fixture(params=["embedded-memory", "embedded-file", "elasticsearch"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SearchBackend]:
    """An empty backend of each kind."""
    if request.param == "embedded-memory":
        from knowledge.embedded import EmbeddedSearch

        embedded = EmbeddedSearch(":memory:")
        yield embedded
        await embedded.close()
        return
    if request.param == "embedded-file":
        from knowledge.embedded import EmbeddedSearch

        on_disk = EmbeddedSearch(tmp_path / "search.sqlite3")
        yield on_disk
        await on_disk.close()
        return
    url = os.environ.get(ES_URL_VARIABLE)
    if not url:
        pytest.skip(f"Elasticsearch contract: set {ES_URL_VARIABLE} to a reachable server")
    reason = await asyncio.to_thread(_elasticsearch_reachable, url)
    if reason:
        pytest.skip(f"Elasticsearch contract: {reason}")
    from elasticsearch import AsyncElasticsearch

    from knowledge.elastic import ElasticsearchSearch

    client = AsyncElasticsearch(url)
    alias = f"onestop-knowledge-test-{uuid.uuid4().hex[:8]}"
    elastic = ElasticsearchSearch(client, alias=alias, refresh=True)
    yield elastic
    await client.options(ignore_status=404).indices.delete(index=f"{alias}-*")
    await client.close()


@pytest.fixture
async def indexed(backend: SearchBackend) -> SearchBackend:
    await backend.index(ARTICLES)
    return backend


def ids(hits: list[Hit]) -> list[str]:
    return [hit.id for hit in hits]


async def test_a_thai_word_finds_the_thai_article(indexed: SearchBackend) -> None:
    hits = await indexed.search("บัตรประชาชนหาย")
    assert hits[0].id == "id-card-lost"
    assert hits[0].language == "th"
    assert hits[0].title == "บัตรประชาชนหาย ทำบัตรใหม่"


async def test_an_english_word_finds_the_english_version(indexed: SearchBackend) -> None:
    hits = await indexed.search("allowance for the elderly")
    assert hits[0].id == "elderly-allowance"
    assert hits[0].language == "en"
    assert hits[0].score > 0


async def test_english_words_are_stemmed(indexed: SearchBackend) -> None:
    assert ids(await indexed.search("renewal of cards"))[0] == "id-card-renew"


async def test_a_thai_query_without_tone_marks_still_finds(indexed: SearchBackend) -> None:
    # "ค่าปรับ ใบสั่ง" typed without its tone marks, as often on a phone keyboard.
    assert "traffic-fine" in ids(await indexed.search("คาปรับใบสั่ง"))


async def test_a_tag_finds_its_article(indexed: SearchBackend) -> None:
    assert ids(await indexed.search("เบี้ยคนแก่"))[0] == "elderly-allowance"


async def test_the_language_filter_keeps_one_language(indexed: SearchBackend) -> None:
    thai = await indexed.search("บัตร card", language="th")
    english = await indexed.search("บัตร card", language="en")
    assert thai and all(hit.language == "th" for hit in thai)
    assert english and all(hit.language == "en" for hit in english)
    assert await indexed.search("สายด่วน 1300", language="en") == []
    assert await indexed.search("บัตร", language="xx") == []


async def test_an_article_found_in_both_languages_is_one_hit(indexed: SearchBackend) -> None:
    hits = await indexed.search("บัตรประชาชนหาย lost ID card", limit=10)
    assert len(ids(hits)) == len(set(ids(hits)))


async def test_the_limit_is_respected(indexed: SearchBackend) -> None:
    assert len(await indexed.search("บัตร ค่าธรรมเนียม เทศบาล ธนาคาร", limit=2)) <= 2
    assert await indexed.search("บัตร", limit=0) == []


async def test_category_and_tag_filters(indexed: SearchBackend) -> None:
    hits = await indexed.search("บัตร", category="id_card")
    assert hits and {hit.id for hit in hits} <= {"id-card-lost", "id-card-renew"}
    assert await indexed.search("บัตร", category="fines") == []
    assert ids(await indexed.search("บัตร", tags=("บัตรหาย",))) == ["id-card-lost"]


async def test_deleting_removes_the_article_in_all_languages(indexed: SearchBackend) -> None:
    await indexed.delete("id-card-lost")
    assert "id-card-lost" not in ids(await indexed.search("บัตรประชาชนหาย lost card", limit=10))
    await indexed.delete("no-such-article")  # unknown ids are ignored


async def test_indexing_an_unpublished_article_removes_it(indexed: SearchBackend) -> None:
    archived = article("traffic-fine", "ชำระค่าปรับใบสั่งจราจร", "ยกเลิกแล้ว", status=Status.ARCHIVED)
    await indexed.index([archived])
    assert "traffic-fine" not in ids(await indexed.search("ค่าปรับ ใบสั่ง"))
    draft = article("new-draft", "ร่างบทความเรื่องหนังสือเดินทาง", "หนังสือเดินทาง", status=Status.DRAFT)
    await indexed.index([draft])
    assert await indexed.search("หนังสือเดินทาง") == []


async def test_indexing_again_replaces_the_article(indexed: SearchBackend) -> None:
    changed = article("traffic-fine", "ชำระค่าปรับใบสั่งจราจร", "ชำระผ่านแอปพลิเคชันพร้อมเพย์")
    await indexed.index([changed])
    assert ids(await indexed.search("พร้อมเพย์")) == ["traffic-fine"]
    assert "traffic-fine" not in ids(await indexed.search("Paying a traffic fine", language="en"))


async def test_reindex_replaces_everything_and_search_keeps_working(
    indexed: SearchBackend,
) -> None:
    replacement = [ARTICLES[0], article("passport", "หนังสือเดินทาง", "ทำหนังสือเดินทางที่กรมการกงสุล")]

    async def search_meanwhile() -> list[list[Hit]]:
        results = []
        for _ in range(20):
            results.append(await indexed.search("บัตรประชาชนหาย"))
            await asyncio.sleep(0)
        return results

    during, _ = await asyncio.gather(search_meanwhile(), indexed.reindex(replacement))
    assert all(ids(hits)[:1] == ["id-card-lost"] for hits in during)
    assert ids(await indexed.search("หนังสือเดินทาง")) == ["passport"]
    assert await indexed.search("เบี้ยยังชีพ") == []
    await indexed.index([ARTICLES[2]])  # the rebuilt index takes writes as before
    assert ids(await indexed.search("เบี้ยยังชีพ"))[0] == "elderly-allowance"


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"unbalanced',
        "*",
        "บัตร*",
        "NEAR(บัตร หาย)",
        "card NEAR lost",
        "(บัตร",
        "บัตร)",
        "title: บัตร",
        "-บัตร",
        "card AND OR NOT",
        "^card",
        "{title}: x",
        "' OR 1=1 --",
        "card; DROP TABLE kb_docs;",
        "\x00\x01",
        "🙂🙂",
        "<script>alert(1)</script>",
        "\\",
        "a" * 5000,
        "บัตรประชาชน " * 2000,
    ],
)
async def test_syntax_characters_and_odd_input_never_fail(
    indexed: SearchBackend, query: str
) -> None:
    hits = await indexed.search(query)
    assert isinstance(hits, list)
    assert len(hits) <= 5


async def test_syntax_characters_around_words_still_find(indexed: SearchBackend) -> None:
    assert ids(await indexed.search('"บัตรประชาชนหาย" AND (NEAR*)'))[0] == "id-card-lost"


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
async def test_an_empty_query_returns_nothing(indexed: SearchBackend, query: str) -> None:
    assert await indexed.search(query) == []


async def test_an_empty_index_returns_nothing(backend: SearchBackend) -> None:
    assert await backend.search("บัตรประชาชน") == []


async def test_a_title_match_ranks_above_a_body_match(backend: SearchBackend) -> None:
    await backend.index(
        [
            article(
                "body-mentions",
                "ค่าธรรมเนียมงานทะเบียน",
                "หนังสือเดินทาง หนังสือเดินทาง และหนังสือเดินทาง มีค่าธรรมเนียมต่างหาก",
                "Registration fees",
                "Passport, passport and passport fees are separate.",
            ),
            article(
                "title-says-it",
                "หนังสือเดินทาง",
                "ยื่นคำขอที่สำนักงานกงสุล",
                "Passport",
                "Apply at a consular office.",
            ),
        ]
    )
    assert ids(await backend.search("หนังสือเดินทาง"))[0] == "title-says-it"
    assert ids(await backend.search("passport"))[0] == "title-says-it"


async def test_html_in_an_article_is_indexed_as_text(backend: SearchBackend) -> None:
    await backend.index(
        [
            article(
                "html",
                "ประกาศ <b>สำคัญ</b>",
                "<p>ติดต่อ<strong>สำนักงานเขต</strong>&nbsp;ได้</p><script>secretword()</script>",
                "Notice",
                "<p>Contact the <em>district</em> office &amp; ask</p>",
            )
        ]
    )
    assert ids(await backend.search("สำนักงานเขต")) == ["html"]
    assert ids(await backend.search("district office")) == ["html"]
    assert await backend.search("secretword") == []
    assert "<" not in (await backend.search("สำนักงานเขต"))[0].snippet
