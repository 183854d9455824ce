"""Opening and closing the poll.

Closing is the one transition with work attached: stop intake first (state ``closed``:
every new cast is refused from that instant), then make sure every stored ballot is
sequenced and covered by a signed checkpoint — the *final* checkpoint, which the tally
is bound to. If a sequencer is running elsewhere (the demo server, a separate
``hsm-signer sequencer``), closing waits for it; otherwise it drains the queue itself.
"""

from __future__ import annotations

import time
from typing import Callable

from .election import CLOSED, OPEN, check_transition
from .errors import ElectionError
from .sequencer import SequencerBusyError


def open_poll(storage, election_id: str) -> None:
    record = storage.get_election(election_id)
    check_transition(record.state, OPEN, election_id)
    storage.set_state(election_id, OPEN)


def close_poll(service, election_id: str, *, timeout: float = 300.0,
               progress: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Close the poll and return the final signed checkpoint ``(size, note)``."""
    storage = service.storage
    record = storage.get_election(election_id)
    if record.state != CLOSED:
        check_transition(record.state, CLOSED, election_id)
        storage.set_state(election_id, CLOSED)
    deadline = time.monotonic() + timeout
    while True:
        try:
            sequencer = service.make_sequencer()
            with sequencer.exclusive():
                sequencer.drain(election_id)
                final = sequencer.finalise(election_id)
            return final
        except SequencerBusyError:
            # Another sequencer holds the lock: it will sign the remaining ballots.
            pending = len(storage.pending(election_id, 1))
            latest = storage.latest_checkpoint(election_id)
            size = storage.tree_size(election_id)
            if not pending and latest is not None and latest[0] == size:
                return latest
            if progress:
                progress(f"waiting for the running sequencer to sign the last ballots (tree size {size})")
            if time.monotonic() > deadline:
                raise ElectionError(f"the running sequencer did not cover every ballot of {election_id!r} "
                                    f"within {timeout:.0f} s; check its log and the HSM") from None
            time.sleep(0.2)
