"""Tests of tobs_sync.markdown: Telegram text + entities -> safe Obsidian Markdown."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tobs_sync.markdown import ZWSP, code_block, code_span, escape_inline, escape_text, render_text
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
