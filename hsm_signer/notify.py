"""In-process wake-ups between the request threads and the sequencer.

Two directions, kept apart so that nobody is woken for nothing:

* a stored ballot wakes the sequencer (:meth:`Notifier.wake_sequencer`), not the
  requests waiting for receipts;
* a committed batch wakes only the requests whose ballots it sequenced. The sequencer
  says up to which entry (``seq``) of which election it sequenced; a waiter that knows its
  entry's ``seq`` sleeps until then. Waking every waiter on every batch made each of them
  query the database for a receipt that, for most, was not there yet.

The ``seq`` test is a hint, never trusted for correctness: a woken waiter still looks its
receipt up, and one that does not find it (PostgreSQL can commit a lower ``seq`` after a
higher one) or that gives no ``seq`` waits for the next batch instead.

How a request waits for its receipt is a :class:`ReceiptWaiter`, chosen once by the
service: a :class:`BatchWaiter` when something in this process announces committed
batches on the notifier (the sequencer's loop, or a
:class:`~hsm_signer.watch.CommitWatcher` following a sequencer in another process), a
:class:`PollingWaiter` otherwise.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Protocol, runtime_checkable

#: A batch-fed waiter looks for its receipt at least this often even if no batch woke it
#: (a sequencer that stopped, a hint that was wrong), and notices a signer in trouble.
RECHECK_INTERVAL = 0.25
#: How often a polling waiter looks its receipt up.
POLL_INTERVAL = 0.02


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequenced: dict[str, int] = {}                 # election -> highest seq sequenced
        self._waiting: dict[str, list[tuple[int, int, threading.Event]]] = {}  # heaps by seq
        self._next_batch: list[threading.Event] = []         # woken by any batch
        self._tiebreak = itertools.count()
        self._work = threading.Condition()
        self._pending = 0

    # --- committed batches -> receipt waiters ---------------------------------------------
    def notify(self, election_id: str | None = None, through_seq: int | None = None) -> None:
        """A batch was committed: for ``election_id`` up to entry ``through_seq`` (None: wake all)."""
        with self._lock:
            woken, self._next_batch = self._next_batch, []
            if election_id is None or through_seq is None:
                for heap in self._waiting.values():
                    woken += [event for _, _, event in heap]
                self._waiting.clear()
            else:
                if through_seq > self._sequenced.get(election_id, -1):
                    self._sequenced[election_id] = through_seq
                heap = self._waiting.get(election_id, [])
                while heap and heap[0][0] <= through_seq:
                    woken.append(heapq.heappop(heap)[2])
        for event in woken:
            event.set()

    def waiters(self) -> int:
        """How many requests sleep until a batch wakes them (for health reports and tests)."""
        with self._lock:
            return len(self._next_batch) + sum(len(heap) for heap in self._waiting.values())

    def sequenced_through(self, election_id: str) -> int:
        """The highest entry seq of the election a batch in this process has sequenced (-1: none)."""
        with self._lock:
            return self._sequenced.get(election_id, -1)

    def wait(self, timeout: float, election_id: str | None = None, seq: int | None = None) -> bool:
        """Sleep until a batch sequences entry ``seq`` of ``election_id`` (without them: until the
        next batch), or the timeout; True if woken by a batch."""
        event = threading.Event()
        with self._lock:
            if election_id is None or seq is None or self._sequenced.get(election_id, -1) >= seq:
                item = None
                self._next_batch.append(event)
            else:
                item = (seq, next(self._tiebreak), event)
                heapq.heappush(self._waiting.setdefault(election_id, []), item)
        if event.wait(timeout):
            return True
        with self._lock:  # timed out: take our entry back
            if item is None:
                if event in self._next_batch:
                    self._next_batch.remove(event)
            elif election_id is not None:  # (always, when there is an item)
                heap = self._waiting.get(election_id, [])
                if item in heap:
                    heap.remove(item)
                    heapq.heapify(heap)
        return event.is_set()

    # --- stored ballots -> the sequencer ------------------------------------------------------
    def wake_sequencer(self) -> None:
        """A new entry was stored."""
        with self._work:
            self._pending += 1
            self._work.notify_all()

    def wait_for_work(self, timeout: float) -> None:
        """The sequencer's idle wait: until an entry is stored (or the timeout)."""
        with self._work:
            start = self._pending
            self._work.wait_for(lambda: self._pending != start, timeout=timeout)


@runtime_checkable
class ReceiptWaiter(Protocol):
    """How a request sleeps until its ballot's receipt may be there.

    ``seq`` is the stored entry's arrival number when the caller knows it (a hint:
    see the module docstring), else None.
    """

    def ready(self, election_id: str | None, seq: int | None) -> bool:
        """Whether looking the receipt up now can find it (False only when it surely cannot)."""

    def wait(self, election_id: str | None, seq: int | None, timeout: float) -> bool:
        """Sleep at most ``timeout`` seconds; True when the receipt should be looked up now."""


class BatchWaiter:
    """Sleeps until the committed batch that sequenced the entry (or any batch, without a hint)."""

    def __init__(self, notifier: Notifier, *, recheck: float = RECHECK_INTERVAL):
        self.notifier = notifier
        self.recheck = recheck

    def ready(self, election_id: str | None, seq: int | None) -> bool:
        return election_id is None or seq is None or self.notifier.sequenced_through(election_id) >= seq

    def wait(self, election_id: str | None, seq: int | None, timeout: float) -> bool:
        woken = self.notifier.wait(min(timeout, self.recheck), election_id, seq)
        return not woken or self.ready(election_id, seq)  # not woken: look anyway, now and then


class PollingWaiter:
    """Sleeps a fixed interval: for a process that learns of no batch (nothing announces them)."""

    def __init__(self, interval: float = POLL_INTERVAL):
        self.interval = interval

    def ready(self, election_id: str | None, seq: int | None) -> bool:
        return True

    def wait(self, election_id: str | None, seq: int | None, timeout: float) -> bool:
        time.sleep(min(timeout, self.interval))
        return True
