"""Clear errors for broken exports, and names for what an export leaves unnamed.

Telegram Desktop writes ``result.json`` as UTF-8 without a byte order mark: every string goes
through ``SerializeString`` of UTF-8 bytes (``toUtf8()``) in
Telegram/SourceFiles/export/output/export_output_json.cpp of telegramdesktop/tdesktop. A chat's
``name`` (line 1400 at commit 929032d598f7) and ``from``/``actor`` (``wrapPeerName``, 319) go
through ``StringAllowNull`` (85): ``null`` for a chat or peer without a name (Saved Messages,
deleted accounts, unnamed chats).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC
from pathlib import Path
from typing import Any

import frontmatter
import pytest

from tobs_sync.app import import_export
from tobs_sync.errors import ExportFormatError
from tobs_sync.sources.tdesktop import DesktopExport


def chat_export(name: str | None, chat_type: str, chat_id: int, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "type": chat_type, "id": chat_id, "messages": messages}


def message(ident: int, text: str, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "type": "message", "date": "2024-01-01T10:00:00",
            "date_unixtime": str(1704103200 + ident), "text": text, "text_entities": []} | fields


def open_export(path: Path) -> None:
    async def scan() -> None:
        async with DesktopExport(path, local_timezone=UTC) as source:
            async for _ in source.chats():
                pass

    asyncio.run(scan())


@pytest.mark.parametrize(
    ("text", "encoding", "named"),
    [
        ("Новости канала: привет, мир", "cp1251", "Windows-1251 (Cyrillic)"),
        ("Новости канала: привет, мир", "koi8_r", "KOI8-R (Cyrillic)"),
        ("مرحبا بالعالم، هذه قناة الأخبار", "cp1256", "Windows-1256 (Arabic)"),
        ("中文频道的新闻", "gb18030", "GBK/GB18030 (Chinese)"),
        ("Café de l'été", "cp1252", "Windows-1252 (Western European)"),
    ],
)
def test_an_export_in_a_legacy_code_page_is_refused_naming_the_encoding(
    tmp_path: Path, text: str, encoding: str, named: str
) -> None:
    data = chat_export("Chat", "public_channel", 5, [message(1, "ok"), message(2, text)])
    path = tmp_path / "result.json"
    path.write_bytes(json.dumps(data, ensure_ascii=False, indent=1).encode(encoding))
    with pytest.raises(ExportFormatError) as error:
        open_export(path)
    assert str(error.value).startswith(f"{path}: the export is not UTF-8 (line ")
    assert f"it looks like {named})" in str(error.value)


@pytest.mark.parametrize(
    ("encoding", "why"),
    [
        ("utf-16", "it is UTF-16 (little-endian), by its byte order mark"),
        ("utf-16-be", "every other byte is zero; it looks like UTF-16 (big-endian) without a byte order mark"),
        ("utf-16-le", "every other byte is zero; it looks like UTF-16 (little-endian) without a byte order mark"),
        ("utf-32", "it is UTF-32 (little-endian), by its byte order mark"),
    ],
)
def test_a_utf16_or_utf32_export_is_refused_saying_so(tmp_path: Path, encoding: str, why: str) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(json.dumps(chat_export("Чат", "public_channel", 5, [message(1, "ok")])).encode(encoding))
    with pytest.raises(ExportFormatError, match="Telegram Desktop writes UTF-8") as error:
        open_export(path)
    assert f"the export is not UTF-8 ({why})" in str(error.value)


def test_a_utf8_export_with_a_byte_order_mark_is_read(vault: Path, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    data = chat_export("Новости", "public_channel", 5, [message(1, "привет")])
    (folder / "result.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(data, ensure_ascii=False).encode("utf-8"))
    report, _ = asyncio.run(import_export(vault, folder))
    assert report.messages == 1
    assert (vault / "Telegram" / "Новости" / "Новости.md").is_file()


def test_broken_utf8_in_an_otherwise_utf8_export_names_its_line(tmp_path: Path) -> None:
    data = json.dumps(chat_export("Новости", "public_channel", 5, [message(1, "привет")]), ensure_ascii=False, indent=1)
    path = tmp_path / "result.json"
    path.write_bytes(data.encode("utf-8").replace("привет".encode(), "привет".encode()[:5] + b"\xff"))
    with pytest.raises(ExportFormatError) as error:
        open_export(path)
    line = next(n for n, text in enumerate(data.splitlines(), 1) if "привет" in text)
    assert f"the export is not UTF-8 (line {line} has bytes that are not UTF-8" in str(error.value)


def test_unnamed_chats_are_named_by_their_type_in_every_message(vault: Path, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    chats = [
        chat_export(None, "saved_messages", 5550001,
                    [message(1, "note to self", **{"from": "Robin", "from_id": "user5550001"})]),
        chat_export(None, "private_channel", 1777000301,
                    [message(2, "a post", **{"from": None, "from_id": "channel1777000301"})]),
        chat_export(None, "private_group", 301, [message(3, "hello", **{"from": None, "from_id": "user77"})]),
    ]
    (folder / "result.json").write_text(json.dumps({"chats": {"list": chats}}), encoding="utf-8")
    asyncio.run(import_export(vault, folder))
    notes = {
        post.metadata["tg_message_id"]: post
        for post in (frontmatter.load(p) for p in vault.rglob("*.md"))
        if "tg_message_id" in post.metadata
    }
    assert notes[1].metadata["chat"] == "[[Telegram/Saved Messages/Saved Messages|Saved Messages]]"
    channel = "Unnamed channel 1777000301"
    assert notes[2].metadata["chat"] == f"[[Telegram/{channel}/{channel}|{channel}]]"
    assert notes[2].metadata["sender"] == channel  # the channel's own post
    assert notes[3].metadata["chat"] == "[[Telegram/Unnamed group 301/Unnamed group 301|Unnamed group 301]]"
    assert notes[3].metadata["sender"] == "Deleted account"


def test_counts_of_one_are_singular(vault: Path, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    poll = {"question": "Beans?", "closed": False, "total_voters": 1,
            "answers": [{"text": "Yes", "voters": 1, "chosen": True}, {"text": "No", "voters": 0, "chosen": False}]}
    data = chat_export("Solo", "public_channel", 5, [message(1, "", poll=poll)])
    (folder / "result.json").write_text(json.dumps(data), encoding="utf-8")
    asyncio.run(import_export(vault, folder))
    chat_note = (vault / "Telegram" / "Solo" / "Solo.md").read_text(encoding="utf-8")
    assert "\n1 message, from 2024-01-01 to 2024-01-01.\n" in chat_note
    poll_note = next((vault / "Telegram" / "Solo").glob("2024-*.md")).read_text(encoding="utf-8")
    assert "**Poll: Beans?** — 1 voter\n- Yes — 1 vote ✓\n- No — 0 votes\n" in poll_note
