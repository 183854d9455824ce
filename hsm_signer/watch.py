"""Following the sequencer from outside: its committed batches and its health.

A web process whose sequencer runs elsewhere (``hsm-signer serve`` starts it as its own
process; several gunicorn workers share one ``hsm-signer sequencer``) learns of committed
batches from the database. One thread per process looks for a new latest checkpoint of
each open or closed election every few milliseconds (an index lookup per election) and, when it
grows, wakes the waiters whose ballots it now covers through the :class:`Notifier` — one
small query per poll instead of every waiting request polling for its own receipt.

:class:`SignerHealth` tells waiters and ``/health`` whether the signer is known to fail:
the sequencer of this process when it runs, else the heartbeat another one writes.
"""

from __future__ import annotations

import logging
import threading
import time

from .election import DRAFT
from .notify import Notifier
from .sequencer import Sequencer, read_heartbeat
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
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.notifier.notify()  # no more batches from here: every waiter looks once more

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


class SignerHealth:
    """Whether the signer signs: this process's sequencer while it runs, else another's heartbeat."""

    #: Waiters ask often; the heartbeat moves once a second.
    CACHE_SECONDS = 0.5

    def __init__(self, storage: Storage, sequencer: Sequencer | None = None):
        self.storage = storage
        self.sequencer = sequencer
        self._cached = True
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def status(self) -> dict:
        """``{"mode": "in-process" | "external", "healthy": True | False | None, "error": ...}``."""
        if self.sequencer is not None and self.sequencer.running:
            return {"mode": "in-process", "healthy": self.sequencer.healthy, "error": self.sequencer.last_error}
        beat = read_heartbeat(self.storage)
        if beat is None:
            return {"mode": "external", "healthy": None, "error": "no sequencer has reported yet"}
        if not beat["fresh"]:
            return {"mode": "external", "healthy": False, "error": "the sequencer has not reported for a while"}
        return {"mode": "external", "healthy": bool(beat["healthy"]), "error": beat.get("error")}

    def healthy(self) -> bool:
        """False while the signer is known not to sign (HSM down, tampering refused, gone)."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked > self.CACHE_SECONDS:
                self._cached = self.status()["healthy"] is not False
                self._checked = now
            return self._cached
