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
    assert len(report.notes) == 19


def test_the_readme_shows_an_example_note_as_vault_example_has_it() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    intro = "A message note looks like this (from `vault-example/`):\n\n```markdown\n"
    shown = readme[readme.index(intro) + len(intro) :].split("```\n", 1)[0]
    note = (EXAMPLE / "Telegram" / "Allotment Crew" / "2024-03-02 11.md").read_text(encoding="utf-8")
    assert shown == note
