"""Media processors: plugins that look at each stored media file and add note properties.

See :mod:`tobs_sync.processors.base` for the vocabulary and the :class:`Processor` protocol,
:mod:`~tobs_sync.processors.registry` for how processors are found (entry points, built-ins
included) and :mod:`~tobs_sync.processors.pool` for how they run (one bounded thread pool).
Built-ins: ``ffprobe`` (video), ``audio`` (voice/audio duration), ``image`` (photo/sticker size)
and ``reencode`` (H.264 re-encoding, off by default).
"""

from __future__ import annotations

from tobs_sync.processors.base import Processor, Properties, PropertyValue
from tobs_sync.processors.pool import ProcessorPool
from tobs_sync.processors.registry import ENTRY_POINT_GROUP, builtin_processors, load_processors

__all__ = [
    "ENTRY_POINT_GROUP",
    "Processor",
    "ProcessorPool",
    "Properties",
    "PropertyValue",
    "builtin_processors",
    "load_processors",
]
