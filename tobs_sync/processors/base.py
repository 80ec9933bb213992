"""The processor seam: code that looks at one stored media file and returns properties for its note.

A processor is any object with ``name``, ``kinds``, ``available()`` and ``process(path, media)``
(:class:`Processor`). Built-ins and third-party plugins are found the same way, through the
``tobs_sync.processors`` entry-point group (:mod:`tobs_sync.processors.registry`), and run on
one shared, bounded thread pool (:mod:`tobs_sync.processors.pool`).

Vocabulary:

- *properties*: a flat mapping of ``str`` keys to ``str``/``int``/``float``/``bool`` values that
  becomes frontmatter fields (``duration``, ``width``, ``fps`` ...). Nothing nested, no ``None``.
- *kinds*: :class:`tobs_sync.model.MediaKind` values (plain strings) a processor wants to see.
- *available*: whether the tools a processor needs exist. Asked once; a processor that is not
  available says why in exactly one log line and is then skipped.

Optional attributes a processor may define (read with ``getattr``; plugins may leave them out):

- ``default_enabled: bool = True``: ``False`` keeps it off unless named explicitly in the config.
- ``replaces_file: bool = False``: the processor may replace the file at ``path`` (the re-encoder).
  The pool runs such processors after every other processor of that file has finished.

Limits: processors run on worker threads, concurrently with each other and with other files, so
``process`` must be thread-safe. They must not raise for bad media (log a warning naming the file and
return ``{}``); the pool still survives one that does.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, TypeAlias, runtime_checkable

from tobs_sync.model import MediaRef

LOGGER = logging.getLogger("tobs_sync.processors")

PropertyValue: TypeAlias = str | int | float | bool
Properties: TypeAlias = Mapping[str, PropertyValue]


@runtime_checkable
class Processor(Protocol):
    """Looks at one stored media file and returns properties for its note."""

    name: str
    """Unique, short, config-facing name (``"ffprobe"``); equal to the entry-point name."""
    kinds: frozenset[str]
    """Media kinds (``MediaKind`` values) this processor handles."""

    def available(self) -> bool:
        """Whether the tools it needs exist. Called once; logs one line when it returns ``False``."""
        ...

    def process(self, path: Path, media: MediaRef) -> Properties:
        """Properties of the file at ``path`` (absolute); ``{}`` and a warning for unreadable media."""
        ...


def clean_properties(properties: object, source: str) -> dict[str, PropertyValue]:
    """The usable part of what a processor returned: str keys, scalar values, finite numbers.

    Anything else is dropped with one warning naming ``source`` (the processor), so a sloppy
    plugin cannot put ``None``, nested data or ``nan`` into the frontmatter.
    """
    if not isinstance(properties, Mapping):
        LOGGER.warning("processor %s returned %s instead of a mapping; ignored", source, type(properties).__name__)
        return {}
    cleaned: dict[str, PropertyValue] = {}
    dropped: list[str] = []
    for key, value in properties.items():
        finite = not isinstance(value, float) or math.isfinite(value)
        ok_value = isinstance(value, str | int | float | bool) and finite
        if isinstance(key, str) and key and ok_value:
            cleaned[key] = value
        else:
            dropped.append(repr(key)[:40])
    if dropped:
        LOGGER.warning("processor %s returned unusable properties %s; dropped", source, ", ".join(dropped))
    return cleaned


class ToolProcessor:
    """Base for built-ins that run external programs: ``available()`` finds them once on PATH.

    ``binaries`` maps a role (``"ffprobe"``) to the program name or path to look for; a test can
    pass a name that does not exist. Found programs are kept as absolute paths in ``self.tools``,
    so the subprocess calls never depend on PATH lookups at call time.
    """

    name: str = "tool"
    kinds: frozenset[str] = frozenset()
    install_hint: str = "install ffmpeg"

    def __init__(self, binaries: Mapping[str, str]) -> None:
        self.binaries = dict(binaries)
        self.tools: dict[str, str] = {}
        self._available: bool | None = None
        self._available_lock = threading.Lock()

    def available(self) -> bool:
        with self._available_lock:
            if self._available is None:
                missing = []
                for role, binary in self.binaries.items():
                    found = shutil.which(binary)
                    if found is None:
                        missing.append(binary)
                    else:
                        self.tools[role] = str(Path(found).absolute())
                self._available = not missing
                if missing:
                    LOGGER.warning(
                        "processor %r disabled: %s not found on PATH (%s to enable it)",
                        self.name, " and ".join(repr(m) for m in missing), self.install_hint,
                    )
            return self._available

    def process(self, path: Path, media: MediaRef) -> Properties:  # pragma: no cover - overridden
        raise NotImplementedError
