"""What views reach the core through: the app's :class:`Service` and small lookups on it.

The service lives in ``current_app.extensions["hsm_signer"]`` (never in a module
global), so several apps (tests) can live in one process.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from hsm_signer.election import OPEN
from hsm_signer.errors import UnknownElectionError
from hsm_signer.log.tree import MerkleTree
from hsm_signer.service import Service
from hsm_signer.storage import ElectionRecord, StoreView

from .errors import WebError


@dataclass
class WebContext:
    service: Service
    owns_service: bool  # opened by create_app, so closed with it


def service() -> Service:
    return current_app.extensions["hsm_signer"].service


def election_record(election_id: str) -> ElectionRecord:
    """The election and its state, or 404 ``election_not_found``."""
    try:
        return service().storage.get_election(election_id)
    except UnknownElectionError:
        raise WebError("election_not_found") from None


def open_election(election_id: str) -> ElectionRecord:
    """The election if its poll is open, else 404 / 409 ``poll_not_open``."""
    record = election_record(election_id)
    if record.state != OPEN:
        when = "has not opened yet" if record.state == "draft" else "has closed"
        raise WebError("poll_not_open", f"the poll for this election {when}")
    return record


def signed_size(election_id: str) -> tuple[int, str | None]:
    """The size and note of the latest signed checkpoint (0, None before the first)."""
    latest = service().storage.latest_checkpoint(election_id)
    return latest if latest is not None else (0, None)


def signed_tree(election_id: str) -> MerkleTree:
    """The election's tree as far as a signed checkpoint covers it (nothing unsigned leaks)."""
    size, _ = signed_size(election_id)
    return MerkleTree(StoreView(service().storage, election_id), size)
