"""Casting for the web: store the ballot, wait for its receipt, and tell new from repeated.

The API answers 201 for a newly stored ballot and 200 for the same ballot sent again
with the same code; :meth:`BallotBox.submit` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_signer.ballots import BallotBox
from hsm_signer.log.receipt import Receipt


@dataclass(frozen=True)
class Cast:
    ballot_id: str
    receipt: Receipt
    new: bool  # stored by this request (False: the same ballot was already stored)


def cast(ballots: BallotBox, election_id: str, code: str, selections: object) -> Cast:
    """Submit, then wait for the signed receipt (ReceiptPendingError if it is slow)."""
    submission = ballots.submit(election_id, code, selections)
    return Cast(submission.ballot_id, ballots.wait_for(submission), submission.new)
