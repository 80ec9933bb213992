"""The status note: what arrived and what did not, as a note in the vault.

:func:`status_note_text` lays out the note from the pass records (:mod:`tobs_sync.store_passes`) and
the store: every current problem first (chats whose last pass had errors, such as deferred or failed
chats; notes left as conflicts; deletions held by the mass-deletion guard; messages left out), then
the recent passes that brought or met something, with their counts per chat. A pass that found
nothing new is not listed, and the note has no "last checked" time, so an idle vault's status note
never changes: :class:`StatusNote` publishes it through the same :class:`~tobs_sync.publish.Publisher`
as every note (written only when its bytes change, atomically, the user's text outside the
``%% tobs %%`` markers and their own properties kept; an edit inside them makes it a conflict that is
left alone and listed by ``status``).

Chat titles, error messages and paths come from Telegram or the file system: each is made inert and
escaped (:func:`tobs_sync.names.md`) before it reaches the note, so nothing in them links, tags, runs
or hides text. Limits: the note lists at most :data:`RECENT_PASSES` passes and :data:`MAX_ITEMS` entries
per problem; ``status`` shows everything. It is written after the agent's passes (the one-shot ``sync``
and ``import`` only record theirs), never by ``render``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tobs_sync.merge import wrap_body
from tobs_sync.names import inert_text, md
from tobs_sync.publish import Draft, Outcome, Publisher
from tobs_sync.render import frontmatter_text, wikilink
from tobs_sync.store import Store
from tobs_sync.store_deletions import held
from tobs_sync.store_passes import ChatPass, PassLog, PassRecord
from tobs_sync.vault import Vault

log = logging.getLogger(__name__)

STATUS_NOTE = "status"
"""The notes index kind of the status note (a re-render leaves it alone)."""
RECENT_PASSES = 10
MAX_ITEMS = 50


def held_deletions_by_chat(store: Store) -> dict[int, int]:
    """Deletions held by the mass-deletion guard, counted by chat id, for ``status`` and the status note."""
    return {entry.chat_id: entry.count for entry in held(store)}


@dataclass(frozen=True, slots=True)
class Problems:
    """What needs the user's attention now."""

    chat_errors: Sequence[ChatPass] = ()
    """The last pass of each chat whose last pass had errors (deferred, failed, ...)."""
    conflicts: Sequence[str] = ()
    held_deletions: Mapping[str, int] = field(default_factory=dict)
    """Held deletions by chat title."""
    skipped: Mapping[str, int] = field(default_factory=dict)
    """Messages left out, by ``"chat 'Title': reason"``."""
    pass_errors: Sequence[str] = ()
    """Why the latest pass stopped before reaching its chats (a template error, say)."""

    def __bool__(self) -> bool:
        return bool(self.chat_errors or self.conflicts or self.held_deletions or self.skipped or self.pass_errors)


def current_problems(store: Store, passes: PassLog, *, exclude: str = "") -> Problems:
    """The problems the store knows of now (``exclude``: a note path not to list as a conflict)."""
    titles = {state.chat.id: state.chat.title for state in store.chat_states()}
    skipped = {
        f"chat {titles.get(chat_id, str(chat_id))!r}: {reason}": count
        for chat_id, reasons in store.skipped_counts().items()
        for reason, count in reasons.items()
    }
    latest = passes.recent(limit=1)
    return Problems(
        pass_errors=latest[0].failed if latest and not latest[0].chats else (),
        chat_errors=sorted((p for p in passes.last_by_chat().values() if p.errors), key=lambda p: p.chat_id),
        conflicts=sorted(row.path for row in store.conflicts() if row.path != exclude),
        held_deletions={titles.get(chat_id, str(chat_id)): n for chat_id, n in held_deletions_by_chat(store).items()
                        if n},
        skipped=dict(sorted(skipped.items())),
    )


def status_note_text(problems: Problems, passes: Sequence[PassRecord], tz: dt.tzinfo) -> str:
    """The note: properties, and between the markers the problems and the ``passes`` (newest first)."""
    listed = [p for p in passes if p.changed][:RECENT_PASSES]
    lines = ["# tobs-sync status", ""]
    if problems:
        lines += ["## Needs attention", ""]
        lines += [f"- The last pass stopped: {_text(error)}" for error in problems.pass_errors[:MAX_ITEMS]]
        for chat in problems.chat_errors:
            for error in chat.errors[:MAX_ITEMS]:
                lines.append(f"- {_text(chat.title)} ({_when(chat.finished, tz)}): {_text(error)}")
        if problems.conflicts:
            lines.append(f"- {_count(len(problems.conflicts), 'note')} whose generated part was edited, left as "
                         "they are (`tobs-sync render --force PATH` replaces it, keeping a backup):")
            lines += [f"    - {wikilink(path, path)}" for path in problems.conflicts[:MAX_ITEMS]]
        for title, count in list(problems.held_deletions.items())[:MAX_ITEMS]:
            lines.append(f"- {_count(count, 'deletion')} held in {_text(title)} until you confirm them")
        for what, count in list(problems.skipped.items())[:MAX_ITEMS]:
            lines.append(f"- {_count(count, 'message')} left out: {_text(what)}")
        lines.append("")
    else:
        lines += ["Nothing needs attention.", ""]
    lines += ["## Recent passes", ""]
    if not listed:
        lines.append("No pass has brought anything yet.")
    for record in listed:
        lines.append(f"- {_when(record.started, tz)}, {_text(record.trigger)}, {record.seconds:.0f} s: "
                     f"{_count(record.messages, 'new message')}, {record.notes_written} notes written")
        for chat in record.chats:
            if chat.new or chat.edited or chat.deleted or chat.errors:
                errors = f", {_count(len(chat.errors), 'error')}" if chat.errors else ""
                reread = f" ({chat.reconciled} recent messages read again)" if chat.reconciled else ""
                lines.append(f"    - {_text(chat.title)}: {chat.new} new, {chat.edited} edited, "
                             f"{chat.deleted} deleted{reread}{errors}")
        for what in (*record.deferred, *record.failed):
            lines.append(f"    - {_text(what)}")
        if record.conflicts:
            lines.append(f"    - {_count(record.conflicts, 'conflict')}")
    properties: dict[str, object] = {"tobs_status": True}
    if listed:
        properties["updated"] = _when(listed[0].finished, tz)
    return frontmatter_text(properties, wrap_body("\n".join(lines).strip("\n")))


class StatusNote:
    """Keeps the status note of one vault current (see the module docstring)."""

    def __init__(self, path: str, vault: Vault, store: Store, tz: dt.tzinfo) -> None:
        self.path = path
        """Its vault path ("" = no status note)."""
        self._vault, self._store, self._tz = vault, store, tz
        self._publisher = Publisher(vault, store)

    def update(self) -> Outcome | None:
        """Write the note if its content changed; what happened (None: no note, or its path is taken)."""
        if not self.path:
            return None
        previous = self._store.note_at(self.path)
        if previous is not None and previous.kind != STATUS_NOTE:
            log.warning("status.note: %s is a message or chat note; no status note is written", self.path)
            return None
        passes = PassLog(self._store)
        text = status_note_text(current_problems(self._store, passes, exclude=self.path), passes.recent(), self._tz)
        draft = Draft(self.path, text.encode("utf-8"), 0, kind=STATUS_NOTE, previous=previous)
        return self._publisher.publish([draft]).outcomes[0][1]


def _text(text: str) -> str:
    """Untrusted text (a title, an error message) for the note body: inert and escaped, on one line."""
    return md(inert_text(" ".join(text.split())))


def _when(when: dt.datetime, tz: dt.tzinfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _count(count: int, what: str) -> str:
    return f"{count} {what}" + ("" if count == 1 else "s")
