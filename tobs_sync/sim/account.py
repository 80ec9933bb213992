"""The simulated account: users, chats, messages, media and files, generated from a :class:`SimSpec`.

Everything is derived from the seed: ids, access hashes, titles, texts with entities, dates, media and
file sizes. Each message is generated from its own RNG, seeded by ``(seed, chat index, message index)``;
the only state carried from one message to the next is derived from earlier messages (id gaps, the
album in progress, ids a reply may point to), so the account for ``messages=N`` is exactly the first
``N`` messages of the account for ``messages=N+k`` in every chat (*prefix stability*).

Chat kinds cycle through broadcast channel, private chat, megagroup, basic group, private chat, forum; the
fifth chat is Saved Messages (the chat with oneself) instead of a private chat. A forum is a supergroup with
topics (and the General topic, id 1) that was migrated from a basic group: its first
:data:`OLD_HISTORY` messages are the old group's (ending with its ``messageActionChatMigrateTo``), then
comes the supergroup's own, starting with ``messageActionChannelMigrateFrom``; the old group is no
dialog, but its history and entity (``deactivated``, ``migrated_to``) stay readable, as on Telegram.
Message ids follow Telegram's rules: per chat in channels and megagroups (with occasional gaps, as after
deletions), one account-wide counter shared by private chats, basic groups and Saved Messages. Dates start at
2024-01-01T00:00Z and increase within every chat. Live changes (:meth:`Account.add_message`, ...) use a
simulated clock that continues after the generated history, so they are deterministic too.

Media objects and their files come from :mod:`tobs_sync.sim.media`; with ``comments`` in the spec,
broadcast channels get discussion groups and their posts comments (:mod:`tobs_sync.sim.discussion`),
generated after the chats' own history, which they leave as it is (but for the posts' ``replies``).

Besides text, media and service messages, the history carries what a message can say beyond them,
drawn from a generator of its own so that adding it moved nothing else: reactions (emoji, a custom
emoji, paid stars), the inline bot a message was sent via, polls with their voters, and, from the
third chat on (:data:`CROSS_CHAT_FROM`), replies into another chat (a post of the first chat, a
channel). Stickers and audio files come with :meth:`Account.new_message`;
:meth:`Account.set_reactions` changes reactions without an edit date, as Telegram does.

Limits: no web pages or secret chats; a chat's title never changes even when
a service message says it was edited (it is "renamed" to its own title), nor does a topic's; topics are
never closed, hidden or deleted.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from telethon import utils
from telethon.tl import types

from tobs_sync.sim import content
from tobs_sync.sim.content import Person, rng_for, signed64
from tobs_sync.sim.discussion import Discussions, new_group_id
from tobs_sync.sim.history import ById, History
from tobs_sync.sim.media import POOL_SIZE, MediaStore
from tobs_sync.sim.rpc import bad_request
from tobs_sync.sim.spec import SimSpec
from tobs_sync.sim.updates import UpdateLog

BASE_DATE = datetime(2024, 1, 1, tzinfo=UTC)
STEP_S = 97
LIVE_STEP_S = 61

CHANNEL, MEGAGROUP, GROUP, PRIVATE = "channel", "megagroup", "group", "private"
SAVED, FORUM = "saved", "forum"
KIND_CYCLE = (CHANNEL, PRIVATE, MEGAGROUP, GROUP, PRIVATE, FORUM)
SAVED_INDEX = 4
"""The chat that is Saved Messages (there is one per account)."""
OLD_HISTORY = 12
"""Messages of a forum's history that belong to the basic group it was migrated from."""
TOPIC_EVERY = 9
"""A forum's supergroup history opens a new topic every this many messages, while titles last."""
GENERAL_TOPIC_ID = 1

_MEDIA_BASE = 5_000_000_000_000_000
_LIVE_MEDIA_BASE = 6_000_000_000_000_000
_GROUPED_BASE = 13_000_000_000_000_000
_CHANNEL_MARK = 1_000_000_000_000
"""A channel's marked id is ``-(_CHANNEL_MARK + channel_id)``."""


@dataclass(eq=False)
class SimChat:
    """One dialog of the account and its server-side history (ascending ids)."""

    index: int
    kind: str
    raw_id: int
    access_hash: int
    title: str
    username: str | None
    member_ids: list[int]
    created: datetime
    participants: int
    messages: History = field(default_factory=lambda: History())  # looked up per chat (tests swap it)
    """Kept serialised (:mod:`tobs_sync.sim.history`): write a changed message back with ``by_id[id] = message``."""
    log: UpdateLog = field(default_factory=lambda: UpdateLog(1))
    last_id: int = 0
    migrated_from: SimChat | None = None
    """The basic group a forum was upgraded from (its old history)."""
    migrated_to: SimChat | None = None
    """The supergroup this basic group became."""
    topics: dict[int, str] = field(default_factory=dict)
    """A forum's topics by id (the id of the message that created the topic), General excluded."""
    message_topics: dict[int, int] = field(default_factory=dict)
    """A forum's messages' topics, by message id."""

    @property
    def by_id(self) -> ById:
        return self.messages.by_id

    @property
    def is_channel(self) -> bool:
        return self.kind in (CHANNEL, MEGAGROUP, FORUM)

    @property
    def peer(self) -> types.TypePeer:
        if self.is_channel:
            return types.PeerChannel(self.raw_id)
        if self.kind == GROUP:
            return types.PeerChat(self.raw_id)
        return types.PeerUser(self.raw_id)

    @property
    def marked_id(self) -> int:
        return utils.get_peer_id(self.peer)

    @property
    def input_peer(self) -> types.TypeInputPeer:
        if self.is_channel:
            return types.InputPeerChannel(self.raw_id, self.access_hash)
        if self.kind == GROUP:
            return types.InputPeerChat(self.raw_id)
        if self.kind == SAVED:
            return types.InputPeerSelf()
        return types.InputPeerUser(self.raw_id, self.access_hash)

    def append(self, message: types.TypeMessage) -> None:
        self.messages.append(message)
        self.last_id = max(self.last_id, message.id)


class Account:
    """The server-side state of one simulated Telegram account."""

    def __init__(self, spec: SimSpec) -> None:
        self.spec = spec
        self.seed = spec.seed
        self.store = MediaStore(self.seed, spec.dcs)
        self.files = self.store.files
        self.media = self.store.media
        self.users: dict[int, types.User] = {}
        self.people: dict[int, Person] = {}
        self.self_user = self._make_user(content.SELF, 7_000_000_000, "self", is_self=True)
        self._people_ids = [
            self._make_user(person, 5_000_000_000 + k * 1_000_000, k).id for k, person in enumerate(content.PEOPLE)
        ]
        self.inline_bot = self._make_bot()
        """The inline bot messages are sent via: resolvable in responses, but no contact."""
        rng = rng_for(self.seed, "external")
        self.external = types.Channel(
            id=1_900_000_000 + rng.randrange(1_000_000),
            title="Daily Digest 📰",
            photo=types.ChatPhotoEmpty(),
            date=BASE_DATE - timedelta(days=400),
            broadcast=True,
            left=True,
            access_hash=signed64(rng),
            username="dailydigest_sim",
            participants_count=12_345,
        )
        self.chats = [self._make_chat(index) for index in range(spec.chats)]
        old_groups = [self._old_group(chat) for chat in self.chats if chat.kind == FORUM]
        self.saved = next((chat for chat in self.chats if chat.kind == SAVED), None)
        self.by_marked = {chat.marked_id: chat for chat in [*self.chats, *old_groups]}
        self.channels = {chat.raw_id: chat for chat in self.chats if chat.is_channel}
        self.groups = {chat.raw_id: chat for chat in [*self.chats, *old_groups] if chat.kind == GROUP}
        self.privates = {chat.raw_id: chat for chat in self.chats if chat.kind in (PRIVATE, SAVED)}
        self._non_channel = [chat for chat in self.chats if not chat.is_channel] + old_groups
        for chat in self.chats:
            self._generate(chat)
            chat.log = UpdateLog(len(chat.messages) + 1)
        self.discussions = Discussions(self.seed, spec.comments, self.people, self.self_user.id)
        for chat in self.chats if spec.comments else ():
            if chat.kind == CHANNEL:
                self._link_discussion(chat)
        self.next_account_id = len(self._non_channel) * spec.messages + 1
        self.account_log = UpdateLog(sum(len(c.messages) for c in self._non_channel) + 1)
        self._clock_s = (spec.messages + 1) * spec.chats * STEP_S + 3600
        self.live_counter = 0

    # region entities

    def _make_user(self, person: Person, base: int, label: object, *, is_self: bool = False) -> types.User:
        rng = rng_for(self.seed, "user", label)
        user = types.User(
            id=base + rng.randrange(1_000_000),
            is_self=is_self,
            contact=not is_self,
            mutual_contact=not is_self,
            access_hash=signed64(rng),
            first_name=person.first_name,
            last_name=person.last_name,
            username=person.username,
            phone=f"999{rng.randrange(10**7):07d}" if is_self else None,
            status=types.UserStatusRecently(),
        )
        self.users[user.id] = user
        self.people[user.id] = person
        return user

    def _make_bot(self) -> types.User:
        rng = rng_for(self.seed, "inline-bot")
        return types.User(
            id=6_000_000_000 + rng.randrange(1_000_000), bot=True, bot_info_version=1, bot_inline_placeholder="Search…",
            access_hash=signed64(rng), first_name="Gif Finder", username="gif_finder_bot",
        )

    def _make_chat(self, index: int) -> SimChat:
        kind = _kind_of(index)
        same_kind = sum(1 for i in range(index) if _kind_of(i) == kind)
        rng = rng_for(self.seed, "chat", index)
        created = self._date(0, index, 0)
        if kind == SAVED:
            me = self.self_user
            name = f"{me.first_name} {me.last_name}".strip()  # what Telegram calls the dialog
            return SimChat(index, kind, me.id, me.access_hash, name, me.username, [me.id], created, 1)
        if kind == PRIVATE:
            if same_kind < len(self._people_ids):
                partner = self.users[self._people_ids[same_kind]]
            else:
                guest = Person(f"Guest {same_kind}", "Sim", None)
                partner = self._make_user(guest, 6_000_000_000 + same_kind * 1_000_000, ("guest", same_kind))
            name = f"{partner.first_name} {partner.last_name}".strip()
            return SimChat(
                index, kind, partner.id, partner.access_hash, name, partner.username,
                [partner.id, self.self_user.id], created, 2,
            )
        titles = {
            CHANNEL: content.CHANNEL_TITLES, MEGAGROUP: content.MEGAGROUP_TITLES, GROUP: content.GROUP_TITLES,
            FORUM: content.FORUM_TITLES,
        }[kind]
        title = titles[same_kind % len(titles)]
        if same_kind >= len(titles):
            title = f"{title} #{same_kind // len(titles) + 1}"
        members = [self._people_ids[k] for k in sorted(rng.sample(range(len(self._people_ids)), rng.randint(3, 5)))]
        members.append(self.self_user.id)
        if kind == GROUP:
            return SimChat(
                index, kind, 100_000_000 + index * 1_000_000 + rng.randrange(1_000_000), 0,
                title, None, members, created, len(members),
            )
        username = None
        if kind == CHANNEL:
            username = content.CHANNEL_USERNAMES[same_kind % len(content.CHANNEL_USERNAMES)]
            if same_kind >= len(content.CHANNEL_USERNAMES):
                username = f"{username}{same_kind}"
        participants = rng.randint(100, 5000) if kind == CHANNEL else len(members)
        return SimChat(
            index, kind, 1_000_000_000 + index * 10_000_000 + rng.randrange(10_000_000), signed64(rng),
            title, username, members, created, participants,
        )

    def _old_group(self, forum: SimChat) -> SimChat:
        """The basic group ``forum`` was migrated from (same title and members, no dialog of its own)."""
        rng = rng_for(self.seed, "old-group", forum.index)
        old = SimChat(
            forum.index, GROUP, 100_000_000 + forum.index * 1_000_000 + rng.randrange(1_000_000), 0,
            forum.title, None, list(forum.member_ids), forum.created, len(forum.member_ids),
        )
        forum.migrated_from, old.migrated_to = old, forum
        return old

    def _link_discussion(self, channel: SimChat) -> SimChat:
        """Give a broadcast channel its discussion group (no dialog: the account never joined it)."""
        raw_id, access_hash = new_group_id(self.seed, channel)
        group = SimChat(
            channel.index, MEGAGROUP, raw_id, access_hash, f"{channel.title} Chat", None, list(channel.member_ids),
            channel.created, len(channel.member_ids),
        )
        self.discussions.link(channel, group)
        group.log = UpdateLog(len(group.messages) + 1)
        self.by_marked[group.marked_id] = group
        self.channels[group.raw_id] = group
        return group

    def chat_entity(self, chat: SimChat) -> types.TypeChat | types.TypeUser:
        """The ``Channel``/``Chat``/``User`` object Telegram would send for ``chat``."""
        if chat.kind in (PRIVATE, SAVED):
            return self.users[chat.raw_id]
        if chat.kind == GROUP:
            upgraded = chat.migrated_to
            return types.Chat(
                id=chat.raw_id, title=chat.title, photo=types.ChatPhotoEmpty(),
                participants_count=chat.participants, date=chat.created, version=1, creator=True,
                deactivated=upgraded is not None or None,
                migrated_to=types.InputChannel(upgraded.raw_id, upgraded.access_hash) if upgraded else None,
            )
        return types.Channel(
            id=chat.raw_id, title=chat.title, photo=types.ChatPhotoEmpty(), date=chat.created,
            broadcast=chat.kind == CHANNEL, megagroup=chat.kind in (MEGAGROUP, FORUM), forum=chat.kind == FORUM or None,
            access_hash=chat.access_hash, username=chat.username, participants_count=chat.participants,
        )

    def entities_for(
        self, messages: Iterable[types.TypeMessage], extra_peers: Iterable[types.TypePeer] = ()
    ) -> tuple[list[types.TypeUser], list[types.TypeChat]]:
        """The ``users`` and ``chats`` lists a response carrying ``messages`` includes (sorted by id)."""
        user_ids: set[int] = {self.self_user.id}
        chat_marked: set[int] = set()

        def add(peer: types.TypePeer | None) -> None:
            peer_type = type(peer)
            if peer_type is types.PeerUser:
                user_ids.add(peer.user_id)  # type: ignore[union-attr]
            elif peer_type is types.PeerChannel:  # the marked id, as utils.get_peer_id makes it
                chat_marked.add(-(_CHANNEL_MARK + peer.channel_id))  # type: ignore[union-attr]
            elif peer is not None:
                chat_marked.add(utils.get_peer_id(peer))

        for peer in extra_peers:
            add(peer)
        for message in messages:
            add(getattr(message, "peer_id", None))
            add(getattr(message, "from_id", None))
            if getattr(message, "via_bot_id", None):
                user_ids.add(message.via_bot_id)
            reply = getattr(message, "reply_to", None)
            if isinstance(reply, types.MessageReplyHeader):
                add(reply.reply_to_peer_id)
            forward = getattr(message, "fwd_from", None)
            if forward is not None:
                add(forward.from_id)
            for entity in getattr(message, "entities", None) or ():
                if isinstance(entity, types.MessageEntityMentionName):
                    user_ids.add(entity.user_id)
            action = getattr(message, "action", None)
            if isinstance(action, types.MessageActionChatCreate):
                user_ids.update(action.users)
        known = {**self.users, self.inline_bot.id: self.inline_bot}
        users = [known[uid] for uid in sorted(user_ids) if uid in known]
        chats: list[types.TypeChat] = []
        external_marked = utils.get_peer_id(types.PeerChannel(self.external.id))
        for marked in sorted(chat_marked):
            chat = self.by_marked.get(marked)
            if chat is not None:
                chats.append(self.chat_entity(chat))  # type: ignore[arg-type]
            elif marked == external_marked:
                chats.append(self.external)
        return users, chats

    # endregion

    # region peers

    def chat_for_peer(self, peer: types.TypeInputPeer) -> SimChat | None:
        """The chat an input peer names; ``None`` for a known user without a chat (or for self when the
        account has no Saved Messages chat).

        Raises ``CHANNEL_INVALID`` / ``PEER_ID_INVALID`` for unknown ids or wrong access hashes,
        as Telegram does: an ``access_hash`` of 0 is not accepted.
        """
        if isinstance(peer, (types.InputPeerChannel, types.InputChannel)):
            chat = self.channels.get(peer.channel_id)
            if chat is None or peer.access_hash != chat.access_hash:
                raise bad_request("CHANNEL_INVALID")
            return chat
        if isinstance(peer, types.InputPeerChat):
            chat = self.groups.get(peer.chat_id)
            if chat is None:
                raise bad_request("PEER_ID_INVALID")
            return chat
        if isinstance(peer, (types.InputPeerUser, types.InputUser)):
            user = self.users.get(peer.user_id)
            if user is None or user.access_hash != peer.access_hash:
                raise bad_request("PEER_ID_INVALID")
            return self.privates.get(peer.user_id)
        if isinstance(peer, (types.InputPeerSelf, types.InputUserSelf)):
            return self.saved
        raise bad_request("PEER_ID_INVALID")

    def chat_by_marked_id(self, chat_id: int) -> SimChat:
        chat = self.by_marked.get(chat_id)
        if chat is None:
            known = ", ".join(str(c.marked_id) for c in self.chats)
            raise KeyError(f"no simulated chat {chat_id} (chats: {known})")
        return chat

    def non_channel_message(self, msg_id: int) -> tuple[SimChat, types.TypeMessage] | None:
        for chat in self._non_channel:
            found = chat.by_id.get(msg_id)
            if found is not None:
                return chat, found
        return None

    # endregion

    def rotate_file_reference(self, kind: str, media_id: int) -> None:
        """Give the media a new file reference; the old one is refused from now on."""
        self.store.rotate_file_reference(kind, media_id)

    # region generation

    def _date(self, i: int, chat_index: int, jitter: int) -> datetime:
        return BASE_DATE + timedelta(seconds=(i * self.spec.chats + chat_index) * STEP_S + jitter)

    def _sender(self, chat: SimChat, rng: random.Random) -> tuple[types.TypePeer | None, bool, bool]:
        """``(from_id, out, post)`` for a new message in ``chat``."""
        if chat.kind == CHANNEL:
            return None, False, True
        if chat.kind == SAVED:
            return types.PeerUser(self.self_user.id), True, False
        if chat.kind == PRIVATE:
            out = rng.random() < 0.45
            return (types.PeerUser(self.self_user.id) if out else None), out, False
        user_id = rng.choice(chat.member_ids)
        return types.PeerUser(user_id), user_id == self.self_user.id, False

    def _mentionable(self, chat: SimChat) -> list[tuple[int, Person]]:
        return [(uid, self.people[uid]) for uid in chat.member_ids if uid != self.self_user.id]

    def _forward(self, rng: random.Random, date: datetime) -> types.MessageFwdHeader:
        when = date - timedelta(days=rng.randint(1, 90), seconds=rng.randrange(86_400))
        roll = rng.random()
        if roll < 0.6:
            return types.MessageFwdHeader(
                date=when, from_id=types.PeerChannel(self.external.id), channel_post=rng.randint(1, 5000),
                post_author=rng.choice((None, "Editor", "Zoë")),
            )
        if roll < 0.85:
            return types.MessageFwdHeader(date=when, from_id=types.PeerUser(rng.choice(self._people_ids)))
        return types.MessageFwdHeader(date=when, from_name="Hidden Sender")

    def _generate(self, chat: SimChat) -> None:
        """The ``spec.messages`` messages of ``chat``: for a forum, the old group's first, then its own."""
        positions = {c.raw_id: pos for pos, c in enumerate(self._non_channel)}
        stride = len(self._non_channel)
        old = chat.migrated_from
        album_left, grouped_id, album_topic = 0, 0, GENERAL_TOPIC_ID
        for i in range(self.spec.messages):
            rng = rng_for(self.seed, "msg", chat.index, i)
            gap_roll, gap = rng.random(), rng.randint(1, 3)
            target = old if old is not None and i < OLD_HISTORY else chat
            local = i - OLD_HISTORY if old is not None and target is chat else i
            if target.is_channel:
                msg_id = target.last_id + 1 + (gap if local and gap_roll < 0.03 else 0)
            else:
                msg_id = i * stride + positions[target.raw_id] + 1
            date = self._date(i, chat.index, rng.randint(0, 59))
            if old is not None and i == OLD_HISTORY - 1:
                album_left = 0  # an album never straddles the upgrade
                message: types.TypeMessage = self._service(
                    target, msg_id, date, types.MessageActionChatMigrateTo(chat.raw_id), rng
                )
            elif old is not None and target is chat and local == 0:
                action = types.MessageActionChannelMigrateFrom(old.title, old.raw_id)
                message = types.MessageService(id=msg_id, peer_id=chat.peer, date=date, action=action)
            elif album_left:
                album_left -= 1
                message = self._album_member(target, msg_id, date, rng, grouped_id, i)
                self._place_in_topic(target, message, album_topic, None)
            elif local == 0 and target.kind not in (PRIVATE, SAVED):
                message = self._created(target, msg_id, date)
            elif target.kind == FORUM and local % TOPIC_EVERY == 1 and len(target.topics) < len(content.TOPIC_TITLES):
                message = self._new_topic(target, msg_id, date, rng)
            else:
                message, album_left, grouped_id = self._ordinary(target, msg_id, date, rng, i)
                if target.kind == FORUM and isinstance(message, types.Message):
                    album_topic = self._topic_for(target, message, i)
                if isinstance(message, types.Message):
                    self._enrich(target, message, i)
            target.append(message)

    def _service(
        self, chat: SimChat, msg_id: int, date: datetime, action: types.TypeMessageAction, rng: random.Random
    ) -> types.MessageService:
        from_id, out, post = self._sender(chat, rng)
        return types.MessageService(
            id=msg_id, peer_id=chat.peer, date=date, out=out or None, post=post or None, from_id=from_id,
            action=action,
        )

    def _new_topic(self, chat: SimChat, msg_id: int, date: datetime, rng: random.Random) -> types.MessageService:
        """The service message opening the forum's next topic (its id is the topic's id)."""
        title = content.TOPIC_TITLES[len(chat.topics)]
        chat.topics[msg_id] = title
        chat.message_topics[msg_id] = msg_id
        return self._service(chat, msg_id, date, types.MessageActionTopicCreate(title, rng.randrange(1 << 24)), rng)

    def _topic_for(self, chat: SimChat, message: types.Message, i: int) -> int:
        """Put a forum message into a topic (General included), maybe answering one of the topic's messages."""
        rng = rng_for(self.seed, "topic", chat.index, i)
        topic = rng.choice([GENERAL_TOPIC_ID, *chat.topics])
        earlier = [m.id for m in chat.messages[-50:] if chat.message_topics.get(m.id) == topic and m.id != topic]
        answered = rng.choice(earlier) if earlier and rng.random() < 0.3 else None
        self._place_in_topic(chat, message, topic, answered)
        return topic

    @staticmethod
    def _place_in_topic(chat: SimChat, message: types.Message, topic: int, answered: int | None) -> None:
        """The reply header Telegram gives a message in ``topic``: none in General unless it answers a message;
        else ``forum_topic`` with the topic as ``reply_to_msg_id``, or as ``reply_to_top_id`` when it answers one."""
        if chat.kind != FORUM:
            return
        chat.message_topics[message.id] = topic
        if topic == GENERAL_TOPIC_ID:
            message.reply_to = types.MessageReplyHeader(reply_to_msg_id=answered) if answered else None
        elif answered is None:
            message.reply_to = types.MessageReplyHeader(forum_topic=True, reply_to_msg_id=topic)
        else:
            message.reply_to = types.MessageReplyHeader(
                forum_topic=True, reply_to_msg_id=answered, reply_to_top_id=topic
            )

    def _created(self, chat: SimChat, msg_id: int, date: datetime) -> types.MessageService:
        if chat.kind == GROUP:
            action: types.TypeMessageAction = types.MessageActionChatCreate(chat.title, list(chat.member_ids))
            return types.MessageService(
                id=msg_id, peer_id=chat.peer, date=date, out=True,
                from_id=types.PeerUser(self.self_user.id), action=action,
            )
        action = types.MessageActionChannelCreate(chat.title)
        from_id = types.PeerUser(chat.member_ids[0]) if chat.kind in (MEGAGROUP, FORUM) else None
        return types.MessageService(
            id=msg_id, peer_id=chat.peer, date=date, post=chat.kind == CHANNEL or None, from_id=from_id,
            action=action,
        )

    def _album_member(
        self, chat: SimChat, msg_id: int, date: datetime, rng: random.Random, grouped_id: int, i: int
    ) -> types.Message:
        from_id, out, post = self._sender(chat, rng_for(self.seed, "album-sender", chat.index, grouped_id))
        kind = "photo" if rng.random() < 0.75 else "video"
        media = self.store.make_media(kind, _MEDIA_BASE + chat.index * 10_000_000 + i, rng, date)
        return types.Message(
            id=msg_id, peer_id=chat.peer, date=date, message="", out=out or None, post=post or None,
            from_id=from_id, media=media, grouped_id=grouped_id,
        )

    def _ordinary(
        self, chat: SimChat, msg_id: int, date: datetime, rng: random.Random, i: int
    ) -> tuple[types.TypeMessage, int, int]:
        """A text, media or service message; returns it with ``(album members left, grouped id)``."""
        from_id, out, post = self._sender(chat, rng)
        earlier = chat.messages[-50:]  # the messages a reply or pin may point to
        roll = rng.random()
        if roll < 0.02 and chat.kind not in (PRIVATE, SAVED) and i > 1:
            service = types.MessageService(
                id=msg_id, peer_id=chat.peer, date=date, out=out or None, post=post or None, from_id=from_id,
                action=types.MessageActionChatEditTitle(chat.title),
            )
            return service, 0, 0
        if roll < 0.05 and earlier:
            service = types.MessageService(
                id=msg_id, peer_id=chat.peer, date=date, out=out or None, post=post or None, from_id=from_id,
                reply_to=types.MessageReplyHeader(reply_to_msg_id=rng.choice(earlier).id),
                action=types.MessageActionPinMessage(),
            )
            return service, 0, 0
        album_left, grouped_id = 0, None
        media: types.TypeMessageMedia | None = None
        if rng.random() < self.spec.media:
            media_id = _MEDIA_BASE + chat.index * 10_000_000 + i
            kind_roll = rng.random()
            if kind_roll < 0.10:
                media = self.store.wrap(self.store.pool[rng.randrange(POOL_SIZE)])
            elif kind_roll < 0.40:
                media = self.store.make_media("photo", media_id, rng, date)
            elif kind_roll < 0.52:
                media = self.store.make_media("video", media_id, rng, date)
            elif kind_roll < 0.57:
                media = self.store.make_media("round", media_id, rng, date)
            elif kind_roll < 0.70:
                media = self.store.make_media("voice", media_id, rng, date)
            elif kind_roll < 0.80:
                media = self.store.make_media("document", media_id, rng, date)
            elif kind_roll < 0.86:
                media = types.MessageMediaDocument(document=self.store.twin_document(media_id, rng, date))
            else:
                album_left = rng.randint(1, 3)
                grouped_id = _GROUPED_BASE + chat.index * 10_000_000 + i
                media = self.store.make_media("photo", media_id, rng, date)
        text, entities = "", []
        if media is None or rng.random() < 0.5:
            text, entities = content.make_text(rng, self._mentionable(chat), short=media is not None)
        forward = self._forward(rng, date) if rng.random() < 0.08 else None
        reply = None
        if earlier and rng.random() < 0.12:
            reply = types.MessageReplyHeader(reply_to_msg_id=rng.choice(earlier).id)
        edit_date = date + timedelta(minutes=rng.randint(1, 600)) if rng.random() < 0.05 else None
        message = types.Message(
            id=msg_id, peer_id=chat.peer, date=date, message=text, out=out or None, post=post or None,
            from_id=from_id, fwd_from=forward, reply_to=reply, media=media, entities=entities or None,
            views=rng.randint(10, 5000) if post else None, forwards=rng.randint(0, 50) if post else None,
            edit_date=edit_date, grouped_id=grouped_id,
        )
        return message, album_left, grouped_id or 0

    def _enrich(self, chat: SimChat, message: types.Message, i: int) -> None:
        """Reactions, an inline bot, a poll or a reply into another chat, from a generator of their own."""
        rng = rng_for(self.seed, "extras", chat.index, i)
        if rng.random() < 0.15:
            message.reactions = _reactions(rng)
        if message.message and not message.post and rng.random() < 0.04:
            message.via_bot_id = self.inline_bot.id
        if message.media is None and message.fwd_from is None and rng.random() < 0.03:
            voter = types.PeerUser(rng.choice(self._people_ids))
            message.media, message.message, message.entities = _poll(rng, message.id, voter), "", None
        first = self.chats[0]
        if (
            chat.index >= CROSS_CHAT_FROM and chat.kind != FORUM and i > 0 and message.reply_to is None
            and first.messages
            and rng.random() < 0.04
        ):
            target = first.messages[rng.randrange(min(i, len(first.messages)))]
            message.reply_to = types.MessageReplyHeader(reply_to_msg_id=target.id, reply_to_peer_id=first.peer)

    def set_reactions(self, chat: SimChat, msg_id: int, counts: Sequence[tuple[str, int]]) -> types.Message:
        """Set a message's emoji reactions (``[("❤️", 6)]``); Telegram leaves ``edit_date`` alone."""
        message = chat.by_id.get(msg_id)
        if not isinstance(message, types.Message):
            raise KeyError(f"chat {chat.marked_id} has no message {msg_id} to react to")
        message.reactions = types.MessageReactions(results=[
            types.ReactionCount(reaction=types.ReactionEmoji(emoticon=emoji), count=count) for emoji, count in counts
        ]) if counts else None
        chat.by_id[msg_id] = message
        return message

    # endregion

    # region live changes

    def now(self) -> datetime:
        return BASE_DATE + timedelta(seconds=self._clock_s)

    def tick(self) -> datetime:
        self._clock_s += LIVE_STEP_S
        return self.now()

    def new_message(
        self, chat: SimChat, *, text: str | None = None, media_kind: str | None = None, size: int | None = None
    ) -> types.Message:
        """Append a live message to ``chat`` (not yet announced; see :meth:`announce_new`)."""
        self.live_counter += 1
        rng = rng_for(self.seed, "live-message", self.live_counter)
        date = self.tick()
        if chat.is_channel:
            msg_id = chat.last_id + 1
        else:
            msg_id = self.next_account_id
            self.next_account_id += 1
        from_id, out, post = self._sender(chat, rng)
        if chat.kind == PRIVATE:
            from_id, out = None, False
        media = None
        if media_kind is not None:
            media = self.store.make_media(media_kind, _LIVE_MEDIA_BASE + self.live_counter, rng, date, size=size)
        entities: list[types.TypeMessageEntity] = []
        if text is None:
            text, entities = content.make_text(rng, self._mentionable(chat), short=media is not None)
        message = types.Message(
            id=msg_id, peer_id=chat.peer, date=date, message=text, out=out or None, post=post or None,
            from_id=from_id, media=media, entities=entities or None,
            views=1 if post else None, forwards=0 if post else None,
        )
        chat.append(message)
        return message

    def edit(self, chat: SimChat, msg_id: int, text: str) -> types.Message:
        message = chat.by_id.get(msg_id)
        if not isinstance(message, types.Message):
            raise KeyError(f"chat {chat.marked_id} has no editable message {msg_id}")
        message.message = text
        message.entities = None
        message.edit_date = self.tick()
        chat.by_id[msg_id] = message
        return message

    def replace_media(self, message: types.Message) -> types.TypeMessageMedia:
        """Edit ``message`` to carry a new file of the same kind but another id and size."""
        self.live_counter += 1
        rng = rng_for(self.seed, "replaced-media", self.live_counter)
        date = self.tick()
        media_id = _LIVE_MEDIA_BASE + self.live_counter
        old = message.media
        if isinstance(old, types.MessageMediaPhoto):
            media = self.store.make_media("photo", media_id, rng, date)
        else:
            size = getattr(getattr(old, "document", None), "size", 0) or 0
            media = self.store.make_media("video", media_id, rng, date, size=size + 3 * 4096 + 1)
        message.media = media
        message.edit_date = date
        self.by_marked[utils.get_peer_id(message.peer_id)].by_id[message.id] = message
        return media

    def delete(self, chat: SimChat, ids: Sequence[int]) -> list[int]:
        return chat.messages.remove(ids)

    # endregion


CROSS_CHAT_FROM = 2
"""The first chat (by index) whose messages may reply into another chat. A note replying into a chat
synced after it is written before its link can be made and rendered again at the end of the pass, so
accounts of one or two chats keep every note's first write final (what the crash tests compare)."""
REACTION_EMOJI = ("👍", "❤️", "🔥", "😁", "🎉", "🤔")
CUSTOM_EMOJI_ID = 5_368_324_170_671_202_286
POLL_QUESTIONS = ("Which bed gets the beans?", "Meet on Saturday?", "Тыква или кабачок?", "¿Riego por goteo?")
POLL_ANSWERS = ("Yes", "No", "North", "South", "Да", "Maybe later")


def _reactions(rng: random.Random) -> types.MessageReactions:
    """One to three emoji reactions, sometimes a custom emoji or paid stars too, most frequent first."""
    results = [
        types.ReactionCount(reaction=types.ReactionEmoji(emoticon=emoji), count=rng.randint(1, 20))
        for emoji in rng.sample(REACTION_EMOJI, rng.randint(1, 3))
    ]
    if rng.random() < 0.2:
        custom = types.ReactionCustomEmoji(CUSTOM_EMOJI_ID)
        results.append(types.ReactionCount(reaction=custom, count=rng.randint(1, 3)))
    if rng.random() < 0.1:
        results.append(types.ReactionCount(reaction=types.ReactionPaid(), count=rng.randint(1, 100)))
    results.sort(key=lambda r: -r.count)
    return types.MessageReactions(results=results)


def _poll(rng: random.Random, msg_id: int, voter: types.PeerUser) -> types.MessageMediaPoll:
    """A poll with two to four answers and how many voted for each (the layer sends a count with a recent
    voter, so every answer has at least one)."""
    answers = rng.sample(POLL_ANSWERS, rng.randint(2, 4))
    votes = [rng.randint(1, 12) for _ in answers]
    options = [bytes([k]) for k in range(len(answers))]
    poll = types.Poll(
        id=msg_id, question=types.TextWithEntities(rng.choice(POLL_QUESTIONS), []),
        answers=[types.PollAnswer(types.TextWithEntities(text, []), option) for text, option in zip(answers, options,
                                                                                                    strict=True)],
        hash=0, closed=rng.random() < 0.3 or None,
    )
    results = types.PollResults(
        results=[
            types.PollAnswerVoters(option, voters=count, recent_voters=[voter])
            for option, count in zip(options, votes, strict=True)
        ],
        total_voters=sum(votes),
    )
    return types.MessageMediaPoll(poll=poll, results=results)


def _kind_of(index: int) -> str:
    """The kind of the ``index``-th chat."""
    return SAVED if index == SAVED_INDEX else KIND_CYCLE[index % len(KIND_CYCLE)]
