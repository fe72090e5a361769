"""Search latency benchmark for the embedded backend on a generated corpus.

The corpus is built from the demo articles: every generated article takes a real article's
title and summary, mixes paragraphs of two or three real articles into its body, and adds
place names and random dictionary words, so that word frequencies stay realistic while the
vocabulary grows with the corpus. Queries are the labelled citizen questions.

Run: ``python -m knowledge.bench_search --sizes 10000 100000``; the lead's ``bench/`` calls
:func:`run_benchmark`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from knowledge.articles import Article, ArticleText, Status
from knowledge.evaluate import load_questions
from knowledge.markdown_io import default_content_dir, load_directory

_PLACES_TH = [
    "เขตบางรัก",
    "เขตจตุจักร",
    "เขตลาดพร้าว",
    "อำเภอเมืองเชียงใหม่",
    "อำเภอหาดใหญ่",
    "อำเภอเมืองขอนแก่น",
    "อำเภอบางละมุง",
    "อำเภอเมืองนครราชสีมา",
    "อำเภอเมืองอุดรธานี",
    "อำเภอเมืองภูเก็ต",
    "เขตบางกะปิ",
]
_PLACES_EN = [
    "Bang Rak",
    "Chatuchak",
    "Lat Phrao",
    "Mueang Chiang Mai",
    "Hat Yai",
    "Mueang Khon Kaen",
    "Bang Lamung",
    "Mueang Nakhon Ratchasima",
    "Mueang Udon Thani",
    "Mueang Phuket",
    "Bang Kapi",
]


@dataclass(frozen=True)
class BenchResult:
    """Figures for one corpus size."""

    articles: int
    build_seconds: float
    queries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cpu_p50_ms: float
    cpu_p95_ms: float
    load_average: float
    db_megabytes: float


def generate_corpus(size: int, seed: int = 7) -> Iterator[Article]:
    """Yield ``size`` published articles derived from the demo content (deterministic)."""
    from pythainlp.corpus import thai_words

    rng = random.Random(seed)
    base = load_directory(default_content_dir())
    vocabulary = sorted(thai_words())
    english = sorted(
        {w.lower() for a in base if a.en for w in a.en.body.split() if w.isalpha() and len(w) > 3}
    )
    for n in range(size):
        main = base[n % len(base)]
        others = rng.sample(base, 2)
        place = rng.randrange(len(_PLACES_TH))
        extra_th = " ".join(rng.choices(vocabulary, k=12))
        extra_en = " ".join(rng.choices(english, k=12))
        th_body = "\n\n".join(
            [_paragraphs(main.th.body, rng, 3)]
            + [_paragraphs(o.th.body, rng, 1) for o in others]
            + [extra_th]
        )
        en = main.en or ArticleText(title=main.th.title, body="")
        en_body = "\n\n".join(
            [_paragraphs(en.body, rng, 3)]
            + [_paragraphs((o.en or o.th).body, rng, 1) for o in others]
            + [extra_en]
        )
        yield dataclasses.replace(
            main,
            slug=f"{main.slug}-{n}",
            status=Status.PUBLISHED,
            th=ArticleText(
                title=f"{main.th.title} {_PLACES_TH[place]} {rng.choice(vocabulary)}",
                summary=main.th.summary,
                body=th_body,
            ),
            en=ArticleText(
                title=f"{en.title} ({_PLACES_EN[place]}) {rng.choice(english)}",
                summary=en.summary,
                body=en_body,
            ),
        )


async def run_benchmark(
    sizes: Sequence[int] = (10_000, 100_000),
    *,
    directory: str | Path | None = None,
    rounds: int = 3,
    on_result: Callable[[BenchResult], None] | None = None,
) -> list[BenchResult]:
    """Build an embedded index of each size in a file and time the labelled questions.

    ``on_result`` is called as soon as each size is measured (a 100k build takes minutes).
    Index files go to a temporary directory, or stay in ``directory`` (as
    ``bench-<size>.sqlite3``) for :func:`measure_index` to time again later.
    """
    from knowledge.embedded import EmbeddedSearch
    from knowledge.text import warm_up

    warm_up()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(directory or tmp) / f"bench-{size}.sqlite3"
            backend = EmbeddedSearch(path)
            try:
                started = time.perf_counter()
                await backend.reindex(generate_corpus(size))
                build = time.perf_counter() - started
            finally:
                await backend.close()
            result = dataclasses.replace(
                await measure_index(path, rounds=rounds), build_seconds=round(build, 1)
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


async def measure_index(path: str | Path, *, rounds: int = 3) -> BenchResult:
    """Time the labelled questions on an existing embedded index file.

    Every question is searched ``rounds`` times (after one warm-up pass) without a language
    filter, which is the slower path (both language tables are searched).
    """
    from knowledge.embedded import EmbeddedSearch
    from knowledge.text import warm_up

    warm_up()
    questions = [q.text for q in load_questions()]
    backend = EmbeddedSearch(path)
    try:
        articles = await backend.count() // 2
        for question in questions:  # warm-up: page cache, statement cache
            await backend.search(question)
        timings: list[float] = []
        cpu: list[float] = []
        for _ in range(rounds):
            for question in questions:
                t0, c0 = time.perf_counter(), time.process_time()
                await backend.search(question)
                timings.append((time.perf_counter() - t0) * 1000)
                # CPU time of the process: what the search costs, whatever else the
                # (shared) machine is busy with.
                cpu.append((time.process_time() - c0) * 1000)
    finally:
        await backend.close()
    timings.sort()
    cpu.sort()
    return BenchResult(
        articles=articles,
        build_seconds=0.0,
        queries=len(timings),
        p50_ms=round(statistics.median(timings), 2),
        p95_ms=round(timings[int(len(timings) * 0.95) - 1], 2),
        p99_ms=round(timings[int(len(timings) * 0.99) - 1], 2),
        max_ms=round(timings[-1], 2),
        cpu_p50_ms=round(statistics.median(cpu), 2),
        cpu_p95_ms=round(cpu[int(len(cpu) * 0.95) - 1], 2),
        load_average=round(os.getloadavg()[0], 1),
        db_megabytes=_megabytes(path),
    )


def _megabytes(path: str | Path) -> float:
    return round(Path(path).stat().st_size / 1e6, 1)


def _paragraphs(body: str, rng: random.Random, count: int) -> str:
    parts = [p for p in body.split("\n\n") if p.strip()]
    if not parts:
        return ""
    return "\n\n".join(rng.sample(parts, min(count, len(parts))))


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: print one JSON line per corpus size (or per existing index file)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="keep the index files here")
    parser.add_argument(
        "--existing", type=Path, nargs="+", default=None, help="only time these index files"
    )
    args = parser.parse_args(argv)

    def show(result: BenchResult) -> None:
        print(json.dumps(dataclasses.asdict(result)), flush=True)

    if args.existing:
        for path in args.existing:
            show(asyncio.run(measure_index(path, rounds=args.rounds)))
        return
    asyncio.run(run_benchmark(args.sizes, directory=args.dir, rounds=args.rounds, on_result=show))


if __name__ == "__main__":
    main()
