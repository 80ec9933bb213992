"""Topic values for templates and note paths: safe whatever a topic is called."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tobs_sync.model import GENERAL_TOPIC_ID, Message
from tobs_sync.names import inert_text, md
from tobs_sync.views import message_view, topic_path_value

HOSTILE = "<% tp.file.cursor() %> [[Secret]] #tag"


def view(message: Message) -> dict[str, Any]:
    return message_view([message], [], tz=dt.UTC, reply_path=None, note_path="Telegram/x/1.md")


def test_a_hostile_topic_title_is_inert_in_properties_and_escaped_in_the_body() -> None:
    message = Message(-1001, 5, 0, topic_id=4, topic_title=HOSTILE)
    values = view(message)
    assert (values["topic_id"], values["topic"], values["topic_md"]) == (4, inert_text(HOSTILE), md(HOSTILE))
    assert "<%" not in values["topic"] and "[[" not in values["topic"]
    assert values["raw"]["topic"] == HOSTILE
    assert topic_path_value(message) == inert_text(HOSTILE)


def test_topic_values_for_the_general_topic_an_unnamed_topic_and_no_topic() -> None:
    general = Message(-1001, 5, 0, topic_id=GENERAL_TOPIC_ID)
    unnamed = Message(-1001, 6, 0, topic_id=40)
    outside = Message(-1001, 7, 0)
    assert [(view(m)["topic_id"], view(m)["topic"]) for m in (general, unnamed, outside)] == [
        (1, "General"), (40, None), (None, None)
    ]
    assert [topic_path_value(m) for m in (general, unnamed, outside)] == ["General", "topic 40", "General"]
