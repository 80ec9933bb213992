"""The user's part of a note survives every re-render; only an edit of the generated part is a conflict.

End to end through the real import, render and status commands on the sample export.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from conftest import PROJECT, SAMPLE_EXPORT
from test_import import sample_data, write_export

from tobs_sync.app import App, import_export
from tobs_sync.cli import main
from tobs_sync.merge import BEGIN_MARKER, END_MARKER
from tobs_sync.vault import sha256_hex

MESSAGE_NOTE = "Telegram/Field Notes/2024-03-01 3.md"
CHAT_NOTE = "Telegram/Field Notes/Field Notes.md"
FIELD_NOTES = -1001777000001
ABOVE = "My intro, written in Obsidian.\n\n"
BELOW = "\n## My notes\n\n- [[Somewhere else]]\n- a thought %% with a comment %%\n"


def run_import(vault: Path, export: Path) -> None:
    asyncio.run(import_export(vault, export))


def add_user_part(path: Path) -> None:
    """Text above and below the markers and a property of the user's own (added last, as Obsidian does)."""
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("\n---\n")
    text = head + "\nmood: sunny" + sep + rest
    text = text.replace(f"{BEGIN_MARKER}\n", ABOVE + f"{BEGIN_MARKER}\n", 1)
    path.write_text(text + BELOW, encoding="utf-8")


def assert_user_part_kept(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert "\nmood: sunny\n" in text
    head, _, rest = text.partition(f"{BEGIN_MARKER}\n")
    assert head.endswith("---\n\n" + ABOVE)
    assert rest.partition(f"{END_MARKER}\n")[2] == BELOW
    return rest.partition(f"{END_MARKER}\n")[0]


def change_template(vault: Path, line: str) -> None:
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True, exist_ok=True)
    for name in ("message.md", "chat.md"):
        builtin = (PROJECT / "templates" / name).read_text(encoding="utf-8")
        (templates / name).write_text(builtin + f"\n{line}\n", encoding="utf-8")


def status(vault: Path, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_user_text_and_property_survive_a_message_edit_a_template_change_and_a_new_sync(
    vault: Path, tmp_path: Path, capsys: Any
) -> None:
    run_import(vault, SAMPLE_EXPORT)
    note, chat_note = vault / MESSAGE_NOTE, vault / CHAT_NOTE
    add_user_part(note)
    add_user_part(chat_note)

    with App.open(vault) as app:  # the message is edited in Telegram and the cache learns of it
        message = app.store.message(FIELD_NOTES, 3)
        assert message is not None
        with app.store.transaction():
            app.store.put_messages([replace(message, text="Evening sky, edited.", edited=message.date + 600)])
        report = app.synchronizer.render_all()
        assert report.conflicts == [] and report.notes_written == 1
    region = assert_user_part_kept(note)
    assert "Evening sky, edited." in region and "Morning sky" not in region
    assert "\nedited: 2024-03-01T" in note.read_text(encoding="utf-8")

    change_template(vault, "Rendered by template v2.")
    assert main(["render", "--vault", str(vault)]) == 0
    assert "Rendered by template v2." in assert_user_part_kept(note)
    assert "Rendered by template v2." in assert_user_part_kept(chat_note)

    count_before = int(re.search(r"(\d+) messages", assert_user_part_kept(chat_note)).group(1))  # type: ignore[union-attr]
    longer = copy.deepcopy(sample_data())
    field_notes = next(c for c in longer["chats"]["list"] if c["id"] == 1777000001)
    newest = {key: value for key, value in field_notes["messages"][-1].items() if key not in ("photo", "file")}
    newest.update(id=99, text="A later message.", text_entities=[{"type": "plain", "text": "A later message."}])
    field_notes["messages"].append(newest)
    run_import(vault, write_export(tmp_path / "longer", longer))
    assert "Evening sky, edited." in assert_user_part_kept(note)
    chat_region = assert_user_part_kept(chat_note)
    assert f"{count_before + 1} messages" in chat_region and "Rendered by template v2." in chat_region
    assert status(vault, capsys)["conflicts"] == []


def test_an_edit_inside_the_region_is_a_conflict_until_render_force_replaces_it_keeping_a_backup(
    vault: Path, capsys: Any
) -> None:
    run_import(vault, SAMPLE_EXPORT)
    note = vault / MESSAGE_NOTE
    add_user_part(note)
    note.write_text(note.read_text(encoding="utf-8").replace("Morning sky", "Misty sky"), encoding="utf-8")
    edited = note.read_bytes()

    change_template(vault, "Rendered by template v2.")
    assert main(["render", "--vault", str(vault)]) == 0
    assert note.read_bytes() == edited, "a conflict leaves the note byte for byte"
    assert [c["path"] for c in status(vault, capsys)["conflicts"]] == [MESSAGE_NOTE]

    assert main(["render", "--vault", str(vault), "--force", MESSAGE_NOTE]) == 0
    region = assert_user_part_kept(note)
    assert "Morning sky" in region and "Rendered by template v2." in region and "Misty" not in region
    backups = list((vault / ".tobs" / "backups").rglob("*.md"))
    assert len(backups) == 1 and backups[0].read_bytes() == edited
    assert backups[0].name.startswith("2024-03-01 3.")
    assert status(vault, capsys)["conflicts"] == []


def test_render_force_accepts_the_path_on_disk_and_rejects_a_file_it_did_not_write(
    vault: Path, capsys: Any
) -> None:
    run_import(vault, SAMPLE_EXPORT)
    note = vault / MESSAGE_NOTE
    note.write_text("all mine now\n", encoding="utf-8")  # markers gone: replaced whole, backup kept
    assert main(["render", "--vault", str(vault), "--force", str(note)]) == 0
    assert BEGIN_MARKER in note.read_text(encoding="utf-8")
    assert [p.read_text(encoding="utf-8") for p in (vault / ".tobs" / "backups").rglob("*.md")] == ["all mine now\n"]
    capsys.readouterr()
    assert main(["render", "--vault", str(vault), "--force", "Telegram/not a note.md"]) == 1
    assert "not a note tobs-sync wrote" in capsys.readouterr().err


def test_obsidian_rewriting_a_link_in_a_property_keeps_the_note_updating(vault: Path, capsys: Any) -> None:
    run_import(vault, SAMPLE_EXPORT)
    note = vault / MESSAGE_NOTE
    text = note.read_text(encoding="utf-8")
    old_link = "chat: '[[Telegram/Field Notes/Field Notes|Field Notes]]'"
    assert old_link in text
    note.write_text(text.replace(old_link, "chat: '[[Archive/Field Notes|Field Notes]]'"), encoding="utf-8")

    change_template(vault, "Rendered by template v2.")
    assert main(["render", "--vault", str(vault)]) == 0
    text = note.read_text(encoding="utf-8")
    assert "chat: '[[Archive/Field Notes|Field Notes]]'" in text
    assert "Rendered by template v2." in text
    assert status(vault, capsys)["conflicts"] == []


def test_a_note_without_markers_that_the_user_edited_is_a_conflict_with_a_clear_reason(
    vault: Path, capsys: Any
) -> None:
    """A note edited before the markers existed: nothing to merge with, so it is left and listed."""
    run_import(vault, SAMPLE_EXPORT)
    note = vault / MESSAGE_NOTE
    text = note.read_text(encoding="utf-8")
    without = text.replace(f"{BEGIN_MARKER}\n\n", "").replace(f"\n\n{END_MARKER}", "") + "my words\n"
    note.write_text(without, encoding="utf-8")
    change_template(vault, "Rendered by template v2.")
    assert main(["render", "--vault", str(vault)]) == 0
    assert note.read_text(encoding="utf-8") == without
    assert [c["path"] for c in status(vault, capsys)["conflicts"]] == [MESSAGE_NOTE]
    assert main(["status", "--vault", str(vault)]) == 0
    assert "render --force PATH" in capsys.readouterr().out


def test_a_note_written_before_the_markers_existed_is_rewritten_once_with_them(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    note = vault / MESSAGE_NOTE
    old = note.read_text(encoding="utf-8").replace(f"{BEGIN_MARKER}\n\n", "").replace(f"\n\n{END_MARKER}", "")
    note.write_text(old, encoding="utf-8")
    with App.open(vault) as app:  # the state an older tobs-sync left: this text, and no base
        row = app.store.note_at(MESSAGE_NOTE)
        assert row is not None
        with app.store.transaction() as db:
            db.execute("DELETE FROM note_bases")
        app.store.commit_notes([replace(row, content_hash=sha256_hex(old.encode()))])
        report = app.synchronizer.render_all()
        assert (report.notes_written, report.conflicts) == (1, [])
        assert note.read_text(encoding="utf-8").count(END_MARKER) == 1
        assert app.synchronizer.render_all().notes_written == 0


def test_a_second_render_rewrites_no_note_holding_user_text(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    add_user_part(vault / MESSAGE_NOTE)
    change_template(vault, "Rendered by template v2.")
    with App.open(vault) as app:
        assert app.synchronizer.render_all().conflicts == []
        mtime = (vault / MESSAGE_NOTE).stat().st_mtime_ns
        assert app.synchronizer.render_all().notes_written == 0
    assert (vault / MESSAGE_NOTE).stat().st_mtime_ns == mtime
    assert_user_part_kept(vault / MESSAGE_NOTE)
