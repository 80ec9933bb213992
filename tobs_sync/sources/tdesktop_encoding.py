"""Telling a user why an export is not UTF-8, and what it looks like instead.

Telegram Desktop writes ``result.json`` as UTF-8 without a byte order mark. A file re-saved by an
editor may be UTF-16 (with or without a BOM), or a legacy code page (Windows-1251 for Cyrillic,
Windows-1256 for Arabic, GBK for Chinese ...). :func:`not_utf8_error` is asked after a parse
error: it reads the file once, finds the first bytes that are not UTF-8, and names the encoding the
text most likely is, so the error says what to do. A UTF-8 byte order mark is harmless:
:func:`skip_utf8_bom` steps over it.

Limits: the guess is a heuristic over the non-ASCII words near the first bad byte (one script per
word, plausible letter case), among the code pages listed in :data:`CANDIDATES`, with no letter
frequencies: Cyrillic, Arabic, Greek, Western European and Chinese text are told apart, but
Japanese or Korean text may be named as Chinese, and very short samples can mislead; hence the
error says "looks like".
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from typing import BinaryIO

UTF8_BOM = codecs.BOM_UTF8
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)
CANDIDATES = (
    ("cp1251", "Windows-1251 (Cyrillic)"),
    ("koi8_r", "KOI8-R (Cyrillic)"),
    ("cp1252", "Windows-1252 (Western European)"),
    ("cp1256", "Windows-1256 (Arabic)"),
    ("cp1253", "Windows-1253 (Greek)"),
    ("gb18030", "GBK/GB18030 (Chinese)"),
    ("big5", "Big5 (Chinese)"),
    ("shift_jis", "Shift JIS (Japanese)"),
    ("euc_kr", "EUC-KR (Korean)"),
)
"""Code pages the guess chooses from, in the order ties are broken."""

_SAME_SCRIPT = {"HIRAGANA": "CJK", "KATAKANA": "CJK"}
"""Scripts written together in one word (Japanese)."""
_CHUNK = 1 << 20
_SAMPLE = 16 * 1024
_WORD = re.compile(r"\w+")


def skip_utf8_bom(handle: BinaryIO) -> None:
    """Leave ``handle`` after a UTF-8 byte order mark, or at its start when there is none."""
    if handle.read(len(UTF8_BOM)) != UTF8_BOM:
        handle.seek(0)


def not_utf8_error(handle: BinaryIO, label: str) -> str | None:
    """Why the file behind ``handle`` (read from its start) is not UTF-8, or None when it is."""
    head = handle.read(4)
    for bom, name in _BOMS:
        if head.startswith(bom):
            return _message(label, f"it is {name}, by its byte order mark", None)
    if len(head) >= 2 and head[0] and not head[1]:
        return _message(label, "every other byte is zero", "UTF-16 (little-endian) without a byte order mark")
    if len(head) >= 2 and not head[0] and head[1]:
        return _message(label, "every other byte is zero", "UTF-16 (big-endian) without a byte order mark")
    handle.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    while chunk := handle.read(_CHUNK):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as error:
            bad = error.start
            line += chunk.count(b"\n", 0, bad)
            start = max(0, chunk.rfind(b"\n", 0, bad) + 1)
            sample = chunk[start:start + _SAMPLE]
            return _message(label, f"line {line} has bytes that are not UTF-8", guess_encoding(sample))
        line += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return _message(label, "it ends inside a UTF-8 character", None)
    return None


def _message(label: str, why: str, looks_like: str | None) -> str:
    guess = f"; it looks like {looks_like}" if looks_like else ""
    return (
        f"{label}: the export is not UTF-8 ({why}{guess}). Telegram Desktop writes UTF-8: export again, "
        "or convert the file to UTF-8 without changing anything else"
    )


def guess_encoding(sample: bytes) -> str | None:
    """The name of the code page ``sample`` most plausibly is, or None when none fits."""
    best: tuple[float, str] | None = None
    for codec, name in CANDIDATES:
        text = sample.decode(codec, errors="replace")
        score = _plausibility(text, codec) - 4 * text.count("\ufffd")
        if score > 0 and (best is None or score > best[0]):
            best = (score, name)
    return best[1] if best else None


def _plausibility(text: str, codec: str) -> float:
    """Bytes of non-ASCII words that look like words: one script, and lower, title or upper case (upper
    counts half: it is rarer in running text). Bytes, not characters, so that multi-byte code pages
    are not outscored by single-byte readings of the same bytes."""
    score = 0.0
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        scripts = {_script(ch) for ch in word if not ch.isdigit() and ch != "_"}
        if len(scripts) != 1 or None in scripts:
            continue
        size = len(word.encode(codec, errors="replace"))
        if word.islower() or word.istitle() or not any(ch.isupper() or ch.islower() for ch in word):
            score += size
        elif word.isupper():
            score += size / 2
    return score


def _script(ch: str) -> str | None:
    """The first word of a character's Unicode name (``CYRILLIC``, ``ARABIC``, ``CJK`` ...): its script,
    roughly; None for a character that is not a letter or a combining mark."""
    if not (ch.isalpha() or unicodedata.category(ch).startswith("M")):
        return None
    script = unicodedata.name(ch, "").split(" ", 1)[0]
    return _SAME_SCRIPT.get(script, script) or None
