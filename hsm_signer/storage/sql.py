"""The storage contract in SQL, shared by the SQLite and PostgreSQL back ends.

Subclasses supply connections, transactions and their dialect's DDL; every query here is
written once with ``?`` placeholders (translated for PostgreSQL) and standard SQL that both
engines run the same way (``INSERT ... RETURNING``, partial indexes, row values).
"""

from __future__ import annotations

import datetime as dt
import threading
from contextlib import AbstractContextManager
from typing import Any, Iterable, Sequence

from ..election import DRAFT, Election
from ..errors import ElectionError, HsmSignerError, PollNotOpenError, UnknownElectionError
from ..log.tree import MissingNodeError
from .base import ONLINE, POSTAL, UNUSED, BallotIdTakenError, CastOutcome, CastRequest, ElectionRecord, Entry, UnknownCodeError

SCHEMA_VERSION = 2
_ENTRY = "seq, election, ballot_id, leaf, leaf_index"
_IN_CHUNK = 500
"""Values per ``IN (...)`` list (well under SQLite's and PostgreSQL's parameter limits)."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class StorageError(HsmSignerError):
    """The database is not in the state this version of hsm-signer expects."""


class SqlStorage:
    """Implements :class:`~hsm_signer.storage.base.Storage` over DB-API connections,
    one per thread (neither sqlite3 nor psycopg connections may be shared by threads
    in the middle of a transaction)."""

    name = "database"

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._parsed: dict[str, Election] = {}

    @property
    def db(self) -> Any:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # --- what a dialect provides ----------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Any]:
        """A transaction that takes the write lock at once; yields a cursor-like object."""
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _schema(self) -> list[str]:
        raise NotImplementedError

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    # --- schema ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._write() as db:
            for statement in self._schema():
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and int(row[0]) == 1:
                # Version 2 gives each code-to-ballot link an expiry. Version 1 links had
                # none (and carry no ballot digest): they are destroyed, not kept for ever.
                db.execute("ALTER TABLE codes ADD COLUMN link_until BIGINT")
                db.execute("UPDATE codes SET link = NULL")
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                row = (str(SCHEMA_VERSION),)
            db.execute(LINKS_INDEX)
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StorageError(
                    f"{self.name} has schema version {row[0]}, this hsm-signer expects "
                    f"{SCHEMA_VERSION}; use the matching hsm-signer version")

    # --- elections ------------------------------------------------------------------------
    def create_election(self, election: Election) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM elections WHERE id = ?", (election.id,)).fetchone():
                raise ElectionError(f"election {election.id!r} already exists")
            stamp = now()
            db.execute("INSERT INTO elections VALUES (?, ?, ?, ?, ?)",
                       (election.id, election.to_json(), DRAFT, stamp, stamp))

    def get_election(self, election_id: str) -> ElectionRecord:
        row = self._one("SELECT definition, state FROM elections WHERE id = ?", (election_id,))
        if row is None:
            raise UnknownElectionError(f"no election {election_id!r}; create it with `hsm-signer election create`")
        return ElectionRecord(self._election(row[0]), row[1])

    def list_elections(self) -> list[ElectionRecord]:
        rows = self._query("SELECT definition, state FROM elections ORDER BY created_at, id")
        return [ElectionRecord(self._election(d), s) for d, s in rows]

    def _election(self, definition: str) -> Election:
        """The parsed definition; parsed once per text (every cast reads it, and it never changes)."""
        election = self._parsed.get(definition)
        if election is None:
            election = Election.from_json(definition)
            if len(self._parsed) >= 256:
                self._parsed.clear()
            self._parsed[definition] = election
        return election

    def set_state(self, election_id: str, state: str) -> None:
        with self._write() as db:
            db.execute("UPDATE elections SET state = ?, changed_at = ? WHERE id = ?", (state, now(), election_id))

    # --- codes and ballots ----------------------------------------------------------------
    def add_codes(self, election_id: str, hashes: Iterable[bytes]) -> int:
        rows = [(election_id, bytes(h)) for h in hashes]
        with self._write() as db:
            db.executemany("INSERT INTO codes (election, code_hash) VALUES (?, ?)", rows)
        return len(rows)

    def count_codes(self, election_id: str) -> dict[str, int]:
        counts = {UNUSED: 0, ONLINE: 0, POSTAL: 0}
        for status, count in self._query(
                "SELECT status, COUNT(*) FROM codes WHERE election = ? GROUP BY status", (election_id,)):
            counts[status] = count
        return counts

    def code_status(self, election_id: str, code_hash: bytes) -> tuple[str, bytes | None]:
        row = self._one("SELECT status, link FROM codes WHERE election = ? AND code_hash = ?", (election_id, code_hash))
        if row is None:
            raise UnknownCodeError()
        return row[0], (bytes(row[1]) if row[1] is not None else None)

    def code_statuses(self, election_id: str, code_hashes: Sequence[bytes]) -> list[str | None]:
        """The status of each code hash (None: not a code of the election), a few queries for many."""
        found: dict[bytes, str] = {}
        wanted = list(dict.fromkeys(bytes(h) for h in code_hashes))
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start:start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for code_hash, status in self._query(
                    f"SELECT code_hash, status FROM codes WHERE election = ? AND code_hash IN ({marks})",
                    (election_id, *chunk)):
                found[bytes(code_hash)] = status
        return [found.get(bytes(h)) for h in code_hashes]

    def cast(self, election_id: str, code_hash: bytes, channel: str, ballot_id: str, leaf: bytes,
             link: bytes, require_state: str, link_until: int | None = None) -> CastOutcome:
        outcome = self.cast_many([CastRequest(election_id, code_hash, channel, ballot_id, leaf, link,
                                              require_state, link_until)])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def cast_many(self, requests: Sequence[CastRequest]) -> list[CastOutcome | Exception]:
        """Store several ballots in one transaction: one durable commit for all of them.

        Each request gets its own outcome, or the exception it alone raises (unknown code,
        election not open); those do not affect the others. Requests are applied in the
        order of their code rows, so concurrent transactions lock rows in the same order
        (no deadlock between PostgreSQL hosts), and a code that appears twice is consumed
        by the first and found used by the second. A database error rolls back all of them.
        """
        for request in requests:
            if request.channel not in (ONLINE, POSTAL):
                raise ValueError(f"unknown channel {request.channel!r}")
        results: list[CastOutcome | Exception | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: (requests[i].election_id, requests[i].code_hash))
        with self._write() as db:
            states: dict[str, str | None] = {}
            for i in order:
                results[i] = self._cast_one(db, requests[i], states)
        return results  # type: ignore[return-value]

    def _cast_one(self, db: Any, request: CastRequest, states: dict[str, str | None]) -> CastOutcome | Exception:
        election_id, code_hash = request.election_id, request.code_hash
        if election_id not in states:
            row = db.execute("SELECT state FROM elections WHERE id = ?", (election_id,)).fetchone()
            states[election_id] = row[0] if row else None
        state = states[election_id]
        if state is None:
            return UnknownElectionError(f"no election {election_id!r}")
        if state != request.require_state:
            return PollNotOpenError(f"election {election_id!r} is {state}, not {request.require_state}")
        row = db.execute(f"SELECT status, link, link_until FROM codes WHERE election = ? AND code_hash = ?"
                         f"{self._lock_row}", (election_id, code_hash)).fetchone()
        if row is None:
            return UnknownCodeError()
        if row[0] != UNUSED:
            return CastOutcome(stored=False, status=row[0], link=None if row[1] is None else bytes(row[1]),
                               entry=None, link_until=row[2])
        if db.execute("SELECT 1 FROM entries WHERE ballot_id = ?", (request.ballot_id,)).fetchone():
            return BallotIdTakenError()
        seq = db.execute("INSERT INTO entries (election, ballot_id, leaf) VALUES (?, ?, ?) RETURNING seq",
                         (election_id, request.ballot_id, request.leaf)).fetchone()[0]
        db.execute("UPDATE codes SET status = ?, link = ?, link_until = ? WHERE election = ? AND code_hash = ?",
                   (request.channel, request.link, request.link_until, election_id, code_hash))
        return CastOutcome(stored=True, status=request.channel, link=request.link,
                           entry=Entry(seq, election_id, request.ballot_id, request.leaf, None),
                           link_until=request.link_until)

    _lock_row = ""  # PostgreSQL adds FOR UPDATE; SQLite's write lock already covers it

    def purge_links(self, now: int) -> int:
        """Destroy every code-to-ballot link whose resubmission window ended by ``now`` (Unix
        seconds); a link without an expiry is destroyed too. Returns how many."""
        with self._write() as db:
            return db.execute("UPDATE codes SET link = NULL, link_until = NULL WHERE link IS NOT NULL "
                              "AND (link_until IS NULL OR link_until <= ?)", (now,)).rowcount

    def forget_links(self, election_id: str, code_hash: bytes | None = None) -> int:
        """Destroy every code-to-ballot link of an election (at the close: nobody can resubmit),
        or only the link of one code."""
        only = " AND code_hash = ?" if code_hash is not None else ""
        with self._write() as db:
            return db.execute(f"UPDATE codes SET link = NULL, link_until = NULL WHERE election = ?{only} "
                              "AND link IS NOT NULL",
                              (election_id, *((bytes(code_hash),) if code_hash is not None else ()))).rowcount

    def entry_by_ballot(self, ballot_id: str) -> Entry | None:
        row = self._one(f"SELECT {_ENTRY} FROM entries WHERE ballot_id = ?", (ballot_id,))
        return _entry(row) if row else None

    def leaf_indexes(self, ballot_ids: Sequence[str]) -> dict[str, int]:
        """The leaf index of each of these ballots that is sequenced (unsequenced or unknown ones are left out)."""
        found: dict[str, int] = {}
        wanted = list(dict.fromkeys(ballot_ids))
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start:start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            found.update(self._query(f"SELECT ballot_id, leaf_index FROM entries WHERE ballot_id IN ({marks}) "
                                     "AND leaf_index IS NOT NULL", chunk))
        return found

    # --- the sequencer --------------------------------------------------------------------
    def pending(self, election_id: str, limit: int) -> list[Entry]:
        return [_entry(r) for r in self._query(
            f"SELECT {_ENTRY} FROM entries WHERE election = ? AND leaf_index IS NULL ORDER BY seq LIMIT ?",
            (election_id, limit))]

    def elections_with_pending(self) -> list[str]:
        # Per election, an index lookup for one unsequenced entry: the sequencer asks this
        # between batches, and a DISTINCT over entries scanned the whole log each time.
        return [r[0] for r in self._query(
            "SELECT id FROM elections WHERE EXISTS (SELECT 1 FROM entries WHERE entries.election = elections.id "
            "AND entries.leaf_index IS NULL) ORDER BY id")]

    def tree_size(self, election_id: str) -> int:
        row = self._one("SELECT MAX(leaf_index) FROM entries WHERE election = ?", (election_id,))
        return 0 if row is None or row[0] is None else row[0] + 1

    def seq_at(self, election_id: str, leaf_index: int) -> int | None:
        """The arrival number (seq) of the entry at a leaf index, None if none is there."""
        row = self._one("SELECT seq FROM entries WHERE election = ? AND leaf_index = ?", (election_id, leaf_index))
        return row[0] if row else None

    def get_nodes(self, election_id: str, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(wanted), 200):
            chunk = wanted[start:start + 200]
            # The election inside every term: SQLite then looks each node up by primary key
            # (MULTI-INDEX OR); with it factored out it scanned every node of the election.
            terms = " OR ".join(["(election = ? AND level = ? AND idx = ?)"] * len(chunk))
            params = [value for level, index in chunk for value in (election_id, level, index)]
            for level, index, value in self._query(f"SELECT level, idx, hash FROM nodes WHERE {terms}", params):
                found[(level, index)] = bytes(value)
        for level, index in wanted:
            if (level, index) not in found:
                raise MissingNodeError(f"tree node (level {level}, index {index}) of election "
                                       f"{election_id!r} is missing from the {self.name}")
        return [found[k] for k in keys]

    def commit_batch(self, election_id: str, assignments: Sequence[tuple[int, int]],
                     nodes: Sequence[tuple[int, int, bytes]], size: int, checkpoint: str) -> None:
        with self._write() as db:
            current = db.execute("SELECT MAX(leaf_index) FROM entries WHERE election = ?", (election_id,)).fetchone()[0]
            start = 0 if current is None else current + 1
            indexes = [index for _, index in assignments]
            if indexes != list(range(start, start + len(indexes))) or start + len(indexes) != size:
                raise StorageError(f"batch for election {election_id!r} does not extend the stored tree of size {start}")
            db.executemany("UPDATE entries SET leaf_index = ? WHERE seq = ? AND leaf_index IS NULL",
                           [(index, seq) for seq, index in assignments])
            done = db.execute("SELECT COUNT(*) FROM entries WHERE election = ? AND leaf_index >= ?",
                              (election_id, start)).fetchone()[0]
            if done != len(assignments):
                raise StorageError("an entry of the batch was already sequenced or is gone")
            db.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?)",
                           [(election_id, level, index, value) for level, index, value in nodes])
            db.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?)", (election_id, size, checkpoint, now()))

    def set_signer_status(self, status: str) -> None:
        """The sequencer's heartbeat (JSON text), for processes that do not run it."""
        with self._write() as db:
            db.execute("INSERT INTO meta VALUES ('signer_status', ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (status,))

    def signer_status(self) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = 'signer_status'")
        return row[0] if row else None

    # --- checkpoints, entries, tally ------------------------------------------------------
    def latest_checkpoint(self, election_id: str) -> tuple[int, str] | None:
        row = self._one("SELECT size, note FROM checkpoints WHERE election = ? ORDER BY size DESC LIMIT 1",
                        (election_id,))
        return (row[0], row[1]) if row else None

    def checkpoint_covering(self, election_id: str, leaf_index: int) -> tuple[int, str] | None:
        row = self._one("SELECT size, note FROM checkpoints WHERE election = ? AND size > ? ORDER BY size LIMIT 1",
                        (election_id, leaf_index))
        return (row[0], row[1]) if row else None

    def checkpoint_at(self, election_id: str, size: int) -> str | None:
        row = self._one("SELECT note FROM checkpoints WHERE election = ? AND size = ?", (election_id, size))
        return row[0] if row else None

    def checkpoints(self, election_id: str) -> list[tuple[int, str]]:
        return [(s, n) for s, n in self._query(
            "SELECT size, note FROM checkpoints WHERE election = ? ORDER BY size", (election_id,))]

    def entries(self, election_id: str, start: int, end: int) -> list[bytes]:
        return [bytes(r[0]) for r in self._query(
            "SELECT leaf FROM entries WHERE election = ? AND leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
            (election_id, start, end))]

    def find_leaves(self, election_id: str, hash_prefix: bytes, limit: int = 10) -> list[int]:
        """Leaf indexes (signed entries only) whose leaf hash starts with ``hash_prefix``: how a
        ballot tracker is found on the board. Level 0 of the stored tree holds the leaf hashes."""
        low = bytes(hash_prefix).ljust(32, b"\x00")
        high = bytes(hash_prefix).ljust(32, b"\xff")
        return [r[0] for r in self._query(
            "SELECT idx FROM nodes WHERE election = ? AND level = 0 AND hash >= ? AND hash <= ? ORDER BY idx LIMIT ?",
            (election_id, low, high, limit))]

    def store_tally(self, election_id: str, note: str) -> bool:
        """Store the signed tally; False (and nothing changed) if one is already stored."""
        with self._write() as db:
            cursor = db.execute("INSERT INTO tallies VALUES (?, ?, ?) ON CONFLICT (election) DO NOTHING",
                                (election_id, note, now()))
            return cursor.rowcount == 1

    def get_tally(self, election_id: str) -> str | None:
        row = self._one("SELECT note FROM tallies WHERE election = ?", (election_id,))
        return row[0] if row else None


    def store_openings(self, election_id: str, first_index: int, lines: Sequence[bytes]) -> None:
        """Store the openings of entries ``first_index ..`` in one transaction, only right after
        the ones already stored (so what is stored is always a prefix of the log)."""
        with self._write() as db:
            row = db.execute("SELECT COUNT(*) FROM openings WHERE election = ?", (election_id,)).fetchone()
            if int(row[0]) != first_index:
                raise StorageError(f"openings of {election_id!r} end at {row[0]}, not {first_index}: "
                                   "another tally is opening this election at the same time")
            for offset, line in enumerate(lines):
                db.execute("INSERT INTO openings VALUES (?, ?, ?)", (election_id, first_index + offset, line))

    def openings_count(self, election_id: str) -> int:
        row = self._one("SELECT COUNT(*) FROM openings WHERE election = ?", (election_id,))
        return int(row[0]) if row else 0

    def openings(self, election_id: str, start: int, end: int) -> list[bytes]:
        return [bytes(r[0]) for r in self._query(
            "SELECT line FROM openings WHERE election = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (election_id, start, end))]


def _entry(row: tuple) -> Entry:
    seq, election, ballot_id, leaf, leaf_index = row
    return Entry(seq, election, ballot_id, bytes(leaf), leaf_index)


# Created after the version check (a version 1 table gains link_until first).
LINKS_INDEX = "CREATE INDEX IF NOT EXISTS codes_links ON codes (link_until) WHERE link IS NOT NULL"


def schema(blob: str, serial: str) -> list[str]:
    """The DDL, with the dialect's binary type and auto-increment key spelled in."""
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS elections (
            id TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('draft', 'open', 'closed')),
            created_at TEXT NOT NULL,
            changed_at TEXT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS codes (
            election TEXT NOT NULL REFERENCES elections(id),
            code_hash {blob} NOT NULL,
            status TEXT NOT NULL DEFAULT 'unused' CHECK (status IN ('unused', 'online', 'postal')),
            link {blob},
            link_until BIGINT,
            PRIMARY KEY (election, code_hash))""",
        f"""CREATE TABLE IF NOT EXISTS entries (
            seq {serial},
            election TEXT NOT NULL REFERENCES elections(id),
            ballot_id TEXT NOT NULL UNIQUE,
            leaf {blob} NOT NULL,
            leaf_index BIGINT,
            UNIQUE (election, leaf_index))""",
        "CREATE INDEX IF NOT EXISTS entries_pending ON entries (election, seq) WHERE leaf_index IS NULL",
        f"""CREATE TABLE IF NOT EXISTS nodes (
            election TEXT NOT NULL,
            level INTEGER NOT NULL,
            idx BIGINT NOT NULL,
            hash {blob} NOT NULL,
            PRIMARY KEY (election, level, idx))""",
        """CREATE TABLE IF NOT EXISTS checkpoints (
            election TEXT NOT NULL,
            size BIGINT NOT NULL,
            note TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (election, size))""",
        f"""CREATE TABLE IF NOT EXISTS openings (
            election TEXT NOT NULL,
            idx BIGINT NOT NULL,
            line {blob} NOT NULL,
            PRIMARY KEY (election, idx))""",
        """CREATE TABLE IF NOT EXISTS tallies (
            election TEXT PRIMARY KEY,
            note TEXT NOT NULL,
            created_at TEXT NOT NULL)""",
    ]
