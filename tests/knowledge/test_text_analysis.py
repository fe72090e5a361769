"""Text analysis shared by both backends: folding, segmentation, stemming, safety."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge.search import snippet_of
from knowledge.text import (
    MAX_QUERY_TOKENS,
    analyse,
    analyse_query,
    fold,
    strip_html,
    trigrams,
)


def test_tone_marks_do_not_change_the_tokens() -> None:
    assert analyse("ต่ออายุบัตรประชาชน") == analyse("ตออายุบัตรประชาชน")
    assert analyse("ค่าปรับ") == analyse("คาปรับ")


def test_a_misplaced_tone_mark_is_forgiven() -> None:
    # "ต่อ" typed as "ตอ่" (mark after the vowel): folding removes the mark either way.
    assert analyse("ตอ่อายุ") == analyse("ต่ออายุ")


def test_thai_digits_and_abbreviation_dots() -> None:
    assert fold("๑๒๓") == "123"
    assert analyse("ภ.ง.ด.90") == analyse("ภงด 90")


def test_english_is_stemmed_and_lowercased() -> None:
    assert analyse("Renewing Registrations") == ["renew", "registr"]


def test_question_words_are_dropped_from_queries_only() -> None:
    assert "อะไร" not in analyse_query("ต้องใช้เอกสารอะไรบ้าง")
    assert "how" not in analyse_query("how do I renew")
    assert analyse_query("ทำยังไง")  # only stop words: still searched


def test_move_in_and_move_out_stay_distinct() -> None:
    assert analyse_query("ย้ายเข้า") != analyse_query("ย้ายออก")


def test_html_is_text() -> None:
    assert strip_html("<p>สวัสดี <b>ครับ</b></p><script>x()</script>") == "สวัสดี  ครับ"
    assert strip_html("a &amp; b") == "a & b"
    assert "<" not in snippet_of("", "<h1>หัวข้อ</h1><p>เนื้อหา</p>")


def test_trigrams_cover_thai_and_english() -> None:
    assert "บัต" in trigrams("บัตร")
    assert "_id" in trigrams("ID")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_query_analysis_never_fails_and_stays_small(text: str) -> None:
    tokens = analyse_query(text)
    assert len(tokens) <= MAX_QUERY_TOKENS
    assert all(token and " " not in token for token in tokens)
