"""Read and write knowledge articles as Markdown files with YAML front matter.

One file per article, ``<slug>.md``::

    ---
    slug: id-card-renew
    category: id_card
    department: กรมการปกครอง (Department of Provincial Administration)
    status: published
    review_by: 2027-06-30
    tags: [บัตรหมดอายุ, ต่ออายุบัตร, renew ID card]
    title_th: ต่ออายุบัตรประจำตัวประชาชน
    title_en: Renewing your ID card
    summary_th: ...
    summary_en: ...
    ---
    # th
    (Thai body, Markdown; use ## and deeper for its headings)
    # en
    (English body)

The ``# th`` / ``# en`` lines (a level-1 heading that is exactly the language code) split the
two bodies. Errors name the file, the line and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml's safe loader when available: the pure-Python one takes ~30 ms per article.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

from knowledge.articles import Article, ArticleError, ArticleText, Status

_LANGUAGE_HEADING = re.compile(r"^#\s+(th|en)\s*$")
_REQUIRED = ("slug", "category", "title_th")
_KNOWN = {
    "slug",
    "category",
    "department",
    "status",
    "review_by",
    "tags",
    "title_th",
    "title_en",
    "summary_th",
    "summary_en",
    "source",
}


class ContentError(ValueError):
    """A content file is malformed; the message says which file, which line, what is wrong."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line


def parse_article(text: str, path: str | Path = "<string>") -> Article:
    """Parse one article file's text; raise :class:`ContentError` on any mistake."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ContentError(path, 1, "the file must start with '---' (YAML front matter)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ContentError(path, 1, "the front matter is not closed with '---'") from None
    try:
        front = yaml.load("\n".join(lines[1:end]), Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        # Where the broken construct starts (an unclosed "[") helps more than where the
        # parser gave up.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        raise ContentError(path, line, f"front matter is not valid YAML: {exc}") from None
    if not isinstance(front, dict):
        raise ContentError(path, 2, "the front matter must be a mapping of keys to values")
    for key in _REQUIRED:
        if not front.get(key):
            raise ContentError(path, _line_of(lines, key, end), f"'{key}' is missing")
    unknown = set(front) - _KNOWN
    if unknown:
        key = sorted(unknown)[0]
        raise ContentError(path, _line_of(lines, key, end), f"unknown key '{key}'")

    bodies = _split_bodies(lines, end + 1, path)
    if "th" not in bodies:
        raise ContentError(path, end + 2, "no '# th' section with the Thai body")
    has_en = bool(front.get("title_en")) or "en" in bodies
    if has_en and not front.get("title_en"):
        raise ContentError(path, _line_of(lines, "title_en", end), "'title_en' is missing")

    tags = front.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str | int) for t in tags):
        raise ContentError(path, _line_of(lines, "tags", end), "'tags' must be a list of words")
    try:
        status = Status(str(front.get("status", "draft")))
    except ValueError:
        raise ContentError(
            path, _line_of(lines, "status", end), "'status' must be draft, published or archived"
        ) from None
    review_by = _date(front.get("review_by"), path, _line_of(lines, "review_by", end))

    article = Article(
        slug=str(front["slug"]),
        category=str(front["category"]),
        department=str(front.get("department") or ""),
        status=status,
        review_by=review_by,
        tags=tuple(str(t) for t in tags),
        th=ArticleText(
            title=str(front["title_th"]),
            summary=str(front.get("summary_th") or ""),
            body=bodies.get("th", ""),
        ),
        en=ArticleText(
            title=str(front["title_en"]),
            summary=str(front.get("summary_en") or ""),
            body=bodies.get("en", ""),
        )
        if has_en
        else None,
    )
    try:
        article.validate()
    except ArticleError as exc:
        raise ContentError(path, 2, str(exc)) from None
    return article


def render_article(article: Article) -> str:
    """Return ``article`` as the text of its Markdown file (inverse of :func:`parse_article`)."""
    front: dict[str, Any] = {
        "slug": article.slug,
        "category": article.category,
        "department": article.department,
        "status": article.status.value,
        "review_by": article.review_by,
        "tags": list(article.tags),
        "title_th": article.th.title,
        "summary_th": article.th.summary,
    }
    if article.en is not None:
        front["title_en"] = article.en.title
        front["summary_en"] = article.en.summary
    if article.review_by is None:
        del front["review_by"]
    header = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=100)
    parts = ["---", header.rstrip("\n"), "---", "# th", article.th.body.strip("\n"), ""]
    if article.en is not None:
        parts += ["# en", article.en.body.strip("\n"), ""]
    return "\n".join(parts)


def load_directory(directory: str | Path) -> list[Article]:
    """Read every ``*.md`` article under ``directory`` (README.md excepted), sorted by slug.

    Raises :class:`ContentError` for the first bad file, or for a slug used twice.
    """
    articles: dict[str, tuple[Path, Article]] = {}
    for path in sorted(Path(directory).rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        article = parse_article(path.read_text(encoding="utf-8"), path)
        if article.slug in articles:
            raise ContentError(
                path, 2, f"slug '{article.slug}' is also used by {articles[article.slug][0]}"
            )
        articles[article.slug] = (path, article)
    return [articles[slug][1] for slug in sorted(articles)]


def write_directory(articles: Iterable[Article], directory: str | Path) -> list[Path]:
    """Write each article to ``directory/<slug>.md`` and return the paths written."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for article in articles:
        path = target / f"{article.slug}.md"
        path.write_text(render_article(article), encoding="utf-8")
        paths.append(path)
    return paths


def default_content_dir() -> Path:
    """Return the directory of the demo knowledge base shipped with OneStop."""
    return Path(__file__).parent / "content"


def _split_bodies(lines: list[str], start: int, path: str | Path) -> dict[str, str]:
    bodies: dict[str, list[str]] = {}
    current: str | None = None
    for number, line in enumerate(lines[start:], start=start + 1):
        match = _LANGUAGE_HEADING.match(line)
        if match:
            current = match.group(1)
            if current in bodies:
                raise ContentError(path, number, f"a second '# {current}' section")
            bodies[current] = []
        elif current is None:
            if line.strip():
                raise ContentError(path, number, "text before the '# th' section")
        else:
            bodies[current].append(line)
    return {lang: "\n".join(body).strip("\n") for lang, body in bodies.items()}


def _date(value: object, path: str | Path, line: int) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ContentError(
            path, line, f"'review_by' must be a date YYYY-MM-DD, not {value!r}"
        ) from None


def _line_of(lines: list[str], key: str, end: int) -> int:
    for number in range(1, end):
        if lines[number].startswith(f"{key}:"):
            return number + 1
    return 1
