"""The three-way merge of a note: generated part updated, the user's part kept byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tobs_sync.errors import TemplateError
from tobs_sync.merge import BEGIN_MARKER, END_MARKER, Conflict, generated_base, holds_marker, merge
from tobs_sync.names import md
from tobs_sync.publish import Draft, Outcome, Publisher, decide_note
from tobs_sync.render import Renderer
from tobs_sync.store import Store
from tobs_sync.store_rows import NoteRow
from tobs_sync.vault import Vault, sha256_hex


def note(body: str, **properties: str) -> bytes:
    lines = "".join(f"{key}: {value}\n" for key, value in properties.items())
    return f"---\n{lines}---\n\n{BEGIN_MARKER}\n\n{body}\n\n{END_MARKER}\n".encode()


OLD = note("hello", date="2024-03-01T09:05:00", chat="'[[Chat/Chat|Chat]]'", tg_message_id="3")
NEW = note("hello, edited", date="2024-03-01T09:05:00", edited="2024-03-01T10:00:00",
           chat="'[[Chat/Chat|Chat]]'", tg_message_id="3")


def with_user_text(data: bytes, above: str, below: str) -> bytes:
    text = data.decode()
    text = text.replace(f"{BEGIN_MARKER}\n", f"{above}{BEGIN_MARKER}\n", 1)
    return (text + below).encode()


def test_text_above_and_below_and_an_added_property_survive_a_new_region() -> None:
    disk = with_user_text(OLD, "My intro.\n\n", "\nMy conclusion.\n").replace(
        b"tg_message_id: 3\n", b"tg_message_id: 3\nmood: sunny\n"
    )
    merged = merge(generated_base(OLD), disk, NEW)  # type: ignore[arg-type]
    assert isinstance(merged, bytes)
    text = merged.decode()
    assert "hello, edited" in text and "edited: 2024-03-01T10:00:00\n" in text
    assert text.endswith(f"{END_MARKER}\n\nMy conclusion.\n")
    assert f"\nMy intro.\n\n{BEGIN_MARKER}\n" in text
    assert text.index("mood: sunny") > text.index("tg_message_id: 3"), "the user's property follows the generated ones"


def test_an_edit_inside_the_region_is_a_conflict() -> None:
    disk = OLD.replace(b"hello", b"hello, my way")
    assert merge(generated_base(OLD), disk, NEW) == Conflict(  # type: ignore[arg-type]
        "the text between the tobs-sync markers was edited"
    )


def test_deleted_or_repeated_markers_are_a_conflict() -> None:
    base = generated_base(OLD)
    assert base is not None
    for disk in (OLD.replace(f"{END_MARKER}\n".encode(), b""), OLD + f"{BEGIN_MARKER}\n".encode()):
        result = merge(base, disk, NEW)
        assert isinstance(result, Conflict) and "markers" in result.reason


def test_a_property_value_the_user_changed_keeps_the_users_value() -> None:
    # what Obsidian does to a link in a property when the linked note is renamed
    disk = OLD.replace(b"[[Chat/Chat|Chat]]", b"[[Renamed/Chat|Chat]]")
    newer = NEW.replace(b"[[Chat/Chat|Chat]]", b"[[Chat/Chat|Chat (new title)]]")
    merged = merge(generated_base(OLD), disk, newer)  # type: ignore[arg-type]
    assert isinstance(merged, bytes)
    assert b"chat: '[[Renamed/Chat|Chat]]'\n" in merged and b"hello, edited" in merged


def test_a_generated_property_the_user_did_not_touch_gets_its_new_value_and_a_dropped_one_goes() -> None:
    older = note("x", date="2024-03-01T09:05:00", sender="Robin", tg_message_id="3")
    newer = note("x", date="2024-03-01T09:06:00", tg_message_id="3")
    merged = merge(generated_base(older), older, newer)  # type: ignore[arg-type]
    assert merged == newer


def test_unchanged_generated_part_keeps_the_users_frontmatter_exactly() -> None:
    disk = OLD.replace(b"---\ndate:", b"---\n# my comment\ntopic: garden\ndate:")
    disk = disk.replace(b"chat: '", b'chat: "').replace(b"Chat]]'", b'Chat]]"')
    assert merge(generated_base(OLD), disk, OLD) == disk  # type: ignore[arg-type]


def test_properties_that_are_not_block_yaml_are_a_conflict_never_a_rewrite() -> None:
    disk = OLD.replace(b"---\ndate:", b"---\n{a: 1}\ndate:")
    assert isinstance(merge(generated_base(OLD), disk, NEW), Conflict)  # type: ignore[arg-type]
    aliased = OLD.replace(b"tg_message_id: 3\n", b"tg_message_id: 3\na: &x [1]\nb: *x\n")
    assert isinstance(merge(generated_base(OLD), aliased, NEW), Conflict)  # type: ignore[arg-type]


user_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=200).filter(
    lambda s: "%%" not in s and "---" not in s
)


@settings(max_examples=150, deadline=None)
@given(above=user_text, below=user_text)
def test_any_user_text_above_and_below_survives_byte_for_byte(above: str, below: str) -> None:
    above = above + "\n" if above else ""
    disk = with_user_text(OLD, above, below)
    merged = merge(generated_base(OLD), disk, NEW)  # type: ignore[arg-type]
    assert isinstance(merged, bytes)
    text = merged.decode()
    head, _, rest = text.partition(f"{BEGIN_MARKER}\n")
    assert head.endswith("---\n\n" + above)
    assert rest.partition(f"{END_MARKER}\n")[2] == below
    assert "hello, edited" in rest


def test_bytes_merged_just_before_a_crash_are_ours_not_a_conflict(tmp_path: Path) -> None:
    """A crash between the rename and the commit: the disk holds the merged bytes, the store the intent."""
    mine = with_user_text(OLD, "Above.\n\n", "Below.\n")
    merged = merge(generated_base(OLD), mine, NEW)
    assert isinstance(merged, bytes)
    previous = NoteRow("Chat/n.md", "message", 1, 3, (3,), sha256_hex(mine), intended_hash=sha256_hex(merged))
    decision = decide_note(Draft("Chat/n.md", NEW, 1, (3,), previous=previous), merged,
                           (generated_base(OLD), generated_base(NEW)))
    assert decision.outcome == Outcome.UNCHANGED and decision.data == merged


def test_publishing_merges_and_remembers_what_it_generated(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    (tmp_path / "vault").mkdir()
    vault = Vault(tmp_path / "vault")

    def publish(data: bytes) -> Outcome:
        draft = Draft("Chat/n.md", data, 1, (3,), previous=store.note_at("Chat/n.md"))
        return Publisher(vault, store).publish([draft]).outcomes[0][1]

    assert publish(OLD) is Outcome.WRITTEN
    path = vault.root / "Chat/n.md"
    path.write_bytes(with_user_text(OLD, "Above.\n\n", "Below.\n"))
    assert publish(NEW) is Outcome.WRITTEN
    assert path.read_bytes() == with_user_text(NEW, "Above.\n\n", "Below.\n")
    assert store.note_bases(["Chat/n.md"])["Chat/n.md"] == (generated_base(NEW), None)
    assert publish(NEW) is Outcome.UNCHANGED
    store.close()


def test_a_template_cannot_write_the_markers_itself(tmp_path: Path) -> None:
    (tmp_path / "message.md").write_text(f"text\n{END_MARKER}\nmore\n", encoding="utf-8")
    renderer = Renderer(tmp_path)
    with pytest.raises(TemplateError, match="may not contain a line"):
        renderer.render("message.md", {}, {"tg_chat_id": 1, "tg_message_id": 2})


def test_telegram_text_cannot_forge_a_marker() -> None:
    assert not holds_marker(md(END_MARKER))
