"""What templates see: messages, chats and attachments turned into safe values.

Every string that came from Telegram or an export is safe by default, in two forms: values for
the note body (``body``, ``*_md``, ``label``, service descriptions ...) are escaped Markdown, and
every other value (``sender``, ``chat.title``, ``file_name``, ``extra`` ...) is inert text
(:func:`tobs_sync.names.inert_text`) fit for properties, aliases, tags and link labels. Templater
reads the raw file, so the escaped forms go through :func:`tobs_sync.names.inert_markdown` too.
The unaltered text is there only where a template asks for it by name: the ``raw`` mapping of
a chat, a message, a forward, a reply and a media item (``message.raw.text``, ``chat.raw.title``).
Dates are naive datetimes in the vault's time zone, as Obsidian's date properties expect. The
README's "Templates" section documents every key; keep the two in step.

Limits: no I/O here; whatever needs the store (note paths of replied-to messages, stored media
paths) is looked up by the caller and passed in.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tobs_sync.markdown import render_text
from tobs_sync.model import GENERAL_TOPIC_ID, Chat, MediaKind, MediaRef, Message, Reaction, ReactionKind, ServiceAction
from tobs_sync.names import inert_markdown, inert_text, inert_value, md, tag_segment
from tobs_sync.note_links import MIGRATION_PEERS, NO_LINKS, NoteLinks, action_chat_id
from tobs_sync.render import wikilink

EMBEDDABLE_EXTENSIONS = frozenset(
    {
        *("avif", "bmp", "gif", "jpeg", "jpg", "png", "svg", "webp"),
        *("flac", "m4a", "mp3", "ogg", "oga", "opus", "wav", "webm", "3gp"),
        *("mkv", "mov", "mp4", "ogv", "pdf"),
    }
)
"""Extensions Obsidian shows inline with ``![[...]]``; other files get a plain link."""

STICKER_WIDTH = 160
"""Pixels a sticker is shown at (Telegram's are 512 wide; its apps show them at about this size)."""

_TELEGRAM_USERNAME = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """Where one media item of a message ended up (or why it did not)."""

    media: MediaRef
    path: str | None
    status: str
    reason: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    """What media processors found (duration, width, height, fps, codec ...)."""
    content_hash: str | None = None


def local_datetime(epoch: int | None, tz: dt.tzinfo) -> dt.datetime | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz).replace(tzinfo=None)


def chat_tag(chat: Chat) -> str:
    """An Obsidian tag (without ``#``) for a chat: ``telegram/<segment of its title>``."""
    return f"telegram/{tag_segment(chat.title, fallback=f'chat-{abs(chat.id)}')}"


_NAMES_KEPT = 1024
"""Names (senders, authors, bots, topics) remembered in their inert and Markdown forms: they recur."""
_NAME_MAX = 256
_INERT_NAMES: dict[str, str] = {}
_MD_NAMES: dict[str, str] = {}


def _remembered(memo: dict[str, str], make: Callable[[str], str], text: str) -> str:
    """``make(text)``, remembered in ``memo`` for short text (at most :data:`_NAMES_KEPT` kept)."""
    if len(text) > _NAME_MAX:
        return make(text)
    known = memo.get(text)
    if known is None:
        if len(memo) >= _NAMES_KEPT:
            memo.clear()
        known = memo[text] = make(text)
    return known


def _inert(text: str | None) -> str | None:
    return None if text is None else _remembered(_INERT_NAMES, inert_text, text)


def _md_name(text: str) -> str:
    return _remembered(_MD_NAMES, md, text)


def _inert_value(value: Any) -> Any:
    """:func:`~tobs_sync.names.inert_value`, with the short texts of a plain mapping (the keys of a
    message's ``extra``: ``views``, ``forwards`` ...) remembered."""
    if type(value) is dict:
        return {_inert(k) if type(k) is str else inert_value(k): inert_value(v) for k, v in value.items()}
    return inert_value(value)


NO_TOPIC = "General"
"""The ``{topic}`` of messages outside any topic: Telegram shows a group's history from before it had
topics, and a chat without topics, as one stream, which is what a forum's General topic is."""


def topic_title(message: Message) -> str | None:
    """The title of the message's topic as the source knew it; ``General`` for the General topic."""
    if message.topic_title:
        return message.topic_title
    return NO_TOPIC if message.topic_id == GENERAL_TOPIC_ID else None


def topic_path_value(message: Message) -> str:
    """The ``{topic}`` field of ``vault.note_path`` (inert; the path code makes it folder-safe): the
    topic's title, ``topic <id>`` when the title is unknown, ``General`` outside topics."""
    if message.topic_id is None:
        return NO_TOPIC
    title = topic_title(message)
    return inert_text(title) if title else f"topic {message.topic_id}"


_CHAT_VIEWS: dict[tuple[Chat, str], dict[str, Any]] = {}
_CHAT_VIEWS_KEPT = 256
"""Chat views remembered: every note of a chat shows the same one (a chat is immutable)."""


def chat_view(chat: Chat, chat_note_path: str) -> dict[str, Any]:
    """The ``chat`` variable of the templates; a fresh mapping each time, built once per chat and path."""
    key = (chat, chat_note_path)
    view = _CHAT_VIEWS.get(key)
    if view is None:
        if len(_CHAT_VIEWS) >= _CHAT_VIEWS_KEPT:
            _CHAT_VIEWS.clear()
        view = _CHAT_VIEWS[key] = _build_chat_view(chat, chat_note_path)
    return {**view, "raw": dict(view["raw"])}


def _build_chat_view(chat: Chat, chat_note_path: str) -> dict[str, Any]:
    username = chat.username
    return {
        "id": chat.id,
        "title": inert_text(chat.title),
        "title_md": md(chat.title),
        "kind": inert_text(str(chat.kind)),
        "forum": chat.forum,
        "username": _inert(username),
        "username_md": md(username) if username else None,
        "url": f"https://t.me/{username}" if username and _TELEGRAM_USERNAME.fullmatch(username) else None,
        "note_path": chat_note_path,
        "link": wikilink(chat_note_path, chat.title),
        "tag": chat_tag(chat),
        "raw": {"title": chat.title, "username": username},
    }


def message_view(
    messages: Sequence[Message],
    media: Sequence[StoredMedia],
    *,
    tz: dt.tzinfo,
    note_path: str,
    reply_path: str | None = None,
    links: NoteLinks = NO_LINKS,
    deleted: Mapping[int, int] | None = None,
    comments: Mapping[str, Any] | None = None,
    post: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``message`` variable of the message template; ``messages`` is one note's worth (an album).

    ``links`` holds the notes and chats the message points at (:func:`tobs_sync.note_links.linked_notes`);
    ``reply_path`` alone is a shorthand for a reply's note in the same chat.
    ``deleted``: when tobs-sync found messages of the note deleted in Telegram, by id (UTC epoch s);
    ``message.deleted`` is the latest such time once every message of the note is deleted, and
    ``message.deleted_ids`` lists the deleted ones (an album may lose some members only).
    ``comments``: a channel post's comments (:func:`comments_view`); ``post``: for a comment, the post
    it answers (:func:`post_view`)."""
    first = messages[0]
    if reply_path is not None and links.reply_path is None:
        links = NoteLinks(reply_path, links.reply_chat_title, links.pinned_path)
    gone = {m.id: deleted[m.id] for m in messages if deleted and m.id in deleted}
    bodies = [render_text(m.text, m.entities) for m in messages if m.text]
    edited = [m.edited for m in messages if m.edited]
    text = "\n\n".join(m.text for m in messages if m.text)
    extra = {k: v for m in messages for k, v in m.extra.items()}
    topic = topic_title(first)
    # An album's reactions are on the one message people reacted to (Telegram shows them under the album).
    reactions = next((m.reactions for m in messages if m.reactions), ())
    labels = [reaction_label(r) for r in reactions]
    return {
        "id": first.id,
        "ids": [m.id for m in messages],
        "kind": inert_text(str(first.kind)),
        "date": local_datetime(first.date, tz),
        "edited": local_datetime(max(edited), tz) if edited else None,
        "deleted": local_datetime(max(gone.values()), tz) if gone and len(gone) == len(messages) else None,
        "deleted_ids": sorted(gone),
        "text": inert_text(text),
        "body": inert_markdown("\n\n".join(bodies)),
        "sender": _inert(first.sender_name),
        "sender_md": _md_name(first.sender_name) if first.sender_name else "",
        "sender_id": first.sender_id,
        "author": _inert(first.author),
        "via_bot": _inert(first.via_bot),
        "via_bot_md": _md_name(first.via_bot) if first.via_bot else None,
        "reactions": [_inert(label) for label in labels],
        "reactions_total": reactions_total(reactions),
        "reactions_md": md(" · ".join(labels)) if reactions else None,
        "reaction_counts": [_reaction_view(r, label) for r, label in zip(reactions, labels, strict=True)],
        "topic_id": first.topic_id,
        "topic": _inert(topic),
        "topic_md": _md_name(topic) if topic else None,
        "note_path": note_path,
        "forward": _forward_view(first, tz),
        "reply": _reply_view(first, links),
        "media": [_media_view(item) for item in media],
        "media_properties": _media_properties(media),
        "service": _service_text(first.action, first.sender_name, links) if first.action else None,
        "action": _action_view(first.action, links) if first.action else None,
        "poll": _poll_view(first),
        "location": _location_view(first),
        "contact": _contact_view(first),
        "unsupported": first.kind == "unsupported",
        "extra": _inert_value(extra),
        "extra_lines": [md(f"{key}: {_plain(value)}") for m in messages for key, value in m.extra.items()],
        "comments": comments,
        "post": post,
        "raw": {
            "text": text,
            "sender": first.sender_name,
            "author": first.author,
            "via_bot": first.via_bot,
            "topic": topic,
            "extra": extra,
        },
    }


def comments_view(count: int, notes: Sequence[tuple[Message, str]], tz: dt.tzinfo) -> dict[str, Any]:
    """A post's comments for its note: how many have notes, and links to the newest of them (``notes``:
    ``(comment, note path)``, oldest first); ``more`` is how many are not linked."""
    linked = []
    for comment, path in notes:
        when = local_datetime(comment.date, tz)
        label = f"{comment.sender_name or 'comment'}, {when:%Y-%m-%d %H:%M}" if when else comment.sender_name
        linked.append({"id": comment.id, "path": path, "link": wikilink(path, label), "date": when,
                       "sender": _inert(comment.sender_name)})
    return {"count": count, "notes": linked, "more": count - len(linked)}


def post_view(post_id: int, path: str | None) -> dict[str, Any]:
    """For a comment's note: the channel post it answers, linked when its note exists."""
    label = f"post {post_id}"
    return {"id": post_id, "path": path, "link": wikilink(path, label) if path else None, "label_md": md(label)}


def _forward_view(message: Message, tz: dt.tzinfo) -> dict[str, Any] | None:
    fwd = message.forward
    if fwd is None:
        return None
    name = fwd.from_name or fwd.saved_from or "an unknown sender"
    return {
        "from_name": _inert(fwd.from_name),
        "from_id": fwd.from_id,
        "saved_from": _inert(fwd.saved_from),
        "date": local_datetime(fwd.date, tz),
        "post_author": _inert(fwd.post_author),
        "name_md": md(name),
        "saved_from_md": md(fwd.saved_from) if fwd.saved_from and fwd.saved_from != name else None,
        "post_author_md": md(fwd.post_author) if fwd.post_author else None,
        "raw": {"from_name": fwd.from_name, "saved_from": fwd.saved_from, "post_author": fwd.post_author},
    }


def _reply_view(message: Message, links: NoteLinks) -> dict[str, Any] | None:
    reply = message.reply
    if reply is None:
        return None
    label = f"message {reply.message_id}"
    if reply.chat_id is not None:
        label += f" in {links.reply_chat_title}" if links.reply_chat_title else f" in chat {reply.chat_id}"
    path = links.reply_path
    return {
        "message_id": reply.message_id,
        "chat_id": reply.chat_id,
        "other_chat": reply.chat_id is not None,
        "chat": _inert(links.reply_chat_title),
        "path": path,
        "link": wikilink(path, label) if path else None,
        "label": inert_text(label),
        "label_md": md(label),
        "quote": _inert(reply.quote_text),
        "quote_md": md(reply.quote_text) if reply.quote_text else None,
        "raw": {"quote": reply.quote_text, "chat": links.reply_chat_title},
    }


def reaction_label(reaction: Reaction) -> str:
    """``❤️ 6``: the emoji (``custom emoji``, ``⭐`` for paid Telegram Stars, else the kind) and the count."""
    if reaction.emoji:
        name = reaction.emoji
    elif reaction.kind == ReactionKind.CUSTOM_EMOJI:
        name = "custom emoji"
    elif reaction.kind == ReactionKind.PAID:
        name = "⭐"
    else:
        name = reaction.kind.replace("_", " ")
    return f"{name} {reaction.count}"


def reactions_total(reactions: Sequence[Reaction]) -> int | None:
    """How many reactions a message has; paid ones count stars, not people, and are left out. None for none."""
    if not reactions:
        return None
    return sum(r.count for r in reactions if r.kind != ReactionKind.PAID)


def _reaction_view(reaction: Reaction, label: str) -> dict[str, Any]:
    """One reaction for templates; ``label`` is its :func:`reaction_label` (short: remembered made safe)."""
    return {
        "kind": inert_text(reaction.kind),
        "count": reaction.count,
        "emoji": _inert(reaction.emoji),
        "document_id": reaction.document_id,
        "label": _inert(label),
        "label_md": _md_name(label),
    }


def _media_view(item: StoredMedia) -> dict[str, Any]:
    media = item.media
    kind = str(media.kind)
    name = media.file_name or (item.path.rsplit("/", 1)[-1] if item.path else None)
    extension = item.path.rsplit(".", 1)[-1].lower() if item.path and "." in item.path else ""
    if item.path is None:
        embed = ""
    elif extension in EMBEDDABLE_EXTENSIONS:
        embed = f"![[{item.path}|{STICKER_WIDTH}]]" if kind == MediaKind.STICKER else f"![[{item.path}]]"
    else:
        embed = wikilink(item.path, name)
    return {
        "kind": inert_text(kind),
        "path": item.path,
        "link": f"[[{item.path}]]" if item.path else None,
        "embed": embed,
        "status": item.status,
        "reason": _inert(item.reason),
        "reason_md": md(item.reason) if item.reason else "",
        "file_name": _inert(media.file_name),
        "name_md": md(name or kind),
        "label": md(_MEDIA_LABELS.get(kind, kind) + (f" {name}" if name else "")),
        "mime_type": _inert(media.mime_type),
        "size": media.size,
        "width": media.width,
        "height": media.height,
        "duration": media.duration,
        "performer": _inert(media.performer),
        "title": _inert(media.title),
        "emoji": _inert(media.emoji),
        "duration_label": duration_label(media.duration),
        "details_md": md(" · ".join(_media_details(media))) if _media_details(media) else "",
        "properties": inert_value(dict(item.properties)),
        "raw": {
            "file_name": media.file_name,
            "mime_type": media.mime_type,
            "performer": media.performer,
            "title": media.title,
            "emoji": media.emoji,
            "reason": item.reason,
        },
    }


def duration_label(seconds: float | None) -> str | None:
    """``0:42``, ``3:05``, ``1:02:03``: a duration as players show it; None when unknown."""
    if seconds is None or seconds < 0:
        return None
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _media_details(media: MediaRef) -> list[str]:
    """What the source says of a file besides its name: a sticker's emoji, an audio file's performer and
    title, its duration."""
    details = []
    if media.emoji:
        details.append(media.emoji)
    if media.performer or media.title:
        details.append(" — ".join(p for p in (media.performer, media.title) if p))
    if (duration := duration_label(media.duration)) is not None:
        details.append(duration)
    return details


_MEDIA_LABELS: Mapping[str, str] = {
    "photo": "Photo",
    "video": "Video",
    "animation": "GIF",
    "voice": "Voice message",
    "audio": "Audio",
    "video_note": "Video message",
    "sticker": "Sticker",
    "document": "File",
}


TELEGRAM_PROPERTIES = ("duration", "width", "height", "performer", "title", "emoji")
"""Attributes the source declares for a file; they are properties where no processor gave a value."""


def _media_properties(media: Sequence[StoredMedia]) -> dict[str, Any]:
    """Properties of a note's media, merged, text inert (a processor may read it from the file, a
    title tag): first what processors found (the first file's value wins), then the source's own
    attributes (:data:`TELEGRAM_PROPERTIES`) for keys no processor filled, so a note has them with
    processors off or unavailable, or for a file that was not stored."""
    merged: dict[str, Any] = {}
    for item in media:
        for key, value in item.properties.items():
            merged.setdefault(key, inert_value(value))
    for item in media:
        for key in TELEGRAM_PROPERTIES:
            value = getattr(item.media, key)
            if value is not None:
                merged.setdefault(key, inert_value(value))
    return merged


def _poll_view(message: Message) -> dict[str, Any] | None:
    poll = message.poll
    if poll is None:
        return None
    return {
        "question_md": md(poll.question),
        "closed": poll.closed,
        "total_voters": poll.total_voters,
        "answers": [
            {"text_md": md(a.text), "voters": a.voters, "chosen": a.chosen} for a in poll.answers
        ],
    }


def _location_view(message: Message) -> dict[str, Any] | None:
    loc = message.location
    if loc is None:
        return None
    return {
        "latitude": loc.latitude,
        "longitude": loc.longitude,
        "title_md": md(loc.title) if loc.title else None,
        "address_md": md(loc.address) if loc.address else None,
        "live_period": loc.live_period,
        "map_url": f"https://www.openstreetmap.org/?mlat={loc.latitude:.6f}&mlon={loc.longitude:.6f}"
        f"#map=16/{loc.latitude:.6f}/{loc.longitude:.6f}",
    }


def _contact_view(message: Message) -> dict[str, Any] | None:
    contact = message.contact
    if contact is None:
        return None
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p) or "contact"
    return {
        "name_md": md(name),
        "phone_md": md(contact.phone_number) if contact.phone_number else None,
    }


_ACTION_PHRASES: Mapping[str, str] = {
    "create_channel": "created the channel",
    "create_group": "created the group",
    "edit_group_title": "changed the title to",
    "migrate_from_group": "migrated from the group",
    "topic_created": "created the topic",
    "edit_group_photo": "changed the group photo",
    "delete_group_photo": "removed the group photo",
    "invite_members": "added",
    "remove_members": "removed",
    "join_group_by_link": "joined by invite link",
    "join_group_by_request": "joined after a request",
    "migrate_to_supergroup": "upgraded the group to a supergroup",
    "pin_message": "pinned a message",
    "clear_history": "cleared the history",
    "joined_telegram": "joined Telegram",
    "phone_call": "phone call",
    "group_call": "group call",
    "take_screenshot": "took a screenshot",
}


_CONSUMED_DETAILS = frozenset({"inviter", "channel_id", "chat_id"})
"""``details`` keys the service text says in words (the rest are listed after it)."""


def _service_text(action: ServiceAction, actor: str | None, links: NoteLinks = NO_LINKS) -> str:
    """A one-line, escaped description of a service message. The pinned message is named here only when
    it has no note: ``action.pinned_link`` links it."""
    if action.text:
        return md(action.text)
    phrase = _ACTION_PHRASES.get(action.kind, action.kind.replace("_", " "))
    if action.kind == "remove_members" and actor and action.members == (actor,):
        phrase = "left the group"
    parts = [actor, phrase] if actor else [phrase[:1].upper() + phrase[1:]]
    if action.title:
        parts.append(f"“{action.title}”")
    if action.members and phrase != "left the group":
        parts.append(", ".join(action.members))
    inviter = action.details.get("inviter")
    if action.kind == "join_group_by_link" and inviter:
        parts.append(f"from {inviter}")
    if action.duration:
        parts.append(f"({int(action.duration)} s)")
    pinned = action.message_id if action.kind == "pin_message" else None
    if pinned is not None and not links.pinned_path:
        parts.append(f"(message {pinned})")
    text = " ".join(p for p in parts if p)
    shown = _CONSUMED_DETAILS if action.kind in ("join_group_by_link", *MIGRATION_PEERS) else frozenset()
    details = ", ".join(f"{k}: {_plain(v)}" for k, v in action.details.items() if k not in shown)
    return md(f"{text} [{details}]" if details else text)


def _action_view(action: ServiceAction, links: NoteLinks) -> dict[str, Any]:
    """What a service message names, for templates: members, the pinned message, the other chat's id."""
    inviter = action.details.get("inviter")
    return {
        "kind": inert_text(action.kind),
        "title": _inert(action.title),
        "members": [inert_text(name) for name in action.members],
        "inviter": inert_text(str(inviter)) if inviter else None,
        "message_id": action.message_id,
        "pinned_path": links.pinned_path,
        "pinned_link": wikilink(links.pinned_path, f"message {action.message_id}") if links.pinned_path else None,
        "chat_id": action_chat_id(action),
        "duration": action.duration,
    }


def _plain(value: Any) -> str:
    """A JSON-like value as short plain text."""
    if type(value) is int or type(value) is str:
        return str(value)  # what the last line gives them, without asking whether they are containers
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return str(value)
