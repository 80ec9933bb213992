"""Untrusted text made inert outside the note body: one rule, owned here.

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

Limits: URLs stay URLs (a property or body URL is clickable, as in Telegram; a click is the
user's act). The rule covers the syntax of Obsidian, Templater, Dataview and Meta Bind; a plugin
with its own inline syntax in plain text is not covered. The separator is invisible in Obsidian,
so a search for the exact text (``<%``) does not find inert text; the text as sent stays in the
state database and reaches templates that ask for it by name (``raw``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from tobs_sync.markdown import ZWSP, escape_inline

__all__ = ["NAME_MAX_BYTES", "inert_markdown", "inert_text", "inert_value", "live_triggers", "md", "tag_segment"]

NAME_MAX_BYTES = 200
"""Byte limit of one file or folder name made from untrusted text (the vault's sanitiser default):
it leaves room for `` 2`` suffixes, sync-conflict copies and the folders above within 255/260."""

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
    return _BREAK_AFTER.sub(_SEPARATED, _break_fences(text))


def inert_markdown(markdown: str) -> str:
    """Escaped Markdown with Templater's ``<%`` and ``%>`` broken, which Markdown escapes do not stop."""
    return _TEMPLATER_AFTER.sub(_SEPARATED, markdown)


def md(text: str) -> str:
    """Untrusted ``text`` for the note body: escaped Markdown that Templater cannot read either
    (the ``_md`` template values and the ``md`` filter)."""
    return inert_markdown(escape_inline(text))


def inert_value(value: Any) -> Any:
    """``value`` with every string in it made inert: lists, tuples and mappings (keys too) included."""
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

    NFC, case-folded (tags are case-insensitive); letters, digits, combining marks, ``_`` and ``-``
    are kept, every run of anything else becomes one ``-``; ``-`` and ``_`` are trimmed at the ends.
    Empty or all digits (``#1984`` is no tag) gives ``fallback``, which must be a valid segment.
    """
    kept = [
        ch if ch.isalnum() or ch in "_-" or unicodedata.category(ch).startswith("M") else "-"
        for ch in unicodedata.normalize("NFC", text).casefold()
    ]
    segment = _DASH_RUN.sub("-", "".join(kept)).strip("-_")
    return fallback if not segment or segment.isdigit() else segment


def _is_ignorable(ch: str) -> bool:
    """Invisible characters a file name drops (controls, format characters such as U+200B): a run of
    fence characters is counted across them, so dropping them later cannot join a run of three."""
    category = unicodedata.category(ch)
    return category in ("Cf", "Cs") or (category == "Cc" and ch not in "\t\n\x0b\x0c\r") or "\u2060" <= ch <= "\u206f"


def _fence_breaks(text: str) -> list[int]:
    """Indices of every third backtick or tilde of a run (invisible characters inside a run ignored)."""
    if "`" not in text and "~" not in text:
        return []
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
