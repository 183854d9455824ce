"""Casting for the web: store the ballot, wait for its receipt, and tell new from repeated.

The API answers 201 for a newly stored ballot and 200 for the same ballot sent again
with the same code. :meth:`BallotBox.submit` returns only the ballot id, so this module
runs it on a shallow copy of the ballot box whose storage remembers what
:meth:`Storage.cast` (one transaction: consume the code, store the ballot) reported.
That costs no extra HSM operation and has no race, unlike asking ``code_status`` first.
(The core could return the flag itself; see docs/WEB.md.)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from hsm_signer.ballots import BallotBox
from hsm_signer.log.receipt import Receipt


class _CastRecorder:
    """A storage proxy that remembers whether ``cast`` stored a new entry."""

    def __init__(self, storage):
        self._storage = storage
        self.stored = False

    def cast(self, *args, **kwargs):
        outcome = self._storage.cast(*args, **kwargs)
        self.stored = outcome.stored
        return outcome

    def __getattr__(self, name):
        return getattr(self._storage, name)


@dataclass(frozen=True)
class Cast:
    ballot_id: str
    receipt: Receipt
    new: bool  # stored by this request (False: the same ballot was already stored)


def submit(ballots: BallotBox, election_id: str, code: str, selections: object) -> tuple[str, bool]:
    """Store (or find again) the ballot; return ``(ballot_id, newly_stored)``."""
    recorder = _CastRecorder(ballots.storage)
    box = copy.copy(ballots)
    box.storage = recorder
    ballot_id = box.submit(election_id, code, selections)
    return ballot_id, recorder.stored


def cast(ballots: BallotBox, election_id: str, code: str, selections: object) -> Cast:
    """Submit, then wait for the signed receipt (ReceiptPendingError if it is slow)."""
    ballot_id, new = submit(ballots, election_id, code, selections)
    return Cast(ballot_id, ballots.wait_for_receipt(ballot_id), new)
