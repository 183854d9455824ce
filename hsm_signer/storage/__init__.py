"""Storage behind one narrow interface (:class:`Storage`); SQLite is the embedded default,
PostgreSQL serves several hosts."""

from __future__ import annotations

from ..errors import ConfigError
from .base import (  # noqa: F401
    CODE_STATES, ONLINE, POSTAL, UNUSED, CastOutcome, ElectionRecord, Entry, Storage, StoreView,
    UnknownCodeError,
)


def open_storage(url: str) -> Storage:
    """Open the storage a ``storage.url`` names (``sqlite:///path`` or ``postgresql://...``)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStorage
        return SQLiteStorage.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStorage
        return PostgresStorage(url)
    raise ConfigError(f"unsupported storage URL {url.split(':', 1)[0]!r}; use sqlite:///PATH or postgresql://...",
                      "storage.url")
