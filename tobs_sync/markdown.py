"""Telegram message text and formatting entities -> Obsidian flavoured Markdown.

Message text is untrusted: it must display literally and execute nothing. :func:`escape_text`
backslash-escapes the ASCII punctuation that Markdown or Obsidian reads anywhere in a line
(``\\ ` * _ [ ] ! # = ~ | $ ^ % &`` and ``::``), writes ``<`` as ``&lt;`` (no HTML, autolink or
Templater ``<%``) and escapes ``- + >`` and ordered-list ``1.``/``1)`` at the start of a line. So no
frontmatter, heading, list, quote, wikilink, embed, tag, comment, highlight, math, footnote, block
id, Dataview field, table or code fence can appear. Newlines are kept (Obsidian shows them).
Indentation is kept, but from four columns on its first character is written ``&#32;``/``&#9;``
so the line never becomes an indented code block (which would show the backslashes).

:func:`render_text` applies entities (offsets in UTF-16 code units, boundaries inside a surrogate
pair snapped outward; invalid or overlapping ones are clipped or dropped, never an error): bold
``**``, italic ``*``, strikethrough ``~~``, underline ``<u>``, spoiler ``==`` (Obsidian has no
spoiler: the text is highlighted, not hidden), code spans, fenced code blocks (the language kept
only if allowlisted, as plugins run blocks by language name), ``[label](url)`` for http(s),
mailto, tg and tel links only, a mention without username as ``[label](tg://user?id=N)``, bare
http(s) URLs as ``<url>``, valid hashtags as tags, blockquotes as ``> `` lines (collapsed: a
collapsed ``[!quote]`` callout). Other kinds are escaped text.

Limits: styles are closed before a line break, atom or block and reopened after, with edge
whitespace moved outside. Where CommonMark would not read a delimiter run as meant (a style
starting inside a word before punctuation, or closed and reopened between two characters) that
style uses its HTML tag (``<b> <i> <s> <mark>``). Code is verbatim except that ``<%`` gets a U+200B
inside (Templater scans raw text) and a code span Dataview or Meta Bind would run (``=``, ``$=``,
``INPUT[``, ``VIEW[``, ``BUTTON[``) starts with U+200B. Output should start on its own line, and
a trailing quote needs a blank line after it.

Cost: O(n + e log e) for n characters and e entities, however the entities nest, overlap or
repeat: each region (quoted or not) gets only the spans that start or end in it plus the first
covering span of each kind; kept links and atoms are checked against the last one kept; styles
are swept; a misread delimiter run is re-checked only next to the pieces that changed.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from types import MappingProxyType

from tobs_sync.model import Entity, EntityKind

__all__ = ["ZWSP", "code_block", "code_span", "escape_inline", "escape_text", "render_text"]

ZWSP = "\u200b"
"""Zero-width space: breaks ``<%`` and plugin prefixes inside code."""

_ALWAYS_ESCAPED = frozenset("\\`*_[]!#=~|$^%&")
_LINE_START_ESCAPED = frozenset("-+>")
_NEWLINES = "\r\n"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_INLINE_BREAK = re.compile(r"\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]")
_BACKTICK_RUN = re.compile(r"`+")
_PLUGIN_CODE = re.compile(r"\s*(?:\$?=|(?:INPUT|VIEW|BUTTON)\[)", re.IGNORECASE)

_STYLES = MappingProxyType({  # kind -> (rank, Markdown marker or None, HTML tag)
    EntityKind.BOLD: (1, "**", "b"),
    EntityKind.ITALIC: (2, "*", "i"),
    EntityKind.STRIKETHROUGH: (3, "~~", "s"),
    EntityKind.UNDERLINE: (4, None, "u"),
    EntityKind.SPOILER: (5, "==", "mark"),
})
_CODE_LANGUAGES = frozenset((  # plain programming languages: no plugin runs blocks named so
    "bash", "c", "c#", "c++", "clojure", "cmake", "cpp", "cs", "csharp", "css", "cuda", "dart", "diff",
    "dockerfile", "elixir", "elm", "erlang", "f#", "fish", "fortran", "fsharp", "glsl", "go", "golang",
    "gradle", "graphql", "groovy", "haskell", "hcl", "html", "ini", "java", "javascript", "js", "json",
    "json5", "jsx", "julia", "kotlin", "kt", "less", "lisp", "log", "lua", "makefile", "markdown",
    "matlab", "md", "nginx", "nim", "nix", "objc", "objectivec", "ocaml", "pascal", "perl", "php",
    "plaintext", "powershell", "proto", "protobuf", "ps1", "py", "python", "r", "racket", "rb", "rs",
    "ruby", "rust", "sass", "scala", "scheme", "scss", "sh", "shell", "solidity", "sql", "swift",
    "terraform", "text", "toml", "ts", "tsx", "txt", "typescript", "vb", "verilog", "vhdl", "vim", "xml",
    "yaml", "yml", "zig", "zsh",
))
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tg", "tel"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#@!&'*+,;=")
_URL_STRIP = "".join(map(chr, range(0x21))) + "\x7f"
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")
_ENTITY_LIKE = re.compile(r"&#?[A-Za-z0-9]+;")
_AUTOLINK_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_AUTOLINK_CHAR = re.compile(r"[^\s<>`\\\"\[\]{}|^$]", re.IGNORECASE)
_AUTOLINK = re.compile(_AUTOLINK_SCHEME.pattern + _AUTOLINK_CHAR.pattern + "+", re.IGNORECASE)
_AUTOLINK_PAIRS = ("==", "~~", "::")  # would read as highlight, strikethrough or a Dataview field
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LINE_RUN = re.compile(r"[^\r\n]+")
_ATOM_KINDS = frozenset({EntityKind.CODE, EntityKind.PRE, EntityKind.LINK, EntityKind.HASHTAG})
_ESCAPED_CHARS = {**{ch: "\\" + ch for ch in _ALWAYS_ESCAPED}, "<": "&lt;"}
_ALWAYS_ESCAPED_CHAR = re.compile("[" + re.escape("".join(sorted(_ESCAPED_CHARS))) + "]")
_COLON_RUN = re.compile(r"::+")  # every ":" next to another is escaped (``::`` is a Dataview field)
_NEWLINE = re.compile(r"[\r\n]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")  # two UTF-16 code units each
_MAY_NEED_ESCAPES = re.compile(r"[\\`*_\[\]!#=~|$^%&<]|::|(?:^|(?<=[\r\n]))(?:[ \t\-+>]|[0-9]+[.)])")
"""Where :func:`escape_text` could change something: a character always escaped, ``::``, or a line
starting with a blank, ``- + >`` or an ordered-list number. Text without a match is its own escape."""
_SOLID = re.compile(r"\S")
_FEW_QUOTES = 8
"""Up to this many quote spans, each is checked for text by a scan of its own (cheaper than an index)."""
_RENDERED_KINDS = frozenset({*_STYLES, *_ATOM_KINDS, EntityKind.TEXT_LINK, EntityKind.MENTION_NAME,
                             EntityKind.BLOCKQUOTE})
"""Entity kinds that can change the rendering; text with entities of other kinds only is escaped text."""


@dataclass(slots=True)
class _Span:
    kind: str
    start: int
    end: int
    entity: Entity
    target: str | None = None  # a link's destination, once checked and encoded


@dataclass(slots=True)
class _Wrap:
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


@dataclass(slots=True)
class _Atom:
    """Text rendered as one unit: ``code``, ``pre`` (a block), ``autolink`` or ``tag``."""

    start: int
    end: int
    kind: str
    markdown: str


@dataclass(slots=True)
class _Piece:
    text: str
    role: str = ""  # "open", "close" or "" (content)
    pair: int = -1  # the same number on an opener and its closer
    html: str = ""  # the HTML form of a delimiter (empty: ``text`` is final)


def escape_text(text: str) -> str:
    """Escape plain untrusted text for a Markdown body; newlines are kept."""
    if _MAY_NEED_ESCAPES.search(text) is None:
        return text  # nothing to escape: what the character-by-character pass gives, found by one scan
    return _Escaped(text, _line_starts(text)).piece(0, len(text))


def escape_inline(text: str) -> str:
    """Escape a short untrusted string for use inside a line; line breaks become spaces."""
    return escape_text(_INLINE_BREAK.sub(" ", text))


def code_span(text: str) -> str:
    """An inline code span showing ``text`` verbatim (line breaks become spaces); "" if empty."""
    content = _break_templater(_INLINE_BREAK.sub(" ", text))
    if not content:
        return ""
    if _PLUGIN_CODE.match(content):
        content = ZWSP + content
    fence = "`" * (_longest_backtick_run(content) + 1)
    spaced = content[0] == " " and content[-1] == " " and bool(content.strip(" "))
    pad = " " if content[0] == "`" or content[-1] == "`" or spaced else ""
    return f"{fence}{pad}{content}{pad}{fence}"


def code_block(text: str, language: str | None) -> str:
    """A fenced code block (no trailing newline); an unlisted ``language`` is dropped."""
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{fence}{_code_language(language)}\n{_break_templater(text)}\n{fence}"


def render_text(text: str, entities: Sequence[Entity] = ()) -> str:
    """Telegram ``text`` with formatting ``entities`` (UTF-16 offsets) as Obsidian Markdown."""
    if not any(isinstance(e.kind, str) and e.kind in _RENDERED_KINDS for e in entities):
        return escape_text(text)  # what the general path gives without spans, at a fraction of its cost
    spans = _to_spans(text, entities)
    quotes = _quote_regions(text, spans)
    if not quotes:  # one plain region: what the output below makes of it is the region itself
        return _render_inline(text, _spans_of_one_region(spans, len(text))) if text else ""
    regions, pos = [], 0  # plain, quoted, plain, ..., plain: they partition the text
    for start, end, _ in quotes:
        regions += [(pos, start), (start, end)]
        pos = end
    regions.append((pos, len(text)))
    inner = _spans_by_region(spans, regions)

    def region(index: int) -> str:
        low, high = regions[index]
        return _render_inline(text[low:high], inner[index]) if high > low else ""

    out, after_quote = _Output(), False
    for index, (_, _, collapsed) in enumerate(quotes):
        plain = region(2 * index)
        out.put(plain, 2 if after_quote else 0)
        after_quote = after_quote and not plain.strip(_NEWLINES)
        out.put(_quote(region(2 * index + 1), collapsed), 2 if after_quote else 1)
        after_quote = True
    out.put(region(len(regions) - 1), 2 if after_quote else 0)
    return out.text()


def _line_starts(text: str) -> set[int]:
    return {0} | {m.end() for m in _NEWLINE.finditer(text)}


class _Escaped:
    """The escaped form of ``text`` (``line_starts``: where its lines begin), piece by piece.

    Characters always escaped (``*`` -> ``\\*``, ``<`` -> ``&lt;``) are replaced in each piece by one
    regular expression; what depends on a character's place (``::`` runs, line starts) is found
    once, as a few overrides by position. So a piece costs its length, and the pieces of a text
    together the text's length (plus a binary search each).
    """

    __slots__ = ("forms", "places", "text")

    def __init__(self, text: str, line_starts: set[int]) -> None:
        self.text = text
        forms: dict[int, str] = {}  # none of these characters is always escaped: they do not overlap
        for run in _COLON_RUN.finditer(text):
            for at in range(run.start(), run.end()):
                forms[at] = "\\:"
        blank_end = digit_end = 0  # where the last blank / digit run scanned ends (runs are maximal)
        for start in sorted(line_starts):  # in order, so that a run is scanned once however many starts it holds
            first = blank_end if start < blank_end else start
            while first < len(text) and text[first] in " \t":
                first += 1
            blank_end, column, at = first, 0, start
            while at < first and column < 4:
                column = column + 4 - column % 4 if text[at] == "\t" else column + 1
                at += 1
            if first >= len(text) or text[first] in _NEWLINES:
                continue
            if column >= 4:  # would be an indented code block, which shows escapes literally
                forms[start] = "&#9;" if text[start] == "\t" else "&#32;"
            if text[first] in _LINE_START_ESCAPED:
                forms[first] = "\\" + text[first]
            end = digit_end if first < digit_end else first
            while end < len(text) and "0" <= text[end] <= "9":
                end += 1
            digit_end = end
            if end > first and text[end : end + 1] in (".", ")"):
                forms[end] = "\\" + text[end]
        self.places = sorted(forms)
        self.forms = forms

    def piece(self, start: int, end: int) -> str:
        """The escaped form of ``text[start:end]``."""
        text, places = self.text, self.places
        low = bisect_left(places, start) if places else 0
        high = bisect_left(places, end, low) if places else 0
        if low == high:
            return _ALWAYS_ESCAPED_CHAR.sub(_escaped_char, text[start:end])
        out = []
        for at in places[low:high]:
            out += (_ALWAYS_ESCAPED_CHAR.sub(_escaped_char, text[start:at]), self.forms[at])
            start = at + 1
        out.append(_ALWAYS_ESCAPED_CHAR.sub(_escaped_char, text[start:end]))
        return "".join(out)


def _escaped_char(match: re.Match[str]) -> str:
    return _ESCAPED_CHARS[match.group()]


def _break_templater(text: str) -> str:
    return text.replace("<%", "<" + ZWSP + "%")


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)


def _code_language(language: str | None) -> str:
    if not isinstance(language, str):
        return ""
    name = language.strip().lower()
    return name if name in _CODE_LANGUAGES else ""


def _safe_url(url: object) -> str | None:
    """``url`` encoded for a link destination, or None unless its scheme is allowed."""
    if not isinstance(url, str):
        return None
    url = url.strip(_URL_STRIP)
    scheme = _SCHEME.match(url)
    if not scheme or scheme.group(1).lower() not in _LINK_SCHEMES:
        return None
    out = []
    for i, ch in enumerate(url):
        if ch == "&" and _ENTITY_LIKE.match(url, i):
            out.append("&amp;")  # would otherwise be decoded as a character reference
        elif ch in _URL_SAFE or (ch == "%" and _HEX_PAIR.fullmatch(url[i + 1 : i + 3])):
            out.append(ch)
        else:
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _autolink(url: str) -> str | None:
    """``<url>`` for a plain http(s) URL that is safe verbatim, else None."""
    unsafe = _BAD_PERCENT.search(url) or any(pair in url for pair in _AUTOLINK_PAIRS)
    if not _AUTOLINK.fullmatch(url) or unsafe or any(unicodedata.category(c)[0] in "CZ" for c in url):
        return None
    return f"<{url}>"


def _is_tag(text: str) -> bool:
    """Whether ``text`` is a valid Obsidian tag: ``#`` + letters, digits, ``_-/``, not all digits."""
    body = text[1:]
    valid = text.startswith("#") and all(ch.isalnum() or ch in "_-/" for ch in body)
    return valid and not all(ch.isdecimal() for ch in body)


def _to_spans(text: str, entities: Sequence[Entity]) -> list[_Span]:
    """Entities as Python index spans, clamped to the text and snapped out of surrogate pairs."""
    astral = [m.start() for m in _ASTRAL.finditer(text)]
    pair_ends = [index + k + 2 for k, index in enumerate(astral)]  # UTF-16 offset after each pair
    total = len(text) + len(astral)
    spans = []
    for entity in entities:
        offset, length, kind = entity.offset, entity.length, entity.kind
        if not isinstance(offset, int) or not isinstance(length, int):
            continue
        low = min(max(offset, 0), total)
        high = min(max(offset + length, 0), total)
        if high > low:
            kind = kind if isinstance(kind, str) else ""
            start, end = low, high
            if pair_ends:  # pairs wholly before an offset shift it by one each; inside a pair: snap out
                before = bisect_right(pair_ends, low)
                start = low - before - (before < len(pair_ends) and pair_ends[before] - 1 == low)
                end = high - bisect_right(pair_ends, high)
            spans.append(_Span(kind, start, end, entity))
    return spans


def _by_position(items: list[_Span]) -> list[_Span]:
    return sorted(items, key=lambda s: (s.start, s.start - s.end))


def _quote_regions(text: str, spans: list[_Span]) -> list[tuple[int, int, bool]]:
    """Merged blockquote spans without their leading/trailing line breaks."""
    quotes = _by_position([s for s in spans if s.kind == EntityKind.BLOCKQUOTE])
    if not quotes:
        return []
    lines = [(m.start(), m.end()) for m in _LINE_RUN.finditer(text)]
    line_ends = [end for _, end in lines]
    # where text that str.strip() keeps is: one scan per span for a few spans, else an index of it
    solid = [m.start() for m in _SOLID.finditer(text)] if len(quotes) > _FEW_QUOTES else None
    merged: list[tuple[int, int, bool]] = []
    for span in quotes:
        first = bisect_right(line_ends, span.start)  # the first line ending after the span starts
        last = bisect_left(lines, (span.end,)) - 1  # the last line starting before it ends
        if first > last:
            continue  # only line breaks
        start, end = max(span.start, lines[first][0]), min(span.end, lines[last][1])
        if solid is None:
            if _SOLID.search(text, start, end) is None:
                continue
        elif (at := bisect_left(solid, start)) == len(solid) or solid[at] >= end:
            continue
        collapsed = span.entity.collapsed is True
        if merged and start <= merged[-1][1]:
            low, high, was = merged.pop()
            start, end, collapsed = low, max(high, end), was or collapsed
        merged.append((start, end, collapsed))
    return merged


def _span_class(span: _Span) -> tuple[str, str | None] | None:
    """What ``span`` does inside a region (a style kind, ``link``, ``code`` ...) and a link's
    target; None for a span that changes nothing there (plain kinds, links to refused targets)."""
    kind = span.kind
    if kind in _STYLES or kind in _ATOM_KINDS:
        return kind, None
    if kind == EntityKind.TEXT_LINK:
        url = _safe_url(span.entity.url)
        return None if url is None else ("target", url)
    if kind == EntityKind.MENTION_NAME and type(span.entity.user_id) is int:
        return "target", f"tg://user?id={span.entity.user_id}"
    return None


def _spans_by_region(spans: list[_Span], regions: list[tuple[int, int]]) -> list[list[_Span]]:
    """For each region (they partition the text), the spans that matter inside it, clipped to it,
    in their original order.

    A span covering a whole region clips to the same span as any other of its class covering it;
    only the first such span of each class can change the rendering, so only that one is kept.
    Every span also lands, clipped, in the (at most two) regions where it starts or ends: the
    total is O(spans + regions) rather than O(spans x regions).
    """
    if len(regions) == 1:  # no quote: every span is inside, and of those covering all the first per class
        return [_spans_of_one_region(spans, regions[0][1])]
    lows = [low for low, _ in regions]
    inside: list[list[tuple[int, _Span]]] = [[] for _ in regions]
    covering_from: list[list[tuple[int, int, str, _Span, str | None]]] = [[] for _ in regions]

    def clipped(span: _Span, target: str | None, region: int) -> _Span:
        low, high = regions[region]
        return _Span(span.kind, max(span.start, low) - low, min(span.end, high) - low, span.entity, target)

    for index, span in enumerate(spans):
        if span.kind == EntityKind.BLOCKQUOTE or (found := _span_class(span)) is None:
            continue
        kind, target = found
        first, last = bisect_right(lows, span.start) - 1, bisect_right(lows, span.end - 1) - 1
        cover_first = first if span.start <= regions[first][0] else first + 1
        cover_last = last if span.end >= regions[last][1] else last - 1
        for region in {first, last}:
            if not cover_first <= region <= cover_last:
                inside[region].append((index, clipped(span, target, region)))
        if cover_first <= cover_last:
            covering_from[cover_first].append((index, cover_last, kind, span, target))
    covering: dict[str, list[tuple[int, int, str, _Span, str | None]]] = {}  # by class: (index, last region, ...)
    for region, starting in enumerate(covering_from):
        for item in starting:
            heapq.heappush(covering.setdefault(item[2], []), item)
        for heap in covering.values():
            while heap and heap[0][1] < region:
                heapq.heappop(heap)
            if heap:
                index, _, _, span, target = heap[0]
                inside[region].append((index, clipped(span, target, region)))
    return [[span for _, span in sorted(items, key=lambda item: item[0])] for items in inside]


def _spans_of_one_region(spans: list[_Span], high: int) -> list[_Span]:
    """:func:`_spans_by_region` for one region ``[0, high)`` (the spans lie inside it), in span order."""
    kept: list[_Span] = []
    covering: set[str] = set()  # classes with a span covering the whole region kept
    for span in spans:
        if span.kind == EntityKind.BLOCKQUOTE or (found := _span_class(span)) is None:
            continue
        kind, target = found
        if span.start <= 0 and span.end >= high:
            if kind in covering:
                continue
            covering.add(kind)
        kept.append(_Span(span.kind, span.start, span.end, span.entity, target))
    return kept


def _links(spans: list[_Span]) -> list[_Wrap]:
    """Link wrappers (text links and mentions by id) with allowed targets; first one wins."""
    kept: list[_Wrap] = []
    for span in _by_position(spans):
        # in order of start, kept links do not overlap: only the last one can reach this span
        if span.target is not None and (not kept or kept[-1].end <= span.start):
            kept.append(_Wrap(span.start, span.end, 0, "", "[", f"]({span.target})"))
    return kept


def _styles(spans: list[_Span]) -> list[_Wrap]:
    """One wrapper per maximal run of each style (overlapping and adjacent spans merged)."""
    wraps: list[_Wrap] = []
    by_kind: dict[str, list[_Span]] = {}
    for span in spans:
        if span.kind in _STYLES:
            by_kind.setdefault(span.kind, []).append(span)
    for kind, (rank, marker, tag) in _STYLES.items():
        if kind not in by_kind:
            continue
        runs: list[list[int]] = []
        for span in _by_position(by_kind[kind]):
            if runs and span.start <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], span.end)
            else:
                runs.append([span.start, span.end])
        wraps.extend(_Wrap(start, end, rank, marker or "", f"<{tag}>", f"</{tag}>") for start, end in runs)
    return wraps


def _code_candidates(text: str, spans: list[tuple[int, _Span]]) -> list[tuple[int, int, int, str, _Span | None]]:
    """The pieces of code spans, one per line each, as ``(start, end, order, "code", None)``.

    A line that several code spans cover whole is listed once, for the first of them: the others
    would give the same atom later, which overlaps it. Linear in lines plus spans (log spans).
    """
    lines = [(m.start(), m.end()) for m in _LINE_RUN.finditer(text)]
    line_ends = [end for _, end in lines]
    found: list[tuple[int, int, int, str, _Span | None]] = []
    whole_from: list[list[tuple[int, int]]] = [[] for _ in lines]
    for order, span in spans:
        first = bisect_right(line_ends, span.start)
        last = bisect_left(lines, (span.end,)) - 1
        if first > last:
            continue
        whole_first = first if span.start <= lines[first][0] else first + 1
        whole_last = last if span.end >= lines[last][1] else last - 1
        for line in {first, last}:
            if not whole_first <= line <= whole_last:
                start, end = max(span.start, lines[line][0]), min(span.end, lines[line][1])
                found.append((start, end, order, "code", None))
        if whole_first <= whole_last:
            whole_from[whole_first].append((order, whole_last))
    covering: list[tuple[int, int]] = []
    for line, starting in enumerate(whole_from):
        for item in starting:
            heapq.heappush(covering, item)
        while covering and covering[0][1] < line:
            heapq.heappop(covering)
        if covering:
            found.append((*lines[line], covering[0][0], "code", None))
    return found


def _atoms(text: str, spans: list[_Span], links: list[_Wrap]) -> list[_Atom]:
    """Non-overlapping code, pre, autolink and tag atoms; code is split at line breaks.

    Candidates are taken by start (the longest first, then in span order) and kept unless they
    overlap one already kept; a link or tag is checked only then, code only rendered once kept.
    """
    code: list[tuple[int, _Span]] = []
    found: list[tuple[int, int, int, str, _Span | None]] = []
    for order, span in enumerate(spans):
        if span.kind == EntityKind.CODE:
            code.append((order, span))
        elif span.kind in _ATOM_KINDS:
            found.append((span.start, span.end, order, span.kind, span))
    if not found and not code:
        return []
    if code:
        found += _code_candidates(text, code)
    link_starts = [link.start for link in links]
    valid = _PieceCheck(text)
    kept: list[tuple[int, int, str, _Span | None]] = []
    for start, end, _, kind, span in sorted(found, key=lambda c: (c[0], c[0] - c[1], c[2])):
        if kept and kept[-1][1] > start:
            continue  # kept atoms do not overlap and start no later: only the last can reach here
        if kind in (EntityKind.LINK, EntityKind.HASHTAG):
            link = bisect_left(link_starts, end) - 1
            if (link >= 0 and links[link].end > start) or not valid(kind, start, end):
                continue
        if kept and kind == kept[-1][2] == "code" and kept[-1][1] == start:
            start = kept.pop()[0]  # adjacent code spans would glue: make them one
        kept.append((start, end, kind, span))
    return [_Atom(start, end, *_atom_markdown(text[start:end], kind, span)) for start, end, kind, span in kept]


class _PieceCheck:
    """Whether ``text[start:end]`` is an autolink (kind ``link``) or a tag (``hashtag``).

    By the rules themselves (:func:`_autolink`, :func:`_is_tag`) while the pieces checked add up
    to a few times the text; past that (many overlapping candidates) by prefix counts of the
    characters those rules refuse, built once in O(text): O(1) a check, so never O(spans x text).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.budget = 4 * len(text) + 256
        self.counts: dict[str, list[int]] = {}

    def __call__(self, kind: str, start: int, end: int) -> bool:
        text = self.text
        if not self.counts and end - start <= self.budget:
            self.budget -= end - start
            piece = text[start:end]
            return _autolink(piece) is not None if kind == EntityKind.LINK else _is_tag(piece)
        if kind != EntityKind.LINK:
            return text[start] == "#" and not self._any("not tag", start + 1, end) and self._any(
                "not decimal", start + 1, end
            )
        scheme = _AUTOLINK_SCHEME.match(text, start, end)
        if scheme is None or scheme.end() == end or self._any("not url", scheme.end(), end):
            return False
        if self._any("bad percent", start, end) or "%" in text[max(start, end - 2) : end]:
            return False  # a "%" in the last two places lacks its two hex digits
        return not self._any("pair", start, end - 1) and not self._any("control or space", start, end)

    def _any(self, name: str, start: int, end: int) -> bool:
        """Whether some character of ``text[start:end]`` has the property ``name``."""
        if not self.counts:
            text = self.text
            properties = {
                "not tag": (not (ch.isalnum() or ch in "_-/") for ch in text),
                "not decimal": (not ch.isdecimal() for ch in text),
                "not url": (_AUTOLINK_CHAR.fullmatch(ch) is None for ch in text),
                "bad percent": (
                    ch == "%" and not _HEX_PAIR.fullmatch(text[i + 1 : i + 3]) for i, ch in enumerate(text)
                ),
                "pair": (text[i : i + 2] in _AUTOLINK_PAIRS for i in range(len(text))),
                "control or space": (unicodedata.category(ch)[0] in "CZ" for ch in text),
            }
            self.counts = {key: list(accumulate(map(int, flags), initial=0)) for key, flags in properties.items()}
        counts = self.counts[name]
        return end > start and counts[end] > counts[start]


def _atom_markdown(piece: str, kind: str, span: _Span | None) -> tuple[str, str]:
    if kind == "code":
        return "code", code_span(piece)
    if kind == EntityKind.PRE:
        return "pre", code_block(piece, span.entity.language if span else None)
    if kind == EntityKind.LINK:
        return "autolink", _autolink(piece) or ""
    return "tag", piece


class _Emitter:
    """Collects output pieces, keeping opened wrappers properly nested.

    Openers are deferred until non-whitespace text follows (so no marker wraps only whitespace);
    trailing whitespace is moved out past closers.
    """

    def __init__(self) -> None:
        self.pieces: list[_Piece] = []
        self.stack: list[_Wrap] = []
        self.pairs: list[int] = []  # pair numbers of the opened wrappers, stack[: len(pairs)]

    def sync(self, desired: list[_Wrap]) -> None:
        common = 0
        stack = self.stack
        if stack == desired:  # items compared by identity first: the usual case, no wrap opens or closes
            return
        shared = min(len(stack), len(desired))
        while common < shared and stack[common] is desired[common]:  # a wrap equals only itself
            common += 1
        while len(self.stack) > common:
            wrap = self.stack.pop()
            if len(self.stack) < len(self.pairs):
                self._close(wrap, self.pairs.pop())
        self.stack.extend(desired[common:])

    def text(self, text: str) -> None:
        rest = text.lstrip()
        if len(self.pairs) < len(self.stack) and rest:
            self.pieces.append(_Piece(text[: len(text) - len(rest)]))
            for wrap in self.stack[len(self.pairs) :]:
                self.pairs.append(len(self.pieces))
                self.pieces.append(_piece(wrap, "open", self.pairs[-1]))
            text = rest
        self.pieces.append(_Piece(text))

    def block(self, block: str, newline_after: bool) -> None:
        self.sync([])
        tail = next((p.text for p in reversed(self.pieces) if p.text), "")
        if tail and not tail.endswith(("\n", "\r")):
            self.pieces.append(_Piece("\n"))
        self.pieces.append(_Piece(block + ("\n" if newline_after else "")))

    def _close(self, wrap: _Wrap, pair: int) -> None:
        moved = ""
        while self.pieces and self.pieces[-1].role == "" and self.pieces[-1].text[-1:].isspace():
            text = self.pieces.pop().text
            kept = text.rstrip()
            moved = text[len(kept) :] + moved
            if kept:
                self.pieces.append(_Piece(kept))
                break
        self.pieces.append(_piece(wrap, "close", pair))
        self.pieces.append(_Piece(moved))

    def result(self) -> str:
        """The output, with the pairs CommonMark would misread written as HTML tags.

        Repeatedly the first misread run (see :func:`_misread_pair`) has its pair turned into tags,
        which can only change the runs next to those two pieces. So runs are checked once, left to
        right, and after a change only the runs next to the changed pieces are checked again
        (earliest first, before the scan goes on): the same pairs as rescanning from the start
        after every change, in O(pieces log pieces).
        """
        pieces = [p for p in self.pieces if p.text]
        where: dict[int, list[int]] = {}
        for at, piece in enumerate(pieces):
            if piece.html:
                where.setdefault(piece.pair, []).append(at)
        recheck: list[int] = []  # pieces, before ``scan``, whose run may have changed
        scan = 0  # every run before it reads as meant, except those holding a piece in ``recheck``
        while True:
            bad = None
            while bad is None and recheck and recheck[0] < scan:
                at = heapq.heappop(recheck)
                if pieces[at].html:
                    first = _run_start(pieces, at)
                    bad = _misread_pair(pieces, first, _run_end(pieces, first))
            while bad is None and scan < len(pieces):
                if not pieces[scan].html:
                    scan += 1
                    continue
                last = _run_end(pieces, scan)
                bad = _misread_pair(pieces, scan, last)
                if bad is None:
                    scan = last + 1
            if bad is None:
                return "".join(p.text for p in pieces)
            for at in where.pop(bad):
                pieces[at] = _Piece(pieces[at].html, pieces[at].role)
                for near in (at - 1, at + 1):
                    if 0 <= near < len(pieces):
                        heapq.heappush(recheck, near)


def _piece(wrap: _Wrap, role: str, pair: int) -> _Piece:
    html = wrap.opener if role == "open" else wrap.closer
    return _Piece(wrap.marker, role, pair, html) if wrap.marker else _Piece(html, role)


def _is_space(ch: str) -> bool:
    return ch == "" or ch in " \t\n\r\f" or unicodedata.category(ch) == "Zs"


def _is_punct(ch: str) -> bool:
    return ch != "" and unicodedata.category(ch)[0] in "PS"


def _run_start(pieces: list[_Piece], at: int) -> int:
    """The first piece of the delimiter run holding ``pieces[at]`` (delimiters of one character)."""
    while at > 0 and pieces[at - 1].html and pieces[at - 1].text[0] == pieces[at].text[0]:
        at -= 1
    return at


def _run_end(pieces: list[_Piece], first: int) -> int:
    """The last piece of the delimiter run starting at ``pieces[first]``."""
    last = first
    while last + 1 < len(pieces) and pieces[last + 1].html and pieces[last + 1].text[0] == pieces[first].text[0]:
        last += 1
    return last


def _misread_pair(pieces: list[_Piece], first: int, last: int) -> int | None:
    """The pair of a delimiter of the run ``pieces[first : last + 1]`` that CommonMark would not
    read as meant, or None.

    A run of openers must be left-flanking and a run of closers right-flanking. A ``*`` opener run
    must not be right-flanking too: it could close an enclosing ``*`` style. (Closers pair with the
    nearest opener; with only ``*`` and ``**`` properly nested, the rule of 3 never forbids that.)
    A run mixing openers and closers (a style closed and reopened between two characters) never
    works.
    """
    prev = pieces[first - 1].text[-1] if first else ""
    nxt = pieces[last + 1].text[0] if last + 1 < len(pieces) else ""
    left = not _is_space(nxt) and (not _is_punct(nxt) or _is_space(prev) or _is_punct(prev))
    right = not _is_space(prev) and (not _is_punct(prev) or _is_space(nxt) or _is_punct(nxt))
    strict = pieces[first].text[0] == "*"
    run = pieces[first : last + 1]
    roles = {p.role for p in run}
    if roles == {"open"} and not (left and not (strict and right)):
        return pieces[first].pair
    if roles == {"close"} and not right:
        return pieces[last].pair
    if len(roles) > 1:
        return next(p.pair for p in run if p.role == "open")
    return None


def _render_inline(text: str, spans: list[_Span]) -> str:
    if not spans:
        return escape_text(text)  # the same as the general path without spans, at a fraction of its cost
    links = _links(spans)
    atoms = _atoms(text, spans, links)
    wraps = sorted(_styles(spans) + links, key=_Wrap.key)
    newlines = [m.start() for m in _NEWLINE.finditer(text)]
    after_newlines = {i + 1 for i in newlines}
    esc = _Escaped(text, {0} | after_newlines | {a.end for a in atoms if a.kind == "pre"})
    cuts = {0, len(text), *newlines} | after_newlines
    for item in (*wraps, *atoms):
        cuts |= {item.start, item.end}
    bounds = sorted(cuts)
    atom_at = {atom.start: atom for atom in atoms}
    emit = _Emitter()
    active: list[_Wrap] = []  # the wraps holding ``i``, in the order of ``wraps`` (at most one per style, a link)
    waiting = 0  # wraps[waiting:] start after ``i``
    i = 0
    while i < len(text):
        while waiting < len(wraps) and wraps[waiting].start <= i:
            active.append(wraps[waiting])
            waiting += 1
        active = [w for w in active if w.end > i]
        atom = atom_at.get(i)
        if atom is None:
            end = bounds[bisect_right(bounds, i)]
            emit.sync([] if text[i] in _NEWLINES else active)
            emit.text(esc.piece(i, end))
        elif atom.kind == "pre":
            end = atom.end
            emit.block(atom.markdown, end < len(text) and text[end] not in _NEWLINES)
        else:
            end = atom.end
            emit.sync([w for w in active if atom.end <= w.end])
            emit.text(atom.markdown)
        i = end
    emit.sync([])
    return emit.result()


def _quote(body: str, collapsed: bool) -> str:
    lines = ["> [!quote]-"] if collapsed else []
    lines += [f"> {line}" if line else ">" for line in _LINE_BREAK.split(body)]
    return "\n".join(lines)


class _Output:
    """The Markdown of a message, built by appending regions: linear in its length."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.breaks = ""  # the line breaks that end the output so far

    def put(self, chunk: str, breaks: int) -> None:
        """Append ``chunk``; its content starts after at least ``breaks`` line breaks (unless first)."""
        rest = chunk.lstrip(_NEWLINES)
        self._append(chunk[: len(chunk) - len(rest)])
        if rest and self.chunks:
            self._append("\n" * max(0, breaks - len(_LINE_BREAK.findall(self.breaks))))
        self._append(rest)

    def _append(self, chunk: str) -> None:
        if chunk:
            self.chunks.append(chunk)
            content = chunk.rstrip(_NEWLINES)
            self.breaks = chunk[len(content) :] if content else self.breaks + chunk

    def text(self) -> str:
        return "".join(self.chunks)
