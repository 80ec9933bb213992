"""The command line: init, status output, errors as one line, the module entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import SAMPLE_EXPORT

from tobs_sync import __version__
from tobs_sync.cli import main
from tobs_sync.render import builtin_templates_dir


def test_init_creates_config_and_editable_templates_once(tmp_path: Path, capsys: Any) -> None:
    vault = tmp_path / "new vault"
    assert main(["init", str(vault)]) == 0
    assert (vault / ".tobs" / "config.toml").is_file()
    for name in ("message.md", "chat.md"):
        copied = vault / "Telegram" / "_templates" / name
        assert copied.read_bytes() == (builtin_templates_dir() / name).read_bytes()
    (vault / "Telegram" / "_templates" / "chat.md").write_text("mine", encoding="utf-8")
    capsys.readouterr()
    assert main(["init", str(vault)]) == 0
    assert "already set up" in capsys.readouterr().out
    assert (vault / "Telegram" / "_templates" / "chat.md").read_text(encoding="utf-8") == "mine"


def test_init_then_import_uses_the_vault_templates(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    assert main(["init", str(vault)]) == 0
    template = vault / "Telegram" / "_templates" / "message.md"
    template.write_text(template.read_text(encoding="utf-8") + "\n(from my template)\n", encoding="utf-8")
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    note = vault / "Telegram" / "Field Notes" / "2024-03-01 2.md"
    assert note.read_text(encoding="utf-8").endswith("(from my template)\n")


def test_import_reports_what_it_did(vault: Path, capsys: Any) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    out = capsys.readouterr().out
    assert "3 chats, 16 new messages" in out
    assert "19 written" in out
    assert "1 deduplicated" in out
    assert "1 media not stored: File not included" in out


def test_status_lists_chats_and_prints_titles_literally(vault: Path, tmp_path: Path, capsys: Any) -> None:
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"name": "[bold red]x[/] chat", "type": "personal_chat", "id": 9, "messages": [
        {"id": 1, "type": "message", "date_unixtime": "1709284500", "text": "hi"}]}), encoding="utf-8")
    assert main(["import", str(export), "--vault", str(vault)]) == 0
    capsys.readouterr()
    assert main(["status", "--vault", str(vault)]) == 0
    out = capsys.readouterr().out
    assert "[bold red]x[/] chat" in out
    assert "no conflicts" in out
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["chats"] == [{
        "id": 9, "title": "[bold red]x[/] chat", "kind": "user", "folder": "bold red-x - chat", "cursor": 1,
        "messages": 1, "skipped": {}, "chat_note": "Telegram/bold red-x - chat/bold red-x - chat.md",
    }]
    assert status["notes"] == 2


def test_commands_on_a_vault_without_state_explain_what_to_do(tmp_path: Path, capsys: Any) -> None:
    assert main(["status", "--vault", str(tmp_path)]) == 1
    assert "run 'tobs-sync import EXPORT --vault" in capsys.readouterr().err
    assert main(["render", "--vault", str(tmp_path)]) == 1


def test_missing_export_is_a_clear_error(vault: Path, tmp_path: Path, capsys: Any) -> None:
    assert main(["import", str(tmp_path / "nope"), "--vault", str(vault)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "nope" in err
    assert "Traceback" not in err


def test_module_entry_point_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tobs_sync", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"tobs-sync {__version__}"
