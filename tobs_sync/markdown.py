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
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
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
_AUTOLINK = re.compile(r"https?://[^\s<>`\\\"\[\]{}|^$]+", re.IGNORECASE)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class _Span:
    kind: str
    start: int
    end: int
    entity: Entity


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class _Atom:
    """Text rendered as one unit: ``code``, ``pre`` (a block), ``autolink`` or ``tag``."""

    start: int
    end: int
    kind: str
    markdown: str


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    role: str = ""  # "open", "close" or "" (content)
    pair: int = -1  # the same number on an opener and its closer
    html: str = ""  # the HTML form of a delimiter (empty: ``text`` is final)


def escape_text(text: str) -> str:
    """Escape plain untrusted text for a Markdown body; newlines are kept."""
    return "".join(_escape_chars(text, _line_starts(text)))


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
    spans = _to_spans(text, entities)
    out, pos, after_quote = "", 0, False
    for start, end, collapsed in _quote_regions(text, spans):
        plain = _render_region(text, spans, pos, start)
        out = _put(out, plain, 2 if after_quote else 0)
        after_quote = after_quote and not plain.strip(_NEWLINES)
        out = _put(out, _quote(_render_region(text, spans, start, end), collapsed), 2 if after_quote else 1)
        pos, after_quote = end, True
    return _put(out, _render_region(text, spans, pos, len(text)), 2 if after_quote else 0)


def _line_starts(text: str) -> set[int]:
    return {0} | {i + 1 for i, ch in enumerate(text) if ch in _NEWLINES}


def _escape_chars(text: str, line_starts: set[int]) -> list[str]:
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
    unsafe = _BAD_PERCENT.search(url) or any(pair in url for pair in ("==", "~~", "::"))
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
            spans.append(_Span(kind, bisect_right(units, low) - 1, bisect_left(units, high), entity))
    return spans


def _overlaps(a: _Span | _Wrap | _Atom, b: _Span | _Wrap | _Atom) -> bool:
    return a.start < b.end and b.start < a.end


def _by_position(items: list[_Span]) -> list[_Span]:
    return sorted(items, key=lambda s: (s.start, s.start - s.end))


def _quote_regions(text: str, spans: list[_Span]) -> list[tuple[int, int, bool]]:
    """Merged blockquote spans without their leading/trailing line breaks."""
    merged: list[tuple[int, int, bool]] = []
    for span in _by_position([s for s in spans if s.kind == EntityKind.BLOCKQUOTE]):
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


def _links(spans: list[_Span]) -> list[_Wrap]:
    """Link wrappers (text links and mentions by id) with allowed targets; first one wins."""
    kept: list[_Wrap] = []
    for span in _by_position(spans):
        if span.kind == EntityKind.TEXT_LINK:
            url = _safe_url(span.entity.url)
        elif span.kind == EntityKind.MENTION_NAME and type(span.entity.user_id) is int:
            url = f"tg://user?id={span.entity.user_id}"
        else:
            continue
        if url is not None and not any(_overlaps(span, link) for link in kept):
            kept.append(_Wrap(span.start, span.end, 0, "", "[", f"]({url})"))
    return kept


def _styles(spans: list[_Span]) -> list[_Wrap]:
    """One wrapper per maximal run of each style (overlapping and adjacent spans merged)."""
    wraps: list[_Wrap] = []
    for kind, (rank, marker, tag) in _STYLES.items():
        runs: list[list[int]] = []
        for span in _by_position([s for s in spans if s.kind == kind]):
            if runs and span.start <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], span.end)
            else:
                runs.append([span.start, span.end])
        wraps.extend(_Wrap(start, end, rank, marker or "", f"<{tag}>", f"</{tag}>") for start, end in runs)
    return wraps


def _atoms(text: str, spans: list[_Span], links: list[_Wrap]) -> list[_Atom]:
    """Non-overlapping code, pre, autolink and tag atoms; code is split at line breaks."""
    found: list[_Atom] = []
    for span in spans:
        piece = text[span.start : span.end]
        if span.kind == EntityKind.CODE:
            for line in re.finditer(r"[^\r\n]+", piece):
                start, end = span.start + line.start(), span.start + line.end()
                found.append(_Atom(start, end, "code", code_span(line.group())))
        elif span.kind == EntityKind.PRE:
            found.append(_Atom(span.start, span.end, "pre", code_block(piece, span.entity.language)))
        elif any(_overlaps(span, link) for link in links):
            continue
        elif span.kind == EntityKind.LINK and (autolink := _autolink(piece)):
            found.append(_Atom(span.start, span.end, "autolink", autolink))
        elif span.kind == EntityKind.HASHTAG and _is_tag(piece):
            found.append(_Atom(span.start, span.end, "tag", piece))
    kept: list[_Atom] = []
    for atom in sorted(found, key=lambda a: (a.start, a.start - a.end)):
        if any(_overlaps(atom, other) for other in kept):
            continue
        if kept and atom.kind == kept[-1].kind == "code" and kept[-1].end == atom.start:
            start = kept.pop().start  # adjacent code spans would glue: make them one
            atom = _Atom(start, atom.end, "code", code_span(text[start : atom.end]))
        kept.append(atom)
    return kept


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
        pieces = [p for p in self.pieces if p.text]
        as_html: set[int] = set()
        while True:
            final = [_Piece(p.html, p.role) if p.pair in as_html else p for p in pieces]
            bad = _bad_delimiter(final)
            if bad is None:
                return "".join(p.text for p in final)
            as_html.add(bad)


def _piece(wrap: _Wrap, role: str, pair: int) -> _Piece:
    html = wrap.opener if role == "open" else wrap.closer
    return _Piece(wrap.marker, role, pair, html) if wrap.marker else _Piece(html, role)


def _is_space(ch: str) -> bool:
    return ch == "" or ch in " \t\n\r\f" or unicodedata.category(ch) == "Zs"


def _is_punct(ch: str) -> bool:
    return ch != "" and unicodedata.category(ch)[0] in "PS"


def _bad_delimiter(pieces: list[_Piece]) -> int | None:
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


def _render_region(text: str, spans: list[_Span], low: int, high: int) -> str:
    """Render ``text[low:high]`` (which starts a line) with the non-quote entities inside it."""
    sub = text[low:high]
    clipped = [
        _Span(s.kind, max(s.start, low) - low, min(s.end, high) - low, s.entity)
        for s in spans
        if s.kind != EntityKind.BLOCKQUOTE and s.start < high and s.end > low
    ]
    return _render_inline(sub, clipped)


def _render_inline(text: str, spans: list[_Span]) -> str:
    links = _links(spans)
    atoms = _atoms(text, spans, links)
    wraps = sorted(_styles(spans) + links, key=_Wrap.key)
    esc = _escape_chars(text, _line_starts(text) | {a.end for a in atoms if a.kind == "pre"})
    cuts = {0, len(text)} | {i for i, ch in enumerate(text) if ch in _NEWLINES}
    cuts |= {i + 1 for i, ch in enumerate(text) if ch in _NEWLINES}
    for item in (*wraps, *atoms):
        cuts |= {item.start, item.end}
    bounds = sorted(cuts)
    atom_at = {atom.start: atom for atom in atoms}
    emit = _Emitter()
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


def _quote(body: str, collapsed: bool) -> str:
    lines = ["> [!quote]-"] if collapsed else []
    lines += [f"> {line}" if line else ">" for line in _LINE_BREAK.split(body)]
    return "\n".join(lines)


def _put(out: str, chunk: str, breaks: int) -> str:
    """Append ``chunk``; its content starts after at least ``breaks`` line breaks (unless first)."""
    rest = chunk.lstrip(_NEWLINES)
    out += chunk[: len(chunk) - len(rest)]
    if rest and out:
        have = len(_LINE_BREAK.findall(out[len(out.rstrip(_NEWLINES)) :]))
        out += "\n" * max(0, breaks - have)
    return out + rest
