"""Finding processors: entry points of the ``tobs_sync.processors`` group, built-ins included.

A plugin distribution declares, in its ``pyproject.toml``::

    [project.entry-points."tobs_sync.processors"]
    thumbnails = "my_package.thumbs:ThumbnailProcessor"

The entry point names a callable taking no arguments (usually the class) that returns a
:class:`~tobs_sync.processors.base.Processor` whose ``name`` equals the entry-point name.
tobs-sync declares its built-ins the same way (:data:`BUILTIN_ENTRY_POINTS`).

:func:`load_processors` never crashes on a plugin: one that cannot be imported, whose factory
raises, or whose product is not a processor is skipped with one error log line. Order (which is
also the pool's merge order): built-ins as listed in :data:`BUILTIN_ENTRY_POINTS`, then plugins by
name. Built-in names are reserved: a plugin claiming one is skipped. Processors with
``default_enabled = False`` (the re-encoder) load only when named in ``enabled``.

:func:`builtin_processors` is the explicit list of built-ins, used by :func:`load_processors` for any
built-in the installed metadata does not declare: running from a checkout that was never
``pip install``-ed, or an install made before the entry points were added. It can also be passed to
:class:`~tobs_sync.processors.pool.ProcessorPool` directly where plugins are not wanted (tests).

Limits: plugins take no configuration here (their factory is called without arguments); a
plugin's import runs its code, so only installed, trusted distributions should declare entry points
(``enabled`` is checked before importing, so naming fewer processors imports fewer plugins).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol

from tobs_sync.processors.base import LOGGER, Processor

ENTRY_POINT_GROUP = "tobs_sync.processors"
BUILTIN_ENTRY_POINTS: dict[str, str] = {
    "ffprobe": "tobs_sync.processors.ffprobe:FfprobeProcessor",
    "audio": "tobs_sync.processors.audio:AudioProcessor",
    "image": "tobs_sync.processors.image:ImageProcessor",
    "reencode": "tobs_sync.processors.reencode:ReencodeProcessor",
}
"""Name -> ``module:attribute`` of the built-ins; ``pyproject.toml`` declares exactly these."""


class EntryPointLike(Protocol):
    """What :func:`load_processors` needs of an entry point (``importlib.metadata.EntryPoint`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


def builtin_processors() -> list[Processor]:
    """Fresh instances of every built-in, in order, without asking the package metadata."""
    return [_import(value)() for value in BUILTIN_ENTRY_POINTS.values()]


def load_processors(
    enabled: Collection[str] | None = None, *, entry_points: Iterable[EntryPointLike] | None = None
) -> list[Processor]:
    """The processors to run: every default-enabled one, or exactly those named in ``enabled``.

    ``entry_points`` defaults to the installed ``tobs_sync.processors`` entry points; tests pass
    their own. Built-ins missing from them come from :func:`builtin_processors`'s list.
    """
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    wanted = None if enabled is None else set(enabled)
    declared = list(entry_points)
    declared_pairs = {(ep.name, ep.value) for ep in declared}
    # Built-ins the metadata does not declare (a checkout never installed) load from the fixed list.
    fallback = [_Builtin(name, value) for name, value in BUILTIN_ENTRY_POINTS.items()
                if (name, value) not in declared_pairs]
    loaded: dict[str, Processor] = {}
    sources: dict[str, str] = {}
    for ep in sorted([*declared, *fallback], key=_order):
        name = ep.name
        if wanted is not None and name not in wanted:
            continue
        if name in BUILTIN_ENTRY_POINTS and ep.value != BUILTIN_ENTRY_POINTS[name]:
            LOGGER.error("processor plugin %r (%s) skipped: the name belongs to a built-in", name, ep.value)
            continue
        if name in sources:
            if sources[name] != ep.value:  # the same entry point seen twice is no conflict
                LOGGER.error("processor plugin %r (%s) skipped: another plugin has that name", name, ep.value)
            continue
        sources[name] = ep.value
        processor = _instantiate(ep)
        if processor is None:
            continue
        if wanted is None and not getattr(processor, "default_enabled", True):
            LOGGER.debug("processor %r is off unless enabled explicitly", name)
            continue
        loaded[name] = processor
    if wanted is not None and (unknown := wanted - loaded.keys()):
        LOGGER.warning("enabled processors not loaded (unknown or broken): %s", ", ".join(sorted(unknown)))
    return list(loaded.values())


class _Builtin:
    """An entry point for a built-in the metadata does not declare."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def load(self) -> Any:
        return _import(self.value)


def _order(ep: EntryPointLike) -> tuple[int, str, str]:
    builtin_names = list(BUILTIN_ENTRY_POINTS)
    if ep.name in BUILTIN_ENTRY_POINTS and ep.value == BUILTIN_ENTRY_POINTS[ep.name]:
        return builtin_names.index(ep.name), "", ""
    return len(builtin_names), ep.name, ep.value


def _import(value: str) -> Callable[[], Processor]:
    module_name, _, attribute = value.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else ():
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


def _instantiate(ep: EntryPointLike) -> Processor | None:
    """Load and call a processor factory; ``None`` after one error line if anything is wrong."""
    try:
        factory = ep.load()
        processor = factory()
    except (Exception, SystemExit) as exc:
        LOGGER.error("processor plugin %r (%s) cannot be loaded: %s: %s", ep.name, ep.value, type(exc).__name__, exc)
        return None
    problem = _protocol_problem(processor, ep.name)
    if problem:
        LOGGER.error("processor plugin %r (%s) skipped: %s", ep.name, ep.value, problem)
        return None
    return processor  # type: ignore[no-any-return]


def _protocol_problem(processor: object, name: str) -> str | None:
    actual = getattr(processor, "name", None)
    if actual != name:
        return f"its name is {actual!r}, not the entry-point name {name!r}"
    kinds = getattr(processor, "kinds", None)
    if not isinstance(kinds, set | frozenset) or not all(isinstance(kind, str) for kind in kinds):
        return "its 'kinds' is not a set of media kind strings"
    for method in ("available", "process"):
        if not callable(getattr(processor, method, None)):
            return f"it has no {method}() method"
    return None
