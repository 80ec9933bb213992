"""The README's table of template variables lists every value the message template receives."""

from __future__ import annotations

import datetime as dt
import re

from conftest import PROJECT

from tobs_sync.model import Forward, MediaRef, Message, Poll, Reaction, Reply, ServiceAction
from tobs_sync.views import StoredMedia, message_view

NESTED = ("forward", "reply", "action")


def table_rows() -> dict[str, str]:
    """Each row of the ``message.md`` table, by the variables its first cell names."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("**`message.md`** receives"):].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        first, _, rest = line.strip("|").partition("|")
        for name in re.findall(r"`([^`]+)`", first):
            rows[name] = rest
    return rows


def full_view() -> dict[str, object]:
    message = Message(
        chat_id=-1001, id=7, date=1714557600, text="hi", sender_name="Sam", via_bot="@gif",
        forward=Forward(from_name="News", saved_from="Tips", post_author="Ed"),
        reply=Reply(3, chat_id=-1002), reactions=(Reaction("emoji", 2, emoji="👍"),),
        media=(MediaRef("sticker", "x", emoji="🐸", duration=3.0),),
        action=ServiceAction("pin_message", message_id=3), poll=Poll("Q"),
    )
    media = [StoredMedia(message.media[0], None, "unavailable", reason="gone")]
    return message_view([message], media, tz=dt.UTC, note_path="Telegram/C/7.md")


def test_every_message_variable_is_in_the_readme_table() -> None:
    rows = table_rows()
    view = full_view()
    missing = [f"message.{key}" for key in view if f"message.{key}" not in rows]
    assert missing == []
    for key in NESTED:
        value = view[key]
        assert isinstance(value, dict)
        missing = [name for name in value if f"`{name}`" not in rows[f"message.{key}"]]
        assert missing == [], key
    media = view["media"]
    assert isinstance(media, list)
    missing = [name for name in media[0] if f"`{name}`" not in rows["message.media"]]
    assert missing == []
