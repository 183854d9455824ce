"""Group commit: ballots from many request threads stored by one writer, many per transaction.

A ballot must be durably stored (fsynced) before it is acknowledged. One transaction per
ballot makes every request queue for the database's single write lock and pay a commit
of its own; under load that queue, not the work, sets the ballot rate. Here request
threads hand their ballots to one writer thread per process, which stores everything
that queued up while it was committing in one transaction
(:meth:`~hsm_signer.storage.base.Storage.cast_many`) — the same batching the sequencer
does for signatures. Each ballot still gets its own outcome: an unknown or used code
fails only its own request.

Nothing is acknowledged before its transaction commits, and a failed transaction is
retried ballot by ballot, so one bad ballot cannot fail the others.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from .errors import HsmSignerError
from .storage.base import CastOutcome, CastRequest, Storage

log = logging.getLogger(__name__)

MAX_GROUP = 256
"""Ballots per transaction at most (bounds a transaction's time, hence the wait of the next group)."""


class IntakeClosedError(HsmSignerError):
    """The service is shutting down: the ballot was not stored."""

    def __init__(self) -> None:
        super().__init__("the service is shutting down; your ballot was not stored, please submit it again")


class _Slot:
    __slots__ = ("request", "result", "ticket")

    def __init__(self, request: CastRequest, ticket: "Ticket"):
        self.request = request
        self.result: CastOutcome | BaseException | None = None
        self.ticket = ticket


class Ticket:
    """The ballots one call queued: answered together, once the writer has stored them all."""

    def __init__(self, requests: Sequence[CastRequest]):
        self._slots = [_Slot(request, self) for request in requests]
        self._left = len(self._slots)
        self._lock = threading.Lock()
        self._done = threading.Event()
        if not self._slots:
            self._done.set()

    def _answered(self, count: int) -> None:
        with self._lock:
            self._left -= count
            if self._left <= 0:
                self._done.set()

    def results(self) -> list[CastOutcome | Exception]:
        """Each ballot's outcome (or its own exception), in the order queued; waits until stored."""
        self._done.wait()
        return [slot.result for slot in self._slots]  # type: ignore[misc]


class CastIntake:
    """Stores ballots through one writer thread, grouping concurrent ones per transaction."""

    def __init__(self, storage: Storage, *, max_group: int = MAX_GROUP):
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self.storage = storage
        self.max_group = max_group
        self._queue: list[_Slot] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.transactions = 0  # committed groups, for metrics and benchmarks
        self.stored = 0        # requests answered

    def cast(self, request: CastRequest) -> CastOutcome:
        """Store one ballot (or find its code used); raises what :meth:`Storage.cast` raises."""
        outcome = self.cast_many([request])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def cast_many(self, requests: Sequence[CastRequest]) -> list[CastOutcome | Exception]:
        """Queue several ballots at once (a postal batch) and wait until all are answered."""
        return self.enqueue(requests).results()

    def enqueue(self, requests: Sequence[CastRequest]) -> Ticket:
        """Queue several ballots without waiting: the caller prepares more meanwhile, then
        waits on :meth:`Ticket.results` (a postal batch seals one part while the part before
        it is being stored). Nothing is stored until the writer commits it."""
        ticket = Ticket(requests)
        with self._cond:
            if self._closed:
                raise IntakeClosedError()
            self._queue.extend(ticket._slots)
            # Started on first use, in the process that uses it (a thread does not survive fork()).
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ballot-intake", daemon=True)
                self._thread.start()
            self._cond.notify()
        return ticket

    def close(self) -> None:
        """Answer what is queued, then stop the writer; later casts raise IntakeClosedError."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    # --- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                group = self._queue[:self.max_group]
                del self._queue[:self.max_group]
            self._commit(group)

    def _commit(self, group: list[_Slot]) -> None:
        try:
            try:
                results: list = list(self.storage.cast_many([slot.request for slot in group]))
                self.transactions += 1
            except Exception as exc:
                if len(group) == 1:
                    results = [exc]
                else:
                    # One ballot's database error must not fail the others: store one by one.
                    log.warning("group of %d ballots rolled back (%s); storing them one by one",
                                len(group), type(exc).__name__)
                    results = [self._alone(slot.request) for slot in group]
            for slot, result in zip(group, results):
                slot.result = result
        finally:
            answered: dict[Ticket, int] = {}
            for slot in group:
                if slot.result is None:  # the writer itself failed: never leave a request waiting
                    slot.result = HsmSignerError("the ballot could not be stored (internal error); submit it again")
                answered[slot.ticket] = answered.get(slot.ticket, 0) + 1
            for ticket, count in answered.items():
                ticket._answered(count)
            self.stored += len(group)

    def _alone(self, request: CastRequest) -> CastOutcome | Exception:
        try:
            result = self.storage.cast_many([request])[0]
            self.transactions += 1
            return result
        except Exception as exc:
            return exc
