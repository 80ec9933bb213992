"""The test helper that compares vaults: comparing attachments by content must still see a file stored twice."""

from __future__ import annotations

from vaultcheck import by_content


def test_attachments_named_after_different_messages_compare_equal_by_content() -> None:
    first = {"T/_a/x.jpg": b"photo", "T/c/n.md": b"![[T/_a/x.jpg]]"}
    second = {"T/_a/y.jpg": b"photo", "T/c/n.md": b"![[T/_a/y.jpg]]"}
    assert by_content(first) == by_content(second)


def test_a_file_stored_twice_or_changed_still_differs_by_content() -> None:
    once = {"T/_a/x.jpg": b"photo", "T/c/n.md": b"![[T/_a/x.jpg]]"}
    twice = {"T/_a/x.jpg": b"photo", "T/_a/x 2.jpg": b"photo", "T/c/n.md": b"![[T/_a/x.jpg]]"}
    changed = {"T/_a/x.jpg": b"other", "T/c/n.md": b"![[T/_a/x.jpg]]"}
    assert by_content(once) != by_content(twice)
    assert by_content(once) != by_content(changed)
