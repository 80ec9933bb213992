"""The Telegram Desktop export source: reads ``result.json`` ("Export chat history" or a full
account export) as a stream and yields model messages.

How it reads: the file is never parsed into one tree. ``__aenter__`` makes one streaming pass
(ijson events over :class:`~tobs_sync.sources.jsonstream.EscapeFixingReader`) that checks JSON
syntax, the shape (a single chat with ``messages``, or ``chats.list``/``left_chats.list``), that
every message is an object with an integer ``id``, a ``type`` and a usable date, and collects
the chat headers. ``batches`` then streams the file again, building one message at a time
(:func:`~tobs_sync.sources.jsonstream.build_object`, a lean ``ObjectBuilder``). Ids may be zero
or negative (a migrated group's old history). A message whose id is not above every id before it
in its chat (repeated or out of order) is left out, and so is one at or below the cursor;
:meth:`DesktopExport.skipped_messages` reports both. One parse position is kept between calls,
so reading chats in the order ``chats()`` yields them costs a single further pass; asking for a
chat before the current position reopens the file from the start. A second ``batches`` generator
running while another one is open gets a private parse of its own.

Limits: parsing runs on the event loop between batches (one batch of work at a time); the
checking pass runs in a worker thread. The file must not change while the source is open (a
changed size or mtime is refused when the file is reopened). Chat ids in exports made before
April 2021 are the old exporter's ``PeerId`` values (see :mod:`~tobs_sync.sources.tdesktop_convert`);
they are decoded when the file's sender ids are bare integers, or, with no sender ids at all,
when it has no ``date_unixtime`` and a group or channel id carries the old group-or-channel tag
(a user chat's id is then read as it is: today's user ids look tagged). Memory stays bounded by
one batch plus the chat headers, plus, for a chat read again, its ids at or below the cursor
kept as runs of consecutive numbers.
"""

from __future__ import annotations

import asyncio
import os
from array import array
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, BinaryIO, Self

from tobs_sync.errors import ExportFormatError, MediaUnavailable, SourceError
from tobs_sync.model import Chat, MediaRef, Message, MessageKind
from tobs_sync.sources.base import DEFAULT_BATCH_SIZE, SkippedMessage
from tobs_sync.sources.jsonstream import EscapeFixingReader, build_object, json_errors, parse_events
from tobs_sync.sources.tdesktop_convert import (
    ChatContext,
    convert_message,
    is_legacy_chat_id,
    make_chat,
    resolve_date,
    resolve_media_path,
)
from tobs_sync.sources.tdesktop_encoding import not_utf8_error, skip_utf8_bom
from tobs_sync.sources.tdesktop_topics import ExportTopics
from tobs_sync.store import BELOW_CURSOR

MEDIA_CHUNK_SIZE = 1024 * 1024
_SECTIONS = (("single", ""), ("chats", "chats.list.item"), ("left", "left_chats.list.item"))
_MESSAGE_KEYS = ("id", "type", "date", "date_unixtime", "from_id", "actor_id")
_VALUE_EVENTS = frozenset({"string", "number", "boolean", "null"})
OUT_OF_ORDER = "id not above the message before it (repeated or out of order in the export)"


def _role_table() -> Mapping[str, tuple[str, str]]:
    """ijson prefix -> (section, role) for every prefix either pass looks at."""
    table = {"": ("", "root"), "personal_information.user_id": ("", "owner")}
    table.update({"chats.list": ("chats", "list"), "left_chats.list": ("left", "list")})
    for section, base in _SECTIONS:
        dot = f"{base}." if base else ""
        if base:
            table[base] = (section, "chat")
        for key in ("name", "type", "id", "messages"):
            table[dot + key] = (section, key)
        table[f"{dot}messages.item"] = (section, "message")
        for key in _MESSAGE_KEYS:
            table[f"{dot}messages.item.{key}"] = (section, f"message.{key}")
    return MappingProxyType(table)


_ROLES = _role_table()


@dataclass(slots=True)
class _Header:
    """A chat as the checking pass saw it (its keys before ``messages``)."""

    ordinal: int
    section: str
    number: int
    name: Any = None
    type: Any = None
    raw_id: Any = None
    has_messages: bool = False

    def describe(self, label: str) -> str:
        name = f'"{self.name}"' if isinstance(self.name, str) else None
        if self.section == "single":
            return f"{label}: chat {name}" if name else f"{label}: chat"
        kind = "chat" if self.section == "chats" else "left chat"
        return f"{label}: {kind} {self.number}" + (f" ({name})" if name else "")

    @property
    def messages_prefix(self) -> str:
        base = dict(_SECTIONS)[self.section]
        return f"{base}.messages" if base else "messages"


class _MessageCheck:
    """Per-message state of the checking pass: the keys that must be there."""

    def __init__(self) -> None:
        self.position = 0
        self.reset()

    def reset(self) -> None:
        self.ident: Any = None
        self.has_id = False
        self.type: Any = None
        self.unixtime: Any = None
        self.local: Any = None

    def problem(self, timezone: tzinfo) -> str | None:
        """What is wrong with the message just read (``": no id"``, ``" (id 5): ..."``), or None."""
        if not self.has_id:
            return ': no "id"'
        if not isinstance(self.ident, int) or isinstance(self.ident, bool):
            return ': "id" is not an integer'
        if not isinstance(self.type, str) or not self.type:
            return f' (id {self.ident}): no "type"'
        if self.type != MessageKind.UNSUPPORTED and resolve_date(self.unixtime, self.local, timezone) is None:
            return f' (id {self.ident}): no usable "date" or "date_unixtime"'
        return None


class _Scanner:
    """The checking pass: ``handlers[role](section, event, value)`` for every prefix in ``_ROLES``."""

    def __init__(self, label: str, timezone: tzinfo) -> None:
        self.label = label
        self.timezone = timezone
        self.headers: list[_Header] = []
        self.current: _Header | None = None
        self.owner_id: Any = None
        self.shapes: set[str] = set()
        self.int_peers = self.str_peers = self.unixtimes = False
        self.message = _MessageCheck()
        self.handlers: dict[str, Callable[[str, str, Any], None]] = {
            "root": self._root,
            "owner": self._owner,
            "list": self._list,
            "chat": self._chat_event,
            "name": lambda section, event, value: self._header_field(section, event, "name", value),
            "type": lambda section, event, value: self._header_field(section, event, "type", value),
            "id": lambda section, event, value: self._header_field(section, event, "raw_id", value),
            "messages": self._messages,
            "message": self._message,
            "message.id": self._message_id,
            "message.type": self._message_type,
            "message.date": self._message_date,
            "message.date_unixtime": self._message_unixtime,
            "message.from_id": self._message_peer,
            "message.actor_id": self._message_peer,
        }

    # -- the top level and chat headers

    def _root(self, section: str, event: str, value: Any) -> None:
        if event not in ("start_map", "map_key", "end_map"):
            raise ExportFormatError(
                f"{self.label}: not a Telegram Desktop export (the top level is not an object)"
            )

    def _owner(self, section: str, event: str, value: Any) -> None:
        self.owner_id = value

    def _list(self, section: str, event: str, value: Any) -> None:
        if event == "start_array":
            self.shapes.add("full")

    def _chat_event(self, section: str, event: str, value: Any) -> None:
        if event == "start_map":
            self._start_chat(section, 1 + sum(header.section == section for header in self.headers))
        elif event != "end_map":
            kind = "chats" if section == "chats" else "left_chats"
            raise ExportFormatError(f'{self.label}: an entry of "{kind}" is not a JSON object')

    def _header_field(self, section: str, event: str, field: str, value: Any) -> None:
        if event in _VALUE_EVENTS:
            setattr(self._chat(section), field, value)

    def _start_chat(self, section: str, number: int) -> _Header:
        self.current = _Header(ordinal=len(self.headers), section=section, number=number)
        self.headers.append(self.current)
        return self.current

    def _chat(self, section: str) -> _Header:
        if self.current is None or self.current.section != section:
            return self._start_chat(section, 1)
        return self.current

    def _chat_where(self) -> str:
        return self.current.describe(self.label) if self.current else self.label

    # -- messages

    def _messages(self, section: str, event: str, value: Any) -> None:
        if event == "start_array":
            header = self._chat(section)
            header.has_messages = True
            if section == "single":
                self.shapes.add("single")
            self.message = _MessageCheck()
        elif event != "end_array":
            raise ExportFormatError(f'{self._chat_where()}: "messages" is not a list')

    def _message(self, section: str, event: str, value: Any) -> None:
        check = self.message
        if event == "start_map":
            check.position += 1
            check.reset()
        elif event == "end_map":
            problem = check.problem(self.timezone)
            if problem is not None:
                raise ExportFormatError(f"{self._chat_where()}, message {check.position}{problem}")
        else:
            raise ExportFormatError(f"{self._chat_where()}, message {check.position + 1}: not a JSON object")

    def _message_id(self, section: str, event: str, value: Any) -> None:
        self.message.has_id = True
        self.message.ident = value if event == "number" else None

    def _message_type(self, section: str, event: str, value: Any) -> None:
        self.message.type = value if event == "string" else None

    def _message_date(self, section: str, event: str, value: Any) -> None:
        self.message.local = value

    def _message_unixtime(self, section: str, event: str, value: Any) -> None:
        self.message.unixtime = value
        self.unixtimes = True

    def _message_peer(self, section: str, event: str, value: Any) -> None:
        if event == "string":
            self.str_peers = True
        elif event == "number" and isinstance(value, int):
            self.int_peers = True

    def finish(self) -> list[tuple[_Header, Chat]]:
        """The chats found, in file order; ExportFormatError if the file is not an export."""
        if not self.shapes:
            raise ExportFormatError(
                f'{self.label}: not a Telegram Desktop export: the top level has neither "messages" '
                '(one chat) nor a "chats" or "left_chats" list (full account export)'
            )
        if len(self.shapes) > 1:
            raise ExportFormatError(f'{self.label}: has both "messages" and "chats" at the top level')
        legacy = self.int_peers and not self.str_peers
        chats: list[tuple[_Header, Chat]] = []
        seen: dict[int, _Header] = {}
        for header in self.headers:
            raw_id = self._raw_id(header)
            old = legacy or (
                not (self.int_peers or self.str_peers or self.unixtimes)
                and is_legacy_chat_id(header.type, raw_id)
            )
            chat = make_chat(header.name, header.type, raw_id, old)
            if chat.id in seen:
                first = seen[chat.id].describe(self.label)
                raise ExportFormatError(f"{header.describe(self.label)}: same chat id {chat.id} as {first}")
            seen[chat.id] = header
            chats.append((header, chat))
        return chats

    def _raw_id(self, header: _Header) -> int:
        raw_id = header.raw_id
        if raw_id is None and header.type == "saved_messages":
            raw_id = self.owner_id
        if raw_id is None:
            raise ExportFormatError(f'{header.describe(self.label)}: no "id"')
        if not isinstance(raw_id, int) or isinstance(raw_id, bool):
            raise ExportFormatError(f'{header.describe(self.label)}: "id" is not an integer: {raw_id!r}')
        return raw_id


class _IdRuns:
    """Ascending ids stored as runs of consecutive numbers (16 bytes a run)."""

    def __init__(self) -> None:
        self._bounds = array("q")

    def add(self, ident: int) -> None:
        bounds = self._bounds
        if bounds and bounds[-1] == ident - 1:
            bounds[-1] = ident
        else:
            bounds.extend((ident, ident))

    def __iter__(self) -> Iterator[int]:
        bounds = self._bounds
        for start in range(0, len(bounds), 2):
            yield from range(bounds[start], bounds[start + 1] + 1)


@dataclass(slots=True)
class _ChatSkips:
    """What one read of a chat left out."""

    out_of_order: list[int]
    below_cursor: _IdRuns

    def messages(self) -> Iterator[SkippedMessage]:
        for ident in self.out_of_order:
            yield SkippedMessage(ident, OUT_OF_ORDER)
        for ident in self.below_cursor:
            yield SkippedMessage(ident, BELOW_CURSOR)


class _Stream:
    """One live parse of the export file, positioned somewhere after ``chats_started`` chats began."""

    def __init__(self, handle: BinaryIO, label: str) -> None:
        self.handle = handle
        self.label = label
        self.reader = EscapeFixingReader(handle)
        self.events = parse_events(self.reader)
        self.chats_started = 0
        self.busy = False

    def close(self) -> None:
        self.handle.close()

    def seek_messages(self, header: _Header) -> bool:
        """Advance to the start of ``header``'s ``messages``; False if the file has no such chat."""
        wanted = header.ordinal + 1
        with json_errors(self.reader, self.label):
            for prefix, event, _ in self.events:
                if event == "map_key":
                    continue
                role = _ROLES.get(prefix)
                if role is None:
                    continue
                section, name = role
                if name == "chat" and event == "start_map":
                    self.chats_started += 1
                elif name == "messages" and event == "start_array":
                    if section == "single":
                        self.chats_started += 1
                    if self.chats_started == wanted:
                        return True
                if self.chats_started > wanted:
                    return False
        return False

    def messages(self, header: _Header) -> Iterator[tuple[int, Any]]:
        """``(position, parsed message)`` for each message until the end of ``messages``."""
        container = header.messages_prefix
        item = f"{container}.item"
        events = self.events
        position = 0
        with json_errors(self.reader, self.label):
            for prefix, event, value in events:
                if prefix == item:
                    position += 1
                    if event != "start_map":
                        yield position, value
                        continue
                    yield position, build_object(events)
                elif prefix == container and event == "end_array":
                    return


class DesktopExport:
    """A Telegram Desktop JSON export as a :class:`~tobs_sync.sources.base.Source`.

    ``path`` is the export folder (holding ``result.json``) or the JSON file itself. Naive
    ``date`` strings of old exports are read in ``local_timezone``.
    """

    def __init__(self, path: Path, *, local_timezone: tzinfo, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        path = Path(path)
        self.json_path = path / "result.json" if path.is_dir() else path
        self.export_root = self.json_path.parent
        """The folder media paths in the export are relative to."""
        self.name = f"export {self.json_path.name}"
        self._label = str(self.json_path)
        self._root = self.export_root.resolve()
        self._timezone = local_timezone
        self._batch_size = batch_size
        self._chats: list[tuple[_Header, Chat]] | None = None
        self._by_id: dict[int, _Header] = {}
        self._fingerprint: tuple[int, int] | None = None
        self._stream: _Stream | None = None
        self._skips: dict[int, _ChatSkips] = {}

    # -- Source protocol ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        chats, fingerprint = await asyncio.to_thread(self._scan)
        self._chats, self._fingerprint = chats, fingerprint
        self._by_id = {chat.id: header for header, chat in chats}
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._drop_stream()

    async def chats(self) -> AsyncIterator[Chat]:
        for _, chat in self._checked_chats():
            yield chat

    async def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]:
        self._checked_chats()
        header = self._by_id.get(chat.id)
        if header is None:
            raise SourceError(f"{self._label}: no chat with id {chat.id} in this export")
        if not header.has_messages:
            return
        stream, shared = self._claim_stream(header)
        broken = False
        try:
            batch: list[Message] = []
            for message in self._messages_after(stream, header, chat, after):
                batch.append(message)
                if len(batch) >= self._batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        except Exception:
            broken = True
            raise
        finally:
            self._release_stream(stream, shared, broken)

    def skipped_messages(self, chat: Chat) -> Iterator[SkippedMessage]:
        """What the last ``batches`` read of ``chat`` left out (see :class:`~tobs_sync.sources.base.ReportsSkips`)."""
        skips = self._skips.get(chat.id)
        return skips.messages() if skips is not None else iter(())

    async def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]:
        what = f"{self._label}: {media.locator or media.file_name or media.kind}"
        if media.unavailable or media.locator is None:
            raise MediaUnavailable(f"{what}: {media.unavailable or 'no file'}")
        target, unavailable = resolve_media_path(media.locator, self._root)
        if target is None:
            raise MediaUnavailable(f"{what}: {unavailable}")
        try:
            handle = open(target, "rb")  # noqa: SIM115 - closed by the with below, across yields
        except OSError as error:
            raise MediaUnavailable(f"{what}: {error.strerror or error}") from error
        with handle:
            handle.seek(offset)
            while True:
                try:
                    chunk = handle.read(MEDIA_CHUNK_SIZE)
                except OSError as error:
                    raise MediaUnavailable(f"{what}: {error.strerror or error}") from error
                if not chunk:
                    return
                yield chunk

    # -- the file ----------------------------------------------------------------------------

    def _open(self) -> BinaryIO:
        """Open the export file for one streaming pass (the seam tests count)."""
        try:
            handle = open(self.json_path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as error:
            raise SourceError(f"{self._label}: cannot read the export: {error.strerror or error}") from error
        skip_utf8_bom(handle)
        return handle

    def _scan(self) -> tuple[list[tuple[_Header, Chat]], tuple[int, int]]:
        handle = self._open()
        with handle:
            info = os.fstat(handle.fileno())
            scanner = _Scanner(self._label, self._timezone)
            reader = EscapeFixingReader(handle)
            roles, handlers = _ROLES, scanner.handlers
            try:
                with json_errors(reader, self._label):
                    for prefix, event, value in parse_events(reader):
                        if event == "map_key":
                            continue
                        role = roles.get(prefix)
                        if role is not None:
                            handlers[role[1]](role[0], event, value)
            except ExportFormatError as error:
                handle.seek(0)
                if (encoding := not_utf8_error(handle, self._label)) is not None:
                    raise ExportFormatError(encoding) from error
                raise
            return scanner.finish(), (info.st_size, info.st_mtime_ns)

    def _checked_chats(self) -> list[tuple[_Header, Chat]]:
        if self._chats is None:
            raise SourceError(f"{self._label}: the export is not open (use `async with`)")
        return self._chats

    def _open_stream(self) -> _Stream:
        handle = self._open()
        info = os.fstat(handle.fileno())
        if (info.st_size, info.st_mtime_ns) != self._fingerprint:
            handle.close()
            raise SourceError(f"{self._label}: the export changed while it was being read; run again")
        return _Stream(handle, self._label)

    def _claim_stream(self, header: _Header) -> tuple[_Stream, bool]:
        """The stream to read ``header`` from, and whether it is the shared one."""
        current = self._stream
        if current is not None and current.busy:
            stream = self._open_stream()
            stream.busy = True
            return stream, False
        if current is None or current.chats_started > header.ordinal:
            self._drop_stream()
            current = self._stream = self._open_stream()
        current.busy = True
        return current, True

    def _release_stream(self, stream: _Stream, shared: bool, broken: bool) -> None:
        stream.busy = False
        if not shared:
            stream.close()
        elif broken and stream is self._stream:
            self._drop_stream()

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _messages_after(
        self, stream: _Stream, header: _Header, chat: Chat, after: int
    ) -> Iterator[Message]:
        chat_id = chat.id
        where = header.describe(self._label)
        if not stream.seek_messages(header):
            raise SourceError(f"{where}: not found when reading the export again; did the file change?")
        context = ChatContext(
            chat_id=chat_id, export_root=self._root, timezone=self._timezone, where=where, title=chat.title
        )
        skips = self._skips[chat_id] = _ChatSkips([], _IdRuns())
        topics = ExportTopics()
        last_date: int | None = None
        highest: int | None = None
        for position, raw in stream.messages(header):
            ident = raw.get("id") if type(raw) is dict else None
            if type(ident) is int:
                if highest is not None and ident <= highest:
                    skips.out_of_order.append(ident)
                    continue
                highest = ident
                if ident <= after:
                    skips.below_cursor.add(ident)
                    topics.skip(ident, raw)
                    date = resolve_date(raw.get("date_unixtime"), raw.get("date"), self._timezone)
                    last_date = date if date is not None else last_date
                    continue
            message = topics.place(convert_message(raw, context, position, last_date))
            last_date = message.date
            yield message
