"""Messages with ids at or below zero (a migrated group's old history) and messages an import skips.

Telegram Desktop exports a supergroup that was once a basic group with the basic group's history
first, its ids shifted by ``kMigratedMessagesIdShift = -1'000'000'000`` (and its in-chat
``reply_to_message_id`` with them): ``AdjustMigrateMessageIds`` in
``Telegram/SourceFiles/export/data/export_data_types.cpp``, applied in ``ApiWrap::finishMessagesSlice``
to the slices of the negative (migrated) splits, which sort before the supergroup's own. The
exports written here reproduce that layout.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from vaultcheck import check_vault, vault_files

from tobs_sync.app import import_export
from tobs_sync.cli import main
from tobs_sync.model import Message
from tobs_sync.sources.tdesktop import OUT_OF_ORDER
from tobs_sync.store import BELOW_CURSOR, Store
from tobs_sync.store_schema import MIGRATIONS, NO_CURSOR
from tobs_sync.sync import SyncReport

SHIFT = -1_000_000_000
SUPERGROUP = 1500000001
CHAT_ID = -1001500000001
BASE_TIME = 1_560_000_000


def msg(ident: int, offset: int, text: str = "", **fields: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "message",
        "date": "2019-06-08T13:20:00",
        "date_unixtime": str(BASE_TIME + offset),
        "from": "Ann",
        "from_id": "user1001",
        "text": text,
        "text_entities": [{"type": "plain", "text": text}] if text else [],
    } | fields


def service(ident: int, offset: int, action: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "service",
        "date": "2019-06-08T13:20:00",
        "date_unixtime": str(BASE_TIME + offset),
        "actor": "Ann",
        "actor_id": "user1001",
        "action": action,
        "text": "",
        "text_entities": [],
    } | fields


def migrated_messages() -> list[dict[str, Any]]:
    """The basic group's messages 2..5 as the exporter writes them into the supergroup's export."""
    return [
        service(2 + SHIFT, 0, "create_group", title="Old Friends", members=["Ann", "Bo"]),
        msg(3 + SHIFT, 60, text="first words"),
        msg(4 + SHIFT, 120, text="an answer", reply_to_message_id=3 + SHIFT, from_id="user1002", **{"from": "Bo"}),
        service(5 + SHIFT, 180, "migrate_to_supergroup"),
    ]


def supergroup_messages(last: int) -> list[dict[str, Any]]:
    first = [service(1, 240, "migrate_from_group", title="Old Friends", actor="Old Friends", actor_id="channel1")]
    return first + [msg(ident, 240 + ident * 60, text=f"supergroup {ident}") for ident in range(2, last + 1)]


def write_export(folder: Path, messages: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    document = {"name": "Old Friends", "type": "private_supergroup", "id": SUPERGROUP, "messages": messages}
    (folder / "result.json").write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def run_import(vault: Path, export: Path) -> SyncReport:
    return asyncio.run(import_export(vault, export))[0]


def stored(vault: Path) -> list[Message]:
    with Store.open(vault / ".tobs" / "state.db") as store:
        return list(store.messages(CHAT_ID))


def cursor(vault: Path) -> int:
    with Store.open(vault / ".tobs" / "state.db") as store:
        state = store.chat_state(CHAT_ID)
        assert state is not None
        return state.cursor


# -- case 11: negative ids are imported ------------------------------------------------------


def test_migrated_history_with_negative_ids_is_imported_first_into_the_same_chat(vault: Path, tmp_path: Path) -> None:
    export = write_export(tmp_path / "export", migrated_messages() + supergroup_messages(3))
    report = run_import(vault, export)
    assert (report.chats, report.messages, report.skipped) == (1, 7, {})
    ids = [m.id for m in stored(vault)]
    assert ids == [-999999998, -999999997, -999999996, -999999995, 1, 2, 3]
    assert cursor(vault) == 3
    notes = {path for path in vault_files(vault) if path.startswith("Telegram/")}
    assert "Telegram/Old Friends/2019-06-08 -999999997.md" in notes
    assert "Telegram/Old Friends/2019-06-08 3.md" in notes
    checked = check_vault(vault)
    assert checked.broken == []
    answer = checked.metadata[Path("Telegram/Old Friends/2019-06-08 -999999996.md")]
    assert answer["tg_chat_id"] == CHAT_ID and answer["tg_message_id"] == -999999996
    # the reply inside the old history links to its note in the same folder
    assert "2019-06-08 -999999997" in (vault / "Telegram/Old Friends/2019-06-08 -999999996.md").read_text("utf-8")


def test_reimport_writes_nothing_and_a_longer_export_continues(vault: Path, tmp_path: Path) -> None:
    export = write_export(tmp_path / "export", migrated_messages() + supergroup_messages(3))
    run_import(vault, export)
    before = vault_files(vault)
    again = run_import(vault, export)
    assert (again.messages, again.notes_written, again.skipped) == (0, 0, {})
    assert vault_files(vault) == before
    longer = write_export(tmp_path / "longer", migrated_messages() + supergroup_messages(5))
    more = run_import(vault, longer)
    assert (more.messages, more.skipped) == (2, {})
    assert [m.id for m in stored(vault)][-3:] == [3, 4, 5]


def test_a_chat_whose_whole_history_is_migrated_is_imported(vault: Path, tmp_path: Path) -> None:
    """Ids all below zero: the cursor starts below every id and ends below zero."""
    report = run_import(vault, write_export(tmp_path / "export", migrated_messages()))
    assert report.messages == 4
    assert cursor(vault) == -999999995
    assert run_import(vault, write_export(tmp_path / "export", migrated_messages())).messages == 0


# -- skipped messages are counted and shown --------------------------------------------------


def test_repeated_and_out_of_order_ids_are_skipped_and_reported(vault: Path, tmp_path: Path, capsys: Any) -> None:
    messages = supergroup_messages(6)
    messages.insert(4, msg(3, 1000, text="a second copy of 3"))  # after 4: repeated
    messages.insert(6, msg(2, 1001, text="late 2"))  # after 5: out of order
    export = write_export(tmp_path / "export", messages)
    assert main(["import", str(export), "--vault", str(vault)]) == 0
    out = capsys.readouterr().out
    assert f"2 messages skipped: chat 'Old Friends': {OUT_OF_ORDER}" in out
    assert [m.id for m in stored(vault)] == [1, 2, 3, 4, 5, 6]
    assert next(m for m in stored(vault) if m.id == 3).text == "supergroup 3"

    assert main(["status", "--vault", str(vault), "--json"]) == 0
    (chat,) = json.loads(capsys.readouterr().out)["chats"]
    assert chat["skipped"] == {OUT_OF_ORDER: 2}
    assert main(["status", "--vault", str(vault)]) == 0
    out = capsys.readouterr().out
    assert f"2 skipped in 'Old Friends': {OUT_OF_ORDER}" in out
    assert "skipped" in out.splitlines()[1] + out.splitlines()[2]  # the table's column


def test_messages_below_the_cursor_that_were_never_imported_are_reported(
    vault: Path, tmp_path: Path, capsys: Any
) -> None:
    """A vault whose earlier import dropped the migrated history (or had a partial export):
    importing the full export reports what lies below the cursor and is not in the store."""
    run_import(vault, write_export(tmp_path / "partial", supergroup_messages(3)))
    full = write_export(tmp_path / "full", migrated_messages() + supergroup_messages(4))
    assert main(["import", str(full), "--vault", str(vault)]) == 0
    out = capsys.readouterr().out
    assert "1 new messages" in out
    assert f"4 messages skipped: chat 'Old Friends': {BELOW_CURSOR}" in out
    with Store.open(vault / ".tobs" / "state.db") as store:
        assert store.skipped_counts() == {CHAT_ID: {BELOW_CURSOR: 4}}
    # messages 1..3 were below the cursor too, but they are in the store: not skipped
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    (chat,) = json.loads(capsys.readouterr().out)["chats"]
    assert chat["skipped"] == {BELOW_CURSOR: 4} and chat["cursor"] == 4


def test_below_cursor_check_spans_many_chunks(tmp_path: Path) -> None:
    """More ids than one store lookup covers, with gaps: only the unheld ones are recorded."""
    ids = [i for i in range(-700, 1400) if i % 7]
    with Store.open(tmp_path / "state.db") as store:
        store.put_messages([Message(chat_id=CHAT_ID, id=i, date=BASE_TIME) for i in ids if i % 3])
        store.put_messages([Message(chat_id=7, id=i, date=BASE_TIME) for i in ids])  # another chat's
        pairs = [(i, BELOW_CURSOR) for i in ids] + [(5000, OUT_OF_ORDER)]
        counts = store.record_skipped(CHAT_ID, iter(pairs))
        unheld = [i for i in ids if i % 3 == 0]
        assert counts == {BELOW_CURSOR: len(unheld), OUT_OF_ORDER: 1}
        assert store.skipped_counts() == {CHAT_ID: {BELOW_CURSOR: len(unheld), OUT_OF_ORDER: 1}}
        # recording the same pass again counts it again but keeps one row per message
        assert store.record_skipped(CHAT_ID, pairs) == counts
        assert store.skipped_counts() == {CHAT_ID: {BELOW_CURSOR: len(unheld), OUT_OF_ORDER: 1}}


# -- the store -------------------------------------------------------------------------------


def test_a_new_chat_has_no_cursor_and_messages_below_zero_are_streamed(tmp_path: Path) -> None:
    from tobs_sync.model import Chat

    with Store.open(tmp_path / "state.db") as store:
        state = store.upsert_chat(Chat(CHAT_ID, "Old Friends"), lambda chat: chat.title)
        assert state.cursor == NO_CURSOR
        store.put_messages([Message(chat_id=CHAT_ID, id=i, date=BASE_TIME) for i in (3, -999999998, 0)])
        assert [m.id for m in store.messages(CHAT_ID)] == [-999999998, 0, 3]
        assert [m.id for m in store.messages(CHAT_ID, batch=1)] == [-999999998, 0, 3]


def test_migration_gives_chats_without_messages_no_cursor(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path, isolation_level=None)
    before_v5 = 4  # the schema just before the migration that gives empty chats no cursor
    for target in range(before_v5):
        MIGRATIONS[target](db)
    db.execute(f"PRAGMA user_version={before_v5}")
    for chat_id in (1, 2):
        db.execute(
            "INSERT INTO chats (chat_id, record, folder, folder_key) VALUES (?, x'80', ?, ?)",
            (chat_id, f"c{chat_id}", f"c{chat_id}"),
        )
    db.execute("INSERT INTO messages (chat_id, message_id, date, record) VALUES (2, 1, 0, x'80')")
    db.execute("UPDATE chats SET cursor=1 WHERE chat_id=2")
    db.close()
    Store.open(path).close()
    db = sqlite3.connect(path)
    assert dict(db.execute("SELECT chat_id, cursor FROM chats").fetchall()) == {1: NO_CURSOR, 2: 1}
    assert db.execute("SELECT COUNT(*) FROM skipped_messages").fetchone() == (0,)
