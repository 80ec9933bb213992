"""Test helper: what a generated vault must satisfy, checked the way Obsidian reads it.

Every note parses as YAML frontmatter + Markdown; every wikilink and embed tobs-sync wrote (in
the body or in a property) resolves to a file in the vault; no temp file is left behind.
Escaped brackets (``\\[\\[``) are text, not links, and are not checked.
"""

from __future__ import annotations

import difflib
import hashlib
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import frontmatter

LINK = re.compile(r"(?<!\\)(!?)\[\[([^\]|#^]+)(?:[#^][^\]|]*)?(?:\|[^\]]*)?\]\]")
SKIP = {".obsidian", ".tobs", ".trash"}


@dataclass
class VaultReport:
    notes: list[Path] = field(default_factory=list)
    links: int = 0
    broken: list[str] = field(default_factory=list)
    metadata: dict[Path, dict[str, object]] = field(default_factory=dict)


def vault_files(vault: Path) -> dict[str, bytes]:
    """Every file of the vault outside the state folder, by vault-relative path."""
    return {
        p.relative_to(vault).as_posix(): p.read_bytes()
        for p in sorted(vault.rglob("*"))
        if p.is_file() and not (set(p.relative_to(vault).parts) & {".tobs"})
    }


def by_content(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` with every attachment (any file that is not a note) renamed after its content hash,
    and every note's references to it rewritten: two vaults that differ only in which message named
    a shared file come out equal, while a file stored twice, lost or changed still shows."""
    renamed: dict[str, str] = {}
    for name, data in sorted(files.items()):
        if not name.endswith(".md"):
            stem = f"{posixpath.dirname(name)}/{hashlib.sha256(data).hexdigest()[:16]}"
            extension = posixpath.splitext(name)[1]
            copies = sum(1 for taken in renamed.values() if taken.startswith(stem))
            renamed[name] = f"{stem}{f' copy {copies + 1}' if copies else ''}{extension}"  # stored twice: shows
    result = {}
    for name, data in files.items():
        if name in renamed:
            result[renamed[name]] = data
            continue
        text = data.decode("utf-8", "replace")
        for old in sorted(renamed, key=len, reverse=True):
            text = text.replace(old, renamed[old])
        result[name] = text.encode("utf-8")
    return result


def vault_differences(
    actual: Path, expected: Path, context_lines: int = 2, *, attachments_by_content: bool = False
) -> str:
    """A short account of how two vaults differ ("" when they are byte-identical): files missing,
    extra, and for each differing note the changed lines only (pytest's own diff of two vaults runs
    to millions of lines). ``attachments_by_content``: compare attachments by their bytes, not by
    their names (see :func:`by_content`)."""
    mine, theirs = vault_files(actual), vault_files(expected)
    if attachments_by_content:
        mine, theirs = by_content(mine), by_content(theirs)
    lines = [f"missing: {name}" for name in sorted(theirs.keys() - mine.keys())]
    lines += [f"extra: {name}" for name in sorted(mine.keys() - theirs.keys())]
    for name in sorted(mine.keys() & theirs.keys()):
        if mine[name] == theirs[name]:
            continue
        if not name.endswith(".md"):
            lines.append(f"differs: {name} ({len(mine[name])} bytes, expected {len(theirs[name])})")
            continue
        diff = difflib.unified_diff(
            theirs[name].decode("utf-8", "replace").splitlines(), mine[name].decode("utf-8", "replace").splitlines(),
            "expected", "actual", n=context_lines, lineterm="",
        )
        lines += [f"differs: {name}", *("    " + line for line in diff)]
    return "\n".join(lines)


def resolves(vault: Path, target: str) -> bool:
    return (vault / target).is_file() or (vault / f"{target}.md").is_file()


def check_vault(vault: Path) -> VaultReport:
    report = VaultReport()
    for path in sorted(vault.rglob("*")):
        relative = path.relative_to(vault)
        if set(relative.parts) & SKIP or not path.is_file():
            continue
        assert not path.name.startswith(".tobs-tmp-"), f"temp file left behind: {relative}"
        if path.suffix != ".md" or "_templates" in relative.parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert text.startswith("---\n"), f"{relative}: no frontmatter"
        post = frontmatter.loads(text)
        report.notes.append(relative)
        report.metadata[relative] = post.metadata
        values = [v for value in post.metadata.values() for v in (value if isinstance(value, list) else [value])]
        for source in [post.content, *[v for v in values if isinstance(v, str)]]:
            for match in LINK.finditer(source):
                report.links += 1
                if not resolves(vault, match.group(2)):
                    report.broken.append(f"{relative}: {match.group(0)}")
    return report


def note_ids(vault: Path) -> Counter[tuple[int, int]]:
    """(chat id, message id) of every message note; a duplicate would count twice."""
    ids: Counter[tuple[int, int]] = Counter()
    for meta in check_vault(vault).metadata.values():
        if "tg_message_id" in meta:
            mids = meta["tg_message_id"]
            for mid in mids if isinstance(mids, list) else [mids]:
                ids[(meta["tg_chat_id"], mid)] += 1
    return ids
