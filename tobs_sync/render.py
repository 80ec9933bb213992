"""Templates -> note bytes: a sandboxed Jinja environment and Obsidian-valid frontmatter.

Templates are looked up first in the vault's template folder (editable from Obsidian), then in
the built-in ``templates/`` shipped with the package, and only as regular files inside those
folders (:mod:`tobs_sync.template_files`: no symlink, no ``..``, no absolute name). They run in
Jinja's immutable sandbox with ``StrictUndefined`` and a time and size budget per render
(:mod:`tobs_sync.template_sandbox`): a template can read what it is given and nothing else, a
misspelt variable is an error, not an empty string, and a runaway loop or a gigabyte string is
stopped.

A template sets its note's properties with a top-level ``{% set properties = {...} %}``; they
become YAML frontmatter (PyYAML's safe dumper, or :mod:`tobs_sync.properties_yaml`, which
writes the same bytes faster), after which the identity keys (``tg_chat_id``,
``tg_message_id``) are added by code so a template cannot lose them. The body is
wrapped in the ``%% tobs:begin %%`` / ``%% tobs:end %%`` markers by code too (a template cannot
forget them, and may not write them): :mod:`tobs_sync.merge` keeps the user's text around them.
Whatever goes wrong inside a template (an undefined name, ``strftime(7)``, a division by zero,
recursion, a bound exceeded) becomes one :class:`~tobs_sync.errors.TemplateError` naming the
template file and line, never a traceback. Limits: property values must be strings, numbers,
booleans, dates or lists of those (Obsidian has no nested properties); the rendered body is used
as is, so escaping untrusted text is the job of the values passed in (see
:mod:`tobs_sync.markdown`) and of the ``md`` filter.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import yaml

from tobs_sync.config import TemplateLimits
from tobs_sync.errors import TemplateError, TemplateLimitExceeded, TobsError
from tobs_sync.merge import BEGIN_MARKER, END_MARKER, holds_marker, wrap_body
from tobs_sync.names import inert_text, md
from tobs_sync.properties_yaml import dump_properties
from tobs_sync.template_files import ConfinedLoader
from tobs_sync.template_sandbox import BoundedEnvironment, Clock
from tobs_sync.template_sizes import int_digits, text_size

MESSAGE_TEMPLATE = "message.md"
CHAT_TEMPLATE = "chat.md"
TEMPLATE_NAMES = (MESSAGE_TEMPLATE, CHAT_TEMPLATE)
IDENTITY_KEYS = ("tg_chat_id", "tg_message_id")


def builtin_templates_dir() -> Path:
    """The default templates: inside the installed wheel, or ``templates/`` of a checkout."""
    packaged = Path(str(resources.files("tobs_sync"))) / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


class _PropertyDumper(yaml.SafeDumper):
    """Safe YAML that writes datetimes the way Obsidian's date properties expect."""


def _represent_datetime(dumper: yaml.SafeDumper, value: dt.datetime) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", value.strftime("%Y-%m-%dT%H:%M:%S"))


def _represent_date(dumper: yaml.SafeDumper, value: dt.date) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", value.isoformat())


_PropertyDumper.add_representer(dt.datetime, _represent_datetime)
_PropertyDumper.add_representer(dt.date, _represent_date)


def frontmatter_text(properties: Mapping[str, Any], body: str) -> str:
    """A note's text: ``properties`` as YAML frontmatter, then ``body``, laid out as
    python-frontmatter's ``dumps`` lays them out (existing notes keep their exact bytes)."""
    yaml_text = dump_properties(properties, _PropertyDumper).strip()
    return f"---\n{yaml_text}\n---\n\n{body.strip(chr(10))}\n".strip()


def wikilink(path: str, label: str | None = None) -> str:
    """``[[path|label]]`` for a vault path (``.md`` dropped), with a label that cannot break it.

    The label is untrusted text: ``[ ] | # ^`` (which would end or redirect the link) become
    spaces, whitespace collapses, and the rest is made inert (:func:`tobs_sync.names.inert_text`).
    """
    target = path[:-3] if path.endswith(".md") else path
    if not label:
        return f"[[{target}]]"
    clean = label
    for char in "[]|#^":
        clean = clean.replace(char, " ")
    clean = inert_text(" ".join(clean.split()))
    return f"[[{target}|{clean or target}]]"


def merge(*mappings: Mapping[str, Any]) -> dict[str, Any]:
    """A new mapping with the keys of all ``mappings``; the first one to have a key wins."""
    merged: dict[str, Any] = {}
    for index, mapping in enumerate(mappings):
        if index == 0 and type(mapping) is dict:
            merged = dict(mapping)  # the first plain dict's keys all win: copied in one step
            continue
        for key, value in mapping.items():
            merged.setdefault(key, value)
    return merged


def _strftime(value: dt.datetime | dt.date, fmt: str) -> str:
    return value.strftime(fmt)


class Renderer:
    """Compiles and renders the note templates of one vault, one render at a time.

    ``clock`` (seconds, monotonic) times each render against ``limits.max_render_ms``; tests
    pass a fake one. ``auto_reload=False`` keeps each template as first compiled, whatever is saved
    later (the agent checks a changed template before it swaps in a new renderer).
    """

    def __init__(
        self,
        override_dir: Path | None,
        builtin_dir: Path | None = None,
        *,
        limits: TemplateLimits | None = None,
        clock: Clock = time.monotonic,
        auto_reload: bool = True,
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(ConfinedLoader(override_dir))
        loaders.append(ConfinedLoader(builtin_dir or builtin_templates_dir(), allow_linked_root=True))
        self._env = BoundedEnvironment(
            limits=limits or TemplateLimits(),
            clock=clock,
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=auto_reload,
        )
        self._env.install_filters({
            "md": lambda value: md(str(value)),
            "wikilink": wikilink,
            "strftime": _strftime,
        })
        self._env.trust_plain_function("wikilink", wikilink)
        self._env.trust_plain_function("merge", merge)
        self._auto_reload = auto_reload
        self._held: dict[str, tuple[jinja2.Template, dict[str, Any]]] = {}
        """Per template name: the compiled template and its globals as a plain mapping."""

    def template_file(self, name: str) -> str:
        """Where template ``name`` is loaded from (for messages and ``status``)."""
        template = self._template(name)
        return template.filename or name

    def check(self) -> None:
        """Compile every template now, so a syntax error stops a run before any write."""
        for name in TEMPLATE_NAMES:
            self.template_file(name)

    def render(self, name: str, context: Mapping[str, Any], identity: Mapping[str, Any]) -> bytes:
        """Render template ``name`` into note bytes: frontmatter (template's + identity) and body."""
        template, template_globals = self._held_template(name)
        filename = template.filename or name
        try:
            with self._env.render_budget():
                # what template.new_context(dict(context)) makes, from the globals copied once
                variables = self._env.context_class(
                    self._env, {**template_globals, **context}, template.name, template.blocks,
                    globals=template_globals,
                )
                body = "".join(template.root_render_func(variables))
                metadata, size = _check_properties(variables.get_exported().get("properties", {}))
                if size > self._env.room():  # what check_text would measure: it raises, naming the size
                    self._env.check_text(list(metadata.values()), "the properties")
        except Exception as exc:  # anything a template can raise becomes one error naming it
            raise _located_error(filename, exc) from exc
        for key in IDENTITY_KEYS:
            metadata.pop(key, None)
        metadata.update(identity)
        if holds_marker(body):
            raise TemplateError(f"template {filename}: the body may not contain a line {BEGIN_MARKER} or {END_MARKER}")
        try:
            text = frontmatter_text(metadata, wrap_body(body.strip("\n")))
            return (text.rstrip("\n") + "\n").encode("utf-8")
        except (yaml.YAMLError, UnicodeError, ValueError) as exc:
            raise TemplateError(
                f"template {filename}: the note cannot be written as UTF-8 text and YAML: {exc}"
            ) from exc

    def _held_template(self, name: str) -> tuple[jinja2.Template, dict[str, Any]]:
        """The compiled template ``name`` and its globals, as the environment's cache would give it
        (reloaded when its file changed, with ``auto_reload``), without going through that cache."""
        held = self._held.get(name)
        if held is None or (self._auto_reload and not held[0].is_up_to_date):
            template = self._template(name)
            held = self._held[name] = (template, dict(template.globals))
        return held

    def _template(self, name: str) -> jinja2.Template:
        """The compiled template ``name``; TemplateError if it is missing, refused or invalid."""
        try:
            return self._env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or exc.name or name
            raise TemplateError(f"template {where}, line {exc.lineno}: {exc.message}") from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {name} not found") from exc
        except TobsError:
            raise
        except Exception as exc:  # e.g. RecursionError from absurdly deep nesting
            raise TemplateError(f"template {name}: cannot be compiled: {_describe(exc)}") from exc


_SIMPLE_SCALARS: Mapping[type, int | None] = {
    str: None,
    int: None,
    **{type(v): text_size(v, 0) for v in (True, 0.5, dt.date(2000, 1, 1), dt.datetime(2000, 1, 1))},
}
"""Exact property value types, and the text size :func:`~tobs_sync.template_sizes.text_size` gives
every value of the type (None: it depends on the value)."""


def _check_properties(properties: Any) -> tuple[dict[str, Any], int]:
    """The template's properties without empty values, and what ``text_size`` measures of the list of
    their values (the sandbox refuses properties too large to write); TemplateError for a value that
    is no property. Values of the exact types in :data:`_SIMPLE_SCALARS` are checked and measured
    directly; anything else (lists, subclasses) as the general rules say."""
    if not isinstance(properties, Mapping):
        raise TemplateError("'properties' must be a mapping like {\"date\": message.date}")
    checked: dict[str, Any] = {}
    size = 2  # text_size of a list: brackets, then each item and 4 for quotes and separator
    for key, value in properties.items():
        if type(key) is not str or key not in _VALID_KEYS:
            if not isinstance(key, str) or not key.strip():
                raise TemplateError(f"property names must be non-empty text, not {key!r}")
            if type(key) is str and len(_VALID_KEYS) < _VALID_KEYS_KEPT:
                _VALID_KEYS.add(key)
        if value is None:
            continue
        kind = type(value)
        known = _SIMPLE_SCALARS.get(kind, 0)
        if known != 0:  # an exact scalar type: never equal to "" or [] unless an empty str
            if kind is str:
                if not value:
                    continue
                size += len(value) + 4
            elif known is None:  # int
                size += int_digits(value) + 5
            else:
                size += known + 4
            checked[key] = value
            continue
        if kind is list and (measured := _simple_list(value)) is not None:
            kept, kept_size = measured
            if kept:
                checked[key] = kept
                size += kept_size + 4
            continue
        if isinstance(value, list | tuple):
            if not all(_is_scalar(v) for v in value):
                raise TemplateError(f"property {key!r} may only list text, numbers or dates")
            value = [v for v in value if v is not None and v != ""]
        elif not _is_scalar(value):
            raise TemplateError(
                f"property {key!r} must be text, a number, a date or a list, not {type(value).__name__}"
            )
        if value == "" or value == []:
            continue
        checked[key] = value
        size += text_size(value, _UNCAPPED) + 4
    return checked, size


def _simple_list(items: list[Any]) -> tuple[list[Any], int] | None:
    """A list of values of the exact types of :data:`_SIMPLE_SCALARS` or None: the list without None
    and empty text, and what ``text_size`` measures of it. None for any other list."""
    kept: list[Any] = []
    size = 2
    for item in items:
        kind = type(item)
        if kind is str:
            if item:
                kept.append(item)
                size += len(item) + 4
        elif item is None:
            continue
        elif (known := _SIMPLE_SCALARS.get(kind, 0)) != 0:
            kept.append(item)
            size += (int_digits(item) + 1 if known is None else known) + 4
        else:
            return None
    return kept, size


_VALID_KEYS: set[str] = set()
_VALID_KEYS_KEPT = 1024
"""Property names found valid (templates use the same few in every note), at most this many."""

_UNCAPPED = 2**62
"""A cap no measured size reaches: the whole size is measured, then compared with the room left."""


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | dt.date)


def _located_error(filename: str, exc: Exception) -> TemplateError:
    """One TemplateError for anything raised while rendering: the template file and line first."""
    if isinstance(exc, jinja2.TemplateSyntaxError):  # an included template that does not compile
        return TemplateError(f"template {exc.filename or exc.name}, line {exc.lineno}: {exc.message}")
    where, line = _template_frame(exc.__traceback__)
    location = f"template {where or filename}" + (f", line {line}" if line else "")
    error_type = TemplateLimitExceeded if isinstance(exc, TemplateLimitExceeded) else TemplateError
    return error_type(f"{location}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.TemplatesNotFound):
        return exc.message or "none of the templates was found"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template {exc.name!r} not found"
    if isinstance(exc, TobsError | jinja2.TemplateError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "macros or loops nest too deeply (RecursionError)"
    if isinstance(exc, MemoryError):
        return "out of memory (MemoryError)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _template_frame(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """The file and line of the innermost traceback frame that runs template code."""
    found: tuple[str | None, int | None] = (None, None)
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if isinstance(template, jinja2.Template):
            found = (template.filename or template.name, template.get_corresponding_lineno(tb.tb_lineno))
        tb = tb.tb_next
    return found
