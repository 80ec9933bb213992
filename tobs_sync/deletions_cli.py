"""``tobs-sync deletions``: the deletions the mass-deletion guard holds, and the user's decision.

Without options it lists, per chat, the deletions held (read-only: works while the agent runs).
``--confirm CHAT_ID`` applies a chat's held deletions by ``[deletions] policy``; ``--discard
CHAT_ID`` drops them (the notes stay; the same deletions are not raised again). Both write, so they
take the vault lock. Limits: a decision covers every held deletion of the chat at once.
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
from tobs_sync.config import load_settings
from tobs_sync.errors import TobsError
from tobs_sync.store_deletions import HeldDeletions, held


def held_as_json(items: list[HeldDeletions]) -> list[dict[str, object]]:
    return [
        {"chat_id": h.chat_id, "title": h.title, "count": h.count, "message_ids": list(h.message_ids),
         "first_found": dt.datetime.fromtimestamp(h.first_found, dt.UTC).isoformat()}
        for h in items
    ]


def run_deletions_command(args: argparse.Namespace, console: Console) -> int:
    settings = load_settings(args.vault)
    require_state(settings)
    if args.confirm is None and args.discard is None:
        with App.open(args.vault, read_only=True) as app:
            items = held(app.store)
        if args.json:
            console.print_json(json.dumps(held_as_json(items)))
        else:
            _print_held(console, items)
        return 0
    chat_id = args.confirm if args.confirm is not None else args.discard
    with App.open(args.vault, command="tobs-sync deletions") as app:
        found = [h for h in held(app.store) if h.chat_id == chat_id]
        if not found:
            raise TobsError(f"chat {chat_id} has no held deletions ('tobs-sync deletions --vault VAULT' lists them)")
        title = found[0].title
        if args.confirm is not None:
            report = asyncio.run(app.synchronizer.confirm_deletions(chat_id))
            applied = report.per_chat[chat_id].deleted if chat_id in report.per_chat else 0
            console.print(Text(f"applied {applied} deletion(s) in {title!r} "
                               f"(deletions.policy = {settings.deletions.policy})"))
        else:
            count = app.synchronizer.changes.discard(chat_id)
            console.print(Text(f"dropped {count} held deletion(s) in {title!r}; their notes stay as they are"))
    return 0


def _print_held(console: Console, items: list[HeldDeletions]) -> None:
    if not items:
        console.print("no held deletions")
        return
    table = Table(title=Text("deletions held by the mass-deletion guard"))
    for column in ("chat", "id", "held", "first found (UTC)"):
        table.add_column(column, justify="left" if column == "chat" else "right")
    for h in items:
        when = dt.datetime.fromtimestamp(h.first_found, dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(Text(h.title), str(h.chat_id), str(h.count), when)
    console.print(table)
    console.print("apply: tobs-sync deletions --vault VAULT --confirm CHAT_ID; "
                  "drop: tobs-sync deletions --vault VAULT --discard CHAT_ID")
