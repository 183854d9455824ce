"""SQLite storage: the embedded default (WAL, synchronous=FULL, one connection per thread).

Durability first: every commit is fsynced before the call returns, so a ballot whose
cast returned is on disk before it is sequenced, and a receipt is never handed out for
anything a crash could lose. Writers take the database lock at the start of their
transaction (``BEGIN IMMEDIATE``), so a code check and its consumption cannot interleave.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from .sql import SqlStorage, StorageError, schema  # noqa: F401  (StorageError re-exported)


class SQLiteStorage(SqlStorage):
    def __init__(self, path: str | Path):
        super().__init__()
        self._writer = threading.Lock()
        self.path = Path(path)
        self.name = f"database {self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @classmethod
    def from_url(cls, url: str) -> "SQLiteStorage":
        return cls(url.removeprefix("sqlite:///"))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Destroyed code-to-ballot links are overwritten with zeros, not left in free pages.
        conn.execute("PRAGMA secure_delete=ON")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # Threads of this process queue on a Python lock first: one that loses the race
        # for SQLite's write lock would sleep in SQLite's busy handler (1, 2, 5 ... 100 ms
        # steps) however soon the holder commits. Other processes still meet the handler.
        with self._writer:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.db.execute(sql, params).fetchall()

    def _schema(self) -> list[str]:
        return schema("BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT")
