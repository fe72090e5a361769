"""Decoding bytes and headers as they really arrive in Thai mail.

Python's codec registry does not know `windows-874` (the name Outlook and many webmail
clients put on Thai text) and several other names seen in the wild, and the stdlib decoders
raise or silently produce mojibake on a wrong label. Here every decode is total: it returns
text, and any guess it had to make is recorded as a defect so an agent can be warned.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

# TIS-620 and ISO-8859-11 are byte-for-byte subsets of cp874 in the Thai range; cp874 also
# maps the 0x80-0x9F punctuation (smart quotes, euro, ellipsis) that Windows users type
# while their mail is still labelled TIS-620, so one decoder serves all four names.
_ALIASES: dict[str, str] = {
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "win-874": "cp874",
    "windows874": "cp874",
    "ms874": "cp874",
    "cp-874": "cp874",
    "tis-620": "cp874",
    "tis620": "cp874",
    "x-tis-620": "cp874",
    "tis-620-2533": "cp874",
    "iso-8859-11": "cp874",
    "iso8859-11": "cp874",
    "iso_8859-11": "cp874",
    "thai": "cp874",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "ansi_x3.4-1968": "ascii",
    "us-ascii": "ascii",
}

# Labels that say "we do not know": treated like a missing charset, not as an error.
_UNKNOWN_LABELS = frozenset({"unknown-8bit", "x-unknown", "unknown", "x-user-defined", "default"})

# Tried in order when the label is missing, unknown or wrong. Strict UTF-8 rarely accepts
# text that is not UTF-8; cp874 comes next because this is a Thai service; latin-1 never fails.
FALLBACK_CODECS: tuple[str, ...] = ("utf-8", "cp874", "latin-1")

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def resolve_charset(label: str | None) -> str | None:
    """Return a Python codec name for a MIME charset label, or None if we cannot decode it."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    # RFC 2231 allows a language suffix inside encoded-words: =?tis-620*th?...
    name = name.split("*", 1)[0]
    if not name or name in _UNKNOWN_LABELS:
        return None
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL inside the label
        return None
    # A label naming a non-text codec (e.g. "base64", "rot13", "zlib") must not be obeyed.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def decode_bytes(data: bytes, label: str | None, defects: list[str], where: str = "") -> str:
    """Decode `data` labelled `label` to clean text; never raises, records any guesswork."""
    codec = resolve_charset(label)
    prefix = f"{where}: " if where else ""
    if label and codec is None and label.strip().lower() not in _UNKNOWN_LABELS:
        defects.append(f"{prefix}unknown charset {label.strip()[:60]!r}")
    candidates = ([codec] if codec else []) + [c for c in FALLBACK_CODECS if c != codec]
    for index, candidate in enumerate(candidates):
        try:
            text = data.decode(candidate)
        except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
            continue
        if index > 0 and data and not data.isascii():
            # Either no usable label, or the label was wrong for these bytes.
            defects.append(f"{prefix}decoded as {candidate} (label {label or 'missing'!r})")
        return clean_text(text)
    # Unreachable with latin-1 last, kept so the function is total even if the list changes.
    return clean_text(data.decode("utf-8", errors="replace"))


def clean_text(text: str) -> str:
    """Normalise line ends, drop NUL/control characters and lone surrogates.

    Why: storage (PostgreSQL text, JSON) rejects NUL and surrogates, and control characters
    in an agent's screen are at best noise.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    text = _CONTROL_RE.sub("", text)
    return text.encode("utf-8", errors="replace").decode("utf-8")


_ENCODED_WORD_RE = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")


def decode_header_value(value: str, defects: list[str], where: str = "") -> str:
    """Decode one raw header value: unfold, RFC 2047 encoded-words, raw 8-bit bytes.

    Adjacent encoded-words in the same charset are joined *before* decoding, because mailers
    split multi-byte UTF-8 (and Thai) characters across words.
    """
    value = _FOLD_RE.sub("", value).replace("\r", "").replace("\n", " ")
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        # The parser turned raw 8-bit header bytes into surrogates; recover and guess.
        raw = value.encode("utf-8", errors="surrogateescape")
        value = decode_bytes(raw, None, defects, where or "header")
    out: list[str] = []
    pending_bytes = b""
    pending_charset: str | None = None
    position = 0
    for match in _ENCODED_WORD_RE.finditer(value):
        between = value[position : match.start()]
        charset, encoding, payload = match.group(1), match.group(2).upper(), match.group(3)
        decoded = _decode_word_payload(encoding, payload, defects, where)
        only_space = pending_charset is not None and between.strip(" \t") == ""
        if only_space and charset.lower() == pending_charset:
            pending_bytes += decoded
        else:
            if pending_charset is not None:
                out.append(decode_bytes(pending_bytes, pending_charset, defects, where))
                pending_charset = None
            # Whitespace between two encoded-words is not part of the text (RFC 2047 §6.2).
            if not (position > 0 and between.strip(" \t") == ""):
                out.append(between)
            pending_bytes, pending_charset = decoded, charset.lower()
        position = match.end()
    if pending_charset is not None:
        out.append(decode_bytes(pending_bytes, pending_charset, defects, where))
    out.append(value[position:])
    return clean_text("".join(out)).replace("\n", " ").strip()


def _decode_word_payload(encoding: str, payload: str, defects: list[str], where: str) -> bytes:
    data = payload.encode("ascii", errors="replace")
    try:
        if encoding == "B":
            # Mailers drop padding surprisingly often; restore it rather than lose the word.
            data += b"=" * (-len(data) % 4)
            return base64.b64decode(data, validate=False)
        return binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        defects.append(f"{where or 'header'}: undecodable encoded-word")
        return data
