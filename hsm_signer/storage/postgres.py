"""PostgreSQL storage: for several web hosts sharing one log.

The same contract and queries as SQLite (:mod:`.sql`); a ballot's code row is locked
with ``SELECT ... FOR UPDATE`` so two hosts cannot both consume one code. Connections
are per thread; every write is its own transaction, committed before the call returns.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ..errors import ConfigError
from .sql import SqlStorage, schema


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class _Cursor:
    """Adapts ``?`` placeholders to psycopg's ``%s``."""

    def __init__(self, cursor: Any):
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._cursor.execute(_pg(sql), params)
        return self._cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(_pg(sql), rows)


class PostgresStorage(SqlStorage):
    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError:
            raise ConfigError("PostgreSQL storage needs psycopg: pip install 'hsm-signer[postgres]'",
                              "storage.url") from None
        super().__init__()
        self._psycopg = psycopg
        self.url = url
        self.name = "PostgreSQL database"
        self._migrate()

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True)
        except self._psycopg.OperationalError as exc:
            raise ConfigError(f"cannot connect to PostgreSQL: {exc}".splitlines()[0], "storage.url") from None

    @contextmanager
    def _write(self) -> Iterator[_Cursor]:
        conn = self.db
        with conn.transaction(), conn.cursor() as cursor:
            yield _Cursor(cursor)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.db.cursor() as cursor:
            cursor.execute(_pg(sql), params)
            return cursor.fetchall()

    def _schema(self) -> list[str]:
        return ["SELECT pg_advisory_xact_lock(7261)"] + schema("BYTEA", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")

    _lock_row = " FOR UPDATE"
