"""Waking receipt waiters when the sequencer runs in another process.

A web process whose sequencer runs elsewhere (``hsm-signer serve`` starts it as its own
process; several gunicorn workers share one ``hsm-signer sequencer``) learns of committed
batches from the database. One thread per process looks for a new latest checkpoint of
each open or closed election every few milliseconds (an index lookup per election) and, when it
grows, wakes the waiters whose ballots it now covers through the :class:`Notifier` — one
small query per poll instead of every waiting request polling for its own receipt.
"""

from __future__ import annotations

import logging
import threading
import time

from .election import DRAFT
from .notify import Notifier
from .storage.base import Storage

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.005
ELECTIONS_REFRESH = 1.0


class CommitWatcher:
    def __init__(self, storage: Storage, notifier: Notifier, *, interval: float = POLL_INTERVAL):
        self.storage = storage
        self.notifier = notifier
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sizes: dict[str, int] = {}

    def start(self) -> "CommitWatcher":
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)
        self._thread.start()
        self.notifier.has_source = True
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.notifier.has_source = False
        self.notifier.notify()  # waiters go back to polling

    def poll(self, elections: list[str]) -> int:
        """Look once; wake the waiters of every batch committed since; return how many elections moved."""
        moved = 0
        for election_id in elections:
            latest = self.storage.latest_checkpoint(election_id)
            size = latest[0] if latest else 0
            if size > self._sizes.get(election_id, 0):
                self._sizes[election_id] = size
                through = self.storage.seq_at(election_id, size - 1)
                self.notifier.notify(election_id, through)
                moved += 1
        return moved

    def _run(self) -> None:
        elections: list[str] = []
        refreshed = 0.0
        failing = False
        while not self._stop.wait(self.interval):
            try:
                if time.monotonic() - refreshed >= ELECTIONS_REFRESH:
                    elections = [r.election.id for r in self.storage.list_elections() if r.state != DRAFT]
                    refreshed = time.monotonic()
                self.poll(elections)
                if failing:
                    log.warning("commit watcher: reading the database again")
                failing = False
            except Exception as exc:  # keep watching: waiters still time out on their own
                if not failing:
                    log.error("commit watcher: cannot read the database: %s", exc)
                failing = True
                self._stop.wait(0.5)
