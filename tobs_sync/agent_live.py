"""The agent's live updates: each change a connected source reports becomes work of the session.

* :class:`~tobs_sync.sources.base.MessagesArrived` is a hint: the chat's incremental pass runs
  :data:`ARRIVAL_QUIET_S` after the last arrival of a burst (one pass for a burst, over every chat
  that had arrivals), so a message sent becomes a note within seconds;
* :class:`~tobs_sync.sources.base.MessageEdited` updates the message's note (``apply_edits``);
* :class:`~tobs_sync.sources.base.MessagesDeleted` applies the deletion policy (``apply_deletions``).

Edits and deletions queue for the session's one work lock in the order they arrived, so they
never interleave with a pass or with each other. A source that cannot report live changes (a
Desktop export) leaves the agent on its schedules alone.
Limits: changes made while the source was disconnected are not reported here; the scheduled
passes find them (reconciliation). If the stream itself fails, the error is logged and the session
goes on with its schedules alone until the next start or config change.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tobs_sync.sources.base import LiveSource, MessageEdited, MessagesArrived, MessagesDeleted

if TYPE_CHECKING:
    from tobs_sync.agent_session import AgentSession

log = logging.getLogger(__name__)

ARRIVAL_QUIET_S = 1.0
"""Seconds after the last arrival of a burst before its pass runs."""


async def consume_live_changes(session: AgentSession, quiet_s: float = ARRIVAL_QUIET_S) -> None:
    """Turn the source's live changes into the session's work until cancelled."""
    source = session.source
    if not isinstance(source, LiveSource):
        log.info("%s reports no live changes: scheduled passes only", source.name)
        return
    synchronizer = session.app.synchronizer
    async for change in source.live_changes():
        if isinstance(change, MessagesArrived):
            session.chats_arrived(change.chat_id, quiet_s)
        elif isinstance(change, MessageEdited):
            session.spawn(session.exclusive("live edit", synchronizer.apply_edits(source, [change.message])))
        elif isinstance(change, MessagesDeleted):
            session.spawn(session.exclusive(
                "live deletion", synchronizer.apply_deletions(change.chat_id, change.message_ids, up_to=change.up_to)
            ))
