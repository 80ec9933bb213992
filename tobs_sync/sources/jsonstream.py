"""Streaming JSON helpers for Telegram Desktop exports.

Two jobs, both without ever holding a whole export in memory:

* :class:`EscapeFixingReader` wraps a binary file and rewrites Telegram Desktop's invalid
  ``\\xHH`` string escapes to ``\\u00HH`` on the fly, only where the backslash itself is
  unescaped (``\\\\x41`` stays a literal backslash followed by ``x41``), correctly across
  read boundaries. It also counts the bytes, newlines and characters of the current line it
  delivered, and retains the last chunk it returned (the buffer yajl is parsing, at most 64 KiB),
  so that a parser error can be placed at a line and column.
* :func:`parse_events` runs ``ijson.parse`` (floats as ``float``, not ``Decimal``) over such a
  reader; :func:`json_errors` turns ijson's errors into :class:`~tobs_sync.errors.ExportFormatError`
  messages naming the file, line and column (or "file ends early (truncated?)");
  :func:`build_object` builds one object from the events (a lean ``ObjectBuilder``).

Limits: positions come from the context snippet yajl prints with its error and are found in
the retained window (the first occurrence, should the snippet repeat); when the snippet cannot
be found the position falls back to the end of the data delivered so far. Columns count
characters of the rewritten stream, so each ``\\xHH`` rewritten earlier on the same line shifts
them by two. The offset is yajl's: the start of the offending token, two bytes into it for a
string, or just after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, BinaryIO

import ijson

from tobs_sync.errors import ExportFormatError

_ESCAPE = re.compile(rb"\\(?:x([0-9A-Fa-f]{2})|[\s\S])?")
"""A backslash and what it escapes; scanned left to right, so escaped backslashes pair up."""

_LONGEST_ESCAPE = 4
"""``\\xHH``: an escape starting fewer than this many bytes before the end may be incomplete."""

_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))
_CONTEXT_BEFORE = 30
"""yajl prints up to 30 bytes before the error offset."""


def rewrite_escapes(data: bytes, final: bool) -> tuple[bytes, int]:
    """Rewrite ``\\xHH`` escapes in ``data``; return the output and how many input bytes it used.

    ``data`` must start outside an escape. Unless ``final``, an escape that might continue past
    the end of ``data`` is left unconsumed: the caller passes those bytes again with more data.
    """
    size = len(data)
    if b"\\x" not in data and b"\\" not in data[-(_LONGEST_ESCAPE - 1) :]:
        return data, size
    pieces: list[bytes] = []
    done = 0
    for match in _ESCAPE.finditer(data):
        start = match.start()
        if not final and start + _LONGEST_ESCAPE > size:
            pieces.append(data[done:start])
            return b"".join(pieces), start
        if match.group(1) is not None:
            pieces.append(data[done:start])
            pieces.append(b"\\u00" + match.group(1))
            done = match.end()
    pieces.append(data[done:])
    return b"".join(pieces), size


class EscapeFixingReader:
    """A binary, read-only file-like object over ``raw`` that fixes ``\\xHH`` escapes.

    ``read(n)`` returns at most ``n`` bytes (all remaining bytes when ``n`` < 0). Besides
    rewriting, it records what it delivered: ``delivered`` bytes, ``newlines`` among them, and
    the last chunk returned with the line and column it starts at.
    """

    def __init__(self, raw: BinaryIO, chunk_size: int = 64 * 1024) -> None:
        self._raw = raw
        self._chunk_size = chunk_size
        self._carry = b""
        self._pending = bytearray()
        self._eof = False
        self.delivered = 0
        self.newlines = 0
        self.last_chunk = b""
        self.last_chunk_line = 1
        """Line number (1-based) at the first byte of ``last_chunk``."""
        self.last_chunk_column = 0
        """Characters of that line delivered before ``last_chunk``."""
        self._column = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        while not self._eof and (size < 0 or len(self._pending) < size):
            self._fill(max(size, self._chunk_size))
        if size < 0 or size >= len(self._pending):
            out = bytes(self._pending)
            self._pending.clear()
        else:
            out = bytes(self._pending[:size])
            del self._pending[:size]
        self._record(out)
        return out

    def _fill(self, size: int) -> None:
        chunk = self._raw.read(size)
        if not chunk:
            self._eof = True
        data = self._carry + chunk
        fixed, used = rewrite_escapes(data, final=self._eof)
        self._carry = data[used:]
        self._pending += fixed

    def _record(self, out: bytes) -> None:
        self.last_chunk_line = self.newlines + 1
        self.last_chunk_column = self._column
        self.last_chunk = out
        self.delivered += len(out)
        newlines = out.count(b"\n")
        self.newlines += newlines
        if newlines:
            self._column = _characters(out[out.rfind(b"\n") + 1 :])
        else:
            self._column += _characters(out)

    def close(self) -> None:
        self._raw.close()

    # -- error positions ------------------------------------------------------------------

    def position_of(self, yajl_message: bytes) -> tuple[int, int] | None:
        """Line and column (1-based) of the error yajl describes, or None if not found."""
        offset = _snippet_offset(yajl_message, self.last_chunk)
        if offset is None:
            return None
        return self._line_column(offset)

    def end_position(self) -> tuple[int, int]:
        """Line and column just after the last byte delivered."""
        return self._line_column(len(self.last_chunk))

    def _line_column(self, offset: int) -> tuple[int, int]:
        before = self.last_chunk[:offset]
        line = self.last_chunk_line + before.count(b"\n")
        newline = before.rfind(b"\n")
        if newline >= 0:
            return line, _characters(before[newline + 1 :]) + 1
        return line, self.last_chunk_column + _characters(before) + 1


def _characters(data: bytes) -> int:
    """Characters in UTF-8 ``data`` (bytes that do not continue a multi-byte sequence)."""
    return len(data.translate(None, _CONTINUATION_BYTES))


def _snippet_offset(yajl_message: bytes, chunk: bytes) -> int | None:
    """Offset in ``chunk`` of the error in yajl's message (its snippet, caret line)."""
    lines = yajl_message.split(b"\n")
    if len(lines) < 3 or b"^" not in lines[2] or not chunk:
        return None
    caret = lines[2].index(b"^")
    shown = lines[1]
    text = shown.lstrip(b" ")
    if not text:
        return None
    skipped = len(shown) - len(text)
    normalized = chunk.replace(b"\n", b" ").replace(b"\r", b" ")
    found = normalized.find(text)
    if found < 0:
        return None
    before = min(caret - skipped, _CONTEXT_BEFORE)
    return max(0, min(len(chunk), found + before))


def describe_error(label: str, reader: EscapeFixingReader, error: Exception) -> ExportFormatError:
    """Turn an ijson (yajl) or decoding error into an :class:`ExportFormatError` for ``label``."""
    raw = error.args[0] if error.args else b""
    message = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
    reason = message.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    for prefix in ("parse error: ", "lexical error: "):
        reason = reason.removeprefix(prefix)
    if isinstance(error, UnicodeDecodeError):
        reason = f"invalid UTF-8 ({error.reason})"
        message = b""
    if b"premature EOF" in message:
        line, _ = reader.end_position()
        return ExportFormatError(f"{label}: file ends early (truncated?) at line {line}")
    position = reader.position_of(message) or reader.end_position()
    line, column = position
    return ExportFormatError(f"{label}: invalid JSON at line {line}, column {column}: {reason}")


def parse_events(reader: EscapeFixingReader) -> Iterator[tuple[str, str, Any]]:
    """``ijson.parse`` events ``(prefix, event, value)`` of ``reader``, numbers as int or float.

    Iterate inside :func:`json_errors` so syntax errors become :class:`ExportFormatError`.
    """
    return ijson.parse(reader, use_float=True)


@contextmanager
def json_errors(reader: EscapeFixingReader, label: str) -> Iterator[None]:
    """Turn ijson errors raised in the block into ExportFormatError naming ``label`` and a position."""
    try:
        yield
    except (ijson.JSONError, UnicodeDecodeError) as error:
        raise describe_error(label, reader, error) from error


def build_object(events: Iterator[tuple[str, str, Any]]) -> dict[str, Any]:
    """The object whose ``start_map`` event was just consumed from ``events``, built from the rest.

    A lean equivalent of ``ijson.ObjectBuilder`` for the hot path (one call per object, not
    per event); any ``Decimal`` becomes int or float.
    """
    root: dict[str, Any] = {}
    stack: list[Any] = [root]
    key = ""
    for _, event, value in events:
        if event == "map_key":
            key = value
            continue
        top = stack[-1]
        if event == "end_map" or event == "end_array":
            stack.pop()
            if not stack:
                return root
            continue
        if event == "start_map":
            value = {}
            stack.append(value)
        elif event == "start_array":
            value = []
            stack.append(value)
        elif type(value) is Decimal:
            value = plain_json(value)
        if type(top) is dict:
            top[key] = value
        else:
            top.append(value)
    raise ExportFormatError("JSON ends inside an object")


def plain_json(value: Any) -> Any:
    """``value`` with any ``Decimal`` turned into int or float (recursively)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_json(item) for item in value]
    return value
