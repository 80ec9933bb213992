"""``status`` finds notes edited or deleted by hand at once, without any write tripping over them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import SAMPLE_EXPORT

from tobs_sync.cli import main

EDITED = "Telegram/Field Notes/2024-03-01 2.md"
DELETED = "Telegram/Field Notes/2024-03-01 3.md"


def notes(vault: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in vault.rglob("*.md")}


def test_status_lists_a_note_edited_by_hand_and_a_deleted_one_right_away(vault: Path, capsys: Any) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    note = vault / EDITED
    note.write_text(note.read_text(encoding="utf-8") + "\nmy thoughts\n", encoding="utf-8")
    (vault / DELETED).unlink()
    before = notes(vault)
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["edited"] == [{"path": EDITED, "chat_id": status["edited"][0]["chat_id"], "message_ids": [2]}]
    assert [n["path"] for n in status["missing"]] == [DELETED]
    assert status["conflicts"] == []
    assert main(["status", "--vault", str(vault)]) == 0
    table = capsys.readouterr().out
    assert "1 note edited since tobs-sync wrote them" in table and EDITED in table
    assert "1 note missing" in table and DELETED in table
    assert notes(vault) == before, "status wrote nothing"


def test_status_of_an_untouched_vault_lists_nothing(vault: Path, capsys: Any) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["edited"], status["missing"], status["conflicts"]) == ([], [], [])


def test_a_reverted_edit_is_no_longer_listed_as_a_conflict(vault: Path, tmp_path: Path, capsys: Any) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    note = vault / EDITED
    original = note.read_bytes()
    note.write_bytes(original.replace(b"%% tobs:end %%", b"edit\n%% tobs:end %%"))  # inside the generated part
    templates = vault / "Telegram" / "_templates"
    templates.mkdir(parents=True)
    builtin = (Path(__file__).parents[1] / "templates" / "message.md").read_text(encoding="utf-8")
    (templates / "message.md").write_text(builtin + "\nv2\n", encoding="utf-8")
    assert main(["render", "--vault", str(vault)]) == 0
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    assert [c["path"] for c in json.loads(capsys.readouterr().out)["conflicts"]] == [EDITED]
    note.write_bytes(original)
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["conflicts"] == []
