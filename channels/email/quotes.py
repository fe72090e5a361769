"""Split a reply into what the citizen wrote now and the history they quoted.

Agents read `body_text`; `body_quoted` is shown folded. Nothing is thrown away: the two
parts together are the full text, and the raw message is kept anyway.

Recognised starts of history (first one wins):
- an attribution line: "On … wrote:" (also wrapped over two lines, as Gmail does) or Thai
  "เมื่อ … เขียนว่า:", containing a date or an address;
- an Outlook divider: "-----Original Message-----" (and Thai variants);
- an Outlook header block: "From:"/"จาก:" followed within a few lines by at least two of
  Sent/Date/To/Cc/Subject (or ส่ง/วันที่/ถึง/สำเนา/เรื่อง), with an optional "____" rule above;
- a trailing block of "> " lines (with the attribution line above it, if any).
Interleaved "> " quotes followed by new text are *not* folded: that is an inline answer.
Forwarded messages are not folded either: what a citizen forwards is their message.
"""

from __future__ import annotations

import re

_ATTRIBUTION_ONE_LINE = re.compile(
    r"^\s*(on\s.{1,300}\swrote\s*:|เมื่อ.{1,300}เขียนว่า\s*:?)\s*$", re.IGNORECASE
)
_ATTRIBUTION_START = re.compile(r"^\s*(on\s|เมื่อ)", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"(wrote\s*:|เขียนว่า\s*:?)\s*$", re.IGNORECASE)
_DIVIDER = re.compile(
    r"^\s*-{2,}\s*(original message|ข้อความต้นฉบับ|ข้อความเดิม|ข้อความดั้งเดิม)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\s*\**\s*(from|จาก)\s*:\**\s*\S", re.IGNORECASE)
_OUTLOOK_FIELD = re.compile(
    r"^\s*\**\s*(sent|date|to|cc|subject|ส่ง|ส่งเมื่อ|วันที่|ถึง|สำเนา|เรื่อง)\s*:", re.IGNORECASE
)
_RULE = re.compile(r"^\s*_{10,}\s*$")
# Mail clients' attributions carry a date or an address; "On Monday I wrote:" in a
# citizen's own text has neither and must not be mistaken for the start of history.
_EVIDENCE = re.compile(r"[\d@๐-๙]")


def split_quoted(text: str) -> tuple[str, str]:
    """Return (new text, quoted history) for a plain-text body."""
    lines = text.split("\n")
    cut = _find_history_start(lines)
    if cut is None:
        cut = _trailing_quote_start(lines)
    if cut is None:
        return text.strip("\n").rstrip(), ""
    new = "\n".join(lines[:cut]).strip("\n").rstrip()
    quoted = "\n".join(lines[cut:]).strip("\n").rstrip()
    return new, quoted


def _find_history_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            continue
        if _DIVIDER.match(line):
            return index
        if _ATTRIBUTION_ONE_LINE.match(line) and _EVIDENCE.search(line):
            return index
        if _ATTRIBUTION_START.match(line) and not _ATTRIBUTION_END.search(line):
            following = lines[index + 1 : index + 3]
            for offset, next_line in enumerate(following, start=1):
                joined = f"{line} {next_line}"
                if (
                    _ATTRIBUTION_END.search(next_line)
                    and len(joined) < 400
                    and _EVIDENCE.search(joined)
                ):
                    # Only an attribution if what follows is history (quotes or blank/end).
                    rest = lines[index + offset + 1 : index + offset + 3]
                    if not rest or any(r.lstrip().startswith(">") or not r.strip() for r in rest):
                        return index
        if _OUTLOOK_FROM.match(line):
            window = lines[index + 1 : index + 7]
            if sum(1 for w in window if _OUTLOOK_FIELD.match(w)) >= 2:
                above = index - 1
                while above >= 0 and not lines[above].strip():
                    above -= 1
                if above >= 0 and _RULE.match(lines[above]):
                    return above
                return index
    return None


def _trailing_quote_start(lines: list[str]) -> int | None:
    end = len(lines) - 1
    while end >= 0 and not lines[end].strip():
        end -= 1
    if end < 0 or not lines[end].lstrip().startswith(">"):
        return None
    start = end
    while start > 0 and (lines[start - 1].lstrip().startswith(">") or not lines[start - 1].strip()):
        start -= 1
    while start < end and not lines[start].strip():
        start += 1
    # An unrecognised attribution ("Le … a écrit :") sits right above the quote: take it too.
    above = start - 1
    if above >= 0 and lines[above].rstrip().endswith(":") and len(lines[above]) < 300:
        return above
    return start
