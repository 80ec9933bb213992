"""The generated part of a note versus the user's part: a three-way merge of note bytes.

A note tobs-sync writes has two generated parts: its properties (YAML frontmatter) and its body
between two marker lines, :data:`BEGIN_MARKER` and :data:`END_MARKER` (Obsidian comments,
invisible in reading view). Everything else is the user's: text above and below the markers,
properties they added, and values they changed (including a link Obsidian rewrote after a
rename). :func:`merge` takes what tobs-sync generated last time (its *base*, see
:func:`generated_base`), the bytes on disk and the newly generated note, and returns the note
with the generated part updated and the user's part kept byte for byte, or a :class:`Conflict`.

Rules. Properties: a property the user added (absent from the base) stays; a generated property
whose value the user changed, or deleted, keeps the user's choice; every other generated property
gets its new value, and a property tobs-sync no longer generates goes away. Order: generated
properties first, in the new note's order, then the user's own in their order on disk; when no
generated value changes, the frontmatter on disk is kept as it is (order, quoting, comments).
Body: the text outside the markers stays byte for byte; the region between them is replaced only
when it still holds what tobs-sync generated last (compared by sha256).

Limits: the frontmatter on disk must be block-style YAML with one top-level key per line (what
Obsidian writes); flow-style mappings, anchors and aliases, or a frontmatter larger than
:data:`MAX_FRONTMATTER_BYTES` are a conflict, as are missing, repeated or misordered markers and
any edit inside the region. Property values are compared by their text, and where the texts
differ by their value after ``yaml.safe_load`` (so a change of quoting alone is no change).
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

import yaml

BEGIN_MARKER = "%% tobs:begin %%"
END_MARKER = "%% tobs:end %%"
MARKERS = (BEGIN_MARKER, END_MARKER)
MAX_FRONTMATTER_BYTES = 256 * 1024
_BASE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Conflict:
    """Why a note could not be merged (shown to the user)."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Note:
    """A note cut into its parts; ``frontmatter`` is None when the note has none."""

    frontmatter: str | None
    before: str
    """Text between the frontmatter and the begin marker line (the whole head without frontmatter)."""
    begin_line: str
    region: str
    end_line: str
    after: str


def wrap_body(body: str) -> str:
    """The generated body between the markers, as the renderer writes it."""
    return f"{BEGIN_MARKER}\n\n{body}\n\n{END_MARKER}" if body else f"{BEGIN_MARKER}\n{END_MARKER}"


def holds_marker(text: str) -> bool:
    """Whether ``text`` has a line that reads as one of the markers (a body must not)."""
    return any(line.strip() in MARKERS for line in text.splitlines())


def generated_base(note: bytes) -> bytes | None:
    """What the store remembers of a generated note: its frontmatter text and its region's sha256.

    Compact (zlib'd JSON, a few hundred bytes however long the message); None if ``note`` has no
    markers (then it cannot be merged later).
    """
    parts = _split(note.decode("utf-8"))
    if isinstance(parts, Conflict):
        return None
    record = {"v": _BASE_VERSION, "frontmatter": parts.frontmatter, "region": _sha256(parts.region)}
    return zlib.compress(json.dumps(record, ensure_ascii=False).encode("utf-8"))


def merge(base: bytes, disk: bytes, generated: bytes, *, force_region: bool = False) -> bytes | Conflict:
    """The new note: ``generated``'s generated part, ``disk``'s user part (see the module docstring).

    ``base`` comes from :func:`generated_base` of the note tobs-sync generated last. With
    ``force_region`` an edited region is replaced rather than reported (``render --force``).
    """
    try:
        record = json.loads(zlib.decompress(base))
        base_frontmatter, base_region = record["frontmatter"], record["region"]
    except (zlib.error, ValueError, KeyError, TypeError):
        return Conflict("what tobs-sync wrote last is not readable in its state database")
    try:
        disk_text = disk.decode("utf-8")
    except UnicodeDecodeError:
        return Conflict("the note is not UTF-8 text")
    new = _split(generated.decode("utf-8"))
    if isinstance(new, Conflict):
        raise ValueError("a generated note must hold the tobs-sync markers")
    mine = _split(disk_text)
    if isinstance(mine, Conflict):
        return mine
    if _sha256(mine.region) != base_region and not force_region:
        return Conflict("the text between the tobs-sync markers was edited")
    frontmatter = _merge_properties(base_frontmatter, mine.frontmatter, new.frontmatter)
    if isinstance(frontmatter, Conflict):
        return frontmatter
    head = "" if frontmatter is None else f"---\n{frontmatter}---\n"
    if mine.frontmatter is None and frontmatter is not None and not mine.before.startswith("\n"):
        head += "\n"
    text = head + mine.before + mine.begin_line + new.region + mine.end_line + mine.after
    return text.encode("utf-8")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _split(text: str) -> _Note | Conflict:
    """Cut a note into frontmatter, text before the markers, region and text after."""
    frontmatter: str | None = None
    rest = text
    lines = text.splitlines(keepends=True)
    if lines and lines[0].rstrip("\r\n") == "---":
        for index in range(1, len(lines)):
            if lines[index].rstrip("\r\n") == "---":
                frontmatter = "".join(lines[1:index])
                rest = "".join(lines[index + 1:])
                break
    body = rest.splitlines(keepends=True)
    begins = [i for i, line in enumerate(body) if line.strip() == BEGIN_MARKER]
    ends = [i for i, line in enumerate(body) if line.strip() == END_MARKER]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        return Conflict("the tobs-sync markers (%% tobs:begin %% ... %% tobs:end %%) are missing or repeated")
    begin, end = begins[0], ends[0]
    return _Note(
        frontmatter=frontmatter,
        before="".join(body[:begin]),
        begin_line=body[begin] if body[begin].endswith("\n") else body[begin] + "\n",
        region="".join(body[begin + 1:end]),
        end_line=body[end],
        after="".join(body[end + 1:]),
    )


_PLAIN_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_ .\-]*?):(?:[ \t]|\r?\n|$)")
"""A top-level line whose key can be read without YAML (what tobs-sync and Obsidian write)."""


@dataclass(slots=True)
class _Property:
    """One top-level property: its key and its lines as written (with comments and blank lines
    that follow it); its value is read with ``yaml.safe_load`` only when a comparison needs it."""

    key: Any
    text: str
    _value: Any = None
    _loaded: bool = False

    def value(self) -> Any:
        if not self._loaded:
            loaded = _load_property(self.text)
            if isinstance(loaded, Conflict):
                raise _Unreadable(loaded.reason)
            self._value, self._loaded = loaded[1], True
        return self._value

    def same_value(self, other: _Property) -> bool:
        return self.text == other.text or self.value() == other.value()


class _Unreadable(Exception):
    """Raised inside the merge when the user's properties cannot be read (becomes a Conflict)."""


_UNREADABLE = "the properties are not block-style YAML with one property per line"


def _load_property(text: str) -> tuple[Any, Any] | Conflict:
    """``(key, value)`` of one property's lines, read with ``yaml.safe_load``."""
    try:
        if ("&" in text or "*" in text) and any(
            isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)
        ):
            return Conflict("the properties use YAML aliases")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if not isinstance(node, yaml.MappingNode) or node.flow_style:
            return Conflict(_UNREADABLE)  # e.g. a flow mapping: only block style merges line by line
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return Conflict(_UNREADABLE)
    if not isinstance(loaded, dict) or len(loaded) != 1:
        return Conflict(_UNREADABLE)
    ((key, value),) = loaded.items()
    return key, value


def _properties(frontmatter: str | None) -> tuple[str, list[_Property]] | Conflict:
    """The frontmatter as a prelude (comments before the first key) and its properties in order.

    Keys are read from the line when it is plain (``key: ...``), otherwise with YAML; values are
    read later, only where texts differ.
    """
    if frontmatter is None or not frontmatter.strip():
        return (frontmatter or "", [])
    if len(frontmatter.encode("utf-8")) > MAX_FRONTMATTER_BYTES:
        return Conflict(f"the properties are larger than {MAX_FRONTMATTER_BYTES} bytes")
    prelude: list[str] = []
    chunks: list[list[str]] = []
    for line in frontmatter.splitlines(keepends=True):
        if line[:1] not in ("", " ", "\t", "-", "#", "\r", "\n"):
            chunks.append([line])
        elif chunks:
            chunks[-1].append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            return Conflict(_UNREADABLE)  # an indented or list line before any key
        else:
            prelude.append(line)
    found: list[_Property] = []
    for chunk in chunks:
        text = "".join(chunk)
        text = text if text.endswith("\n") else text + "\n"
        plain = _PLAIN_KEY.match(chunk[0])
        if plain and not chunk[0].startswith(("true:", "false:", "null:", "~:")):
            found.append(_Property(plain.group(1).rstrip(), text))
            continue
        loaded = _load_property(text)
        if isinstance(loaded, Conflict):
            return loaded
        found.append(_Property(loaded[0], text, loaded[1], True))
    if len({repr(p.key) for p in found}) != len(found):
        return Conflict("a property is written twice")
    return ("".join(prelude), found)


def _merge_properties(base: str | None, disk: str | None, new: str | None) -> str | Conflict | None:
    """The merged frontmatter text (None: the note has none)."""
    if disk is not None and base == new and disk == base:
        return disk
    parsed = [_properties(text) for text in (base, disk, new)]
    for item in parsed:
        if isinstance(item, Conflict):
            return item
    (_, base_props), (prelude, disk_props), (_, new_props) = parsed  # type: ignore[misc]
    try:
        return _merged_text(base_props, prelude, disk_props, new_props, disk)
    except _Unreadable as unreadable:
        return Conflict(str(unreadable))


def _merged_text(
    base_props: list[_Property], prelude: str, disk_props: list[_Property], new_props: list[_Property],
    disk: str | None,
) -> str | None:
    before = {p.key: p for p in base_props}
    on_disk = {p.key: p for p in disk_props}
    generated = {p.key for p in new_props}
    merged: list[_Property] = []
    for prop in new_props:
        mine, last = on_disk.get(prop.key), before.get(prop.key)
        if last is None:  # newly generated; the user's own property of that name wins
            merged.append(mine or prop)
        elif mine is None:  # the user deleted a generated property: it stays deleted
            continue
        elif not mine.same_value(last):  # the user changed its value (or Obsidian rewrote a link)
            merged.append(mine)
        else:
            merged.append(mine if mine.same_value(prop) else prop)
    for prop in disk_props:
        if prop.key in generated:
            continue
        last = before.get(prop.key)
        if last is None or not prop.same_value(last):
            merged.append(prop)
    if len(merged) == len(disk_props) and all(any(p is q for q in disk_props) for p in merged):
        return disk  # nothing generated changed: the user's frontmatter exactly as it is
    ours = {p.text for p in base_props} | {p.text for p in new_props}
    for prop in merged:
        if prop.text not in ours:
            prop.value()  # what the user wrote is moved or kept: it must read as YAML on its own
    if not merged and not prelude:
        return None if disk is None else ""
    return prelude + "".join(p.text for p in merged)

