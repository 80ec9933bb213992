"""Conversion of Telegram Desktop export values (one parsed message at a time) into the model.

Pure functions over JSON-like values plus file-system checks of media paths; no parsing of the
export file itself (that is :mod:`tobs_sync.sources.tdesktop`). The field meanings follow
``shared/reference/tdesktop-export-format.md``.

Input is a message as :func:`~tobs_sync.sources.jsonstream.build_object` makes it (JSON-like
values, numbers as int or float, never ``Decimal``). Tolerance rules: only a message's ``id``,
``type`` and date can make conversion fail. Any other key is mapped when its value has the
expected shape; otherwise, and for every key the model has no slot for, the value is kept
verbatim in ``Message.extra`` (or, for service messages, in ``ServiceAction.details``) so
nothing is lost.

Old integer peer ids: before v2.7.2 (April 2021) Telegram Desktop wrote peer ids as its
exporter's own ``PeerId`` numbers: ``kUserPeerIdShift = 1 << 32`` or-ed into a user id and
``kChatPeerIdShift = 2 << 32`` into a basic group's *or* a channel's id (``ParsePeerId`` in
``export/data/export_data_types.cpp`` of those versions). A chat's own ``id`` had that form from
v1.4.8 on; ``from_id``/``actor_id`` were the bare user id from v1.4.8 and the shifted form from
v2.4.0; ``reply_to_peer_id`` (v2.4.0 on) was shifted. :func:`legacy_peer_id` decodes all three:
no tag or tag 1 is a user, tag 2 is the chat itself when it is that basic group and a channel
(or supergroup) otherwise, since only those post as senders. A chat's own tag-2 id needs the
chat type to tell a basic group from a channel (:func:`make_chat`); callers decide when a
chat's ``id`` is in the old form. Limits: unknown entity kinds keep their kind string and
span but lose any extra attributes other than the common ones (href, user_id, language,
document_id, collapsed).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import Any

from tobs_sync.errors import ExportFormatError
from tobs_sync.model import (
    Chat,
    ChatKind,
    Contact,
    Entity,
    Forward,
    Location,
    MediaKind,
    MediaRef,
    Message,
    MessageKind,
    Poll,
    PollAnswer,
    Reaction,
    Reply,
    ServiceAction,
    mark_channel_id,
    mark_group_id,
    mark_user_id,
)

LEGACY_USER_TAG = 1
"""``kUserPeerIdShift >> 32``: the old exporter's tag of a user id."""
LEGACY_CHAT_TAG = 2
"""``kChatPeerIdShift >> 32``: the old exporter's tag of a basic group's or a channel's id."""
_LEGACY_BARE_MASK = 0xFFFFFFFF

OUTSIDE_EXPORT = "path outside the export folder"
MISSING_FILE = "file missing from the export"
DELETED_ACCOUNT = "Deleted account"

_PEER = re.compile(r"(user|chat|channel)(\d+)", re.ASCII)
_UNIXTIME = re.compile(r"\s*-?\d+\s*", re.ASCII)

_USER_TYPES = frozenset({"personal_chat", "bot_chat", "saved_messages", "replies", "verification_codes"})
_CHAT_KINDS: Mapping[str, ChatKind] = MappingProxyType(
    {
        "personal_chat": ChatKind.USER,
        "bot_chat": ChatKind.BOT,
        "saved_messages": ChatKind.SAVED,
        "replies": ChatKind.BOT,
        "verification_codes": ChatKind.USER,
        "private_group": ChatKind.GROUP,
        "private_supergroup": ChatKind.SUPERGROUP,
        "public_supergroup": ChatKind.SUPERGROUP,
        "private_channel": ChatKind.CHANNEL,
        "public_channel": ChatKind.CHANNEL,
    }
)
_FALLBACK_TITLES: Mapping[str, str] = MappingProxyType(
    {"saved_messages": "Saved Messages", "replies": "Replies", "verification_codes": "Verification Codes"}
)
_UNNAMED_TYPES: Mapping[ChatKind, str] = MappingProxyType(
    {ChatKind.GROUP: "group", ChatKind.SUPERGROUP: "supergroup", ChatKind.CHANNEL: "channel"}
)
_MEDIA_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "video_file": MediaKind.VIDEO.value,
        "voice_message": MediaKind.VOICE.value,
        "audio_file": MediaKind.AUDIO.value,
        "animation": MediaKind.ANIMATION.value,
        "sticker": MediaKind.STICKER.value,
        "video_message": MediaKind.VIDEO_NOTE.value,
    }
)


# -- peers and chats ------------------------------------------------------------------------


def legacy_peer_id(value: int, chat_id: int) -> int | None:
    """Marked id of an old (before v2.7.2) integer peer id found in chat ``chat_id``.

    ``value`` is a bare user id (``from_id`` before v2.4.0) or the exporter's shifted ``PeerId``.
    A tag-2 id is ``chat_id`` when that is the basic group with this bare id, else a channel.
    None for what the exporter never wrote (negative numbers, other tags).
    """
    if value < 0:
        return None
    tag, bare = value >> 32, value & _LEGACY_BARE_MASK
    if tag == 0:
        return mark_user_id(value)
    if tag == LEGACY_USER_TAG:
        return mark_user_id(bare)
    if tag == LEGACY_CHAT_TAG:
        return chat_id if mark_group_id(bare) == chat_id else mark_channel_id(bare)
    return None


def peer_id(value: Any, chat_id: int) -> int | None:
    """Marked id of ``"user1"``/``"chat1"``/``"channel1"`` or an old integer id (see :func:`legacy_peer_id`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return legacy_peer_id(value, chat_id)
    if isinstance(value, str) and (match := _PEER.fullmatch(value)):
        bare = int(match.group(2))
        prefix = match.group(1)
        if prefix == "user":
            return mark_user_id(bare)
        return mark_group_id(bare) if prefix == "chat" else mark_channel_id(bare)
    return None


def chat_kind(chat_type: str | None) -> ChatKind:
    return _CHAT_KINDS.get(chat_type or "", ChatKind.UNKNOWN)


def is_legacy_chat_id(chat_type: str | None, raw_id: int) -> bool:
    """Whether ``raw_id`` carries the old exporter's tag of a group or channel and ``chat_type`` is one.

    Only asked when nothing else in the file tells old from new. A user chat is never guessed
    old: user ids of today run past ``1 << 32`` and would look tagged.
    """
    kind = chat_kind(chat_type)
    if kind in (ChatKind.GROUP, ChatKind.SUPERGROUP, ChatKind.CHANNEL, ChatKind.UNKNOWN):
        return raw_id >> 32 == LEGACY_CHAT_TAG
    return False


def make_chat(name: Any, chat_type: Any, raw_id: int, legacy: bool) -> Chat:
    """A :class:`Chat` from a chat header; ``legacy`` when ``raw_id`` is the old exporter's ``PeerId``.

    The type decides how the bare id is marked. An old id of unknown type is a user with tag 1;
    with tag 2 it is marked as a channel's (the tag does not tell a basic group from a channel).
    """
    type_name = chat_type if isinstance(chat_type, str) else None
    kind = chat_kind(type_name)
    tag = raw_id >> 32 if legacy else 0
    if tag in (LEGACY_USER_TAG, LEGACY_CHAT_TAG):
        raw_id &= _LEGACY_BARE_MASK
        if kind is ChatKind.UNKNOWN and tag == LEGACY_USER_TAG:
            kind = ChatKind.USER
    if kind is ChatKind.GROUP:
        chat_id = mark_group_id(raw_id)
    elif kind in (ChatKind.SUPERGROUP, ChatKind.CHANNEL) or tag == LEGACY_CHAT_TAG:
        chat_id = mark_channel_id(raw_id)
    else:
        chat_id = mark_user_id(raw_id)
    if isinstance(name, str) and name:
        title = name
    elif type_name in _FALLBACK_TITLES:
        title = _FALLBACK_TITLES[type_name]
    elif type_name in _USER_TYPES:
        title = f"{DELETED_ACCOUNT} {raw_id}"
    else:
        title = unnamed_title(kind, raw_id)
    return Chat(id=chat_id, title=title, kind=kind.value)


def unnamed_title(kind: ChatKind, bare_id: int) -> str:
    """The title of a group or channel that has none: its type and its id (``Unnamed channel 123``)."""
    return f"Unnamed {_UNNAMED_TYPES.get(kind, 'chat')} {bare_id}"


# -- scalar values --------------------------------------------------------------------------


def resolve_date(unixtime: Any, local: Any, timezone: tzinfo) -> int | None:
    """Epoch seconds from ``*_unixtime`` (preferred) or a naive local ISO ``date``; None if neither."""
    if isinstance(unixtime, str) and _UNIXTIME.fullmatch(unixtime):
        return int(unixtime)
    if isinstance(unixtime, int) and not isinstance(unixtime, bool):
        return unixtime
    if isinstance(local, str):
        try:
            moment = datetime.fromisoformat(local)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone)
        return int(moment.timestamp())
    return None


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def loose_int(value: Any) -> int | None:
    """An int from a JSON number or a decimal string (some exports quote counts)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _UNIXTIME.fullmatch(value):
        return int(value)
    return None


def loose_bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


# -- text -----------------------------------------------------------------------------------


def rich_text(parts: Any) -> tuple[str, tuple[Entity, ...]]:
    """Plain text and entities of a text value: a string, or a list of strings and ``{type, text}``."""
    if isinstance(parts, str):
        return parts, ()
    if not isinstance(parts, list):
        return "", ()
    pieces: list[str] = []
    entities: list[Entity] = []
    offset = 0
    for part in parts:
        if isinstance(part, str):
            text, kind = part, "plain"
        elif isinstance(part, dict):
            text = part.get("text") if isinstance(part.get("text"), str) else ""
            kind = part.get("type") if isinstance(part.get("type"), str) else "unknown"
        else:
            continue
        length = utf16_length(text)
        if kind != "plain" and length:
            entities.append(_entity(kind, offset, length, part if isinstance(part, dict) else {}))
        pieces.append(text)
        offset += length
    return "".join(pieces), tuple(entities)


def plain_text(parts: Any) -> str:
    return rich_text(parts)[0]


def _entity(kind: str, offset: int, length: int, part: Mapping[str, Any]) -> Entity:
    if len(part) <= 2:
        return Entity(kind=kind, offset=offset, length=length)
    href = part.get("href")
    language = part.get("language")
    user_id = part.get("user_id")
    document_id = part.get("document_id")
    return Entity(
        kind=kind,
        offset=offset,
        length=length,
        url=href if isinstance(href, str) else None,
        user_id=None if user_id is None else loose_int(user_id),
        language=language if isinstance(language, str) else None,
        custom_emoji_id=None if document_id is None else loose_int(document_id),
        collapsed=part.get("collapsed") is True,
    )


def message_text(text_entities: Any, text: Any) -> tuple[str, tuple[Entity, ...]]:
    """Text and entities, from ``text_entities`` when it is a list, else from ``text``."""
    if isinstance(text_entities, list):
        return rich_text(text_entities)
    return rich_text(text)


# -- media ----------------------------------------------------------------------------------


def resolve_media_path(raw_path: str, export_root: Path) -> tuple[Path | None, str | None]:
    """``(file, unavailable)`` for a ``photo``/``file`` value; ``export_root`` must be resolved.

    Placeholders (``"(File not included...)"``) give their text without parentheses; absolute
    paths and paths that leave the export folder after resolving (``..``, symlinks) are refused
    without being read; a path to nothing is "missing".
    """
    if raw_path.startswith("("):
        return None, raw_path.strip().removeprefix("(").removesuffix(")")
    if not raw_path:
        return None, MISSING_FILE
    if PurePosixPath(raw_path).is_absolute() or PureWindowsPath(raw_path).anchor:
        return None, OUTSIDE_EXPORT
    try:
        target = (export_root / raw_path).resolve()
    except (OSError, ValueError, RuntimeError):
        return None, OUTSIDE_EXPORT
    if not target.is_relative_to(export_root):
        return None, OUTSIDE_EXPORT
    if not target.is_file():
        return None, MISSING_FILE
    return target, None


def locate_media(raw_path: str, export_root: Path) -> tuple[str | None, str | None]:
    """``(locator, unavailable)``: the relative path (None for placeholders) and why it cannot be read."""
    _, unavailable = resolve_media_path(raw_path, export_root)
    locator = None if raw_path.startswith("(") or not raw_path else raw_path
    return locator, unavailable


class _Fields:
    """A raw message with typed accessors that record which keys were used."""

    def __init__(self, raw: Mapping[str, Any], chat_id: int) -> None:
        self.raw = raw
        self.chat_id = chat_id
        self.used: set[str] = set()
        self.recent_reactions: list[Any] = []
        """``reactions[].recent``, flattened, for ``extra`` (see :func:`_reactions`)."""

    def take(self, key: str) -> Any:
        self.used.add(key)
        return self.raw.get(key)

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, str):
            if key in self.raw:
                self.used.add(key)
            return value
        return None

    def integer(self, key: str) -> int | None:
        value = self.raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            self.used.add(key)
            return value
        return None

    def number(self, key: str) -> float | None:
        value = _number(self.raw.get(key))
        if value is not None:
            self.used.add(key)
        return value

    def flag(self, key: str) -> bool:
        value = self.raw.get(key)
        if isinstance(value, bool):
            self.used.add(key)
        return value is True

    def peer(self, key: str) -> int | None:
        value = peer_id(self.raw.get(key), self.chat_id)
        if value is not None:
            self.used.add(key)
        return value

    def rest(self) -> dict[str, Any]:
        rest = {key: value for key, value in self.raw.items() if key not in self.used}
        if self.recent_reactions:
            rest["reactions_recent"] = self.recent_reactions
        return rest


def _photo(fields: _Fields, export_root: Path) -> MediaRef | None:
    raw_path = fields.text("photo")
    if raw_path is None:
        return None
    locator, unavailable = locate_media(raw_path, export_root)
    return MediaRef(
        kind=MediaKind.PHOTO.value,
        locator=locator,
        # Exports write photos without a MIME type; the file's own extension is the best guess.
        mime_type=mimetypes.guess_type(locator)[0] if locator else None,
        size=fields.integer("photo_file_size"),
        width=fields.integer("width"),
        height=fields.integer("height"),
        unavailable=unavailable,
        spoiler=fields.flag("media_spoiler"),
    )


def _document(fields: _Fields, export_root: Path) -> MediaRef | None:
    raw_path = fields.text("file")
    if raw_path is None:
        return None
    locator, unavailable = locate_media(raw_path, export_root)
    media_type = fields.text("media_type")
    kind = _MEDIA_KINDS.get(media_type, media_type) if media_type else MediaKind.DOCUMENT.value
    audio = kind == MediaKind.AUDIO.value
    return MediaRef(
        kind=kind,
        locator=locator,
        file_name=fields.text("file_name"),
        mime_type=fields.text("mime_type"),
        size=fields.integer("file_size"),
        width=fields.integer("width"),
        height=fields.integer("height"),
        duration=fields.number("duration_seconds"),
        unavailable=unavailable,
        performer=fields.text("performer") if audio else None,
        title=fields.text("title") if audio else None,
        emoji=fields.text("sticker_emoji"),
        spoiler=fields.flag("media_spoiler"),
    )


def _media(fields: _Fields, export_root: Path) -> tuple[MediaRef, ...]:
    photo, document = _photo(fields, export_root), _document(fields, export_root)
    if document is None:
        return () if photo is None else (photo,)
    return (document,) if photo is None else (photo, document)


# -- structured media -----------------------------------------------------------------------


def _only_keys(value: Mapping[str, Any], keys: frozenset[str]) -> bool:
    return all(key in keys for key in value)


_POLL_KEYS = frozenset({"question", "closed", "total_voters", "answers"})
_ANSWER_KEYS = frozenset({"text", "voters", "chosen"})


def _poll(fields: _Fields) -> Poll | None:
    raw = fields.raw.get("poll")
    if not isinstance(raw, dict):
        return None
    raw_answers = raw.get("answers") if isinstance(raw.get("answers"), list) else []
    answers = tuple(
        PollAnswer(
            text=plain_text(answer.get("text")),
            voters=loose_int(answer.get("voters")),
            chosen=loose_bool(answer.get("chosen")),
        )
        for answer in raw_answers
        if isinstance(answer, dict)
    )
    complete = _only_keys(raw, _POLL_KEYS) and all(
        isinstance(answer, dict) and _only_keys(answer, _ANSWER_KEYS) for answer in raw_answers
    )
    if complete:
        fields.used.add("poll")
    return Poll(
        question=plain_text(raw.get("question")),
        answers=answers,
        closed=loose_bool(raw.get("closed")),
        total_voters=loose_int(raw.get("total_voters")),
    )


def _location(fields: _Fields) -> Location | None:
    raw = fields.raw.get("location_information")
    if not isinstance(raw, dict):
        return None
    latitude, longitude = _number(raw.get("latitude")), _number(raw.get("longitude"))
    if latitude is None or longitude is None:
        return None
    if _only_keys(raw, frozenset({"latitude", "longitude"})):
        fields.used.add("location_information")
    return Location(
        latitude=latitude,
        longitude=longitude,
        title=fields.text("place_name"),
        address=fields.text("address"),
        live_period=fields.integer("live_location_period_seconds"),
    )


def _contact(fields: _Fields) -> Contact | None:
    raw = fields.raw.get("contact_information")
    if not isinstance(raw, dict):
        return None
    names = ("first_name", "last_name", "phone_number")
    values = {key: raw.get(key) if isinstance(raw.get(key), str) else None for key in names}
    if _only_keys(raw, frozenset(names)):
        fields.used.add("contact_information")
    return Contact(**values)


_REACTION_KEYS = frozenset({"type", "count", "emoji", "document_id", "recent"})


def _reactions(fields: _Fields) -> tuple[Reaction, ...]:
    """``reactions`` (v5.5.7 on): ``[{type, count, emoji?, document_id?, recent?}]``; entries without a
    count are skipped. Who reacted lately (``recent: [{from, from_id, date}]``) goes to ``extra`` as
    ``reactions_recent``, each entry naming its reaction; with any other key the list stays in ``extra``."""
    raw = fields.raw.get("reactions")
    if not isinstance(raw, list):
        return ()
    reactions: list[Reaction] = []
    recent: list[Any] = []
    for entry in raw:
        count = loose_int(entry.get("count")) if isinstance(entry, dict) else None
        if count is None:
            continue
        kind, emoji = entry.get("type"), entry.get("emoji")
        document_id = entry.get("document_id")
        reaction = Reaction(
            kind=kind if isinstance(kind, str) and kind else "unknown",
            count=count,
            emoji=emoji if isinstance(emoji, str) and emoji else None,
            document_id=None if document_id is None else loose_int(document_id),
        )
        reactions.append(reaction)
        if isinstance(entry.get("recent"), list):
            label = reaction.emoji or reaction.kind
            recent.extend({"reaction": label, **item} if isinstance(item, dict) else item for item in entry["recent"])
    if all(isinstance(entry, dict) and _only_keys(entry, _REACTION_KEYS) for entry in raw):
        fields.used.add("reactions")
        if recent:
            fields.recent_reactions = recent
    return tuple(reactions)


# -- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatContext:
    """What converting a chat's messages needs: its id, where files live, the local time zone."""

    chat_id: int
    export_root: Path
    """Resolved folder media paths are relative to."""
    timezone: tzinfo
    where: str
    """Error prefix naming the file and chat, e.g. ``result.json: chat 1 ("Name")``."""
    title: str | None = None
    """The chat's title (its type's name when the export gives none): the sender of its own posts."""


def message_id(raw: Any, where: str) -> int:
    """The message's integer ``id``; ExportFormatError naming ``where`` (the message) otherwise."""
    if not isinstance(raw, dict):
        raise ExportFormatError(f"{where}: not a JSON object")
    value = raw.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is None:
        raise ExportFormatError(f'{where}: no "id"')
    raise ExportFormatError(f'{where}: "id" is not an integer: {value!r}')


def convert_message(raw: Any, context: ChatContext, position: int, fallback_date: int | None) -> Message:
    """One export message as a :class:`Message`.

    ``position`` is the 1-based index in the chat's ``messages`` (for errors). A message with
    no usable date fails, except an ``unsupported`` one, which takes ``fallback_date`` (the
    previous message's date, or 0).
    """
    ident = raw.get("id") if type(raw) is dict else None
    if type(ident) is not int:
        ident = message_id(raw, f"{context.where}, message {position}")  # raises, naming the problem
    fields = _Fields(raw, context.chat_id)
    fields.used.add("id")
    kind = fields.text("type")
    if not kind:
        raise ExportFormatError(f'{context.where}, message {position} (id {ident}): no "type"')
    date = resolve_date(fields.take("date_unixtime"), fields.take("date"), context.timezone)
    if date is None:
        if kind != MessageKind.UNSUPPORTED:
            problem = 'no usable "date" or "date_unixtime"'
            raise ExportFormatError(f"{context.where}, message {position} (id {ident}): {problem}")
        date = fallback_date or 0
    service = kind == MessageKind.SERVICE
    text, entities = _text(fields)
    sender_id = fields.peer("actor_id" if service else "from_id")
    values: dict[str, Any] = {
        "sender_id": sender_id,
        "sender_name": _sender_name(fields, "actor" if service else "from", sender_id, context),
        "author": fields.text("author"),
        "edited": _edited(fields, context.timezone),
        "forward": _forward(fields),
        "reply": _reply(fields, context.chat_id),
        "media": _media(fields, context.export_root),
        "poll": _poll(fields),
        "location": _location(fields),
        "contact": _contact(fields),
        "via_bot": fields.text("via_bot"),
        "reactions": _reactions(fields),
    }
    if service:
        values["action"] = _service_action(fields)
    else:
        values["extra"] = fields.rest()
    return Message(
        chat_id=context.chat_id, id=ident, date=date, kind=kind, text=text, entities=entities, **values
    )


def _sender_name(fields: _Fields, key: str, sender_id: int | None, context: ChatContext) -> str | None:
    """``from``/``actor``; when it is null (the writer's "string or null" for a peer without a name), the
    chat's own title for its own posts, else "Deleted account" for a user."""
    name = fields.text(key)
    if name is not None or key not in fields.raw:
        return name
    if sender_id is not None and sender_id == context.chat_id:
        return context.title
    return DELETED_ACCOUNT if sender_id is not None and sender_id > 0 else None


def _text(fields: _Fields) -> tuple[str, tuple[Entity, ...]]:
    text_entities, text = fields.raw.get("text_entities"), fields.raw.get("text")
    if isinstance(text_entities, list):
        fields.used.add("text_entities")
    if isinstance(text, str | list):
        fields.used.add("text")
    return message_text(text_entities, text)


def _edited(fields: _Fields, timezone: tzinfo) -> int | None:
    edited = resolve_date(fields.raw.get("edited_unixtime"), fields.raw.get("edited"), timezone)
    if edited is not None:
        fields.used.update({"edited_unixtime", "edited"})
    return edited


def _forward(fields: _Fields) -> Forward | None:
    raw = fields.raw
    if "forwarded_from" not in raw and "forwarded_from_id" not in raw and "saved_from" not in raw:
        return None
    return Forward(
        from_name=fields.text("forwarded_from"),
        from_id=fields.peer("forwarded_from_id"),
        saved_from=fields.text("saved_from"),
    )


def _reply(fields: _Fields, chat_id: int) -> Reply | None:
    reply_to = fields.integer("reply_to_message_id")
    if reply_to is None:
        return None
    peer = fields.peer("reply_to_peer_id")
    return Reply(message_id=reply_to, chat_id=peer if peer != chat_id else None)


def _service_action(fields: _Fields) -> ServiceAction:
    kind = fields.text("action") or "custom_action"
    members = fields.raw.get("members")
    member_names: tuple[str, ...] = ()
    if isinstance(members, list):
        fields.used.add("members")
        member_names = tuple(DELETED_ACCOUNT if name is None else str(name) for name in members)
    duration = fields.number("duration_seconds")
    if duration is None:
        duration = fields.number("duration")
    return ServiceAction(
        kind=kind,
        title=fields.text("title"),
        members=member_names,
        message_id=fields.integer("message_id"),
        duration=duration,
        text=fields.text("information_text"),
        details=fields.rest(),
    )
