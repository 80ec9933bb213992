"""Size estimates for the template sandbox: how big a result would be, before it is built.

A template can ask for a gigabyte in a few characters (``'a' * 10**9``, ``'x'|center(10**9)``,
``'%999999999s' % 1``, ``"{:>999999999}".format(1)``, ``s|replace('', big)``). The sandbox asks
these functions for an upper estimate of a result's size, in characters (or list items, or
decimal digits for numbers), and refuses the operation when the estimate is over what is left
of the render's budget. Estimates are cheap: they look at lengths, counts and format strings,
and stop counting as soon as the total passes ``cap``.

Limits: an estimate is an upper bound for what it covers but not exact (the text of a list is
estimated from its items' lengths, not rendered); operations not listed here are measured after
they ran, which is enough for everything that can only shrink or copy its input.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, Sequence, ValuesView
from itertools import chain
from typing import Any

from jinja2.utils import Namespace

INT_DIGITS_LIMIT = 4300
"""The longest number (in decimal digits) a template may make: Python's own limit for printing one."""

_PERCENT_DIRECTIVE = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
_DIGITS = re.compile(r"\d+")
_STRFTIME_GROWTH = 256
"""Python's strftime gives up once its buffer is 256 times the format's length."""
_OPAQUE_SIZE = 100
"""Estimated text of an object that is neither text, number nor container (a date, a macro)."""


def text_size(value: Any, cap: int, memo: dict[int, int] | None = None) -> int:
    """About ``len(str(value))``; once it is clear the text would pass ``cap``, any number above it."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bytes | bytearray):
        return 4 * len(value) + 3
    if value is None or isinstance(value, bool | float | complex):
        return 48
    if isinstance(value, int):
        return int_digits(value) + 1
    items: Iterable[Any]
    if isinstance(value, Mapping):
        items = chain.from_iterable(value.items())
    elif isinstance(value, list | tuple | set | frozenset | KeysView | ValuesView | ItemsView):
        items = value
    elif isinstance(value, Namespace):
        items = chain.from_iterable(getattr(value, "_Namespace__attrs", {}).items())
    else:
        return _OPAQUE_SIZE
    memo = {} if memo is None else memo
    key = id(value)
    if key in memo:
        return memo[key]
    memo[key] = 0  # a container reached again while it is measured: str() would recurse and fail
    total = 2
    for item in items:
        total += text_size(item, cap - total, memo) + 4  # quotes and separator
        if total > cap:
            break
    memo[key] = total
    return total


def int_digits(value: int) -> int:
    """An upper bound on the decimal digits of ``value`` (log10(2) < 0.302)."""
    return value.bit_length() * 302 // 1000 + 1


def result_size(value: Any) -> int:
    """What a result counts against the render's budget: its length, or its digits for a big number."""
    if isinstance(value, str | bytes | bytearray | list | tuple | dict | set | frozenset):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return int_digits(value)
    return 0


def binop_size(operator: str, left: Any, right: Any, cap: int) -> int:
    """An upper estimate of the size of ``left <operator> right`` (0 when it cannot be large)."""
    if operator == "+" and _is_sequence(left) and _is_sequence(right):
        return len(left) + len(right)
    if operator == "*":
        if _is_sequence(left) and _is_count(right):
            return len(left) * max(right, 0)
        if _is_count(left) and _is_sequence(right):
            return max(left, 0) * len(right)
        if _is_count(left) and _is_count(right):
            return int_digits(left) + int_digits(right)
    if operator in ("+", "-") and _is_count(left) and _is_count(right):
        return max(int_digits(left), int_digits(right)) + 1
    if operator == "**" and _is_count(left) and _is_count(right) and right > 0 and abs(left) > 1:
        return int(right * math.log10(abs(left))) + 1
    if operator == "%" and isinstance(left, str):
        return percent_size(left, right, cap)
    return 0


def percent_size(fmt: str, args: Any, cap: int) -> int:
    """An upper estimate of ``fmt % args``: the format, plus per directive its width, precision
    and the longest argument."""
    values = list(args.values()) if isinstance(args, Mapping) else list(args) if isinstance(args, tuple) else [args]
    star = max((abs(v) for v in values if _is_count(v)), default=0)
    memo: dict[int, int] = {}
    widest = max((text_size(v, cap, memo) for v in values), default=0)
    total = len(fmt)
    for match in _PERCENT_DIRECTIVE.finditer(fmt):
        width, precision = (star if n == "*" else _number(n) for n in (match.group(1), match.group(2)))
        total += width + precision + widest
        if total > cap:
            break
    return total


def format_size(fmt: str, args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    """An upper estimate of ``fmt.format(*args, **kwargs)``: literal text, plus per field the
    longest argument and the widths in its format spec."""
    values = [*args, *kwargs.values()]
    star = max((abs(v) for v in values if _is_count(v)), default=0)
    memo: dict[int, int] = {}
    widest = max((text_size(v, cap, memo) for v in values), default=0)
    total = 0
    for literal, field, spec, _conversion in string.Formatter().parse(fmt):
        total += len(literal)
        if field is not None:
            total += widest + sum(_number(n) for n in _DIGITS.findall(spec or "")) + star * (spec or "").count("{")
        if total > cap:
            break
    return total


def replace_size(text: str, old: str, new: str, count: int | None = None) -> int:
    """The exact length of ``text.replace(old, new, count)``, computed without building it."""
    found = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def join_size(separator: str, items: Sequence[Any], cap: int) -> int:
    """An upper estimate of ``separator.join(str(i) for i in items)``, stopping once over ``cap``."""
    total = max(len(items) - 1, 0) * len(separator)
    memo: dict[int, int] = {}
    for item in items:
        if total > cap:
            break
        total += text_size(item, cap - total, memo)
    return total


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(digits: str | None) -> int:
    """A width or precision from a format string; absurdly long digit runs count as huge."""
    if not digits:
        return 0
    return int(digits) if len(digits) <= 12 else 10**12


# --- per-operation estimates: (positional args, keyword args, cap) -> size ---------------

SizeEstimate = Callable[[Sequence[Any], Mapping[str, Any], int], int]


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _width_estimate(index: int, name: str, default: int) -> SizeEstimate:
    """A result as long as the input or a width argument (``center``, ``ljust``, ``zfill`` ...)."""

    def estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
        width = _arg(args, kwargs, index, name, default)
        text = text_size(args[0], cap) if args else 0
        return max(text, width if _is_count(width) else 0)

    return estimate


def _indent_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    text = args[0] if args and isinstance(args[0], str) else ""
    width = _arg(args, kwargs, 1, "width", 4)
    pad = width if _is_count(width) else len(str(width)) if isinstance(width, str) else 0
    return len(text) + (text.count("\n") + 1) * max(pad, 0)


def _replace_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    text, old, new = (_arg(args, kwargs, i, n) for i, n in ((0, "s"), (1, "old"), (2, "new")))
    count = _arg(args, kwargs, 3, "count")
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    return replace_size(text, old, new, count if _is_count(count) else None)


def _format_filter_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    if not args or not isinstance(args[0], str):
        return 0
    return percent_size(args[0], dict(kwargs) if kwargs else tuple(args[1:]), cap)


def _count_estimate(index: int, name: str) -> SizeEstimate:
    """A result with as many items as a count argument (``batch``, ``slice``)."""

    def estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
        count = _arg(args, kwargs, index, name, 0)
        return count if _is_count(count) else 0

    return estimate


def _wordwrap_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    text = args[0] if args and isinstance(args[0], str) else ""
    wrap = _arg(args, kwargs, 3, "wrapstring") or "\n"
    return len(text) * (1 + len(str(wrap)))


def _urlize_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    text = args[0] if args and isinstance(args[0], str) else ""
    extra = sum(len(v) for v in (*args[1:], *kwargs.values()) if isinstance(v, str))
    return len(text) * (2 + extra + 48)


def _tojson_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    indent = _arg(args, kwargs, 1, "indent")
    spaces = indent if _is_count(indent) else len(indent) if isinstance(indent, str) else 0
    return text_size(args[0], cap) * 6 * (1 + max(spaces, 0)) if args else 0


def _expandtabs_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    text = args[0] if args and isinstance(args[0], str) else ""
    size = _arg(args, kwargs, 1, "tabsize", 8)
    return len(text) + text.count("\t") * (size if _is_count(size) else 8)


def _translate_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    text, table = _arg(args, kwargs, 0, "self"), _arg(args, kwargs, 1, "table")
    if not isinstance(text, str):
        return 0
    longest = 1
    if isinstance(table, Mapping):
        longest = max([1, *(len(v) for v in table.values() if isinstance(v, str))])
    return len(text) * longest


def _join_method_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    separator, items = _arg(args, kwargs, 0, "self"), _arg(args, kwargs, 1, "iterable")
    if not isinstance(separator, str | bytes) or not isinstance(items, list | tuple):
        return 0
    return join_size(str(separator), items, cap)


def _to_bytes_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    length = _arg(args, kwargs, 1, "length", 1)
    return length if _is_count(length) else 0


def _strftime_estimate(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    fmt = _arg(args, kwargs, 1, "format", kwargs.get("fmt"))
    return len(fmt) * _STRFTIME_GROWTH if isinstance(fmt, str) else 0


def _stringified(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> int:
    """Filters that turn their input into text (``string``, ``upper``, ``md`` ...): its text size."""
    return text_size(args[0], cap) if args else 0


FILTER_ESTIMATES: Mapping[str, SizeEstimate] = {
    "center": _width_estimate(1, "width", 80),
    "indent": _indent_estimate,
    "replace": _replace_estimate,
    "format": _format_filter_estimate,
    "batch": _count_estimate(1, "linecount"),
    "slice": _count_estimate(1, "slices"),
    "wordwrap": _wordwrap_estimate,
    "urlize": _urlize_estimate,
    "tojson": _tojson_estimate,
    "strftime": _strftime_estimate,
    **{
        name: _stringified
        for name in (
            "string", "upper", "lower", "title", "capitalize", "trim", "striptags", "escape", "e",
            "forceescape", "safe", "urlencode", "md", "pprint", "xmlattr", "truncate", "wordcount",
        )
    },
}
"""Filters whose result can be larger than their input, or that stringify it: estimated before
they run. Arguments are those after the value's environment/context (the value comes first)."""

METHOD_ESTIMATES: Mapping[str, SizeEstimate] = {
    "center": _width_estimate(1, "width", 0),
    "ljust": _width_estimate(1, "width", 0),
    "rjust": _width_estimate(1, "width", 0),
    "zfill": _width_estimate(1, "width", 0),
    "expandtabs": _expandtabs_estimate,
    "replace": _replace_estimate,
    "translate": _translate_estimate,
    "join": _join_method_estimate,
    "to_bytes": _to_bytes_estimate,
    "strftime": _strftime_estimate,
}
"""Methods of text, bytes, numbers and dates whose result can be far larger than the object:
estimated before they run, with the object itself as the first argument."""
