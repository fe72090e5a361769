"""Text analysis shared by the search backends: clean, normalise, fold, segment, stem.

Thai is written without spaces between words, so it is segmented with PyThaiNLP's ``newmm``
dictionary segmenter. Citizens often drop or misplace tone marks ("ตอ่อายุ", "ตองใช้"), so the
text is *folded* (tone marks and other above-line signs removed) **before** segmentation, and
segmentation uses a dictionary folded the same way: an article and a query differ only in
their tone marks end up with identical tokens. English words are stemmed with Snowball.

The same functions run at index time and at query time; that symmetry is the whole point.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from html.parser import HTMLParser

import snowballstemmer
from pythainlp.corpus import thai_words
from pythainlp.tokenize import word_tokenize
from pythainlp.util import Trie
from pythainlp.util import normalize as thai_normalize

# Queries longer than this are cut before analysis: nobody types more, and analysis cost grows
# with length (a pasted e-mail must not stall the search).
MAX_QUERY_CHARS = 300
MAX_QUERY_TOKENS = 24

# Thai signs that citizens drop or misplace most: maitaikhu, the four tone marks, thanthakhat,
# nikhahit, yamakkan. Removing them is the "tone-mark-free variant" of every token.
_FOLD_TABLE = {code: None for code in range(0x0E47, 0x0E4F)}
_FOLD_TABLE.update({0x0E46: None})  # ๆ (repetition mark) carries no meaning for search
_THAI_DIGITS = {0x0E50 + i: ord("0") + i for i in range(10)}

_RUN = re.compile(r"[\u0e00-\u0e7f]+|[a-z0-9]+")
_THAI = re.compile(r"[\u0e00-\u0e7f]")
_ABBREVIATION_DOT = re.compile(r"([\u0e01-\u0e2e])\.")

# Question words and particles: they are in almost every citizen question and in no answer.
# (PyThaiNLP's stop-word list is far too broad here: it drops "ใหม่", "เข้า", "ออก", "เปิด"…,
# which are exactly the words that tell "move in" from "move out".)
_THAI_STOPWORDS_RAW = """
ครับ ค่ะ คะ คับ ครับผม จ้า จ้ะ นะ นะคะ นะครับ น่ะ ค่า ฮะ ละ ล่ะ หรอ เหรอ ไหม มั้ย มั๊ย ป่าว เปล่า
อะไร อะไรบ้าง ยังไง อย่างไร ไง ทำไง ทำยังไง ได้ไหม ได้มั้ย บ้าง หน่อย ด้วย ที่ไหน ตรงไหน ไหน
เท่าไหร่ เท่าไร กี่ เมื่อไหร่ เมื่อไร ตอนไหน ต้อง ควร จะ ได้ ให้ ของ ที่ และ หรือ กับ แล้ว ก็ คือ
เป็น มี ใน จาก ถ้า หาก ว่า ผม ดิฉัน ฉัน หนู เรา พี่ ขอ อยาก ทราบ สอบถาม ถาม รบกวน ช่วย บอก
การ ความ แบบ นี้ นั้น โดย ไป มา อยู่ ยัง เลย จึง ซึ่ง อัน ต่างๆ คุณ ท่าน
"""
_ENGLISH_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "did",
        "for",
        "from",
        "get",
        "got",
        "have",
        "has",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "need",
        "needs",
        "of",
        "on",
        "or",
        "our",
        "please",
        "should",
        "so",
        "the",
        "their",
        "them",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "hi",
        "hello",
        "thanks",
        "thank",
        "want",
        "wanna",
        "much",
        "many",
        "any",
        "some",
    ]
)

_stemmer = snowballstemmer.stemmer("english")


def fold(text: str) -> str:
    """Return ``text`` without Thai tone marks and above-line signs, Thai digits as 0-9."""
    return text.translate(_FOLD_TABLE).translate(_THAI_DIGITS)


def strip_html(text: str) -> str:
    """Return the visible text of ``text``: tags dropped, entities decoded, scripts removed.

    Articles may contain HTML pasted from agency web pages; it is indexed as text, never
    interpreted, so "<b>บัตร</b>" is found by "บัตร" and "<script>" content is not searchable.
    """
    if "<" not in text and "&" not in text:
        return text
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return html.unescape(" ".join(parser.parts))


def normalise(text: str) -> str:
    """Clean ``text`` for analysis: HTML to text, NFKC, lower case, Thai spelling normalised."""
    text = unicodedata.normalize("NFKC", strip_html(text)).lower()
    if _THAI.search(text):
        # Fixes duplicated vowels/marks and "เเ" typed for "แ", common in typed Thai.
        text = thai_normalize(text)
        # Abbreviations are written "ภ.ง.ด.90" and "ภงด90" alike: drop a dot after a consonant.
        text = _ABBREVIATION_DOT.sub(r"\1", text)
    return text


def analyse(text: str, *, stopwords: bool = False) -> list[str]:
    """Return the search tokens of ``text`` (folded Thai words, stemmed English words).

    ``stopwords=True`` drops question words and particles (used for queries, where they are
    noise; articles keep them so that the statistics of the index stay honest).
    """
    tokens: list[str] = []
    for run in _RUN.findall(_clean(text)):
        if _THAI.match(run):
            words: Iterable[str] = _segment(_thai_run(run))
        else:
            words = (_stem(run),)
        for word in words:
            if stopwords and word in _stopwords():
                continue
            tokens.append(word)
    return tokens


def analyse_query(query: str) -> list[str]:
    """Return the distinct tokens of a citizen's query, truncated to a safe size, in order."""
    tokens = analyse(query[:MAX_QUERY_CHARS], stopwords=True)
    if not tokens:
        # A query made only of stop words ("ทำยังไง") still deserves a search.
        tokens = analyse(query[:MAX_QUERY_CHARS])
    return list(dict.fromkeys(tokens))[:MAX_QUERY_TOKENS]


def trigrams(text: str) -> list[str]:
    """Return the character trigrams of the folded text, used for typo-tolerant matching.

    Thai runs are taken without word boundaries (a misspelt word breaks segmentation, but
    most of its trigrams survive); English words are padded so that short words have grams.
    """
    grams: list[str] = []
    for run in _RUN.findall(_clean(text)):
        run = _thai_run(run) if _THAI.match(run) else f"_{run}_"
        if not run:
            continue
        grams.extend(run[i : i + 3] for i in range(max(len(run) - 2, 1)))
    return grams


def query_trigrams(query: str, limit: int = 60) -> list[str]:
    """Return the distinct trigrams of a query, at most ``limit`` of them.

    Taken from the unsegmented text, as at index time: a misspelt word is exactly what
    segmentation gets wrong. (Stop-word trigrams are common; the search uses the rarest.)
    """
    return list(dict.fromkeys(trigrams(query[:MAX_QUERY_CHARS])))[:limit]


def warm_up() -> None:
    """Load the dictionary now, so that the first citizen does not wait for it (~0.5 s)."""
    _folded_dictionary()
    _segment("บัตรประชาชน")


def _clean(text: str) -> str:
    # The whole-text part of normalise(); Thai spelling is normalised run by run (cached).
    text = unicodedata.normalize("NFKC", strip_html(text)).lower()
    if _THAI.search(text):
        text = _ABBREVIATION_DOT.sub(r"\1", text.translate(_THAI_DIGITS))
    return text


@lru_cache(maxsize=131072)
def _thai_run(run: str) -> str:
    # PyThaiNLP's normalize is a chain of regular expressions: the costliest step of
    # indexing. Thai runs (text between spaces and punctuation) repeat a great deal, so
    # each is normalised and folded once.
    return fold(thai_normalize(run))


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    if word.isdigit() or len(word) < 3:
        return word
    return str(_stemmer.stemWord(word))


@lru_cache(maxsize=65536)
def _segment(run: str) -> tuple[str, ...]:
    # Cached: article text repeats phrases ("สำนักทะเบียนอำเภอ", "บัตรประจำตัวประชาชน")
    # and queries repeat far more.
    words = word_tokenize(
        run, custom_dict=_folded_dictionary(), engine="newmm", keep_whitespace=False
    )
    return tuple(w for w in words if w.strip())


@lru_cache(maxsize=1)
def _folded_dictionary() -> Trie:
    # PyThaiNLP's word list is already normalised; folding is all it needs (and is fast).
    words = {fold(w) for w in thai_words()}
    words.update(fold(w) for w in _DOMAIN_WORDS.split())
    return Trie(w for w in words if w)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    thai = {fold(w) for w in _THAI_STOPWORDS_RAW.split()}
    return frozenset(thai | _ENGLISH_STOPWORDS)


# Words of the service catalogue that PyThaiNLP's general dictionary does not know, so that
# they are kept whole instead of being cut into meaningless syllables.
_DOMAIN_WORDS = """
ปชช ภงด ภ.ง.ด อบต อบจ กทม สปสช พม ศูนย์ดำรงธรรม ทะเบียนราษฎร์ เบี้ยยังชีพ เบี้ยคนแก่
บัตรคนจน บัตรสวัสดิการ ใบสั่ง ค่าปรับ ผู้พิการ คนพิการ ไร้ที่พึ่ง ไลน์ แอป แอพ ออนไลน์ อีเมล
ดีเอสไอ ไทยดี ทางรัฐ พร้อมเพย์ คิวอาร์ ทะเบียนพาณิชย์ หนังสือมอบอำนาจ
"""


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, skipping scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)
