"""``SimulatedTelegram``: the facade tests, demos and benchmarks use.

It owns one account (:mod:`account`), the server answering requests on it (:mod:`server`), the fault
rules (:mod:`faults`) and the counters (:mod:`stats`), and hands out real ``TelegramClient`` objects
wired to it (:mod:`client`). Server-side helpers (``messages``, ``file_bytes`` ...) are for assertions;
code under test must talk to Telegram through the client only.

Live changes (``add_message``, ``edit_message``, ``delete_messages``, ``clear_history``, the ``start_live``
task) change the account and are pushed -- in the shape ``update_shape`` or the change names
(``updates``, ``updatesCombined``, short forms, ``updatesTooLong``, or dropped to make a gap;
``updates_together`` combines several) -- into every client whose update loop runs -- that is, after
``await client.connect()``: the simulated client starts usable and reports itself connected, so
``async with client`` / ``client.start()`` skip ``connect()`` and do not start Telethon's update loop.
``start_live`` connects registered clients that have not run ``connect()`` yet, so their event
handlers fire. Changes made while a client is not listening (``away``) reach it only through its next
history scan, or through ``getDifference`` when its ``MessageBox`` notices a gap or catches up -- as
with Telegram. Telethon 1.45 drops the edit and delete updates a difference carries, so edits and
deletions made while a client was away are no events: only re-reading recent messages finds them.

Entities: like Telegram, the server refuses peers without their real ``access_hash``, so a fresh client
cannot address a chat by its marked id alone. List dialogs first (``client.get_dialogs()`` caches every
entity in the session), or pass ``sim.input_peer(chat_id)`` -- what a client that stored the peer on an
earlier run would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from telethon import TelegramClient
from telethon.tl import types

from tobs_sync.sim.account import FORUM, GENERAL_TOPIC_ID, Account, SimChat
from tobs_sync.sim.client import build_client
from tobs_sync.sim.content import rng_for
from tobs_sync.sim.faults import Faults
from tobs_sync.sim.files import document_key, photo_key, read_all, read_range
from tobs_sync.sim.media import MEDIA_KINDS
from tobs_sync.sim.ratelimit import RatePolicy
from tobs_sync.sim.server import SimServer
from tobs_sync.sim.shapes import check_change
from tobs_sync.sim.spec import SimSpec, parse_spec
from tobs_sync.sim.stats import SimStats

LIVE_LOG_LIMIT = 10_000
CATCH_UP_BOUND_S = 60.0
"""Loop-time bound on waiting for a client to ask for its difference."""


class SimulatedTelegram:
    """A deterministic, seedable Telegram account behind real Telethon clients."""

    def __init__(
        self, spec: SimSpec | str | None = None, *, logged_in: bool = True, password: str | None = None
    ) -> None:
        """``logged_in=False`` starts like a new session: the client must log in (code ``login_code``),
        on the spec's ``home_dc`` (``PHONE_MIGRATE_X`` from anywhere else). ``password`` turns on
        two-step verification: signing in then needs it too (checked with SRP, as Telegram does)."""
        self.spec = parse_spec(spec) if isinstance(spec, str) else (spec or SimSpec())
        self.faults = Faults()
        self.stats = SimStats()
        self._account = Account(self.spec)
        self._server = SimServer(self.spec, self._account, self.faults, self.stats)
        self._server.logged_in = logged_in
        self._server.login.set_password(password)
        self._clients: weakref.WeakSet[TelegramClient] = weakref.WeakSet()
        self._live_task: asyncio.Task[None] | None = None
        self._live_connected: list[TelegramClient] = []
        self._live_step = 0
        self.live_events: deque[tuple[str, int, int]] = deque(maxlen=LIVE_LOG_LIMIT)

    # region clients

    def client(
        self, session_file: str | Path | None = None, *, connected: bool = True, **options: Any
    ) -> TelegramClient:
        """A new ``TelegramClient`` on this account (``options`` go to its constructor, e.g.
        ``flood_sleep_threshold``, ``request_retries``, ``raise_last_call_error``, ``receive_updates``).

        ``session_file`` keeps Telethon's SQLite session between clients (a takeout id a killed run
        left in it, for instance); by default each client has a fresh in-memory session.
        ``connected=False`` starts the client disconnected, as a real one: ``connect()`` (or
        ``start()``/``async with``) then runs Telethon's real start-up and its update loop."""
        client = build_client(self._server, session_file, connected=connected, **options)
        self._clients.add(client)
        return client

    @property
    def login_code(self) -> str:
        """The code the simulated Telegram "sends" when a client logs in."""
        return self._server.login_code

    @property
    def logged_in(self) -> bool:
        return self._server.logged_in

    @property
    def password_checks(self) -> int:
        """``auth.checkPassword`` requests answered so far (right or wrong passwords)."""
        return self._server.login.password_checks

    @property
    def rate(self) -> RatePolicy:
        """The rate policy (``rate`` in the spec); change budgets with ``set_budget``/``remove_budget``."""
        return self._server.rate

    @property
    def flood_waits(self) -> int:
        """``FLOOD_WAIT_X`` answers the rate policy has given."""
        return sum(self._server.rate.floods.values())

    def contacts(self) -> list[types.User]:
        """The account's contacts as ``contacts.getContacts`` lists them (with phone numbers)."""
        return self._server.contacts.users()

    @property
    def home_dc(self) -> int:
        return self.spec.home_dc

    @property
    def dcs(self) -> list[int]:
        return list(range(1, self.spec.dcs + 1))

    # endregion

    # region account, for assertions

    @property
    def chat_ids(self) -> list[int]:
        """Marked ids (``telethon.utils.get_peer_id``) of every chat, in dialog order (newest first)."""
        return [chat.marked_id for chat in self._server.dialog_order()]

    def _chat(self, chat_id: int) -> SimChat:
        return self._account.chat_by_marked_id(chat_id)

    def kind(self, chat_id: int) -> str:
        """``"channel"``, ``"megagroup"``, ``"forum"``, ``"group"``, ``"private"`` or ``"saved"``."""
        return self._chat(chat_id).kind

    def title(self, chat_id: int) -> str:
        return self._chat(chat_id).title

    def entity(self, chat_id: int) -> types.TypeChat | types.TypeUser:
        """The ``Channel``/``Chat``/``User`` Telegram sends for the chat."""
        return self._account.chat_entity(self._chat(chat_id))

    def input_peer(self, chat_id: int) -> types.TypeInputPeer:
        """The chat's input peer with its access hash, as a client that stored it earlier would have."""
        return self._chat(chat_id).input_peer

    @property
    def me(self) -> types.User:
        return self._account.self_user

    def messages(self, chat_id: int) -> list[types.TypeMessage]:
        """The server-side history of the chat, ascending by id (do not mutate the objects)."""
        return list(self._chat(chat_id).messages)

    def migrated_messages(self, chat_id: int) -> list[types.TypeMessage]:
        """The history of the basic group the supergroup ``chat_id`` was upgraded from (its own ids;
        empty for other chats)."""
        old = self._chat(chat_id).migrated_from
        return list(old.messages) if old is not None else []

    def topics(self, chat_id: int) -> dict[int, str]:
        """A forum's topics by id, the General topic excluded (empty for other chats)."""
        return dict(self._chat(chat_id).topics)

    def message_topic(self, chat_id: int, msg_id: int) -> int | None:
        """The topic a forum's message is in (1 for the General topic); None outside forums."""
        chat = self._chat(chat_id)
        return chat.message_topics.get(msg_id, GENERAL_TOPIC_ID) if chat.kind == FORUM else None

    def message(self, chat_id: int, msg_id: int) -> types.TypeMessage:
        return self._chat(chat_id).by_id[msg_id]

    def discussion_group(self, chat_id: int) -> int | None:
        """The marked id of the channel's discussion group (spec ``comments`` > 0), else None."""
        discussion = self._account.discussions.by_channel.get(self._chat(chat_id).raw_id)
        return discussion.group.marked_id if discussion is not None else None

    def comments(self, chat_id: int, post_id: int) -> list[types.Message]:
        """The comments of the channel's post, oldest first (do not mutate the objects)."""
        return self._account.discussions.comments(self._chat(chat_id), post_id)

    # endregion

    # region files

    @staticmethod
    def file_key(media: Any, thumb: str | None = None) -> str:
        """The key of the file Telethon downloads for a message, media, ``Photo`` or ``Document``.

        Photos: the last size in ``sizes`` (what ``iter_download``/``download_media`` fetch) unless
        ``thumb`` names a size type; documents: the document itself unless ``thumb`` names a thumbnail.
        """
        if isinstance(media, types.Message):
            media = media.media
        if isinstance(media, types.MessageMediaPhoto):
            media = media.photo
        elif isinstance(media, types.MessageMediaDocument):
            media = media.document
        if isinstance(media, types.Photo):
            return photo_key(media.id, thumb or media.sizes[-1].type)
        if isinstance(media, types.Document):
            return document_key(media.id, thumb or "")
        raise TypeError(f"no downloadable file in {type(media).__name__}")

    def file_size(self, file_key: str) -> int:
        return self._account.files[file_key].size

    def file_dc(self, file_key: str) -> int:
        return self._account.files[file_key].dc_id

    def file_bytes(self, file_key: str) -> bytes:
        """The whole file (at most 64 MiB; use :meth:`file_range` for bigger ones)."""
        return read_all(self.spec.seed, self._account.files[file_key])

    def file_range(self, file_key: str, offset: int, length: int) -> bytes:
        return read_range(self.spec.seed, self._account.files[file_key], offset, length)

    def media_messages(self) -> list[tuple[int, types.Message]]:
        """``(chat id, message)`` for every message with downloadable media, in dialog order."""
        found = []
        for chat in self._server.dialog_order():
            for message in chat.messages:
                media = getattr(message, "media", None)
                if isinstance(media, (types.MessageMediaPhoto, types.MessageMediaDocument)):
                    found.append((chat.marked_id, message))
        return found

    # endregion

    # region live changes

    def add_message(
        self, chat_id: int, text: str | None = None, media_kind: str | None = None, *, shape: str | None = None
    ) -> types.Message:
        """Append a new message (generated text when ``text`` is ``None``) and push it to listening clients.

        ``media_kind``: ``None``, ``"photo"``, ``"video"``, ``"round"``, ``"voice"``, ``"document"``,
        ``"audio"``, ``"sticker"``, ``"animation"`` or ``"image"``. ``shape``: how the update travels
        (see :attr:`update_shape`); default the policy.
        """
        chat = self._chat(chat_id)
        check_change(shape, new_message_in=chat.kind, has_media=media_kind is not None)
        return self._publish_new(chat, text=text, media_kind=media_kind, shape=shape)

    def set_reactions(self, chat_id: int, msg_id: int, counts: Sequence[tuple[str, int]]) -> types.Message:
        """Set a message's emoji reactions (``[("❤️", 6)]``). As on Telegram its ``edit_date`` stays; no
        update is pushed (Telegram's ``updateMessageReactions`` is not simulated)."""
        return self._account.set_reactions(self._chat(chat_id), msg_id, counts)

    def add_big_file(self, chat_id: int, size_bytes: int, text: str | None = "") -> types.Message:
        """Append a message with a video document of ``size_bytes`` (bytes are generated per request)."""
        if size_bytes <= 0:
            raise ValueError("size_bytes must be positive")
        return self._publish_new(self._chat(chat_id), text=text, media_kind="video", size=size_bytes)

    def edit_message(self, chat_id: int, msg_id: int, text: str, *, shape: str | None = None) -> types.Message:
        """Edit any message of the chat, however old, and push ``updateEdit(Channel)Message``."""
        chat = self._chat(chat_id)
        check_change(shape)
        message = self._account.edit(chat, msg_id, text)
        self._server.broadcast(self._server.log_edit(chat, message), [message], shape)
        self.live_events.append(("edit", chat_id, msg_id))
        return message

    def add_comment(self, chat_id: int, post_id: int, text: str | None = None) -> types.Message:
        """Add a comment (generated text when ``text`` is ``None``) to the channel's post; the post's
        comment count and newest comment id change. Pushed to no client (see :mod:`tobs_sync.sim.discussion`)."""
        chat = self._chat(chat_id)
        comment = self._account.discussions.add_comment(chat, post_id, self._account.tick(), text)
        self.live_events.append(("comment", chat_id, comment.id))
        return comment

    def open_takeouts(self) -> int:
        """How many takeout sessions the server holds open (not finished, not ended by another export)."""
        return self._server.open_takeouts

    def delete_messages(self, chat_id: int, ids: Sequence[int], *, shape: str | None = None) -> list[int]:
        """Delete messages (any number, however old) with one ``updateDelete(Channel)Messages``;
        returns the ids that existed."""
        chat = self._chat(chat_id)
        check_change(shape)
        gone = self._account.delete(chat, ids)
        if gone:
            self._account.tick()
            self._server.broadcast(self._server.log_delete(chat, gone), [], shape)
            for msg_id in gone:
                self.live_events.append(("delete", chat_id, msg_id))
        return gone

    def clear_history(self, chat_id: int, *, shape: str | None = None) -> list[int]:
        """Delete the whole history of the chat; returns the deleted ids.

        Private chats and basic groups announce it as one ``updateDeleteMessages`` (with ``pts``);
        channels and megagroups as ``updateChannelAvailableMessages`` (no ``pts``, so no
        ``MessageDeleted`` event and nothing in a later difference), as Telegram does."""
        chat = self._chat(chat_id)
        check_change(shape)
        if not chat.is_channel:
            return self.delete_messages(chat_id, [m.id for m in chat.messages], shape=shape)
        gone = self._account.delete(chat, [m.id for m in chat.messages])
        if gone:
            self._account.tick()
            update = types.UpdateChannelAvailableMessages(channel_id=chat.raw_id, available_min_id=max(gone))
            self._server.broadcast(update, [], shape)
            for msg_id in gone:
                self.live_events.append(("delete", chat_id, msg_id))
        return gone

    @property
    def update_shape(self) -> str:
        """How pushed updates travel when a change names no ``shape``: ``"updates"`` (default),
        ``"updatesCombined"``, ``"updateShort"``, ``"updateShortMessage"``, ``"updateShortChatMessage"``,
        ``"updatesTooLong"``, ``"dropped"`` (never sent: a gap) or ``"mixed"`` (a seeded choice among
        the shapes that deliver the change)."""
        return self._server.updates.policy

    @update_shape.setter
    def update_shape(self, shape: str) -> None:
        self._server.updates.policy = shape

    @property
    def shapes_sent(self) -> list[str]:
        """The shape of every push so far, in order."""
        return list(self._server.updates.shapes_sent)

    def updates_together(self, shape: str = "updatesCombined") -> contextlib.AbstractContextManager[None]:
        """``with sim.updates_together():`` the changes made inside travel as one envelope of ``shape``."""
        return self._server.updates.together(shape)

    def forget_updates(self) -> None:
        """Forget the update history (as Telegram does after a while): clients whose state predates
        now get ``differenceTooLong`` / ``channelDifferenceTooLong`` and must re-read history."""
        self._server.updates.forget()

    def set_difference_limits(
        self, *, slice_limit: int | None = None, too_long_after: int | None = None,
        channel_too_long_after: int | None = None,
    ) -> None:
        """``slice_limit``: updates per ``getDifference`` answer (``differenceSlice`` beyond);
        ``too_long_after`` / ``channel_too_long_after``: pending updates beyond which the answer is
        ``differenceTooLong`` / ``channelDifferenceTooLong`` (``None``: never)."""
        feed = self._server.updates
        for name, value in (("slice_limit", slice_limit), ("too_long_after", too_long_after),
                            ("channel_too_long_after", channel_too_long_after)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if slice_limit is not None:
            feed.slice_limit = slice_limit
        feed.too_long_after = too_long_after
        feed.channel_too_long_after = channel_too_long_after

    @contextlib.asynccontextmanager
    async def away(self, client: TelegramClient) -> AsyncIterator[None]:
        """``async with sim.away(client):`` disconnect ``client``; changes made inside never reach it.
        On exit it reconnects and catches up, as a restarted client does, returning once the server
        answered its ``getDifference`` (changes made after that are no longer "while away")."""
        await client.disconnect()
        try:
            yield
        finally:
            answered = self._server.updates.answers["account"]
            await client.connect()
            await client.catch_up()
            async with asyncio.timeout(CATCH_UP_BOUND_S):
                await self._server.updates.wait_answers("account", answered + 1)

    @property
    def differences_answered(self) -> dict[str, int]:
        """How many ``getDifference`` (``"account"``) and ``getChannelDifference`` (``"channel"``)
        requests the server answered so far."""
        return dict(self._server.updates.answers)

    async def await_differences(self, *, account: int = 0, channel: int = 0) -> None:
        """Return once the server answered ``account`` account and ``channel`` channel differences
        in total (see :attr:`differences_answered`); bounded by the loop's clock."""
        async with asyncio.timeout(CATCH_UP_BOUND_S):
            await self._server.updates.wait_answers("account", account)
            await self._server.updates.wait_answers("channel", channel)

    def _publish_new(
        self, chat: SimChat, *, text: str | None, media_kind: str | None, size: int | None = None,
        shape: str | None = None,
    ) -> types.Message:
        message = self._account.new_message(chat, text=text, media_kind=media_kind, size=size)
        self._server.broadcast(self._server.log_new_message(chat, message), [message], shape)
        self.live_events.append(("new", chat.marked_id, message.id))
        return message

    def live_step(self) -> tuple[str, int, int]:
        """Make the next deterministic live change now; returns ``(kind, chat id, message id)``."""
        self._live_step += 1
        rng = rng_for(self.spec.seed, "live", self._live_step)
        chat = rng.choice(self._account.chats)
        roll = rng.random()
        editable = [m for m in chat.messages[-20:] if isinstance(m, types.Message)]
        if roll < 0.1 and editable:
            target = rng.choice(editable)
            self.edit_message(chat.marked_id, target.id, f"{target.message} (edited {self._live_step})".strip())
            return "edit", chat.marked_id, target.id
        if roll < 0.16 and chat.messages:
            victim = chat.messages[-1].id
            self.delete_messages(chat.marked_id, [victim])
            return "delete", chat.marked_id, victim
        media_kind = rng.choice(MEDIA_KINDS) if rng.random() < self.spec.media else None
        message = self._publish_new(chat, text=None, media_kind=media_kind)
        return "new", chat.marked_id, message.id

    def start_live(self, every_s: float | None = None) -> asyncio.Task[None]:
        """Start making a live change every ``every_s`` (default ``spec.live_every_s``) on the running loop."""
        interval = self.spec.live_every_s if every_s is None else every_s
        if interval <= 0:
            raise ValueError("live changes need live_every_s > 0 (in the spec or as every_s)")
        if self._live_task is not None and not self._live_task.done():
            raise RuntimeError("live changes are already running")
        self._live_task = asyncio.get_running_loop().create_task(self._live(interval))
        return self._live_task

    async def stop_live(self) -> None:
        """Stop the live task and disconnect the clients it connected (their update loops end with them).

        A client left connected keeps Telethon's update loop running; on Python 3.11 cancelling that loop
        at the moment an update arrives can be swallowed by ``asyncio.wait_for``, and ``asyncio.run``
        would then wait for it forever. Disconnecting first ends the loop through ``is_connected()``.
        """
        task, self._live_task = self._live_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        connected, self._live_connected = self._live_connected, []
        for client in connected:
            await client.disconnect()

    async def _live(self, interval: float) -> None:
        for client in list(self._clients):
            sender = client._sender
            if sender.is_connected() and not sender.updates_enabled:
                await client.connect()
                self._live_connected.append(client)
        while True:
            await asyncio.sleep(interval)
            self.live_step()

    # endregion
