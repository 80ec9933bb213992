"""What arrived and what did not: pass records, ``status`` per chat, and the status note in the vault."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_EXPORT
from test_hostile import hostile, scan_note

from tobs_sync import status_note
from tobs_sync.app import App
from tobs_sync.cli import main
from tobs_sync.config import DEFAULT_STATUS_NOTE
from tobs_sync.errors import ChatDeferred, TemplateError
from tobs_sync.model import Chat, ChatKind, MediaKind, Message
from tobs_sync.publish import Outcome
from tobs_sync.sources.memory import MemorySource
from tobs_sync.store_passes import PassLog
from tobs_sync.sync_report import ChatCounts, SyncReport

NEWS = Chat(-1001234, "News", ChatKind.CHANNEL.value)
FRIEND = Chat(4242, "Friend", ChatKind.USER.value)
START = 1_700_000_000
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class FakeClock:
    """Each call returns the next minute, from ``T0``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        current = self.now
        self.now += dt.timedelta(minutes=1)
        return current


def message(chat: Chat, message_id: int, text: str | None = None) -> Message:
    return Message(chat.id, message_id, START + message_id * 60, text=text or f"message {message_id}")


def source_with(*chats: Chat, count: int = 3) -> MemorySource:
    source = MemorySource(chats)
    for chat in chats:
        for message_id in range(1, count + 1):
            source.add_message(message(chat, message_id))
    return source


def run_pass(
    vault: Path, source: MemorySource, trigger: str = "schedule", clock: FakeClock | None = None
) -> SyncReport:
    async def run() -> SyncReport:
        with App.open(vault) as app:
            app.clock = clock or FakeClock()
            async with source:
                return await app.run_pass(source, trigger)

    return asyncio.run(run())


@pytest.fixture
def app(vault: Path) -> Iterator[App]:
    with App.open(vault) as opened:
        yield opened


def change_message_template(vault: Path) -> None:
    """A template change, so that a re-render has every message note to update."""
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True, exist_ok=True)
    builtin = (Path(__file__).parents[1] / "templates" / "message.md").read_text(encoding="utf-8")
    (templates / "message.md").write_text(builtin + "\nv2\n", encoding="utf-8")


def note_path(vault: Path) -> Path:
    return vault / DEFAULT_STATUS_NOTE


# --- pass records -------------------------------------------------------------------------


def test_a_pass_is_recorded_per_chat_with_when_counts_and_errors(vault: Path) -> None:
    source = source_with(NEWS, FRIEND)
    source.fail_history(FRIEND.id, ChatDeferred("chat 'Friend': Telegram asks to wait 900 s"))
    run_pass(vault, source, clock=FakeClock())
    with App.open(vault) as app:
        last = PassLog(app.store).last_by_chat()
    assert (last[NEWS.id].new, last[NEWS.id].edited, last[NEWS.id].deleted, last[NEWS.id].errors) == (3, 0, 0, ())
    assert last[FRIEND.id].new == 0
    assert last[FRIEND.id].errors == ("chat 'Friend': Telegram asks to wait 900 s",)
    assert (last[NEWS.id].started, last[NEWS.id].finished) == (T0, T0 + dt.timedelta(minutes=1))
    assert last[NEWS.id].trigger == "schedule"


def test_the_history_is_bounded_and_keeps_the_last_pass_of_a_rarely_synced_chat(app: App) -> None:
    log = PassLog(app.store, keep=3)
    nightly = SyncReport(per_chat={NEWS.id: ChatCounts("News", new=7)})
    log.record(nightly, T0, T0, "schedule")
    for minute in range(1, 11):
        when = T0 + dt.timedelta(minutes=minute)
        log.record(SyncReport(per_chat={FRIEND.id: ChatCounts("Friend", new=minute)}), when, when, "schedule")
    assert log.last_by_chat()[NEWS.id].new == 7, "the nightly chat's last pass is kept"
    assert log.last_by_chat()[FRIEND.id].new == 10
    assert [p.chats[0].new for p in log.recent(limit=50) if p.chats[0].chat_id == FRIEND.id] == [10, 9, 8]
    assert log.count() == 4


def test_next_runs_are_kept_replaced_and_forgotten(app: App) -> None:
    PassLog(app.store).replace_next_runs({NEWS.id: T0, FRIEND.id: T0 + dt.timedelta(hours=1)})
    PassLog(app.store).replace_next_runs({NEWS.id: T0 + dt.timedelta(minutes=15)})  # FRIEND no longer scheduled
    assert PassLog(app.store).next_runs() == {NEWS.id: T0 + dt.timedelta(minutes=15)}
    PassLog(app.store).clear_next_runs()  # the agent stopped
    assert PassLog(app.store).next_runs() == {}


def test_status_shows_per_chat_last_pass_next_run_notes_media_and_conflicts(vault: Path, capsys: Any) -> None:
    source = source_with(NEWS, FRIEND)
    attachment = source.add_file(b"x" * 500, kind=MediaKind.DOCUMENT.value, file_name="a.bin")
    source.add_message(Message(NEWS.id, 4, START + 600, text="file", media=(attachment,)))
    source.fail_history(FRIEND.id, ChatDeferred("chat 'Friend': Telegram asks to wait 900 s"))
    run_pass(vault, source)
    with App.open(vault) as app:
        PassLog(app.store).replace_next_runs({NEWS.id: T0 + dt.timedelta(minutes=15)})
        edited = app.store.note_of_message(NEWS.id, 2)
    assert edited is not None
    path = vault / edited.path
    path.write_text(path.read_text(encoding="utf-8").replace("message 2", "my words"), encoding="utf-8")
    run_pass(vault, source_with(NEWS, FRIEND, count=4))  # News: nothing new; Friend: read now
    change_message_template(vault)
    capsys.readouterr()
    assert main(["render", "--vault", str(vault)]) == 0  # finds the edit inside the generated part
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    chats = {c["id"]: c for c in json.loads(capsys.readouterr().out)["chats"]}
    news, friend = chats[NEWS.id], chats[FRIEND.id]
    assert news["last_pass"]["new"] == 0 and news["last_pass"]["trigger"] == "schedule"
    assert news["next_run"] == "2026-03-01T12:15:00+00:00"
    assert news["notes"] == 4 and news["media"] == {"stored": 1}
    assert news["conflicts"] == 1
    assert friend["last_pass"]["new"] == 4 and friend["last_pass"]["errors"] == []
    assert friend["next_run"] is None and friend["conflicts"] == 0
    assert main(["status", "--vault", str(vault)]) == 0
    out = capsys.readouterr().out
    local = dt.datetime(2026, 3, 1, 12, 15, tzinfo=dt.UTC).astimezone().strftime("%m-%d %H:%M")
    assert "next run" in out.replace("\n", " ") or "next" in out
    assert local.split()[1] in out


def test_status_shows_a_chats_errors_from_its_last_pass(vault: Path, capsys: Any) -> None:
    source = source_with(NEWS, FRIEND)
    source.fail_history(FRIEND.id, ChatDeferred("chat 'Friend': Telegram asks to wait 900 s"))
    run_pass(vault, source)
    capsys.readouterr()
    assert main(["status", "--vault", str(vault)]) == 0
    assert "last pass of 'Friend': chat 'Friend': Telegram asks to wait 900 s" in capsys.readouterr().out


def test_sync_and_import_record_their_passes(vault: Path, tmp_path: Path) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    other = tmp_path / "other"
    assert main(["sync", "--vault", str(other), "--simulate", "chats=2,messages=5,media=0,seed=1"]) == 0
    with App.open(vault) as app:
        (imported,) = PassLog(app.store).recent()
    with App.open(other) as app:
        (synced,) = PassLog(app.store).recent()
    assert (imported.trigger, imported.messages, len(imported.chats)) == ("import", 18, 3)
    assert (synced.trigger, synced.messages, len(synced.chats)) == ("sync", 10, 2)
    assert not note_path(vault).exists() and not note_path(other).exists(), "one-shot commands leave it to the agent"


# --- the status note ----------------------------------------------------------------------


def test_the_status_note_lists_recent_passes_with_counts_and_every_problem(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status_note, "held_deletions_by_chat", lambda store: {NEWS.id: 40})
    source = source_with(NEWS, FRIEND)
    source.fail_history(FRIEND.id, ChatDeferred("chat 'Friend': Telegram asks to wait 900 s"))
    run_pass(vault, source)
    with App.open(vault) as app:
        edited = app.store.note_of_message(NEWS.id, 1)
        assert edited is not None
        app.store.record_skipped(NEWS.id, [(9, "an unsupported message")])
    conflicted = vault / edited.path
    conflicted.write_text(conflicted.read_text(encoding="utf-8").replace("message 1", "mine"), encoding="utf-8")
    change_message_template(vault)
    with App.open(vault) as app:
        app.synchronizer.render_all()  # finds the edit: a conflict
        app.record_pass(SyncReport(), T0, T0, "schedule")
    text = note_path(vault).read_text(encoding="utf-8")
    assert "- 2026-03-01 12:00:00, schedule, 60 s: 3 new messages" in text
    assert "    - News: 3 new, 0 edited, 0 deleted" in text
    assert "    - Friend: 0 new, 0 edited, 0 deleted, 1 error" in text
    assert "- Friend (2026-03-01 12:01:00): chat 'Friend': Telegram asks to wait 900 s" in text
    assert "1 note whose generated part was edited" in text and edited.path[:-3] in text
    assert "- 40 deletions held in News until you confirm them" in text
    assert "- 1 message left out: chat 'News': an unsupported message" in text
    assert text.startswith("---\ntobs_status: true\n")


def test_the_status_note_is_written_only_when_something_changed(vault: Path) -> None:
    source = source_with(NEWS)
    run_pass(vault, source)
    note = note_path(vault)
    stamp = note.stat().st_mtime_ns, note.read_bytes()
    clock = FakeClock()
    clock.now = T0 + dt.timedelta(hours=1)
    run_pass(vault, source, clock=clock)  # nothing new
    assert (note.stat().st_mtime_ns, note.read_bytes()) == stamp
    source.add_message(message(NEWS, 4))
    run_pass(vault, source, clock=clock)
    assert "1 new message," in note.read_text(encoding="utf-8")


def test_the_status_note_keeps_the_users_text_outside_its_markers(vault: Path) -> None:
    source = source_with(NEWS)
    run_pass(vault, source)
    note = note_path(vault)
    note.write_text("My own heading\n\n" + note.read_text(encoding="utf-8") + "\nmy notes below\n", encoding="utf-8")
    source.add_message(message(NEWS, 4))
    run_pass(vault, source)
    text = note.read_text(encoding="utf-8")
    assert "1 new message," in text
    assert "My own heading" in text and text.endswith("\nmy notes below\n")


def test_an_edit_inside_the_status_notes_markers_is_left_alone_and_listed(vault: Path, capsys: Any) -> None:
    source = source_with(NEWS)
    run_pass(vault, source)
    note = note_path(vault)
    edited = note.read_text(encoding="utf-8").replace("# tobs-sync status", "# my status")
    note.write_text(edited, encoding="utf-8")
    source.add_message(message(NEWS, 4))
    run_pass(vault, source)
    assert note.read_text(encoding="utf-8") == edited
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    assert [c["path"] for c in json.loads(capsys.readouterr().out)["conflicts"]] == [DEFAULT_STATUS_NOTE]


def test_the_status_note_path_is_configurable_and_empty_turns_it_off(vault: Path, tmp_path: Path) -> None:
    config = vault / ".tobs" / "config.toml"
    config.write_text('[vault]\ntimezone = "UTC"\n[status]\nnote = "Inbox/Sync report.md"\n', encoding="utf-8")
    run_pass(vault, source_with(NEWS))
    assert (vault / "Inbox" / "Sync report.md").is_file() and not note_path(vault).exists()
    off = tmp_path / "off"
    (off / ".tobs").mkdir(parents=True)
    (off / ".tobs" / "config.toml").write_text('[status]\nnote = ""\n', encoding="utf-8")
    run_pass(off, source_with(NEWS))
    assert not [p for p in off.rglob("*.md") if "status" in p.name.lower()]


def test_a_re_render_leaves_the_status_note_alone(vault: Path, capsys: Any) -> None:
    run_pass(vault, source_with(NEWS))
    before = note_path(vault).stat().st_mtime_ns
    assert main(["render", "--vault", str(vault)]) == 0
    assert note_path(vault).stat().st_mtime_ns == before
    assert main(["render", "--vault", str(vault), "--force", DEFAULT_STATUS_NOTE]) == 1
    assert "is not rendered from messages" in capsys.readouterr().err


def test_a_status_note_path_taken_by_a_users_own_note_is_not_overwritten(vault: Path) -> None:
    mine = note_path(vault)
    mine.parent.mkdir(parents=True)
    mine.write_text("my own note\n", encoding="utf-8")
    run_pass(vault, source_with(NEWS))
    assert mine.read_text(encoding="utf-8") == "my own note\n"


def test_hostile_chat_titles_and_errors_stay_inert_in_the_status_note(vault: Path) -> None:
    evil = Chat(-1009, hostile("Evil <% tp.system.clipboard() %> Chat"), ChatKind.SUPERGROUP.value)
    friend = Chat(77, hostile("Mallory"), ChatKind.USER.value)
    source = source_with(evil, friend)
    source.fail_history(friend.id, ChatDeferred(hostile("flood") + "\n```dataviewjs\ndv.paragraph('x')\n```"))
    run_pass(vault, source)
    note = note_path(vault)
    text = note.read_text(encoding="utf-8")
    assert "Evil" in text and "Mallory" in text and "flood" in text, "the hostile text is in the note"
    assert scan_note(note, vault) == []


def test_record_pass_reports_the_outcome_of_the_note(app: App) -> None:
    report = SyncReport(messages=2, per_chat={NEWS.id: ChatCounts("News", new=2)})
    app.record_pass(report, T0, T0 + dt.timedelta(seconds=5), "live")
    note = status_note.StatusNote(DEFAULT_STATUS_NOTE, app.vault, app.store, dt.UTC)
    assert note.update() == Outcome.UNCHANGED
    assert "- 2026-03-01 12:00:00, live, 5 s: 2 new messages" in note_path(app.vault.root).read_text(encoding="utf-8")


def test_a_pass_stopped_by_a_template_error_is_recorded_and_shown(vault: Path, capsys: Any) -> None:
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    (templates / "message.md").write_text("{{ message.text | nosuchfilter }}\n", encoding="utf-8")
    with pytest.raises(TemplateError):
        run_pass(vault, source_with(NEWS))
    text = note_path(vault).read_text(encoding="utf-8")
    assert "- The last pass stopped: template " in text and "No filter named 'nosuchfilter'" in text
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    (last,) = json.loads(capsys.readouterr().out)["recent_passes"]
    assert last["trigger"] == "schedule" and "No filter named 'nosuchfilter'" in last["failed"][0]
    assert main(["status", "--vault", str(vault)]) == 0
    out = capsys.readouterr().out
    assert "last pass: " in out and "(schedule, 60 s), 0 new messages" in out
    assert "No filter named 'nosuchfilter'" in out


def test_errors_are_json_with_the_json_log_format(tmp_path: Path, capsys: Any) -> None:
    assert main(["status", "--vault", str(tmp_path), "--log-format", "json"]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    error = json.loads(line)
    assert error["level"] == "error" and "is not a tobs-sync vault yet" in error["message"]
