"""A sealed election on real SoftHSM tokens, for the tally, record and audit tests.

``sealed_election(state, valid=N, ...)`` runs the demo's bootstrap (rehearsal ceremony with
the sealing token and the tally trustees' share files, the demo election, codes), casts
ballots through the ballot box (sealed by the server, plus client-sealed ones that will
not open to a valid vote), and closes the poll. Returns what the tests need to know.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from hsm_signer import config as config_mod
from hsm_signer.ballots import SealedBallot
from hsm_signer.commands.demo import bootstrap
from hsm_signer.lifecycle import close_poll
from hsm_signer.log import hpke
from hsm_signer.log.sealed import seal_ballot
from hsm_signer.service import Service

ELECTION = "demo-2026"
LEADERS = ("amara-okafor", "ben-carter", "chloe-davies")
EXECUTIVE = ("dev-patel", "erin-walsh", "farid-haddad", "grace-liu")


@dataclass(frozen=True)
class SealedElection:
    state: Path
    config_path: Path
    leaders: dict[str, int]   # valid ballots per leader option
    invalid: int              # ballots that cannot count


def _wait(service: Service, size: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while service.storage.tree_size(ELECTION) < size:
        if time.monotonic() > deadline:
            raise AssertionError("the sequencer did not sequence the test ballots in time")
        time.sleep(0.05)


def sealed_election(state: Path, *, valid: int, spoiled: bool = True, seed: int = 1) -> SealedElection:
    """Bootstrap the demo state in ``state``, cast ``valid`` good ballots (and, with
    ``spoiled``, six that will be invalid: garbage, wrong binding, selections outside the
    election), close the poll."""
    extra = 6 if spoiled else 0
    config_path = bootstrap(state, 0, valid + extra)
    cfg = config_mod.load(config_path)
    service = Service.open(cfg, with_sequencer=True).start()
    try:
        codes = [line.strip() for line in (state / "codes.csv").read_text().splitlines()[1:]]
        rng = random.Random(seed)
        leaders = dict.fromkeys(LEADERS, 0)
        ballots: list[tuple[str, object]] = []
        for code in codes[:valid]:
            leader = rng.choice(LEADERS)
            leaders[leader] += 1
            ballots.append((code, {"leader": [leader], "executive": sorted(rng.sample(EXECUTIVE, rng.randint(0, 2)))}))
        if spoiled:
            point = service.bundle.sealing_point()
            size = service.ballots.padded_size(service.storage.get_election(ELECTION).election)
            length = hpke.N_ENC + size + hpke.N_TAG
            enc = seal_ballot(point, ELECTION, "online", "0" * 32, {"leader": []}, size)[:hpke.N_ENC]

            def client(ballot_id: str, sealed: bytes) -> SealedBallot:
                return SealedBallot(ballot_id, sealed)
            spoilt = []
            for _ in range(2):  # garbage after a valid point: does not open
                spoilt.append(client(secrets.token_hex(16), enc + os.urandom(length - hpke.N_ENC)))
            for _ in range(2):  # sealed for another ballot id: the binding fails
                spoilt.append(client(secrets.token_hex(16), seal_ballot(point, ELECTION, "online", secrets.token_hex(16),
                                                                          {"leader": ["amara-okafor"], "executive": []}, size)))
            for _ in range(2):  # opens, but names no candidate of this election
                ballot_id = secrets.token_hex(16)
                spoilt.append(client(ballot_id, seal_ballot(point, ELECTION, "online", ballot_id,
                                                            {"leader": ["nobody"], "executive": []}, size)))
            ballots += list(zip(codes[valid:valid + extra], spoilt))
        for start in range(0, len(ballots), 500):
            results = service.ballots.submit_many(ELECTION, ballots[start:start + 500])
            failed = [r for r in results if isinstance(r, Exception)]
            assert not failed, failed[:1]
        _wait(service, len(ballots))
        close_poll(service, ELECTION)
    finally:
        service.close()
    return SealedElection(state=state, config_path=config_path, leaders=leaders, invalid=extra)


if __name__ == "__main__":  # run in a process of its own: the demo sets SOFTHSM2_CONF for its tokens
    import json
    import sys
    made = sealed_election(Path(sys.argv[1]), valid=int(sys.argv[2]), spoiled=sys.argv[3] == "spoiled")
    print(json.dumps({"config": str(made.config_path), "leaders": made.leaders, "invalid": made.invalid}))
