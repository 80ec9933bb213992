"""vault-example/ is exactly what tobs-sync makes of the bundled sample export.

The test imports tests/data/sample-export into a fresh copy of the example's configuration and
compares every file. Set TOBS_UPDATE_EXAMPLE=1 to rewrite vault-example/ after an intended change.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from conftest import PROJECT, SAMPLE_EXPORT
from vaultcheck import check_vault, vault_files

from tobs_sync.app import import_export

EXAMPLE = PROJECT / "vault-example"
CONFIGURATION = (".obsidian", ".tobs/config.toml")


def regenerate(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLE / ".obsidian", target / ".obsidian", dirs_exist_ok=True)
    (target / ".tobs").mkdir(exist_ok=True)
    shutil.copyfile(EXAMPLE / ".tobs" / "config.toml", target / ".tobs" / "config.toml")
    asyncio.run(import_export(target, SAMPLE_EXPORT))


def test_vault_example_matches_a_fresh_import(tmp_path: Path) -> None:
    fresh = tmp_path / "vault"
    regenerate(fresh)
    if os.environ.get("TOBS_UPDATE_EXAMPLE") == "1":
        for child in EXAMPLE.iterdir():
            if child.name not in (".obsidian", ".tobs"):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        for relative, data in vault_files(fresh).items():
            (EXAMPLE / relative).parent.mkdir(parents=True, exist_ok=True)
            (EXAMPLE / relative).write_bytes(data)
    expected = vault_files(EXAMPLE)
    actual = vault_files(fresh)
    assert sorted(actual) == sorted(expected), "vault-example/ drifted: rerun with TOBS_UPDATE_EXAMPLE=1"
    for relative, data in actual.items():
        assert data == expected[relative], f"vault-example/{relative} drifted: rerun with TOBS_UPDATE_EXAMPLE=1"


def test_vault_example_is_a_valid_vault() -> None:
    report = check_vault(EXAMPLE)
    assert report.broken == []
    assert len(report.notes) == 21


def readme_block_after(readme: str, intro: str) -> str:
    start = readme.index(intro + "\n\n```markdown\n") + len(intro) + len("\n\n```markdown\n")
    return readme[start:].split("```\n", 1)[0]


def test_the_readme_shows_example_notes_as_vault_example_has_them() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    crew = EXAMPLE / "Telegram" / "Allotment Crew"
    shown = readme_block_after(readme, "A message note looks like this (from `vault-example/`):")
    assert shown == (crew / "2024-03-02 11.md").read_text(encoding="utf-8")
    intro = "A sticker sent in reply to a post of another chat (its note is linked, labelled with that chat):"
    shown = readme_block_after(readme, intro)
    assert shown == (crew / "2024-03-02 16.md").read_text(encoding="utf-8")


def test_vault_example_shows_reactions_a_forward_a_reply_into_another_chat_and_a_sticker() -> None:
    crew = EXAMPLE / "Telegram" / "Allotment Crew"
    forward = (crew / "2024-03-02 11.md").read_text(encoding="utf-8")
    assert "reactions:\n- ❤️ 3\n- 🔥 1\nreactions_total: 4\n" in forward
    assert "> [!quote] Forwarded from Field Notes" in forward and "\n❤️ 3 · 🔥 1\n" in forward
    sticker = (crew / "2024-03-02 16.md").read_text(encoding="utf-8")
    assert "> [!reply] In reply to [[Telegram/Field Notes/2024-03-02 8|message 8 in Field Notes]]" in sticker
    assert "![[Telegram/_attachments/sticker.webp|160]]\n\n*🌱*" in sticker and "emoji: 🌱" in sticker
    pin = (crew / "2024-03-02 17.md").read_text(encoding="utf-8")
    assert "*Robin Sample pinned a message*: [[Telegram/Allotment Crew/2024-03-02 16|message 16]]" in pin
