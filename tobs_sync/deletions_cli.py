"""``tobs-sync deletions``: the deletions the mass-deletion guard holds, and the user's decision.

Without options it lists, per chat, the deletions held (read-only: works while the agent runs).
``--confirm CHAT_ID`` applies a chat's held deletions by ``[deletions] policy``; ``--discard
CHAT_ID`` drops them (the notes stay; the same deletions are not raised again). Both write, so they
take the vault lock and act at once. While the agent (``tobs-sync run``) holds the lock, the decision
is checked and left as a request for the agent to apply (:mod:`tobs_sync.deletion_requests`); should
the agent have stopped meanwhile, the command applies it itself. Holding the lock, the command also
applies requests an agent left unapplied. Another writer holding the lock refuses the command.
Limits: a decision covers every held deletion of the chat at once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tobs_sync.app import App, require_state
from tobs_sync.config import Settings, load_settings
from tobs_sync.deletion_requests import (
    Decision,
    apply_decision,
    forget_request,
    leave_request,
    pending_requests,
    remove_request,
)
from tobs_sync.errors import TobsError
from tobs_sync.lock import VaultBusy, local_now
from tobs_sync.store_deletions import HeldDeletions, held

DELETIONS_COMMAND = "tobs-sync deletions"


def held_as_json(items: list[HeldDeletions], requested: dict[int, str]) -> list[dict[str, object]]:
    return [
        {"chat_id": h.chat_id, "title": h.title, "count": h.count, "message_ids": list(h.message_ids),
         "first_found": dt.datetime.fromtimestamp(h.first_found, dt.UTC).isoformat(),
         "requested": requested.get(h.chat_id)}
        for h in items
    ]


def run_deletions_command(args: argparse.Namespace, console: Console) -> int:
    settings = load_settings(args.vault)
    require_state(settings)
    if args.confirm is None and args.discard is None:
        with App.open(args.vault, read_only=True) as app:
            items = held(app.store)
        requested = {r.chat_id: r.decision for r in pending_requests(settings.state_dir)}
        if args.json:
            console.print_json(json.dumps(held_as_json(items, requested)))
        else:
            _print_held(console, items, requested)
        return 0
    chat_id = args.confirm if args.confirm is not None else args.discard
    decision: Decision = "confirm" if args.confirm is not None else "discard"
    try:
        app = App.open(args.vault, command=DELETIONS_COMMAND)
    except VaultBusy as busy:
        from tobs_sync.agent import AGENT_COMMAND  # only here: the agent's modules are not needed otherwise

        if busy.holder is None or busy.holder.command != AGENT_COMMAND:
            raise
        _leave_for_agent(args, console, settings, chat_id, decision)
        try:  # the agent may have stopped in the meantime: then apply it here
            app = App.open(args.vault, command=DELETIONS_COMMAND)
        except VaultBusy:
            console.print(Text(f"the agent holding this vault, {busy.holder.describe(local_now())}, will "
                               f"{decision} them within seconds; 'tobs-sync deletions --vault VAULT' shows the "
                               "request until it has"))
            return 0
        with app:
            _apply_requests(app, console)
        return 0
    with app:
        title = _held_title(app, chat_id)
        _apply(app, console, chat_id, title, decision)
        forget_request(settings.state_dir, chat_id)  # superseded by this decision
        _apply_requests(app, console)
    return 0


def _held_title(app: App, chat_id: int) -> str:
    """The title of ``chat_id`` if it has held deletions (else the error saying it has none)."""
    found = [h for h in held(app.store) if h.chat_id == chat_id]
    if not found:
        raise TobsError(f"chat {chat_id} has no held deletions ('tobs-sync deletions --vault VAULT' lists them)")
    return found[0].title


def _apply(app: App, console: Console, chat_id: int, title: str, decision: Decision) -> None:
    _report, count = asyncio.run(apply_decision(app, chat_id, decision))
    if decision == "confirm":
        console.print(Text(f"applied {count} deletion(s) in {title!r} "
                           f"(deletions.policy = {app.settings.deletions.policy})"))
    else:
        console.print(Text(f"dropped {count} held deletion(s) in {title!r}; their notes stay as they are"))


def _leave_for_agent(args: argparse.Namespace, console: Console, settings: Settings, chat_id: int,
                     decision: Decision) -> None:
    """Check the decision on a read-only store and leave it as a request for the running agent."""
    with App.open(args.vault, read_only=True) as app:
        title = _held_title(app, chat_id)
        count = next(h.count for h in held(app.store) if h.chat_id == chat_id)
    leave_request(settings.state_dir, chat_id, decision, local_now())
    console.print(Text(f"{decision} {count} held deletion(s) in {title!r}: requested"))


def _apply_requests(app: App, console: Console) -> None:
    """Apply the requests still waiting (left for an agent that stopped before applying them)."""
    for request in pending_requests(app.settings.state_dir):
        titles = {h.chat_id: h.title for h in held(app.store)}
        if request.chat_id in titles:
            _apply(app, console, request.chat_id, titles[request.chat_id], request.decision)
        remove_request(request)


def _print_held(console: Console, items: list[HeldDeletions], requested: dict[int, str]) -> None:
    if not items:
        console.print("no held deletions")
        return
    table = Table(title=Text("deletions held by the mass-deletion guard"))
    columns = ("chat", "id", "held", "first found (UTC)", *(("requested",) if requested else ()))
    for column in columns:
        table.add_column(column, justify="left" if column in ("chat", "requested") else "right")
    for h in items:
        when = dt.datetime.fromtimestamp(h.first_found, dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(Text(h.title), str(h.chat_id), str(h.count), when,
                      *((requested.get(h.chat_id, ""),) if requested else ()))
    console.print(table)
    if any(h.chat_id in requested for h in items):
        console.print("requested: left for the running agent (applied when it next starts if it has stopped)")
    console.print("apply: tobs-sync deletions --vault VAULT --confirm CHAT_ID; "
                  "drop: tobs-sync deletions --vault VAULT --discard CHAT_ID")
