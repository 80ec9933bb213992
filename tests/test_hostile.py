"""A hostile corpus through the real pipeline: no live trigger anywhere in the vault.

Every string Telegram or an export can carry (chat titles, sender names, forward origins, post
authors, file names, captions, poll answers, places, contacts, service actions, reply quotes,
usernames, unknown export fields) is set to text holding every trigger Obsidian, Templater,
Dataview or Meta Bind acts on. The export is imported with ``import_export``; an account that
an export cannot describe (post authors, quotes, usernames) is synced from an in-memory source
through the same app; then every note is rendered again (``render``). The scan reads whole files,
frontmatter included, and every file and folder name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import frontmatter
import pytest
import yaml

from tobs_sync.app import App, import_export
from tobs_sync.errors import MediaUnavailable
from tobs_sync.markdown import ZWSP
from tobs_sync.merge import MARKERS
from tobs_sync.model import (
    Chat,
    ChatKind,
    Contact,
    Forward,
    Location,
    MediaRef,
    Message,
    Poll,
    PollAnswer,
    Reaction,
    Reply,
    ServiceAction,
)
from tobs_sync.names import live_triggers
from tobs_sync.note_links import NoteLinks
from tobs_sync.views import StoredMedia, chat_view, message_view

TRIGGERS = (
    "<%* app.vault.create('pwned.md', 'x') %>",
    "<% tp.system.clipboard() %>",
    "<%+ tp.date.now() -%>",
    "<%- tp.file.title _%>",
    "<%_ 1 %>",
    "[[PWN]]",
    "![[pwn.png]]",
    "![x](https://tracker.example/p.png)",
    "%%PWN%%",
    "`= this.file.name`",
    "`$= dv.el('b', 'pwn')`",
    "` INPUT[toggle:pwn]`",
    "`VIEW[{pwn}]`",
    "pwn:: 1",
    "#pwn",
    "<img src=x onerror=alert(1)>",
    "<!-- pwn -->",
    "```dataviewjs",
    "~~~query",
    "~~\u200b~",
)
BLOCK = "\n```dataviewjs\ndv.paragraph('pwn')\n```\n%%\n<%* tp.file.create_new('x') %>"


def hostile(label: str) -> str:
    """``label`` followed by every trigger: one line, as names and titles are."""
    return f"{label} " + " ".join(TRIGGERS)


def hostile_block(label: str) -> str:
    """Several lines: message text and captions, with fences and comments on lines of their own."""
    return hostile(label) + BLOCK


# --- the scan ----------------------------------------------------------------------------

OWN_LINK = re.compile(r"!?\[\[([^\[\]|]+)(?:\|([^\[\]]*))?\]\]")
MARKDOWN_ESCAPE = re.compile(r"\\[!-/:-@\[-`{-~]")
HTML_ENTITY = re.compile(r"&#?[A-Za-z0-9]+;")
WEB_LINK_TARGET = re.compile(r"\]\(https?://[^\s)]*\)")


def live_outside_own_links(text: str, vault: Path) -> list[str]:
    """Live triggers of ``text`` except tobs-sync's own links, which must reach a vault file and
    carry an inert label."""
    problems: list[str] = []

    def own_link(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2) or ""
        if not ((vault / target).is_file() or (vault / f"{target}.md").is_file()):
            problems.append(f"link to no file: {match.group()}")
        problems.extend(f"in the label of {match.group()}: {t}" for t in live_triggers(label))
        return " "

    rest = OWN_LINK.sub(own_link, text)
    return problems + live_triggers(rest)


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_in(k) + strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def scan_note(path: Path, vault: Path) -> list[str]:
    raw = path.read_text(encoding="utf-8")
    # Templater reads the file as it is: no escape, quote or Markdown context counts.
    problems = [f"Templater tag {tag!r}" for tag in re.findall(r"<%|%>", raw)]
    assert raw.startswith("---\n")
    header, body = raw[4:].split("\n---\n", 1)
    body = "\n".join(line for line in body.split("\n") if line not in MARKERS)  # tobs-sync's own comments
    for value in strings_in(yaml.safe_load(header)):  # values as Obsidian reads them (YAML folds lines)
        problems += live_outside_own_links(value, vault)
    # In the body, backslash escapes and character references are text, and a web link's target
    # (``#map=...`` of a map link) is no tag.
    body = MARKDOWN_ESCAPE.sub(" ", HTML_ENTITY.sub(" ", body))
    problems += live_outside_own_links(WEB_LINK_TARGET.sub("] ", body), vault)
    return problems


def scan_vault(vault: Path) -> dict[str, list[str]]:
    """Every problem, by vault path: in notes, and in every file and folder name."""
    found: dict[str, list[str]] = {}
    for path in sorted(vault.rglob("*")):
        relative = path.relative_to(vault)
        if relative.parts[0] in (".tobs", ".obsidian"):
            continue
        problems = [f"in the name: {t}" for t in live_triggers(path.name)]
        if path.is_file() and path.suffix == ".md":
            problems += scan_note(path, vault)
        if problems:
            found[relative.as_posix()] = problems
    return found


def notes_by_message(vault: Path) -> dict[tuple[int, int], frontmatter.Post]:
    posts = {}
    for path in vault.rglob("*.md"):
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
        ids = post.metadata.get("tg_message_id")
        if ids is None:
            continue  # a chat's index note
        for message_id in ids if isinstance(ids, list) else [ids]:
            posts[(post.metadata["tg_chat_id"], message_id)] = post
    return posts


def shown(value: str) -> str:
    """What a reader sees of inert text: separators are invisible, fence lookalikes look alike."""
    return value.replace(ZWSP, "").replace("\u02cb", "`").replace("\u02dc", "~")


# --- the export --------------------------------------------------------------------------

GROUP_ID, PERSON_ID = 1777000666, 5550666
GROUP = -1001777000666


def message(ident: int, minute: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": ident,
        "type": "message",
        "date": f"2024-05-01T10:{minute:02d}:00",
        "date_unixtime": str(1714557600 + 60 * minute),
        "from": hostile("Mallory"),
        "from_id": "user5550666",
        "text": "",
        "text_entities": [],
    }
    return base | fields


def hostile_export(folder: Path) -> Path:
    (folder / "files").mkdir(parents=True)
    (folder / "files" / "report.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (folder / "files" / "note.md").write_text(hostile_block("Attached note"), encoding="utf-8")
    text = hostile_block("Text")
    group_messages = [
        {
            "id": 1, "type": "service", "date": "2024-05-01T10:00:00", "date_unixtime": "1714557600",
            "actor": hostile("Actor"), "actor_id": "user5550666", "action": "create_group",
            "title": hostile("Group title"), "members": [hostile("Member"), None],
            "pwn_detail": hostile("Detail"), "text": "", "text_entities": [],
        },
        message(
            2, 1, author=hostile("Signature"), via_bot=hostile("Bot"), forwarded_from=hostile("Origin"),
            saved_from=hostile("Saved from"), text=text, text_entities=[{"type": "plain", "text": text}],
            reactions=[
                {"type": "emoji", "count": 1, "emoji": hostile("Reaction"),
                 "recent": [{"from": hostile("Reactor"), "from_id": "user5550666", "date": "2024-05-01T10:02:00"}]},
                {"type": hostile("future"), "count": 2},
            ],
        ),
        message(
            3, 2, file="files/report.zip", file_name=hostile("File") + " report.zip", mime_type=hostile("mime"),
            text=hostile_block("Caption"), reply_to_message_id=2,
        ),
        message(4, 3, file="files/note.md", file_name=hostile("Note") + ".md", mime_type="text/markdown"),
        message(5, 4, file=f"(File not included. {hostile('Reason')})", media_type="voice_message"),
        message(
            6, 5,
            poll={"question": hostile("Question"), "closed": True, "total_voters": 1,
                  "answers": [{"text": hostile("Answer"), "voters": 1, "chosen": True}]},
        ),
        message(
            7, 6, location_information={"latitude": 51.5, "longitude": -0.12},
            place_name=hostile("Place"), address=hostile("Address"),
        ),
        message(
            8, 7,
            contact_information={"first_name": hostile("First"), "last_name": hostile("Last"),
                                 "phone_number": hostile("Phone")},
        ),
        {
            "id": 9, "type": "service", "date": "2024-05-01T10:08:00", "date_unixtime": "1714558080",
            "actor": hostile("Actor"), "actor_id": "user5550666", "action": "custom_action",
            "information_text": hostile("Information"), "text": "", "text_entities": [],
        },
        message(
            10, 9,
            text=["Code ", {"type": "code", "text": "= dv.el('b', 'pwn')"}, " ",
                  {"type": "pre", "text": "dv.el('b', 'pwn')", "language": "dataviewjs"}, " ",
                  {"type": "text_link", "text": hostile("Link"), "href": "javascript:alert(1)"}],
        ),
        message(11, 10, file="(File not included.)", media_type="sticker", sticker_emoji=hostile("Sticker")),
        message(
            12, 11, file="(File not included.)", media_type="audio_file", performer=hostile("Performer"),
            title=hostile("Title"), duration_seconds=61, reply_to_message_id=20, reply_to_peer_id="user5550666",
        ),
        {
            "id": 13, "type": "service", "date": "2024-05-01T10:12:00", "date_unixtime": "1714558320",
            "actor": hostile("Actor"), "actor_id": "user5550666", "action": "join_group_by_link",
            "inviter": hostile("Inviter"), "text": "", "text_entities": [],
        },
        {
            "id": 14, "type": "service", "date": "2024-05-01T10:13:00", "date_unixtime": "1714558380",
            "actor": hostile("Actor"), "actor_id": "user5550666", "action": "pin_message", "message_id": 2,
            "text": "", "text_entities": [],
        },
    ]
    data = {
        "about": "hostile corpus",
        "chats": {
            "about": "",
            "list": [
                {"name": hostile("Evil <% tp.system.clipboard() %> Chat"), "type": "private_supergroup",
                 "id": GROUP_ID, "messages": group_messages},
                {"name": hostile("Mallory"), "type": "personal_chat", "id": PERSON_ID,
                 "messages": [message(20, 10, text=hostile("Hi"))]},
            ],
        },
    }
    (folder / "result.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def test_hostile_export_leaves_no_live_trigger_in_any_file_or_name(vault: Path, tmp_path: Path) -> None:
    asyncio.run(import_export(vault, hostile_export(tmp_path / "export")))
    assert scan_vault(vault) == {}
    # Not vacuous: the hostile text is in the vault, reading as sent.
    notes = notes_by_message(vault)
    chat_note = next(p for p in vault.rglob("*.md") if frontmatter.load(p).metadata.get("tg_message_id") is None
                     and frontmatter.load(p).metadata["tg_chat_id"] == GROUP)
    chat_properties = frontmatter.load(chat_note).metadata
    assert shown(chat_properties["title"]) == shown(hostile("Evil <% tp.system.clipboard() %> Chat"))
    assert [shown(alias) for alias in chat_properties["aliases"]] == [shown(chat_properties["title"])]
    forwarded = notes[(GROUP, 2)].metadata
    assert shown(forwarded["sender"]) == shown(hostile("Mallory"))
    assert shown(forwarded["author"]) == shown(hostile("Signature"))
    assert shown(forwarded["forwarded_from"]) == shown(hostile("Origin"))
    assert "<%* app.vault" in shown(forwarded["chat"])
    file_note = notes[(GROUP, 3)].content
    assert "report.zip" in file_note and "File <" in shown(file_note)
    assert len(notes) == 15
    assert shown(forwarded["reactions"][0]) == shown(hostile("Reaction") + " 1")
    assert shown(notes[(GROUP, 11)].metadata["emoji"]) == shown(hostile("Sticker"))
    assert "from Inviter &lt;" in shown(notes[(GROUP, 13)].content)


# --- an account an export cannot describe ------------------------------------------------

CHANNEL = -1001777000777


class MemorySource:
    """A Source over fixed chats and messages; media bytes by locator."""

    name = "memory"

    def __init__(self, chats: dict[Chat, list[Message]], files: dict[str, bytes]) -> None:
        self._chats, self._files = chats, files

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def chats(self) -> AsyncIterator[Chat]:
        for chat in self._chats:
            yield chat

    async def batches(self, chat: Chat, after: int) -> AsyncIterator[Sequence[Message]]:
        batch = [m for m in self._chats[chat] if m.id > after]
        if batch:
            yield batch

    async def media_chunks(self, media: MediaRef, offset: int = 0) -> AsyncIterator[bytes]:
        if media.locator not in self._files:
            raise MediaUnavailable(f"{media.locator}: not in this source")
        yield self._files[media.locator][offset:]


def hostile_account() -> MemorySource:
    channel = Chat(CHANNEL, hostile("Channel"), ChatKind.CHANNEL, username="pwn_channel")
    other = Chat(5550777, hostile("Person"), ChatKind.USER, username=hostile("user"))
    png = b"\x89PNG\r\n\x1a\n" + bytes(32)
    base = {"chat_id": CHANNEL, "sender_id": CHANNEL, "sender_name": hostile("Channel")}
    posts = [
        Message(id=1, date=1714557600, text=hostile_block("Post"), author=hostile("Author"), **base),
        Message(
            id=2, date=1714557660, text="Forwarded", **base,
            forward=Forward(from_name=hostile("Origin"), post_author=hostile("Post author"), date=1714550000),
            reply=Reply(1, quote_text=hostile_block("Quote")),
        ),
        Message(
            id=3, date=1714557720, text=hostile("Album caption"), grouped_id=9, **base,
            media=(MediaRef("photo", "pic", file_name=hostile("Picture") + ".png", mime_type="image/png",
                            file_key="k-pic"),),
        ),
        Message(
            id=4, date=1714557720, grouped_id=9, **base,
            media=(MediaRef("document", "zip", file_name=hostile("Archive") + ".zip", performer=hostile("P"),
                            title=hostile("T"), emoji=hostile("E"), file_key="k-zip"),),
        ),
        Message(
            id=5, date=1714557780, **base,
            media=(MediaRef(hostile("kind"), "gone", file_name=hostile("Gone") + ".bin"),),
            extra={hostile("key"): [hostile("value"), {"nested": hostile("deep")}]},
        ),
    ]
    posts += [
        Message(id=6, date=1714557840, text="Answer elsewhere", reply=Reply(1, chat_id=other.id), **base,
                reactions=(Reaction("emoji", 3, emoji=hostile("Emoji")), Reaction("custom_emoji", 1, document_id=5))),
        Message(id=7, date=1714557900, kind="service", action=ServiceAction("pin_message", message_id=6), **base),
        Message(id=8, date=1714557960, kind="service", **base, action=ServiceAction(
            "migrate_from_group", hostile("Old group"), details={"chat_id": -5550888}
        )),
    ]
    person = [Message(chat_id=other.id, id=1, date=1714557600, text="hello", sender_name=hostile("Person"))]
    return MemorySource({channel: posts, other: person}, {"pic": png, "zip": b"PK\x05\x06" + bytes(18)})


def test_hostile_account_leaves_no_live_trigger_in_any_file_or_name(vault: Path) -> None:
    with App.open(vault) as app:
        report = asyncio.run(app.sync_source(hostile_account()))
    assert report.chats == 2 and report.failed == []
    assert scan_vault(vault) == {}
    notes = notes_by_message(vault)
    forwarded = notes[(CHANNEL, 2)]
    assert shown(forwarded.metadata["forwarded_from"]) == shown(hostile("Origin"))
    assert "> Quote &lt;\\%\\* app.vault" in shown(forwarded.content)
    album = notes[(CHANNEL, 3)]
    assert "Archive <" in shown(album.content)  # the label of the non-embeddable file
    chat_notes = [p for p in vault.rglob("*.md") if "tg_message_id" not in frontmatter.load(p).metadata]
    assert len(chat_notes) == 2
    assert any("[@pwn\\_channel](https://t.me/pwn_channel)" in p.read_text(encoding="utf-8") for p in chat_notes)


@pytest.mark.parametrize("source", ["export", "account"])
def test_rendering_hostile_notes_again_leaves_no_live_trigger(vault: Path, tmp_path: Path, source: str) -> None:
    if source == "export":
        asyncio.run(import_export(vault, hostile_export(tmp_path / "export")))
    else:
        with App.open(vault) as app:
            asyncio.run(app.sync_source(hostile_account()))
    for note in vault.rglob("*.md"):  # force every note to be rendered and written again
        if ".tobs" not in note.parts:
            note.unlink()
    with App.open(vault) as app:
        report = app.synchronizer.render_all()
    assert report.notes_written > 0 and report.conflicts == []
    assert scan_vault(vault) == {}


# --- the template context ----------------------------------------------------------------

MARKDOWN_KEYS = {"body", "label", "service", "extra_lines"}
LINK_KEYS = {"link", "embed", "pinned_link"}
URL_KEYS = {"map_url", "url"}  # built by tobs-sync from numbers or a checked username


def context_problems(value: Any, key: str = "") -> list[str]:
    """Live triggers in a template context, outside ``raw``: escaped Markdown (``*_md`` ...) is read
    as Obsidian reads it (escapes are text) but as Templater reads it too (raw); links may only be
    links, with inert labels."""
    if key == "raw":
        return []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in context_problems(k, "") + context_problems(v, str(k))]
    if isinstance(value, list | tuple):
        return [p for v in value for p in context_problems(v, key)]
    if not isinstance(value, str):
        return []
    if key in URL_KEYS:
        return [] if re.fullmatch(r"https://[\w./?=&#-]+", value) else [f"{key}: not a plain URL: {value}"]
    if key in LINK_KEYS:
        return [f"{key}: {t}" for m in OWN_LINK.finditer(value) for t in live_triggers(m.group(2) or "")] + [
            f"{key}: {t}" for t in live_triggers(OWN_LINK.sub(" ", value))
        ]
    if key.endswith("_md") or key in MARKDOWN_KEYS:
        templater = [f"{key}: Templater {t}" for t in re.findall(r"<%|%>", value)]
        return templater + [f"{key}: {t}" for t in live_triggers(MARKDOWN_ESCAPE.sub(" ", HTML_ENTITY.sub(" ", value)))]
    return [f"{key}: {t}" for t in live_triggers(value)]


def test_every_text_value_in_the_template_context_is_inert_unless_raw() -> None:
    h = hostile_block
    message = Message(
        chat_id=CHANNEL, id=7, date=1714557600, kind=h("kind"), text=h("Text"), sender_name=h("Sender"),
        author=h("Author"), via_bot=h("Bot"), edited=1714557700,
        forward=Forward(from_name=h("Origin"), post_author=h("Post author"), saved_from=h("Saved")),
        reply=Reply(6, chat_id=5550777, quote_text=h("Quote")),
        media=(MediaRef(h("kind"), "x", file_name=h("File"), mime_type=h("mime"), performer=h("Performer"),
                        title=h("Title"), emoji=h("Emoji"), duration=61.0),),
        reactions=(Reaction(h("kind"), 2, emoji=h("Emoji")), Reaction(h("kind"), 1)),
        action=ServiceAction(h("action"), title=h("Title"), members=(h("Member"),), text=None,
                             details={h("key"): h("detail")}),
        poll=Poll(h("Question"), (PollAnswer(h("Answer"), 1, True),)),
        location=Location(51.5, -0.12, title=h("Place"), address=h("Address")),
        contact=Contact(h("First"), h("Last"), h("Phone")),
        extra={h("key"): [h("value"), {h("nested"): h("deep")}]},
    )
    stored = [
        StoredMedia(message.media[0], "Telegram/_attachments/file.zip", "stored", properties={"title": h("Tag")}),
        StoredMedia(message.media[0], None, "unavailable", reason=h("Reason")),
    ]
    chat = Chat(CHANNEL, h("Channel"), h("kind"), username=h("user"))
    links = NoteLinks("Telegram/C/6.md", h("Other chat"), "Telegram/C/5.md")
    view = message_view([message], stored, tz=dt.UTC, links=links, note_path="Telegram/C/7.md")
    for action in (ServiceAction("pin_message", message_id=5), ServiceAction(
        "join_group_by_link", details={"inviter": h("Inviter")}
    ), ServiceAction("migrate_to_supergroup", details={"channel_id": -100}), ServiceAction(
        "remove_members", members=(h("Sender"),)
    )):
        other = replace(message, action=action)
        assert context_problems(message_view([other], [], tz=dt.UTC, links=links, note_path="x.md")) == []
    context = {"message": view, "chat": chat_view(chat, "Telegram/C/C.md")}
    assert context_problems(context) == []
    # The text as sent is there, by name.
    assert view["raw"]["text"] == h("Text") and view["raw"]["sender"] == h("Sender")
    assert view["forward"]["raw"]["post_author"] == h("Post author")
    assert view["media"][0]["raw"]["file_name"] == h("File")
    assert context["chat"]["raw"]["title"] == h("Channel")
    assert shown(view["forward"]["post_author"]) == shown(h("Post author"))
