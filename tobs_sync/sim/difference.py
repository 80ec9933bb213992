"""The simulated account's update stream: recording changes, pushing them, answering differences.

:class:`UpdateFeed` records each live change in the ``pts`` log of its box (:mod:`updates`), pushes
it to connected clients in a shape (:mod:`shapes`: a fixed shape, a seeded ``"mixed"`` choice, or one
given per change; several changes can travel together as one ``updatesCombined``), and answers
``updates.getState``, ``updates.getDifference`` and ``updates.getChannelDifference``:

* differences reflect the messages *as they are now*: a new message edited since carries its current
  text, one deleted since is left out (its deletion update stays), an edit of a deleted message is
  left out;
* ``updates.differenceSlice`` when more than ``slice_limit`` (or the request's ``pts_total_limit``)
  account updates are pending, with an ``intermediate_state`` the client continues from;
* ``updates.differenceTooLong`` when the client's ``pts`` lies before forgotten updates
  (:meth:`UpdateFeed.forget`) or more than ``too_long_after`` updates are pending;
* an account difference names, with ``updateChannelTooLong``, every channel that changed after the
  request's ``date`` (Telegram tells clients which channels to fetch);
* ``updates.channelDifference`` in slices of the request's ``limit`` (``final`` on the last),
  ``updates.channelDifferenceTooLong`` (with the channel's current ``pts`` and newest messages) when
  the ``pts`` lies before forgotten updates or more than ``channel_too_long_after`` are pending.

Limits: no ``qts`` (no secret chats); ``pts`` of a client ahead of the server is answered as empty
instead of ``PERSISTENT_TIMESTAMP_INVALID``; clearing a channel's history is announced only live
(``updateChannelAvailableMessages`` has no ``pts``), as on Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator

from telethon import utils
from telethon.extensions import BinaryReader
from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from tobs_sync.sim.account import Account, SimChat
from tobs_sync.sim.shapes import COMBINED, DROPPED, UPDATES, SeqCounter, check_shape, choose, envelope
from tobs_sync.sim.updates import LoggedUpdate, UpdateLog

DEFAULT_SLICE_LIMIT = 1000
_NEW = (types.UpdateNewMessage, types.UpdateNewChannelMessage)
_EDIT = (types.UpdateEditMessage, types.UpdateEditChannelMessage)

Deliver = Callable[[TLObject], None]


class UpdateFeed:
    """The update stream of one simulated account (see module docs)."""

    def __init__(self, account: Account, deliver: Deliver) -> None:
        self.account = account
        self._deliver = deliver
        self._policy = UPDATES
        self.seq = SeqCounter()
        self.slice_limit = DEFAULT_SLICE_LIMIT
        self.too_long_after: int | None = None
        self.channel_too_long_after: int | None = None
        self._pushes = 0
        self._held: list[tuple[list[TLObject], list[TLObject]]] | None = None
        self.shapes_sent: list[str] = []
        """The shape of every push so far, in order (``dropped`` included)."""
        self.answers: Counter[str] = Counter()
        """Differences answered so far: ``"account"`` and ``"channel"``."""
        self._waiters: list[tuple[asyncio.Future[None], str, int]] = []

    @property
    def policy(self) -> str:
        """The shape of pushes that name none: a shape from :mod:`shapes`, or ``"mixed"``."""
        return self._policy

    @policy.setter
    def policy(self, shape: str) -> None:
        self._policy = check_shape(shape, policy=True)

    # region recording

    def _log_of(self, chat: SimChat) -> UpdateLog:
        return chat.log if chat.is_channel else self.account.account_log

    def record_new(self, chat: SimChat, message: TLObject) -> TLObject:
        snapshot = snapshot_of(message)
        kind = types.UpdateNewChannelMessage if chat.is_channel else types.UpdateNewMessage
        return self._log_of(chat).append(lambda pts, n: kind(snapshot, pts, n), 1, self.account.now())

    def record_edit(self, chat: SimChat, message: TLObject) -> TLObject:
        snapshot = snapshot_of(message)
        kind = types.UpdateEditChannelMessage if chat.is_channel else types.UpdateEditMessage
        return self._log_of(chat).append(lambda pts, n: kind(snapshot, pts, n), 1, self.account.now())

    def record_delete(self, chat: SimChat, ids: list[int]) -> TLObject:
        gone = list(ids)
        if chat.is_channel:
            return chat.log.append(
                lambda pts, n: types.UpdateDeleteChannelMessages(chat.raw_id, gone, pts, n), len(gone),
                self.account.now(),
            )
        return self.account.account_log.append(
            lambda pts, n: types.UpdateDeleteMessages(gone, pts, n), len(gone), self.account.now()
        )

    def forget(self) -> None:
        """Forget every logged update, as Telegram forgets old update history: differences starting
        before now are answered ``differenceTooLong`` / ``channelDifferenceTooLong``."""
        self.account.account_log.forget()
        for chat in self.account.chats:
            chat.log.forget()

    # endregion

    # region pushing

    def push(self, updates: list[TLObject], messages: list[TLObject], shape: str | None = None) -> None:
        """Send ``updates`` (about ``messages``) to connected clients as ``shape`` (else the policy).

        Inside :meth:`together` the updates are held and sent with the others, in the shape
        :meth:`together` names, when it ends (a ``shape`` given here is then only checked)."""
        if shape is not None:
            check_shape(shape)
        if self._held is not None:
            self._held.append((updates, messages))
            return
        self._pushes += 1
        chosen = choose(shape or self._policy, updates, self.account.seed, self._pushes)
        extra = [types.PeerChannel(u.channel_id) for u in updates if getattr(u, "channel_id", None)]
        users, chats = self.account.entities_for(messages, extra)
        built = envelope(chosen, updates, users=users, chats=chats, date=self.account.now(), seq=self.seq)
        self.shapes_sent.append(chosen)
        if chosen != DROPPED:
            self._deliver(built)

    @contextlib.contextmanager
    def together(self, shape: str = COMBINED) -> Iterator[None]:
        """Hold the pushes of the changes made inside, then send them as one envelope of ``shape``."""
        check_shape(shape)
        if self._held is not None:
            raise RuntimeError("updates are already being held together")
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                updates = [u for batch, _ in held for u in batch]
                messages = [m for _, batch in held for m in batch]
                self.push(updates, messages, shape)

    # endregion

    # region answers

    def _answered(self, kind: str) -> None:
        self.answers[kind] += 1
        for future, wanted, count in self._waiters:
            if wanted == kind and self.answers[kind] >= count and not future.done():
                future.set_result(None)

    async def wait_answers(self, kind: str, count: int) -> None:
        """Return once ``count`` differences of ``kind`` (``"account"``/``"channel"``) were answered."""
        if self.answers[kind] >= count:
            return
        waiter = (asyncio.get_running_loop().create_future(), kind, count)
        self._waiters.append(waiter)
        try:
            await waiter[0]
        finally:
            self._waiters.remove(waiter)

    def state(self) -> types.updates.State:
        return types.updates.State(
            pts=self.account.account_log.pts, qts=0, date=self.account.now(), seq=self.seq.seq, unread_count=0
        )

    def _current(self, entries: list[LoggedUpdate]) -> tuple[list[TLObject], list[TLObject]]:
        """``(new messages, other updates)`` of ``entries``, with messages as they are now."""
        new_messages: list[TLObject] = []
        others: list[TLObject] = []
        for entry in entries:
            update = entry.update
            if isinstance(update, _NEW + _EDIT):
                chat = self.account.by_marked.get(utils.get_peer_id(update.message.peer_id))
                now = chat.by_id.get(update.message.id) if chat is not None else None
                if now is None:
                    continue  # deleted since: its deletion is (or will be) in the log
                if isinstance(update, _NEW):
                    new_messages.append(now)
                else:
                    others.append(type(update)(now, update.pts, update.pts_count))
            else:
                others.append(update)
        return new_messages, others

    def difference(self, req: functions.updates.GetDifferenceRequest) -> TLObject:
        self._answered("account")
        log = self.account.account_log
        pending = log.since(req.pts)
        if not log.covers(req.pts) or (self.too_long_after is not None and len(pending) > self.too_long_after):
            return types.updates.DifferenceTooLong(pts=log.pts)
        limit = min(req.pts_total_limit or self.slice_limit, self.slice_limit)
        channels = [
            types.UpdateChannelTooLong(channel_id=chat.raw_id, pts=chat.log.pts)
            for chat in self.account.chats
            if chat.is_channel and chat.log.changed_after(req.date)
        ]
        if not pending and not channels:
            return types.updates.DifferenceEmpty(date=self.account.now(), seq=self.seq.seq)
        page = pending[:limit]
        new_messages, others = self._current(page)
        others.extend(channels)
        carried = new_messages + [u.message for u in others if isinstance(u, _EDIT)]
        users, chats = self.account.entities_for(carried, [types.PeerChannel(u.channel_id) for u in channels])
        if len(pending) > limit:
            last = page[-1]
            intermediate = types.updates.State(pts=last.pts, qts=0, date=last.date, seq=self.seq.seq, unread_count=0)
            return types.updates.DifferenceSlice(
                new_messages=new_messages, new_encrypted_messages=[], other_updates=others,
                chats=chats, users=users, intermediate_state=intermediate,
            )
        return types.updates.Difference(
            new_messages=new_messages, new_encrypted_messages=[], other_updates=others,
            chats=chats, users=users, state=self.state(),
        )

    def channel_difference(self, chat: SimChat, req: functions.updates.GetChannelDifferenceRequest) -> TLObject:
        self._answered("channel")
        log = chat.log
        limit = max(1, req.limit)
        pending = log.since(req.pts)
        too_many = self.channel_too_long_after is not None and len(pending) > self.channel_too_long_after
        if not log.covers(req.pts) or too_many:
            return self._channel_too_long(chat, limit)
        if not pending:
            return types.updates.ChannelDifferenceEmpty(pts=log.pts, final=True)
        page = pending[:limit]
        final = len(pending) <= limit
        new_messages, others = self._current(page)
        carried = new_messages + [u.message for u in others if isinstance(u, _EDIT)]
        users, chats = self.account.entities_for(carried, [chat.peer])
        return types.updates.ChannelDifference(
            pts=page[-1].pts, new_messages=new_messages, other_updates=others, chats=chats, users=users,
            final=final or None,
        )

    def _channel_too_long(self, chat: SimChat, limit: int) -> TLObject:
        newest = list(reversed(chat.messages[-limit:]))
        top_id = newest[0].id if newest else 0
        dialog = types.Dialog(
            peer=chat.peer, top_message=top_id, read_inbox_max_id=top_id, read_outbox_max_id=top_id,
            unread_count=0, unread_mentions_count=0, unread_reactions_count=0, unread_poll_votes_count=0,
            notify_settings=types.PeerNotifySettings(), pts=chat.log.pts,
        )
        users, chats = self.account.entities_for(newest, [chat.peer])
        return types.updates.ChannelDifferenceTooLong(
            dialog=dialog, messages=newest, chats=chats, users=users, final=True
        )

    # endregion



def snapshot_of(message: TLObject) -> TLObject:
    """An independent copy of ``message`` as it is now (the log must not follow later edits)."""
    return BinaryReader(bytes(message)).tgread_object()
