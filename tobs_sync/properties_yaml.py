"""Note properties -> YAML text, fast, and byte for byte what PyYAML's safe dumper writes.

PyYAML's emitter is pure Python and was the largest single cost of rendering a note. Note
properties are a flat mapping (text keys; text, numbers, booleans, dates, datetimes or lists of
those), so most of them need only two of YAML's scalar styles, plain and single-quoted, without
line breaks of their own. :func:`dump_properties` writes those itself, deciding each scalar's style
by the same rules as PyYAML's ``Emitter`` (its scalar analysis and ``choose_scalar_style``) and the
same implicit-type resolver, folding long lines at the same spaces (a port of ``write_plain`` and
``write_single_quoted``), and hands the whole mapping to PyYAML when any of it falls outside that
class. The result is always what ``yaml.dump(properties, Dumper=dumper,
default_flow_style=False, allow_unicode=True, sort_keys=False)`` returns, so a vault written by
an earlier version never sees its notes rewritten.

Handed to PyYAML (limits of the fast path): a key of 123 characters or more; text with line
breaks, tabs or other characters PyYAML double-quotes; a value of any other type than exactly
``str``, ``int``, ``float``, ``bool``, ``date`` or ``datetime`` (a subclass such as an enum or an
aware-datetime library type); a scalar whose text does not read back as its own type (a date
before year 1000); an empty list or mapping; and the same date object appearing twice, which
PyYAML writes as an anchor and an alias.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import yaml

FOLD_WIDTH = 80
"""PyYAML's default ``best_width``: past this column a single space in a scalar becomes a line break."""
_INDENT = 2
_CONTINUATION = "\n" + " " * _INDENT
_SIMPLE_KEY_MAX = 128 - len("!!str")
"""PyYAML writes a key this long or longer as an explicit ``? key`` (it counts the tag it omits)."""

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_WHITESPACE = "\0 \t\r\n\x85\u2028\u2029"
_LEADING_INDICATORS = frozenset("#,[]{}&*!|>'\"%@`")
_INNER_FLOW_INDICATORS = frozenset(",?[]{}")
_RESOLVERS = yaml.resolver.Resolver.yaml_implicit_resolvers
_NO_RESOLVERS: tuple[tuple[str, re.Pattern[str]], ...] = ()
_ANY_FIRST_RESOLVERS = tuple(_RESOLVERS.get(None, ()))
_SURELY_PLAIN = re.compile(
    r"[\w()/+=~$^;<\\](?:[\w .,()/+=~$^;<>\\?!&*%@'\"|\[\]{}`-]*[\w.,()/+=~$^;<>\\?!&*%@'\"|\[\]{}`-])?"
)
"""Text that :func:`_plain_allowed` surely allows plain: a first character that is no indicator (nor
``-``, ``?``, ``:``, ``.``), then word characters, spaces and punctuation other than ``:`` and ``#``,
not ending with a space. Word characters (``\\w``) are letters and digits of any script, which
PyYAML prints as they are."""


_PLAIN_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}:[0-9]{2})?")
"""A date or datetime as the dumper writes it from year 1000 on: no indicator, and PyYAML's resolver
reads it as a timestamp (neither its int nor its float pattern matches text with ``-`` inside)."""


class _NotFast(Exception):
    """This mapping needs PyYAML's own emitter."""


def dump_properties(properties: Mapping[str, Any], dumper: type[yaml.SafeDumper]) -> str:
    """The block-style YAML of ``properties``, exactly as PyYAML's ``dumper`` writes it.

    ``dumper`` must represent ``datetime`` as ``%Y-%m-%dT%H:%M:%S`` and ``date`` as ISO text under
    the timestamp tag (as the renderer's does); it also does the work whenever the fast path cannot.
    """
    try:
        return _fast_dump(properties)
    except _NotFast:
        return yaml.dump(properties, Dumper=dumper, default_flow_style=False, allow_unicode=True, sort_keys=False)


def _fast_dump(properties: Mapping[str, Any]) -> str:
    if type(properties) is not dict or not properties:  # PyYAML writes an empty mapping as "{}"
        raise _NotFast
    lines: list[str] = []
    dates_seen: set[int] = set()
    for key, value in properties.items():
        if type(key) is not str or len(key) >= _SIMPLE_KEY_MAX:
            raise _NotFast
        head = _key(key) + ":"
        if type(value) is list:
            if not value:
                raise _NotFast
            lines.append(head)
            lines.extend("-" + _node(item, 1, dates_seen) for item in value)
        else:
            lines.append(head + _node(value, len(head), dates_seen))
    lines.append("")
    return "\n".join(lines)


_MEMO_KEPT = 4096
"""Keys and text values remembered with their YAML (the same ones recur in every note)."""
_MEMO_TEXT_MAX = 200
"""Longer text values (a message's text in a property) are not remembered."""
_KEYS: dict[str, str] = {}
_TEXTS: dict[tuple[str, int], str] = {}


def _key(key: str) -> str:
    """A mapping key: plain or single-quoted, never folded (PyYAML's simple keys)."""
    known = _KEYS.get(key)
    if known is None:
        known = _remember(_KEYS, key, _key_text(key))
    return known


def _remember(memo: dict[Any, str], key: Any, text: str) -> str:
    if len(memo) >= _MEMO_KEPT:
        memo.clear()
    memo[key] = text
    return text


def _key_text(key: str) -> str:
    if not key:
        raise _NotFast
    if _plain_allowed(key) and _implicit_tag(key) == _STR:
        return key
    return "'" + key.replace("'", "''") + "'"


def _node(value: Any, column: int, dates_seen: set[int]) -> str:
    """A value written after ``column`` characters of its line, with its leading space and folds."""
    kind = type(value)
    if kind is str:
        if len(value) > _MEMO_TEXT_MAX:
            return _text_node(value, column)
        known = _TEXTS.get((value, column))
        if known is None:
            known = _remember(_TEXTS, (value, column), _text_node(value, column))
        return known
    if kind is bool:
        return " true" if value else " false"  # what _typed finds for both: plain, read back as booleans
    if kind is int:
        # Python writes an int as an optional "-" and digits without leading zeros, which is plain text
        # that PyYAML's resolver reads as an int (its float pattern needs a "."): what _typed finds
        return " " + str(value)
    if kind is float:
        return " " + _typed(_float_text(value), _FLOAT)
    if kind is dt.datetime or kind is dt.date:
        if id(value) in dates_seen:  # PyYAML would write an anchor and an alias
            raise _NotFast
        dates_seen.add(id(value))
        if kind is dt.date or (value.microsecond == 0 and value.tzinfo is None and value.year >= 1000):
            # isoformat() is the strftime text below for such a datetime; for both, it is always four
            # digits of year, "-", month, "-", day [, "T", hours, ":", minutes, ":", seconds]: what
            # _PLAIN_TIMESTAMP matches, so plain
            return " " + value.isoformat()
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        if _PLAIN_TIMESTAMP.fullmatch(text):
            return " " + text  # plain, and read back as a timestamp: what _typed finds, without its scan
        return " " + _typed(text, _TIMESTAMP)
    raise _NotFast


def _text_node(value: str, column: int) -> str:
    if not value:
        raise _NotFast
    plain = _plain_allowed(value) and _implicit_tag(value) == _STR
    return _plain(value, column) if plain else _single_quoted(value, column)


def _plain(text: str, column: int) -> str:
    """``Emitter.write_plain`` for text without line breaks: a single space past the fold width
    becomes a line break and the continuation indent."""
    if column + 1 + len(text) <= FOLD_WIDTH + 1:  # no space can come after the fold width
        return " " + text
    out = [" "]
    column += 1
    spaces = False
    start = end = 0
    while end <= len(text):
        ch = text[end] if end < len(text) else None
        if spaces:
            if ch != " ":
                if start + 1 == end and column > FOLD_WIDTH:
                    out.append(_CONTINUATION)
                    column = _INDENT
                else:
                    out.append(text[start:end])
                    column += end - start
                start = end
        elif ch is None or ch == " ":
            out.append(text[start:end])
            column += end - start
            start = end
        spaces = ch == " "
        end += 1
    return "".join(out)


def _single_quoted(text: str, column: int) -> str:
    """``Emitter.write_single_quoted`` for text without line breaks: quotes doubled, a single
    inner space past the fold width becomes a line break and the continuation indent."""
    if column + 2 + len(text) + text.count("'") <= FOLD_WIDTH + 1:
        return " '" + text.replace("'", "''") + "'"
    out = [" '"]
    column += 2
    spaces = False
    start = end = 0
    while end <= len(text):
        ch = text[end] if end < len(text) else None
        if spaces:
            if ch != " ":
                if start + 1 == end and column > FOLD_WIDTH and start != 0 and end != len(text):
                    out.append(_CONTINUATION)
                    column = _INDENT
                else:
                    out.append(text[start:end])
                    column += end - start
                start = end
        elif (ch is None or ch == " " or ch == "'") and start < end:
            out.append(text[start:end])
            column += end - start
            start = end
        if ch == "'":
            out.append("''")
            column += 2
            start = end + 1
        spaces = ch == " "
        end += 1
    out.append("'")
    return "".join(out)


def _float_text(value: float) -> str:
    """``SafeRepresenter.represent_float``'s text."""
    if value != value:
        return ".nan"
    if value == float("inf"):
        return ".inf"
    if value == float("-inf"):
        return "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def _typed(text: str, tag: str) -> str:
    """A non-text scalar: plain when it reads back as ``tag`` (it always does for sane values)."""
    if not _plain_allowed(text) or _implicit_tag(text) != tag:
        raise _NotFast
    return text


def _implicit_tag(text: str) -> str:
    """The tag PyYAML's resolver reads an unquoted ``text`` as (``BaseResolver.resolve``)."""
    for tag, pattern in _RESOLVERS.get(text[0] if text else "", _NO_RESOLVERS):
        if pattern.match(text):
            return tag
    for tag, pattern in _ANY_FIRST_RESOLVERS:
        if pattern.match(text):
            return tag
    return _STR


def _plain_allowed(text: str) -> bool:
    """PyYAML's ``analyze_scalar(...).allow_block_plain`` for ``text``; :class:`_NotFast` when
    PyYAML would double-quote it or write it over several lines."""
    if _SURELY_PLAIN.fullmatch(text):
        return True  # no indicator, break, special character or edge space: what the loop finds
    return _plain_by_characters(text)


def _plain_by_characters(text: str) -> bool:
    """:func:`_plain_allowed`, character by character."""
    allowed = not text.startswith(("---", "...")) and text[0] != " " and text[-1] != " "
    last = len(text) - 1
    for index, ch in enumerate(text):
        if not ("\x20" <= ch <= "\x7e"):
            if ch in "\n\x85\u2028\u2029" or not (
                ch == "\x85" or "\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"
                or "\U00010000" <= ch < "\U0010ffff"
            ) or ch == "\ufeff":
                raise _NotFast  # a line break or a character PyYAML escapes in double quotes
            continue
        if not allowed:
            continue
        followed_by_space = index == last or text[index + 1] in _WHITESPACE
        if index == 0:
            if ch in _LEADING_INDICATORS or (ch in "?:-" and followed_by_space):
                allowed = False
        elif (ch == ":" and followed_by_space) or (ch == "#" and text[index - 1] in _WHITESPACE):
            allowed = False
    return allowed
