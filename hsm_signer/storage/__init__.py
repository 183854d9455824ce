"""Storage behind one narrow interface (:class:`Storage`); SQLite is the embedded default."""

from __future__ import annotations

from ..errors import ConfigError
from .base import (  # noqa: F401
    CODE_STATES, ONLINE, POSTAL, UNUSED, CastOutcome, ElectionRecord, Entry, Storage, StoreView,
    UnknownCodeError,
)


def open_storage(url: str) -> Storage:
    """Open the storage a ``storage.url`` names (``sqlite:///path``)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStorage
        return SQLiteStorage.from_url(url)
    raise ConfigError(f"unsupported storage URL {url!r}; use sqlite:///PATH", "storage.url")
