"""The fast property emitter writes exactly PyYAML's bytes, and PyYAML reads them back equal."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import frontmatter
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tobs_sync import properties_yaml
from tobs_sync.properties_yaml import dump_properties
from tobs_sync.render import _PropertyDumper, frontmatter_text


def pyyaml_reference(properties: dict[str, Any]) -> str:
    return yaml.dump(properties, Dumper=_PropertyDumper, default_flow_style=False, allow_unicode=True,
                     sort_keys=False)


HOSTILE_WORDS = [
    "yes", "no", "on", "off", "Yes", "NO", "y", "n", "true", "False", "null", "~", "Null", "<<", "=",
    "123", "-5", "0x1F", "0o17", "1_000", "1e5", "3.14", ".inf", "-.inf", ".nan", "1:20", "190:20:30",
    "2024-01-02", "2024-1-2 3:04:05", "2024-01-02T03:04:05Z", "---", "...", "--- x", "... y",
    "a: b", "a:b", "a #b", "a#b", "#tag", "- item", "-item", "? q", "?q", ": v", ":v", "!tag", "&anchor",
    "*alias", "%dir", "@at", "`tick`", "'single'", '"double"', "it's", "[[Link|label]]", "{x}", "a, b",
    "|", ">", "  ", " lead", "trail ", "\u00a0nbsp\u00a0", "line\u2028sep", "para\u2029sep", "nel\x85x",
    "tab\tx", "bell\x07", "nul\x00", "bom\ufeff", "\U0001f600 astral", "\U0010ffff", "\ue000", "\ufffe",
    "multi\nline", "trailing\n", "\nleading", "é ü 漢字", "x" * 79, ("word " * 30).strip(), "a" * 200,
]

hostile_text = st.one_of(
    st.sampled_from(HOSTILE_WORDS),
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list(" :#-?!&*%@`'\"[]{},|>.\n\t\u00a0\u2028ab1yesno")), max_size=30),
    st.lists(st.sampled_from(["word", " ", "x" * 12, ":", "#", "'"]), max_size=30).map("".join),
)
dates = st.dates(min_value=dt.date(1, 1, 1))
datetimes = st.datetimes(min_value=dt.datetime(1, 1, 1))
scalars = st.one_of(
    hostile_text, st.integers(), st.integers(min_value=-(10**200), max_value=10**200), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True), dates, datetimes,
)
keys = st.one_of(
    st.sampled_from(["date", "tags", "tg_chat_id", "yes", "a: b", "#k", "- k", "123", "k" * 122, "k" * 123, "x " * 70]),
    hostile_text,
)
values = st.one_of(scalars, st.lists(scalars, max_size=5))
property_sets = st.dictionaries(keys, values, max_size=8)


def fast_path_takes(properties: dict[str, Any]) -> bool:
    try:
        properties_yaml._fast_dump(properties)
    except properties_yaml._NotFast:
        return False
    return True


def equal_after_reading(read: Any, written: Any) -> bool:
    if isinstance(written, list):
        return isinstance(read, list) and len(read) == len(written) and all(map(equal_after_reading, read, written))
    if isinstance(written, float) and math.isnan(written):
        return isinstance(read, float) and math.isnan(read)
    if type(written) is dt.datetime:
        return read == written.replace(microsecond=0, tzinfo=None)
    return read == written and type(read) is type(written)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(property_sets)
def test_emitter_writes_pyyamls_bytes_for_any_property_set(properties: dict[str, Any]) -> None:
    try:
        expected = pyyaml_reference(properties)
    except (yaml.YAMLError, ValueError):  # e.g. an int too long for str(): PyYAML's own error stands
        with pytest.raises((yaml.YAMLError, ValueError)):
            dump_properties(properties, _PropertyDumper)
        return
    written = dump_properties(properties, _PropertyDumper)
    assert written == expected
    if fast_path_takes(properties):  # what PyYAML itself writes and misreads (U+0085 in quotes) is not ours
        read = yaml.safe_load(written) or {}
        assert list(read) == list(properties)
        assert all(equal_after_reading(read[key], value) for key, value in properties.items())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(), st.booleans(), dates, datetimes.map(lambda d: d.replace(microsecond=0)),
                          datetimes), min_size=1, max_size=4))
def test_ints_booleans_dates_and_whole_second_datetimes_are_written_as_pyyaml_writes_them(values: list[Any]) -> None:
    # written directly (str(), true/false, isoformat()) instead of by the style check and the resolver
    copies = [value.replace() if isinstance(value, dt.date) else value for value in values]  # no alias
    properties = {f"k{i}": value for i, value in enumerate(values)} | {"list": copies}
    assert dump_properties(properties, _PropertyDumper) == pyyaml_reference(properties)


@settings(max_examples=300, deadline=None)
@given(property_sets.filter(bool), st.text(max_size=60))
def test_note_text_is_laid_out_as_python_frontmatter_lays_it_out(properties: dict[str, Any], body: str) -> None:
    post = frontmatter.Post(body.strip("\n"))
    post.metadata.update(properties)
    try:
        expected = frontmatter.dumps(post, Dumper=_PropertyDumper, sort_keys=False)
    except (yaml.YAMLError, ValueError):
        return
    assert frontmatter_text(properties, body) == expected


def test_typical_note_properties_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise AssertionError("PyYAML was asked to emit")

    date = dt.datetime(2024, 5, 6, 7, 8, 9)
    properties = {
        "date": date, "edited": dt.date(2024, 5, 7), "chat": "[[Chats/Family/Family|Family]]", "sender": "Ann: yes",
        "tags": ["telegram", "family"], "duration": 12.5, "width": 1280, "silent": False,
        "tg_chat_id": -100123, "tg_message_id": [4, 5, 6],
        "reply_to": "[[Telegram/Family - Trips-Plans/2024/2024-05-06 070809 1234|2024-05-06 07:08 it's a reply]]",
        "title": ("long words " * 20).strip(),  # folded by PyYAML at 80 columns
        "attachments": ["[[Telegram/Family - Trips-Plans/_attachments/2024-05-06 a long photo name.jpg]]"],
    }
    expected = pyyaml_reference(properties)
    monkeypatch.setattr(properties_yaml.yaml, "dump", refuse)
    assert dump_properties(properties, _PropertyDumper) == expected


@pytest.mark.parametrize("properties", [
    {"k" * 123: "a key PyYAML writes as an explicit '? key'"},
    {"text": "two\nlines"},
    {"text": "tab\there"},
    {"0\n": "a key that reads as a number only up to its line break"},
    {"first": (same := dt.date(2024, 1, 2)), "second": same},  # an anchor and an alias
    {"old": dt.date(999, 1, 1)},  # "999-01-01" does not read back as a date
    {"empty": []},
])
def test_values_outside_the_fast_class_are_left_to_pyyaml(properties: dict[str, Any]) -> None:
    assert dump_properties(properties, _PropertyDumper) == pyyaml_reference(properties)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(hostile_text, st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20)).filter(bool))
def test_the_quick_plain_check_never_allows_what_the_character_loop_refuses(text: str) -> None:
    """The regular expression that spares most texts the per-character loop only says yes where the loop does."""
    if properties_yaml._SURELY_PLAIN.fullmatch(text):
        assert properties_yaml._plain_by_characters(text) is True
