"""Self-service for citizens: `/help` searches the published articles (Thai and English),
`/help/{slug}` shows one. Server-rendered, no script: works on any phone and with any
screen reader."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from knowledge.service import KnowledgeService

HERE = Path(__file__).resolve().parent
SERVICE_KEY = web.AppKey("knowledge_service", KnowledgeService)
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                          autoescape=True)
MAX_QUERY = 200


def setup(app: web.Application, service: KnowledgeService) -> None:
    """Add the self-service help pages to the app."""
    app[SERVICE_KEY] = service
    app.router.add_get("/help", help_search)
    app.router.add_get("/help/{slug}", help_article)


async def help_search(request: web.Request) -> web.Response:
    language = "en" if request.query.get("lang") == "en" else "th"
    query = request.query.get("q", "").strip()[:MAX_QUERY]
    hits = []
    if query:
        hits = await request.app[SERVICE_KEY].search(query, None, 8, source="website")
    return _page("help.html", language=language, query=query, hits=hits,
                 searched=bool(query))


async def help_article(request: web.Request) -> web.Response:
    language = "en" if request.query.get("lang") == "en" else "th"
    article = await request.app[SERVICE_KEY].repository.get(request.match_info["slug"])
    if article is None or article.status.value != "published":
        return _page("help.html", status=404, language=language, query="", hits=[],
                     searched=False, missing=True)
    text = article.text(language) or article.th
    paragraphs = [_block(p.strip()) for p in text.body.split("\n\n") if p.strip()]
    return _page("article.html", language=language, article=article, text=text,
                 paragraphs=paragraphs)


def _block(markdown: str) -> tuple[str, str | list[str]]:
    """A Markdown block as (kind, text): headings and lists keep their shape; the rest is
    shown as escaped text (no HTML from articles ever reaches the page)."""
    if markdown.startswith("#"):
        return "heading", markdown.lstrip("#").strip()
    lines = markdown.splitlines()
    if all(line.lstrip().startswith(("- ", "* ", "1.", "2.", "3.", "4.", "5.")) for line in lines):
        return "list", [line.lstrip().lstrip("-*0123456789.").strip() for line in lines]
    return "paragraph", " ".join(line.strip() for line in lines)


def _page(name: str, status: int = 200, **context: object) -> web.Response:
    html = _env.get_template(name).render(**context)
    return web.Response(text=html, status=status, content_type="text/html")
