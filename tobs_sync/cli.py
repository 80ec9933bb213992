"""The ``tobs-sync`` command: thin commands over :mod:`tobs_sync.app`.

Commands: ``init``, ``import``, ``sync``, ``login``, ``render``, ``status``. Errors a user can cause are printed as
one line (``error: ...``) with exit status 1, never as a traceback; ``-v`` shows debug logs.
Every command but ``status`` writes and holds the vault lock while it runs: a second one on the same
vault is refused with an error naming the first. ``status`` only reads and works while a writer runs.
Output goes through rich, which degrades to plain text when not on a terminal.
Limits: ``sync`` runs one pass; the long-running agent is a separate command (to come).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from tobs_sync import __version__
from tobs_sync.app import (
    App,
    ensure_vault_folder,
    import_export,
    init_vault,
    open_client,
    require_state,
    sync_telegram,
)
from tobs_sync.config import load_settings
from tobs_sync.errors import TobsError, VaultError
from tobs_sync.lock import VaultLock
from tobs_sync.media import MediaCounts
from tobs_sync.publish import audit_notes
from tobs_sync.session import LoginPrompts, check_private, session_dir
from tobs_sync.sources.telegram_login import log_in
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.sync import SyncReport


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tobs-sync", description="Keep an Obsidian vault in sync with Telegram."
    )
    parser.add_argument("--version", action="version", version=f"tobs-sync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="prepare a vault: config and editable templates")
    init.add_argument("vault", type=Path, help="the Obsidian vault folder (created if missing)")

    imp = commands.add_parser("import", help="import a Telegram Desktop JSON export (incremental)")
    imp.add_argument("export", type=Path, help="the export folder or its result.json")
    imp.add_argument("--vault", type=Path, required=True, help="the Obsidian vault folder (created if missing)")

    sync = commands.add_parser("sync", help="one incremental pass over your Telegram chats")
    sync.add_argument("--vault", type=Path, required=True, help="the Obsidian vault folder (created if missing)")
    sync.add_argument(
        "--simulate", metavar="SPEC",
        help='use a simulated Telegram instead of your account, e.g. "chats=4,messages=5000,media=0.2,latency_ms=100,'
        'seed=1" (keys: chats, messages, media, latency_ms, seed, dcs, live_every_s, bandwidth_kbps, home_dc, rate, '
        'comments)',
    )
    sync.add_argument("--repair-permissions", action="store_true",
                      help="make a session folder/file that others can read private again (with a warning)")

    login = commands.add_parser("login", help="log in to Telegram (session kept outside the vault)")
    login.add_argument("--vault", type=Path, required=True)
    login.add_argument("--repair-permissions", action="store_true")

    render = commands.add_parser("render", help="re-render every note from the store, writing only changed ones")
    render.add_argument("--vault", type=Path, required=True)
    render.add_argument(
        "--force", metavar="PATH", nargs="+", default=None,
        help="replace the generated part of these notes even where it was edited "
             "(the file is first copied to .tobs/backups/)",
    )

    status = commands.add_parser("status", help="chats, cursors, media and conflicts of a vault")
    status.add_argument("--vault", type=Path, required=True)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False, markup=False, soft_wrap=True)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True, markup=False), show_path=False, markup=False)],
    )
    try:
        return _run(args, console)
    except TobsError as exc:
        Console(stderr=True, highlight=False).print(Text("error: ", style="red") + Text(str(exc)), soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; nothing half-written, run the command again to continue")
        return 130


def _run(args: argparse.Namespace, console: Console) -> int:
    if args.command == "init":
        created = init_vault(args.vault)
        for path in created:
            console.print(f"created {path}")
        if not created:
            console.print(f"{args.vault} is already set up")
        return 0
    if args.command == "import":
        ensure_vault_folder(args.vault)
        with console.status(f"importing {args.export} ..."):
            report, counts = asyncio.run(import_export(args.vault, args.export))
        _print_report(console, report, counts)
        return 0
    if args.command == "sync":
        ensure_vault_folder(args.vault)
        with console.status(Text("syncing ...")):
            report, counts = asyncio.run(
                sync_telegram(args.vault, simulate=args.simulate, repair_permissions=args.repair_permissions)
            )
        _print_report(console, report, counts)
        return 1 if report.failed else 0
    if args.command == "login":
        ensure_vault_folder(args.vault)
        prompts = LoginPrompts.from_environment(ask=input, ask_secret=getpass.getpass)
        settings = load_settings(args.vault)
        with VaultLock(settings.state_dir, "tobs-sync login"):  # a running sync uses the same session
            client = open_client(settings, repair_permissions=args.repair_permissions)
            who = asyncio.run(log_in(client, prompts, timeout_s=settings.telegram.request_timeout_s))
            check_private(session_dir(settings))
        console.print(f"logged in as {who}; the session is stored outside the vault, readable only by you")
        return 0
    if args.command == "render":
        require_state(load_settings(args.vault))
        with App.open(args.vault, command="tobs-sync render") as app:
            if args.force:
                paths = [_vault_path(app.vault.root, given) for given in args.force]
                report = app.synchronizer.render_all(paths, force=True)
            else:
                report = app.synchronizer.render_all()
            _print_report(console, report, app.media.counts)
        return 0
    if args.command == "status":
        with App.open(args.vault, read_only=True) as app:
            status = collect_status(app)
        if args.json:
            console.print_json(json.dumps(status))
        else:
            _print_status(console, status)
        return 0
    raise AssertionError(args.command)  # pragma: no cover


def _vault_path(root: Path, given: str) -> str:
    """A note's path inside the vault, from a path inside the vault or one on disk."""
    candidate = Path(given)
    if candidate.is_absolute() or candidate.exists():
        try:
            return candidate.resolve().relative_to(root).as_posix()
        except ValueError:
            if candidate.is_absolute():
                raise VaultError(f"{given!r} is not inside the vault {str(root)!r}") from None
    return candidate.as_posix()


def _print_report(console: Console, report: SyncReport, counts: MediaCounts) -> None:
    console.print(
        f"{report.chats} chats, {report.messages} new messages"
        + (f", {report.comments} new comments" if report.comments else "")
        + f"; notes: {report.notes_written} written, "
        f"{report.notes_unchanged} unchanged; media: {counts.stored} stored, {counts.deduplicated} deduplicated, "
        f"{counts.unavailable} unavailable"
    )
    for reason, count in sorted(counts.reasons.items()):
        console.print(f"  {count} media not stored: {reason}")
    for what, count in sorted(report.skipped.items()):
        console.print(Text(f"{count} {'message' if count == 1 else 'messages'} skipped: {what}", "yellow"))
    for line in report.deferred:
        console.print(Text(f"deferred to the next pass: {line}", "yellow"))
    for line in report.failed:
        console.print(Text(f"failed: {line}", "red"))
    if counts.skipped or counts.failed:
        console.print(f"media: {counts.skipped} skipped by the media settings, {counts.failed} to retry next pass")
    if report.conflicts:
        console.print(Text(f"{len(report.conflicts)} notes whose generated part was edited were left as they are "
                           "('tobs-sync render --force PATH' replaces it, keeping a backup):", "yellow"))
        for path in report.conflicts[:20]:
            console.print(f"  {path}")
        if len(report.conflicts) > 20:
            console.print("  ... ('tobs-sync status' lists all)")


def collect_status(app: App) -> dict[str, Any]:
    store = app.store
    chats = []
    skipped = store.skipped_counts()
    for state in store.chat_states():
        count, _first, _last = store.message_stats(state.chat.id)
        chat_note = store.chat_note(state.chat.id)
        chats.append({
            "id": state.chat.id,
            "title": state.chat.title,
            "kind": str(state.chat.kind),
            "folder": state.folder,
            "cursor": None if state.cursor == NO_CURSOR else state.cursor,
            "messages": count,
            "skipped": skipped.get(state.chat.id, {}),
            "chat_note": chat_note.path if chat_note else None,
        })
    media_files, media_bytes = store.media_count()
    audit = audit_notes(app.vault, store)

    def described(paths: list[str]) -> list[dict[str, Any]]:
        rows = [row for path in paths if (row := store.note_at(path)) is not None]
        return [{"path": row.path, "chat_id": row.chat_id, "message_ids": list(row.message_ids)} for row in rows]

    return {
        "vault": str(app.settings.vault_root),
        "chats": chats,
        "messages": store.message_count(),
        "notes": store.note_count(),
        "media": {"files": media_files, "bytes": media_bytes, "by_status": store.media_status_counts()},
        "conflicts": described(audit.conflicts),
        "edited": described(audit.edited),
        "missing": described(audit.missing),
        "templates": {name: app.renderer.template_file(name) for name in ("message.md", "chat.md")},
    }


def _print_status(console: Console, status: dict[str, Any]) -> None:
    table = Table(title=Text(f"tobs-sync: {status['vault']}"))
    for column in ("chat", "id", "kind", "messages", "cursor", "skipped"):
        table.add_column(column, justify="left" if column in ("chat", "kind") else "right")
    for chat in status["chats"]:
        cursor = "-" if chat["cursor"] is None else str(chat["cursor"])
        skipped = sum(chat["skipped"].values())
        table.add_row(Text(chat["title"]), str(chat["id"]), chat["kind"], str(chat["messages"]), cursor, str(skipped))
    console.print(table)
    for chat in status["chats"]:
        for reason, count in chat["skipped"].items():
            console.print(Text(f"{count} skipped in {chat['title']!r}: {reason}", "yellow"))
    media = status["media"]
    console.print(
        f"{status['messages']} messages, {status['notes']} notes, "
        f"{media['files']} media files ({media['bytes'] / 1e6:.1f} MB)"
    )
    for name, path in status["templates"].items():
        console.print(f"template {name}: {path}")
    _print_notes(console, status["conflicts"], "whose generated part (between the %% tobs %% markers, or the"
                 " markers themselves) was edited, left untouched; 'tobs-sync render --force PATH' replaces it,"
                 " keeping a backup")
    if not status["conflicts"]:
        console.print("no conflicts")
    _print_notes(console, status["edited"], "edited since tobs-sync wrote them (your text outside the %% tobs %%"
                 " markers and your properties are kept; an edit between the markers becomes a conflict at the"
                 " next update)")
    _print_notes(console, status["missing"], "missing (the next render writes them again)")


def _print_notes(console: Console, notes: list[dict[str, Any]], what: str) -> None:
    """A heading with the count (``1 note`` / ``3 notes``) and one line per note path; nothing if none."""
    if not notes:
        return
    console.print(Text(f"{len(notes)} {'note' if len(notes) == 1 else 'notes'} {what}:", "yellow"))
    for note in notes:
        console.print(f"  {note['path']}")

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
