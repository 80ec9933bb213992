"""Deterministic content for the simulated account: RNG derivation, names, titles and formatted text.

Every random choice in the simulator comes from :func:`rng_for`, a ``random.Random`` seeded from a
BLAKE2 digest of ``(seed, *labels)`` -- never from Python's salted ``hash()`` and never from one shared
sequential generator -- so one message's content does not depend on how many other messages exist.
The generator is a :class:`SimRandom`: ``random.Random`` with cheaper ``choice``, ``randint`` and
``randrange`` that draw exactly the same numbers (the same ``getrandbits`` calls as the standard
methods), so an account is what it always was, only made faster.

:func:`make_text` returns message text with real Telegram entities whose offsets and lengths are in
UTF-16 code units (emoji outside the BMP, skin tones and ZWJ sequences are included on purpose so that
Python-index slicing goes wrong), plus plain-text Markdown metacharacters that a renderer must escape.
Limits: the prose is word salad; it exercises formatting, not language.
"""

from __future__ import annotations

import _random
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from telethon.tl import types

_seed_generator = _random.Random.seed


class SimRandom(random.Random):  # Reproducible simulation data, not secrets.  # nosec B311
    """``random.Random`` seeded with an int, with ``choice``/``randint``/``randrange`` made cheaper.

    Each draws exactly what the standard method draws: ``random.Random`` turns all three into
    ``_randbelow(n)``, that is ``getrandbits(n.bit_length())`` until the value is below ``n``; here
    that loop is inlined, saving two or three Python calls per draw. Everything else (``random``,
    ``sample``, ``getrandbits`` ...) is the standard implementation.
    """

    def __init__(self, seed: int) -> None:
        _seed_generator(self, seed)  # what random.Random.seed does for an int, without its dispatch
        self.gauss_next = None

    def choice(self, seq: Sequence[Any]) -> Any:
        n = len(seq)
        if not n:
            raise IndexError("Cannot choose from an empty sequence")
        getrandbits, k = self.getrandbits, n.bit_length()
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        return seq[r]

    def randint(self, a: int, b: int) -> int:
        n = b - a + 1
        if type(a) is not int or type(b) is not int or n <= 0:
            return super().randint(a, b)  # the standard errors
        getrandbits, k = self.getrandbits, n.bit_length()
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        return a + r

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:  # type: ignore[override]
        if stop is not None or step != 1 or type(start) is not int or start <= 0:
            return super().randrange(start, stop, step)
        getrandbits, k = self.getrandbits, start.bit_length()
        r = getrandbits(k)
        while r >= start:
            r = getrandbits(k)
        return r


def rng_for(seed: int, *labels: object) -> random.Random:
    """A generator determined only by ``seed`` and ``labels`` (ints and strings)."""
    digest = hashlib.blake2b(repr((seed, *labels)).encode(), digest_size=16).digest()
    return SimRandom(int.from_bytes(digest, "big"))


def utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def signed64(rng: random.Random) -> int:
    """A non-zero signed 64-bit value, like Telegram's access hashes."""
    value = rng.getrandbits(64) - (1 << 63)
    return value or 1


@dataclass(frozen=True, slots=True)
class Person:
    first_name: str
    last_name: str
    username: str | None


SELF = Person("Sim", "Owner", "sim_owner")

PEOPLE: tuple[Person, ...] = (
    Person("Jürgen", "Weiß", None),
    Person("Ana María", "López", "ana_ml"),
    Person("Сергей", "Иванов", "sergey_iv"),
    Person("Zoë", "🌿 Green", "zoe_green"),
    Person("Sam", "Gardner", "samgardner"),
    Person("李", "雷", None),
    Person("Priya", "Natarajan", "priya_n"),
    Person("Kate", "O'Brien", None),
)

CHANNEL_TITLES = ("Field Notes 📓", "Rust/Go: Weekly", "Café Ünïcode ☕", "News 24:7", "Bibliothek der Dinge")
MEGAGROUP_TITLES = ("Allotment: Plot 7/B 🌱", "Über-Gruppe", "Dev Chat <beta>")
GROUP_TITLES = ("Family: Trips/Plans", "Book Club 📚", "Neighbours")
FORUM_TITLES = ("Makers' Forum 🛠", "Hiking: Routes/Tips", "Lab <notes>")
TOPIC_TITLES = ("Announcements 📣", "Trips / Plans", "Off-topic: *anything*", "Help & Questions")
GENERAL_TOPIC_TITLE = "General"
CHANNEL_USERNAMES = ("field_notes_sim", "rustgo_weekly_sim", "cafe_unicode_sim", "news247_sim", "bibliothek_sim")

WORDS = (
    "garden", "seed", "river", "notes", "sync", "vault", "window", "morning", "tomato", "bicycle",
    "library", "Grüße", "naïve", "façade", "привет", "日本語", "Ελληνικά", "coffee", "harvest", "lantern",
    "compost", "bridge", "paper", "signal", "orbit", "meadow", "ticket", "pebble", "thunder", "quiet",
)
EMOJI = ("😀", "🌱", "🎉", "👍🏽", "❤️", "🇩🇪", "👨‍👩‍👧", "☕", "📎", "🧪")
HASHTAGS = ("#garden", "#release", "#tobs", "#grüße", "#weekly")
CODE_SNIPPETS = ("x = 42", "git push -f", "SELECT 1;", "a*b_c", "`tick`")
PRE_BLOCKS = (
    ("python", "def harvest(plot):\n    return [p for p in plot if p.ripe]\n"),
    ("rust", "fn main() {\n    println!(\"hi 🌱\");\n}\n"),
    ("", "plain block\n  with *stars* and _underscores_\n"),
    ("json", "{\"key\": \"wert\", \"n\": [1, 2]}"),
)
_ENDINGS = (".", "!", "?", " …")
METACHARACTERS = ("*not bold*", "under_score_name", "[not a link](nope)", "1. not a list", "<b>raw html</b>", "%% x %%")


class TextBuilder:
    """Accumulates text and entities, measuring offsets in UTF-16 code units.

    Parts without an entity are measured only when an offset is needed (all pending parts at once),
    so plain text costs an append."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._entities: list[types.TypeMessageEntity] = []
        self._measured_parts = 0
        self._measured = 0

    def add(self, text: str, *entity: Callable[[int, int], types.TypeMessageEntity]) -> None:
        if entity:
            offset, length = self.offset, utf16_len(text)
            for make in entity:
                self._entities.append(make(offset, length))
        self._parts.append(text)

    @property
    def offset(self) -> int:
        """Current length in UTF-16 code units."""
        parts = self._parts
        if self._measured_parts < len(parts):
            self._measured += utf16_len("".join(parts[self._measured_parts :]))
            self._measured_parts = len(parts)
        return self._measured

    def add_entity(self, entity: types.TypeMessageEntity) -> None:
        self._entities.append(entity)

    def build(self) -> tuple[str, list[types.TypeMessageEntity]]:
        return "".join(self._parts), list(self._entities)


_WORD_COUNT = len(WORDS)
_WORD_BITS = _WORD_COUNT.bit_length()


def _words(rng: random.Random, low: int, high: int) -> str:
    """``randint(low, high)`` words, each ``choice(WORDS)`` (the same draws, inlined: this is the hot loop)."""
    getrandbits = rng.getrandbits
    picked = []
    for _ in range(rng.randint(low, high)):
        r = getrandbits(_WORD_BITS)
        while r >= _WORD_COUNT:
            r = getrandbits(_WORD_BITS)
        picked.append(WORDS[r])
    return " ".join(picked)


def _styled_span(rng: random.Random, out: TextBuilder, mentionable: Sequence[tuple[int, Person]]) -> None:
    style = rng.randrange(13)
    if style == 0:
        out.add(_words(rng, 1, 3), types.MessageEntityBold)
    elif style == 1:
        out.add(_words(rng, 1, 3), types.MessageEntityItalic)
    elif style == 2:
        out.add(rng.choice(CODE_SNIPPETS), types.MessageEntityCode)
    elif style == 3:
        language, body = rng.choice(PRE_BLOCKS)
        out.add("\n")
        out.add(body, lambda o, n: types.MessageEntityPre(o, n, language))
        out.add("\n")
    elif style == 4:
        url = f"https://example.org/docs/{rng.randrange(1000)}?q=a_b&x=(1)"
        out.add(_words(rng, 1, 2), lambda o, n: types.MessageEntityTextUrl(o, n, url))
    elif style == 5 and mentionable:
        user_id, person = rng.choice(mentionable)
        out.add(person.first_name, lambda o, n: types.MessageEntityMentionName(o, n, user_id))
    elif style == 6:
        out.add(rng.choice(HASHTAGS), types.MessageEntityHashtag)
    elif style == 7:
        out.add(f"https://example.com/{rng.choice(WORDS)}", types.MessageEntityUrl)
    elif style == 8:
        out.add(_words(rng, 1, 2), types.MessageEntitySpoiler)
    elif style == 9:
        out.add(_words(rng, 1, 2), types.MessageEntityUnderline, types.MessageEntityStrike)
    elif style == 10:
        out.add("\n")
        out.add(_words(rng, 3, 8), lambda o, n: types.MessageEntityBlockquote(o, n))
        out.add("\n")
    elif style == 11:
        # Nested: a bold span with an italic part inside it.
        head, tail = _words(rng, 1, 2), _words(rng, 1, 2)
        start = out.offset
        out.add(head + " ")
        out.add(tail, types.MessageEntityItalic)
        out.add_entity(types.MessageEntityBold(start, out.offset - start))
    else:
        user_with_name = [p for _, p in mentionable if p.username]
        if user_with_name:
            out.add("@" + rng.choice(user_with_name).username, types.MessageEntityMention)  # type: ignore[operator]
        else:
            out.add(_words(rng, 1, 2), types.MessageEntityBold)


def make_text(
    rng: random.Random, mentionable: Sequence[tuple[int, Person]], *, short: bool = False
) -> tuple[str, list[types.TypeMessageEntity]]:
    """Text with entities; ``short`` for media captions. Entities are sorted by offset."""
    out = TextBuilder()
    add, draw, choice = out.add, rng.random, rng.choice
    sentences = 1 if short else rng.randint(1, 3)
    for index in range(sentences):
        if index:
            add(" ")
        if draw() < 0.35:
            add(choice(EMOJI) + " ")
        add(_words(rng, 1, 4 if short else 8).capitalize())
        if draw() < 0.6:
            add(" ")
            _styled_span(rng, out, mentionable)
        if draw() < 0.1:
            add(" " + choice(METACHARACTERS))
        if draw() < 0.25:
            add(" " + choice(EMOJI))
        add(choice(_ENDINGS))
    text, entities = out.build()
    entities.sort(key=lambda e: (e.offset, -e.length))
    return text, entities
