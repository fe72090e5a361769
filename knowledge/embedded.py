"""Embedded search: SQLite FTS5 in a file (or in memory), no server to run.

Analysis happens in Python (:mod:`knowledge.text`: Thai segmented with PyThaiNLP after folding
tone marks, English stemmed); FTS5 receives space-separated tokens and its ``ascii`` tokenizer
only splits on spaces (every non-ASCII character is a token character, which keeps Thai vowel
signs inside their words).

Layout: ``kb_docs`` holds one row per language version (display fields and the analysed
columns); one external-content FTS5 table per language (``kb_fts_th``, ``kb_fts_en``) indexes
it, so a language filter costs nothing. Columns: title, summary, tags, body (words), grams
(character trigrams of title, summary and tags: the typo-tolerant fallback) and meta (category
and tag keys, for filters).

Ranking keeps the work per query bounded whatever the corpus size (details in README.md):
a query is searched in the language of its script first; its words' document frequencies come
from ``kb_terms``; candidates come from an FTS5 BM25 query over the *rarest* words that fit a
postings budget; candidates are re-scored in Python with BM25F over all the words (title
weighted highest); when a word is unknown (a probable typo) or too little is found, the rarest
character trigrams of the query add fuzzy matches.

All SQLite work runs on one dedicated thread: sqlite3 connections are not for sharing, and the
event loop must not stall on an index build. ``reindex`` builds a new database beside the live
one in batches (searches are answered between batches) and swaps it in at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from knowledge.articles import LANGUAGES, Article, Status
from knowledge.search import DEFAULT_LIMIT, Hit, clamp_limit, documents, snippet_of
from knowledge.text import analyse, analyse_query, query_trigrams, trigrams

T = TypeVar("T")

# BM25F weights of title, summary, tags, body. Titles say what an article is about; tags hold
# the words citizens use ("บัตรคนจน"); bodies mention everything.
WEIGHTS = (10.0, 4.0, 6.0, 1.0)
K1 = 1.2
B = 0.75
# FTS5 weights for candidate generation (same order, then grams and meta).
FTS_WEIGHTS = "10.0, 4.0, 6.0, 1.0, 0.0, 0.0"
GRAM_WEIGHTS = "0.0, 0.0, 0.0, 0.0, 1.0, 0.0"
# At most this many postings are scored by FTS5 per query and language: the latency bound.
POSTINGS_BUDGET = 2000
CANDIDATES = 24
MAX_GRAMS = 10
# Share of the query's trigrams a fuzzy match must contain.
MIN_GRAM_OVERLAP = 0.4
# What the best trigram match adds to a document's score, as a share of the best word score.
FUZZY_WEIGHT = 0.6
BATCH = 500

_COLUMNS = ("title", "summary", "tags", "body", "grams", "meta")
# SQL here is assembled from the constants above and from table names made of a language
# code from LANGUAGES, never from input; every value is a bound parameter (hence the S608
# exemptions below).
_THAI = re.compile(r"[\u0e00-\u0e7f]")
_LATIN = re.compile(r"[A-Za-z]")


class EmbeddedSearch:
    """SQLite FTS5 search backend (the default; needs nothing but the standard library)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._path = str(path)
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-search")
        self._live: _Index | None = None

    async def index(self, articles: Iterable[Article]) -> None:
        """Add or replace ``articles``; unpublished ones are removed from the index."""
        batch: list[Article] = []
        for article in articles:
            batch.append(article)
            if len(batch) >= BATCH:
                await self._run(partial(self._write, batch))
                batch = []
        if batch:
            await self._run(partial(self._write, batch))

    async def delete(self, id: str) -> None:
        """Remove the article with slug ``id`` in every language."""
        await self._run(lambda: self._index().delete(id))

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
        if not query or not query.strip() or limit == 0:
            return []
        if language is not None and language not in LANGUAGES:
            return []
        return await self._run(
            lambda: self._index().search(query, language, limit, category, tuple(tags))
        )

    async def reindex(self, articles: Iterable[Article]) -> None:
        """Rebuild the whole index beside the live one, then swap it in at once."""
        next_path = ":memory:" if self._path == ":memory:" else f"{self._path}.next"
        fresh = await self._run(lambda: _Index.open(next_path, fresh=True))
        try:
            batch: list[Article] = []
            for article in articles:
                batch.append(article)
                if len(batch) >= BATCH:
                    # One batch per call: searches queued meanwhile run between batches.
                    await self._run(partial(fresh.write, batch))
                    batch = []
            if batch:
                await self._run(partial(fresh.write, batch))
        except BaseException:
            await self._run(fresh.close)
            raise
        await self._run(lambda: self._swap(fresh, next_path))

    async def close(self) -> None:
        """Close the database and stop the worker thread."""
        if self._live is not None:
            await self._run(self._live.close)
            self._live = None
        self._executor.shutdown(wait=True)

    async def count(self) -> int:
        """Return how many language documents are indexed (for health checks and tests)."""
        return await self._run(lambda: sum(self._index().doc_counts.values()))

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # Runs on the worker thread.
    def _write(self, batch: Sequence[Article]) -> None:
        self._index().write(batch)

    def _index(self) -> _Index:
        if self._live is None:
            self._live = _Index.open(self._path)
        return self._live

    def _swap(self, fresh: _Index, next_path: str) -> None:
        old = self._live
        if self._path == ":memory:":
            self._live = fresh
            if old is not None:
                old.close()
            return
        fresh.close()
        if old is not None:
            old.close()
        os.replace(next_path, self._path)
        self._live = _Index.open(self._path)


@dataclass
class _Candidate:
    rowid: int
    slug: str
    language: str
    title: str
    snippet: str
    category: str
    columns: tuple[str, str, str, str]
    lengths: tuple[int, int, int, int]


class _Index:
    """One SQLite database holding the search tables; used only from the worker thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.doc_counts: dict[str, int] = {}
        self.avg_lengths: dict[str, tuple[float, ...]] = {}

    @classmethod
    def open(cls, path: str, *, fresh: bool = False) -> _Index:
        if fresh and path != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        index = cls(conn)
        index.create_tables()
        index.refresh_stats()
        return index

    def close(self) -> None:
        self.conn.close()

    def create_tables(self) -> None:
        db = self.conn
        db.execute(
            "CREATE TABLE IF NOT EXISTS kb_docs ("
            " rowid INTEGER PRIMARY KEY, slug TEXT NOT NULL, language TEXT NOT NULL,"
            " display_title TEXT NOT NULL, snippet TEXT NOT NULL, category TEXT NOT NULL,"
            " title TEXT NOT NULL, summary TEXT NOT NULL, tags TEXT NOT NULL,"
            " body TEXT NOT NULL, grams TEXT NOT NULL, meta TEXT NOT NULL,"
            " n_title INTEGER NOT NULL, n_summary INTEGER NOT NULL, n_tags INTEGER NOT NULL,"
            " n_body INTEGER NOT NULL, UNIQUE (slug, language))"
        )
        # Document frequency of every token, kept up to date by write/delete: fts5vocab can
        # tell it too, but only by walking the token's whole posting list (slow for common
        # words, which are exactly the ones every query asks about).
        db.execute(
            "CREATE TABLE IF NOT EXISTS kb_terms (language TEXT NOT NULL, term TEXT NOT NULL,"
            " df INTEGER NOT NULL, PRIMARY KEY (language, term)) WITHOUT ROWID"
        )
        for lang in LANGUAGES:
            # External content: the analysed text is stored once, in kb_docs.
            db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts_{lang} USING fts5("
                f"{', '.join(_COLUMNS)}, content='kb_docs', content_rowid='rowid',"
                " tokenize = \"ascii tokenchars '_'\")"
            )

    def refresh_stats(self) -> None:
        for lang in LANGUAGES:
            row = self.conn.execute(
                "SELECT count(*), avg(n_title), avg(n_summary), avg(n_tags), avg(n_body)"
                " FROM kb_docs WHERE language = ?",
                (lang,),
            ).fetchone()
            self.doc_counts[lang] = int(row[0])
            self.avg_lengths[lang] = tuple(float(v or 1.0) or 1.0 for v in row[1:])

    def write(self, articles: Sequence[Article]) -> None:
        # Analysis first, outside the transaction, so the write lock is held briefly.
        prepared = [(article, _prepare(article)) for article in articles]
        db = self.conn
        terms: Counter[tuple[str, str]] = Counter()
        db.execute("BEGIN")
        try:
            for article, rows in prepared:
                self._delete_in_transaction(article.slug, terms)
                if article.status is not Status.PUBLISHED:
                    continue
                for lang, title, snippet, columns in rows:
                    terms.update((lang, term) for term in _distinct_terms(columns))
                    lengths = [len(c.split()) for c in columns[:4]]
                    cursor = db.execute(
                        "INSERT INTO kb_docs (slug, language, display_title, snippet, category,"  # noqa: S608
                        f" {', '.join(_COLUMNS)}, n_title, n_summary, n_tags, n_body)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (article.slug, lang, title, snippet, article.category, *columns, *lengths),
                    )
                    db.execute(
                        f"INSERT INTO kb_fts_{lang} (rowid, {', '.join(_COLUMNS)})"  # noqa: S608
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (cursor.lastrowid, *columns),
                    )
            self._add_terms(terms)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.refresh_stats()

    def delete(self, slug: str) -> None:
        terms: Counter[tuple[str, str]] = Counter()
        self.conn.execute("BEGIN")
        try:
            self._delete_in_transaction(slug, terms)
            self._add_terms(terms)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.refresh_stats()

    def _add_terms(self, terms: Counter[tuple[str, str]]) -> None:
        changes = [(lang, term, n) for (lang, term), n in terms.items() if n]
        self.conn.executemany(
            "INSERT INTO kb_terms (language, term, df) VALUES (?, ?, ?)"
            " ON CONFLICT (language, term) DO UPDATE SET df = df + excluded.df",
            changes,
        )
        if any(n < 0 for _lang, _term, n in changes):
            self.conn.execute("DELETE FROM kb_terms WHERE df <= 0")

    def _delete_in_transaction(self, slug: str, terms: Counter[tuple[str, str]]) -> None:
        db = self.conn
        rows = db.execute(
            f"SELECT rowid, language, {', '.join(_COLUMNS)} FROM kb_docs WHERE slug = ?",  # noqa: S608
            (slug,),
        ).fetchall()
        for rowid, lang, *values in rows:
            terms.subtract((lang, term) for term in _distinct_terms(values))
            # External-content FTS5 forgets a row only when told its old values.
            db.execute(
                f"INSERT INTO kb_fts_{lang} (kb_fts_{lang}, rowid, {', '.join(_COLUMNS)})"  # noqa: S608
                " VALUES ('delete', ?, ?, ?, ?, ?, ?, ?)",
                (rowid, *values),
            )
            db.execute("DELETE FROM kb_docs WHERE rowid = ?", (rowid,))

    def search(
        self,
        query: str,
        language: str | None,
        limit: int,
        category: str | None,
        tags: tuple[str, ...],
    ) -> list[Hit]:
        words = analyse_query(query)
        if not words:
            return []
        searchable = [lang for lang in LANGUAGES if self.doc_counts.get(lang)]
        if language:
            first, then = [lang for lang in searchable if lang == language], []
        else:
            # A query in one script is searched in that language first; the other language
            # only when the first finds too little (an English word for a Thai-only article).
            scripts = {"th": bool(_THAI.search(query)), "en": bool(_LATIN.search(query))}
            first = [lang for lang in searchable if scripts[lang]] or searchable
            then = [lang for lang in searchable if lang not in first]
        meta = _meta_filter(category, tags)
        candidates: dict[int, _Candidate] = {}
        word_scores: dict[int, float] = {}
        freqs: dict[str, dict[str, int]] = {}
        for group in (first, then):
            if group is then and len(word_scores) >= limit:
                break
            for lang in group:
                freqs[lang] = self._frequencies(lang, words)
                word_scores.update(self._word_scores(lang, words, freqs[lang], meta, candidates))
        unknown = [w for w in words if not any(f.get(w) for f in freqs.values())]
        # BM25F scores of both languages are on one scale (same formula, per-language
        # statistics), so the languages merge by score. Scores stay absolute (not divided by
        # the best) so that callers can tell a strong answer from a weak one.
        fused = dict(word_scores)
        scale = max(word_scores.values(), default=0.0) or 1.0
        if unknown or len(fused) < limit:
            # A probable typo, or too little found: let character trigrams help, each table
            # with the trigrams of its own script.
            grams = query_trigrams(query)
            for lang in freqs:
                own = [g for g in grams if bool(_THAI.search(g)) == (lang == "th")]
                if not own:
                    continue
                ranking = self._gram_ranking(lang, own, meta, limit * 2)
                for rank, rowid in enumerate(ranking):
                    bonus = scale * FUZZY_WEIGHT * (1.0 - rank / len(ranking))
                    fused[rowid] = fused.get(rowid, 0.0) + bonus
        prefer = language or ("th" if _THAI.search(query) else "en")
        return self._hits(fused, candidates, limit, prefer)

    def _frequencies(self, lang: str, terms: Sequence[str]) -> dict[str, int]:
        if not terms:
            return {}
        marks = ",".join("?" * len(terms))
        return dict(
            self.conn.execute(
                f"SELECT term, df FROM kb_terms WHERE language = ? AND term IN ({marks})",  # noqa: S608
                [lang, *terms],
            ).fetchall()
        )

    def _word_scores(
        self,
        lang: str,
        words: list[str],
        freq: dict[str, int],
        meta: str,
        candidates: dict[int, _Candidate],
    ) -> dict[int, float]:
        known = sorted((w for w in words if freq.get(w)), key=lambda w: freq[w])
        if not known:
            return {}
        chosen: list[str] = []
        spent = 0
        for word in known:
            if chosen and spent + freq[word] > POSTINGS_BUDGET:
                break
            chosen.append(word)
            spent += freq[word]
        if spent <= POSTINGS_BUDGET:
            expression = "{title summary tags body} : (" + " OR ".join(map(_quote, chosen)) + ")"
            if meta:
                expression = f"{meta} AND {expression}"
            rowids = self._match(lang, expression, FTS_WEIGHTS, CANDIDATES)
        else:
            # Even the rarest word is in a large part of the corpus ("ภาษี" alone): ranking
            # all those documents would cost more than it tells. Candidates are the newest
            # articles with the word in their title or tags (FTS5 stops after enough of them),
            # and BM25F below orders them.
            expression = "{title tags} : " + _quote(chosen[0])
            if meta:
                expression = f"{meta} AND {expression}"
            rowids = [
                int(row[0])
                for row in self.conn.execute(
                    f"SELECT rowid FROM kb_fts_{lang} WHERE kb_fts_{lang} MATCH ?"  # noqa: S608
                    " ORDER BY rowid DESC LIMIT ?",
                    (expression, CANDIDATES * 2),
                ).fetchall()
            ]
        docs = self._load(rowids)
        candidates.update(docs)
        total = self.doc_counts[lang]
        idf = {w: math.log(1.0 + (total - freq[w] + 0.5) / (freq[w] + 0.5)) for w in known}
        averages = self.avg_lengths[lang]
        return {
            rowid: score
            for rowid, doc in docs.items()
            if (score := _bm25f(doc.columns, doc.lengths, idf, averages)) > 0
        }

    def _gram_ranking(self, lang: str, grams: list[str], meta: str, limit: int) -> list[int]:
        freq = self._frequencies(lang, grams)
        # The rarest trigrams say the most and cost the least.
        usable = sorted((g for g in grams if freq.get(g)), key=lambda g: freq[g])
        chosen: list[str] = []
        spent = 0
        for gram in usable[:MAX_GRAMS]:
            if chosen and spent + freq[gram] > POSTINGS_BUDGET:
                break
            chosen.append(gram)
            spent += freq[gram]
        if not chosen:
            return []
        expression = "grams : (" + " OR ".join(_quote(g) for g in chosen) + ")"
        if meta:
            expression = f"{meta} AND {expression}"
        rowids = self._match(lang, expression, GRAM_WEIGHTS, limit)
        if not rowids:
            return []
        # A fuzzy match must share a fair part of the query's trigrams: one rare trigram in
        # common is chance, and a search that really found nothing must say so (it is then
        # recorded for the editors).
        wanted = set(grams)
        marks = ",".join("?" * len(rowids))
        shared = {
            rowid: len(wanted.intersection(text.split()))
            for rowid, text in self.conn.execute(
                f"SELECT rowid, grams FROM kb_docs WHERE rowid IN ({marks})",  # noqa: S608
                rowids,
            ).fetchall()
        }
        return [r for r in rowids if shared.get(r, 0) >= MIN_GRAM_OVERLAP * len(wanted)]

    def _match(self, lang: str, expression: str, weights: str, limit: int) -> list[int]:
        rows = self.conn.execute(
            f"SELECT rowid FROM kb_fts_{lang} WHERE kb_fts_{lang} MATCH ? "  # noqa: S608
            f"ORDER BY bm25(kb_fts_{lang}, {weights}) LIMIT ?",
            (expression, limit),
        ).fetchall()
        return [int(row[0]) for row in rows]

    def _load(self, rowids: Sequence[int]) -> dict[int, _Candidate]:
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        rows = self.conn.execute(
            "SELECT rowid, slug, language, display_title, snippet, category,"  # noqa: S608
            " ' ' || title || ' ', ' ' || summary || ' ', ' ' || tags || ' ', ' ' || body || ' ',"
            f" n_title, n_summary, n_tags, n_body FROM kb_docs WHERE rowid IN ({marks})",
            list(rowids),
        ).fetchall()
        return {
            row[0]: _Candidate(
                rowid=row[0],
                slug=row[1],
                language=row[2],
                title=row[3],
                snippet=row[4],
                category=row[5],
                columns=(row[6], row[7], row[8], row[9]),
                lengths=(row[10], row[11], row[12], row[13]),
            )
            for row in rows
        }

    def _hits(
        self,
        fused: dict[int, float],
        candidates: dict[int, _Candidate],
        limit: int,
        prefer: str,
    ) -> list[Hit]:
        missing = [rowid for rowid in fused if rowid not in candidates]
        candidates.update(self._load(missing))
        # One article found in both languages is one answer, scored by its better version and
        # shown in the language the query is written in when it has that version.
        by_slug: dict[str, tuple[float, _Candidate]] = {}
        for rowid, score in fused.items():
            doc = candidates.get(rowid)
            if doc is None:
                continue
            total, shown = by_slug.get(doc.slug, (0.0, doc))
            if doc.language == prefer:
                shown = doc
            by_slug[doc.slug] = (max(total, score), shown)
        ranked = sorted(by_slug.values(), key=lambda item: (-item[0], item[1].slug))[:limit]
        return [
            Hit(
                id=doc.slug,
                language=doc.language,
                title=doc.title,
                snippet=doc.snippet,
                category=doc.category,
                score=round(score, 6),
            )
            for score, doc in ranked
        ]


def _bm25f(
    columns: tuple[str, str, str, str],
    lengths: tuple[int, int, int, int],
    idf: dict[str, float],
    averages: tuple[float, ...],
) -> float:
    # BM25F: per-column term frequencies, length-normalised and weighted, summed before the
    # saturation, so a word in the title counts more than the same word in the body.
    # Columns are stored padded with spaces, so counting " word " finds whole tokens only
    # (str.count runs in C: far cheaper than splitting a long body for a handful of words).
    norms = [1.0 - B + B * lengths[i] / averages[i] for i in range(4)]
    score = 0.0
    for word, weight in idf.items():
        needle = f" {word} "
        tf = 0.0
        for i, text in enumerate(columns):
            n = text.count(needle)
            if n:
                tf += WEIGHTS[i] * n / norms[i]
        if tf:
            score += weight * tf / (K1 + tf)
    return score


def _prepare(article: Article) -> list[tuple[str, str, str, tuple[str, ...]]]:
    rows: list[tuple[str, str, str, tuple[str, ...]]] = []
    meta = " ".join([f"c_{article.category}"] + [_tag_key(tag) for tag in article.tags])
    languages = article.languages()
    for lang, title, summary, body in documents(article):
        # A tag goes to the version written in its script (Thai tags to Thai, others to
        # English) so that a Thai query does not also search every English document.
        tags_text = " ".join(
            tag
            for tag in article.tags
            if len(languages) == 1 or (lang == "th") == bool(_THAI.search(tag))
        )
        columns = (
            " ".join(analyse(title)),
            " ".join(analyse(summary)),
            " ".join(analyse(tags_text)),
            " ".join(analyse(body)),
            " ".join(trigrams(f"{title} {summary} {tags_text}")),
            meta,
        )
        rows.append((lang, title, snippet_of(summary, body), columns))
    return rows


def _distinct_terms(columns: Sequence[str]) -> set[str]:
    # Words and trigrams share one vocabulary, as they share one FTS5 table; meta keys are
    # never looked up.
    return set(" ".join(columns[:5]).split())


def _quote(token: str) -> str:
    # Every token is a quoted string: FTS5 never reads it as syntax (NEAR, AND, *, :, -, ^).
    return '"' + token.replace('"', '""') + '"'


def _meta_filter(category: str | None, tags: tuple[str, ...]) -> str:
    keys = ([f"c_{category}"] if category else []) + [_tag_key(tag) for tag in tags]
    return " AND ".join(f"meta : {_quote(key)}" for key in keys)


def _tag_key(tag: str) -> str:
    # Tags are free text (Thai, spaces); a short hash makes each one a single exact token.
    return "t_" + hashlib.blake2s(tag.strip().lower().encode(), digest_size=6).hexdigest()
