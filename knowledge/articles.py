"""Knowledge articles: the model, their tables and the repository that keeps their history.

An article answers one citizen question in Thai and (usually) English. It is identified by its
``slug`` (stable, used by search, links, the bot and the evaluation set); ``id`` is the database
key. Every edit is a new version (author, time, note) so that a wrong answer can be traced and
undone. The knowledge loop: an agent's resolved case becomes a *draft* (``propose_from_case``),
a reviewer *publishes* it, search terms that found nothing are recorded and reported so that
the next article written is the one citizens were looking for.

The tables live in knowledge's own :data:`metadata`; the composition root adds it to Alembic.
Only portable column types are used (JSON for tags), so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

metadata = sa.MetaData()

LANGUAGES = ("th", "en")
DEFAULT_REVIEW_PERIOD = timedelta(days=365)

# Service catalogue codes with their Thai and English names (the knowledge base's categories).
CATEGORIES: dict[str, tuple[str, str]] = {
    "id_card": ("บัตรประจำตัวประชาชน", "ID card"),
    "house_registration": ("ทะเบียนบ้าน", "House registration"),
    "civil_registration": ("ทะเบียนราษฎร (เกิด ตาย ชื่อ)", "Civil registration"),
    "tax": ("ภาษี", "Tax"),
    "fines": ("ค่าปรับและใบสั่ง", "Fines"),
    "business": ("จดทะเบียนธุรกิจ", "Business registration"),
    "elderly_allowance": ("เบี้ยยังชีพผู้สูงอายุ", "Elderly allowance"),
    "disability": ("คนพิการ", "Disability"),
    "child_support": ("เงินอุดหนุนเด็ก", "Child support"),
    "welfare_card": ("บัตรสวัสดิการแห่งรัฐ", "State welfare card"),
    "social_work": ("ช่วยเหลือทางสังคม", "Social-work help"),
    "complaints": ("เรื่องร้องเรียน", "Complaints"),
    "case_status": ("สถานะเรื่อง", "Case status"),
    "office_hours": ("เวลาทำการ", "Office hours"),
    "locations": ("สถานที่ติดต่อ", "Locations"),
    "appointments": ("นัดหมาย", "Appointments"),
    "consultation": ("รับฟังความคิดเห็น", "Public consultation"),
    "documents": ("เอกสาร", "Documents"),
    "fees": ("ค่าธรรมเนียม", "Fees"),
    "privacy": ("ข้อมูลส่วนบุคคล", "Personal data"),
    "general": ("ทั่วไป", "General"),
}

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class Status(StrEnum):
    """Where an article is in its life: only published articles are searchable."""

    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class ArticleError(ValueError):
    """An article is invalid (bad slug, unknown category, no Thai text…)."""


class StaleArticle(RuntimeError):
    """Someone saved the article since this copy was read; reload and edit again."""


@dataclass(frozen=True)
class ArticleText:
    """One language version of an article: title, Markdown body, short answer snippet."""

    title: str
    body: str
    summary: str = ""


@dataclass(frozen=True)
class Article:
    """A knowledge article with its Thai version and, usually, its English version.

    ``version`` is the version this copy was read at (0 for an article never saved); saving a
    copy whose version is behind the stored one raises :class:`StaleArticle`.
    """

    slug: str
    category: str
    th: ArticleText
    en: ArticleText | None = None
    tags: tuple[str, ...] = ()
    department: str = ""
    status: Status = Status.DRAFT
    review_by: date | None = None
    id: int | None = None
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str = ""

    def text(self, language: str) -> ArticleText | None:
        """Return the version of the article in ``language`` ("th" or "en"), if there is one."""
        if language == "th":
            return self.th
        if language == "en":
            return self.en
        return None

    def languages(self) -> list[str]:
        """Return the languages the article is written in, Thai first."""
        return [lang for lang in LANGUAGES if self.text(lang) is not None]

    def is_overdue(self, today: date | None = None) -> bool:
        """True when a published article has passed its review date (it is flagged to owners)."""
        today = today or datetime.now(UTC).date()
        return (
            self.status is Status.PUBLISHED
            and self.review_by is not None
            and self.review_by < today
        )

    def validate(self) -> None:
        """Raise :class:`ArticleError` naming the first thing wrong with the article."""
        if not _SLUG.match(self.slug) or len(self.slug) > 120:
            raise ArticleError(f"slug {self.slug!r}: use lower-case letters, digits and hyphens")
        if self.category not in CATEGORIES:
            raise ArticleError(f"{self.slug}: unknown category {self.category!r}")
        if not self.th.title.strip():
            raise ArticleError(f"{self.slug}: the Thai title is empty")
        if self.en is not None and not self.en.title.strip():
            raise ArticleError(f"{self.slug}: the English title is empty")


@dataclass(frozen=True)
class ArticleVersion:
    """One saved state of an article: who saved it, when, why, and what it said."""

    version: int
    author: str
    created_at: datetime
    note: str
    article: Article


@dataclass(frozen=True)
class ZeroResultTerm:
    """A search term that found nothing, how often and when it was last searched."""

    query: str
    language: str | None
    count: int
    last_seen: datetime
    sources: tuple[str, ...] = field(default=())


articles_table = sa.Table(
    "kb_articles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("slug", sa.String(120), nullable=False, unique=True),
    sa.Column("category", sa.String(64), nullable=False, index=True),
    sa.Column("department", sa.String(200), nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("review_by", sa.Date, nullable=True),
    sa.Column("title_th", sa.Text, nullable=False),
    sa.Column("summary_th", sa.Text, nullable=False),
    sa.Column("body_th", sa.Text, nullable=False),
    sa.Column("title_en", sa.Text, nullable=True),
    sa.Column("summary_en", sa.Text, nullable=True),
    sa.Column("body_en", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

versions_table = sa.Table(
    "kb_article_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "article_id",
        sa.Integer,
        sa.ForeignKey("kb_articles.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    # The whole article as it was (JSON): versions are read rarely and never queried by field.
    sa.Column("snapshot", sa.JSON, nullable=False),
    sa.UniqueConstraint("article_id", "version", name="uq_kb_article_versions_article_version"),
)

zero_results_table = sa.Table(
    "kb_zero_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("query", sa.String(300), nullable=False),
    sa.Column("language", sa.String(8), nullable=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)


class KnowledgeRepository:
    """Stores articles and their versions, and the searches that found nothing.

    Pass the application's ``AsyncEngine`` or an ``async_sessionmaker``; the repository opens
    one short transaction per call and never keeps a session between calls.
    """

    def __init__(self, db: AsyncEngine | async_sessionmaker[AsyncSession]) -> None:
        if isinstance(db, AsyncEngine):
            self._sessions = async_sessionmaker(db, expire_on_commit=False)
        else:
            self._sessions = db

    async def create_tables(self) -> None:
        """Create knowledge's tables if missing (for tests and Alembic-less embedded runs)."""
        async with self._sessions() as session:
            conn = await session.connection()
            await conn.run_sync(metadata.create_all)
            await session.commit()

    async def save(self, article: Article, *, author: str, note: str = "") -> Article:
        """Store ``article`` as a new version and return it as stored (with id and version).

        A new slug creates the article (version 1). An existing slug needs ``article.version``
        equal to the stored version, otherwise :class:`StaleArticle` is raised so that two
        editors never overwrite each other silently.
        """
        article.validate()
        now = _now()
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(
                    sa.select(articles_table.c.id, articles_table.c.version).where(
                        articles_table.c.slug == article.slug
                    )
                )
            ).first()
            if row is None:
                stored = dataclasses.replace(article, version=1, updated_at=now, updated_by=author)
                values = _article_values(stored)
                inserted = await session.execute(
                    sa.insert(articles_table)
                    .values(created_at=now, **values)
                    .returning(articles_table.c.id)
                )
                article_id = int(inserted.scalar_one())
            else:
                article_id, current = int(row.id), int(row.version)
                if article.version != current:
                    raise StaleArticle(
                        f"{article.slug}: edited from version {article.version}, "
                        f"but version {current} is stored"
                    )
                stored = dataclasses.replace(
                    article, version=current + 1, updated_at=now, updated_by=author
                )
                # The version check in WHERE makes concurrent saves fail instead of both winning.
                result = await session.execute(
                    sa.update(articles_table)
                    .where(articles_table.c.id == article_id, articles_table.c.version == current)
                    .values(**_article_values(stored))
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise StaleArticle(f"{article.slug}: saved by someone else meanwhile")
            stored = dataclasses.replace(stored, id=article_id)
            await session.execute(
                sa.insert(versions_table).values(
                    article_id=article_id,
                    version=stored.version,
                    author=author,
                    created_at=now,
                    note=note,
                    snapshot=article_to_dict(stored),
                )
            )
        return stored

    async def get(self, slug: str) -> Article | None:
        """Return the current version of the article ``slug``, or None."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    sa.select(articles_table).where(articles_table.c.slug == slug)
                )
            ).first()
        return _article_from_row(row._mapping) if row is not None else None

    async def list_articles(
        self, *, status: Status | None = None, category: str | None = None
    ) -> list[Article]:
        """Return the current versions of all articles, optionally of one status or category."""
        query = sa.select(articles_table).order_by(articles_table.c.slug)
        if status is not None:
            query = query.where(articles_table.c.status == status.value)
        if category is not None:
            query = query.where(articles_table.c.category == category)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_article_from_row(row._mapping) for row in rows]

    async def history(self, slug: str) -> list[ArticleVersion]:
        """Return every version of the article ``slug``, oldest first."""
        query = (
            sa.select(versions_table)
            .join(articles_table, articles_table.c.id == versions_table.c.article_id)
            .where(articles_table.c.slug == slug)
            .order_by(versions_table.c.version)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            ArticleVersion(
                version=row.version,
                author=row.author,
                created_at=_aware(row.created_at),
                note=row.note,
                article=article_from_dict(row.snapshot),
            )
            for row in rows
        ]

    async def propose_from_case(
        self,
        case_summary: str,
        *,
        author: str,
        category: str = "general",
        resolution: str = "",
        title_th: str | None = None,
        title_en: str | None = None,
        case_ref: str | None = None,
        department: str = "",
        tags: tuple[str, ...] = (),
    ) -> Article:
        """Turn a resolved case into a draft article for a reviewer to edit and publish.

        The Thai text is the case summary and its resolution; English is left for the reviewer
        unless ``title_en`` is given. The draft is never searchable until published.
        """
        summary = case_summary.strip()
        first_line = summary.splitlines()[0] if summary else ""
        title = (title_th or first_line).strip()[:200]
        if not title:
            raise ArticleError("a case summary or a title is needed to propose an article")
        body = summary if not resolution else f"{summary}\n\n## วิธีแก้ไข\n\n{resolution.strip()}"
        slug = await self._free_slug(_slugify(title_en or "") or f"case-{case_ref or 'draft'}")
        draft = Article(
            slug=slug,
            category=category if category in CATEGORIES else "general",
            th=ArticleText(title=title, body=body, summary=resolution.strip()[:500]),
            en=ArticleText(title=title_en, body="") if title_en else None,
            tags=tags,
            department=department,
            status=Status.DRAFT,
        )
        note = f"proposed from case {case_ref}" if case_ref else "proposed from a case"
        return await self.save(draft, author=author, note=note)

    async def publish(
        self,
        article: Article | str,
        reviewer: str,
        *,
        note: str = "",
        review_by: date | None = None,
    ) -> Article:
        """Publish ``article`` (or the slug's current version) as reviewed by ``reviewer``.

        The review date moves a year ahead unless one is given, so a published article is
        never born overdue.
        """
        current = await self._current(article)
        next_review = review_by or (datetime.now(UTC).date() + DEFAULT_REVIEW_PERIOD)
        published = dataclasses.replace(current, status=Status.PUBLISHED, review_by=next_review)
        return await self.save(published, author=reviewer, note=note or f"published by {reviewer}")

    async def archive(self, article: Article | str, author: str, *, note: str = "") -> Article:
        """Withdraw an article from search while keeping it and its history."""
        current = await self._current(article)
        archived = dataclasses.replace(current, status=Status.ARCHIVED)
        return await self.save(archived, author=author, note=note or f"archived by {author}")

    async def review_overdue(self, today: date | None = None) -> list[Article]:
        """Return published articles whose review date has passed (flagged to their owners)."""
        today = today or datetime.now(UTC).date()
        query = (
            sa.select(articles_table)
            .where(
                articles_table.c.status == Status.PUBLISHED.value,
                articles_table.c.review_by < today,
            )
            .order_by(articles_table.c.review_by)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_article_from_row(row._mapping) for row in rows]

    async def record_zero_result(
        self, query: str, *, language: str | None = None, source: str = ""
    ) -> None:
        """Remember that ``query`` found nothing (the knowledge loop's to-write list)."""
        text = " ".join(unicodedata.normalize("NFKC", query).split()).lower()[:300]
        if not text:
            return
        async with self._sessions() as session, session.begin():
            await session.execute(
                sa.insert(zero_results_table).values(
                    query=text, language=language, source=source[:32], created_at=_now()
                )
            )

    async def zero_result_report(
        self, since: datetime, *, limit: int = 100
    ) -> list[ZeroResultTerm]:
        """Return the search terms that found nothing since ``since``, most frequent first."""
        t = zero_results_table
        count = sa.func.count().label("count")
        query = (
            sa.select(t.c.query, t.c.language, count, sa.func.max(t.c.created_at).label("last"))
            .where(t.c.created_at >= since)
            .group_by(t.c.query, t.c.language)
            .order_by(count.desc(), t.c.query)
            .limit(limit)
        )
        sources_query = (
            sa.select(t.c.query, t.c.language, t.c.source).where(t.c.created_at >= since).distinct()
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
            source_rows = (await session.execute(sources_query)).all()
        sources: dict[tuple[str, str | None], set[str]] = {}
        for row in source_rows:
            if row.source:
                sources.setdefault((row.query, row.language), set()).add(row.source)
        return [
            ZeroResultTerm(
                query=row.query,
                language=row.language,
                count=int(row._mapping["count"]),
                last_seen=_aware(row.last),
                sources=tuple(sorted(sources.get((row.query, row.language), ()))),
            )
            for row in rows
        ]

    async def _current(self, article: Article | str) -> Article:
        slug = article if isinstance(article, str) else article.slug
        current = await self.get(slug)
        if current is None:
            raise ArticleError(f"no article {slug!r}")
        if isinstance(article, Article) and article.version == current.version:
            # The caller's copy may carry edits made with the publish: keep them.
            return dataclasses.replace(article, id=current.id)
        return current

    async def _free_slug(self, base: str) -> str:
        base = base[:100]
        async with self._sessions() as session:
            taken = set(
                (
                    await session.execute(
                        sa.select(articles_table.c.slug).where(
                            articles_table.c.slug.like(f"{base}%")
                        )
                    )
                ).scalars()
            )
        slug, n = base, 1
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        return slug


def article_to_dict(article: Article) -> dict[str, Any]:
    """Return ``article`` as JSON-ready data (used for version snapshots and exports)."""
    return {
        "slug": article.slug,
        "category": article.category,
        "th": dataclasses.asdict(article.th),
        "en": dataclasses.asdict(article.en) if article.en else None,
        "tags": list(article.tags),
        "department": article.department,
        "status": article.status.value,
        "review_by": article.review_by.isoformat() if article.review_by else None,
        "id": article.id,
        "version": article.version,
        "updated_at": article.updated_at.isoformat() if article.updated_at else None,
        "updated_by": article.updated_by,
    }


def article_from_dict(data: dict[str, Any]) -> Article:
    """Inverse of :func:`article_to_dict`."""
    en = data.get("en")
    return Article(
        slug=data["slug"],
        category=data["category"],
        th=ArticleText(**data["th"]),
        en=ArticleText(**en) if en else None,
        tags=tuple(data.get("tags") or ()),
        department=data.get("department") or "",
        status=Status(data.get("status") or Status.DRAFT.value),
        review_by=date.fromisoformat(data["review_by"]) if data.get("review_by") else None,
        id=data.get("id"),
        version=int(data.get("version") or 0),
        updated_at=datetime.fromisoformat(data["updated_at"]) if data.get("updated_at") else None,
        updated_by=data.get("updated_by") or "",
    )


def _article_values(article: Article) -> dict[str, Any]:
    return {
        "slug": article.slug,
        "category": article.category,
        "department": article.department,
        "status": article.status.value,
        "tags": list(article.tags),
        "review_by": article.review_by,
        "title_th": article.th.title,
        "summary_th": article.th.summary,
        "body_th": article.th.body,
        "title_en": article.en.title if article.en else None,
        "summary_en": article.en.summary if article.en else None,
        "body_en": article.en.body if article.en else None,
        "version": article.version,
        "updated_at": article.updated_at,
        "updated_by": article.updated_by,
    }


def _article_from_row(row: Any) -> Article:
    en = None
    if row["title_en"] is not None:
        en = ArticleText(
            title=row["title_en"], body=row["body_en"] or "", summary=row["summary_en"] or ""
        )
    return Article(
        slug=row["slug"],
        category=row["category"],
        th=ArticleText(title=row["title_th"], body=row["body_th"], summary=row["summary_th"]),
        en=en,
        tags=tuple(row["tags"] or ()),
        department=row["department"],
        status=Status(row["status"]),
        review_by=row["review_by"],
        id=row["id"],
        version=row["version"],
        updated_at=_aware(row["updated_at"]),
        updated_by=row["updated_by"],
    )


def _slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "-".join(re.findall(r"[a-z0-9]+", ascii_text))[:80]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
