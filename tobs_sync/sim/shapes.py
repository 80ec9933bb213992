"""The shapes in which Telegram pushes updates, and the choice of one for each live change.

Telegram sends a change to a connected client as one of the ``Updates`` constructors:

* ``updateShortMessage`` -- a new text message in a private chat (no media), with ``pts``;
* ``updateShortChatMessage`` -- the same in a basic group;
* ``updateShort`` -- any single update with a ``date`` and no ``seq``;
* ``updates`` -- updates with their ``users``/``chats``, ``date`` and ``seq``;
* ``updatesCombined`` -- the same for a run ``seq_start``..``seq``;
* ``updatesTooLong`` -- "too many to send, ask ``getDifference``".

:data:`DROPPED` is not a Telegram constructor: the change is made (and logged) but never reaches the
client, leaving a ``pts`` (and ``seq``) gap that its ``MessageBox`` must notice.

``seq`` bookkeeping: an ``updates`` envelope carrying updates of the account-wide box (private chats
and basic groups) takes the next ``seq``; an ``updatesCombined`` one spans one ``seq`` per such update
(``seq_start``..``seq``); channel-only envelopes carry
``seq = 0`` ("does not matter"), as Telegram does for channel updates.

Limits: short forms are built only for plain new messages (text, entities, forward, reply; no media,
no service messages), as Telegram does; ``mentioned``/``silent``/``ttl_period`` flags are not simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from telethon.tl import types
from telethon.tl.tlobject import TLObject

from tobs_sync.sim.content import rng_for

UPDATES = "updates"
COMBINED = "updatesCombined"
SHORT = "updateShort"
SHORT_MESSAGE = "updateShortMessage"
SHORT_CHAT_MESSAGE = "updateShortChatMessage"
TOO_LONG = "updatesTooLong"
DROPPED = "dropped"
SHAPES = (UPDATES, COMBINED, SHORT, SHORT_MESSAGE, SHORT_CHAT_MESSAGE, TOO_LONG, DROPPED)
MIXED = "mixed"
"""Policy: a seeded choice, per change, among the shapes that deliver it (never too-long or dropped)."""
LOSSLESS = (UPDATES, COMBINED, SHORT, SHORT_MESSAGE, SHORT_CHAT_MESSAGE)


def check_shape(shape: str, *, policy: bool = False) -> str:
    """``shape`` if it names a shape (or, with ``policy``, ``"mixed"``); else a ``ValueError`` listing them."""
    allowed = (*SHAPES, MIXED) if policy else SHAPES
    if shape not in allowed:
        raise ValueError(f"unknown update shape {shape!r}; expected one of {', '.join(allowed)}")
    return shape


def check_change(shape: str | None, *, new_message_in: str | None = None, has_media: bool = False) -> None:
    """Refuse, before anything changes, a ``shape`` that is unknown or cannot carry the change: a new
    message in a chat of kind ``new_message_in`` (``None``: an edit or deletion), with media or not."""
    if shape is None:
        return
    check_shape(shape)
    short_kinds = {SHORT_MESSAGE: "private", SHORT_CHAT_MESSAGE: "group"}
    if shape in short_kinds and (new_message_in != short_kinds[shape] or has_media):
        what = f"a new message with media in a {new_message_in}" if new_message_in and has_media else (
            f"a new message in a {new_message_in}" if new_message_in else "an edit or deletion"
        )
        raise ValueError(f"{shape} cannot carry {what} (only new text messages in a {short_kinds[shape]} chat)")


def _short_message(update: TLObject) -> types.Message | None:
    if not isinstance(update, types.UpdateNewMessage):
        return None
    message = update.message
    if not isinstance(message, types.Message) or message.media is not None:
        return None
    return message


def applicable(shape: str, updates: list[TLObject]) -> bool:
    """Whether ``updates`` can travel as ``shape``."""
    if shape in (UPDATES, COMBINED, TOO_LONG, DROPPED):
        return bool(updates)
    if len(updates) != 1:
        return False
    if shape == SHORT:
        return True
    message = _short_message(updates[0])
    if message is None:
        return False
    if shape == SHORT_MESSAGE:
        return isinstance(message.peer_id, types.PeerUser)
    return isinstance(message.peer_id, types.PeerChat) and isinstance(message.from_id, types.PeerUser)


def choose(policy: str, updates: list[TLObject], seed: int, counter: int) -> str:
    """The shape for one push under ``policy`` (a shape, or :data:`MIXED`); ``counter`` numbers the pushes."""
    if policy != MIXED:
        if not applicable(policy, updates):
            raise ValueError(f"{policy} cannot carry {', '.join(type(u).__name__ for u in updates)}")
        return policy
    fitting = [shape for shape in LOSSLESS if applicable(shape, updates)]
    return rng_for(seed, "update-shape", counter).choice(fitting)


def is_account_update(update: TLObject) -> bool:
    """Whether ``update`` belongs to the account-wide box (it consumes ``seq`` in ``updates``)."""
    return isinstance(update, (types.UpdateNewMessage, types.UpdateEditMessage, types.UpdateDeleteMessages))


@dataclass
class SeqCounter:
    """The account's ``seq``: the number of account-box updates sent in ``updates``/``updatesCombined``."""

    seq: int = 0


def envelope(
    shape: str,
    updates: list[TLObject],
    *,
    users: list[TLObject],
    chats: list[TLObject],
    date: datetime,
    seq: SeqCounter,
) -> TLObject:
    """The ``Updates`` object carrying ``updates`` as ``shape`` (``DROPPED`` builds what would have been
    sent as ``updates``, so ``seq`` moves on as on the server)."""
    if shape == TOO_LONG:
        return types.UpdatesTooLong()
    if shape == SHORT:
        return types.UpdateShort(update=updates[0], date=date)
    if shape in (SHORT_MESSAGE, SHORT_CHAT_MESSAGE):
        update = updates[0]
        message = _short_message(update)
        if message is None or not applicable(shape, updates):
            raise ValueError(f"{shape} cannot carry {type(update).__name__}")
        common = dict(
            id=message.id, message=message.message, pts=update.pts, pts_count=update.pts_count,
            date=message.date, out=message.out, fwd_from=message.fwd_from, reply_to=message.reply_to,
            entities=message.entities,
        )
        if shape == SHORT_MESSAGE:
            return types.UpdateShortMessage(user_id=message.peer_id.user_id, **common)
        return types.UpdateShortChatMessage(
            from_id=message.from_id.user_id, chat_id=message.peer_id.chat_id, **common
        )
    counted = sum(1 for update in updates if is_account_update(update))
    if shape != COMBINED:
        counted = min(counted, 1)  # ``updates`` has one ``seq``; only a combined run spans several
    seq_start = seq.seq + 1 if counted else 0
    if counted:
        seq.seq += counted
    last = seq.seq if counted else 0
    if shape == COMBINED:
        return types.UpdatesCombined(
            updates=updates, users=users, chats=chats, date=date, seq_start=seq_start, seq=last
        )
    return types.Updates(updates=updates, users=users, chats=chats, date=date, seq=last)
