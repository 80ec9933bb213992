"""Shared fixtures: the bundled sample export, the external exports, fresh vaults."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE_EXPORT = PROJECT / "tests" / "data" / "sample-export"
EXTERNAL = PROJECT.parent / "shared" / "testdata" / "external"


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """An empty vault whose notes use UTC, so expected dates do not depend on the machine."""
    root = tmp_path / "vault"
    (root / ".tobs").mkdir(parents=True)
    (root / ".tobs" / "config.toml").write_text('[vault]\ntimezone = "UTC"\n', encoding="utf-8")
    return root


@pytest.fixture
def external() -> Path:
    if not EXTERNAL.is_dir():
        pytest.skip(f"external Telegram exports not available ({EXTERNAL} is absent outside the project's workspace)")
    return EXTERNAL
