"""Receipt v2: it pins the sealed leaf and names the ballot by its tracker, never by its vote.

A receipt v1 (earlier elections) still verifies; a v2 receipt whose tracker, version or leaf
do not agree is refused with a precise, stable error.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_signer.errors import FormatError
from hsm_signer.log.leaf import SealedLeaf, new_ballot_id
from hsm_signer.log.merkle import leaf_hash
from hsm_signer.log.receipt import RECEIPT_V2_VERSION, Receipt
from hsm_signer.log.sealed import seal_ballot
from hsm_signer.log.tracker import normalise_tracker, tracker_of
from hsm_signer.verify import summary_line, verify_receipt
from test_verify import ELECTION, Election

SIZE = 64


class SealedElection(Election):
    def __init__(self):
        super().__init__()
        key = ec.generate_private_key(ec.SECP256R1())
        self.point = key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)

    def cast_sealed(self, n: int) -> list[int]:
        new = []
        for i in range(n):
            ballot_id = new_ballot_id()
            sealed = seal_ballot(self.point, ELECTION, "online", ballot_id, {"leader": ["truss" if i % 2 else "sunak"]}, SIZE)
            new.append(SealedLeaf(ELECTION, "ballot", ballot_id, sealed).to_bytes())
        first = len(self.leaves)
        self.leaves += new
        self.tree.append([leaf_hash(x) for x in new])
        return list(range(first, len(self.leaves)))


@pytest.fixture(scope="module")
def election():
    e = SealedElection()
    e.cast(2)          # two clear v1 entries first: a v1 receipt for them still verifies
    e.cast_sealed(4)
    return e


def test_a_v2_receipt_pins_the_sealed_leaf_and_shows_its_tracker_never_the_vote(election):
    receipt = election.receipt(4, election.checkpoint())
    doc = json.loads(receipt.to_json())
    assert list(doc) == ["version", "election", "leaf_index", "leaf", "tracker", "inclusion_proof", "checkpoint"]
    assert doc["version"] == RECEIPT_V2_VERSION
    assert doc["tracker"] == tracker_of(election.leaves[4]) == receipt.tracker
    assert "truss" not in receipt.to_json() and "sunak" not in receipt.to_json() and "selections" not in receipt.to_json()
    assert Receipt.from_json(receipt.to_json()) == receipt
    result = verify_receipt(Receipt.from_json(receipt.to_json()), election.bundle)
    assert result.tracker == receipt.tracker
    assert summary_line(result).startswith(f"OK: election {ELECTION}: sealed ballot {receipt.tracker} is leaf 4 of log ")


def test_the_tracker_is_a_grouped_prefix_of_the_leaf_hash(election):
    leaf = election.leaves[3]
    tracker = tracker_of(leaf)
    assert tracker.replace("-", "") == leaf_hash(leaf)[:8].hex() and len(tracker.split("-")) == 4
    assert normalise_tracker(tracker.upper().replace("-", " ")) == tracker
    assert len({tracker_of(x) for x in election.leaves}) == len(election.leaves)
    with pytest.raises(FormatError, match="16 hex digits") as caught:
        normalise_tracker("3f9a-12bc-77de")
    assert caught.value.code == "tracker.syntax"


def test_a_receipt_v1_of_an_earlier_election_still_verifies(election):
    receipt = election.receipt(1, election.checkpoint())
    doc = json.loads(receipt.to_json())
    assert doc["version"] == "hsm-signer/receipt/v1" and "tracker" not in doc
    assert verify_receipt(Receipt.from_json(receipt.to_json()), election.bundle).tracker is None


@pytest.mark.parametrize("name, change, code, message", [
    ("changed tracker", lambda d: d.update(tracker="0000-0000-0000-0000"), "receipt.tracker",
     r"receipt.tracker '0000-0000-0000-0000' is not the tracker of its leaf"),
    ("missing tracker", lambda d: d.pop("tracker"), "json.fields", r"tracker"),
    ("relabelled v1", lambda d: (d.pop("tracker"), d.update(version="hsm-signer/receipt/v1")), "receipt.leaf-version",
     r"receipt v1 cannot carry a sealed leaf"),
    ("unknown version", lambda d: d.update(version="hsm-signer/receipt/v3"), "receipt.syntax",
     r"receipt.version must be 'hsm-signer/receipt/v2'"),
])
def test_a_v2_receipt_that_does_not_agree_with_itself_is_refused(election, name, change, code, message):
    doc = json.loads(election.receipt(5, election.checkpoint()).to_json())
    change(doc)
    with pytest.raises(FormatError, match=message) as caught:
        Receipt.from_json(json.dumps(doc))
    assert caught.value.code == code


def test_a_v2_label_on_a_clear_leaf_is_refused(election):
    doc = json.loads(election.receipt(0, election.checkpoint()).to_json())
    doc.update(version=RECEIPT_V2_VERSION, tracker=tracker_of(election.leaves[0]))
    with pytest.raises(FormatError, match=r"receipt v2 must carry a sealed leaf") as caught:
        Receipt.from_json(json.dumps(doc))
    assert caught.value.code == "receipt.leaf-version"
