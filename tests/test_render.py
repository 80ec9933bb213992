"""Templates: sandbox, strict variables, errors with file and line, Obsidian-valid frontmatter."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import frontmatter
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tobs_sync.config import TemplateLimits
from tobs_sync.errors import TemplateError
from tobs_sync.markdown import ZWSP
from tobs_sync.model import Chat, Message
from tobs_sync.names import inert_text, live_triggers
from tobs_sync.render import MESSAGE_TEMPLATE, Renderer, _check_properties, builtin_templates_dir, merge, wikilink
from tobs_sync.template_sizes import text_size
from tobs_sync.views import chat_view, message_view

IDENTITY = {"tg_chat_id": -1001, "tg_message_id": 5}


def renderer_with(tmp_path: Path, text: str, name: str = MESSAGE_TEMPLATE) -> Renderer:
    overrides = tmp_path / "templates"
    overrides.mkdir(exist_ok=True)
    (overrides / name).write_text(text, encoding="utf-8")
    return Renderer(overrides)


def test_builtin_templates_are_found() -> None:
    assert (builtin_templates_dir() / "message.md").is_file()
    assert (builtin_templates_dir() / "chat.md").is_file()


def test_vault_template_overrides_the_builtin(tmp_path: Path) -> None:
    renderer = renderer_with(tmp_path, "custom {{ value }}")
    assert renderer.render(MESSAGE_TEMPLATE, {"value": 1}, IDENTITY).decode().endswith("custom 1\n\n%% tobs:end %%\n")
    assert renderer.template_file("chat.md") == str(builtin_templates_dir() / "chat.md")


def test_properties_become_frontmatter_with_identity_added_last(tmp_path: Path) -> None:
    renderer = renderer_with(
        tmp_path,
        '{% set properties = {"date": when, "chat": "[[Telegram/News/News|News]]", "tags": ["telegram", "x"],'
        ' "flag": "yes", "empty": none, "tg_chat_id": 999} %}body',
    )
    data = renderer.render(MESSAGE_TEMPLATE, {"when": dt.datetime(2024, 3, 1, 9, 15)}, IDENTITY).decode()
    assert data.startswith("---\n")
    assert "date: 2024-03-01T09:15:00\n" in data
    post = frontmatter.loads(data)
    assert post.metadata == {
        "date": dt.datetime(2024, 3, 1, 9, 15),
        "chat": "[[Telegram/News/News|News]]",
        "tags": ["telegram", "x"],
        "flag": "yes",
        "tg_chat_id": -1001,
        "tg_message_id": 5,
    }
    assert post.content == "%% tobs:begin %%\n\nbody\n\n%% tobs:end %%"
    # YAML 1.1 readers must see the strings as strings too: 'yes' is quoted.
    assert "flag: 'yes'" in data


def test_a_template_saved_between_renders_is_used_by_the_next_render(tmp_path: Path) -> None:
    renderer = renderer_with(tmp_path, "first")
    kept = Renderer(tmp_path / "templates", auto_reload=False)
    assert b"first" in renderer.render(MESSAGE_TEMPLATE, {}, IDENTITY)
    assert b"first" in kept.render(MESSAGE_TEMPLATE, {}, IDENTITY)
    (tmp_path / "templates" / MESSAGE_TEMPLATE).write_text("second version", encoding="utf-8")
    assert b"second version" in renderer.render(MESSAGE_TEMPLATE, {}, IDENTITY)
    assert b"first" in kept.render(MESSAGE_TEMPLATE, {}, IDENTITY)  # auto_reload=False: as first compiled


def test_template_globals_are_there_and_a_context_value_of_the_same_name_wins(tmp_path: Path) -> None:
    renderer = renderer_with(tmp_path, "{{ wikilink('a.md', 'A') }} {{ merge({'x': 1}, {'x': 2}).x }} {{ range }}")
    data = renderer.render(MESSAGE_TEMPLATE, {"range": "mine"}, IDENTITY)
    assert b"[[a|A]] 1 mine" in data


def test_syntax_error_names_template_file_and_line(tmp_path: Path) -> None:
    renderer = renderer_with(tmp_path, "line one\n{% if %}\n")
    with pytest.raises(TemplateError) as error:
        renderer.check()
    assert str(tmp_path / "templates" / "message.md") in str(error.value)
    assert "line 2" in str(error.value)


def test_undefined_variable_names_template_file_and_line(tmp_path: Path) -> None:
    renderer = renderer_with(tmp_path, "one\ntwo\n{{ message.nonexistent }}\n")
    with pytest.raises(TemplateError) as error:
        renderer.render(MESSAGE_TEMPLATE, {"message": {"id": 1}}, IDENTITY)
    assert "message.md, line 3" in str(error.value)
    assert "nonexistent" in str(error.value)


def test_sandbox_blocks_python_internals(tmp_path: Path) -> None:
    renderer = renderer_with(tmp_path, "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError, match=r"unsafe|__class__"):
        renderer.render(MESSAGE_TEMPLATE, {}, IDENTITY)


def test_sandbox_blocks_mutating_the_context(tmp_path: Path) -> None:
    renderer = renderer_with(tmp_path, "{{ items.append(3) }}")
    with pytest.raises(TemplateError):
        renderer.render(MESSAGE_TEMPLATE, {"items": [1]}, IDENTITY)


def test_dict_keys_named_like_dict_methods_still_give_the_methods_and_mutators_stay_blocked(tmp_path: Path) -> None:
    # a key of a plain dict reads as its value, except where dict has an attribute of that name
    renderer = renderer_with(tmp_path, "{{ d.a }} {{ d.items() | list | length }} {{ d.__class__ is undefined }}")
    body = renderer.render(MESSAGE_TEMPLATE, {"d": {"a": "A", "items": "I", "__class__": "C"}}, IDENTITY).decode()
    assert "A 3 True" in body
    for mutator in ("d.update({'x': 1})", "d.pop('a')", "d.setdefault('x', 1)"):
        with pytest.raises(TemplateError):
            renderer_with(tmp_path, "{{ " + mutator + " }}").render(MESSAGE_TEMPLATE, {"d": {"a": 1}}, IDENTITY)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ('"text"', "'properties' must be a mapping"),
        ('{"nested": {"a": 1}}', "property 'nested' must be text, a number, a date or a list"),
        ('{"l": [{"a": 1}]}', "property 'l' may only list"),
        ('{"": 1}', "property names must be non-empty"),
    ],
)
def test_invalid_properties_are_refused_with_the_template_named(tmp_path: Path, expression: str, message: str) -> None:
    renderer = renderer_with(tmp_path, f"{{% set properties = {expression} %}}")
    with pytest.raises(TemplateError) as error:
        renderer.render(MESSAGE_TEMPLATE, {}, IDENTITY)
    assert message in str(error.value)
    assert "message.md" in str(error.value)


def test_hostile_property_values_stay_valid_yaml_and_inert() -> None:
    hostile = "x\n---\nevil: true\n---\n[[link]]: {a: b} # c <% tp.file.title %>"
    message = Message(chat_id=-1001, id=5, date=1709283600, text="hi", sender_name=hostile)
    context = {
        "message": message_view([message], [], tz=dt.UTC, reply_path=None, note_path="Telegram/News/5.md"),
        "chat": chat_view(Chat(-1001, "News"), "Telegram/News/News.md"),
    }
    data = Renderer(None).render(MESSAGE_TEMPLATE, context, IDENTITY).decode()
    header = data.split("\n---\n", 1)[0]
    properties = yaml.safe_load(header.removeprefix("---\n"))
    assert set(properties) == {"date", "chat", "sender", "tags", "tg_chat_id", "tg_message_id"}
    assert properties["sender"] == inert_text(hostile)
    assert frontmatter.loads(data).metadata["sender"] == inert_text(hostile)
    # The value reads as sent, but "[[link]]" is no link and "<% %>" no Templater command.
    assert properties["sender"].replace(ZWSP, "") == hostile
    assert live_triggers(properties["sender"]) == []
    assert "[[link]]" not in data and "<%" not in data


def test_wikilink_labels_cannot_break_the_link() -> None:
    assert wikilink("A/B.md", "x]]|y#z^w[") == "[[A/B|x y z w]]"
    assert wikilink("A/B.md") == "[[A/B]]"
    assert wikilink("A/pic.png", "   ") == "[[A/pic.png|A/pic.png]]"


def test_md_filter_leaves_no_templater_tag_in_raw_text(tmp_path: Path) -> None:
    """`\\%>` is escaped Markdown but still a Templater closing tag: the filter breaks it too."""
    renderer = renderer_with(tmp_path, "{{ hostile | md }}")
    hostile = "<%* await app.vault.create('x.md', 'x') %> and <%+ tp.date.now() -%>"
    body = renderer.render(MESSAGE_TEMPLATE, {"hostile": hostile}, IDENTITY).decode().split("---\n")[-1]
    assert "<%" not in body and "%>" not in body
    assert "await app.vault.create" in body  # the text stays readable


def reference_check_properties(properties: Any) -> tuple[dict[str, Any], int]:
    """The property check as it was written first, and the sandbox's measure of the values it keeps."""
    if not isinstance(properties, Mapping):
        raise TemplateError("'properties' must be a mapping like {\"date\": message.date}")

    def scalar(value: Any) -> bool:
        return value is None or isinstance(value, str | int | float | bool | dt.date)

    checked: dict[str, Any] = {}
    for key, value in properties.items():
        if not isinstance(key, str) or not key.strip():
            raise TemplateError(f"property names must be non-empty text, not {key!r}")
        if isinstance(value, list | tuple):
            if not all(scalar(v) for v in value):
                raise TemplateError(f"property {key!r} may only list text, numbers or dates")
            value = [v for v in value if v is not None and v != ""]
        elif not scalar(value):
            raise TemplateError(
                f"property {key!r} must be text, a number, a date or a list, not {type(value).__name__}"
            )
        if value is None or value == "" or value == []:
            continue
        checked[key] = value
    return checked, text_size(list(checked.values()), 2**62)


class Color(enum.StrEnum):
    RED = "red"
    NONE = ""


class Level(enum.IntEnum):
    LOW = 1


class Text(str):
    pass


PROPERTY_SCALARS = st.one_of(
    st.none(), st.text(max_size=5), st.integers(), st.integers(-(10**80), 10**80), st.booleans(),
    st.floats(allow_nan=True), st.dates(), st.datetimes(), st.sampled_from([Color.RED, Color.NONE, Level.LOW]),
    st.text(max_size=3).map(Text),
)
PROPERTY_VALUES = st.one_of(
    PROPERTY_SCALARS, st.lists(PROPERTY_SCALARS, max_size=4), st.tuples(PROPERTY_SCALARS, PROPERTY_SCALARS),
    st.lists(st.one_of(PROPERTY_SCALARS, st.lists(st.integers(), max_size=1)), max_size=3),
    st.sampled_from([{}, {"a": 1}, b"x", object()]),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.one_of(st.text(max_size=4), st.integers(0, 2)), PROPERTY_VALUES, max_size=6))
def test_the_property_check_keeps_and_measures_what_the_general_rules_do(properties: dict[Any, Any]) -> None:
    # exact scalar types are checked and measured directly, the rest by the general rules
    try:
        expected = reference_check_properties(properties)
    except TemplateError as error:
        with pytest.raises(TemplateError) as raised:
            _check_properties(properties)
        assert str(raised.value) == str(error)
        return
    checked, size = _check_properties(properties)
    assert size == expected[1]
    assert list(checked.items()) == list(expected[0].items())
    assert [type(v) for v in checked.values()] == [type(v) for v in expected[0].values()]


def test_properties_too_large_for_the_render_are_refused_with_their_measure(tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / MESSAGE_TEMPLATE).write_text('{% set properties = {"a": text, "b": 7} %}', encoding="utf-8")
    renderer = Renderer(overrides, limits=TemplateLimits(max_output_chars=1000))
    assert b"a: " in renderer.render(MESSAGE_TEMPLATE, {"text": "x" * 988}, IDENTITY)  # 2 + 992 + 6 fit
    with pytest.raises(TemplateError, match=r"the properties would make 1001 characters or list items"):
        renderer.render(MESSAGE_TEMPLATE, {"text": "x" * 989}, IDENTITY)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(st.sampled_from("abcde"), st.integers(), max_size=4), st.booleans()),
                max_size=4))
def test_merge_keeps_the_first_value_of_each_key_in_first_seen_order(maps: list[tuple[dict[str, int], bool]]) -> None:
    # the first plain dict is copied in one step; a read-only mapping first goes key by key
    mappings = [MappingProxyType(m) if proxied else m for m, proxied in maps]
    expected: dict[str, int] = {}
    for mapping in mappings:
        for key, value in mapping.items():
            expected.setdefault(key, value)
    merged = merge(*mappings)
    assert list(merged.items()) == list(expected.items())
    assert all(merged is not m for m in mappings)
