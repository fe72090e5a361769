"""parse_email: headers, charsets, bodies, quotes, attachments, classification, threading."""

from __future__ import annotations

import base64
from email.header import Header

from channels.email.config import ParseLimits
from channels.email.parsing import case_number_in, parse_email, should_acknowledge

THAI = "ขอสอบถามเรื่องการต่อใบอนุญาตขับขี่ครับ"


def mail(headers: str, body: bytes | str = b"hello\r\n") -> bytes:
    """Raw message from header lines (\\n separated) and a body."""
    head = headers.strip("\n").replace("\n", "\r\n").encode("utf-8")
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + b"\r\n\r\n" + data


def qp_word(text: str, charset: str) -> str:
    encoded = "".join(f"={b:02X}" for b in text.encode(charset))
    return f"=?{charset}?Q?{encoded}?="


def b64_word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


# --- headers -------------------------------------------------------------------------------
def test_tis620_and_windows874_encoded_word_subjects_decode_to_thai() -> None:
    for label, codec in (("TIS-620", "tis-620"), ("windows-874", "cp874"),
                         ("x-windows-874", "cp874"), ("iso-8859-11", "iso8859-11")):
        for word in (qp_word(THAI, codec).replace(codec, label),
                     b64_word(THAI, codec).replace(codec, label)):
            parsed = parse_email(mail(f"Subject: {word}\nFrom: a@example.org"))
            assert parsed.subject == THAI, (label, word)
            assert not parsed.malformed


def test_utf8_split_across_encoded_words_is_rejoined() -> None:
    # Mailers cut long subjects into words at byte boundaries, even inside a character.
    folded = Header(THAI * 3, "utf-8", maxlinelen=40).encode()
    parsed = parse_email(mail(f"Subject: {folded}\nFrom: a@example.org"))
    assert parsed.subject == THAI * 3


def test_raw_8bit_thai_header_is_guessed() -> None:
    raw = b"Subject: " + THAI.encode("cp874") + b"\r\nFrom: a@example.org\r\n\r\nbody\r\n"
    assert parse_email(raw).subject == THAI


def test_addresses_with_encoded_names_and_commas() -> None:
    name = b64_word("สมชาย ใจดี", "cp874").replace("cp874", "windows-874")
    parsed = parse_email(mail(
        f"From: {name} <Somchai@Example.CO.TH>\n"
        'To: help@onestop.go.th, "Doe, John" <john@example.org>\n'
        "Cc: =?utf-8?q?Nok=2C_Bird?= <nok@example.org>\n"
        "Reply-To: replies@example.co.th\n"
        "Date: Mon, 2 Mar 2026 10:00:00 +0700\n"
        "Message-ID: <abc@example.co.th>"
    ))
    assert parsed.from_addr is not None
    assert parsed.from_addr.name == "สมชาย ใจดี"
    assert parsed.from_addr.address == "Somchai@example.co.th"
    assert [a.address for a in parsed.to] == ["help@onestop.go.th", "john@example.org"]
    assert parsed.to[1].name == "Doe, John"
    assert parsed.cc[0].name == "Nok, Bird"
    assert parsed.reply_address is not None
    assert parsed.reply_address.address == "replies@example.co.th"
    assert parsed.date is not None and parsed.date.utcoffset() is not None
    assert parsed.message_id == "<abc@example.co.th>"


def test_case_number_from_subject() -> None:
    parsed = parse_email(mail("Subject: Re: ใบขับขี่ [OS-2026-000123]\nFrom: a@example.org"))
    assert parsed.case_number == "OS-2026-000123"
    assert case_number_in("no tag here") is None
    assert case_number_in("[ os-2025-000001 ]") == "OS-2025-000001"


def test_reply_to_acknowledgement_keeps_thread_and_case() -> None:
    original = parse_email(mail(
        "From: citizen@example.org\nSubject: help\nMessage-ID: <q1@example.org>"
    ))
    ack_id = "<OS-2026-000123.ack.3f2a@onestop.go.th>"
    # A client that keeps References, and one that only sets In-Reply-To and drops the tag.
    full = parse_email(mail(
        f"From: citizen@example.org\nSubject: Re: help [OS-2026-000123]\n"
        f"Message-ID: <q2@example.org>\nIn-Reply-To: {ack_id}\n"
        f"References: <q1@example.org> {ack_id}"
    ))
    sparse = parse_email(mail(
        f"From: citizen@example.org\nSubject: Re: help\nMessage-ID: <q3@example.org>\n"
        f"In-Reply-To: {ack_id}"
    ))
    assert full.thread_key == original.thread_key == "<q1@example.org>"
    assert full.case_number == sparse.case_number == "OS-2026-000123"


# --- bodies --------------------------------------------------------------------------------
def test_quoted_printable_and_base64_bodies_in_thai_charsets() -> None:
    for cte, encode in (
        ("base64", lambda b: base64.encodebytes(b)),
        ("quoted-printable", lambda b: __import__("quopri").encodestring(b)),
    ):
        for label, codec in (("windows-874", "cp874"), ("TIS-620", "tis-620"), ("utf-8", "utf-8")):
            raw = mail(
                f"From: a@example.org\nContent-Type: text/plain; charset={label}\n"
                f"Content-Transfer-Encoding: {cte}",
                encode(THAI.encode(codec)),
            )
            parsed = parse_email(raw)
            assert parsed.body_text == THAI, (cte, label)
            assert not parsed.defects, parsed.defects


def test_wrong_charset_label_falls_back_and_is_recorded() -> None:
    raw = mail("From: a@example.org\nContent-Type: text/plain; charset=us-ascii",
               THAI.encode("cp874"))
    parsed = parse_email(raw)
    assert parsed.body_text == THAI
    assert any("decoded as cp874" in d for d in parsed.defects)


def test_html_only_mail_becomes_safe_text() -> None:
    html = (
        "<html><head><title>x</title><style>p{color:red}</style>"
        "<script>alert('head')</script></head><body>"
        "<p>เรียน เจ้าหน้าที่</p><script type='text/javascript'>document.cookie</script>"
        "<p>ขอ<b>สอบถาม</b>&nbsp;&amp; ขอบคุณ</p>"
        "<a href='javascript:alert(1)'>คลิก</a> <a href='https://www.dlt.go.th/'>กรมการขนส่ง</a>"
        "<img src='cid:x' alt='ลายเซ็น' onerror='alert(2)'>"
        "<ul><li>หนึ่ง</li><li>สอง</li></ul></body></html>"
    )
    raw = mail("From: a@example.org\nContent-Type: text/html; charset=utf-8", html)
    parsed = parse_email(raw)
    text = parsed.body_text
    assert parsed.html_only
    assert "<" not in text and ">" not in text
    assert "alert" not in text and "document.cookie" not in text and "color" not in text
    assert "เรียน เจ้าหน้าที่" in text and "ขอสอบถาม & ขอบคุณ" in text
    assert "กรมการขนส่ง (https://www.dlt.go.th/)" in text
    assert "javascript" not in text
    assert "[ลายเซ็น]" in text
    assert "- หนึ่ง\n- สอง" in text


def test_alternative_prefers_plain_and_counts_every_part() -> None:
    raw = mail(
        'From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b"',
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain text\r\n"
        "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html text</p>\r\n--b--\r\n",
    )
    parsed = parse_email(raw)
    assert parsed.body_text == "plain text"
    assert [p.role for p in parsed.parts] == ["container", "body_text", "skipped"]


def test_quoted_history_is_folded_but_kept() -> None:
    cases = {
        "gmail": "Thanks, see below.\n\nOn Mon, 2 Mar 2026 at 10:00, OneStop <help@onestop.go.th> "
                 "wrote:\n> We received your message.\n> Case OS-2026-000123",
        "gmail wrapped": "Thanks.\n\nOn Mon, 2 Mar 2026 at 10:00, OneStop\n<help@onestop.go.th> "
                         "wrote:\n\n> We received your message.",
        "thai": "ขอบคุณครับ\n\nเมื่อ วันจันทร์ที่ 2 มี.ค. 2026 เวลา 10:00 OneStop "
                "<help@onestop.go.th> เขียนว่า:\n> ได้รับข้อความแล้ว",
        "outlook divider": "Thank you\n\n-----Original Message-----\nFrom: OneStop\nSent: Monday\n"
                           "Subject: Re: help\n\nWe received your message.",
        "outlook block": "ขอบคุณค่ะ\n\n________________________________\nจาก: OneStop "
                         "<help@onestop.go.th>\nส่ง: 2 มีนาคม 2569 10:00\nถึง: me@example.org\n"
                         "เรื่อง: Re: help\n\nได้รับข้อความแล้ว",
        "bare quote": "Thanks\n\n> old line one\n> old line two\n",
    }
    for name, body in cases.items():
        parsed = parse_email(mail("From: a@example.org\nContent-Type: text/plain; charset=utf-8",
                                  body))
        assert parsed.body_text in ("Thanks, see below.", "Thanks.", "ขอบคุณครับ", "Thank you",
                                    "ขอบคุณค่ะ", "Thanks"), (name, parsed.body_text)
        assert parsed.body_quoted, name
        assert parsed.body_full.strip() == body.strip(), name


def test_gmail_html_reply_folds_the_blockquote() -> None:
    html = (
        '<div dir="ltr">ขอบคุณครับ<br></div><br><div class="gmail_quote">'
        '<div class="gmail_attr">เมื่อ วันจันทร์ที่ 2 มี.ค. 2569 เวลา 10:00 OneStop &lt;'
        '<a href="mailto:help@onestop.go.th">help@onestop.go.th</a>&gt; เขียนว่า:<br></div>'
        '<blockquote class="gmail_quote"><div>ได้รับข้อความแล้ว<br>บรรทัดสอง</div></blockquote></div>'
    )
    parsed = parse_email(mail("From: a@example.org\nContent-Type: text/html; charset=utf-8", html))
    assert parsed.body_text == "ขอบคุณครับ"
    assert parsed.body_quoted.endswith("> ได้รับข้อความแล้ว\n> บรรทัดสอง")


def test_inline_answers_and_prose_are_not_folded() -> None:
    for body in (
        "> What is your ID?\n1234\n> And your phone?\n0812345678",
        "On Monday I wrote:\nplease renew my licence.\nThanks",
        "เมื่อวานผมเขียนว่า:\nขอต่อใบอนุญาต",
    ):
        parsed = parse_email(mail("From: a@example.org\nContent-Type: text/plain; charset=utf-8",
                                  body))
        assert parsed.body_text == body
        assert parsed.body_quoted == ""


# --- attachments ---------------------------------------------------------------------------
def _with_attachment(ctype: str, filename: str, payload: bytes, extra: str = "") -> bytes:
    encoded = base64.encodebytes(payload).decode()
    return mail(
        'From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="m"',
        "--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n"
        f"--m\r\nContent-Type: {ctype}; name=\"{filename}\"\r\n"
        f"Content-Disposition: attachment; filename=\"{filename}\"\r\n{extra}"
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}--m--\r\n",
    )


def test_allowed_attachment_is_kept_and_refused_ones_keep_metadata() -> None:
    pdf = b"%PDF-1.4 test" * 10
    ok = parse_email(_with_attachment("application/pdf", "คำร้อง.pdf", pdf))
    assert ok.attachments[0].content == pdf
    assert ok.attachments[0].filename == "คำร้อง.pdf"
    assert ok.attachments[0].rejected_reason is None

    exe = parse_email(_with_attachment("application/octet-stream", "invoice.pdf.exe", b"MZ"))
    assert exe.attachments[0].content is None
    assert "not accepted" in (exe.attachments[0].rejected_reason or "")

    small = ParseLimits(max_attachment_bytes=50)
    big = parse_email(_with_attachment("application/pdf", "big.pdf", pdf), small)
    assert big.attachments[0].content is None and big.attachments[0].size == len(pdf)
    assert "larger than 50" in (big.attachments[0].rejected_reason or "")


def test_encoded_thai_filename_and_path_traversal() -> None:
    word = b64_word("สำเนาบัตร.jpg", "utf-8")
    parsed = parse_email(_with_attachment("image/jpeg", word, b"\xff\xd8\xff"))
    assert parsed.attachments[0].filename == "สำเนาบัตร.jpg"
    evil = parse_email(_with_attachment("image/png", "../../etc/passwd.png", b"\x89PNG"))
    assert evil.attachments[0].filename == "passwd.png"


def test_inline_image_has_content_id() -> None:
    raw = _with_attachment("image/png", "logo.png", b"\x89PNG", "Content-ID: <logo@x>\r\n")
    raw = raw.replace(b"Content-Disposition: attachment", b"Content-Disposition: inline")
    att = parse_email(raw).attachments[0]
    assert att.inline and att.content_id == "logo@x" and att.content == b"\x89PNG"


# --- classification ------------------------------------------------------------------------
def test_classification() -> None:
    base = "From: someone@example.org\nTo: help@onestop.go.th\n"
    expectations = {
        "Auto-Submitted: auto-replied\nSubject: hi": "auto_reply",
        "Auto-Submitted: no\nSubject: hi": "personal",
        "X-Autoreply: yes\nSubject: hi": "auto_reply",
        "X-Autorespond: yes\nSubject: hi": "auto_reply",
        "Precedence: bulk\nSubject: news": "auto_reply",
        "Precedence: junk\nSubject: news": "auto_reply",
        "Subject: Out of Office: back Monday": "auto_reply",
        "Subject: Automatic reply: your message": "auto_reply",
        "Subject: ตอบกลับอัตโนมัติ: ไม่อยู่": "auto_reply",
        "List-Id: <news.example.org>\nSubject: news": "list",
        "List-Unsubscribe: <mailto:u@example.org>\nSubject: news": "list",
        "Precedence: list\nSubject: news": "list",
        "X-Failed-Recipients: x@example.org\nSubject: oops": "bounce",
        "Subject: hello": "personal",
    }
    for headers, kind in expectations.items():
        parsed = parse_email(mail(base + headers))
        assert parsed.kind == kind, (headers, parsed.kind, parsed.kind_reasons)
        assert should_acknowledge(parsed) == (kind == "personal")


def test_dsn_and_mailer_daemon_are_bounces() -> None:
    dsn = mail(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\nSubject: Undelivered Mail\n"
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; '
        'boundary="r"',
        "--r\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--r\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: help\r\n--r--\r\n",
    )
    parsed = parse_email(dsn)
    assert parsed.kind == "bounce"
    assert "multipart/report; report-type=delivery-status" in parsed.kind_reasons
    assert "sent by MAILER-DAEMON" in parsed.kind_reasons
    assert {a.content_type for a in parsed.attachments} == {
        "message/delivery-status", "text/rfc822-headers"}
    assert not should_acknowledge(parsed)


def test_own_address_is_never_acknowledged() -> None:
    parsed = parse_email(mail("From: help@onestop.go.th\nSubject: loop?"))
    assert not should_acknowledge(parsed, frozenset({"help@onestop.go.th"}))
