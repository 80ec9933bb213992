"""Desktop export -> vault, end to end: idempotence, increments, bad input, user edits, crashes."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_EXPORT
from crashing import CrashingVault, install
from vaultcheck import check_vault, vault_differences, vault_files

from tobs_sync import rerender
from tobs_sync.app import App, import_export
from tobs_sync.cli import main
from tobs_sync.config import load_settings
from tobs_sync.errors import ExportFormatError, TemplateError, VaultError
from tobs_sync.render import Renderer
from tobs_sync.sources.tdesktop import DesktopExport
from tobs_sync.store_rows import MESSAGE_NOTE


def run_import(vault: Path, export: Path) -> Any:
    report, _counts = asyncio.run(import_export(vault, export))
    return report


def snapshot(vault: Path) -> dict[str, tuple[int, int, bytes]]:
    """Content, inode and mtime of every file: a rewrite changes at least the mtime or inode."""
    return {
        rel: ((vault / rel).stat().st_ino, (vault / rel).stat().st_mtime_ns, data)
        for rel, data in vault_files(vault).items()
    }


def write_export(folder: Path, data: dict[str, Any], media_from: Path = SAMPLE_EXPORT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("photos", "files"):
        if (media_from / sub).is_dir() and not (folder / sub).exists():
            shutil.copytree(media_from / sub, folder / sub)
    (folder / "result.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def sample_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLE_EXPORT / "result.json").read_text(encoding="utf-8"))
    return data


def test_sample_import_writes_valid_notes_whose_links_resolve(vault: Path) -> None:
    report = run_import(vault, SAMPLE_EXPORT)
    assert report.chats == 3
    assert report.messages == 18
    checked = check_vault(vault)
    assert checked.broken == []
    assert checked.links > 20
    # 18 messages, 2 of them... every message has its own note, plus one note per chat
    assert len(checked.notes) == 18 + 3
    for meta in checked.metadata.values():
        assert isinstance(meta["tg_chat_id"], int)
        assert meta["tags"][0] == "telegram"


def test_identity_keys_use_marked_peer_ids(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    meta = check_vault(vault).metadata
    assert meta[Path("Telegram/Field Notes/2024-03-01 2.md")]["tg_chat_id"] == -1001777000001
    assert meta[Path("Telegram/Sam Gardner/2024-03-03 20.md")]["tg_chat_id"] == 5550002
    assert meta[Path("Telegram/Field Notes/2024-03-01 2.md")]["tg_message_id"] == 2


def test_second_import_rewrites_nothing(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    before = snapshot(vault)
    report = run_import(vault, SAMPLE_EXPORT)
    assert report.messages == 0
    assert report.notes_written == 0
    assert snapshot(vault) == before


def test_longer_export_writes_only_the_new_notes(vault: Path, tmp_path: Path) -> None:
    full = sample_data()
    short = copy.deepcopy(full)
    for chat in short["chats"]["list"]:
        chat["messages"] = chat["messages"][:-2]
    run_import(vault, write_export(tmp_path / "short", short))
    before = snapshot(vault)
    report = run_import(vault, write_export(tmp_path / "full", full))
    after = snapshot(vault)
    assert report.messages == 6
    new = set(after) - set(before)
    new_notes = {p for p in new if not p.startswith("Telegram/_attachments/")}
    assert len(new_notes) == 6
    changed = {p for p in before if before[p] != after[p]}
    # Only the chat index notes (their counts and latest lists) change; no message note is rewritten.
    assert changed == {"Telegram/Field Notes/Field Notes.md", "Telegram/Allotment Crew/Allotment Crew.md",
                       "Telegram/Sam Gardner/Sam Gardner.md"}


def test_same_picture_in_two_chats_is_stored_once(vault: Path) -> None:
    _report, counts = asyncio.run(import_export(vault, SAMPLE_EXPORT))
    assert counts.stored == 4  # three pictures and a sticker
    assert counts.deduplicated == 1
    attachments = sorted(p.name for p in (vault / "Telegram" / "_attachments").iterdir())
    assert len(attachments) == 4
    forwarded = (vault / "Telegram/Allotment Crew/2024-03-02 11.md").read_text(encoding="utf-8")
    original = (vault / "Telegram/Field Notes/2024-03-01 3.md").read_text(encoding="utf-8")
    embed = next(line for line in original.splitlines() if line.startswith("![["))
    assert embed in forwarded


def test_missing_media_is_recorded_and_never_embedded(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    note = (vault / "Telegram/Allotment Crew/2024-03-02 13.md").read_text(encoding="utf-8")
    assert "![[" not in note
    assert "File not included" in note
    with App.open(vault) as app:
        assert app.store.media_status_counts()["unavailable"] == 1


def test_hostile_message_text_is_shown_literally(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    path = vault / "Telegram/Allotment Crew/2024-03-02 12.md"
    meta = check_vault(vault).metadata[Path("Telegram/Allotment Crew/2024-03-02 12.md")]
    assert "title" not in meta
    body = path.read_text(encoding="utf-8").split("\n---\n", 1)[1]
    assert "<%" not in body
    assert "[[Secret note]]" not in body.replace("\\[\\[", "")
    assert not any(line.startswith(("```", "---", "# ")) for line in body.splitlines())


def test_malformed_export_changes_nothing_in_the_vault(vault: Path, tmp_path: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    before = snapshot(vault)
    state_before = (vault / ".tobs" / "state.db").read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    text = (SAMPLE_EXPORT / "result.json").read_text(encoding="utf-8")
    (broken / "result.json").write_text(text[: len(text) * 2 // 3], encoding="utf-8")
    assert main(["import", str(broken), "--vault", str(vault)]) == 1
    assert snapshot(vault) == before
    assert (vault / ".tobs" / "state.db").read_bytes() == state_before


def test_malformed_export_error_names_file_and_position(vault: Path, tmp_path: Path, capsys: Any) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "result.json").write_text('{\n "name": "x",\n "type": "personal_chat" "id": 1}', encoding="utf-8")
    assert main(["import", str(broken), "--vault", str(vault)]) == 1
    err = capsys.readouterr().err
    assert "result.json" in err
    assert "line 3" in err
    assert not (vault / "Telegram").exists()


def test_template_error_touches_no_note(vault: Path, capsys: Any) -> None:
    run_import(vault, SAMPLE_EXPORT)
    before = snapshot(vault)
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    (templates / "message.md").write_text("{{ message.body }}\n{{ message.no_such_thing }}\n", encoding="utf-8")
    assert main(["render", "--vault", str(vault)]) == 1
    err = capsys.readouterr().err
    assert "message.md, line 2" in err
    after = snapshot(vault)
    assert {k: v for k, v in after.items() if "_templates" not in k} == before


def test_template_syntax_error_stops_an_import_before_any_write(vault: Path) -> None:
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    (templates / "chat.md").write_text("{% for %}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"chat\.md, line 1"):
        run_import(vault, SAMPLE_EXPORT)
    assert not any(p.suffix == ".md" for p in vault.rglob("*") if "_templates" not in p.parts)


def test_render_after_a_template_change_writes_only_changed_notes(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    before = snapshot(vault)
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    builtin = (Path(__file__).parents[1] / "templates" / "chat.md").read_text(encoding="utf-8")
    (templates / "chat.md").write_text(builtin.replace("## Latest messages", "## Recent"), encoding="utf-8")
    with App.open(vault) as app:
        report = app.synchronizer.render_all()
    assert report.notes_written == 3
    after = snapshot(vault)
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {"Telegram/Field Notes/Field Notes.md", "Telegram/Allotment Crew/Allotment Crew.md",
                       "Telegram/Sam Gardner/Sam Gardner.md"}
    with App.open(vault) as app:
        assert app.synchronizer.render_all().notes_written == 0


def test_user_edited_note_is_never_overwritten_and_listed_as_conflict(vault: Path, capsys: Any) -> None:
    run_import(vault, SAMPLE_EXPORT)
    edited = vault / "Telegram/Field Notes/2024-03-01 2.md"
    mine = edited.read_text(encoding="utf-8").replace("%% tobs:end %%", "My own thoughts on this.\n%% tobs:end %%")
    edited.write_text(mine, encoding="utf-8")
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    builtin = (Path(__file__).parents[1] / "templates" / "message.md").read_text(encoding="utf-8")
    (templates / "message.md").write_text(builtin + "\nRendered by tobs-sync.\n", encoding="utf-8")
    assert main(["render", "--vault", str(vault)]) == 0
    assert edited.read_text(encoding="utf-8") == mine
    assert "Rendered by tobs-sync." in (vault / "Telegram/Field Notes/2024-03-01 3.md").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [c["path"] for c in status["conflicts"]] == ["Telegram/Field Notes/2024-03-01 2.md"]
    assert status["conflicts"][0]["message_ids"] == [2]


def test_reverting_an_edit_clears_the_conflict(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    note = vault / "Telegram/Field Notes/2024-03-01 2.md"
    original = note.read_bytes()
    note.write_bytes(original.replace(b"%% tobs:end %%", b"edit\n%% tobs:end %%"))  # inside the generated part
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    builtin = (Path(__file__).parents[1] / "templates" / "message.md").read_text(encoding="utf-8")
    (templates / "message.md").write_text(builtin + "\nv2\n", encoding="utf-8")
    with App.open(vault) as app:
        assert app.synchronizer.render_all().conflicts == ["Telegram/Field Notes/2024-03-01 2.md"]
    note.write_bytes(original)
    with App.open(vault) as app:
        report = app.synchronizer.render_all()
        assert report.conflicts == []
        assert report.notes_written == 1
        assert app.store.conflicts() == []
    assert note.read_text(encoding="utf-8").endswith("v2\n\n%% tobs:end %%\n")


def test_deleted_note_is_restored_by_render(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    note = vault / "Telegram/Field Notes/2024-03-01 2.md"
    original = note.read_bytes()
    note.unlink()
    with App.open(vault) as app:
        assert app.synchronizer.render_all().notes_written == 1
    assert note.read_bytes() == original


HOSTILE_TITLES = ["../../.obsidian/x", "CON", "a/b:c*?", "", "😀" * 100, "Same", "same"]


def test_hostile_chat_titles_stay_inside_the_vault_and_distinct(vault: Path, tmp_path: Path) -> None:
    chats = []
    for number, title in enumerate(HOSTILE_TITLES, start=1):
        chats.append({
            "name": title,
            "type": "private_group",
            "id": 900 + number,
            "messages": [{"id": number, "type": "message", "date_unixtime": str(1709284500 + number),
                          "from": title, "from_id": f"user{number}", "text": f"hello {number}"}],
        })
    export = write_export(tmp_path / "hostile", {"chats": {"list": chats}})
    run_import(vault, export)
    checked = check_vault(vault)
    assert checked.broken == []
    folders = {p.parts[1] for p in checked.notes}
    assert len(folders) == len(HOSTILE_TITLES)
    assert not (vault / ".obsidian").exists()
    assert not (tmp_path / ".obsidian").exists()
    for folder in folders:
        assert len(folder.encode("utf-8")) <= 200
        assert folder.strip() and not folder.startswith(".")
        assert folder.upper() != "CON"
        assert not set(folder) & set('\\/:*?"<>|#^[]')
    for path in vault.rglob("*"):
        assert path.resolve().is_relative_to(vault.resolve())


def test_chats_named_like_the_templates_or_attachments_folder_get_their_own(vault: Path, tmp_path: Path) -> None:
    titles = ["_templates", "_Attachments", "Notes"]
    chats = [
        {"name": title, "type": "private_group", "id": 700 + number,
         "messages": [{"id": 1, "type": "message", "date_unixtime": "1709284500", "from": "Ann", "from_id": "user1",
                       "text": f"in {title}"}]}
        for number, title in enumerate(titles, start=1)
    ]
    run_import(vault, write_export(tmp_path / "export", {"chats": {"list": chats}}))
    folders = sorted(p.name for p in (vault / "Telegram").iterdir())
    assert folders == ["Notes", "_Attachments (702)", "_templates (701)"]
    assert check_vault(vault).broken == []


def test_unknown_fields_and_types_are_kept_and_rendered_as_text(vault: Path, tmp_path: Path) -> None:
    chat = {"name": "Future", "type": "personal_chat", "id": 77, "messages": [{
        "id": 1, "type": "message", "date_unixtime": "1709284500", "from": "A", "from_id": "user77",
        "text": [{"type": "hologram", "text": "3D text"}, " and more"],
        "file": "files/reading-list.md", "media_type": "hologram_video", "mime_type": "video/x-hologram",
        "quantum_field": {"spin": "up"},
    }]}
    run_import(vault, write_export(tmp_path / "future", chat))
    text = (vault / "Telegram/Future/2024-03-01 1.md").read_text(encoding="utf-8")
    assert "3D text and more" in text
    assert "quantum\\_field: {spin: up}" in text
    with App.open(vault) as app:
        message = app.store.message(77, 1)
    assert message is not None
    assert message.extra["quantum_field"] == {"spin": "up"}
    assert message.entities[0].kind == "hologram"
    assert message.media[0].kind == "hologram_video"
    assert check_vault(vault).broken == []


def test_markdown_attachments_cannot_become_notes(vault: Path) -> None:
    run_import(vault, SAMPLE_EXPORT)
    attachments = {p.name for p in (vault / "Telegram" / "_attachments").iterdir()}
    assert "reading-list.md.txt" in attachments
    assert not any(name.endswith(".md") for name in attachments)


@pytest.mark.parametrize("renames_before_crash", [0, 1, 3, 7, 12, 18, 21])
def test_crash_at_any_write_then_rerun_gives_the_same_vault(
    vault: Path, tmp_path: Path, renames_before_crash: int
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(vault, reference)
    run_import(reference, SAMPLE_EXPORT)

    async def crashing_run() -> None:
        async with DesktopExport(SAMPLE_EXPORT, local_timezone=load_settings(vault).timezone) as source:
            with App.open(vault) as app:
                install(app, CrashingVault(vault, renames_before_crash))
                await app.sync_source(source)

    with pytest.raises(SystemExit):
        asyncio.run(crashing_run())
    run_import(vault, SAMPLE_EXPORT)
    assert not (difference := vault_differences(vault, reference)), difference
    assert check_vault(vault).broken == []


def test_vault_that_is_a_file_is_refused(tmp_path: Path, capsys: Any) -> None:
    file = tmp_path / "vault"
    file.write_text("x")
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(file)]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_symlinked_attachment_folder_out_of_the_vault_is_refused(vault: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (vault / "Telegram").mkdir()
    os.symlink(outside, vault / "Telegram" / "_attachments")
    with pytest.raises(VaultError):
        run_import(vault, SAMPLE_EXPORT)
    assert list(outside.iterdir()) == []


def test_every_external_export_imports_into_a_valid_vault(vault: Path, external: Path) -> None:
    exports = sorted(external.glob("tdesktop-*.json"))
    assert len(exports) >= 5
    for export in exports:
        run_import(vault, export)
    checked = check_vault(vault)
    assert checked.broken == []
    with App.open(vault) as app:
        chats = {state.chat.id: state for state in app.store.chat_states()}
        # the 2020 and 2021 exports of one channel (integer vs prefixed ids) are one chat
        assert chats[-1001292077344].cursor == 26
        # every cached message sits in exactly one note
        members = [mid for row in app.store.notes(kind="message") for mid in row.message_ids]
        assert len(members) == app.store.message_count()
    assert len(checked.notes) > 150


def test_invalid_external_export_is_refused_without_touching_the_vault(vault: Path, external: Path) -> None:
    with pytest.raises(ExportFormatError, match=r"tdesktop-joweich-chat-miner-minimal-full-export\.json") as error:
        run_import(vault, external / "invalid" / "tdesktop-joweich-chat-miner-minimal-full-export.json")
    assert "message 1" in str(error.value)
    assert not (vault / "Telegram").exists()


class CountingRenderer(Renderer):
    """A renderer of the given templates that counts its renders."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, auto_reload=False)
        self.renders = 0

    def render(self, *args: Any, **kwargs: Any) -> bytes:
        self.renders += 1
        return super().render(*args, **kwargs)


@pytest.mark.parametrize("kept_bytes", [rerender.KEPT_RENDERS_BYTES, 0], ids=["kept", "over the budget"])
def test_a_template_change_renders_each_note_once_unless_over_the_kept_bytes(
    vault: Path, monkeypatch: pytest.MonkeyPatch, kept_bytes: int
) -> None:
    run_import(vault, SAMPLE_EXPORT)
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True, exist_ok=True)
    builtin = (Path(__file__).parents[1] / "templates" / "message.md").read_text(encoding="utf-8")
    (templates / "message.md").write_text(builtin + "\nv2\n", encoding="utf-8")
    monkeypatch.setattr(rerender, "KEPT_RENDERS_BYTES", kept_bytes)
    with App.open(vault) as app:
        counting = CountingRenderer(templates)
        app.synchronizer.use_renderer(counting)
        report = app.synchronizer.render_all()
        message_notes = sum(1 for row in app.store.notes(kind=MESSAGE_NOTE))
    assert report.notes_written == message_notes  # every message note changed, no chat note did
    renders_per_changed_note = 1 if kept_bytes else 2
    assert counting.renders == report.notes_written * renders_per_changed_note + report.notes_unchanged
