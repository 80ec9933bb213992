"""The state database's connection: opening (created, migrated, or read-only), transactions and plain reads.

:class:`StoreConnection` is the base of :class:`tobs_sync.store.Store`: it opens ``.tobs/state.db`` in
WAL mode with ``synchronous=FULL``, runs the forward migrations of :mod:`tobs_sync.store_schema`
(refusing a database from a newer tobs-sync), and hands out one transaction at a time (nested calls
join the outer one). Limits: it knows no table; the queries are the ``store_*`` modules'. One writer
at a time (SQLite).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from tobs_sync.errors import StoreError
from tobs_sync.store_schema import MIGRATIONS, SCHEMA_VERSION

SQL_VARIABLES = 500
"""Ids bound per ``IN (...)`` query, well below SQLite's smallest variable limit (999)."""


def placeholders(count: int) -> str:
    """``?,?,?`` for ``count`` bound values (only placeholders are ever put into query text)."""
    return ",".join("?" * count)


class StoreConnection:
    """The connection to one vault's state database. Use as a context manager or call :meth:`close`."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self.transactions = 0
        """Transactions committed through :meth:`transaction` (the benchmark prints it)."""

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> Self:
        """The database at ``path``, created and migrated as needed; ``read_only``: see :meth:`open_read_only`."""
        if read_only:
            return cls.open_read_only(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None)
        store = cls(db, path)
        try:
            store._check_version()
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            store._migrate()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(f"{path}: not a usable tobs-sync database: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return store

    @classmethod
    def open_read_only(cls, path: Path) -> Self:
        """An existing database for reading only: nothing is created, migrated or written.

        While the WAL files exist (a writer is running, or one crashed) the database is read
        through them, seeing every committed transaction, with the shared-memory index opened
        read-only (``readonly_shm``), so not even SQLite's read marks are written. Otherwise the
        database is fully checkpointed and is opened ``immutable``, so SQLite creates no ``-wal``
        and ``-shm`` files. Limit: a writer that starts and checkpoints (more than ~4 MB of writes,
        or a whole short command) during such an immutable read can make it fail or see a mix of states.
        """
        if not path.is_file():
            raise StoreError(f"{path}: no such database")
        wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
        live = wal.is_file() and shm.is_file()
        uri = path.absolute().as_uri() + ("?mode=ro&readonly_shm=1" if live else "?mode=ro&immutable=1")
        store = None
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None)
            store = cls(db, path)
            db.execute("PRAGMA query_only=ON")
            store._check_version()
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if store is not None:
                store.close()
            raise StoreError(f"{path}: not a usable tobs-sync database: {exc}") from exc
        except BaseException:
            if store is not None:
                store.close()
            raise
        if version < SCHEMA_VERSION:
            store.close()
            raise StoreError(
                f"{path}: written by an older tobs-sync (schema {version}, this one uses {SCHEMA_VERSION}); "
                "run a writing command (sync, import or render) once to upgrade it"
            )
        return store

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer tobs-sync (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade tobs-sync"
            )

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version, SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[target](self._db)
                self._db.execute(f"PRAGMA user_version={target + 1}")

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, for the queries of ``store_*`` feature modules (writes inside :meth:`transaction`)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read (for the ``store_*`` modules that keep their own tables; writes go
        through :meth:`transaction`)."""
        return self._db.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of writes (nested calls join the outer transaction)."""
        if self._db.in_transaction:
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._commit()

    def _commit(self) -> None:
        """End the current transaction (a seam: tests record or interrupt commits here)."""
        self._db.execute("COMMIT")
        self.transactions += 1
