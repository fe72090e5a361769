"""HTML mail → safe plain text (stdlib html.parser only).

The result contains no markup at all: scripts, styles and the document head are dropped,
entities are resolved, links keep their http(s)/mailto target in brackets, images their
alt text, and <blockquote> becomes "> " lines so quoted history can be folded like in plain
mail. It is text, so whatever shows it must still escape it (the console's templates do).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from channels.email.charsets import clean_text

# Beyond this the tail is dropped from the *view* only; the raw message keeps everything.
MAX_HTML_CHARS = 2_000_000

_DROP = frozenset(
    {"script", "style", "head", "title", "noscript", "template", "svg", "math", "object",
     "iframe", "embed", "applet", "frameset", "select", "textarea", "button"}
)
_BLOCK = frozenset(
    {"p", "div", "br", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
     "section", "article", "header", "footer", "hr", "dl", "dd", "dt", "address", "form",
     "fieldset", "figure", "figcaption", "main", "nav", "aside", "center", "blockquote", "li"}
)
# Blocks that stand apart from their neighbours by an empty line.
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre", "hr"}
)
_VOID = frozenset(
    {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "source", "wbr"}
)
_SAFE_HREF = re.compile(r"^(https?://|mailto:)", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\f\v\u00a0\u200b]+")


def html_to_text(html: str) -> str:
    """Turn an HTML body into readable, markup-free text. Never raises."""
    truncated = len(html) > MAX_HTML_CHARS
    html = html[:MAX_HTML_CHARS]
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = extractor.text()
    except Exception:
        text = re.sub(r"<[^>]*>", " ", re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", html))
        text = _SPACES.sub(" ", text)
    if truncated:
        text += "\n[…]"
    return clean_text(text).strip()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        self._current: list[str] = []
        self._line_depth = 0
        self._quote_depth = 0
        self._drop_stack: list[str] = []
        self._pre = 0
        self._links: list[str | None] = []

    def text(self) -> str:
        self._newline()
        out: list[str] = []
        blank = 0
        for line in self._lines:
            if line.strip(" >") == "":
                blank += 1
                if blank > 1:
                    continue
                line = line.rstrip()
            else:
                blank = 0
            out.append(line)
        return "\n".join(out).strip("\n")

    # --- parser callbacks -------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            # A missing </head> must not swallow the whole body.
            self._drop_stack = [t for t in self._drop_stack if t != "head"]
            return
        if self._drop_stack:
            if tag in _DROP and tag not in _VOID:
                self._drop_stack.append(tag)
            return
        if tag in _DROP:
            self._drop_stack.append(tag)
            return
        attributes = dict(attrs)
        if tag == "br":
            self._newline(force=True)
        elif tag in _PARAGRAPH:
            self._paragraph()
        elif tag in _BLOCK:
            self._newline()
        if tag == "blockquote":
            self._quote_depth += 1
        elif tag == "pre":
            self._pre += 1
        elif tag == "li":
            self._current.append("- ")
        elif tag in ("td", "th"):
            self._current.append(" ")
        elif tag == "img":
            alt = (attributes.get("alt") or "").strip()
            if alt:
                self._append(f" [{alt}] ")
        elif tag == "a":
            href = (attributes.get("href") or "").strip()
            self._links.append(href if _SAFE_HREF.match(href) else None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._drop_stack:
            if tag in self._drop_stack:
                while self._drop_stack and self._drop_stack.pop() != tag:
                    pass
            return
        if tag == "a" and self._links:
            href = self._links.pop()
            if href:
                shown = "".join(self._current)
                target = href[7:] if href.lower().startswith("mailto:") else href
                if target not in shown:
                    self._append(f" ({target})")
        elif tag == "blockquote":
            self._newline()
            self._quote_depth = max(0, self._quote_depth - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _PARAGRAPH:
            self._paragraph()
        elif tag in _BLOCK and tag != "br":
            self._newline()

    def handle_data(self, data: str) -> None:
        if self._drop_stack:
            return
        if self._pre:
            parts = data.split("\n")
            for index, part in enumerate(parts):
                if index:
                    self._newline()
                self._append(part, collapse=False)
            return
        self._append(data)

    # --- helpers ------------------------------------------------------------------------
    def _append(self, data: str, collapse: bool = True) -> None:
        if collapse:
            data = _SPACES.sub(" ", data.replace("\r", " ").replace("\n", " "))
            if not self._current or "".join(self._current).endswith(" "):
                data = data.lstrip(" ")
        if data:
            if not self._current:
                self._line_depth = self._quote_depth
            self._current.append(data)

    def _paragraph(self) -> None:
        self._newline()
        if self._lines and self._lines[-1].strip(" >"):
            self._lines.append("> " * self._quote_depth)

    def _newline(self, force: bool = False) -> None:
        if not force and not "".join(self._current).strip():
            self._current = []
            return
        line = "".join(self._current).rstrip()
        depth = max(self._line_depth, self._quote_depth) if line else self._quote_depth
        self._lines.append(("> " * depth) + line.strip(" ") if line else "> " * depth)
        self._current = []
        self._line_depth = self._quote_depth
