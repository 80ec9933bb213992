"""Which of many vault paths tobs-sync already owns, in one query: the batch form of ``Store.path_taken``.

Grouping a batch into notes asks, for every new note, whether a note or an attachment of the store
already sits at its wanted path (compared as Obsidian compares names: ``path_key``). One query per
path costs two statements per note; :func:`taken_path_keys` answers for a whole batch at once.
Limits: the answer is the store's at the moment of the query; a caller that writes rows meanwhile
must ask again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tobs_sync.names import path_key
from tobs_sync.store import Store


def taken_path_keys(store: Store, paths: Iterable[str]) -> set[str]:
    """The ``path_key`` of each of ``paths`` that a note or an attachment of ``store`` holds."""
    keys = json.dumps(sorted({path_key(path) for path in paths}))
    rows = store.connection.execute(
        "SELECT path_key FROM notes WHERE path_key IN (SELECT value FROM json_each(?))"
        " UNION SELECT path_key FROM media_files WHERE path_key IN (SELECT value FROM json_each(?))",
        (keys, keys),
    )
    return {key for (key,) in rows}
