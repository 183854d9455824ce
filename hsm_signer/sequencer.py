"""The sequencer/signer: turns durably stored ballots into signed log entries, batch by batch.

For each election with pending entries it takes them in arrival order (up to
``batch_size``), assigns contiguous leaf indexes, extends the Merkle tree, has the HSM sign
one checkpoint for the whole batch and commits indexes, tree nodes and checkpoint in one
transaction, then wakes the web requests waiting for their receipts. A batch is signed as
soon as the previous signature finishes, so under load one HSM signature covers many
ballots and a slow HSM does not cap the ballot rate.

Invariant 4 lives here: before signing, the sequencer proves with a consistency proof
that the new tree extends the last checkpoint *it* signed, using its own record of that
checkpoint kept outside the database (:class:`SignerState`). A database that was rolled
back, truncated or edited behind its back is refused, never signed.

It must never sign a tree it has not checked, and never hold a receipt waiter hostage:
on an HSM outage it records the error and keeps retrying, and waiters give up on their
own deadline.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .election import CLOSED, OPEN
from .errors import HsmSignerError, HsmUnavailableError, VerificationError
from .log.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from .log.merkle import EMPTY_ROOT, leaf_hash, verify_consistency
from .log.note import NoteVerifier
from .log.tree import MerkleTree
from .notify import Notifier
from .signer import Signer
from .storage.base import Storage, StoreView

log = logging.getLogger(__name__)


HEARTBEAT_INTERVAL = 1.0
BUSY_POLL = 0.002
"""Seconds between looks for new entries while ballots are arriving (see _run_loop)."""
BUSY_WINDOW = 2.0
"""How long after the last batch the sequencer keeps looking that often."""
HEARTBEAT_STALE = 10.0
LINK_PURGE_INTERVAL = 30.0
"""Seconds between purges of code-to-ballot links whose resubmission window ended (a link
is also refused on read once expired, so this bounds only how long its bytes stay)."""


def read_heartbeat(storage: Storage) -> dict | None:
    """The running sequencer's last heartbeat, with ``fresh`` added; None if it never beat."""
    text = storage.signer_status()
    if not text:
        return None
    try:
        beat = json.loads(text)
        beat["fresh"] = time.time() - float(beat["at"]) < HEARTBEAT_STALE
        return beat
    except (ValueError, KeyError, TypeError):
        return None


class TamperError(HsmSignerError):
    """The stored log is not an extension of what this signer last signed: refused."""


class SequencerBusyError(HsmSignerError):
    """Another sequencer already signs for this state file (one signer per log)."""


@dataclass(frozen=True)
class Signed:
    size: int
    root: bytes


class SignerState:
    """The signer's own record of the last checkpoint it signed, per election.

    A small JSON file outside the database, replaced atomically (write, fsync, rename,
    fsync the directory) after every batch, so a database rollback cannot also roll it back.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data: dict[str, dict] = {}
        if self.path.exists():
            try:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise TamperError(f"signer state file {self.path} is unreadable ({exc}); "
                                  "restore it from backup: the sequencer will not sign without it") from None

    def get(self, election_id: str) -> Signed | None:
        entry = self._data.get(election_id)
        return Signed(entry["size"], bytes.fromhex(entry["root"])) if entry else None

    def set(self, election_id: str, signed: Signed) -> None:
        with self._lock:
            self._data[election_id] = {"size": signed.size, "root": signed.root.hex()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(self._data, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class Sequencer:
    def __init__(self, storage: Storage, signer: Signer, key_name: str, state: SignerState, *,
                 batch_size: int = 1000, max_wait: float = 0.02, notifier: Notifier | None = None,
                 clock: Callable[[], float] = time.time):
        self.storage = storage
        self.signer = signer
        self.key_name = key_name
        self.state = state
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.notifier = notifier or Notifier()
        self._verifier = NoteVerifier.from_public_key(key_name, signer.public_key_der)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.signatures = 0
        self.sequenced = 0
        self.last_error: str | None = None
        self.healthy = True
        self._origins: dict[str, str] = {}
        self.clock = clock  # Unix seconds: when a poll's closes_at has come (tests pass their own)

    def _origin(self, election_id: str) -> str:
        """The origin line of an election's checkpoints, as its stored definition records it."""
        origin = self._origins.get(election_id)
        if origin is None:  # an election's origin never changes: read it once
            origin = self._origins[election_id] = self.storage.get_election(election_id).election.log_origin
        return origin

    # --- one batch ---------------------------------------------------------------------
    def sequence_once(self, election_id: str) -> int:
        """Sequence and sign up to ``batch_size`` pending entries; return how many."""
        pending = self.storage.pending(election_id, self.batch_size)
        if not pending:
            return 0
        last = self._check_stored_tree(election_id)
        view = StoreView(self.storage, election_id)
        tree = MerkleTree(view, last.size if last else 0)
        size, root = tree.append([leaf_hash(entry.leaf) for entry in pending])
        if last is not None and last.size > 0:
            try:
                verify_consistency(last.size, size, tree.consistency_proof(last.size, size), last.root, root)
            except VerificationError as exc:
                raise TamperError(
                    f"refusing to sign election {election_id!r}: the stored tree does not extend the last "
                    f"checkpoint this signer signed (size {last.size}): {exc}") from None
        note = sign_checkpoint(Checkpoint(self._origin(election_id), size, root), self.key_name, self.signer)
        if last is None:
            # This signer's first batch of this log: record that it starts the log (size 0)
            # before the database can hold a tree, so that a crash between the commit and the
            # record below is recovered like any later batch, not refused for ever.
            self.state.set(election_id, Signed(0, EMPTY_ROOT))
        self.storage.commit_batch(election_id, [(e.seq, (last.size if last else 0) + i) for i, e in enumerate(pending)],
                                  view.written, size, note)
        self.state.set(election_id, Signed(size, root))
        self.signatures += 1
        self.sequenced += len(pending)
        self.notifier.notify(election_id, pending[-1].seq)
        return len(pending)

    def _check_stored_tree(self, election_id: str) -> Signed | None:
        """The last signed (size, root), after checking the database agrees with it."""
        last = self.state.get(election_id)
        stored = self.storage.tree_size(election_id)
        if last is None:
            if stored:
                raise TamperError(
                    f"refusing to sign election {election_id!r}: the database holds a tree of {stored} entries "
                    f"but this signer's state file {self.state.path} has no record of signing it; restore the "
                    "state file (a signer never adopts a tree it did not sign)")
            return None
        if stored < last.size:
            raise TamperError(
                f"refusing to sign election {election_id!r}: the database tree has {stored} entries but this "
                f"signer already signed a tree of {last.size}: the database was rolled back or truncated")
        if stored > last.size:
            last = self._recover_unrecorded_batch(election_id, last, stored)
        # The stored nodes must still give the root we signed.
        root = MerkleTree(StoreView(self.storage, election_id), stored).root(last.size)
        if root != last.root:
            raise TamperError(
                f"refusing to sign election {election_id!r}: the stored tree of size {last.size} has root "
                f"{root.hex()[:16]}…, but this signer signed {last.root.hex()[:16]}…: the database was altered")
        return last

    def _recover_unrecorded_batch(self, election_id: str, last: Signed, stored: int) -> Signed:
        """A crash between committing a batch and recording it: adopt it only if we signed it."""
        latest = self.storage.latest_checkpoint(election_id)
        if latest is None or latest[0] != stored:
            raise TamperError(
                f"refusing to sign election {election_id!r}: the database tree has {stored} entries, more than "
                f"the {last.size} this signer signed, and no checkpoint of that size")
        checkpoint = open_checkpoint(latest[1], [self._verifier])
        tree = MerkleTree(StoreView(self.storage, election_id), stored)
        if checkpoint.root_hash != tree.root(stored):
            raise TamperError(f"refusing to sign election {election_id!r}: the stored checkpoint of size "
                              f"{stored} does not match the stored tree")
        verify_consistency(last.size, stored, tree.consistency_proof(last.size, stored), last.root, checkpoint.root_hash)
        recovered = Signed(stored, checkpoint.root_hash)
        self.state.set(election_id, recovered)
        log.warning("election %s: recorded the batch up to size %d committed before a crash", election_id, stored)
        return recovered

    def finalise(self, election_id: str) -> tuple[int, str]:
        """The final checkpoint of a closed election: the latest one if it covers every
        entry, else a fresh one over the whole stored tree (even an empty one)."""
        if self.storage.pending(election_id, 1):
            raise TamperError(f"election {election_id!r} still has unsequenced entries; drain first")
        size = self.storage.tree_size(election_id)
        latest = self.storage.latest_checkpoint(election_id)
        if latest is not None and latest[0] == size:
            return latest
        last = self._check_stored_tree(election_id)
        root = MerkleTree(StoreView(self.storage, election_id), size).root(size)
        if last is not None and (last.size, last.root) != (size, root):
            raise TamperError(f"refusing to finalise election {election_id!r}: the stored tree is not the one "
                              "this signer signed last")
        note = sign_checkpoint(Checkpoint(self._origin(election_id), size, root), self.key_name, self.signer)
        self.storage.commit_batch(election_id, [], [], size, note)
        self.state.set(election_id, Signed(size, root))
        self.signatures += 1
        self.notifier.notify()
        return size, note

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the one-signer-per-log lock (a lock file beside the state file)."""
        self.state.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.state.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SequencerBusyError(
                    f"another sequencer is running with state file {self.state.path}; "
                    "run only one sequencer per database") from None
            yield self
        finally:
            os.close(fd)

    def _close_on_schedule(self) -> None:
        """Close every open poll whose ``closes_at`` has come, as ``election close`` does:
        state closed (intake stops), resubmission links destroyed; the pending ballots are
        then signed and the final checkpoint follows (:meth:`_finalise_closed`)."""
        now = self.clock()
        for record in self.storage.list_elections():
            if record.state == OPEN and record.election.closes_by(now):
                self.storage.set_state(record.election.id, CLOSED)
                self.storage.forget_links(record.election.id)
                log.info("closed the poll of election %r at its closes_at (%s)", record.election.id,
                         record.election.closes_at)
                self.drain(record.election.id)

    def _finalise_closed(self) -> None:
        for record in self.storage.list_elections():
            if record.state == CLOSED and not self.storage.pending(record.election.id, 1):
                latest = self.storage.latest_checkpoint(record.election.id)
                if latest is None or latest[0] != self.storage.tree_size(record.election.id):
                    self.finalise(record.election.id)

    # --- the loop ----------------------------------------------------------------------
    def run_pending(self) -> int:
        """One pass over every election with pending entries; return how many were sequenced."""
        total = 0
        for election_id in self.storage.elections_with_pending():
            total += self.sequence_once(election_id)
        return total

    def drain(self, election_id: str) -> None:
        """Sequence everything pending for one election (closing the poll)."""
        while self.sequence_once(election_id):
            pass

    def run(self) -> None:
        """Sequence until :meth:`stop`; survive HSM outages, refuse tampering loudly."""
        with self.exclusive():
            self._loop()

    def _heartbeat(self) -> None:
        """Tell processes that do not run the sequencer how it is doing (see :func:`read_heartbeat`)."""
        try:
            self.storage.set_signer_status(json.dumps(
                {"healthy": self.healthy, "error": self.last_error, "at": time.time()}))
        except Exception as exc:  # the heartbeat must never stop the signer
            log.warning("sequencer heartbeat not written: %s", exc)

    def _loop(self) -> None:
        try:
            self._run_loop()
        finally:
            self.notifier.notify()  # no more batches from here: every waiter looks once more

    def _run_loop(self) -> None:
        next_beat = next_purge = 0.0
        last_batch = -BUSY_WINDOW
        reported = None
        while not self._stop.is_set():
            periodic = time.monotonic() >= next_beat
            if periodic or self.healthy != reported:
                self._heartbeat()
                reported = self.healthy
                next_beat = time.monotonic() + HEARTBEAT_INTERVAL
            try:
                done = self.run_pending()
                if periodic:
                    self._close_on_schedule()
                    self._finalise_closed()
                if time.monotonic() >= next_purge:  # resubmission windows that ended: destroy their links
                    self.storage.purge_links(int(time.time()))
                    next_purge = time.monotonic() + LINK_PURGE_INTERVAL
                if not self.healthy:
                    log.warning("sequencer is signing again")
                self.healthy, self.last_error = True, None
            except HsmUnavailableError as exc:
                self.healthy, self.last_error = False, str(exc)
                self._stop.wait(0.2)
                continue
            except TamperError as exc:
                self.healthy, self.last_error = False, str(exc)
                log.critical("%s", exc)
                self._stop.wait(1.0)
                continue
            except HsmSignerError as exc:
                self.healthy, self.last_error = False, str(exc)
                log.error("sequencer: %s", exc)
                self._stop.wait(1.0)
                continue
            if done:
                last_batch = time.monotonic()
            else:
                # Ballots stored by this process wake us at once; those stored by other
                # processes (the web server, when the sequencer runs on its own) are only
                # seen by looking. Look every few milliseconds while ballots are arriving,
                # every max_wait once the log has been quiet for a while.
                busy = time.monotonic() - last_batch < BUSY_WINDOW
                self.notifier.wait_for_work(min(self.max_wait, BUSY_POLL) if busy else self.max_wait)

    def start(self) -> "Sequencer":
        """Run in a background thread; raises SequencerBusyError if another one runs."""
        holder = self.exclusive()
        holder.__enter__()

        def run() -> None:
            try:
                self._loop()
            finally:
                holder.__exit__(None, None, None)
        self._thread = threading.Thread(target=run, name="sequencer", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """Whether this sequencer's background thread signs (started, holding the lock, not stopped)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self.notifier.wake_sequencer()
        if self._thread is not None:
            self._thread.join(timeout=10)
