"""Building a whole service for tests: a fresh SoftHSM token with keys, a bundle, a config.

This is the short way round the key ceremony (which has its own tests):
:mod:`hsm_signer.testing.service` makes the keys with the same HSM layer calls, and the
bundle with the same dataclasses, but without the transcript and share-splitting steps.
The benchmarks build theirs with the same module.
"""

from __future__ import annotations

from pathlib import Path

from hsm_signer.testing import service as testing_service
from hsm_signer.testing.service import Kit

__all__ = ["DEMO_ELECTION", "Kit", "open_election", "provision"]

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
