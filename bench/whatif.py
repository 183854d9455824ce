"""Proposed product changes, tried as patches inside benchmark processes only.

When a benchmark and its profile point at a product limit, the cheapest evidence for a
fix is to measure it before anyone edits the product. Each entry of :data:`FIXES`
replaces one product function, in the current process only, with the change it
proposes; benchmarks report such runs as "what if", never as the product's figures.

Run any ``hsm-signer`` command with fixes applied::

    HSM_SIGNER_BENCH_WHATIF=keyed-node-read,writer-lock python -m bench.whatif --config CFG serve

or, for gunicorn, the app ``'bench.whatif:create_app()'`` in place of ``'web:create_app()'``.

``HSM_SIGNER_BENCH_WHATIF`` is read by the bench entry points (this module and
:mod:`bench.slow_server`) and nowhere else.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

ENV_VAR = "HSM_SIGNER_BENCH_WHATIF"


def keyed_node_read() -> None:
    """``SqlStorage.get_nodes`` with ``election = ?`` inside every OR term.

    The product asks ``WHERE election = ? AND ((level = ? AND idx = ?) OR ...)``, which
    SQLite 3.40 runs as a scan of every node of the election (O(n) per read; see
    ``EXPLAIN QUERY PLAN``). With the election in each term it is one primary-key
    lookup per node (``MULTI-INDEX OR``). Same results, same chunking.
    """
    from hsm_signer.log.tree import MissingNodeError
    from hsm_signer.storage.sql import SqlStorage

    def get_nodes(self, election_id, keys):
        wanted = list(dict.fromkeys(keys))
        found = {}
        for start in range(0, len(wanted), 200):
            chunk = wanted[start:start + 200]
            terms = " OR ".join(["(election = ? AND level = ? AND idx = ?)"] * len(chunk))
            params = [value for level, index in chunk for value in (election_id, level, index)]
            for level, index, value in self._query(f"SELECT level, idx, hash FROM nodes WHERE {terms}", params):
                found[(level, index)] = bytes(value)
        for level, index in wanted:
            if (level, index) not in found:
                raise MissingNodeError(f"tree node (level {level}, index {index}) of election "
                                       f"{election_id!r} is missing from the {self.name}")
        return [found[k] for k in keys]

    SqlStorage.get_nodes = get_nodes


def writer_lock() -> None:
    """Serialise one process's SQLite write transactions on a ``threading.Lock`` first.

    Without it, threads that lose the race for SQLite's write lock wait in SQLite's busy
    handler, which sleeps 1, 2, 5, 10, ... 100 ms between tries whatever the holder is
    doing; a thread queue on a Python lock wakes the next writer as soon as the holder
    commits. Other processes still meet the busy handler.
    """
    from hsm_signer.storage.sqlite import SQLiteStorage

    original = SQLiteStorage._write
    locks: dict[str, threading.Lock] = {}
    guard = threading.Lock()

    @contextmanager
    def _write(self):
        with guard:
            lock = locks.setdefault(str(self.path), threading.Lock())
        with lock:
            with original(self) as db:
                yield db

    SQLiteStorage._write = _write


def quiet_wake() -> None:
    """A stored ballot wakes the sequencer only, not every receipt waiter.

    ``BallotBox.submit`` calls ``Notifier.wake_sequencer``, which is ``notify`` on the
    condition every receipt waiter also waits on: each new ballot wakes all waiting
    requests, and each of them queries the database for a receipt that is not there yet.
    Here a new ballot wakes nobody; the sequencer's loop notices it within its
    ``max_wait`` poll (20 ms by default) and waiters wake when a batch is committed.
    """
    from hsm_signer.sequencer import Notifier

    Notifier.wake_sequencer = lambda self: None


FIXES = {"keyed-node-read": keyed_node_read, "writer-lock": writer_lock, "quiet-wake": quiet_wake}


def install(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in FIXES]
    if unknown:
        raise SystemExit(f"{ENV_VAR}: unknown fix(es) {', '.join(unknown)}; known: {', '.join(FIXES)}")
    for name in names:
        FIXES[name]()
    return names


def install_from_env() -> list[str]:
    return install([n for n in os.environ.get(ENV_VAR, "").split(",") if n])


def create_app():
    """``web:create_app()`` with the fixes from the environment (for gunicorn's app argument)."""
    install_from_env()
    from web import create_app as web_create_app
    return web_create_app()


def main(argv: list[str] | None = None) -> int:
    install_from_env()
    from hsm_signer.cli import main as hsm_signer_main
    return hsm_signer_main(argv)


if __name__ == "__main__":
    sys.exit(main())
