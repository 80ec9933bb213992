"""The lightweight message model every source converts into.

Plain frozen, slotted dataclasses with no I/O and no Telethon import. Identity is Telethon's
"marked" peer id everywhere (users positive, basic groups ``-id``, channels and supergroups
``-100id``), so a chat imported from a Telegram Desktop export and the same chat synced live
share one cursor and one set of notes.

Limits: text offsets in :class:`Entity` are UTF-16 code units, as Telegram sends them; the
conversion to Python string indices happens in :mod:`tobs_sync.markdown`. Kinds are plain
strings so that a value this version does not know (a new entity or media type) survives a
round trip through the cache unchanged; the ``*Kind`` classes list the known values.
``extra`` mappings hold source fields the model has no slot for; they are JSON-like values,
kept so nothing is lost, and are not hashable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

CHANNEL_ID_OFFSET = 1_000_000_000_000
"""Telethon marks a channel/supergroup id ``c`` as ``-(c + 10**12)``, i.e. ``-100c``."""
MIGRATED_ID_SHIFT = 1_000_000_000
"""A supergroup upgraded from a basic group holds the group's old messages at ``id - MIGRATED_ID_SHIFT``
(Telegram Desktop's numbering in exports; live syncs use it too, so both meet without duplicates)."""
GENERAL_TOPIC_ID = 1
"""The topic of a forum's messages that name none."""


class ChatKind(StrEnum):
    USER = "user"
    BOT = "bot"
    SAVED = "saved"
    GROUP = "group"
    SUPERGROUP = "supergroup"
    CHANNEL = "channel"
    UNKNOWN = "unknown"


class MessageKind(StrEnum):
    MESSAGE = "message"
    SERVICE = "service"
    UNSUPPORTED = "unsupported"


class EntityKind(StrEnum):
    BOLD = "bold"
    ITALIC = "italic"
    UNDERLINE = "underline"
    STRIKETHROUGH = "strikethrough"
    SPOILER = "spoiler"
    CODE = "code"
    PRE = "pre"
    LINK = "link"
    TEXT_LINK = "text_link"
    MENTION = "mention"
    MENTION_NAME = "mention_name"
    HASHTAG = "hashtag"
    CASHTAG = "cashtag"
    BOT_COMMAND = "bot_command"
    EMAIL = "email"
    PHONE = "phone"
    BANK_CARD = "bank_card"
    BLOCKQUOTE = "blockquote"
    CUSTOM_EMOJI = "custom_emoji"


class MediaKind(StrEnum):
    PHOTO = "photo"
    VIDEO = "video"
    ANIMATION = "animation"
    VOICE = "voice"
    AUDIO = "audio"
    VIDEO_NOTE = "video_note"
    STICKER = "sticker"
    DOCUMENT = "document"


def mark_user_id(user_id: int) -> int:
    return user_id


def mark_group_id(chat_id: int) -> int:
    return -chat_id


def mark_channel_id(channel_id: int) -> int:
    return -(channel_id + CHANNEL_ID_OFFSET)


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat, group or channel. ``id`` is the marked peer id."""

    id: int
    title: str
    kind: str = ChatKind.UNKNOWN
    username: str | None = None
    forum: bool = False
    """A supergroup with topics: every message belongs to one (the General topic when it names none)."""


@dataclass(frozen=True, slots=True)
class Entity:
    """A formatting span over a message's text; ``offset``/``length`` in UTF-16 code units."""

    kind: str
    offset: int
    length: int
    url: str | None = None
    """Target of a ``text_link``."""
    user_id: int | None = None
    """User of a ``mention_name``."""
    language: str | None = None
    """Language of a ``pre`` block (may be empty)."""
    custom_emoji_id: int | None = None
    collapsed: bool = False
    """A collapsed ``blockquote``."""


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A file attached to a message, as the source knows it (not yet in the vault).

    ``locator`` is opaque to everything but the source that made it (a path inside a Desktop
    export, a Telegram file location). ``file_key`` is the source's stable identity of the
    file's bytes (Telegram's photo/document id), used to skip downloads of known files.
    ``unavailable`` explains why the file cannot be fetched (e.g. left out of an export);
    such media is recorded and never embedded.
    """

    kind: str
    locator: str | None
    file_name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    dc_id: int | None = None
    file_key: str | None = None
    unavailable: str | None = None
    performer: str | None = None
    title: str | None = None
    emoji: str | None = None
    spoiler: bool = False


@dataclass(frozen=True, slots=True)
class Forward:
    """Where a forwarded (or saved) message came from."""

    from_name: str | None = None
    from_id: int | None = None
    date: int | None = None
    channel_post: int | None = None
    post_author: str | None = None
    saved_from: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    message_id: int
    chat_id: int | None = None
    """Set when the replied-to message lives in another chat."""
    quote_text: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceAction:
    """What a service message records (a chat created, a member joined, a call ...)."""

    kind: str
    title: str | None = None
    members: tuple[str, ...] = ()
    message_id: int | None = None
    duration: float | None = None
    text: str | None = None
    """Free text some actions carry (custom actions)."""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PollAnswer:
    text: str
    voters: int | None = None
    chosen: bool = False


@dataclass(frozen=True, slots=True)
class Poll:
    question: str
    answers: tuple[PollAnswer, ...] = ()
    closed: bool = False
    total_voters: int | None = None


class ReactionKind(StrEnum):
    EMOJI = "emoji"
    CUSTOM_EMOJI = "custom_emoji"
    PAID = "paid"
    """Telegram Stars sent as a reaction: ``count`` is the number of stars."""


@dataclass(frozen=True, slots=True)
class Reaction:
    """How many people reacted to a message with one reaction (as Telegram counts them)."""

    kind: str
    count: int
    emoji: str | None = None
    """The emoji of an ``emoji`` reaction."""
    document_id: int | None = None
    """The custom emoji's document id of a ``custom_emoji`` reaction."""


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    title: str | None = None
    address: str | None = None
    live_period: int | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    first_name: str | None = None
    last_name: str | None = None
    phone_number: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One Telegram message. ``date``/``edited`` are UTC epoch seconds."""

    chat_id: int
    id: int
    date: int
    kind: str = MessageKind.MESSAGE
    text: str = ""
    entities: tuple[Entity, ...] = ()
    sender_id: int | None = None
    sender_name: str | None = None
    author: str | None = None
    edited: int | None = None
    forward: Forward | None = None
    reply: Reply | None = None
    media: tuple[MediaRef, ...] = ()
    grouped_id: int | None = None
    action: ServiceAction | None = None
    poll: Poll | None = None
    location: Location | None = None
    contact: Contact | None = None
    via_bot: str | None = None
    topic_id: int | None = None
    """The forum topic the message is in (:data:`GENERAL_TOPIC_ID` for the General topic)."""
    topic_title: str | None = None
    """The topic's title when the source knows it."""
    reactions: tuple[Reaction, ...] = ()
    """Reaction counts in the source's order (Telegram's: most frequent first)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Source fields the model has no slot for, kept verbatim (JSON-like values)."""
    comments_count: int | None = None
    """A channel post's comments (in its discussion group) as Telegram counts them; None: no comments thread."""
    comments_max_id: int | None = None
    """The id of the post's newest comment (an id of the discussion group), when it has any."""
    comments_chat_id: int | None = None
    """The marked id of the discussion group the post's comments live in."""
