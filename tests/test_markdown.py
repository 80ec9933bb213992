"""Tests of tobs_sync.markdown: Telegram text + entities -> safe Obsidian Markdown."""

from __future__ import annotations

import re
import string
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tobs_sync.markdown import (
    _ALWAYS_ESCAPED,
    _LINE_BREAK,
    _LINE_START_ESCAPED,
    _NEWLINES,
    _STYLES,
    ZWSP,
    _autolink,
    _is_punct,
    _is_space,
    _is_tag,
    _line_starts,
    _PieceCheck,
    _safe_url,
    code_block,
    code_span,
    escape_inline,
    escape_text,
    render_text,
)
from tobs_sync.model import Entity, EntityKind

LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Characters that must never appear unescaped in escaped plain text.
ACTIVE = set("\\`*_[]!#=~|$^%&<")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def ent(kind: str, offset: int, length: int, **extra: Any) -> Entity:
    return Entity(kind, offset, length, **extra)


def unescape(markdown: str) -> str:
    """Inverse of escape_text; fails on any active character left unescaped."""
    out: list[str] = []
    i = 0
    references = {"&lt;": "<", "&#32;": " ", "&#9;": "\t"}
    while i < len(markdown):
        ch = markdown[i]
        reference = next((r for r in references if markdown.startswith(r, i)), None)
        if reference is not None:
            out.append(references[reference])
            i += len(reference)
        elif ch == "\\":
            escaped = markdown[i + 1]
            assert escaped in string.punctuation, f"backslash before {escaped!r}"
            out.append(escaped)
            i += 2
        else:
            assert ch not in ACTIVE, f"unescaped {ch!r} at {i} in {markdown!r}"
            out.append(ch)
            i += 1
    return "".join(out)


def commonmark():
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable(["strikethrough", "table"])


HTML_STYLES = {"<b>": "strong", "<i>": "em", "<s>": "s", "<u>": "u", "<mark>": "mark"}


def styled_chars(markdown: str) -> list[tuple[str, frozenset[str]]]:
    """(character, styles) for each non-blank character CommonMark would display."""
    chars: list[tuple[str, frozenset[str]]] = []
    for token in commonmark().parse(markdown):
        assert token.type in ("paragraph_open", "paragraph_close", "inline"), token.type
        open_tags: list[str] = []
        for child in token.children or []:
            if child.type.endswith("_open"):
                open_tags.append(child.tag)
            elif child.type.endswith("_close"):
                open_tags.remove(child.tag)
            elif child.type == "html_inline" and child.content in HTML_STYLES:
                open_tags.append(HTML_STYLES[child.content])
            elif child.type == "html_inline":
                open_tags.remove(HTML_STYLES["<" + child.content[2:]])
            elif child.type in ("text", "code_inline"):
                chars.extend((c, frozenset(open_tags)) for c in child.content if not c.isspace())
    return chars


# -- UTF-16 offsets ------------------------------------------------------------------------------


def test_bold_after_emoji_uses_utf16_offsets() -> None:
    assert render_text("Hi 😀 bold", [ent("bold", 6, 4)]) == "Hi 😀 **bold**"


def test_entity_covering_an_emoji_keeps_it_whole() -> None:
    assert render_text("a 😀 b", [ent("bold", 2, 2)]) == "a **😀** b"


def test_boundary_inside_surrogate_pair_snaps_outward() -> None:
    assert render_text("a 😀 b", [ent("bold", 3, 1)]) == "a **😀** b"
    assert render_text("😀😀", [ent("italic", 1, 2)]) == "*😀😀*"


def test_zwj_family_emoji_is_covered_by_its_utf16_length() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"
    text = f"x {family} y"
    assert render_text(text, [ent("italic", 2, utf16_len(family))]) == f"x *{family}* y"
    assert render_text(text, [ent("bold", 2 + utf16_len(family) + 1, 1)]) == f"x {family} **y**"


def test_flag_emoji_counts_four_code_units() -> None:
    text = "🇺🇦 flag"
    assert render_text(text, [ent("bold", 0, 4), ent("italic", 5, 4)]) == "**🇺🇦** *flag*"


# -- styles --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("bold", "a **word** b"),
        ("italic", "a *word* b"),
        ("underline", "a <u>word</u> b"),
        ("strikethrough", "a ~~word~~ b"),
        ("spoiler", "a ==word== b"),
    ],
)
def test_each_style_maps_to_its_obsidian_marker(kind: str, expected: str) -> None:
    assert render_text("a word b", [ent(kind, 2, 4)]) == expected


def test_italic_nested_inside_bold() -> None:
    assert render_text("bold italic", [ent("bold", 0, 11), ent("italic", 5, 6)]) == "**bold *italic***"


def test_overlapping_styles_close_and_reopen_properly_nested() -> None:
    out = render_text("one two three", [ent("bold", 0, 7), ent("italic", 4, 9)])
    assert out == "**one *two*** *three*"
    styles = [sorted(s) for _, s in styled_chars(out)]
    assert styles == [["strong"]] * 3 + [["em", "strong"]] * 3 + [["em"]] * 5


def test_overlap_inside_a_word_falls_back_to_html_tags() -> None:
    out = render_text("abcdefgh", [ent("bold", 0, 5), ent("italic", 3, 5)])
    assert out == "**abc<i>de</i>**<i>fgh</i>"
    styles = [sorted(s) for _, s in styled_chars(out)]
    assert styles == [["strong"]] * 3 + [["em", "strong"]] * 2 + [["em"]] * 3


def test_out_of_order_entities_render_like_sorted_ones() -> None:
    entities = [ent("italic", 4, 3), ent("bold", 0, 3), ent("strikethrough", 8, 3)]
    assert render_text("one two six", entities) == "**one** *two* ~~six~~"
    assert render_text("one two six", entities[::-1]) == "**one** *two* ~~six~~"


@pytest.mark.parametrize(
    "entity",
    [
        ent("bold", -3, 2),
        ent("bold", 10, 5),
        ent("bold", 1, 0),
        ent("bold", 2, -1),
        ent("bold", 4, 1),
        ent("bold", -100, -5),
    ],
)
def test_invalid_entities_are_ignored(entity: Entity) -> None:
    assert render_text("text", [entity]) == "text"


def test_entities_reaching_past_the_text_are_clamped() -> None:
    assert render_text("text", [ent("bold", -3, 5), ent("italic", 2, 100)]) == "**te**<i>xt</i>"


def test_unknown_kind_renders_plain_escaped_text() -> None:
    assert render_text("#x *y*", [ent("sparkle", 0, 6)]) == "\\#x \\*y\\*"


def test_whitespace_at_span_edges_moves_outside_markers() -> None:
    assert render_text("a  bold  b", [ent("bold", 1, 8)]) == "a  **bold**  b"


def test_whitespace_only_span_gets_no_markers() -> None:
    assert render_text("a   b", [ent("bold", 1, 3), ent("italic", 2, 1)]) == "a   b"


def test_style_crossing_a_newline_is_closed_and_reopened() -> None:
    assert render_text("one\n\ntwo", [ent("bold", 0, 8)]) == "**one**\n\n**two**"


def test_adjacent_spans_of_one_style_merge() -> None:
    out = render_text("abcd", [ent("bold", 0, 2), ent("bold", 2, 2), ent("bold", 1, 2)])
    assert out == "**abcd**"
    assert "****" not in out


def test_escaped_content_inside_styles() -> None:
    assert render_text("a** b", [ent("bold", 0, 5)]) == "**a\\*\\* b**"


# -- code ----------------------------------------------------------------------------------------


def test_code_entity_fence_is_longer_than_backtick_runs_inside() -> None:
    assert render_text("a``b", [ent("code", 0, 4)]) == "```a``b```"


def test_code_span_pads_content_that_starts_with_a_backtick() -> None:
    assert render_text("`x`", [ent("code", 0, 3)]) == "`` `x` ``"
    assert code_span(" a ") == "`  a  `"


def test_code_entity_with_newline_becomes_one_span_per_line() -> None:
    assert render_text("ab\n# cd", [ent("code", 0, 7)]) == "`ab`\n`# cd`"


def test_adjacent_code_entities_merge_into_one_span() -> None:
    assert render_text("ab", [ent("code", 0, 1), ent("code", 1, 1)]) == "`ab`"


def test_code_span_of_nothing_is_empty() -> None:
    assert code_span("") == ""


@pytest.mark.parametrize(("language", "kept"), [("python", "python"), (" Rust ", "rust"), ("c++", "c++")])
def test_pre_keeps_an_allowlisted_language(language: str, kept: str) -> None:
    assert render_text("x = 1", [ent("pre", 0, 5, language=language)]) == f"```{kept}\nx = 1\n```"


@pytest.mark.parametrize(
    "language",
    ["dataview", "dataviewjs", "query", "tasks", "button", "js-engine", "run-python", "mermaid", "nope", ""],
)
def test_pre_drops_plugin_and_unknown_languages(language: str) -> None:
    assert render_text("x", [ent("pre", 0, 1, language=language)]) == "```\nx\n```"


def test_pre_starting_mid_line_gets_its_own_lines() -> None:
    out = render_text("before code after", [ent("pre", 7, 4, language="python")])
    assert out == "before \n```python\ncode\n```\n after"


def test_pre_fence_is_longer_than_backtick_runs_inside() -> None:
    assert code_block("a\n````\nb", None) == "`````\na\n````\nb\n`````"


def test_text_after_pre_on_the_same_line_is_escaped_as_a_line_start() -> None:
    assert render_text("x- item", [ent("pre", 0, 1)]) == "```\nx\n```\n\\- item"


# -- links, mentions, tags -----------------------------------------------------------------------


def test_text_link_percent_encodes_spaces_parentheses_and_angle_brackets() -> None:
    out = render_text("click", [ent("text_link", 0, 5, url="https://example.com/a b(c)<d>")])
    assert out == "[click](https://example.com/a%20b%28c%29%3Cd%3E)"


@pytest.mark.parametrize(
    "url",
    ["http://x.y", "https://x.y/?a=1&b=2", "mailto:a@b.c", "tg://resolve?domain=x", "tel:+123", "HTTPS://X"],
)
def test_text_link_with_allowed_scheme_is_a_link(url: str) -> None:
    assert render_text("go", [ent("text_link", 0, 2, url=url)]) == f"[go]({url})"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "obsidian://open?vault=x",
        "file:///etc/passwd",
        "data:text/html,x",
        "relative/note.md",
        "",
        None,
    ],
)
def test_text_link_with_unsafe_scheme_renders_only_the_label(url: str | None) -> None:
    assert render_text("[click]", [ent("text_link", 0, 7, url=url)]) == "\\[click\\]"


def test_text_link_label_keeps_inner_styles() -> None:
    out = render_text("see docs", [ent("text_link", 4, 4, url="https://d.x"), ent("bold", 0, 8)])
    assert out == "**see [docs](https://d.x)**"


def test_bare_url_becomes_an_autolink() -> None:
    assert render_text("see https://a.b/c?d=1", [ent("link", 4, 17)]) == "see <https://a.b/c?d=1>"


@pytest.mark.parametrize(
    "url", ["example.com", "ftp://x.y", "https://a.b/$x$", "https://a.b/[[x]]", "https://a b", "https://a/%%"]
)
def test_bare_url_that_is_not_plain_http_stays_escaped_text(url: str) -> None:
    assert render_text(url, [ent("link", 0, len(url))]) == escape_text(url)


def test_mention_stays_escaped_text() -> None:
    assert render_text("@bob_x hi", [ent("mention", 0, 6)]) == "@bob\\_x hi"


def test_mention_name_links_to_the_user_id() -> None:
    out = render_text("hi Alice", [ent("mention_name", 3, 5, user_id=42)])
    assert out == "hi [Alice](tg://user?id=42)"
    assert render_text("hi Alice", [ent("mention_name", 3, 5)]) == "hi Alice"


@pytest.mark.parametrize(("tag", "expected"), [("#tag", "#tag"), ("#a_b/c-d", "#a_b/c-d"), ("#тег", "#тег")])
def test_valid_hashtag_becomes_an_obsidian_tag(tag: str, expected: str) -> None:
    assert render_text(tag, [ent("hashtag", 0, len(tag))]) == expected


@pytest.mark.parametrize("tag", ["#1984", "#a.b", "#", "#a@bot"])
def test_invalid_hashtag_is_escaped_text(tag: str) -> None:
    assert render_text(tag, [ent("hashtag", 0, len(tag))]) == escape_text(tag)


@pytest.mark.parametrize("kind", ["cashtag", "bot_command", "email", "phone", "bank_card"])
def test_plain_text_kinds_render_as_escaped_text(kind: str) -> None:
    text = "$AAPL_1 #x"
    assert render_text(text, [ent(kind, 0, len(text))]) == "\\$AAPL\\_1 \\#x"


def test_custom_emoji_renders_its_fallback_text() -> None:
    assert render_text("x 🙂 y", [ent("custom_emoji", 2, 2, custom_emoji_id=5)]) == "x 🙂 y"


# -- blockquotes ---------------------------------------------------------------------------------


def test_blockquote_prefixes_each_line() -> None:
    out = render_text("one\ntwo\n\nafter", [ent("blockquote", 0, 9)])
    assert out == "> one\n> two\n\nafter"


def test_blockquote_starting_mid_line_starts_its_own_line_and_ends_with_a_blank_line() -> None:
    out = render_text("say quoted\nline end", [ent("blockquote", 4, 11)])
    assert out == "say \n> quoted\n> line\n\n end"


def test_collapsed_blockquote_is_a_collapsed_callout() -> None:
    assert render_text("a\n\nb", [ent("blockquote", 0, 4, collapsed=True)]) == "> [!quote]-\n> a\n>\n> b"


def test_blockquote_content_is_escaped_and_styled() -> None:
    out = render_text("> x **y**", [ent("blockquote", 0, 9), ent("bold", 2, 1)])
    assert out == "> \\> **x** \\*\\*y\\*\\*"


# -- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\nfoo: bar\n---", "\\---\nfoo: bar\n\\---"),
        ("[[x]]", "\\[\\[x\\]\\]"),
        ("![[x]]", "\\!\\[\\[x\\]\\]"),
        ("<% tp.file.title %>", "&lt;\\% tp.file.title \\%>"),
        ("```dataviewjs\ndv.x()\n```", "\\`\\`\\`dataviewjs\ndv.x()\n\\`\\`\\`"),
        ("`$= dv.el('b','x')`", "\\`\\$\\= dv.el('b','x')\\`"),
        ("# heading", "\\# heading"),
        ("key:: value", "key\\:\\: value"),
        ("%%comment%%", "\\%\\%comment\\%\\%"),
        ("<script>alert(1)</script>", "&lt;script>alert(1)&lt;/script>"),
        ("&amp; [a](javascript:x) ==h== $x$ ^id [^1] | ~~s~~", None),
        ("1. a\n2) b\n- c\n+ d\n> e\n===", "1\\. a\n2\\) b\n\\- c\n\\+ d\n\\> e\n\\=\\=\\="),
    ],
)
def test_hostile_plain_text_is_escaped(text: str, expected: str | None) -> None:
    out = escape_text(text)
    if expected is not None:
        assert out == expected
    assert unescape(out) == text
    assert render_text(text) == out


def test_templater_command_inside_code_and_pre_is_broken() -> None:
    text = "<% tp.file.title %>"
    assert render_text(text, [ent("code", 0, len(text))]) == f"`<{ZWSP}% tp.file.title %>`"
    assert render_text(text, [ent("pre", 0, len(text))]) == f"```\n<{ZWSP}% tp.file.title %>\n```"


@pytest.mark.parametrize("query", ["$= dv.el('b','x')", "= this.file.name", "  =x", "INPUT[text:x]"])
def test_plugin_inline_query_in_code_entity_gets_a_zero_width_prefix(query: str) -> None:
    assert render_text(query, [ent("code", 0, len(query))]) == f"`{ZWSP}{query}`"


def test_code_that_is_no_plugin_query_stays_verbatim() -> None:
    assert render_text("a = 1", [ent("code", 0, 5)]) == "`a = 1`"


def test_indented_line_does_not_become_an_indented_code_block() -> None:
    assert escape_text("    x # y\n\tz") == "&#32;   x \\# y\n&#9;z"
    assert escape_text("  - x") == "  \\- x"


def test_escape_inline_replaces_line_breaks_with_spaces() -> None:
    assert escape_inline("a\nb\r\nc\u2028# [[x]]") == "a b c \\# \\[\\[x\\]\\]"
    assert escape_inline("- item") == "\\- item"


# -- properties ----------------------------------------------------------------------------------

FRAGMENTS = [*"ab c1\n\r\t-#*_`~=:[]!<>%$^|\\&+.)>{}'\"", "😀", "\u00a0", "<%", "```", "    ", "\r\n"]
MARKDOWN_TEXT = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.characters(codec="utf-8", exclude_characters="\x00"),
    ),
    max_size=40,
).map("".join)
ENTITIES = st.lists(
    st.builds(
        Entity,
        kind=st.one_of(st.sampled_from(list(EntityKind)), st.sampled_from(["unknown", ""])),
        offset=st.integers(-5, 50),
        length=st.integers(-5, 50),
        url=st.one_of(st.none(), st.sampled_from(["https://a.b/(x y)", "javascript:x", "tg://x"]), st.text()),
        user_id=st.one_of(st.none(), st.integers()),
        language=st.one_of(st.none(), st.sampled_from(["python", "dataviewjs"]), st.text(max_size=8)),
        collapsed=st.booleans(),
    ),
    max_size=8,
)
STYLE_ENTITIES = st.lists(
    st.builds(
        Entity,
        kind=st.sampled_from(["bold", "italic", "strikethrough", "underline"]),
        offset=st.integers(0, 30),
        length=st.integers(1, 30),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(MARKDOWN_TEXT, ENTITIES)
def test_render_text_never_raises_and_never_emits_templater(text: str, entities: list[Entity]) -> None:
    out = render_text(text, entities)
    assert "<%" not in out


@settings(max_examples=300, deadline=None)
@given(MARKDOWN_TEXT)
def test_render_text_without_entities_equals_escape_text(text: str) -> None:
    assert render_text(text, ()) == escape_text(text)


@settings(max_examples=400, deadline=None)
@given(MARKDOWN_TEXT)
def test_escape_text_output_opens_no_markdown_construct(text: str) -> None:
    out = escape_text(text)
    assert "[[" not in out
    assert "<%" not in out
    for line in LINE_BREAK.split(out):
        stripped = line.lstrip(" \t")
        assert not stripped.startswith(("#", "---", "```", ">", "-", "+", "=", "*"))
        assert not re.match(r"\d+[.)]", stripped)
        assert not (stripped.strip() and line.startswith(("    ", "\t"))), "indented code block"


@settings(max_examples=500, deadline=None)
@given(MARKDOWN_TEXT)
def test_escape_text_round_trips_through_unescape(text: str) -> None:
    assert unescape(escape_text(text)) == text


@settings(max_examples=200, deadline=None)
@given(MARKDOWN_TEXT)
def test_escape_inline_is_one_line(text: str) -> None:
    assert not LINE_BREAK.search(escape_inline(text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWN_TEXT)
def test_commonmark_reads_escaped_text_as_the_literal_text(text: str) -> None:
    chars = styled_chars(escape_text(text))
    assert "".join(c for c, _ in chars) == "".join(c for c in text if not c.isspace())
    assert all(not styles for _, styles in chars)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ab c!*_-.#(`~=😀\n", min_size=1, max_size=30), STYLE_ENTITIES)
def test_commonmark_reads_styles_as_the_entities_say(text: str, entities: list[Entity]) -> None:
    names = {"bold": "strong", "italic": "em", "strikethrough": "s", "underline": "u"}
    expected = []
    for i, char in enumerate(text):
        unit, end = utf16_len(text[:i]), utf16_len(text[: i + 1])  # snapped out of surrogate pairs
        styles = {names[e.kind] for e in entities if e.offset < end and unit < e.offset + e.length}
        if not char.isspace():
            expected.append((char, frozenset(styles)))
    assert styled_chars(render_text(text, entities)) == expected


# -- the linear renderer renders exactly what the reference rendered ----------------------------

WORDS = ["word", "😀", "\U0001d518", "https://a.b/c", "HTTP://x.y/%4", "http://a/%zz", "#tag", "#1", "#a-b",
         "x*y", "a_b", "1.", "  ", "    ", "\t", "\n", "\n\n", "\r\n", "\r", "::", "<%", "==", "~~", "-", "> ",
         "`", "```", "!", ".", ",", "(", ")", "\u00a0", "\u2028", "é"]
DENSE_TEXT = st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(FRAGMENTS), st.characters(
    codec="utf-8", exclude_characters="\x00")), max_size=60).map("".join)
ANY_KIND = st.one_of(st.sampled_from(list(EntityKind)), st.sampled_from(["unknown", ""]))
STYLE_KIND = st.sampled_from(["bold", "italic", "strikethrough", "underline", "spoiler"])


@st.composite
def text_and_entities(draw: st.DrawFn, kinds: st.SearchStrategy[str] = ANY_KIND) -> tuple[str, list[Entity]]:
    """A text and up to 40 entities over it (some reaching outside it, some inside surrogate pairs)."""
    text = draw(DENSE_TEXT)
    units = utf16_len(text)
    entity = st.builds(
        Entity,
        kind=kinds,
        offset=st.integers(-2, units + 2),
        length=st.one_of(st.integers(-1, 6), st.integers(-1, units + 3)),
        url=st.one_of(st.none(), st.sampled_from(["https://a.b/(x y)", "javascript:x", "tg://x", "mailto:a@b"])),
        user_id=st.one_of(st.none(), st.integers(0, 10)),
        language=st.one_of(st.none(), st.sampled_from(["python", "dataviewjs", ""])),
        collapsed=st.booleans(),
    )
    return text, draw(st.lists(entity, max_size=40))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_and_entities())
def test_render_text_equals_the_reference_for_every_kind(case: tuple[str, list[Entity]]) -> None:
    text, entities = case
    assert render_text(text, entities) == reference_render_text(text, entities)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_and_entities(st.one_of(STYLE_KIND, st.sampled_from(["text_link", "code", "blockquote"]))))
def test_render_text_equals_the_reference_for_dense_styles(case: tuple[str, list[Entity]]) -> None:
    text, entities = case  # styles crossing inside words: many delimiters fall back to HTML tags
    assert render_text(text, entities) == reference_render_text(text, entities)


@settings(max_examples=400, deadline=None)
@given(MARKDOWN_TEXT, ENTITIES)
def test_render_text_equals_the_reference_on_the_old_property_inputs(text: str, entities: list[Entity]) -> None:
    assert render_text(text, entities) == reference_render_text(text, entities)


PLAIN_KINDS = st.sampled_from(["mention", "cashtag", "bot_command", "email", "phone", "bank_card", "custom_emoji",
                               "unknown", ""])
NEARLY_PLAIN_TEXT = st.text(alphabet="ab é😀 \t\r\n19.)-+>:<", max_size=40)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_and_entities(PLAIN_KINDS))
def test_render_text_with_only_plain_kinds_equals_the_reference(case: tuple[str, list[Entity]]) -> None:
    text, entities = case  # the shortcut to escaped text for entities that change nothing
    assert render_text(text, entities) == reference_render_text(text, entities)


@settings(max_examples=500, deadline=None)
@given(st.one_of(DENSE_TEXT, NEARLY_PLAIN_TEXT))
def test_escape_text_equals_the_character_by_character_reference(text: str) -> None:
    # text with nothing to escape is returned as it is, after one scan; the rest is escaped by pieces
    assert escape_text(text) == "".join(_ref_escape_chars(text, _line_starts(text)))



@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"#aZ1٣_-/.:=~%4fG <`|$", "é", "😀", "\u200b", "\u00a0", "\uff03", "http://", "HTTPS://",
                                 "\u017f", "%2", "%zz"]), max_size=16).map("".join))
def test_piece_check_by_counts_agrees_with_the_autolink_and_tag_rules(text: str) -> None:
    by_counts = _PieceCheck(text)
    by_counts.budget = -1  # as after many overlapping candidates: only the prefix counts answer
    for start in range(len(text)):
        for end in range(start + 1, len(text) + 1):
            piece = text[start:end]
            assert by_counts("link", start, end) == (_autolink(piece) is not None), piece
            assert by_counts("hashtag", start, end) == _is_tag(piece), piece


# -- many entities -------------------------------------------------------------------------------

MANY_KINDS = ["bold", "italic", "strikethrough", "underline", "spoiler", "code", "pre", "text_link", "mention_name",
              "hashtag", "link", "overlap", "overlap", "overlap", "overlap"]


def many_entities(count: int) -> tuple[str, list[Entity]]:
    """``count`` entities over a text of one word per kind taken in turn, each word after an astral
    character (so UTF-16 offsets run ahead of code points), ten words a line, lines 5, 500 and
    1,000 quoted. An "overlap" word is ``abcdefgh`` with bold over ``abcde`` and italic over
    ``defgh`` (two entities): CommonMark would misread the italic markers, so they are HTML tags."""
    words: list[str] = []
    entities: list[Entity] = []
    units = line_start = 0
    while len(entities) < count:
        index = len(words)
        kind = MANY_KINDS[index % len(MANY_KINDS)]
        word = {"hashtag": f"#t{index}", "link": f"https://x.y/{index}", "overlap": "abcdefgh"}.get(kind, f"w{index}")
        if kind == "overlap":
            entities += [Entity("bold", units + 2, 5), Entity("italic", units + 5, 5)]
        else:
            entities.append(Entity(kind, units + 2, utf16_len(word), url=f"https://example.org/{index}", user_id=index))
        piece = "😀" + word + ("\n" if index % 10 == 9 else " ")
        words.append(piece)
        units += utf16_len(piece)
        if index % 10 == 9:
            if index // 10 in (5, 500, 1000):
                entities.append(Entity("blockquote", line_start, units - line_start))
            line_start = units
    return "".join(words), entities


def count_spans(markdown: str) -> dict[str, int]:
    """How many formatted words of each kind ``markdown`` shows (as many_entities writes them)."""
    return {
        "bold": len(re.findall(r"😀\*\*w\d+\*\*", markdown)),
        "italic": len(re.findall(r"😀\*w\d+\*(?!\*)", markdown)),
        "strikethrough": len(re.findall(r"😀~~w\d+~~", markdown)),
        "underline": len(re.findall(r"😀<u>w\d+</u>", markdown)),
        "spoiler": len(re.findall(r"😀==w\d+==", markdown)),
        "code": len(re.findall(r"😀`w\d+`", markdown)),
        "pre": len(re.findall(r"^(?:> )?```\n(?:> )?w\d+\n(?:> )?```$", markdown, re.MULTILINE)),
        "text_link": len(re.findall(r"😀\[w(\d+)\]\(https://example\.org/\1\)", markdown)),
        "mention_name": len(re.findall(r"😀\[w(\d+)\]\(tg://user\?id=\1\)", markdown)),
        "hashtag": len(re.findall(r"😀#t\d+", markdown)),
        "link": len(re.findall(r"😀<https://x\.y/\d+>", markdown)),
        "overlap": markdown.count("😀**abc<i>de</i>**<i>fgh</i>"),
        "blockquote": len(re.findall(r"(?:^>.*\n?)+", markdown, re.MULTILINE)),
    }


def test_twenty_thousand_entities_render_every_span() -> None:
    # The quadratic renderer took 1.1, 5.7 and 27 s for 1,000, 2,000 and 4,000 of these entities: 20,000
    # would take over ten minutes, past the test timeout. No time is asserted.
    text, entities = many_entities(20_000)
    # 15 words take 19 entities (4 overlap words take two), plus 3 quotes: 20,000 = 1,052 x 19 + 9 + 3
    assert len(entities) == 20_000
    assert text.count("😀") == 1052 * 15 + 9
    expected = dict.fromkeys(MANY_KINDS, 1052) | {"overlap": 4 * 1052, "blockquote": 3}
    expected |= dict.fromkeys(MANY_KINDS[:9], 1053)
    assert count_spans(render_text(text, entities)) == expected


def test_twenty_thousand_overlapping_code_and_tag_entities_render_once() -> None:
    lines = "ab cd\n" * 2000  # the quadratic renderer took 7 s for 500 such code entities, 300 s for 2,000
    code = [Entity("code", 0, len(lines) - cut) for cut in range(10_000)]
    assert render_text(lines, code) == "`ab cd`\n" * 2000
    digits = "#" + "1" * 10_000
    tags = [Entity("hashtag", 0, len(digits) - cut) for cut in range(10_000)]  # all digits: never a tag
    assert render_text(digits, tags) == escape_text(digits)


def test_a_thousand_entities_of_every_kind_render_like_the_reference() -> None:
    text, entities = many_entities(1000)
    assert render_text(text, entities) == reference_render_text(text, entities)


# == REFERENCE ===================================================================================
# render_text's assembly as it was before it was made linear (quadratic in entities), frozen here
# so that property tests can check the linear one against it byte for byte. It is only a test
# oracle: never optimise or "fix" it. The rules it shares with the live module (what each
# character, code span, block, link target, autolink and tag becomes) are imported from
# tobs_sync.markdown so that a change of rules changes both sides; everything that decides where
# and in which order those pieces go, and _escape_chars (whose line-start scan the linear version
# reorganised), is the old code, verbatim but for the names.


@dataclass(frozen=True, slots=True)
class _RefSpan:
    kind: str
    start: int
    end: int
    entity: Entity


@dataclass(frozen=True, slots=True)
class _RefWrap:
    """An opener/closer pair over ``[start, end)``: a merged style or a link.

    ``marker`` is the CommonMark delimiter of a style ("" for a link); ``opener``/``closer`` are
    the HTML tags used where the delimiter would not work.
    """

    start: int
    end: int
    rank: int
    marker: str
    opener: str
    closer: str

    def key(self) -> tuple[int, int, int]:
        return (self.start, -self.end, self.rank)


@dataclass(frozen=True, slots=True)
class _RefAtom:
    """Text rendered as one unit: ``code``, ``pre`` (a block), ``autolink`` or ``tag``."""

    start: int
    end: int
    kind: str
    markdown: str


@dataclass(frozen=True, slots=True)
class _RefPiece:
    text: str
    role: str = ""  # "open", "close" or "" (content)
    pair: int = -1  # the same number on an opener and its closer
    html: str = ""  # the HTML form of a delimiter (empty: ``text`` is final)


def reference_render_text(text: str, entities: Sequence[Entity] = ()) -> str:
    """render_text as it was before it was made linear (the REFERENCE: never edit for speed)."""
    spans = _ref_to_spans(text, entities)
    out, pos, after_quote = "", 0, False
    for start, end, collapsed in _ref_quote_regions(text, spans):
        plain = _ref_render_region(text, spans, pos, start)
        out = _ref_put(out, plain, 2 if after_quote else 0)
        after_quote = after_quote and not plain.strip(_NEWLINES)
        quoted = _ref_quote(_ref_render_region(text, spans, start, end), collapsed)
        out = _ref_put(out, quoted, 2 if after_quote else 1)
        pos, after_quote = end, True
    return _ref_put(out, _ref_render_region(text, spans, pos, len(text)), 2 if after_quote else 0)


def _ref_escape_chars(text: str, line_starts: set[int]) -> list[str]:
    """The escaped form of each character of ``text``; ``line_starts`` are where lines begin."""
    esc = ["\\" + ch if ch in _ALWAYS_ESCAPED else "&lt;" if ch == "<" else ch for ch in text]
    for i, ch in enumerate(text):
        if ch == ":" and ((i > 0 and text[i - 1] == ":") or text[i + 1 : i + 2] == ":"):
            esc[i] = "\\:"
    for start in line_starts:
        first, column = start, 0
        while first < len(text) and text[first] in " \t":
            column = column + 4 - column % 4 if text[first] == "\t" else column + 1
            first += 1
        if first >= len(text) or text[first] in _NEWLINES:
            continue
        if column >= 4:  # would be an indented code block, which shows escapes literally
            esc[start] = "&#9;" if text[start] == "\t" else "&#32;"
        if text[first] in _LINE_START_ESCAPED:
            esc[first] = "\\" + text[first]
        end = first
        while end < len(text) and "0" <= text[end] <= "9":
            end += 1
        if end > first and text[end : end + 1] in (".", ")"):
            esc[end] = "\\" + text[end]
    return esc


def _ref_to_spans(text: str, entities: Sequence[Entity]) -> list[_RefSpan]:
    """Entities as Python index spans, clamped to the text and snapped out of surrogate pairs."""
    units = [0]
    for ch in text:
        units.append(units[-1] + (2 if ord(ch) > 0xFFFF else 1))
    spans = []
    for entity in entities:
        offset, length, kind = entity.offset, entity.length, entity.kind
        if not isinstance(offset, int) or not isinstance(length, int):
            continue
        low = min(max(offset, 0), units[-1])
        high = min(max(offset + length, 0), units[-1])
        if high > low:
            kind = kind if isinstance(kind, str) else ""
            spans.append(_RefSpan(kind, bisect_right(units, low) - 1, bisect_left(units, high), entity))
    return spans


def _ref_overlaps(a: _RefSpan | _RefWrap | _RefAtom, b: _RefSpan | _RefWrap | _RefAtom) -> bool:
    return a.start < b.end and b.start < a.end


def _ref_by_position(items: list[_RefSpan]) -> list[_RefSpan]:
    return sorted(items, key=lambda s: (s.start, s.start - s.end))


def _ref_quote_regions(text: str, spans: list[_RefSpan]) -> list[tuple[int, int, bool]]:
    """Merged blockquote spans without their leading/trailing line breaks."""
    merged: list[tuple[int, int, bool]] = []
    for span in _ref_by_position([s for s in spans if s.kind == EntityKind.BLOCKQUOTE]):
        start, end = span.start, span.end
        while start < end and text[start] in _NEWLINES:
            start += 1
        while end > start and text[end - 1] in _NEWLINES:
            end -= 1
        if not text[start:end].strip():
            continue
        collapsed = span.entity.collapsed is True
        if merged and start <= merged[-1][1]:
            first, last, was = merged.pop()
            start, end, collapsed = first, max(last, end), was or collapsed
        merged.append((start, end, collapsed))
    return merged


def _ref_links(spans: list[_RefSpan]) -> list[_RefWrap]:
    """Link wrappers (text links and mentions by id) with allowed targets; first one wins."""
    kept: list[_RefWrap] = []
    for span in _ref_by_position(spans):
        if span.kind == EntityKind.TEXT_LINK:
            url = _safe_url(span.entity.url)
        elif span.kind == EntityKind.MENTION_NAME and type(span.entity.user_id) is int:
            url = f"tg://user?id={span.entity.user_id}"
        else:
            continue
        if url is not None and not any(_ref_overlaps(span, link) for link in kept):
            kept.append(_RefWrap(span.start, span.end, 0, "", "[", f"]({url})"))
    return kept


def _ref_styles(spans: list[_RefSpan]) -> list[_RefWrap]:
    """One wrapper per maximal run of each style (overlapping and adjacent spans merged)."""
    wraps: list[_RefWrap] = []
    for kind, (rank, marker, tag) in _STYLES.items():
        runs: list[list[int]] = []
        for span in _ref_by_position([s for s in spans if s.kind == kind]):
            if runs and span.start <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], span.end)
            else:
                runs.append([span.start, span.end])
        wraps.extend(_RefWrap(start, end, rank, marker or "", f"<{tag}>", f"</{tag}>") for start, end in runs)
    return wraps


def _ref_atoms(text: str, spans: list[_RefSpan], links: list[_RefWrap]) -> list[_RefAtom]:
    """Non-overlapping code, pre, autolink and tag atoms; code is split at line breaks."""
    found: list[_RefAtom] = []
    for span in spans:
        piece = text[span.start : span.end]
        if span.kind == EntityKind.CODE:
            for line in re.finditer(r"[^\r\n]+", piece):
                start, end = span.start + line.start(), span.start + line.end()
                found.append(_RefAtom(start, end, "code", code_span(line.group())))
        elif span.kind == EntityKind.PRE:
            found.append(_RefAtom(span.start, span.end, "pre", code_block(piece, span.entity.language)))
        elif any(_ref_overlaps(span, link) for link in links):
            continue
        elif span.kind == EntityKind.LINK and (autolink := _autolink(piece)):
            found.append(_RefAtom(span.start, span.end, "autolink", autolink))
        elif span.kind == EntityKind.HASHTAG and _is_tag(piece):
            found.append(_RefAtom(span.start, span.end, "tag", piece))
    kept: list[_RefAtom] = []
    for atom in sorted(found, key=lambda a: (a.start, a.start - a.end)):
        if any(_ref_overlaps(atom, other) for other in kept):
            continue
        if kept and atom.kind == kept[-1].kind == "code" and kept[-1].end == atom.start:
            start = kept.pop().start  # adjacent code spans would glue: make them one
            atom = _RefAtom(start, atom.end, "code", code_span(text[start : atom.end]))
        kept.append(atom)
    return kept


class _RefEmitter:
    """Collects output pieces, keeping opened wrappers properly nested.

    Openers are deferred until non-whitespace text follows (so no marker wraps only whitespace);
    trailing whitespace is moved out past closers.
    """

    def __init__(self) -> None:
        self.pieces: list[_RefPiece] = []
        self.stack: list[_RefWrap] = []
        self.pairs: list[int] = []  # pair numbers of the opened wrappers, stack[: len(pairs)]

    def sync(self, desired: list[_RefWrap]) -> None:
        common = 0
        while common < min(len(self.stack), len(desired)) and self.stack[common] == desired[common]:
            common += 1
        while len(self.stack) > common:
            wrap = self.stack.pop()
            if len(self.stack) < len(self.pairs):
                self._close(wrap, self.pairs.pop())
        self.stack.extend(desired[common:])

    def text(self, text: str) -> None:
        rest = text.lstrip()
        if len(self.pairs) < len(self.stack) and rest:
            self.pieces.append(_RefPiece(text[: len(text) - len(rest)]))
            for wrap in self.stack[len(self.pairs) :]:
                self.pairs.append(len(self.pieces))
                self.pieces.append(_ref_piece(wrap, "open", self.pairs[-1]))
            text = rest
        self.pieces.append(_RefPiece(text))

    def block(self, block: str, newline_after: bool) -> None:
        self.sync([])
        tail = next((p.text for p in reversed(self.pieces) if p.text), "")
        if tail and not tail.endswith(("\n", "\r")):
            self.pieces.append(_RefPiece("\n"))
        self.pieces.append(_RefPiece(block + ("\n" if newline_after else "")))

    def _close(self, wrap: _RefWrap, pair: int) -> None:
        moved = ""
        while self.pieces and self.pieces[-1].role == "" and self.pieces[-1].text[-1:].isspace():
            text = self.pieces.pop().text
            kept = text.rstrip()
            moved = text[len(kept) :] + moved
            if kept:
                self.pieces.append(_RefPiece(kept))
                break
        self.pieces.append(_ref_piece(wrap, "close", pair))
        self.pieces.append(_RefPiece(moved))

    def result(self) -> str:
        pieces = [p for p in self.pieces if p.text]
        as_html: set[int] = set()
        while True:
            final = [_RefPiece(p.html, p.role) if p.pair in as_html else p for p in pieces]
            bad = _ref_bad_delimiter(final)
            if bad is None:
                return "".join(p.text for p in final)
            as_html.add(bad)


def _ref_piece(wrap: _RefWrap, role: str, pair: int) -> _RefPiece:
    html = wrap.opener if role == "open" else wrap.closer
    return _RefPiece(wrap.marker, role, pair, html) if wrap.marker else _RefPiece(html, role)


def _ref_bad_delimiter(pieces: list[_RefPiece]) -> int | None:
    """The pair of a delimiter whose run CommonMark would not read as meant, or None.

    A run of openers must be left-flanking and a run of closers right-flanking. A ``*`` opener run
    must not be right-flanking too: it could close an enclosing ``*`` style. (Closers pair with the
    nearest opener; with only ``*`` and ``**`` properly nested, the rule of 3 never forbids that.)
    A run mixing openers and closers (a style closed and reopened between two characters) never
    works.
    """
    i = 0
    while i < len(pieces):
        j = i  # pieces[i : j + 1] is one run: delimiters of one character, side by side
        while pieces[i].html and j + 1 < len(pieces) and pieces[j + 1].html:
            if pieces[j + 1].text[0] != pieces[i].text[0]:
                break
            j += 1
        if pieces[i].html:
            prev = pieces[i - 1].text[-1] if i else ""
            nxt = pieces[j + 1].text[0] if j + 1 < len(pieces) else ""
            left = not _is_space(nxt) and (not _is_punct(nxt) or _is_space(prev) or _is_punct(prev))
            right = not _is_space(prev) and (not _is_punct(prev) or _is_space(nxt) or _is_punct(nxt))
            strict = pieces[i].text[0] == "*"
            roles = {p.role for p in pieces[i : j + 1]}
            if roles == {"open"} and not (left and not (strict and right)):
                return pieces[i].pair
            if roles == {"close"} and not right:
                return pieces[j].pair
            if len(roles) > 1:
                return next(p.pair for p in pieces[i : j + 1] if p.role == "open")
        i = j + 1
    return None


def _ref_render_region(text: str, spans: list[_RefSpan], low: int, high: int) -> str:
    """Render ``text[low:high]`` (which starts a line) with the non-quote entities inside it."""
    sub = text[low:high]
    clipped = [
        _RefSpan(s.kind, max(s.start, low) - low, min(s.end, high) - low, s.entity)
        for s in spans
        if s.kind != EntityKind.BLOCKQUOTE and s.start < high and s.end > low
    ]
    return _ref_render_inline(sub, clipped)


def _ref_render_inline(text: str, spans: list[_RefSpan]) -> str:
    links = _ref_links(spans)
    atoms = _ref_atoms(text, spans, links)
    wraps = sorted(_ref_styles(spans) + links, key=_RefWrap.key)
    esc = _ref_escape_chars(text, _line_starts(text) | {a.end for a in atoms if a.kind == "pre"})
    cuts = {0, len(text)} | {i for i, ch in enumerate(text) if ch in _NEWLINES}
    cuts |= {i + 1 for i, ch in enumerate(text) if ch in _NEWLINES}
    for item in (*wraps, *atoms):
        cuts |= {item.start, item.end}
    bounds = sorted(cuts)
    atom_at = {atom.start: atom for atom in atoms}
    emit = _RefEmitter()
    i = 0
    while i < len(text):
        atom = atom_at.get(i)
        if atom is None:
            end = bounds[bisect_right(bounds, i)]
            emit.sync([] if text[i] in _NEWLINES else [w for w in wraps if w.start <= i < w.end])
            emit.text("".join(esc[i:end]))
        elif atom.kind == "pre":
            end = atom.end
            emit.block(atom.markdown, end < len(text) and text[end] not in _NEWLINES)
        else:
            end = atom.end
            emit.sync([w for w in wraps if w.start <= atom.start and atom.end <= w.end])
            emit.text(atom.markdown)
        i = end
    emit.sync([])
    return emit.result()


def _ref_quote(body: str, collapsed: bool) -> str:
    lines = ["> [!quote]-"] if collapsed else []
    lines += [f"> {line}" if line else ">" for line in _LINE_BREAK.split(body)]
    return "\n".join(lines)


def _ref_put(out: str, chunk: str, breaks: int) -> str:
    """Append ``chunk``; its content starts after at least ``breaks`` line breaks (unless first)."""
    rest = chunk.lstrip(_NEWLINES)
    out += chunk[: len(chunk) - len(rest)]
    if rest and out:
        have = len(_LINE_BREAK.findall(out[len(out.rstrip(_NEWLINES)) :]))
        out += "\n" * max(0, breaks - have)
    return out + rest
