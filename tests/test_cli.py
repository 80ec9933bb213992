"""The command line: init, status output, errors as one line, one writer per vault, the module entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_EXPORT
from lockholder import holding_vault

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
    assert note.read_text(encoding="utf-8").endswith("(from my template)\n\n%% tobs:end %%\n")


def test_import_reports_what_it_did(vault: Path, capsys: Any) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    out = capsys.readouterr().out
    assert "3 chats, 18 new messages" in out
    assert "21 written" in out
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
    last_pass = status["chats"][0].pop("last_pass")
    assert status["chats"] == [{
        "id": 9, "title": "[bold red]x[/] chat", "kind": "user", "folder": "bold red-x - chat", "cursor": 1,
        "messages": 1, "skipped": {}, "chat_note": "Telegram/bold red-x - chat/bold red-x - chat.md",
        "next_run": None, "notes": 1, "media": {}, "held_deletions": 0, "conflicts": 0,
    }]
    assert (last_pass["trigger"], last_pass["new"], last_pass["errors"]) == ("import", 1, [])
    assert status["notes"] == 2


def test_commands_on_a_vault_without_state_explain_what_to_do(tmp_path: Path, capsys: Any) -> None:
    assert main(["status", "--vault", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is not a tobs-sync vault yet" in err
    assert "run 'tobs-sync import EXPORT --vault" in err
    assert main(["render", "--vault", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == [], "a command that found no vault created something"


def test_status_of_a_folder_with_only_a_config_creates_no_database(vault: Path, capsys: Any) -> None:
    before = tree(vault)
    assert main(["status", "--vault", str(vault)]) == 1
    assert "not a tobs-sync vault yet" in capsys.readouterr().err
    assert tree(vault) == before


def tree(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path below ``root`` (state folder included): whether a folder, size, mtime."""
    return {
        path.relative_to(root).as_posix(): (path.is_dir(), path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


def test_status_while_another_process_writes_sees_its_work_and_changes_nothing(vault: Path, capsys: Any) -> None:
    with holding_vault(vault, mode="import") as (_, temp_file):
        assert (vault / ".tobs" / "state.db-wal").is_file(), "the writer's work is still in the WAL"
        before = tree(vault)
        assert main(["status", "--vault", str(vault), "--json"]) == 0
        assert tree(vault) == before
        assert Path(temp_file).read_bytes() == b"half a download", "status deleted a download in progress"
    status = json.loads(capsys.readouterr().out)
    assert len(status["chats"]) == 3
    assert status["messages"] == 18


def test_status_of_an_idle_vault_creates_and_changes_nothing(vault: Path, capsys: Any) -> None:
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    leftover = vault / "Telegram" / ".tobs-tmp-leftover"
    leftover.write_bytes(b"x")
    before = tree(vault)
    assert not {".tobs/state.db-wal", ".tobs/state.db-shm"} & before.keys()
    capsys.readouterr()
    assert main(["status", "--vault", str(vault), "--json"]) == 0
    assert tree(vault) == before
    assert json.loads(capsys.readouterr().out)["messages"] == 18


WRITING_COMMANDS = {
    "init": lambda vault: ["init", str(vault)],
    "import": lambda vault: ["import", str(SAMPLE_EXPORT), "--vault", str(vault)],
    "sync": lambda vault: ["sync", "--vault", str(vault), "--simulate", "chats=1,messages=3,media=0,seed=1"],
    "render": lambda vault: ["render", "--vault", str(vault)],
    "login": lambda vault: ["login", "--vault", str(vault)],
}


def test_every_writing_command_is_refused_while_another_process_writes(
    vault: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOBS_API_ID", "4242")
    monkeypatch.setenv("TOBS_API_HASH", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("TOBS_PHONE", "+15550100")
    assert main(["import", str(SAMPLE_EXPORT), "--vault", str(vault)]) == 0
    (vault / "Telegram" / "_templates").mkdir()  # init would copy the templates here
    capsys.readouterr()
    with holding_vault(vault, command="tobs-sync sync") as (holder, _):
        before = tree(vault)
        for name, argv in WRITING_COMMANDS.items():
            assert main(argv(vault)) == 1, name
            err = capsys.readouterr().err
            assert err.startswith("error: vault "), (name, err)
            assert f"is in use by tobs-sync sync (pid {holder.pid} on " in err, (name, err)
            assert err.count("\n") == 1 and "Traceback" not in err, (name, err)
            assert tree(vault) == before, f"{name} changed the vault while another process held it"


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
