"""Raw RFC 5322 bytes → `ParsedEmail`. Never raises; keeps the original bytes.

The stdlib parser (`email` with `policy.default`) reads the MIME structure; headers and
text are decoded here with `channels.email.charsets`, because the stdlib does not know the
charset names Thai mailers use (windows-874) and gives up on encoded-words it cannot
decode. Anything odd becomes a *defect* (shown to agents); anything that stops us reading
the message properly also sets `malformed` with a reason. A message we cannot read at all
still comes back as a `ParsedEmail` (malformed, raw kept), so ingestion never loses it.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.policy import Policy
from functools import partial
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, TypeVar

from channels.email.charsets import clean_text, decode_bytes, decode_header_value
from channels.email.config import ParseLimits
from channels.email.html_text import html_to_text
from channels.email.model import (
    Attachment,
    EmailAddress,
    EmailKind,
    ParsedEmail,
    PartRole,
    PartSummary,
)
from channels.email.quotes import split_quoted

DEFAULT_LIMITS = ParseLimits()
_T = TypeVar("_T")
_D = TypeVar("_D")

_MSGID_RE = re.compile(r"<[^<>\s]{1,900}>")
# Defects of the MIME structure itself; other stdlib defects are cosmetic.
_STRUCTURAL_DEFECTS = frozenset(
    {
        "NoBoundaryInMultipartDefect",
        "StartBoundaryNotFoundDefect",
        "CloseBoundaryNotFoundDefect",
        "MultipartInvariantViolationDefect",
        "InvalidMultipartContentTransferEncodingDefect",
    }
)
_VACATION_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[\s_-]*(reply|response|antwort)|out of (the )?office|vacation|"
    r"away from (the )?office|autoreply|auto:|abwesenheit|ตอบกลับอัตโนมัติ|"
    r"การตอบกลับอัตโนมัติ|ไม่อยู่ที่สำนักงาน|ไม่อยู่สำนักงาน|ลาพักร้อน)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|delivery status notification|delivery notification|returned mail|"
    r"failure notice|delivery (has )?failed|"
    r"mail delivery (failed|failure|subsystem)|delivery failure|non[- ]delivery|"
    r"ส่งไม่สำเร็จ|ไม่สามารถส่ง)",
    re.IGNORECASE,
)


def parse_email(raw: bytes, limits: ParseLimits | None = None) -> ParsedEmail:
    """Parse one message. Never raises: an unreadable message comes back `malformed`."""
    data = bytes(raw) if not isinstance(raw, bytes) else raw
    limits = limits or DEFAULT_LIMITS
    # policy.default's structured header parser has crash bugs on hostile parameters;
    # compat32 keeps headers as plain strings and reads the same MIME structure; as a last
    # resort NUL bytes (which crash both inside charset/boundary parameters) are dropped
    # for reading only. `raw` stays the original bytes in every case.
    attempts = ((policy.default, False), (policy.compat32, False), (policy.compat32, True))
    failures: list[str] = []
    for mime_policy, drop_nul in attempts:
        note = ""
        if failures:
            how = "without NUL bytes" if drop_nul else "with the lenient compat32 parser"
            note = f"strict parser failed ({failures[0]}); read {how}"
        try:
            return _Parser(data, limits, mime_policy, note, drop_nul).parse()
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    return _unreadable(data, "parser failed: " + " / ".join(failures))


async def parse_email_off_loop(
    raw: bytes, limits: ParseLimits | None = None, threshold: int = 256 * 1024
) -> ParsedEmail:
    """`parse_email`, in a worker thread for big messages (a 25 MB one takes ~2 s of CPU).

    Why: the SMTP server and the IMAP poller share the application's event loop; parsing a
    large message inline would stall every other connection meanwhile.
    """
    if len(raw) < threshold:
        return parse_email(raw, limits)
    return await asyncio.to_thread(parse_email, raw, limits)


def case_number_in(text: str, prefix: str = "OS") -> str | None:
    """The first case number like `[OS-2026-000123]` in `text`, normalised, or None."""
    match = _case_re(prefix).search(text)
    return f"{prefix.upper()}-{match.group(1)}-{match.group(2)}" if match else None


def should_acknowledge(message: ParsedEmail, own_addresses: frozenset[str] = frozenset()) -> bool:
    """Whether an automatic acknowledgement may be sent (RFC 3834: never to automata)."""
    target = message.reply_address
    if message.kind != "personal" or target is None or "@" not in target.address:
        return False
    return target.address.lower() not in own_addresses


# ---------------------------------------------------------------------------------------
@dataclass
class _Walk:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    parts: list[PartSummary] = field(default_factory=list)
    attachment_bytes: int = 0


class _Parser:
    def __init__(
        self,
        raw: bytes,
        limits: ParseLimits,
        mime_policy: Policy,
        note: str = "",
        drop_nul: bool = False,
    ) -> None:
        self.raw = raw
        self.drop_nul = drop_nul
        self.limits = limits
        self.policy = mime_policy
        self.defects: list[str] = [note] if note else []
        self.malformed: list[str] = []

    def parse(self) -> ParsedEmail:
        raw, limits = self.raw, self.limits
        if b"\x00" in raw:
            self.malformed.append("message contains NUL bytes")
        header_end = _header_section_length(raw)
        if header_end > limits.max_header_section_bytes:
            self.malformed.append(
                f"header section is {header_end} bytes (limit {limits.max_header_section_bytes})"
            )
        source = raw.replace(b"\x00", b"") if self.drop_nul else raw
        msg = BytesParser(policy=self.policy).parsebytes(source)
        if not raw.strip():
            self.malformed.append("empty message")
        elif not msg.keys():
            self.malformed.append("no headers found")

        headers = self._headers(msg)
        first = _first_values(headers)
        message_id = _first_msgid(first.get("message-id", ""))
        if message_id is None and first.get("message-id", "").strip():
            self.defects.append("Message-ID without angle brackets")
            token = first["message-id"].strip().split()[0][:900]
            message_id = f"<{token}>"
        in_reply_to = tuple(_MSGID_RE.findall(first.get("in-reply-to", "")))[:20]
        references = _bounded(tuple(_MSGID_RE.findall(first.get("references", ""))), 100)
        subject = first.get("subject", "")
        from_list = self._addresses(msg, "from")
        date = self._date(first.get("date", ""))

        walk = _Walk()
        self._walk(msg, "1", 0, walk, skip_text=False)
        plain = "\n\n".join(t for t in walk.plain if t.strip())
        html_only = not plain.strip() and bool(walk.html)
        body_full = plain if plain.strip() else "\n\n".join(t for t in walk.html if t.strip())
        if len(body_full) > limits.max_body_chars:
            self.defects.append(f"body longer than {limits.max_body_chars} characters (cut)")
            body_full = body_full[: limits.max_body_chars]
        body_text, body_quoted = split_quoted(body_full)

        for part in msg.walk() if len(walk.parts) <= limits.max_parts else [msg]:
            for defect in getattr(part, "defects", []):
                name = type(defect).__name__
                self.defects.append(f"{name}: {str(defect)[:200]}")
                if name in _STRUCTURAL_DEFECTS:
                    self.malformed.append(f"broken MIME structure ({name})")

        sha = hashlib.sha256(raw).hexdigest()
        dedupe_key = message_id or f"sha256:{sha}"
        case_number = case_number_in(subject, limits.case_prefix) or _case_from_ids(
            in_reply_to + references, limits.case_prefix
        )
        kind, reasons = _classify(msg, first, from_list, subject)
        return ParsedEmail(
            raw=raw,
            raw_size=len(raw),
            sha256=sha,
            message_id=message_id,
            dedupe_key=dedupe_key,
            in_reply_to=in_reply_to,
            references=references,
            thread_key=_thread_key(references, in_reply_to, dedupe_key),
            case_number=case_number,
            subject=subject,
            from_addr=from_list[0] if from_list else None,
            to=tuple(self._addresses(msg, "to")),
            cc=tuple(self._addresses(msg, "cc")),
            reply_to=tuple(self._addresses(msg, "reply-to")),
            date=date,
            body_full=body_full,
            body_text=body_text,
            body_quoted=body_quoted,
            html_only=html_only,
            attachments=tuple(walk.attachments),
            parts=tuple(walk.parts),
            kind=kind,
            kind_reasons=tuple(reasons),
            headers=tuple(headers),
            defects=tuple(_unique(self.defects)),
            malformed=bool(self.malformed),
            malformed_reasons=tuple(_unique(self.malformed)),
        )

    # --- headers ------------------------------------------------------------------------
    def _headers(self, msg: Message) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        limit = self.limits.max_header_value_chars
        for name, value in msg.raw_items():
            name_text = clean_text(str(name)).strip()[:200]
            text = decode_header_value(str(value), self.defects, name_text)
            if len(text) > limit:
                self.malformed.append(
                    f"header {name_text!r} is {len(text)} characters (limit {limit})"
                )
                text = text[:limit]
            out.append((name_text, text))
        return out

    def _addresses(self, msg: Message, header: str) -> list[EmailAddress]:
        raw_values = [str(v) for k, v in msg.raw_items() if str(k).lower() == header]
        if not raw_values:
            return []
        try:
            # Split on the *raw* value so commas inside encoded display names are safe.
            pairs = email.utils.getaddresses(
                [v.replace("\r", "").replace("\n", "") for v in raw_values]
            )
        except Exception:
            self.defects.append(f"{header}: unparseable address list")
            return []
        out: list[EmailAddress] = []
        for name, address in pairs[:200]:
            address = clean_text(decode_header_value(address, self.defects, header)).strip()
            if not address:
                continue
            local, at, domain = address.rpartition("@")
            normalised = f"{local}@{domain.lower()}" if at else address
            out.append(EmailAddress(normalised, decode_header_value(name, self.defects, header)))
        return out

    def _date(self, value: str) -> datetime | None:
        if not value.strip():
            return None
        try:
            return email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            self.defects.append(f"date: unparseable {value[:80]!r}")
            return None

    # --- MIME tree ----------------------------------------------------------------------
    def _walk(self, part: Message, path: str, depth: int, walk: _Walk, skip_text: bool) -> None:
        ctype = _safe(lambda: part.get_content_type(), "application/octet-stream")
        if len(walk.parts) >= self.limits.max_parts:
            if len(walk.parts) == self.limits.max_parts:
                self.malformed.append(f"more than {self.limits.max_parts} MIME parts")
            walk.parts.append(PartSummary(path, ctype, 0, "skipped", "too many parts"))
            return
        payload = _payload(part)
        if ctype.startswith("multipart/") and isinstance(payload, list):
            walk.parts.append(PartSummary(path, ctype, 0, "container"))
            if depth >= self.limits.max_depth:
                self.malformed.append(f"MIME nesting deeper than {self.limits.max_depth} levels")
                self._skip_subtree(payload, path, walk)
                return
            preferred = None
            if ctype == "multipart/alternative":
                preferred = self._preferred_alternative(payload)
            for index, child in enumerate(payload, start=1):
                if not isinstance(child, Message):
                    continue
                child_skip = skip_text or (preferred is not None and index - 1 != preferred)
                self._walk(child, f"{path}.{index}", depth + 1, walk, child_skip)
            return
        self._leaf(part, path, ctype, walk, skip_text)

    def _skip_subtree(self, payload: list[Any], path: str, walk: _Walk) -> None:
        # Deep parts are not read, but each is listed so the count of parts stays complete.
        stack = [(child, f"{path}.{i}") for i, child in enumerate(payload, 1)]
        while stack:
            node, node_path = stack.pop()
            if not isinstance(node, Message):
                continue
            ctype = _safe(node.get_content_type, "application/octet-stream")
            inner = _payload(node)
            if ctype.startswith("multipart/") and isinstance(inner, list):
                walk.parts.append(PartSummary(node_path, ctype, 0, "container", "too deep"))
                stack.extend((c, f"{node_path}.{i}") for i, c in enumerate(inner, 1))
            else:
                walk.parts.append(PartSummary(node_path, ctype, 0, "skipped", "too deep"))

    def _preferred_alternative(self, children: list[Any]) -> int:
        plain = html = nested = None
        for index, child in enumerate(children):
            if not isinstance(child, Message):
                continue
            ctype = _safe(child.get_content_type, "")
            if ctype == "text/plain" and plain is None:
                text = self._text_of(child, "")
                plain = index if text.strip() else plain
            elif ctype == "text/html" and html is None:
                html = index
            elif ctype.startswith("multipart/") and nested is None:
                nested = index
        for choice in (plain, html, nested):
            if choice is not None:
                return choice
        return 0

    def _leaf(self, part: Message, path: str, ctype: str, walk: _Walk, skip_text: bool) -> None:
        disposition = _safe(lambda: part.get_content_disposition(), None)
        filename = self._filename(part)
        if ctype.startswith("multipart/"):
            # A multipart whose boundary never appears: its text is all we can show.
            text = self._text_of(part, path)
            walk.plain.append(text)
            walk.parts.append(PartSummary(path, ctype, len(text), "body_text", "unsplit multipart"))
            return
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            text = self._text_of(part, path)
            if skip_text:
                walk.parts.append(
                    PartSummary(path, ctype, len(text), "skipped", "other alternative")
                )
                return
            role: PartRole
            if ctype == "text/plain":
                walk.plain.append(text)
                role = "body_text"
            else:
                walk.html.append(html_to_text(text))
                role = "body_html"
            walk.parts.append(PartSummary(path, ctype, len(text), role))
            return
        content = self._content_bytes(part, ctype)
        content_id = _safe(lambda: part.get("content-id"), None)
        cid = str(content_id).strip().strip("<>")[:300] if content_id else None
        inline = disposition == "inline" or (disposition is None and cid is not None)
        name = filename or _default_filename(path, ctype)
        reason = self._refusal(name, ctype, len(content), walk)
        if reason is None:
            walk.attachment_bytes += len(content)
        walk.attachments.append(
            Attachment(
                filename=name,
                content_type=ctype,
                size=len(content),
                content=None if reason else content,
                inline=inline,
                content_id=cid,
                rejected_reason=reason,
                part_path=path,
            )
        )
        role_name: PartRole = "inline" if inline else "attachment"
        walk.parts.append(PartSummary(path, ctype, len(content), role_name, reason or ""))

    def _text_of(self, part: Message, path: str) -> str:
        data = _safe(lambda: part.get_payload(decode=True), None)
        if not isinstance(data, bytes):
            data = str(_payload(part)).encode("utf-8", errors="surrogateescape")
        label = _safe(lambda: part.get_content_charset(), None)
        before = len(self.defects)
        text = decode_bytes(data, label, self.defects, f"part {path or '?'}")
        if any("unknown charset" in d for d in self.defects[before:]):
            self.malformed.append(f"part {path}: unknown charset {label!r}")
        return text

    def _content_bytes(self, part: Message, ctype: str) -> bytes:
        payload = _payload(part)
        if isinstance(payload, list):
            # message/rfc822 and friends: keep the enclosed message as bytes.
            chunks = []
            for inner in payload:
                if isinstance(inner, Message):
                    chunks.append(_safe(partial(inner.as_bytes, policy=policy.compat32), b""))
            return b"".join(chunks)
        data = _safe(lambda: part.get_payload(decode=True), None)
        if isinstance(data, bytes):
            return data
        return str(payload).encode("utf-8", errors="surrogateescape")

    def _filename(self, part: Message) -> str:
        value: Any = _safe(part.get_filename, None)
        if not value:
            value = _safe(lambda: part.get_param("name", header="content-type"), None)
            if isinstance(value, tuple):
                value = value[2]
        if not value:
            return ""
        text = decode_header_value(str(value), self.defects, "filename")
        # Keep only the last path component: a name is shown and saved, never followed.
        text = PureWindowsPath(PurePosixPath(text).name).name
        return re.sub(r"[\\/:*?\"<>|]", "_", text).strip(" .")[:200]

    def _refusal(self, name: str, ctype: str, size: int, walk: _Walk) -> str | None:
        limits = self.limits
        extension = PurePosixPath(name.lower()).suffix
        effective = ctype
        if ctype == "application/octet-stream":
            guessed = mimetypes.guess_type(name)[0]
            effective = guessed or ctype
        accepted = sum(1 for a in walk.attachments if a.rejected_reason is None)
        if extension in limits.blocked_extensions:
            return f"file type {extension} is not accepted"
        if effective.lower() not in limits.allowed_attachment_types:
            return f"content type {effective} is not accepted"
        if size > limits.max_attachment_bytes:
            return f"larger than {limits.max_attachment_bytes} bytes"
        if walk.attachment_bytes + size > limits.max_total_attachment_bytes:
            return f"attachments exceed {limits.max_total_attachment_bytes} bytes in total"
        if accepted >= limits.max_attachments:
            return f"more than {limits.max_attachments} attachments"
        return None


# ---------------------------------------------------------------------------------------
def _classify(
    msg: Message, first: dict[str, str], from_list: list[EmailAddress], subject: str
) -> tuple[EmailKind, list[str]]:
    ctype = _safe(lambda: msg.get_content_type(), "")
    report_type = str(_safe(lambda: msg.get_param("report-type"), "") or "").lower()
    sender = from_list[0].address.lower() if from_list else ""
    local = sender.split("@", 1)[0]
    bounce: list[str] = []
    if ctype == "multipart/report" and report_type == "delivery-status":
        bounce.append("multipart/report; report-type=delivery-status")
    if local == "mailer-daemon":
        bounce.append("sent by MAILER-DAEMON")
    if local == "postmaster" and _BOUNCE_SUBJECT.search(subject):
        bounce.append("postmaster with a delivery-failure subject")
    if "x-failed-recipients" in first:
        bounce.append("X-Failed-Recipients header")
    if bounce:
        return "bounce", bounce

    auto: list[str] = []
    auto_submitted = first.get("auto-submitted", "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        auto.append(f"Auto-Submitted: {auto_submitted[:40]}")
    for header in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if header in first:
            auto.append(f"{header} header")
    if _VACATION_SUBJECT.search(subject):
        auto.append("vacation/auto-reply subject")
    if auto:
        return "auto_reply", auto

    listed = [f"{h} header" for h in ("list-id", "list-unsubscribe") if h in first]
    precedence = first.get("precedence", "").strip().lower()
    if precedence == "list":
        listed.append("Precedence: list")
    if listed:
        return "list", listed
    if precedence in ("bulk", "junk", "auto_reply"):
        return "auto_reply", [f"Precedence: {precedence}"]
    return "personal", []


def _unreadable(raw: bytes, reason: str) -> ParsedEmail:
    sha = hashlib.sha256(raw).hexdigest()
    message_id = None
    match = re.search(rb"(?im)^message-id:[ \t]*(<[^<>\s]{1,900}>)", raw[:65536])
    if match:
        message_id = match.group(1).decode("ascii", errors="replace")
    dedupe_key = message_id or f"sha256:{sha}"
    return ParsedEmail(
        raw=raw, raw_size=len(raw), sha256=sha, message_id=message_id, dedupe_key=dedupe_key,
        in_reply_to=(), references=(), thread_key=dedupe_key, case_number=None, subject="",
        from_addr=None, to=(), cc=(), reply_to=(), date=None, body_full="", body_text="",
        body_quoted="", html_only=False, attachments=(), parts=(), kind="personal",
        kind_reasons=(), headers=(), defects=(reason,), malformed=True,
        malformed_reasons=(reason,),
    )


def _thread_key(references: tuple[str, ...], in_reply_to: tuple[str, ...], own: str) -> str:
    # The root of the References chain names the thread, whoever replied in between.
    if references:
        return references[0]
    if in_reply_to:
        return in_reply_to[0]
    return own


def _case_re(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[\s*{re.escape(prefix)}-(\d{{4}})-(\d{{6}})\s*\]", re.IGNORECASE)


def _case_from_ids(ids: tuple[str, ...], prefix: str) -> str | None:
    # Our own Message-IDs start with the case number (see outbound.make_message_id), so a
    # reply whose subject lost the tag still finds its case.
    pattern = re.compile(rf"^<{re.escape(prefix)}-(\d{{4}})-(\d{{6}})\.", re.IGNORECASE)
    for msgid in reversed(ids):
        match = pattern.match(msgid)
        if match:
            return f"{prefix.upper()}-{match.group(1)}-{match.group(2)}"
    return None


def _first_values(headers: list[tuple[str, str]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)
    return first


def _first_msgid(value: str) -> str | None:
    match = _MSGID_RE.search(value)
    return match.group(0) if match else None


def _bounded(ids: tuple[str, ...], limit: int) -> tuple[str, ...]:
    # Keep the root (thread key) and the most recent ancestors.
    return ids if len(ids) <= limit else (ids[0], *ids[-(limit - 1) :])


def _header_section_length(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else len(raw)


def _default_filename(path: str, ctype: str) -> str:
    extension = mimetypes.guess_extension(ctype) or ".bin"
    if ctype == "message/rfc822":
        extension = ".eml"
    return f"part-{path}{extension}"


def _payload(part: Message) -> Any:
    try:
        return part.get_payload()
    except Exception:
        # get_payload() re-decodes 8-bit text with the declared charset and raises on some
        # hostile labels (a NUL inside); the undecoded payload is what we want anyway.
        return getattr(part, "_payload", "")


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _safe(call: Callable[[], _T], default: _D) -> _T | _D:
    try:
        return call()
    except Exception:
        return default
