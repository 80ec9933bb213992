"""Conversion of Telethon TL objects (users, chats, messages) into the model.

Pure functions, no I/O and no client calls: only fields already on the objects are read, plus
the entities Telethon attaches when a message comes from ``iter_messages``/``get_messages``
(``message.sender``, ``message.chat``, ``message.forward``, ``message.via_bot``,
``message.action_entities``). Kind strings are those of
:mod:`tobs_sync.sources.tdesktop_convert` (service actions, media, entities), so a chat first
imported from a Desktop export and then synced live renders the same way.

Media are addressed by *slot*: the n-th downloadable file of a message (slot 0 is the photo or
document; a live photo's video is slot 1; a group photo change is slot 0 of the service
message). :func:`media_locator` names a slot, :func:`tl_media_for_slot` gives back its
``types.Photo``/``types.Document`` for downloading.

Limits: anything the model has no slot for lands in ``Message.extra`` (or
``ServiceAction.details``) as JSON-like values; unknown media and actions keep only their plain
scalar fields (nested objects one level deep, ``access_hash``/``file_reference`` never).
Without the entities Telethon attaches, names fall back to ``"user <id>"`` or ``None``.
Self-destructing media are recorded as unavailable and never downloaded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from telethon import utils
from telethon.tl import types
from telethon.tl.tlobject import TLObject

from tobs_sync.model import (
    GENERAL_TOPIC_ID,
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
    ReactionKind,
    Reply,
    ServiceAction,
)
from tobs_sync.sources.tdesktop_convert import DELETED_ACCOUNT, unnamed_title

LOCATOR_SCHEME = "tg"
UNAVAILABLE_MEDIA = "media no longer available"
SELF_DESTRUCTING = "self-destructing media is not saved"
SAVED_MESSAGES = "Saved Messages"

_LOCATOR = re.compile(r"tg:(-?[0-9]+):([0-9]+):([0-9]+)", re.ASCII)
_SECRET_FIELDS = frozenset({"access_hash", "file_reference"})
_ENTITY_KINDS: Mapping[type, str] = MappingProxyType({  # others: the snake-cased class name, as in exports
    types.MessageEntityStrike: "strikethrough",
    types.MessageEntityUrl: "link",
    types.MessageEntityTextUrl: "text_link",
    types.InputMessageEntityMentionName: "mention_name",
})


# -- names and ids --------------------------------------------------------------------------


def snake_case(name: str) -> str:
    """``MessageActionSetMessagesTTL`` style names as ``message_action_set_messages_ttl``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _kind_name(obj: Any, prefix: str) -> str:
    return _type_kind(type(obj), prefix)


@functools.cache
def _type_kind(cls: type, prefix: str) -> str:
    """The kind name of a TL class (computed once per class: the regular expressions are not cheap)."""
    return snake_case(cls.__name__.removeprefix(prefix)) or "unknown"


def _epoch(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _peer_id(peer: Any) -> int | None:
    try:
        return utils.get_peer_id(peer) if peer is not None else None
    except (TypeError, ValueError):
        return None


def _username(entity: Any) -> str | None:
    name = getattr(entity, "username", None)
    if not name:
        active = [u.username for u in getattr(entity, "usernames", None) or () if u.active and u.username]
        name = active[0] if active else None
    return name.lstrip("@") or None if name else None


def display_name(entity: Any) -> str | None:
    """A sender's display name: a user's first and last name, a chat's or channel's title."""
    if isinstance(entity, types.User):
        return " ".join(part for part in (entity.first_name, entity.last_name) if part) or None
    title = getattr(entity, "title", None)
    return title if isinstance(title, str) and title else None


def _chat_kind(entity: Any) -> ChatKind:
    if isinstance(entity, types.User | types.UserEmpty):
        if getattr(entity, "is_self", False):
            return ChatKind.SAVED
        return ChatKind.BOT if getattr(entity, "bot", False) else ChatKind.USER
    if isinstance(entity, types.Channel | types.ChannelForbidden):
        return ChatKind.CHANNEL if entity.broadcast else ChatKind.SUPERGROUP
    if isinstance(entity, types.Chat | types.ChatForbidden | types.ChatEmpty):
        return ChatKind.GROUP
    return ChatKind.UNKNOWN


def chat_from_entity(entity: Any) -> Chat:
    """A :class:`Chat` from a Telethon user, basic group or channel (forbidden/empty ones too)."""
    chat_id, kind, username = utils.get_peer_id(entity), _chat_kind(entity), _username(entity)
    if kind is ChatKind.SAVED:
        title = SAVED_MESSAGES
    elif kind in (ChatKind.USER, ChatKind.BOT):
        title = display_name(entity) or username or f"{DELETED_ACCOUNT} {entity.id}"
    else:
        title = display_name(entity) or unnamed_title(kind, abs(getattr(entity, "id", chat_id)))
    forum = bool(getattr(entity, "forum", False))
    return Chat(id=chat_id, title=title, kind=kind.value, username=username, forum=forum)


def _member_name(entity: Any, user_id: int) -> str:
    if entity is None:
        return f"user {user_id}"
    return display_name(entity) or _username(entity) or DELETED_ACCOUNT


# -- locators -------------------------------------------------------------------------------


def media_locator(chat_id: int, message_id: int, slot: int) -> str:
    """The locator of one downloadable file of a message: ``tg:<chat_id>:<message_id>:<slot>``."""
    return f"{LOCATOR_SCHEME}:{chat_id}:{message_id}:{slot}"


def parse_locator(locator: str) -> tuple[int, int, int]:
    """``(chat_id, message_id, slot)`` of a :func:`media_locator` value; ValueError otherwise."""
    match = _LOCATOR.fullmatch(locator) if isinstance(locator, str) else None
    if match is None:
        raise ValueError(f"not a Telegram media locator: {locator!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _slot_objects(message: Any) -> tuple[Any, ...]:
    """The (possibly empty or missing) TL file objects of a message, one per slot."""
    action, media = getattr(message, "action", None), getattr(message, "media", None)
    if isinstance(action, types.MessageActionChatEditPhoto):
        return (action.photo,)
    if isinstance(media, types.MessageMediaPhoto):
        return (media.photo, media.video) if media.video is not None else (media.photo,)
    if isinstance(media, types.MessageMediaDocument):
        return (media.document,)
    return ()


def _self_destructing(message: Any) -> bool:
    return bool(getattr(getattr(message, "media", None), "ttl_seconds", None))


def tl_media_for_slot(message: Any, slot: int) -> types.Photo | types.Document | None:
    """The downloadable ``Photo``/``Document`` behind ``slot`` of ``message``, or None."""
    objects = _slot_objects(message)
    if not 0 <= slot < len(objects) or _self_destructing(message):
        return None
    obj = objects[slot]
    return obj if isinstance(obj, types.Photo | types.Document) else None


# -- JSON-like values -----------------------------------------------------------------------


def _json(value: Any, depth: int = 1) -> Any:
    """A JSON-like copy of a TL value; None for what is empty or too deep."""
    if isinstance(value, bool | str | float) or value is None:
        return value or None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return _epoch(value)
    if isinstance(value, bytes):
        return value.hex() or None
    if isinstance(value, types.PeerUser | types.PeerChat | types.PeerChannel):
        return _peer_id(value)
    if isinstance(value, types.TextWithEntities):
        return value.text or None
    if isinstance(value, list | tuple):
        items = [item for item in (_json(v, depth) for v in value) if item is not None]
        return items or None
    if isinstance(value, TLObject) and depth > 0:
        return _scalars(value, depth - 1) or None
    return None


def _scalars(obj: TLObject, depth: int = 1) -> dict[str, Any]:
    """The non-empty plain fields of a TL object (nested objects ``depth`` levels deep)."""
    fields = {key: _json(getattr(obj, key, None), depth) for key in obj.to_dict() if key != "_"}
    return {key: value for key, value in fields.items() if value is not None and key not in _SECRET_FIELDS}


def _present(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", False)}


# -- text -----------------------------------------------------------------------------------


_ENTITY_EXTRAS = ("user_id", "language", "url", "document_id", "collapsed")
_entity_fields: dict[type, frozenset[str]] = {}
"""Which of :data:`_ENTITY_EXTRAS` each entity class has (the same for every object of a TL class)."""


@functools.cache
def _entity_kind(cls: type) -> str:
    return _ENTITY_KINDS.get(cls) or _type_kind(cls, "MessageEntity")  # unknown -> "unknown"


def _entity(tl: Any) -> Entity:
    cls = type(tl)
    kind = _entity_kind(cls)
    fields = _entity_fields.get(cls)
    if fields is None:
        fields = _entity_fields[cls] = frozenset(name for name in _ENTITY_EXTRAS if hasattr(tl, name))
    if not fields:  # bold, italic, code, links, hashtags ...: no field beyond the span
        return Entity(kind, tl.offset, tl.length)
    user_id = getattr(tl, "user_id", None)
    if not isinstance(user_id, int):  # InputMessageEntityMentionName holds an InputUser
        user_id = getattr(user_id, "user_id", None)
    language = getattr(tl, "language", None)
    return Entity(
        kind, tl.offset, tl.length, url=getattr(tl, "url", None), user_id=user_id,
        language=language if isinstance(language, str) else None,
        custom_emoji_id=getattr(tl, "document_id", None), collapsed=bool(getattr(tl, "collapsed", False)),
    )


def _text_of(value: Any) -> str:
    """Text of a ``TextWithEntities`` (layer >= 180) or a plain string (older layers)."""
    if isinstance(value, types.TextWithEntities):
        return value.text or ""
    return value if isinstance(value, str) else ""


# -- media ----------------------------------------------------------------------------------


def _largest_photo_size(photo: types.Photo) -> tuple[int | None, int | None, int | None]:
    """``(bytes, width, height)`` of the largest downloadable size of a photo."""
    best: tuple[int | None, int | None, int | None] = (None, None, None)
    for size in photo.sizes or ():
        if isinstance(size, types.PhotoSize):
            nbytes = size.size
        elif isinstance(size, types.PhotoSizeProgressive):
            nbytes = max(size.sizes or [0])
        elif isinstance(size, types.PhotoCachedSize):
            nbytes = len(size.bytes or b"")
        else:
            continue
        if best[0] is None or nbytes >= best[0]:
            best = (nbytes, size.w, size.h)
    return best


def _photo_ref(photo: types.Photo, locator: str | None, spoiler: bool) -> MediaRef:
    size, width, height = _largest_photo_size(photo)
    return MediaRef(
        MediaKind.PHOTO.value, locator, mime_type="image/jpeg", size=size, width=width, height=height,
        dc_id=photo.dc_id, file_key=f"photo:{photo.id}", spoiler=spoiler,
    )


def _attributes(document: types.Document) -> dict[type, Any]:
    return {type(attribute): attribute for attribute in document.attributes or ()}


def _document_kind(attrs: Mapping[type, Any]) -> str:
    video, audio = attrs.get(types.DocumentAttributeVideo), attrs.get(types.DocumentAttributeAudio)
    if types.DocumentAttributeSticker in attrs:
        return MediaKind.STICKER.value
    if video is not None and video.round_message:
        return MediaKind.VIDEO_NOTE.value
    if types.DocumentAttributeAnimated in attrs:
        return MediaKind.ANIMATION.value
    if video is not None:
        return MediaKind.VIDEO.value
    if audio is not None:
        return (MediaKind.VOICE if audio.voice else MediaKind.AUDIO).value
    return MediaKind.DOCUMENT.value


def _document_ref(document: types.Document, locator: str | None, spoiler: bool) -> MediaRef:
    attrs = _attributes(document)
    kind = _document_kind(attrs)
    video, audio = attrs.get(types.DocumentAttributeVideo), attrs.get(types.DocumentAttributeAudio)
    dims = video or attrs.get(types.DocumentAttributeImageSize)
    timed = video or audio
    named = attrs.get(types.DocumentAttributeFilename)
    sticker = attrs.get(types.DocumentAttributeSticker)
    is_audio = kind == MediaKind.AUDIO.value
    return MediaRef(
        kind, locator, file_name=named.file_name if named is not None else None,
        mime_type=document.mime_type or None, size=document.size,
        width=dims.w if dims is not None else None, height=dims.h if dims is not None else None,
        duration=float(timed.duration) if timed is not None and timed.duration is not None else None,
        dc_id=document.dc_id, file_key=f"document:{document.id}",
        performer=(audio.performer or None) if is_audio else None, title=(audio.title or None) if is_audio else None,
        emoji=(sticker.alt or None) if sticker is not None else None, spoiler=spoiler,
    )


def _empty_kind(media: Any, slot: int) -> str:
    """The kind of a file that is gone, from the flags of its media."""
    if not isinstance(media, types.MessageMediaDocument):
        return (MediaKind.VIDEO if slot else MediaKind.PHOTO).value
    flags = ((media.round, MediaKind.VIDEO_NOTE), (media.voice, MediaKind.VOICE), (media.video, MediaKind.VIDEO))
    return next((kind for flag, kind in flags if flag), MediaKind.DOCUMENT).value


def _media_refs(message: Any, chat_id: int) -> tuple[MediaRef, ...]:
    objects = _slot_objects(message)
    if not objects:
        return ()
    media = getattr(message, "media", None)
    spoiler = bool(getattr(media, "spoiler", False))
    reason = SELF_DESTRUCTING if _self_destructing(message) else None
    refs = []
    for slot, obj in enumerate(objects):
        locator = None if reason else media_locator(chat_id, message.id, slot)
        if isinstance(obj, types.Photo):
            ref = _photo_ref(obj, locator, spoiler)
        elif isinstance(obj, types.Document):
            ref = _document_ref(obj, locator, spoiler)
        else:
            ref = MediaRef(kind=_empty_kind(media, slot), locator=None, unavailable=UNAVAILABLE_MEDIA, spoiler=spoiler)
        refs.append(ref if reason is None else replace(ref, locator=None, unavailable=reason))
    return tuple(refs)


def _poll(media: types.MessageMediaPoll) -> Poll:
    poll, results = media.poll, media.results
    voters = {v.option: v for v in getattr(results, "results", None) or ()}
    answers = tuple(
        PollAnswer(_text_of(answer.text), getattr(voters.get(answer.option), "voters", None),
                   bool(getattr(voters.get(answer.option), "chosen", False)))
        for answer in poll.answers or ()
    )
    total = getattr(results, "total_voters", None)
    return Poll(_text_of(poll.question), answers, closed=bool(poll.closed), total_voters=total)


def _poll_extra(media: types.MessageMediaPoll) -> dict[str, Any]:
    poll, results = media.poll, media.results
    options = [answer.option for answer in poll.answers or ()]
    counts = getattr(results, "results", None) or ()
    correct = [options.index(v.option) for v in counts if v.correct and v.option in options]
    solution = getattr(results, "solution", None) or None
    return _present(quiz=poll.quiz, multiple_choice=poll.multiple_choice, public_voters=poll.public_voters,
                    correct_answers=correct or None, solution=solution)


def _location(media: Any) -> Location | None:
    geo = getattr(media, "geo", None)
    if not isinstance(geo, types.GeoPoint):
        return None
    title, address = getattr(media, "title", None) or None, getattr(media, "address", None) or None
    return Location(geo.lat, geo.long, title=title, address=address, live_period=getattr(media, "period", None))


def _structured_media(media: Any, values: dict[str, Any], extra: dict[str, Any]) -> None:
    """Poll, location, contact and web page fields of ``media``; other kinds into ``extra``."""
    if media is None or isinstance(media, types.MessageMediaPhoto | types.MessageMediaDocument):
        return
    if isinstance(media, types.MessageMediaPoll):
        values["poll"] = _poll(media)
        if flags := _poll_extra(media):
            extra["poll"] = flags
    elif isinstance(media, types.MessageMediaContact):
        values["contact"] = Contact(media.first_name or None, media.last_name or None, media.phone_number or None)
        if more := _present(user_id=media.user_id or None, vcard=media.vcard):
            extra["contact"] = more
    elif isinstance(media, types.MessageMediaWebPage):
        page = media.webpage
        fields = ("url", "site_name", "title", "description")
        if webpage := _present(**{name: getattr(page, name, None) for name in fields}):
            extra["webpage"] = webpage
    elif (location := _location(media)) is not None:
        values["location"] = location
        if isinstance(media, types.MessageMediaVenue) and (venue := _present(
            provider=media.provider, venue_id=media.venue_id, venue_type=media.venue_type
        )):
            extra["venue"] = venue
    else:
        extra[_kind_name(media, "MessageMedia")] = _scalars(media)


# -- service actions ------------------------------------------------------------------------


def _members(message: Any, user_ids: list[int]) -> tuple[str, ...]:
    entities = getattr(message, "action_entities", None) or []
    resolved = {_peer_id(e): e for e in entities if e is not None}
    return tuple(_member_name(resolved.get(user_id), user_id) for user_id in user_ids or ())


def _pinned_id(message: Any) -> int | None:
    return getattr(message.reply_to, "reply_to_msg_id", None)


def _call(action: types.MessageActionPhoneCall) -> dict[str, Any]:
    """Details of a call: the discard reason as exports name it (``hangup``, ``missed`` ...)."""
    reason = _kind_name(action.reason, "PhoneCallDiscardReason") if action.reason else None
    return _present(discard_reason=reason, video=bool(action.video))


_ActionMaker = Callable[[Any, Any], ServiceAction]
_ACTIONS: Mapping[type, _ActionMaker] = MappingProxyType({
    types.MessageActionChatCreate: lambda a, m: ServiceAction("create_group", a.title, _members(m, a.users)),
    types.MessageActionChannelCreate: lambda a, m: ServiceAction("create_channel", a.title),
    types.MessageActionChatEditTitle: lambda a, m: ServiceAction("edit_group_title", a.title),
    types.MessageActionChatEditPhoto: lambda a, m: ServiceAction("edit_group_photo"),
    types.MessageActionChatDeletePhoto: lambda a, m: ServiceAction("delete_group_photo"),
    types.MessageActionChatAddUser: lambda a, m: ServiceAction("invite_members", members=_members(m, a.users)),
    types.MessageActionChatDeleteUser: lambda a, m: ServiceAction("remove_members", members=_members(m, [a.user_id])),
    types.MessageActionChatJoinedByLink: lambda a, m: ServiceAction(
        "join_group_by_link", details={"inviter": _members(m, [a.inviter_id])[0]}
    ),
    types.MessageActionChatJoinedByRequest: lambda a, m: ServiceAction("join_group_by_request"),
    types.MessageActionChatMigrateTo: lambda a, m: ServiceAction(
        "migrate_to_supergroup", details={"channel_id": utils.get_peer_id(types.PeerChannel(a.channel_id))}
    ),
    types.MessageActionChannelMigrateFrom: lambda a, m: ServiceAction(
        "migrate_from_group", a.title, details={"chat_id": utils.get_peer_id(types.PeerChat(a.chat_id))}
    ),
    types.MessageActionPinMessage: lambda a, m: ServiceAction("pin_message", message_id=_pinned_id(m)),
    types.MessageActionHistoryClear: lambda a, m: ServiceAction("clear_history"),
    types.MessageActionPhoneCall: lambda a, m: ServiceAction("phone_call", duration=a.duration, details=_call(a)),
    types.MessageActionGroupCall: lambda a, m: ServiceAction("group_call", duration=a.duration),
    types.MessageActionInviteToGroupCall: lambda a, m: ServiceAction(
        "invite_to_group_call", members=_members(m, a.users)
    ),
    types.MessageActionSetMessagesTTL: lambda a, m: ServiceAction("set_messages_ttl", details={"period": a.period}),
    types.MessageActionGroupCallScheduled: lambda a, m: ServiceAction(
        "group_call_scheduled", details={"schedule_date": _epoch(a.schedule_date)}
    ),
    types.MessageActionContactSignUp: lambda a, m: ServiceAction("joined_telegram"),
    types.MessageActionScreenshotTaken: lambda a, m: ServiceAction("take_screenshot"),
    types.MessageActionTopicCreate: lambda a, m: ServiceAction("topic_created", a.title),
    types.MessageActionTopicEdit: lambda a, m: ServiceAction("topic_edit", details=_present(
        new_title=a.title, new_icon_emoji_id=str(a.icon_emoji_id) if a.icon_emoji_id else None,
        closed=a.closed, hidden=a.hidden,
    )),
    types.MessageActionCustomAction: lambda a, m: ServiceAction("custom_action", text=a.message),
})


def service_action(message: Any) -> ServiceAction:
    """The :class:`ServiceAction` of a ``MessageService`` (tdesktop kind names)."""
    action = message.action
    maker = _ACTIONS.get(type(action))
    if maker is not None:
        return maker(action, message)
    return ServiceAction(kind=_kind_name(action, "MessageAction"), details=_scalars(action))


# -- messages -------------------------------------------------------------------------------


def _sender(message: Any, chat_id: int) -> tuple[int | None, str | None]:
    """``(sender_id, sender_name)`` as Telethon computes the sender, with two fallbacks.

    Telethon's ``sender_id`` is ``from_id``, else the chat for channel posts and incoming private
    messages. Still unknown: an outgoing message is ours (the client's own id, when a client is
    attached); a message in a group is the group's own (an anonymous admin), as in exports.
    """
    sender_id = message.sender_id
    if sender_id is None and message.out:
        self_id = getattr(getattr(message, "_client", None), "_self_id", None)
        sender_id = self_id if isinstance(self_id, int) else None
    elif sender_id is None and chat_id < 0:
        sender_id = chat_id
    entity = message.sender
    if entity is None and sender_id is not None and sender_id == chat_id:
        entity = message.chat
    return sender_id, display_name(entity) if entity is not None else None


def _via_bot(message: Any) -> str | None:
    if not message.via_bot_id:
        return None
    username = _username(message.via_bot)
    return f"@{username}" if username else f"bot {message.via_bot_id}"


def _forward(message: Any) -> Forward | None:
    fwd = message.fwd_from
    if fwd is None:
        return None
    resolved = message.forward
    origin = (resolved.sender or resolved.chat) if resolved is not None else None
    saved = fwd.saved_from_name or (str(_peer_id(fwd.saved_from_peer)) if fwd.saved_from_peer else None)
    return Forward(
        from_name=fwd.from_name or display_name(origin), from_id=_peer_id(fwd.from_id), date=_epoch(fwd.date),
        channel_post=fwd.channel_post, post_author=fwd.post_author or None, saved_from=saved,
    )


def topic_of(message: Any, forum: bool = False) -> int | None:
    """The forum topic of a TL message: the topic its reply header names, the topic a topic-creation
    message starts (its own id), else the General topic in a forum and None elsewhere."""
    header = getattr(message, "reply_to", None)
    if isinstance(header, types.MessageReplyHeader) and header.forum_topic:
        return header.reply_to_top_id or header.reply_to_msg_id
    if isinstance(getattr(message, "action", None), types.MessageActionTopicCreate):
        return int(message.id)
    return GENERAL_TOPIC_ID if forum else None


def _reply(message: Any, chat_id: int, extra: dict[str, Any]) -> Reply | None:
    """The message this one answers. In a forum topic the header's ``reply_to_msg_id`` is the topic
    itself unless ``reply_to_top_id`` is set too: only then is the message a reply."""
    header = message.reply_to
    if isinstance(header, types.MessageReplyStoryHeader):
        extra["reply_to_story"] = {"peer_id": _peer_id(header.peer), "story_id": header.story_id}
        return None
    if not isinstance(header, types.MessageReplyHeader):
        return None
    if header.forum_topic and not header.reply_to_top_id:
        return None
    if header.reply_to_msg_id is None:
        if info := _scalars(header):
            extra["reply_to"] = info
        return None
    other = _peer_id(header.reply_to_peer_id)
    return Reply(header.reply_to_msg_id, other if other != chat_id else None, header.quote_text or None)


def _reactions(reactions: Any) -> tuple[Reaction, ...]:
    """The counts of ``MessageReactions.results``, kinds named as exports name them (``emoji``,
    ``custom_emoji``, ``paid``)."""
    counts = []
    for result in getattr(reactions, "results", None) or ():
        reaction = result.reaction
        if isinstance(reaction, types.ReactionEmoji):
            counts.append(Reaction(ReactionKind.EMOJI.value, result.count, emoji=reaction.emoticon or None))
        elif isinstance(reaction, types.ReactionCustomEmoji):
            counts.append(Reaction(ReactionKind.CUSTOM_EMOJI.value, result.count, document_id=reaction.document_id))
        else:
            counts.append(Reaction(_kind_name(reaction, "Reaction"), result.count))
    return tuple(counts)


def _recent_reactions(reactions: Any) -> list[dict[str, Any]] | None:
    """Who reacted lately (``recent_reactions``, shown by Telegram for small groups), as exports keep it."""
    recent = []
    for item in getattr(reactions, "recent_reactions", None) or ():
        reaction = item.reaction
        label = getattr(reaction, "emoticon", None) or _kind_name(reaction, "Reaction")
        recent.append(_present(reaction=label, from_id=_peer_id(item.peer_id), date=_epoch(item.date)))
    return recent or None


def _button(button: types.KeyboardButton) -> dict[str, Any]:
    """An inline button as exports write it: ``type`` (``url``, ``callback`` ...), ``text``, ``url``."""
    kind = _kind_name(button.type, "InlineButtonType")
    return {"type": kind, "text": button.text} | _present(url=getattr(button.type, "url", None))


def _buttons(markup: Any) -> list[list[dict[str, Any]]] | None:
    if not isinstance(markup, types.ReplyInlineMarkup):
        return None
    rows = [
        [_button(button) for button in row.buttons if isinstance(button, types.KeyboardButton)]
        for row in markup.rows or ()
    ]
    return [row for row in rows if row] or None


def _counters(message: Any, extra: dict[str, Any]) -> None:
    """Counters and other per-message data the model has no slot for (zero counts are left out)."""
    if not (
        message.views or message.forwards or message.replies or message.reactions or message.reply_markup
        or message.ttl_period or message.via_business_bot_id or message.restriction_reason
    ):
        return  # nothing to keep (most messages outside channels)
    extra.update(_present(
        views=message.views, forwards=message.forwards, replies=getattr(message.replies, "replies", None),
        reactions_recent=_recent_reactions(message.reactions), inline_bot_buttons=_buttons(message.reply_markup),
        ttl_period=message.ttl_period, via_business_bot_id=message.via_business_bot_id,
        restriction_reason=_json(message.restriction_reason),
    ))


def _comments(message: Any) -> dict[str, Any]:
    """A channel post's comments thread (``replies`` with ``comments`` set): its count, newest id
    and discussion group; nothing for other messages (a group's reply counts stay in ``extra``)."""
    replies = getattr(message, "replies", None)
    if not isinstance(replies, types.MessageReplies) or not replies.comments or not replies.channel_id:
        return {}
    return {"comments_count": replies.replies, "comments_max_id": replies.max_id,
            "comments_chat_id": utils.get_peer_id(types.PeerChannel(replies.channel_id))}


def _edited(message: Any, date: int) -> int | None:
    edited = _epoch(message.edit_date)
    if edited is None or edited == date or message.edit_hide:
        return None
    return edited


def message_from_tl(message: Any, chat_id: int, *, forum: bool = False) -> Message | None:
    """A :class:`Message` from a Telethon ``Message``/``MessageService``; None for ``MessageEmpty``.

    ``forum``: the chat has topics, so a message naming no topic is in the General topic. The topic's
    title is set here only for the message that creates it; the source knows the others.
    """
    if not isinstance(message, types.Message | types.MessageService):
        return None
    service = isinstance(message, types.MessageService)
    date = _epoch(message.date) or 0
    extra: dict[str, Any] = {}
    values: dict[str, Any] = {}
    _structured_media(message.media, values, extra)
    sender_id, sender_name = _sender(message, chat_id)
    reply = _reply(message, chat_id, extra)
    action = service_action(message) if service else None
    topic_id = topic_of(message, forum)
    topic_title = action.title if action is not None and action.kind == "topic_created" else None
    if action is not None and action.kind == "pin_message":
        reply = None  # the pinned message is the action's message_id, as in exports
    _counters(message, extra)
    return Message(
        chat_id, message.id, date, (MessageKind.SERVICE if service else MessageKind.MESSAGE).value,
        text="" if service else message.message or "",
        entities=() if service else tuple(_entity(e) for e in message.entities or ()),
        sender_id=sender_id, sender_name=sender_name, author=message.post_author or None,
        edited=_edited(message, date), forward=_forward(message), reply=reply, media=_media_refs(message, chat_id),
        grouped_id=message.grouped_id, action=action, via_bot=_via_bot(message), topic_id=topic_id,
        topic_title=topic_title, reactions=_reactions(message.reactions), extra=extra, **values,
        **_comments(message),
    )
