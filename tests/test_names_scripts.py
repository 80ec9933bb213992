# ruff: noqa: RUF001 - letters of other scripts that look like Latin ones are the point here
"""Names in every script: tags and file names keep letters with their combining marks.

Property tests draw text from many scripts (Arabic with harakat, Devanagari and Bengali with vowel
signs and virama, Thai, Hebrew with points, Cyrillic, Greek, CJK, Hangul, Latin with combining
accents), with the zero-width (non-)joiners Persian and Indic text use inside words, spaces and
punctuation between words.
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from tobs_sync.model import Chat
from tobs_sync.names import live_triggers, sanitize_component, tag_segment
from tobs_sync.views import chat_tag

SCRIPTS = {
    "arabic": "\u0627\u0628\u062a\u062b\u062c\u062d\u062e\u062f\u0631\u0633"
    "\u0639\u0642\u0644\u0645\u0646\u0647\u0648\u064a",
    "arabic_marks": "\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0670",
    "devanagari": "\u0915\u0916\u0917\u0924\u0926\u0928\u092a\u092e\u092f\u0930"
    "\u0932\u0935\u0938\u0939\u0905\u0906",
    "devanagari_marks": "\u093e\u093f\u0940\u0941\u0942\u0947\u0948\u094b\u094c\u094d\u0902\u0901",
    "bengali": "\u0995\u0996\u0997\u09a4\u09a6\u09a8\u09aa\u09ae\u09b0\u09b2\u09b8\u09b9",
    "bengali_marks": "\u09be\u09bf\u09c0\u09c1\u09c7\u09cb\u09cd\u0982",
    "thai": "\u0e01\u0e02\u0e04\u0e07\u0e08\u0e14\u0e15\u0e19\u0e1a\u0e21\u0e22\u0e23\u0e25\u0e27\u0e2a\u0e2d",
    "thai_marks": "\u0e31\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e47\u0e48\u0e49",
    "hebrew": "\u05d0\u05d1\u05d2\u05d3\u05d4\u05d5\u05d6\u05d7\u05d8\u05d9\u05db"
    "\u05dc\u05de\u05e0\u05e1\u05e2\u05e4\u05e6\u05e7\u05e8\u05e9\u05ea",
    "hebrew_marks": "\u05b0\u05b4\u05b7\u05b8\u05bc\u05c1",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЁЖЗ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ",
    "cjk": "中文频道新闻日本語漢字한국어채널",
    "latin": "abcdefghijklmnopqrstuvwxyzABCXYZ",
    "latin_marks": "\u0300\u0301\u0302\u0303\u0308\u030a\u0327",
}
JOINERS = "\u200c\u200d"
SEPARATORS = " ,.!?:;()[]#/\\'\"«»—-"
OBSIDIAN_TAG_STOP = re.compile(r"[\u2000-\u206f\u2e00-\u2e7f'!\"#$%&()*+,.:;<=>?@^`{|}~\[\]\\\s/]")


@st.composite
def word(draw: st.DrawFn) -> str:
    """A word of one script: letters, each maybe followed by marks of that script, maybe joiners."""
    script = draw(st.sampled_from(["arabic", "devanagari", "bengali", "thai", "hebrew", "cyrillic", "greek",
                                   "cjk", "latin"]))
    letters, marks = SCRIPTS[script], SCRIPTS.get(f"{script}_marks", "")
    pieces = []
    for _ in range(draw(st.integers(1, 6))):
        piece = draw(st.sampled_from(letters))
        if marks:
            piece += "".join(draw(st.lists(st.sampled_from(marks), max_size=2)))
        if draw(st.integers(0, 5)) == 0:
            piece += draw(st.sampled_from(JOINERS))
        pieces.append(piece)
    return "".join(pieces)


titles = st.lists(word(), min_size=1, max_size=4).flatmap(
    lambda words: st.lists(st.text(SEPARATORS, min_size=1, max_size=2), min_size=len(words), max_size=len(words))
    .map(lambda seps: "".join(w + s for w, s in zip(words, seps, strict=True)))
)


def tag_word(text: str) -> str:
    """What a word becomes in a tag: NFC, case-folded, without joiners."""
    return unicodedata.normalize("NFC", text).casefold().replace("\u200c", "").replace("\u200d", "")


@settings(max_examples=60, deadline=None)
@given(titles)
def test_a_tag_keeps_every_word_whole_with_its_marks_and_follows_obsidian_rules(title: str) -> None:
    segment = tag_segment(title, fallback="chat-1")
    assert not OBSIDIAN_TAG_STOP.search(segment), segment
    assert not segment.isdigit() and segment.strip("-_") == segment
    assert live_triggers("#" + segment) == ["#" + segment[0]]  # one tag, nothing else
    assert not unicodedata.category(segment[0]).startswith("M")  # no mark without its letter
    words = [w for w in re.split(f"[{re.escape(SEPARATORS)}]+", title) if w]
    for original in words:
        assert tag_word(original) in segment.split("-"), (original, segment)
    assert tag_segment(segment, fallback="chat-1") == segment


@settings(max_examples=60, deadline=None)
@given(titles)
def test_a_folder_name_keeps_every_word_whole_with_its_marks(title: str) -> None:
    name = sanitize_component(title)
    assert name == unicodedata.normalize("NFC", name)
    for original in re.split(r"[\s\\/:*?\"<>|#^\[\]%`]+", title):
        cleaned = unicodedata.normalize("NFC", original).strip(" .\u200c\u200d")
        if cleaned and cleaned.strip("-"):
            assert cleaned.strip("-") in name, (original, name)
    assert sanitize_component(name) == name


@settings(max_examples=60, deadline=None)
@given(word(), st.integers(80, 200))  # a word here is at most 78 bytes
def test_a_cut_name_never_leaves_a_mark_without_its_letter(text: str, max_bytes: int) -> None:
    long_title = " ".join([text] * 40)
    name = sanitize_component(long_title, max_bytes=max_bytes)
    assert len(name.encode("utf-8")) <= max_bytes
    assert unicodedata.normalize("NFC", long_title).startswith(name)
    follower = unicodedata.normalize("NFC", long_title)[len(name):][:1]
    assert not follower or not unicodedata.category(follower).startswith("M")


def test_tags_of_real_titles_in_arabic_devanagari_persian_and_russian() -> None:
    assert chat_tag(Chat(-1, "مَدْرَسَة العَرَبِيَّة")) == "telegram/مَدْرَسَة-العَرَبِيَّة"
    assert chat_tag(Chat(-1, "हिन्दी समाचार")) == "telegram/हिन्दी-समाचार"
    assert chat_tag(Chat(-1, "کانال می\u200cخواهم")) == "telegram/کانال-میخواهم"  # ZWNJ dropped, not a split
    assert chat_tag(Chat(-1, "क्\u200dष")) == "telegram/क्ष"
    assert chat_tag(Chat(-1, "\u0301Новости канала")) == "telegram/новости-канала"
