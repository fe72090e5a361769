"""Broken mail is stored raw and flagged; parse_email never raises (also fuzzed)."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.parsing import parse_email


def _assert_kept(raw: bytes) -> None:
    parsed = parse_email(raw)
    assert parsed.raw == raw
    assert parsed.raw_size == len(raw)
    assert parsed.dedupe_key
    return None


def test_missing_boundary_is_flagged_and_text_still_shown() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed\r\n\r\n--zzz\r\nContent-Type: text/plain\r\n\r\n"
        b"the citizen's words\r\n--zzz--\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.malformed
    assert any("NoBoundaryInMultipartDefect" in r for r in parsed.malformed_reasons)
    assert "the citizen's words" in parsed.body_full
    assert parsed.raw == raw


def test_boundary_never_found_is_flagged() -> None:
    raw = (
        b'From: a@example.org\r\nContent-Type: multipart/mixed; boundary="nope"\r\n\r\n'
        b"--other\r\n\r\ntext\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.malformed and parsed.raw == raw


def test_200_levels_of_nesting_are_flagged_and_every_part_listed() -> None:
    depth = 200
    head = b"From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    body = b""
    opening = b""
    for level in range(depth):
        opening += (
            f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'
        ).encode()
    body = opening + b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in reversed(range(depth)):
        body += f"--b{level}--\r\n".encode()
    raw = head + body
    started = time.monotonic()
    parsed = parse_email(raw)
    assert time.monotonic() - started < 10
    assert parsed.malformed
    assert any("nesting deeper" in r for r in parsed.malformed_reasons), parsed.malformed_reasons
    assert parsed.raw == raw
    assert len(parsed.parts) == depth + 1  # 200 containers and the text leaf, none dropped


def test_huge_header_is_flagged_and_truncated_in_view_only() -> None:
    subject = "ก" * 300_000
    raw = ("From: a@example.org\r\nSubject: " + subject + "\r\n\r\nbody\r\n").encode("utf-8")
    parsed = parse_email(raw)
    assert parsed.malformed
    assert len(parsed.subject) <= 8192
    assert any("header section" in r for r in parsed.malformed_reasons)
    assert parsed.raw == raw and parsed.body_text == "body"


def test_bad_charset_name_is_flagged_and_decoded_safely() -> None:
    raw = (
        "From: a@example.org\r\nSubject: =?x-no-such-charset?B?4Lib4Lij4Liw4LiK4Liy4LiK4LiZ?=\r\n"
        "Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nประชาชน\r\n"
    ).encode()
    parsed = parse_email(raw)
    assert parsed.malformed
    assert any("unknown charset" in r for r in parsed.malformed_reasons)
    assert parsed.body_text == "ประชาชน"
    assert parsed.subject == "ประชาชน"


def test_nul_bytes_are_flagged_and_never_reach_text() -> None:
    raw = b"From: a@exa\x00mple.org\r\nSubject: a\x00b\r\n\r\nhel\x00lo\r\n"
    parsed = parse_email(raw)
    assert parsed.malformed
    assert "message contains NUL bytes" in parsed.malformed_reasons
    assert parsed.subject == "ab" and parsed.body_text == "hello"
    assert parsed.raw == raw


def test_stdlib_header_parser_crashes_fall_back_to_lenient_reading() -> None:
    # Found by mutation fuzzing CPython's corpus: these crash email.policy.default's
    # structured header parser (IndexError / ValueError) inside BytesParser itself.
    for header, how in (
        (b"Content-Type: text/plain; name*", "compat32"),
        (b"Content-Type: text/plain; charset*=utf\x00-8''x", "compat32"),
        (b"Content-Type: multipart/mixed; boundary*=utf\x00-8''x", "without NUL bytes"),
    ):
        raw = b"From: a@example.org\r\n" + header + b"\r\n\r\nhello\r\n"
        parsed = parse_email(raw)
        assert parsed.body_text == "hello", header
        assert any("strict parser failed" in d and how in d for d in parsed.defects), header
        assert parsed.raw == raw


def test_non_text_charset_label_is_not_obeyed() -> None:
    # "base64"/"zlib" are Python codecs but not text charsets; decoding with them is a trap.
    raw = b"From: a@example.org\r\nContent-Type: text/plain; charset=zlib\r\n\r\nhello\r\n"
    assert parse_email(raw).body_text == "hello"


def test_garbage_inputs_never_raise() -> None:
    samples = [
        b"",
        b"\r\n\r\n",
        b"\xff\xfe\x00\x01" * 1000,
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
        b"From: <<<@@@>>>\r\nTo: ,,,,\r\nDate: 99 Foo 99999 99:99:99 +9999\r\n\r\n",
        b"Subject: =?utf-8?B?####?= =?utf-8?Q?=ZZ?=\r\n\r\n",
        b"Content-Type: text/plain; charset=\"\r\n\r\nx",
        b"Message-ID: no brackets here\r\nReferences: <a> <b\r\n\r\n",
        b"Content-Type: message/rfc822\r\n\r\nnot a message at all",
        b"Content-Disposition: attachment; filename*=windows-874''%E0%A1%A2.pdf\r\n\r\nx",
        b"\x00" * 100,
        b"Content-Type: text/plain; charset=utf\x00-8\r\n\r\nnul in the charset label",
    ]
    for raw in samples:
        _assert_kept(raw)
        # Kept *and read*: none of these may fall through to the unreadable path.
        assert not any(d.startswith("parser failed") for d in parse_email(raw).defects), raw
    assert parse_email(b"").malformed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(raw: bytes) -> None:
    _assert_kept(raw)


_HEADER_LINES = st.sampled_from([
    b"From: a@example.org", b"Subject: =?windows-874?B?4Lib?=", b"Content-Type: multipart/mixed;",
    b' boundary="x"', b"Content-Type: text/html; charset=tis-620", b"--x", b"--x--",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"", b"<script>x</script>", b"=E0=A1", b"> quoted", b"On Mon wrote:", b"\xe0\xb8\x81",
    b"Content-Disposition: attachment; filename=a.exe", b"Message-ID: <x@y>",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_HEADER_LINES, max_size=60))
def test_structured_mime_fragments_never_raise(lines: list[bytes]) -> None:
    _assert_kept(b"\r\n".join(lines))
