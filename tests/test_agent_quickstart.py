"""The README's quick start: the ``run --simulate`` line shows what the text says to watch for.

The simulated account's live changes are deterministic for a spec, so the README's spec is checked
for what its text promises: a new message, a deletion and an edit among the first three changes
(``live_every_s`` apart), on an account of the size the text names.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tobs_sync.sim import SimulatedTelegram, parse_spec

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start_spec() -> str:
    found = re.findall(r'^\.venv/bin/tobs-sync run --vault demo-vault --simulate "([^"]+)"$',
                       README.read_text(encoding="utf-8"), re.MULTILINE)
    assert len(found) == 1, "the quick start has one `run --simulate` line"
    return found[0]


def test_the_quick_start_simulation_makes_a_new_message_a_deletion_and_an_edit_in_its_first_seconds() -> None:
    spec = parse_spec(quick_start_spec())
    readme = README.read_text(encoding="utf-8")

    async def first_changes() -> list[str]:
        simulated = SimulatedTelegram(spec)
        return [simulated.live_step()[0] for _ in range(3)]

    kinds = asyncio.run(first_changes())
    assert sorted(kinds) == ["delete", "edit", "new"]
    assert spec.live_every_s == 2 and "changes every two seconds" in readme
    assert f"catch-up: {spec.chats * spec.messages} new" in readme
