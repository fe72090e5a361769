"""Real-world messages nobody on the team wrote: CPython's email corpus and Thai TIS-620 text."""

from __future__ import annotations

import base64
import quopri
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.parsing import parse_email


def _reference_parts(message: Message) -> int:
    """Count MIME nodes the way the channel does: message/* parts are single attachments."""
    count = 1
    payload = message.get_payload()
    if message.get_content_maintype() == "multipart" and isinstance(payload, list):
        count += sum(_reference_parts(p) for p in payload if isinstance(p, Message))
    return count


def test_every_cpython_corpus_message_parses_with_nothing_lost(
    cpython_email_messages: list[Path],
) -> None:
    for path in cpython_email_messages:
        raw = path.read_bytes()
        parsed = parse_email(raw)
        assert parsed.raw == raw, path.name
        assert parsed.raw_size == len(raw), path.name
        assert not any(d.startswith("parser failed") for d in parsed.defects), (path.name,
                                                                                parsed.defects)
        reference = message_from_bytes(raw, policy=policy.default)
        assert len(parsed.parts) == _reference_parts(reference), path.name
        # Every leaf became body text, an attachment or an explicitly skipped alternative.
        leaves = [p for p in parsed.parts if p.role != "container"]
        attachments = [p for p in leaves if p.role in ("attachment", "inline")]
        assert len(attachments) == len(parsed.attachments), path.name
        for summary, attachment in zip(attachments, parsed.attachments, strict=True):
            assert summary.path == attachment.part_path
            if attachment.content is not None:
                assert len(attachment.content) == attachment.size


def test_cpython_corpus_known_shapes(cpython_email_messages: list[Path]) -> None:
    by_name = {p.name: parse_email(p.read_bytes()) for p in cpython_email_messages}
    assert by_name["msg_01.txt"].subject == "This is a test message"
    assert by_name["msg_05.txt"].kind == "bounce"  # a multipart/report DSN
    assert by_name["msg_16.txt"].kind == "bounce"  # a bounce relayed by a mailing list
    assert by_name["msg_02.txt"].attachments  # a digest: its messages are kept as parts
    assert by_name["msg_15.txt"].malformed  # a broken multipart in CPython's own tests


@pytest.mark.parametrize("label", ["TIS-620", "windows-874", "x-windows-874", "ISO-8859-11"])
@pytest.mark.parametrize("cte", ["base64", "quoted-printable", "8bit"])
def test_thai_tis620_corpus_decodes_exactly(
    tis620_texts: dict[str, bytes], label: str, cte: str
) -> None:
    for name, data in tis620_texts.items():
        # Python's tis-620 codec maps 0x80-0x9F to invisible C1 controls; real "TIS-620"
        # pages use them as Windows-874 punctuation (• “ ” …), which is what we decode to.
        # Every other character must come out exactly as the strict TIS-620 decoding.
        strict = data.decode("tis-620")
        windows = data.decode("cp874")
        assert len(strict) == len(windows)
        assert all(a == b or 0x80 <= ord(a) <= 0x9F for a, b in zip(strict, windows, strict=True))
        expected = windows.replace("\r\n", "\n").replace("\r", "\n")
        thai_lines = [line.strip() for line in expected.split("\n") if _has_thai(line)]
        subject_text = (thai_lines[0] if thai_lines else "ทดสอบ")[:40].strip()
        encoded_subject = base64.b64encode(subject_text.encode("tis-620")).decode()
        if cte == "base64":
            body = base64.encodebytes(data)
        elif cte == "quoted-printable":
            body = quopri.encodestring(data)
        else:
            body = data
        raw = (
            f"From: citizen@example.co.th\r\nTo: help@onestop.go.th\r\n"
            f"Subject: =?{label}?B?{encoded_subject}?=\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset={label}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n"
        ).encode("ascii") + body
        parsed = parse_email(raw)
        assert parsed.subject == subject_text, (name, label)
        assert parsed.body_full.strip("\n") == expected.strip("\n"), (name, label, cte)
        assert not [d for d in parsed.defects if "charset" in d or "decoded as" in d], name


def _has_thai(text: str) -> bool:
    return any("\u0e00" <= ch <= "\u0e7f" for ch in text)


_SPLICES = st.sampled_from(
    [b"\r\n--", b"=?", b"?=", b"\x00", b"\r\n\r\n", b";", b'"', b"<", b"=\r\n", b"*", b"''"]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_corpus_messages_are_read_not_just_kept(
    cpython_email_messages: list[Path], data: st.DataObject
) -> None:
    # Mutation fuzzing of real messages found stdlib parser crashes the fallbacks now absorb.
    raw = bytearray(data.draw(st.sampled_from(cpython_email_messages)).read_bytes())
    for _ in range(data.draw(st.integers(1, 15))):
        position = data.draw(st.integers(0, len(raw)))
        if data.draw(st.booleans()):
            raw[position:position] = data.draw(_SPLICES)
        else:
            del raw[position : position + data.draw(st.integers(1, 40))]
    parsed = parse_email(bytes(raw))
    assert parsed.raw == bytes(raw)
    assert not any(d.startswith("parser failed") for d in parsed.defects), parsed.defects
