"""What only the embedded backend has: a file that persists, its statistics, its rebuild."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from knowledge.bench_search import generate_corpus
from knowledge.embedded import EmbeddedSearch
from knowledge.markdown_io import default_content_dir, load_directory


async def test_the_index_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "search.sqlite3"
    first = EmbeddedSearch(path)
    await first.index(load_directory(default_content_dir()))
    await first.close()
    again = EmbeddedSearch(path)
    assert (await again.search("บัตรประชาชนหาย"))[0].id == "id-card-lost"
    await again.close()


async def test_a_typo_that_breaks_segmentation_is_caught_by_trigrams() -> None:
    backend = EmbeddedSearch()
    await backend.index(load_directory(default_content_dir()))
    # "สวัสดิการ" misspelt "สวัดดิการ", "ทะเบียน" as "ทะเบีนย"
    welfare = await backend.search("บัตรสวัดดิการ")
    assert any(hit.category == "welfare_card" for hit in welfare[:3])
    moving = await backend.search("ย้ายเข้าทะเบีนยบ้าน")
    assert moving[0].id == "house-registration-move-in"
    await backend.close()


async def test_document_frequencies_follow_writes_and_deletes() -> None:
    backend = EmbeddedSearch()
    articles = load_directory(default_content_dir())
    await backend.index(articles)
    await backend.index(articles)  # indexing again must not count twice
    for article in articles:
        await backend.delete(article.slug)
    assert await backend.count() == 0
    index = backend._index()
    assert index.conn.execute("SELECT count(*) FROM kb_terms").fetchone()[0] == 0
    await backend.close()


async def test_searches_are_answered_while_a_large_reindex_runs(tmp_path: Path) -> None:
    backend = EmbeddedSearch(tmp_path / "search.sqlite3")
    base = load_directory(default_content_dir())
    await backend.index(base)
    corpus = list(generate_corpus(1500))
    answered_during: list[bool] = []
    done = asyncio.Event()

    async def rebuild() -> None:
        await backend.reindex([*base, *corpus])
        done.set()

    async def search_meanwhile() -> None:
        while not done.is_set():
            hits = await backend.search("เบี้ยยังชีพผู้สูงอายุ")
            answered_during.append(bool(hits) and not done.is_set())
            await asyncio.sleep(0.01)

    await asyncio.gather(rebuild(), search_meanwhile())
    assert sum(answered_during) >= 2  # searches ran between the rebuild's batches
    assert await backend.count() == 2 * (len(base) + len(corpus))
    await backend.close()


async def test_a_large_index_bounds_the_work_of_common_words() -> None:
    backend = EmbeddedSearch()
    corpus = list(generate_corpus(3000))
    await backend.index(corpus)
    hits = await backend.search("บัตรประชาชน")  # in most documents: titles decide
    assert hits and all(h.category == "id_card" for h in hits[:3])
    exact = dataclasses.replace(corpus[0], slug="exact-one")
    await backend.index([exact])
    assert len(await backend.search("บัตรประชาชน ครั้งแรก อายุ 7 ปี", limit=10)) == 10
    await backend.close()
