"""The narrow storage interface, and the records it returns.

Everything the service keeps goes through :class:`Storage`: elections and their state,
code hashes, entries (ballots, durably stored before they are sequenced), the Merkle tree's
nodes, signed checkpoints and the signed tally. SQLite implements it for the embedded
default; a PostgreSQL implementation follows the same contract.

The contract that matters for the invariants:

* :meth:`Storage.cast` consumes a code and stores its ballot in one transaction: either
  both happen or neither does. A used code returns what it was used for instead.
  :meth:`Storage.cast_many` does the same for several ballots in one transaction (one
  durable commit for all of them: group commit), each with its own outcome.
* :meth:`Storage.commit_batch` assigns leaf indexes, stores tree nodes and the signed
  checkpoint in one transaction.
* Storage never sees a voting code: only its HSM-keyed hash, and a *link* (the ballot id
  and a keyed digest of the ballot, encrypted under a key derived from the code) that lets
  the code holder resubmit the identical ballot and get the same receipt. The link lives
  only for the resubmission window (``link_until``, Unix seconds): :meth:`Storage.purge_links`
  destroys expired links and :meth:`Storage.forget_links` all of an election's at the close,
  after which nothing in the database connects a code to a ballot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from ..election import Election

UNUSED, ONLINE, POSTAL = "unused", "online", "postal"
CODE_STATES = (UNUSED, ONLINE, POSTAL)


@dataclass(frozen=True)
class ElectionRecord:
    election: Election
    state: str


@dataclass(frozen=True)
class Entry:
    seq: int
    election: str
    ballot_id: str
    leaf: bytes
    leaf_index: int | None


@dataclass(frozen=True)
class CastRequest:
    """One ballot to store, consuming its code (the arguments of :meth:`Storage.cast`)."""

    election_id: str
    code_hash: bytes
    channel: str
    ballot_id: str
    leaf: bytes
    link: bytes
    require_state: str
    link_until: int | None = None  # Unix seconds after which the link is destroyed (None: at once)


@dataclass(frozen=True)
class CastOutcome:
    """What :meth:`Storage.cast` did: ``stored`` a new entry, or found the code ``used``."""

    stored: bool
    status: str          # the code's state after the call
    link: bytes | None   # the encrypted link to the entry the code was used for, unless destroyed
    entry: Entry | None  # the new entry, when stored
    link_until: int | None = None  # when the link expires (Unix seconds); expired means gone


class BallotIdTakenError(LookupError):
    """A ballot with this id is already stored (a client-sealed ballot must bring a fresh id)."""


class UnknownCodeError(LookupError):
    """No such code hash in this election (storage-level; the web layer answers generically)."""


class Storage(Protocol):
    # elections
    def create_election(self, election: Election) -> None: ...
    def get_election(self, election_id: str) -> ElectionRecord: ...
    def list_elections(self) -> list[ElectionRecord]: ...
    def set_state(self, election_id: str, state: str) -> None: ...

    # codes and ballots
    def add_codes(self, election_id: str, hashes: Iterable[bytes]) -> int: ...
    def count_codes(self, election_id: str) -> dict[str, int]: ...
    def code_status(self, election_id: str, code_hash: bytes) -> tuple[str, bytes | None]: ...
    def code_statuses(self, election_id: str, code_hashes: Sequence[bytes]) -> list[str | None]: ...
    def cast(self, election_id: str, code_hash: bytes, channel: str, ballot_id: str, leaf: bytes,
             link: bytes, require_state: str, link_until: int | None = None) -> CastOutcome: ...
    def cast_many(self, requests: Sequence[CastRequest]) -> list[CastOutcome | Exception]: ...
    def entry_by_ballot(self, ballot_id: str) -> Entry | None: ...
    def leaf_indexes(self, ballot_ids: Sequence[str]) -> dict[str, int]: ...
    def purge_links(self, now: int) -> int: ...
    def forget_links(self, election_id: str, code_hash: bytes | None = None) -> int: ...

    # the sequencer
    def pending(self, election_id: str, limit: int) -> list[Entry]: ...
    def elections_with_pending(self) -> list[str]: ...
    def tree_size(self, election_id: str) -> int: ...
    def seq_at(self, election_id: str, leaf_index: int) -> int | None: ...
    def get_nodes(self, election_id: str, keys: Sequence[tuple[int, int]]) -> list[bytes]: ...
    def commit_batch(self, election_id: str, assignments: Sequence[tuple[int, int]],
                     nodes: Sequence[tuple[int, int, bytes]], size: int, checkpoint: str) -> None: ...

    def set_signer_status(self, status: str) -> None: ...
    def signer_status(self) -> str | None: ...

    # checkpoints, entries and the tally, for receipts and the public record
    def latest_checkpoint(self, election_id: str) -> tuple[int, str] | None: ...
    def checkpoint_covering(self, election_id: str, leaf_index: int) -> tuple[int, str] | None: ...
    def checkpoint_at(self, election_id: str, size: int) -> str | None: ...
    def checkpoints(self, election_id: str) -> list[tuple[int, str]]: ...
    def entries(self, election_id: str, start: int, end: int) -> list[bytes]: ...
    def find_leaves(self, election_id: str, hash_prefix: bytes, limit: int = 10) -> list[int]: ...
    def store_tally(self, election_id: str, note: str) -> bool: ...
    def get_tally(self, election_id: str) -> str | None: ...

    # the openings of a sealed election's ballots, stored as the tally opens them
    def store_openings(self, election_id: str, first_index: int, lines: Sequence[bytes]) -> None: ...
    def openings_count(self, election_id: str) -> int: ...
    def openings(self, election_id: str, start: int, end: int) -> list[bytes]: ...
    def close(self) -> None: ...


class StoreView:
    """A :class:`~hsm_signer.log.tree.NodeStore` over one election's nodes that buffers writes.

    The sequencer appends to the tree through this view and then commits the buffered
    nodes together with the index assignments and the checkpoint.
    """

    def __init__(self, storage: Storage, election_id: str):
        self._storage = storage
        self._election = election_id
        self.written: list[tuple[int, int, bytes]] = []
        self._pending: dict[tuple[int, int], bytes] = {}

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        missing = [k for k in keys if k not in self._pending]
        found = dict(zip(missing, self._storage.get_nodes(self._election, missing))) if missing else {}
        return [self._pending[k] if k in self._pending else found[k] for k in keys]

    def put_nodes(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        for level, index, value in items:
            self._pending[(level, index)] = value
            self.written.append((level, index, value))
