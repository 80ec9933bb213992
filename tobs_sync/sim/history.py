"""A compact message history for the simulated account: each message kept as its TL serialisation.

A Telethon ``Message`` object takes about 2.7 KB; its serialisation (``bytes(message)``) about 200
bytes for a text message, and pages of :data:`PAGE_SIZE` serialisations compressed with zlib about 70 bytes a message. A
:class:`History` keeps every message that way and decodes it with Telethon's own reader
(``BinaryReader(...).tgread_object()``) when it is read, so the simulator's memory grows by tens of
bytes per message instead of kilobytes, and what it serves is exactly what it stored (the same
serialisation; only ``None`` flags read back as ``False``).

Access is list-like (index, negative index, slice, iteration, ``len``, ``append`` in ascending id
order) and, through :attr:`History.by_id`, mapping-like (``get``, ``[]``, ``in``). The ids and dates
are kept uncompressed as well (:meth:`History.position_of_id`, :meth:`History.position_of_date`), so
paging by ``offset_id``/``offset_date`` decodes nothing it does not return.

**Changing a message**: the object read is a decoded copy (or one shared with the page cache), so
changing it changes nothing stored; write it back with ``history.by_id[message.id] = message`` (or
:meth:`History.replace`). A mutation made without writing back may be seen for a while (the cache)
and then lost. :meth:`History.remove` deletes messages.

How it stays cheap in CPU: the newest page is kept as the objects appended (serialised when the page
fills), and a few recently used pages per history stay decompressed, with the messages decoded so
far (:data:`CACHED_PAGES`): reading the newest messages while generating, or a page of history
newest first, decodes each message at most once; a written-back message is serialised again only
when its page leaves the cache. The cache is bounded: it does not grow with the history.

Limits: ids must increase (as in a Telegram chat's history): :meth:`History.append` refuses an id
not above the newest one; removing messages repacks the pages from the first one removed.
"""

from __future__ import annotations

import bisect
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from datetime import datetime
from typing import Any, overload

from telethon.extensions import BinaryReader
from telethon.tl.tlobject import TLObject

PAGE_SIZE = 64
"""Messages per compressed page."""
CACHED_PAGES = 4
"""Decompressed pages kept per history besides the newest one (least recently used leaves first)."""
COMPRESSION_LEVEL = 6

_LENGTH_TYPE = "I"


def decode(blob: bytes) -> Any:
    """The TL object ``blob`` is the serialisation of (read with Telethon's reader)."""
    return BinaryReader(blob).tgread_object()


class _Page:
    """A decompressed page: for each message its serialisation, its object, or both (same bytes)."""

    __slots__ = ("blobs", "dirty", "missing", "objects")

    def __init__(self, blobs: list[bytes | None], objects: list[Any]) -> None:
        self.blobs = blobs
        self.objects = objects
        self.missing = sum(1 for message in objects if message is None)
        """Messages not decoded yet."""
        self.dirty = False

    def __len__(self) -> int:
        return len(self.objects)

    def get(self, slot: int) -> Any:
        found = self.objects[slot]
        if found is None:
            blob = self.blobs[slot]
            assert blob is not None  # nosec B101  # a slot always holds its bytes or its object
            found = self.objects[slot] = decode(blob)
            self.missing -= 1
        return found

    def run(self, start: int, stop: int) -> list[Any]:
        """The messages of slots ``start`` to ``stop`` (decoded as needed)."""
        if self.missing:
            return [self.get(slot) for slot in range(start, stop)]
        return self.objects[start:stop]

    def add(self, blob: bytes | None, message: Any) -> None:
        self.blobs.append(blob)
        self.objects.append(message)
        if message is None:
            self.missing += 1

    def put(self, slot: int, message: Any) -> None:
        if self.objects[slot] is None:
            self.missing -= 1
        self.objects[slot] = message
        self.blobs[slot] = None
        self.dirty = True

    def serialised(self) -> list[bytes]:
        blobs = [blob if blob is not None else bytes(self.objects[k]) for k, blob in enumerate(self.blobs)]
        self.blobs = list(blobs)
        return blobs

    def compress(self) -> bytes:
        blobs = self.serialised()
        lengths = array(_LENGTH_TYPE, (len(blob) for blob in blobs))
        self.dirty = False
        return zlib.compress(lengths.tobytes() + b"".join(blobs), COMPRESSION_LEVEL)

    @classmethod
    def decompress(cls, data: bytes, count: int) -> _Page:
        raw = zlib.decompress(data)
        lengths = array(_LENGTH_TYPE)
        head = count * lengths.itemsize
        lengths.frombytes(raw[:head])
        blobs: list[bytes | None] = []
        at = head
        for length in lengths:
            blobs.append(raw[at : at + length])
            at += length
        return cls(blobs, [None] * count)


def _timestamp(message: Any) -> int:
    date = getattr(message, "date", None)
    return int(date.timestamp()) if isinstance(date, datetime) else 0


class History(Sequence[Any]):
    """The messages of one chat, ascending by id, kept serialised and compressed (see module docs)."""

    def __init__(
        self, messages: Iterable[TLObject] = (), *, page_size: int = PAGE_SIZE, cached_pages: int = CACHED_PAGES
    ) -> None:
        if page_size < 1 or cached_pages < 1:
            raise ValueError(f"page_size and cached_pages must be at least 1, got {page_size} and {cached_pages}")
        self.page_size = page_size
        self.cached_pages = cached_pages
        self._ids = array("i")
        self._dates = array("q")
        self._sealed: list[bytes] = []
        self._newest = _Page([], [])
        self._cache: OrderedDict[int, _Page] = OrderedDict()
        self.by_id = ById(self)
        """The messages by id: ``get``, ``[]``, ``in``; assigning writes a message back."""
        self.extend(messages)

    # region list-like access

    def __len__(self) -> int:
        return len(self._ids)

    def __bool__(self) -> bool:
        return bool(self._ids)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self._ids))
            if step == 1:
                return self._run(start, stop)
            return [self._at(k) for k in range(start, stop, step)]
        size = len(self._ids)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(f"history index {index} out of range (history of {size} messages)")
        return self._at(index)

    def __iter__(self) -> Iterator[Any]:
        number = 0
        while number * self.page_size < len(self._ids):  # pages read one at a time (removals end it early)
            yield from self._run(number * self.page_size, min((number + 1) * self.page_size, len(self._ids)))
            number += 1

    def __reversed__(self) -> Iterator[Any]:
        for position in range(len(self._ids) - 1, -1, -1):
            if position < len(self._ids):
                yield self._at(position)

    def append(self, message: TLObject) -> None:
        """Add ``message`` after the newest one; its id must be above every id so far."""
        msg_id = message.id  # type: ignore[attr-defined]
        if self._ids and msg_id <= self._ids[-1]:
            raise ValueError(f"message id {msg_id} is not above the history's newest id {self._ids[-1]}")
        self._add(msg_id, _timestamp(message), None, message)

    def _add(self, msg_id: int, date: int, blob: bytes | None, message: Any) -> None:
        self._ids.append(msg_id)
        self._dates.append(date)
        newest = self._newest
        newest.add(blob, message)
        if len(newest) == self.page_size:
            self._sealed.append(newest.compress())
            self._keep(len(self._sealed) - 1, newest)
            self._newest = _Page([], [])

    def extend(self, messages: Iterable[TLObject]) -> None:
        for message in messages:
            self.append(message)

    @property
    def ids(self) -> array[int]:
        """The message ids, ascending (read-only: a copy would cost as much as the history's ids)."""
        return self._ids

    def position_of_id(self, msg_id: int) -> int:
        """How many messages have an id below ``msg_id`` (``bisect_left`` over the ids)."""
        return bisect.bisect_left(self._ids, msg_id)

    def position_of_date(self, date: datetime) -> int:
        """How many messages are dated before ``date`` (dates increase with ids in a history)."""
        return bisect.bisect_left(self._dates, date.timestamp())

    # endregion

    # region changes

    def replace(self, message: TLObject) -> None:
        """Write ``message`` back over the stored message with its id (``KeyError`` if there is none)."""
        msg_id = message.id  # type: ignore[attr-defined]
        position = self.index_of(msg_id)
        if position is None:
            raise KeyError(f"no message {msg_id} in this history to replace")
        self._dates[position] = _timestamp(message)
        page, slot = self._page(position // self.page_size), position % self.page_size
        page.put(slot, message)

    def remove(self, msg_ids: Iterable[int]) -> list[int]:
        """Delete the messages with these ids; returns those that were there (as given, repeats included).

        The pages from the first one touched are packed again from what they hold (serialisations or
        objects), without decoding anything."""
        gone = [msg_id for msg_id in msg_ids if self.index_of(msg_id) is not None]
        if not gone:
            return []
        removed = set(gone)
        first_page = min(self.index_of(msg_id) or 0 for msg_id in gone) // self.page_size  # all are there
        kept: list[tuple[int, int, bytes | None, Any]] = []
        for number in range(first_page, len(self._sealed) + 1):
            page = self._page(number)
            for slot in range(len(page)):
                position = number * self.page_size + slot
                if self._ids[position] not in removed:
                    kept.append((self._ids[position], self._dates[position], page.blobs[slot], page.objects[slot]))
        start = first_page * self.page_size
        del self._ids[start:]
        del self._dates[start:]
        del self._sealed[first_page:]
        for number in [number for number in self._cache if number >= first_page]:
            del self._cache[number]
        self._newest = _Page([], [])
        for msg_id, date, blob, message in kept:
            self._add(msg_id, date, blob, message)
        return gone

    def index_of(self, msg_id: int) -> int | None:
        """The position of the message with id ``msg_id``, or ``None``."""
        position = bisect.bisect_left(self._ids, msg_id)
        if position < len(self._ids) and self._ids[position] == msg_id:
            return position
        return None

    # endregion

    # region pages

    def _at(self, position: int) -> Any:
        return self._page(position // self.page_size).get(position % self.page_size)

    def _run(self, start: int, stop: int) -> list[Any]:
        """The messages from position ``start`` to ``stop``, page by page."""
        found: list[Any] = []
        while start < stop:
            number, slot = divmod(start, self.page_size)
            end = min(stop - number * self.page_size, self.page_size)
            found.extend(self._page(number).run(slot, end))
            start = number * self.page_size + end
        return found

    def _page(self, number: int) -> _Page:
        if number == len(self._sealed):
            return self._newest
        page = self._cache.get(number)
        if page is not None:
            self._cache.move_to_end(number)
            return page
        page = _Page.decompress(self._sealed[number], self.page_size)
        self._keep(number, page)
        return page

    def _keep(self, number: int, page: _Page) -> None:
        self._cache[number] = page
        self._cache.move_to_end(number)
        while len(self._cache) > self.cached_pages:
            evicted_number, evicted = self._cache.popitem(last=False)
            if evicted.dirty:
                self._sealed[evicted_number] = evicted.compress()

    # endregion


class ById(MutableMapping[int, Any]):
    """A history's messages by id (a view: it follows appends and removals)."""

    def __init__(self, history: History) -> None:
        self._history = history

    def __getitem__(self, msg_id: int) -> Any:
        position = self._history.index_of(msg_id)
        if position is None:
            raise KeyError(msg_id)
        return self._history[position]

    def __contains__(self, msg_id: object) -> bool:
        return isinstance(msg_id, int) and self._history.index_of(msg_id) is not None

    def __setitem__(self, msg_id: int, message: Any) -> None:
        """Write ``message`` back (it must keep its id); adding messages goes through ``append``."""
        if getattr(message, "id", None) != msg_id:
            raise ValueError(f"message written back as {msg_id} has id {getattr(message, 'id', None)}")
        self._history.replace(message)

    def __delitem__(self, msg_id: int) -> None:
        if not self._history.remove([msg_id]):
            raise KeyError(msg_id)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._history.ids))

    def __len__(self) -> int:
        return len(self._history)


def position_of_id(history: Sequence[Any], msg_id: int) -> int:
    """How many messages of ``history`` (a :class:`History` or a list, ascending ids) have an id below ``msg_id``."""
    if isinstance(history, History):
        return history.position_of_id(msg_id)
    return bisect.bisect_left(history, msg_id, key=lambda message: message.id)


def position_of_date(history: Sequence[Any], date: datetime) -> int:
    """How many messages of ``history`` (a :class:`History` or a list, ascending ids) are dated before ``date``."""
    if isinstance(history, History):
        return history.position_of_date(date)
    return bisect.bisect_left(history, date, key=lambda message: message.date)
