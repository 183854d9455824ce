"""Building a whole service for tests: a fresh SoftHSM token with keys, a bundle, a config.

This is the short way round the key ceremony (which has its own tests):
:mod:`hsm_signer.testing.service` makes the keys with the same HSM layer calls, and the
bundle with the same dataclasses, but without the transcript and share-splitting steps.
The benchmarks build theirs with the same module.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from hsm_signer.ballots import SealedBallot
from hsm_signer.log.sealed import padded_size, seal_ballot
from hsm_signer.testing import service as testing_service
from hsm_signer.unsealing import open_chunk
from hsm_signer.web.board import PAGE
from hsm_signer.testing.service import Kit

__all__ = ["DEMO_ELECTION", "Kit", "fill_the_board", "open_box_with", "open_election", "provision"]

DEMO_ELECTION = {
    "id": "test-election",
    "title": "Test election",
    "contests": [
        {"id": "leader", "title": "Leader", "options": [
            {"id": "alice", "title": "Alice"}, {"id": "bob", "title": "Bob"}, {"id": "carol", "title": "Carol"}]},
        {"id": "board", "title": "Board", "max_choices": 2, "options": [
            {"id": "dan", "title": "Dan"}, {"id": "erin", "title": "Erin"}, {"id": "frank", "title": "Frank"}]},
    ],
}


def provision(tokens, directory: Path, *, tally_algorithm: str = "ecdsa-p256", batch_size: int = 1000,
              module: str | None = None) -> Kit:
    """A token with checkpoint, tally and code keys; keys.json; a PIN file; config.toml.

    ``module`` makes the service reach the token through another PKCS#11 module (the
    p11-kit client, for a network HSM the test can kill)."""
    return testing_service.provision(tokens.new("svc"), directory, ceremony_id="test", tally_algorithm=tally_algorithm,
                                     module=module, batch_size=batch_size, max_wait_ms=5)


def open_election(service, count: int = 20, definition: dict = DEMO_ELECTION) -> list[str]:
    """Create and open the test election with ``count`` codes; return the codes (display form)."""
    return testing_service.open_election(service, definition, count)


def open_box_with(service, deriver):
    """The tally's ``open_box`` for ``tally_election``: every entry opened through the HSM
    ``deriver`` (conftest's ``hsm_sealing_key``) in this process, as each worker of
    ``hsm-signer tally`` does for its chunks, and the openings stored in log order."""
    def open_box(election, size: int) -> None:
        chunk = list(enumerate(service.storage.entries(election.id, 0, size)))
        lines = open_chunk(deriver, deriver.public_key, election, padded_size(election), chunk)
        service.storage.store_openings(election.id, 0, lines)
    return open_box


def fill_the_board(service, codes: list[str]):
    """Fill the test election's board past its first page: 50 online ballots sealed by the
    server, one sealed by a client for another ballot id (it will not open: an invalid
    entry), one by post; returns the postal ballot's receipt (entry 51, on the second page).
    Needs a sealing key (conftest's ``hsm_sealing_key``) and 52 codes."""
    election_id = DEMO_ELECTION["id"]
    election = service.storage.get_election(election_id).election
    spoilt = SealedBallot(secrets.token_hex(16), seal_ballot(
        service.ballots.sealing_key, election_id, "online", secrets.token_hex(16), {"leader": ["alice"], "board": []},
        service.ballots.padded_size(election)))
    online = [(code, {"leader": ["alice"], "board": []}) for code in codes[:PAGE]] + [(codes[PAGE], spoilt)]
    refused = [r for r in service.ballots.submit_many(election_id, online) if isinstance(r, Exception)]
    assert not refused, refused[:1]
    return service.ballots.cast(election_id, codes[PAGE + 1], {"leader": ["bob"], "board": ["dan", "frank"]},
                                channel="postal").receipt  # a receipt waits for a checkpoint covering all 52
