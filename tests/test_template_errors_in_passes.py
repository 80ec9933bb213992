"""What a template error leaves behind in ``import`` and ``sync``: the guarantee the README states.

A template error stops the pass. Notes are written batch by batch (up to 100 messages of one
chat), each batch rendered in full before any of its notes is written: so the batch in which
the error happens writes no note, while the chats and batches before it stay written with their
cursors. After fixing the template, running again continues from there, and the vault is the
one a clean run makes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter
import pytest
from vaultcheck import vault_differences, vault_files

from tobs_sync.app import App, import_export, sync_telegram
from tobs_sync.config import load_settings
from tobs_sync.errors import TemplateError
from tobs_sync.render import CHAT_TEMPLATE, MESSAGE_TEMPLATE, builtin_templates_dir
from tobs_sync.sim import SimulatedTelegram, parse_spec
from tobs_sync.sources.base import DEFAULT_BATCH_SIZE
from tobs_sync.sources.telegram import TelegramSource
from tobs_sync.store_schema import NO_CURSOR

TEMPLATES = "Telegram/_templates"
SIMULATION = "chats=2,messages=120,media=0.1,seed=1"


def new_vault(root: Path) -> Path:
    (root / ".tobs").mkdir(parents=True)
    (root / ".tobs" / "config.toml").write_text('[vault]\ntimezone = "UTC"\n', encoding="utf-8")
    return root


def use_template(vault: Path, text: str, *, chat: str | None = None) -> None:
    folder = vault / TEMPLATES
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MESSAGE_TEMPLATE).write_text(text, encoding="utf-8")
    if chat is not None:
        (folder / CHAT_TEMPLATE).write_text(chat, encoding="utf-8")


def builtin_message_template() -> str:
    return (builtin_templates_dir() / MESSAGE_TEMPLATE).read_text(encoding="utf-8")


def failing_template(condition: str) -> tuple[str, int]:
    """The built-in message template plus a last line that fails (strftime(7)) when ``condition``
    holds; otherwise it renders exactly what the built-in one does. Returns the text and that line."""
    text = builtin_message_template()
    if not text.endswith("\n"):
        text += "\n"
    line = text.count("\n") + 1
    return text + f"{{% if {condition} %}}{{{{ message.date|strftime(7) }}}}{{% endif %}}\n", line


@dataclass(frozen=True)
class Note:
    path: str
    chat_id: int
    message_ids: tuple[int, ...]  # () for a chat's index note


def notes_of(vault: Path) -> list[Note]:
    notes = []
    for path, data in vault_files(vault).items():
        if not path.endswith(".md") or path.startswith(TEMPLATES):
            continue
        meta = frontmatter.loads(data.decode("utf-8")).metadata
        ids = meta.get("tg_message_id", ())
        notes.append(Note(path, meta["tg_chat_id"], tuple(ids) if isinstance(ids, list) else (ids,) if ids else ()))
    return notes


def batch_of(chat_message_ids: list[int], message_id: int) -> int:
    """Which batch of its chat a message is read in (the source yields batches of 100, oldest first)."""
    return sorted(chat_message_ids).index(message_id) // DEFAULT_BATCH_SIZE


def ids_by_chat(notes: Iterable[Note]) -> dict[int, list[int]]:
    by_chat: dict[int, list[int]] = {}
    for note in notes:
        by_chat.setdefault(note.chat_id, []).extend(note.message_ids)
    return by_chat


def expected_after_error(
    reference: list[Note], chats_done: set[int], failing_chat: int, failing_batch: int
) -> set[str]:
    """Every note of the chats finished before the failing one; of the failing chat, the notes
    started in a batch before the failing one; nothing else (no index note of an unfinished chat)."""
    ids = ids_by_chat(reference)
    expected = set()
    for note in reference:
        started_before = note.chat_id == failing_chat and note.message_ids and (
            batch_of(ids[failing_chat], min(note.message_ids)) < failing_batch
        )
        if note.chat_id in chats_done or started_before:
            expected.add(note.path)
    return expected


def cursors(vault: Path) -> dict[int, int]:
    with App.open(vault) as app:
        return {state.chat.id: state.cursor for state in app.store.chat_states()}


# --- import -----------------------------------------------------------------------------------

def chat_export(chat_id: int, name: str, count: int) -> dict[str, Any]:
    messages = []
    for i in range(1, count + 1):
        message: dict[str, Any] = {
            "id": i, "type": "message", "date": "2024-03-01T09:00:00", "date_unixtime": str(1_709_283_600 + 60 * i),
            "from": "Robin", "from_id": "user5550001", "text": f"{name} message {i}", "text_entities": [],
        }
        if i % 40 == 0:
            message["reply_to_message_id"] = i - 25
        messages.append(message)
    return {"name": name, "type": "private_supergroup", "id": chat_id, "messages": messages}


def write_two_chat_export(folder: Path) -> Path:
    folder.mkdir(parents=True)
    # Beta is exported (so read) first.
    data = {"chats": {"list": [chat_export(702, "Beta", 30), chat_export(701, "Alpha", 130)]}}
    (folder / "result.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def run_import(vault: Path, export: Path) -> None:
    asyncio.run(import_export(vault, export))


@pytest.mark.parametrize(
    ("failing_title", "failing_id"),
    [
        pytest.param("Beta", 14, id="14th-message-of-the-first-chat"),
        pytest.param("Alpha", 114, id="second-batch-of-the-second-chat"),
    ],
)
def test_import_template_error_writes_no_note_of_its_batch_and_a_rerun_completes_the_vault(
    tmp_path: Path, failing_title: str, failing_id: int
) -> None:
    export = write_two_chat_export(tmp_path / "export")
    reference = new_vault(tmp_path / "reference")
    use_template(reference, builtin_message_template())
    run_import(reference, export)
    reference_notes = notes_of(reference)
    chat_ids = {title: next(n.chat_id for n in reference_notes if n.path.startswith(f"Telegram/{title}/"))
                for title in ("Alpha", "Beta")}
    beta, alpha, failing_chat = chat_ids["Beta"], chat_ids["Alpha"], chat_ids[failing_title]
    assert {chat: len(ids) for chat, ids in ids_by_chat(reference_notes).items()} == {beta: 30, alpha: 130}
    condition = f"chat.title == {failing_title!r} and message.id == {failing_id}"

    vault = new_vault(tmp_path / "vault")
    text, line = failing_template(condition)
    use_template(vault, text)
    with pytest.raises(TemplateError) as error:
        run_import(vault, export)
    assert f"message.md, line {line}: TypeError" in str(error.value)

    failing_batch = batch_of(ids_by_chat(reference_notes)[failing_chat], failing_id)
    chats_done = {beta} if failing_chat == alpha else set()
    expected = expected_after_error(reference_notes, chats_done, failing_chat, failing_batch)
    written = {path: data for path, data in vault_files(vault).items() if not path.startswith(TEMPLATES)}
    assert set(written) == expected
    assert all(written[path] == (reference / path).read_bytes() for path in written)
    done_before = {beta: 30} if failing_chat == alpha else {}
    assert {chat: cursor for chat, cursor in cursors(vault).items() if cursor != NO_CURSOR} == done_before | (
        {alpha: DEFAULT_BATCH_SIZE} if failing_batch else {}
    )

    use_template(vault, builtin_message_template())
    run_import(vault, export)
    assert vault_differences(vault, reference) == ""


# --- sync -------------------------------------------------------------------------------------


def run_sync(vault: Path) -> None:
    asyncio.run(sync_telegram(vault, simulate=SIMULATION))


def test_sync_template_error_writes_no_note_of_its_batch_and_a_rerun_completes_the_vault(tmp_path: Path) -> None:
    reference = new_vault(tmp_path / "reference")
    use_template(reference, builtin_message_template())
    run_sync(reference)
    reference_notes = notes_of(reference)
    by_chat = ids_by_chat(reference_notes)
    assert len(by_chat) == 2 and all(len(ids) > DEFAULT_BATCH_SIZE for ids in by_chat.values())
    # A message id that starts a note in the second batch of both chats: whichever chat is read
    # first fails there, after its first batch.
    starts = [
        {min(n.message_ids) for n in reference_notes if n.chat_id == chat and n.message_ids
         and batch_of(ids, min(n.message_ids)) == 1}
        for chat, ids in by_chat.items()
    ]
    failing_id = min(starts[0] & starts[1])

    vault = new_vault(tmp_path / "vault")
    text, line = failing_template(f"message.id == {failing_id}")
    use_template(vault, text)
    with pytest.raises(TemplateError) as error:
        run_sync(vault)
    assert f"message.md, line {line}: TypeError" in str(error.value)

    written = {path: data for path, data in vault_files(vault).items() if not path.startswith(TEMPLATES)}
    # Chats are read concurrently: the pass stops at the first chat that reaches the failing batch;
    # a chat read alongside may have published its first batch too, never more.
    started = {note.chat_id for note in notes_of(vault)}
    assert started and started <= set(by_chat)
    expected_notes = set().union(*(expected_after_error(reference_notes, set(), chat, failing_batch=1)
                                   for chat in started))
    assert {path for path in written if path.endswith(".md")} == expected_notes
    # Whatever else is there is media the clean run stores too, byte for byte (the failed batch's
    # media may already be stored; the re-run uses it).
    assert all(written[path] == (reference / path).read_bytes() for path in written)
    moved = {chat: cursor for chat, cursor in cursors(vault).items() if cursor != NO_CURSOR}
    assert moved == {chat: sorted(by_chat[chat])[DEFAULT_BATCH_SIZE - 1] for chat in started}

    use_template(vault, builtin_message_template())
    run_sync(vault)
    assert vault_differences(vault, reference) == ""


def test_render_template_error_touches_no_note_at_all(tmp_path: Path) -> None:
    """``render`` renders every note before writing any: an error leaves the whole vault as it was."""
    export = write_two_chat_export(tmp_path / "export")
    vault = new_vault(tmp_path / "vault")
    use_template(vault, builtin_message_template())
    run_import(vault, export)
    before = vault_files(vault)
    text, _line = failing_template("chat.title == 'Alpha' and message.id == 114")
    use_template(vault, text.replace("{{ message.body }}", "{{ message.body }} (edited template)"))
    with App.open(vault) as app, pytest.raises(TemplateError, match=r"message\.md, line"):
        app.synchronizer.render_all()
    after = vault_files(vault)
    assert {k: v for k, v in after.items() if not k.startswith(TEMPLATES)} == {
        k: v for k, v in before.items() if not k.startswith(TEMPLATES)
    }


def sync_pass(vault: Path, sim: SimulatedTelegram, **telegram: Any) -> None:
    async def run() -> None:
        settings = dataclasses.replace(load_settings(vault).telegram, **telegram)
        client = sim.client(raise_last_call_error=True, request_retries=1)
        with App.open(vault) as app:
            async with TelegramSource(client, settings, retry_delay=0.01, peers=app.store) as source:
                await app.sync_source(source)

    asyncio.run(run())


def test_a_template_error_while_refreshing_notes_for_retried_media_writes_none_of_them(tmp_path: Path) -> None:
    spec = "chats=2,messages=40,media=0.3,seed=4"
    reference = new_vault(tmp_path / "reference")
    use_template(reference, builtin_message_template())
    sync_pass(reference, SimulatedTelegram(parse_spec(spec)))

    vault = new_vault(tmp_path / "vault")
    use_template(vault, builtin_message_template())
    sim = SimulatedTelegram(parse_spec(spec))
    sim.faults.stall("GetFile", times=None)  # every download fails this pass: notes say "will retry"
    sync_pass(vault, sim, stall_timeout_s=0.2)
    waiting: dict[int, list[int]] = {}
    for note in notes_of(vault):
        if note.message_ids and "will retry" in (vault / note.path).read_text(encoding="utf-8"):
            waiting.setdefault(note.chat_id, []).append(min(note.message_ids))
    assert len(waiting) == 2 and all(len(ids) >= 2 for ids in waiting.values())
    before = vault_files(vault)

    sim.faults.clear()
    last_refreshed = " or ".join(f"(chat.id == {chat} and message.id == {max(ids)})" for chat, ids in waiting.items())
    text, line = failing_template(last_refreshed)
    use_template(vault, text)
    with pytest.raises(TemplateError, match=rf"message\.md, line {line}: TypeError"):
        sync_pass(vault, sim)
    after = vault_files(vault)
    assert {p: d for p, d in after.items() if p.endswith(".md")} == {
        p: d for p, d in before.items() if p.endswith(".md") and not p.startswith(TEMPLATES)
    } | {f"{TEMPLATES}/{MESSAGE_TEMPLATE}": text.encode("utf-8")}

    # The next pass fetches what is still missing; notes whose media the failed pass had already
    # fetched are brought up to date by `render`, as the README says.
    use_template(vault, builtin_message_template())
    sync_pass(vault, sim)
    with App.open(vault) as app:
        app.synchronizer.render_all()
    assert vault_differences(vault, reference) == ""


def test_import_chat_template_error_leaves_only_that_index_note_unwritten(tmp_path: Path) -> None:
    export = write_two_chat_export(tmp_path / "export")
    reference = new_vault(tmp_path / "reference")
    builtin_chat = (builtin_templates_dir() / CHAT_TEMPLATE).read_text(encoding="utf-8")
    use_template(reference, builtin_message_template(), chat=builtin_chat)
    run_import(reference, export)

    vault = new_vault(tmp_path / "vault")
    use_template(vault, builtin_message_template(), chat=builtin_chat + "{{ 1 // 0 if chat.title == 'Alpha' }}\n")
    with pytest.raises(TemplateError, match=r"chat\.md, line \d+: ZeroDivisionError"):
        run_import(vault, export)
    written = {path for path in vault_files(vault) if not path.startswith(TEMPLATES)}
    assert written == {note.path for note in notes_of(reference)} - {"Telegram/Alpha/Alpha.md"}

    use_template(vault, builtin_message_template(), chat=builtin_chat)
    run_import(vault, export)
    assert vault_differences(vault, reference) == ""
