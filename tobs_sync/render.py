"""Templates -> note bytes: a sandboxed Jinja environment and Obsidian-valid frontmatter.

Templates are looked up first in the vault's template folder (editable from Obsidian), then in
the built-in ``templates/`` shipped with the package. They run in Jinja's
``ImmutableSandboxedEnvironment`` with ``StrictUndefined``: a template can read what it is
given and nothing else, and a misspelt variable is an error, not an empty string.

A template sets its note's properties with a top-level ``{% set properties = {...} %}``; they
become YAML frontmatter (python-frontmatter, PyYAML safe dumper), after which the identity keys
(``tg_chat_id``, ``tg_message_id``) are added by code so a template cannot lose them.
Errors name the template file and line. Limits: property values must be strings, numbers,
booleans, dates or lists of those (Obsidian has no nested properties); the rendered body is used
as is, so escaping untrusted text is the job of the values passed in (see
:mod:`tobs_sync.markdown`) and of the ``md`` filter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import frontmatter
import jinja2
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tobs_sync.errors import TemplateError
from tobs_sync.markdown import escape_inline
from tobs_sync.names import inert_text

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
    for mapping in mappings:
        for key, value in mapping.items():
            merged.setdefault(key, value)
    return merged


def _strftime(value: dt.datetime | dt.date, fmt: str) -> str:
    return value.strftime(fmt)


class Renderer:
    """Compiles and renders the note templates of one vault."""

    def __init__(self, override_dir: Path | None, builtin_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(override_dir))
        loaders.append(jinja2.FileSystemLoader(builtin_dir or builtin_templates_dir()))
        self._env = ImmutableSandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=True,
        )
        self._env.filters["md"] = lambda value: escape_inline(str(value))
        self._env.filters["wikilink"] = wikilink
        self._env.filters["strftime"] = _strftime
        self._env.globals["wikilink"] = wikilink
        self._env.globals["merge"] = merge

    def template_file(self, name: str) -> str:
        """Where template ``name`` is loaded from (for messages and ``status``)."""
        try:
            template = self._env.get_template(name)
        except jinja2.TemplateError as exc:
            raise _template_error(name, exc, None) from exc
        return template.filename or name

    def check(self) -> None:
        """Compile every template now, so a syntax error stops a run before any write."""
        for name in TEMPLATE_NAMES:
            self.template_file(name)

    def render(self, name: str, context: Mapping[str, Any], identity: Mapping[str, Any]) -> bytes:
        """Render template ``name`` into note bytes: frontmatter (template's + identity) and body."""
        try:
            template = self._env.get_template(name)
            module = template.make_module(dict(context))
            body = str(module)
            properties = getattr(module, "properties", {})
        except jinja2.TemplateError as exc:
            raise self._located(name, exc) from exc
        filename = template.filename or name
        metadata = _check_properties(filename, properties)
        for key in IDENTITY_KEYS:
            metadata.pop(key, None)
        metadata.update(identity)
        post = frontmatter.Post(body.strip("\n"))
        post.metadata.update(metadata)
        text = frontmatter.dumps(post, Dumper=_PropertyDumper, sort_keys=False)
        return (text.rstrip("\n") + "\n").encode("utf-8")


    def _located(self, name: str, exc: jinja2.TemplateError) -> TemplateError:
        """Our error for a render-time Jinja error, with the template line Jinja maps it to."""
        try:
            self._env.handle_exception()  # re-raises with the traceback rewritten to template lines
        except jinja2.TemplateError as rewritten:
            return _template_error(name, rewritten, rewritten.__traceback__)
        return _template_error(name, exc, exc.__traceback__)  # pragma: no cover


def _check_properties(filename: str, properties: Any) -> dict[str, Any]:
    if not isinstance(properties, Mapping):
        raise TemplateError(f"{filename}: 'properties' must be a mapping like {{\"date\": message.date}}")
    checked: dict[str, Any] = {}
    for key, value in properties.items():
        if not isinstance(key, str) or not key.strip():
            raise TemplateError(f"{filename}: property names must be non-empty text, not {key!r}")
        if isinstance(value, list | tuple):
            if not all(_is_scalar(v) for v in value):
                raise TemplateError(f"{filename}: property {key!r} may only list text, numbers or dates")
            value = [v for v in value if v is not None and v != ""]
        elif not _is_scalar(value):
            raise TemplateError(
                f"{filename}: property {key!r} must be text, a number, a date or a list, "
                f"not {type(value).__name__}"
            )
        if value is None or value == "" or value == []:
            continue
        checked[key] = value
    return checked


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | dt.date)


def _template_error(name: str, exc: jinja2.TemplateError, tb: TracebackType | None) -> TemplateError:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"{exc.filename or exc.name or name}, line {exc.lineno}"
        return TemplateError(f"template {where}: {exc.message}")
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError(f"template {name} not found")
    filename, line = _template_frame(tb)
    where = f"{filename or name}" + (f", line {line}" if line else "")
    return TemplateError(f"template {where}: {exc}")


def _template_frame(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """The innermost traceback frame that belongs to a template (Jinja maps its line numbers)."""
    found: tuple[str | None, int | None] = (None, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".md") or tb.tb_frame.f_globals.get("__jinja_template__") is not None:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
