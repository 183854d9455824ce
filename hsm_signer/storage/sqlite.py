"""SQLite storage: the embedded default (WAL, synchronous=FULL, one connection per thread).

Durability first: every commit is fsynced before the call returns, so a ballot whose
cast returned is on disk before it is sequenced, and a receipt is never handed out for
anything a crash could lose. The schema is created and versioned here.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Sequence

from ..election import DRAFT, Election
from ..errors import ElectionError, HsmSignerError
from ..log.tree import MissingNodeError
from .base import ONLINE, POSTAL, UNUSED, CastOutcome, ElectionRecord, Entry, UnknownCodeError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS elections (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('draft', 'open', 'closed')),
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS codes (
    election TEXT NOT NULL REFERENCES elections(id),
    code_hash BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'unused' CHECK (status IN ('unused', 'online', 'postal')),
    link BLOB,
    PRIMARY KEY (election, code_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    election TEXT NOT NULL REFERENCES elections(id),
    ballot_id TEXT NOT NULL UNIQUE,
    leaf BLOB NOT NULL,
    leaf_index INTEGER,
    UNIQUE (election, leaf_index)
);
CREATE INDEX IF NOT EXISTS entries_pending ON entries (election, seq) WHERE leaf_index IS NULL;
CREATE TABLE IF NOT EXISTS nodes (
    election TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (election, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    election TEXT NOT NULL,
    size INTEGER NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (election, size)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tallies (
    election TEXT PRIMARY KEY,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class StorageError(HsmSignerError):
    """The database is not in the state this version of hsm-signer expects."""


class SQLiteStorage:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrate()

    @classmethod
    def from_url(cls, url: str) -> "SQLiteStorage":
        return cls(url.removeprefix("sqlite:///"))

    # --- connections -----------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _write(self):
        return _Transaction(self.db)

    def _migrate(self) -> None:
        with self._write() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StorageError(
                    f"database {self.path} has schema version {row[0]}, this hsm-signer expects "
                    f"{SCHEMA_VERSION}; use the matching hsm-signer version")

    # --- elections -------------------------------------------------------------------
    def create_election(self, election: Election) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM elections WHERE id = ?", (election.id,)).fetchone():
                raise ElectionError(f"election {election.id!r} already exists")
            now = _now()
            db.execute("INSERT INTO elections VALUES (?, ?, ?, ?, ?)",
                       (election.id, election.to_json(), DRAFT, now, now))

    def get_election(self, election_id: str) -> ElectionRecord:
        row = self.db.execute("SELECT definition, state FROM elections WHERE id = ?", (election_id,)).fetchone()
        if row is None:
            raise ElectionError(f"no election {election_id!r}; create it with `hsm-signer election create`")
        return ElectionRecord(Election.from_json(row[0]), row[1])

    def list_elections(self) -> list[ElectionRecord]:
        rows = self.db.execute("SELECT definition, state FROM elections ORDER BY created_at, id").fetchall()
        return [ElectionRecord(Election.from_json(d), s) for d, s in rows]

    def set_state(self, election_id: str, state: str) -> None:
        with self._write() as db:
            db.execute("UPDATE elections SET state = ?, changed_at = ? WHERE id = ?", (state, _now(), election_id))

    # --- codes and ballots --------------------------------------------------------------
    def add_codes(self, election_id: str, hashes: Iterable[bytes]) -> int:
        with self._write() as db:
            before = db.total_changes
            db.executemany("INSERT INTO codes (election, code_hash) VALUES (?, ?)",
                           ((election_id, h) for h in hashes))
            return db.total_changes - before

    def count_codes(self, election_id: str) -> dict[str, int]:
        counts = {UNUSED: 0, ONLINE: 0, POSTAL: 0}
        for status, count in self.db.execute(
                "SELECT status, COUNT(*) FROM codes WHERE election = ? GROUP BY status", (election_id,)):
            counts[status] = count
        return counts

    def code_status(self, election_id: str, code_hash: bytes) -> tuple[str, bytes | None]:
        row = self.db.execute("SELECT status, link FROM codes WHERE election = ? AND code_hash = ?",
                              (election_id, code_hash)).fetchone()
        if row is None:
            raise UnknownCodeError()
        return row[0], row[1]

    def cast(self, election_id: str, code_hash: bytes, channel: str, ballot_id: str, leaf: bytes,
             link: bytes, require_state: str) -> CastOutcome:
        if channel not in (ONLINE, POSTAL):
            raise ValueError(f"unknown channel {channel!r}")
        with self._write() as db:
            state = db.execute("SELECT state FROM elections WHERE id = ?", (election_id,)).fetchone()
            if state is None or state[0] != require_state:
                raise ElectionError(f"election {election_id!r} is {state[0] if state else 'unknown'}, "
                                    f"not {require_state}")
            row = db.execute("SELECT status, link FROM codes WHERE election = ? AND code_hash = ?",
                             (election_id, code_hash)).fetchone()
            if row is None:
                raise UnknownCodeError()
            if row[0] != UNUSED:
                return CastOutcome(stored=False, status=row[0], link=row[1], entry=None)
            cursor = db.execute("INSERT INTO entries (election, ballot_id, leaf) VALUES (?, ?, ?)",
                                (election_id, ballot_id, leaf))
            db.execute("UPDATE codes SET status = ?, link = ? WHERE election = ? AND code_hash = ?",
                       (channel, link, election_id, code_hash))
            entry = Entry(cursor.lastrowid, election_id, ballot_id, leaf, None)
        return CastOutcome(stored=True, status=channel, link=link, entry=entry)

    def entry_by_ballot(self, ballot_id: str) -> Entry | None:
        row = self.db.execute("SELECT seq, election, ballot_id, leaf, leaf_index FROM entries WHERE ballot_id = ?",
                              (ballot_id,)).fetchone()
        return Entry(*row) if row else None

    # --- the sequencer ------------------------------------------------------------------
    def pending(self, election_id: str, limit: int) -> list[Entry]:
        rows = self.db.execute(
            "SELECT seq, election, ballot_id, leaf, leaf_index FROM entries "
            "WHERE election = ? AND leaf_index IS NULL ORDER BY seq LIMIT ?", (election_id, limit)).fetchall()
        return [Entry(*row) for row in rows]

    def elections_with_pending(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT election FROM entries WHERE leaf_index IS NULL ORDER BY election")]

    def tree_size(self, election_id: str) -> int:
        row = self.db.execute("SELECT MAX(leaf_index) FROM entries WHERE election = ?", (election_id,)).fetchone()
        return 0 if row[0] is None else row[0] + 1

    def get_nodes(self, election_id: str, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        found: dict[tuple[int, int], bytes] = {}
        db = self.db
        for level, index in set(keys):
            row = db.execute("SELECT hash FROM nodes WHERE election = ? AND level = ? AND idx = ?",
                             (election_id, level, index)).fetchone()
            if row is None:
                raise MissingNodeError(f"tree node (level {level}, index {index}) of election "
                                       f"{election_id!r} is missing from the database")
            found[(level, index)] = row[0]
        return [found[k] for k in keys]

    def commit_batch(self, election_id: str, assignments: Sequence[tuple[int, int]],
                     nodes: Sequence[tuple[int, int, bytes]], size: int, checkpoint: str) -> None:
        with self._write() as db:
            current = db.execute("SELECT MAX(leaf_index) FROM entries WHERE election = ?", (election_id,)).fetchone()[0]
            start = 0 if current is None else current + 1
            if [i for _, i in assignments] != list(range(start, start + len(assignments))) or start + len(assignments) != size:
                raise StorageError(f"batch for election {election_id!r} does not extend the stored tree of size {start}")
            db.executemany("UPDATE entries SET leaf_index = ? WHERE seq = ? AND leaf_index IS NULL",
                           ((index, seq) for seq, index in assignments))
            if db.execute("SELECT COUNT(*) FROM entries WHERE election = ? AND leaf_index >= ?",
                          (election_id, start)).fetchone()[0] != len(assignments):
                raise StorageError("an entry of the batch was already sequenced or is gone")
            db.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?)",
                           ((election_id, level, index, value) for level, index, value in nodes))
            db.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?)", (election_id, size, checkpoint, _now()))

    # --- checkpoints, entries, tally ------------------------------------------------------
    def latest_checkpoint(self, election_id: str) -> tuple[int, str] | None:
        row = self.db.execute("SELECT size, note FROM checkpoints WHERE election = ? ORDER BY size DESC LIMIT 1",
                              (election_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def checkpoint_covering(self, election_id: str, leaf_index: int) -> tuple[int, str] | None:
        row = self.db.execute("SELECT size, note FROM checkpoints WHERE election = ? AND size > ? "
                              "ORDER BY size LIMIT 1", (election_id, leaf_index)).fetchone()
        return (row[0], row[1]) if row else None

    def checkpoints(self, election_id: str) -> list[tuple[int, str]]:
        return [(s, n) for s, n in self.db.execute(
            "SELECT size, note FROM checkpoints WHERE election = ? ORDER BY size", (election_id,))]

    def entries(self, election_id: str, start: int, end: int) -> list[bytes]:
        return [r[0] for r in self.db.execute(
            "SELECT leaf FROM entries WHERE election = ? AND leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
            (election_id, start, end))]

    def store_tally(self, election_id: str, note: str) -> None:
        with self._write() as db:
            db.execute("INSERT INTO tallies VALUES (?, ?, ?)", (election_id, note, _now()))

    def get_tally(self, election_id: str) -> str | None:
        row = self.db.execute("SELECT note FROM tallies WHERE election = ?", (election_id,)).fetchone()
        return row[0] if row else None


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on any exception)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
