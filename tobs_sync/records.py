"""Model objects <-> plain, msgpack-ready records, and back.

The message cache stores every message as a compact record: fields equal to their default are
left out, nested dataclasses become nested records, tuples become lists. Decoding ignores
keys it does not know (written by a newer version) instead of failing, so a downgrade can still
re-render. Limits: only the dataclasses of :mod:`tobs_sync.model` are supported, and values in
``extra``/``details`` must already be JSON-like (what the sources put there).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import msgpack

from tobs_sync.model import (
    Chat,
    Contact,
    Entity,
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

RECORD_VERSION = 1

_NESTED: Mapping[str, type] = MappingProxyType(
    {
        "entities": Entity,
        "media": MediaRef,
        "forward": Forward,
        "reply": Reply,
        "action": ServiceAction,
        "poll": Poll,
        "answers": PollAnswer,
        "location": Location,
        "contact": Contact,
        "reactions": Reaction,
    }
)
_TUPLE_FIELDS = frozenset({"entities", "media", "answers", "members", "reactions"})
_CONVERTED = _TUPLE_FIELDS | frozenset(_NESTED)
"""Keys whose values are rebuilt (nested records, tuples) rather than taken as they are."""


def to_record(obj: Any) -> dict[str, Any]:
    """A dataclass instance as a dict of its non-default fields (nested ones converted too)."""
    record: dict[str, Any] = {}
    for name, default in _defaults(type(obj)):
        value = getattr(obj, name)
        if value is default:  # most fields of most messages: None, "", () (never the no-default marker)
            continue
        if default is not _NO_DEFAULT and bool(value == default):
            continue
        value_type = type(value)
        if value_type in _PLAIN_TYPES:
            pass
        elif value_type is tuple:
            value = [to_record(v) if _is_dataclass_type(type(v)) else v for v in value]
        elif dataclasses.is_dataclass(value):
            value = to_record(value)
        elif isinstance(value, tuple):
            value = [to_record(v) if dataclasses.is_dataclass(v) else v for v in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        record[name] = value
    return record


@functools.cache
def _is_dataclass_type(cls: type) -> bool:
    return dataclasses.is_dataclass(cls)


_NO_DEFAULT = object()
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


@functools.cache
def _defaults(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field of ``cls`` with its default (a factory's made once: they make empty values)."""
    return tuple((f.name, _default(f)) for f in dataclasses.fields(cls))


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _NO_DEFAULT


def from_record(cls: type, record: Mapping[str, Any]) -> Any:
    """Rebuild ``cls`` from :func:`to_record` output; unknown keys are ignored."""
    names = _field_names(cls)
    kwargs: dict[str, Any] = {}
    for key, value in record.items():
        if key not in names:
            continue
        if key in _CONVERTED and value is not None:  # plain values (most keys) are taken as they are
            nested = _NESTED.get(key)
            if nested is None:
                value = tuple(value)  # a tuple of plain values
            elif key in _TUPLE_FIELDS:
                value = tuple(from_record(nested, v) for v in value)
            else:
                value = from_record(nested, value)
        kwargs[key] = value
    return cls(**kwargs)


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def encode_message(message: Message) -> bytes:
    return msgpack.packb({"v": RECORD_VERSION, **to_record(message)}, use_bin_type=True)


def decode_message(data: bytes) -> Message:
    record = msgpack.unpackb(data, raw=False, strict_map_key=False)
    message: Message = from_record(Message, record)
    return message


def encode_chat(chat: Chat) -> bytes:
    return msgpack.packb(to_record(chat), use_bin_type=True)


def decode_chat(data: bytes) -> Chat:
    chat: Chat = from_record(Chat, msgpack.unpackb(data, raw=False))
    return chat
