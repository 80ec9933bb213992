"""TL schema strictness: refuse a request whose arguments have constructors of the wrong type.

Telegram parses every request against its TL schema: a field declared ``InputChannel`` accepts
``inputChannel``/``inputChannelEmpty``/``inputChannelFromMessage`` and nothing else; an
``inputPeerChannel`` there is refused with ``400 INPUT_CONSTRUCTOR_INVALID``. The simulator's server
reads requests back with a generic TL reader, which accepts any constructor anywhere, so without this
check it would answer requests Telegram rejects (a client library that skips its own conversion, as
Telethon does when a request is sent without ``resolve``).

The expected type of each field comes from Telethon's generated classes (the ``Type...`` annotations of
their constructors, which name the schema's types); nested objects are checked the same way. Fields
typed ``X`` (the query of ``invokeWithLayer`` and the like) accept any request.

Limits: bare types (``int``, ``string``, ``bytes``) are not range-checked here; handlers do that.
"""

from __future__ import annotations

import inspect
import re
import typing
from functools import cache
from types import ModuleType

from telethon.tl import types
from telethon.tl.tlobject import TLObject

from tobs_sync.sim.rpc import bad_request

_TYPE_NAME = re.compile(r"\bType([A-Za-z0-9_]+)\b")


def _type_modules() -> list[ModuleType]:
    return [types, *(value for value in vars(types).values() if isinstance(value, ModuleType))]


@cache
def _allowed(type_name: str) -> frozenset[int] | None:
    """Constructor ids of the schema type ``type_name`` (``None``: unknown, so not checked)."""
    for module in _type_modules():
        union = getattr(module, f"Type{type_name}", None)
        if union is None:
            continue
        members = typing.get_args(union) or (union,)
        return frozenset(getattr(cls, "CONSTRUCTOR_ID", 0) for cls in members if isinstance(cls, type))
    return None


@cache
def _field_types(cls: type) -> dict[str, frozenset[int]]:
    """For each field of ``cls`` declared with a schema type: the constructor ids it accepts."""
    expected: dict[str, frozenset[int]] = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        annotation = parameter.annotation
        text = annotation if isinstance(annotation, str) else repr(annotation)
        match = _TYPE_NAME.search(text)
        if match is None or match.group(1) == "X":
            continue
        allowed = _allowed(match.group(1))
        if allowed:
            expected[name] = allowed
    return expected


def check_constructors(obj: TLObject) -> None:
    """Raise ``INPUT_CONSTRUCTOR_INVALID`` if any field of ``obj`` (recursively) holds a constructor its
    schema type does not allow."""
    for name, allowed in _field_types(type(obj)).items():
        value = getattr(obj, name, None)
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, TLObject):
                continue
            if item.CONSTRUCTOR_ID not in allowed:
                raise bad_request("INPUT_CONSTRUCTOR_INVALID")
            check_constructors(item)
