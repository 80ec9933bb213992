"""Untrusted text made safe outside the note body: the inert-text rule, and file and folder names.

Two jobs for text that comes from Telegram or an export: the inert-text rule (first), and safe
file and folder names with Obsidian's name identity (after it).

Names, titles, file names, captions and every other string that comes from Telegram or an export
end up in places Obsidian and its plugins read as more than text: property values (Templater runs
every ``<% %>`` of a new file, frontmatter included; ``"[[x]]"`` in a property is a live link),
aliases, wikilink labels, tags, and file and folder names. :func:`inert_text` is the one function
that makes such text inert, wherever it lands (the template values of :mod:`tobs_sync.views`,
wikilink labels, chat folders and media file names use it). It breaks each trigger, minimally:

* a zero-width space (U+200B) goes between the two characters that would start or end one:
  ``<%`` (every Templater tag: ``<%*``, ``<%+``, ``<%-``, ``<%_``) and any ``<`` opening an HTML tag,
  comment or autolink (``<a``, ``</``, ``<!``, ``<?``); ``%>`` (``-%>``, ``_%>``); Obsidian comments
  ``%%``; wikilinks ``[[`` and ``]]``; embeds and images ``![``; Dataview inline fields ``::``;
  a backtick opening an inline query or control (Dataview ``=`` and ``$=``, Meta Bind ``INPUT[``,
  ``VIEW[``, ``BUTTON[``, spaces before them allowed); ``#`` starting a tag (``#x``, not ``#5``);
* in a run of three or more backticks or tildes (a code fence, whose language plugins such as
  ``dataviewjs`` run), every third one becomes its lookalike (U+02CB, U+02DC): a separator would
  not survive file names, which drop invisible characters.

So the text reads as it was sent (the separator is invisible), nothing in it runs, links, embeds,
hides, tags or adds fields, and it is idempotent: :func:`live_triggers` finds exactly what
:func:`inert_text` changes, and text without triggers comes back unchanged. Markdown formatting
(``**bold**``, a heading) is not a trigger: a template that puts inert text into the note body
still wants the escaped ``_md`` values (:mod:`tobs_sync.markdown`).

Escaped Markdown needs one part of the rule too: Templater reads the raw file and ignores Markdown
escapes, so :func:`inert_markdown` breaks ``<%``/``%>`` in Markdown that :mod:`tobs_sync.markdown`
made (``\\%>`` there is still a closing tag to Templater) and changes nothing else.
:func:`tag_segment` makes one tag segment (``telegram/<segment>``) out of untrusted text, under
Obsidian's tag rules; it cannot hold a trigger.

File and folder names: :func:`sanitize_component` / :func:`sanitize_filename` turn untrusted text
(chat titles, Telegram file names) into one path component valid on Windows, macOS, Linux, Android
and iOS and inside ``[[wikilinks]]``, at most :data:`NAME_MAX_BYTES` UTF-8 bytes by default;
:func:`numbered_name` makes ``Note 2.md`` of ``Note.md`` within the same limit. :func:`path_key`
is Obsidian's name identity: two names or vault paths with one key are one note to Obsidian (and
one file on a case-insensitive file system). Distinct names are the caller's job (the vault writer
numbers a taken name); nothing here touches the disk.

Limits: URLs stay URLs (a property or body URL is clickable, as in Telegram; a click is the
user's act). The rule covers the syntax of Obsidian, Templater, Dataview and Meta Bind; a plugin
with its own inline syntax in plain text is not covered. The separator is invisible in Obsidian,
so a search for the exact text (``<%``) does not find inert text; the text as sent stays in the
state database and reaches templates that ask for it by name (``raw``). Truncating a name keeps
combining marks, ZWJ sequences, emoji modifiers and flag pairs whole, not every extended grapheme
cluster. A sanitised name is safe, not inert: callers that want both apply :func:`inert_text` first.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from tobs_sync.markdown import ZWSP, escape_inline

__all__ = [
    "FORBIDDEN_CHARS",
    "NAME_MAX_BYTES",
    "RESERVED_NAMES",
    "inert_markdown",
    "inert_text",
    "inert_value",
    "live_triggers",
    "md",
    "numbered_name",
    "path_key",
    "sanitize_component",
    "sanitize_filename",
    "tag_segment",
]

NAME_MAX_BYTES = 200
"""Byte limit of one file or folder name made from untrusted text (the sanitisers' default):
it leaves room for `` 2`` suffixes, sync-conflict copies and the folders above within 255/260."""

FORBIDDEN_CHARS = frozenset('\\/:*?"<>|#^[]%`')  # illegal on some OS, or meaningful in links
# Windows device names, reserved with any extension too (``NUL.md``); compared upper-cased.
RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{prefix}{digit}" for prefix in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)

# Invisible format characters that disguise names: soft hyphen, bidi marks, embeddings, overrides
# and isolates, zero-width space, word joiner, BOM. ZWJ/ZWNJ stay (emoji, Indic and Persian text).
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
_EDGE_STRIP = " .\u200c\u200d"  # stripped from both ends: trailing dot/space, hidden leading dot
_ZWJ = "\u200d"
_JOINERS = "\u200c\u200d"
"""Zero-width non-joiner and joiner: shaping hints inside words (Persian, Indic scripts, emoji)."""
_FORBIDDEN_CLASS = "[" + re.escape("".join(sorted(FORBIDDEN_CHARS))) + "]"
_FORBIDDEN_RUN = re.compile(rf"[\s-]*{_FORBIDDEN_CLASS}(?:[\s-]*{_FORBIDDEN_CLASS})*[\s-]*")
_WHITESPACE_RUN = re.compile(r"\s+")
_REGIONAL = "".join(map(chr, range(0x1F1E6, 0x1F200)))  # regional indicators: two make one flag
_PLAIN_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")

_OBSIDIAN_TAG_STOP = "\u2000-\u206f\u2e00-\u2e7f'!\"#$%&()*+,.:;<=>?@^`{|}~\\[\\]\\\\\\s"
"""What ends a tag in Obsidian: spaces, ASCII punctuation but ``-_/``, general punctuation."""

_BREAK_AFTER = re.compile(
    "|".join(
        (
            r"<(?=[%!?/A-Za-z])",  # Templater tags, HTML tags and comments, autolinks
            r"%(?=[%>])",  # Templater closing tags, Obsidian comments
            r"\[(?=\[)|\](?=\])",  # wikilinks
            r"!(?=\[)",  # embeds and images
            r":(?=:)",  # Dataview inline fields
            r"`(?=\s*(?:\$?=|(?i:INPUT|VIEW|BUTTON)\[))",  # Dataview queries, Meta Bind
            rf"#(?=[0-9]*[^{_OBSIDIAN_TAG_STOP}0-9])",  # tags (``#1984`` is none: all digits)
        )
    )
)
"""The first character of a trigger: a separator goes right after it."""

_SEPARATED = "\\g<0>" + ZWSP
_TEMPLATER_AFTER = re.compile(r"<(?=%)|%(?=>)")
_FENCE_CHARS = {"`": "\u02cb", "~": "\u02dc"}
_DASH_RUN = re.compile(r"-{2,}")


def inert_text(text: str) -> str:
    """``text`` with every trigger broken (see the module docstring); idempotent."""
    if not text:
        return text
    unfenced = _break_fences(text) if "`" in text or "~" in text else text
    if _BREAK_AFTER.search(unfenced) is None:  # most text: no trigger, and no replacement template to expand
        return unfenced
    return _BREAK_AFTER.sub(_SEPARATED, unfenced)


def inert_markdown(markdown: str) -> str:
    """Escaped Markdown with Templater's ``<%`` and ``%>`` broken, which Markdown escapes do not stop."""
    if "<%" not in markdown and "%>" not in markdown:  # what _TEMPLATER_AFTER would find, found faster
        return markdown
    return _TEMPLATER_AFTER.sub(_SEPARATED, markdown)


def md(text: str) -> str:
    """Untrusted ``text`` for the note body: escaped Markdown that Templater cannot read either
    (the ``_md`` template values and the ``md`` filter)."""
    return inert_markdown(escape_inline(text))


def inert_value(value: Any) -> Any:
    """``value`` with every string in it made inert: lists, tuples and mappings (keys too) included."""
    kind = type(value)
    if kind is int or kind is float or kind is bool or value is None:
        return value  # what the checks below find for them, without asking whether they are mappings
    if kind is str:
        return inert_text(value)
    if kind is dict:
        return {inert_value(k): inert_value(v) for k, v in value.items()}
    if isinstance(value, str):
        return inert_text(value)
    if isinstance(value, Mapping):
        return {inert_value(k): inert_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [inert_value(v) for v in value]
    return value


def live_triggers(text: str) -> list[str]:
    """The triggers in ``text`` that :func:`inert_text` breaks: the two characters a separator goes
    between, and every run of three backticks or tildes."""
    fences = [text[index] * 3 for index in _fence_breaks(text)]
    unfenced = _break_fences(text)
    return fences + [unfenced[m.start() : m.end() + 1] for m in _BREAK_AFTER.finditer(unfenced)]


def tag_segment(text: str, fallback: str) -> str:
    """One segment of an Obsidian tag (no ``#``, no ``/``) for untrusted ``text``.

    NFC, case-folded (tags are case-insensitive); letters, digits, ``_`` and ``-`` are kept, and
    combining marks with the letter they belong to (Arabic harakat, Devanagari vowel signs and
    virama); zero-width joiners and non-joiners inside a word are dropped (Obsidian ends a tag at
    them) rather than splitting it; every run of anything else becomes one ``-``, and a mark left
    without its letter goes too; ``-`` and ``_`` are trimmed at the ends. Empty or all digits
    (``#1984`` is no tag) gives ``fallback``, which must be a valid segment.
    """
    kept: list[str] = []
    for ch in unicodedata.normalize("NFC", text).casefold():
        if ch in _JOINERS:
            continue
        if unicodedata.category(ch).startswith("M"):
            if kept and (kept[-1].isalnum() or unicodedata.category(kept[-1]).startswith("M")):
                kept.append(ch)
            continue
        kept.append(ch if ch.isalnum() or ch in "_-" else "-")
    segment = _DASH_RUN.sub("-", "".join(kept)).strip("-_")
    return fallback if not segment or segment.isdigit() else segment


def _is_ignorable(ch: str) -> bool:
    """Invisible characters a file name drops (controls, format characters such as U+200B): a run of
    fence characters is counted across them, so dropping them later cannot join a run of three."""
    category = unicodedata.category(ch)
    return category in ("Cf", "Cs") or (category == "Cc" and ch not in "\t\n\x0b\x0c\r") or "\u2060" <= ch <= "\u206f"


def _fence_breaks(text: str) -> list[int]:
    """Indices of every third backtick or tilde of a run (invisible characters inside a run ignored)."""
    if text.count("`") < 3 and text.count("~") < 3:
        return []  # a run of three needs three of one character
    breaks: list[int] = []
    run_char, run = "", 0
    for index, ch in enumerate(text):
        if _is_ignorable(ch):
            continue
        run = run + 1 if ch == run_char else 1
        run_char = ch
        if ch in _FENCE_CHARS and run == 3:
            breaks.append(index)
            run_char, run = "", 0
    return breaks


def _break_fences(text: str) -> str:
    """Every third backtick or tilde of a run becomes its lookalike, so no run of three is left."""
    breaks = _fence_breaks(text)
    if not breaks:
        return text
    chars = list(text)
    for index in breaks:
        chars[index] = _FENCE_CHARS[chars[index]]
    return "".join(chars)


# --- file and folder names ---------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # pure; note paths repeat their chat, year and month parts
def sanitize_component(name: str, *, fallback: str = "untitled", max_bytes: int = NAME_MAX_BYTES) -> str:
    """One safe path component (no extension handling: see :func:`sanitize_filename`).

    NFC-normalised; control and invisible format characters (bidi overrides, zero-width space)
    dropped; whitespace collapsed to single spaces; runs of ``\\ / : * ? " < > | # ^ [ ] %`` and
    backtick, with the spaces and hyphens around them, become ``-`` (`` - `` if spaces were
    involved) or vanish at either end (``[[x]]`` -> ``x``); leading and trailing spaces and dots
    stripped; Windows device names get ``_`` after the stem (``con.md`` -> ``con_.md``); cut to
    ``max_bytes`` UTF-8 bytes at a character boundary, keeping combining marks with their base.
    An empty result becomes ``fallback`` (itself sanitised). Idempotent.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
    cleaned = _clean(name)
    result = _fit(cleaned, max_bytes) if cleaned else ""
    if not result:
        result = _fit(_clean(fallback), max_bytes) or "_"
    return result


def sanitize_filename(name: str, *, fallback_stem: str, max_bytes: int = NAME_MAX_BYTES) -> str:
    """A safe file name whose extension survives: stem and extension are sanitised separately.

    The extension is what follows the last dot if that is 1-10 ASCII letters and digits; it is
    lower-cased. Any other suffix (``v2 final``, ``obsidian/x``) stays part of the stem.
    Truncation only ever shortens the stem; an empty stem becomes ``fallback_stem``.
    """
    result = _filename_once(name, fallback_stem, max_bytes)
    for _ in range(3):  # converge: a cut stem can expose a new "extension" ("x..ab cd" -> "x..ab")
        result, previous = _filename_once(result, fallback_stem, max_bytes), result
        if result == previous:
            break
    return result


def _filename_once(name: str, fallback_stem: str, max_bytes: int) -> str:
    stem, dot, suffix = name.strip().rpartition(".")
    if not dot or not _PLAIN_EXTENSION.fullmatch(suffix):
        return sanitize_component(name, fallback=fallback_stem, max_bytes=max_bytes)
    extension = suffix.lower()
    budget = max_bytes - len(extension) - 1
    if budget < 1:
        raise ValueError(f"max_bytes={max_bytes} leaves no room for a stem before .{extension}")
    return f"{sanitize_component(stem, fallback=fallback_stem, max_bytes=budget)}.{extension}"


def _clean(name: str) -> str:
    """Sanitise without a length limit; may return ''."""
    plain_ascii = name.isascii() and name.isprintable()  # nothing for _visible to drop, already NFC
    text = name if plain_ascii else unicodedata.normalize("NFC", "".join(map(_visible, name)))
    text = _WHITESPACE_RUN.sub(" ", text).strip(_EDGE_STRIP)
    text = _FORBIDDEN_RUN.sub(_replace_forbidden_run, text).strip(_EDGE_STRIP)
    return _unreserve(text)


def _visible(ch: str) -> str:
    """Whitespace as a space; controls, lone surrogates and invisible format characters dropped."""
    if ch in "\t\n\x0b\x0c\r" or (ch.isspace() and ch > "\x9f"):
        return " "
    return "" if _INVISIBLE.match(ch) or unicodedata.category(ch) in ("Cc", "Cs") else ch


def _replace_forbidden_run(match: re.Match[str]) -> str:
    if match.start() == 0 or match.end() == len(match.string):
        return ""
    return " - " if any(ch.isspace() for ch in match.group()) else "-"


def _reserved_stem(name: str) -> int:
    """Length of ``name``'s stem if Windows reads it as a device name (up to the first dot, spaces
    ignored: ``nul .md``), else 0."""
    stem = name.split(".", 1)[0].rstrip(" ")
    return len(stem) if stem.upper() in RESERVED_NAMES else 0


def _unreserve(name: str) -> str:
    cut = _reserved_stem(name)
    return f"{name[:cut]}_{name[cut:]}" if cut else name


def _fit(text: str, max_bytes: int) -> str:
    """Truncate to ``max_bytes`` and make sure the cut left no trailing dot or device name."""
    text = _truncate_utf8(text, max_bytes).rstrip(_EDGE_STRIP)
    if cut := _reserved_stem(text):  # e.g. "CONSOLE" cut to 3 bytes
        text = _truncate_utf8(text[:cut], max_bytes - 1) + "_" + text[cut:]
        text = _truncate_utf8(text, max_bytes).rstrip(_EDGE_STRIP)
    return text


def _extends_previous(ch: str) -> bool:
    """True for characters that belong to the grapheme before them."""
    return (
        unicodedata.category(ch).startswith("M")
        or ch == _ZWJ
        or "\U0001f3fb" <= ch <= "\U0001f3ff"  # emoji skin-tone modifiers
        or "\U000e0020" <= ch <= "\U000e007f"  # emoji tag sequences (subdivision flags)
    )


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes ending at a grapheme edge."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    byte_cut = len(encoded[:max_bytes].decode("utf-8", "ignore"))
    cut = byte_cut
    while cut > 0 and (_extends_previous(text[cut]) or text[cut - 1] == _ZWJ):
        cut -= 1
    if cut > 0 and text[cut] in _REGIONAL:  # an odd run of flag halves before the cut: last one
        cut -= (cut - len(text[:cut].rstrip(_REGIONAL))) % 2  # pairs with text[cut]
    return text[: cut or byte_cut]


def _split_extension(name: str) -> tuple[str, str]:
    """``("Note", ".md")`` for ``Note.md``; no extension unless it is 1-10 ASCII alphanumerics."""
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and _PLAIN_EXTENSION.fullmatch(suffix):
        return stem, f".{suffix}"
    return name, ""


def numbered_name(name: str, number: int, *, max_bytes: int = NAME_MAX_BYTES) -> str:
    """``name`` with `` <number>`` before its extension (``Note.md`` -> ``Note 2.md``), the stem cut
    at a grapheme edge so the result fits in ``max_bytes`` UTF-8 bytes (``_`` if nothing is left)."""
    stem, extension = _split_extension(name)
    tail = f" {number}{extension}"
    stem_part = _truncate_utf8(stem, max_bytes - len(tail.encode("utf-8"))).rstrip(_EDGE_STRIP)
    return f"{stem_part or '_'}{tail}"


def path_key(name: str) -> str:
    """The key under which Obsidian (and case-insensitive file systems) see two names or vault
    paths as one: Unicode NFC, case-folded. The store indexes note and media paths by it."""
    return unicodedata.normalize("NFC", name).casefold()
