"""The inert-text rule: every trigger broken, nothing else touched, idempotent; tags and names too."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tobs_sync.markdown import ZWSP, escape_inline
from tobs_sync.names import (
    _BREAK_AFTER,
    _FENCE_CHARS,
    _SEPARATED,
    _TEMPLATER_AFTER,
    FORBIDDEN_CHARS,
    RESERVED_NAMES,
    _is_ignorable,
    inert_markdown,
    inert_text,
    inert_value,
    live_triggers,
    numbered_name,
    sanitize_component,
    sanitize_filename,
    tag_segment,
)
from tobs_sync.render import wikilink

LOOKALIKES = {"\u02cb": "`", "\u02dc": "~"}

# Text made mostly of the characters triggers are built from, so that examples hit them often.
TRIGGER_PIECES = [
    *"<%>[]!:`~#=$-_*+/?() \t\n\r\x01",
    "INPUT[", "view[", "BUTTON[", "$=", "<%*", "-%>", "_%>", "![[", "]]", "%%", "::", "```", "~~~",
    ZWSP, "\u2060", "\u00ad", "\u02cb", "\u02dc", "a", "Z", "é", "ß", "1", "🌱",
]
trigger_heavy = st.lists(st.sampled_from(TRIGGER_PIECES), max_size=40).map("".join)
any_text = st.one_of(trigger_heavy, st.text(max_size=60))


def restored(text: str) -> str:
    """``text`` without separators and with lookalikes turned back."""
    return "".join(LOOKALIKES.get(ch, ch) for ch in text.replace(ZWSP, ""))


@given(any_text)
def test_inert_text_leaves_no_live_trigger(text: str) -> None:
    assert live_triggers(inert_text(text)) == []


@given(any_text)
def test_inert_text_is_idempotent(text: str) -> None:
    once = inert_text(text)
    assert inert_text(once) == once


@given(any_text)
def test_text_without_triggers_is_unchanged(text: str) -> None:
    if not live_triggers(text):
        assert inert_text(text) == text
    else:
        assert inert_text(text) != text


@given(any_text)
def test_inert_text_only_adds_separators_and_swaps_fence_characters(text: str) -> None:
    assert restored(inert_text(text)) == restored(text)


@pytest.mark.parametrize(
    ("hostile", "inert"),
    [
        ("Mallory <%* app.vault.create('x.md','x') %>", "Mallory <\u200b%* app.vault.create('x.md','x') %\u200b>"),
        ("<% tp.system.clipboard() %>", "<\u200b% tp.system.clipboard() %\u200b>"),
        ("<%+ x -%> <%- y _%> <%_ z %>", "<\u200b%+ x -%\u200b> <\u200b%- y _%\u200b> <\u200b%_ z %\u200b>"),
        ("[[Secret]] ![[pwned.png]]", "[\u200b[Secret]\u200b] !\u200b[\u200b[pwned.png]\u200b]"),
        ("![x](https://tracker.example/p.png)", "!\u200b[x](https://tracker.example/p.png)"),
        ("a %%hidden%% b", "a %\u200b%hidden%\u200b% b"),
        ("`= this.file.name` `$= dv.el('b', 1)`", "`\u200b= this.file.name` `\u200b$= dv.el('b', 1)`"),
        ("` =1` `INPUT[toggle:x]` `view[{x}]`", "`\u200b =1` `\u200bINPUT[toggle:x]` `\u200bview[{x}]`"),
        ("rating:: 5", "rating:\u200b: 5"),
        ("#tag #2024-05 and # not #5", "#\u200btag #\u200b2024-05 and # not #5"),
        ("<script>x</script> <!-- c --> <https://x.example>", "<\u200bscript>x<\u200b/script> <\u200b!-- c --> <\u200bhttps://x.example>"),
        ("```dataviewjs", "``\u02cbdataviewjs"),
        ("~~~~~~~query", "~~\u02dc~~\u02dc~query"),
    ],
)
def test_each_trigger_is_broken_visibly_minimally(hostile: str, inert: str) -> None:
    assert inert_text(hostile) == inert
    assert live_triggers(hostile) != []


@pytest.mark.parametrize(
    "plain",
    [
        "Allotment Crew", "a < b, 50 % > 3", "C# devs", "Room #5", "x = 1", "1:2", "`code`", "[link](x)",
        "~~strike~~", "Ünïcödé 🌱",
    ],
)
def test_ordinary_text_is_left_alone(plain: str) -> None:
    assert inert_text(plain) == plain


def reference_break_fences(text: str) -> str:
    """Every third backtick or tilde of a run swapped, character by character (no shortcut)."""
    chars, run_char, run = list(text), "", 0
    for index, ch in enumerate(text):
        if _is_ignorable(ch):
            continue
        run = run + 1 if ch == run_char else 1
        run_char = ch
        if ch in _FENCE_CHARS and run == 3:
            chars[index] = _FENCE_CHARS[ch]
            run_char, run = "", 0
    return "".join(chars)


@given(any_text)
def test_inert_text_and_inert_markdown_shortcuts_change_what_the_rules_change(text: str) -> None:
    # text without a trigger is returned after one search; fences are scanned only with three of a kind
    assert inert_text(text) == _BREAK_AFTER.sub(_SEPARATED, reference_break_fences(text))
    assert inert_markdown(text) == _TEMPLATER_AFTER.sub(_SEPARATED, text)


def test_inert_value_reaches_every_string_in_a_structure() -> None:
    value = {"<%k%>": ["[[a]]", 3, ("%%x%%",)], "n": None}
    assert inert_value(value) == {inert_text("<%k%>"): [inert_text("[[a]]"), 3, [inert_text("%%x%%")]], "n": None}


@given(any_text)
def test_escaped_markdown_made_inert_has_no_templater_tag(text: str) -> None:
    body = inert_markdown(escape_inline(text))
    assert "<%" not in body and "%>" not in body
    assert body.replace(ZWSP, "") == escape_inline(text).replace(ZWSP, "")


def test_escape_inline_alone_leaves_a_templater_closing_tag() -> None:
    # Why bodies need inert_markdown: Templater ignores the Markdown escape in "\%>".
    assert "%>" in escape_inline("-%>")
    assert "%>" not in inert_markdown(escape_inline("-%>"))


@given(any_text)
def test_tag_segments_are_valid_obsidian_tags(text: str) -> None:
    segment = tag_segment(text, fallback="chat-1")
    assert re.fullmatch(r"[^\s/#]+", segment)
    assert not segment.isdigit()
    assert not segment.startswith(("-", "_")) and not segment.endswith(("-", "_"))
    assert live_triggers("#" + segment) == ["#" + segment[0]]  # a tag, and nothing else
    assert live_triggers(segment) == []
    assert tag_segment(segment, fallback="chat-1") == segment


@given(any_text)
def test_names_made_from_inert_text_hold_no_trigger(text: str) -> None:
    assert live_triggers(sanitize_component(inert_text(text))) == []
    assert live_triggers(sanitize_filename(inert_text(text), fallback_stem="file")) == []


@given(any_text)
def test_wikilink_labels_are_inert_and_cannot_break_the_link(text: str) -> None:
    link = wikilink("Telegram/Chat/Chat.md", "label " + text)
    assert link.startswith("[[Telegram/Chat/Chat|") and link.endswith("]]")
    label = link.removeprefix("[[Telegram/Chat/Chat|").removesuffix("]]")
    assert not set(label) & set("[]|#^\n")
    assert live_triggers(label) == []


def test_numbered_name_puts_the_number_before_the_extension_and_cuts_the_stem_to_fit() -> None:
    assert numbered_name("Note.md", 2) == "Note 2.md"
    assert numbered_name("v2 final", 3) == "v2 final 3"
    cut = numbered_name("Огород" * 40 + ".md", 12, max_bytes=30)
    assert cut.endswith(" 12.md") and len(cut.encode("utf-8")) <= 30
    assert numbered_name("👍🏽.md", 2, max_bytes=7) == "_ 2.md", "no half of an emoji is kept"


def is_reserved(name: str) -> bool:
    return name.split(".", 1)[0].rstrip(" ").upper() in RESERVED_NAMES



# --- sanitising --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CON", "CON_"),
        ("con.md", "con_.md"),
        ("NUL.txt", "NUL_.txt"),
        ("lpt\u00b9", "lpt\u00b9_"),
        ("a/b:c*?", "a-b-c"),
        ("[[x]]", "x"),
        ("#tag^id", "tag-id"),
        ("Re: hello", "Re - hello"),
        ("name. ", "name"),
        ("name .", "name"),
        ("a\u202egpj.exe", "agpj.exe"),
        ("a\x00b\x1fc\x7fd", "abcd"),
        ("line\none\t two", "line one two"),
        ("Cafe\u0301", "Caf\u00e9"),
    ],
)
def test_sanitize_component_makes_names_safe_everywhere(raw: str, expected: str) -> None:
    assert sanitize_component(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "...", " . . ", "\u202e\u200b", "???", "[[]]"])
def test_sanitize_component_falls_back_when_nothing_is_left(raw: str) -> None:
    assert sanitize_component(raw) == "untitled"
    assert sanitize_component(raw, fallback="chat 42") == "chat 42"


def test_sanitized_path_traversal_is_one_harmless_component() -> None:
    name = sanitize_component("../../.obsidian/x")
    assert "/" not in name and "\\" not in name
    assert not name.startswith(".")
    assert name not in ("..", ".")


def test_sanitize_truncates_emoji_at_character_boundary() -> None:
    name = sanitize_component("\U0001f600" * 100)  # 400 bytes
    encoded = name.encode("utf-8")
    assert 0 < len(encoded) <= 200
    assert encoded.decode("utf-8") == name


def test_sanitize_truncation_keeps_combining_marks_with_their_base() -> None:
    name = sanitize_component("q\u0301" * 100)  # q + acute has no precomposed form
    assert len(name.encode("utf-8")) <= 200
    assert name.endswith("q\u0301")


def test_sanitize_truncation_does_not_split_zwj_sequences_or_flags() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    name = sanitize_component(family * 20)
    assert name == family * (200 // len(family.encode("utf-8")))
    flags = sanitize_component("\U0001f1e9\U0001f1ea" * 20, max_bytes=30)
    assert flags == "\U0001f1e9\U0001f1ea" * 3


def test_truncation_cannot_produce_a_reserved_name() -> None:
    assert sanitize_component("CONSOLE", max_bytes=3) == "CO_"
    assert sanitize_component("con.abc", max_bytes=4) == "con_"


def test_sanitize_filename_keeps_extension_when_truncating() -> None:
    name = sanitize_filename("x" * 500 + ".JPEG", fallback_stem="photo")
    assert name.endswith(".jpeg")
    assert len(name.encode("utf-8")) == 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("con.md", "con_.md"),
        ("NUL.TXT", "NUL_.txt"),
        (".jpg", "photo.jpg"),
        ("report.PDF", "report.pdf"),
        ("a?.mp4", "a.mp4"),
        ("notes.v2 final", "notes.v2 final"),
        ("archive.verylongextension", "archive.verylongextension"),
        ("../../.obsidian/x", "-.obsidian-x"),
        ("", "photo"),
    ],
)
def test_sanitize_filename_splits_stem_and_extension(raw: str, expected: str) -> None:
    assert sanitize_filename(raw, fallback_stem="photo") == expected


def test_sanitize_filename_is_stable_when_truncation_exposes_an_extension() -> None:
    name = sanitize_filename("x..ab cd", fallback_stem="f", max_bytes=5)  # "x..ab", then "x" + "ab"
    assert name == "x.ab"
    assert sanitize_filename(name, fallback_stem="f", max_bytes=5) == name


_NASTY = st.sampled_from(
    list(FORBIDDEN_CHARS) + list(" .-_\t\n\x00\x7f\u202e\u2066\u200b\u200d\u0301\u00a0")
    + ["CON", "nul", "COM\u00b9", "lpt9", "\U0001f1e9", "\U0001f3fb", "\U0001f600"]
)
_TEXT = st.lists(st.one_of(_NASTY, st.characters(exclude_categories=())), max_size=80).map("".join)


def assert_safe_name(name: str, max_bytes: int) -> None:
    assert name
    assert len(name.encode("utf-8")) <= max_bytes
    assert not FORBIDDEN_CHARS & set(name)
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name)
    assert not name.startswith(".")
    assert not name.endswith((" ", "."))
    assert "  " not in name
    assert not is_reserved(name)
    assert unicodedata.normalize("NFC", name) == name


@given(_TEXT, st.integers(min_value=1, max_value=40) | st.just(200))
def test_sanitize_component_always_yields_a_safe_stable_name(raw: str, max_bytes: int) -> None:
    name = sanitize_component(raw, max_bytes=max_bytes)
    assert_safe_name(name, max_bytes)
    assert sanitize_component(name, max_bytes=max_bytes) == name


_EXTENSIONS = st.sampled_from(["jpg", "MP4", "md", "tar.gz", "we ird", "x" * 12])


@given(_TEXT, _EXTENSIONS, st.integers(16, 200))
def test_sanitize_filename_always_yields_a_safe_stable_name(
    stem: str, extension: str, max_bytes: int
) -> None:
    name = sanitize_filename(f"{stem}.{extension}", fallback_stem="file", max_bytes=max_bytes)
    assert_safe_name(name, max_bytes)
    if extension in ("jpg", "MP4", "md", "tar.gz"):
        assert name.endswith("." + extension.lower().rpartition(".")[2])
    assert sanitize_filename(name, fallback_stem="file", max_bytes=max_bytes) == name


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_plain_ascii_names_take_a_shortcut_that_changes_nothing(name: str) -> None:
    from tobs_sync.names import _visible

    if name.isascii() and name.isprintable():
        assert unicodedata.normalize("NFC", "".join(map(_visible, name))) == name


def test_sanitize_component_remembers_names_it_cleaned() -> None:
    sanitize_component.cache_clear()
    assert sanitize_component("Family: Trips/Plans") == sanitize_component("Family: Trips/Plans")
    assert sanitize_component.cache_info().hits == 1
