"""Request bodies as voters send them, built before any timed part.

A voter's browser seals the ballot itself (HPKE to the election's sealing key, the
product's own :mod:`hsm_signer.log.sealed`) and posts ``{"code", "sealed": {"ballot_id",
"ciphertext"}}``; a voter without JavaScript, and every postal ballot, reaches the server
in clear and the server seals it. The benchmarks seal the browsers' ballots here,
beforehand, so that the load generator spends none of the CPU the server under test needs.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from .common import ELECTION_DEFINITION, VOTES


def _json(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"))


def sealed_bodies(point: bytes, codes: list[str], *, definition: dict = ELECTION_DEFINITION) -> list[str]:
    """One browser-sealed request body per code, the votes rotating through :data:`VOTES`."""
    from hsm_signer.election import Election
    from hsm_signer.log import sealed
    from hsm_signer.log.leaf import new_ballot_id

    election = Election.from_dict(definition)
    size = sealed.padded_size(election)
    bodies = []
    for i, code in enumerate(codes):
        ballot_id = new_ballot_id()
        box = sealed.seal_ballot(point, election.id, sealed.ONLINE, ballot_id,
                                 election.validate_selections(VOTES[i % len(VOTES)]), size)
        bodies.append(_json({"code": code, "sealed": {"ballot_id": ballot_id,
                                                      "ciphertext": base64.b64encode(box).decode("ascii")}}))
    return bodies


def clear_bodies(codes: list[str]) -> list[str]:
    """One ``{"code", "selections"}`` body per code: the server seals these (as for no-JavaScript voters)."""
    return [_json({"code": code, "selections": VOTES[i % len(VOTES)]}) for i, code in enumerate(codes)]


def lookalike_bodies(codes: list[str], *, definition: dict = ELECTION_DEFINITION) -> list[str]:
    """Bodies of a sealed ballot's shape and length with random bytes inside: for a
    hello-world, which parses the JSON and checks nothing."""
    from hsm_signer.election import Election
    from hsm_signer.log import sealed

    length = sealed.sealed_length(sealed.padded_size(Election.from_dict(definition)))
    return [_json({"code": code, "sealed": {"ballot_id": os.urandom(16).hex(),
                                            "ciphertext": base64.b64encode(os.urandom(length)).decode("ascii")}})
            for code in codes]


def write_bodies(path: Path, bodies: list[str]) -> Path:
    """One JSON body a line, as ``bench/wrk/cast.lua`` reads them."""
    path.write_text("\n".join(bodies) + "\n", encoding="utf-8")
    return path
