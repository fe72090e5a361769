"""Small in-memory implementations of the bot's core protocols, for tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.actions import CaseStatusInfo, KnowledgeHit, NewCaseRequest


class MemoryCases:
    """A CaseDirectory over a dict; records opened cases."""

    def __init__(self, cases: dict[str, tuple[str, CaseStatusInfo]] | None = None) -> None:
        # case number -> (owner sender_id, status)
        self.cases = dict(cases or {})
        self.opened: list[NewCaseRequest] = []
        self.fail = False

    async def case_status(self, case_number: str, *, sender_id: str) -> CaseStatusInfo | None:
        if self.fail:
            raise RuntimeError("directory down")
        owner_info = self.cases.get(case_number)
        if owner_info is None or owner_info[0] != sender_id:
            return None
        return owner_info[1]

    async def open_case(self, request: NewCaseRequest) -> str:
        if self.fail:
            raise RuntimeError("directory down")
        self.opened.append(request)
        return f"OS-2026-{len(self.opened):06d}"


class MemoryKnowledge:
    """A KnowledgeSearch that matches when every query word is in an article's title or text."""

    def __init__(self, articles: list[KnowledgeHit] | None = None) -> None:
        self.articles = list(articles or [])
        self.queries: list[tuple[str, str]] = []

    async def search(self, query: str, *, language: str, limit: int = 3) -> Sequence[KnowledgeHit]:
        self.queries.append((query, language))
        words = query.lower().split()
        hits = [
            a
            for a in self.articles
            if words and all(w in (a.title + " " + a.snippet).lower() for w in words)
        ]
        return hits[:limit]


def in_progress(number: str) -> CaseStatusInfo:
    """A case that a department is working on."""
    return CaseStatusInfo(
        number=number,
        status="in_progress",
        status_text_th="อยู่ระหว่างดำเนินการ",
        status_text_en="in progress",
        department="สำนักงานเขตบางรัก",
        updated_at=datetime(2026, 3, 1, 9, 30),
    )
