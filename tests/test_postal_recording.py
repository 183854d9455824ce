"""Recording a checked postal batch in the core: each code hashed in the HSM once, each part
sealed while the part before it is being stored, and an HSM failure between two parts
stores the earlier part whole and the later one not at all."""

from __future__ import annotations

import pytest

from hsm_signer import postal
from hsm_signer.errors import HsmUnavailableError
from hsm_signer.log import hpke, sealed
from hsm_signer.log.leaf import SealedLeaf, parse_leaf

from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]
VOTES = [{"leader": ["alice"], "board": ["dan", "erin"]}, {"leader": ["bob"], "board": []},
         {"leader": [], "board": ["frank"]}]


class CountingMac:
    """The service's own HSM code key, counting what it hashes; from trip ``fail_on`` on,
    the HSM is down (as when its network link drops)."""

    def __init__(self, inner, fail_on: int | None = None):
        self.inner, self.fail_on = inner, fail_on
        self.hashed = self.trips = 0

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    def mac(self, data: bytes) -> bytes:
        return self.mac_many([data])[0]

    def mac_many(self, items: list[bytes]) -> list[bytes]:
        self.trips += 1
        if self.fail_on is not None and self.trips >= self.fail_on:
            raise HsmUnavailableError("HSM unavailable: the test's HSM link is down")
        self.hashed += len(items)
        return self.inner.mac_many(items)


def open_leaf(private, leaf_bytes: bytes, size: int) -> dict:
    leaf = parse_leaf(leaf_bytes)
    assert isinstance(leaf, SealedLeaf) and leaf.channel == "postal"
    info = sealed.sealing_info(leaf.election, leaf.channel, leaf.ballot_id)
    return sealed.decode_plaintext(hpke.open_with_private_key(private, info, leaf.sealed), size)


def _rows(codes: list[str]):
    return [(line, code, {c: " ".join(VOTES[i % 3][c]) for c in ("leader", "board")})
            for i, (line, code) in enumerate(enumerate(codes, 2))]


def test_each_code_is_hashed_once_and_every_part_is_sealed_and_recorded_once(service, codes, sealing_key):
    election = service.storage.get_election(ELECTION).election
    mac = service.ballots.code_mac = CountingMac(service.ballots.code_mac)
    batch = postal.check_batch(service.ballots, election, _rows(codes[:7] + [codes[0]]))
    assert [(o.line, o.outcome) for o in batch.outcomes] == [(9, postal.DUPLICATE_IN_BATCH)]
    assert mac.hashed == 7

    progress = []
    outcomes = postal.record(service.ballots, ELECTION, batch.to_record, chunk=3,
                             progress=lambda done, total: progress.append((done, total)))
    assert mac.hashed == 7, "recording hashed the codes again"
    assert progress == [(3, 7), (6, 7), (7, 7)]
    assert [(o.line, o.outcome) for o in outcomes] == [(line, postal.RECORDED) for line in range(2, 9)]
    size = service.ballots.padded_size(election)
    for i, outcome in enumerate(outcomes):
        receipt = service.ballots.wait_for_receipt(outcome.ballot_id, timeout=10)
        assert open_leaf(sealing_key, receipt.leaf, size) == {c: sorted(VOTES[i % 3][c]) for c in ("leader", "board")}

    again = postal.record(service.ballots, ELECTION, postal.check_batch(service.ballots, election,
                                                                        _rows(codes[:7])).to_record, chunk=3)
    assert [o.outcome for o in again] == [postal.ALREADY_RECORDED] * 7
    assert [o.ballot_id for o in again] == [o.ballot_id for o in outcomes]
    assert service.storage.count_codes(ELECTION) == {"unused": 3, "online": 0, "postal": 7}


def test_an_hsm_failure_between_two_parts_stores_the_first_whole_and_nothing_of_the_second(service, codes,
                                                                                             sealing_key):
    election = service.storage.get_election(ELECTION).election
    rows = postal.check_batch(service.ballots, election, _rows(codes[:6])).to_record
    # Hashed rows carry their hash; codes of another election would be hashed again, and the
    # HSM is down from the next trip on, while the second part is being prepared.
    second = [postal.Row(r.line, r.code.code, r.selections) for r in rows[3:]]  # type: ignore[arg-type]
    service.ballots.code_mac = CountingMac(service.ballots.code_mac, fail_on=1)
    with pytest.raises(HsmUnavailableError):
        postal.record(service.ballots, ELECTION, [*rows[:3], *second], chunk=3)
    assert service.storage.count_codes(ELECTION) == {"unused": 7, "online": 0, "postal": 3}
    assert service.storage.tree_size(ELECTION) + len(service.storage.pending(ELECTION, 100)) == 3


def test_many_codes_are_hashed_in_bounded_trips_through_the_hsm_lock(service):
    """A batch of thousands of codes must not hold the process's one PKCS#11 lock (which the
    sequencer signs through) for its whole length, nor take it once per code."""
    from hsm_signer import codes as codes_mod
    from hsm_signer.ballots import HASH_TRIP, HashedCode

    typed = [codes_mod.new_code() for _ in range(2 * HASH_TRIP + 1)]
    mac = service.ballots.code_mac = CountingMac(service.ballots.code_mac)
    hashed = service.ballots.hash_codes(ELECTION, [*typed, "not a code"])
    assert (mac.trips, mac.hashed) == (3, len(typed))
    assert all(isinstance(h, HashedCode) for h in hashed[:-1]) and not isinstance(hashed[-1], HashedCode)
    assert [h.digest for h in hashed[:3]] == [mac.inner.mac(codes_mod.code_message(ELECTION, c)) for c in typed[:3]]
    assert typed[0] not in repr(hashed[0]) and hashed[0].digest.hex() not in repr(hashed[0])
