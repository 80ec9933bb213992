"""The ``tobs-sync`` command: thin commands over :mod:`tobs_sync.app`.

Commands: ``init``, ``import``, ``sync``, ``login``, ``render``, ``run`` (the agent), ``service``,
``status``, ``chats``, ``deletions`` (:mod:`tobs_sync.deletions_cli`). Errors a user can cause are
printed as one line (``error: ...``) with exit status 1, never as a traceback; ``-v`` shows debug logs
and ``--log-format json`` writes them as JSON lines (both before or after the command name). A pass
shows bars per chat on a terminal and one line per chat elsewhere (:mod:`tobs_sync.progress`). Every
command but ``status``, ``chats`` (and ``deletions`` without a decision) writes and holds the vault
lock while it runs: a second one on the same vault is refused with an error naming the first.
``status`` only reads and works while a writer runs; ``chats`` only reads too, but holds the lock
while the Telegram session (shared with ``sync``) is open.
Output goes through rich, which degrades to plain text when not on a terminal.
``sync`` runs one pass; ``run`` is the long-running agent (:mod:`tobs_sync.agent`), ``service`` prints a
user-service definition for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tobs_sync import __version__
from tobs_sync.app import (
    App,
    account_chats,
    ensure_vault_folder,
    import_export,
    init_vault,
    open_client,
    require_state,
    sync_telegram,
)
from tobs_sync.chat_list import ChatListing, printable
from tobs_sync.config import load_settings
from tobs_sync.deletions_cli import run_deletions_command
from tobs_sync.errors import TemplateError, TobsError, VaultError
from tobs_sync.lock import VaultLock
from tobs_sync.logs import LOG_FORMATS, configure_logging
from tobs_sync.media import MediaCounts
from tobs_sync.progress import ChatLines, LiveProgress, progress_for
from tobs_sync.publish import audit_notes
from tobs_sync.session import LoginPrompts, check_private, session_dir
from tobs_sync.sources.telegram_login import log_in
from tobs_sync.status_report import chat_activity, recent_passes
from tobs_sync.store_schema import NO_CURSOR
from tobs_sync.sync import SyncReport


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tobs-sync", description="Keep an Obsidian vault in sync with Telegram."
    )
    parser.add_argument("--version", action="version", version=f"tobs-sync {__version__}")
    _add_log_options(parser)
    common = argparse.ArgumentParser(add_help=False)
    _add_log_options(common, suppress=True)  # also after the command name: ``sync -v``
    commands = _Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)

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

    chats = commands.add_parser("chats", help="list your chats: which a sync takes, and how far back")
    chats.add_argument("--vault", type=Path, required=True)
    chats.add_argument("--json", action="store_true", help="machine-readable output")
    chats.add_argument("--simulate", metavar="SPEC", help="list a simulated account's chats (as sync --simulate)")
    chats.add_argument("--repair-permissions", action="store_true")

    run = commands.add_parser("run", help="keep the vault in sync until stopped: schedules, live updates, "
                                          "template and config changes (Ctrl+C stops it cleanly)")
    run.add_argument("--vault", type=Path, required=True, help="the Obsidian vault folder (created if missing)")
    run.add_argument("--simulate", metavar="SPEC",
                     help="run on a simulated Telegram (keys as for sync); live_every_s=N makes it change every "
                          "N seconds")
    run.add_argument("--repair-permissions", action="store_true",
                     help="make a session folder/file that others can read private again (with a warning)")

    service = commands.add_parser("service", help="print a user-service definition that runs 'tobs-sync run'")
    service.add_argument("kind", choices=("systemd", "launchd"), help="systemd user unit or launchd agent")
    service.add_argument("--vault", type=Path, required=True)

    status = commands.add_parser("status", help="chats, cursors, media and conflicts of a vault")
    status.add_argument("--vault", type=Path, required=True)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    deletions = commands.add_parser(
        "deletions", help="list deletions held by the mass-deletion guard; confirm or discard them per chat")
    deletions.add_argument("--vault", type=Path, required=True)
    deletions.add_argument("--json", action="store_true", help="machine-readable output")
    decision = deletions.add_mutually_exclusive_group()
    decision.add_argument("--confirm", type=int, metavar="CHAT_ID",
                          help="apply a chat's held deletions (by policy; a running agent applies it for you)")
    decision.add_argument("--discard", type=int, metavar="CHAT_ID",
                          help="drop a chat's held deletions (a running agent applies it for you)")
    return parser


class _Commands:
    """The subcommand parsers, each taking the log options too."""

    def __init__(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
        self._subparsers, self._common = subparsers, common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return self._subparsers.add_parser(name, parents=[self._common], **kwargs)  # type: ignore[no-any-return]


def _add_log_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``-v`` and ``--log-format``; on a command (``suppress``) they leave the value given before it alone."""
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs", **default)
    parser.add_argument("--log-format", choices=LOG_FORMATS, help="logs as text (default) or one JSON object per "
                        "line; with json, a pass's per-chat lines are JSON too",
                        **(default or {"default": "text"}))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False, markup=False, soft_wrap=True)
    configure_logging(verbose=args.verbose, log_format=args.log_format)
    try:
        return _run(args, console)
    except TobsError as exc:
        if args.log_format == "json":
            logging.getLogger("tobs_sync").error("error: %s", exc)  # one JSON object, like every log line
        else:
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
        with _progress(console, args) as progress:
            report, counts = asyncio.run(import_export(args.vault, args.export, observer=progress))
        _print_report(console, report, counts)
        return 0
    if args.command == "sync":
        ensure_vault_folder(args.vault)
        with _progress(console, args) as progress:
            report, counts = asyncio.run(sync_telegram(
                args.vault, simulate=args.simulate, repair_permissions=args.repair_permissions, observer=progress
            ))
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
    if args.command == "chats":
        if not args.vault.is_dir():
            raise TobsError(f"{args.vault} is not a folder")
        listing = asyncio.run(
            account_chats(args.vault, simulate=args.simulate, repair_permissions=args.repair_permissions)
        )
        if args.json:
            console.print_json(json.dumps({"chats": [row.as_json() for row in listing]}))
        else:
            _print_chats(console, listing)
        return 0
    if args.command == "run":
        from tobs_sync.agent import run_agent  # APScheduler and watchdog: only the agent needs them

        ensure_vault_folder(args.vault)
        if not args.verbose:
            logging.getLogger("tobs_sync").setLevel(logging.INFO)
        asyncio.run(run_agent(args.vault, simulate=args.simulate, repair_permissions=args.repair_permissions))
        console.print("agent stopped; the next start resumes where it left off")
        return 0
    if args.command == "service":
        from tobs_sync.agent_service import service_text

        console.print(service_text(args.kind, args.vault), end="")
        return 0
    if args.command == "status":
        with App.open(args.vault, read_only=True) as app:
            status = collect_status(app)
        if args.json:
            console.print_json(json.dumps(status))
        else:
            _print_status(console, status)
        return 0
    if args.command == "deletions":
        return run_deletions_command(args, console)
    raise AssertionError(args.command)  # pragma: no cover


@contextlib.contextmanager
def _progress(console: Console, args: argparse.Namespace) -> Iterator[LiveProgress | ChatLines]:
    """The progress display of a pass: bars on a terminal, one line per chat otherwise."""
    progress = progress_for(console, json_lines=args.log_format == "json")
    if isinstance(progress, LiveProgress):
        with progress:
            yield progress
    else:
        yield progress


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


def _print_chats(console: Console, listing: list[ChatListing]) -> None:
    table = Table(title=Text("Telegram chats"))
    for column in ("chat", "id", "kind", "username", "messages", "sync", "first backfill"):
        table.add_column(column, justify="right" if column in ("id", "messages") else "left",
                         no_wrap=column in ("id", "kind"))
    for row in listing:
        count = "-" if row.messages is None else f"{row.estimate} {row.messages:,}"
        if row.selected:
            chosen = f"yes ({row.selected_by})"
            since = "whole history" if row.since is None else f"since {row.since}"
            limit = "" if not row.backfill else f", last {row.backfill:,}"
            state = "widening" if row.widening else "done" if row.backfilled else "not yet"
            backfill = f"{since}{limit}: {state}"
        else:
            chosen = f"no (excluded by {row.excluded_by})" if row.excluded_by is not None else "no"
            backfill = ""
        table.add_row(Text(printable(row.title)), str(row.id), row.kind,
                      Text("" if row.username is None else "@" + printable(row.username)), count, chosen, backfill)
    console.print(table)
    selected = sum(row.selected for row in listing)
    console.print(f"{selected} of {len(listing)} chats selected (telegram.chats, telegram.exclude); a first backfill "
                  "takes messages since telegram.since and at most the last telegram.backfill, the tighter of the two")


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
    activity = chat_activity(store)
    audit = audit_notes(app.vault, store)
    conflicts_by_chat: dict[int, int] = {}
    for path in audit.conflicts:
        if (row := store.note_at(path)) is not None:
            conflicts_by_chat[row.chat_id] = conflicts_by_chat.get(row.chat_id, 0) + 1
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
            **activity.get(state.chat.id, {}),
            "conflicts": conflicts_by_chat.get(state.chat.id, 0),
        })
    media_files, media_bytes = store.media_count()

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
        "templates": _template_files(app),
        "recent_passes": recent_passes(store),
    }


def _template_files(app: App) -> dict[str, str]:
    """Where each template comes from, or why it does not compile (``status`` still shows the rest)."""
    files = {}
    for name in ("message.md", "chat.md"):
        try:
            files[name] = app.renderer.template_file(name)
        except TemplateError as exc:
            files[name] = f"error: {exc}"
    return files


def _print_status(console: Console, status: dict[str, Any]) -> None:
    table = Table(title=Text(f"tobs-sync: {status['vault']}"))
    for column in ("chat", "id", "kind", "messages", "cursor", "skipped"):
        table.add_column(column, justify="left" if column in ("chat", "kind") else "right")
    for chat in status["chats"]:
        cursor = "-" if chat["cursor"] is None else str(chat["cursor"])
        skipped = sum(chat["skipped"].values())
        table.add_row(Text(chat["title"]), str(chat["id"]), chat["kind"], str(chat["messages"]), cursor, str(skipped))
    console.print(table)
    passes = Table(title="passes")
    for column in ("chat", "last pass", "new/ed/del", "errors", "next run", "notes", "media", "conflicts", "held"):
        passes.add_column(column, justify="left" if column in ("chat", "last pass", "next run") else "right")
    for chat in status["chats"]:
        last = chat.get("last_pass")
        passes.add_row(
            Text(chat["title"]), _local_time(last["finished"]) if last else "never",
            f"{last['new']}/{last['edited']}/{last['deleted']}" if last else "-",
            str(len(last["errors"])) if last else "0",
            _local_time(chat["next_run"]) if chat.get("next_run") else "-",
            str(chat.get("notes", 0)), str(chat.get("media", {}).get("stored", 0)), str(chat.get("conflicts", 0)),
            str(chat.get("held_deletions", 0)),
        )
    console.print(passes)
    if status["recent_passes"]:
        last = status["recent_passes"][0]
        console.print(f"last pass: {_local_time(last['started'])} ({last['trigger']}, {last['seconds']:.0f} s), "
                      f"{last['messages']} new messages, {last['notes_written']} notes written")
        for problem in last["failed"] + last["deferred"]:
            console.print(Text(f"  {problem}", "red"))
    for chat in status["chats"]:
        for reason, count in chat["skipped"].items():
            console.print(Text(f"{count} skipped in {chat['title']!r}: {reason}", "yellow"))
        for error in (chat.get("last_pass") or {}).get("errors", []):
            console.print(Text(f"last pass of {chat['title']!r}: {error}", "red"))
        if chat.get("held_deletions"):
            console.print(Text(f"{chat['held_deletions']} deletions held in {chat['title']!r} until you confirm "
                               "them", "yellow"))
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


def _local_time(iso: str) -> str:
    """An ISO 8601 time from ``status --json`` as this computer's local time: month-day hour:minute."""
    return dt.datetime.fromisoformat(iso).astimezone().strftime("%m-%d %H:%M")


def _print_notes(console: Console, notes: list[dict[str, Any]], what: str) -> None:
    """A heading with the count (``1 note`` / ``3 notes``) and one line per note path; nothing if none."""
    if not notes:
        return
    console.print(Text(f"{len(notes)} {'note' if len(notes) == 1 else 'notes'} {what}:", "yellow"))
    for note in notes:
        console.print(f"  {note['path']}")

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
