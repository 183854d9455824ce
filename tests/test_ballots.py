"""Casting through the ballot box with a real SoftHSM token: the voter's and official's story."""

from __future__ import annotations

import pytest

from hsm_signer.ballots import CodeUsedError, InvalidCodeError
from hsm_signer.election import Election
from hsm_signer.errors import ElectionError
from hsm_signer.log.leaf import Leaf
from hsm_signer.verify import verify_receipt

from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["erin", "dan"]}


def test_a_voter_casts_and_gets_a_receipt_that_verifies_offline(service, codes):
    receipt = service.ballots.cast(ELECTION, codes[0], VOTE)
    verified = verify_receipt(receipt, service.bundle)
    assert verified.election == ELECTION and verified.leaf_index == receipt.leaf_index
    leaf = Leaf.from_bytes(receipt.leaf)
    assert leaf.type == "ballot" and dict(leaf.selections) == {"leader": ("carol",), "board": ("dan", "erin")}
    assert codes[0].replace("-", "").encode() not in receipt.leaf  # the code never enters the log


def test_resubmitting_the_same_ballot_returns_the_original_receipt(service, codes):
    first = service.ballots.cast(ELECTION, codes[0], VOTE)
    again = service.ballots.cast(ELECTION, codes[0].lower(), {"leader": ["carol"], "board": ["dan", "erin"]})
    assert again == first
    assert service.storage.tree_size(ELECTION) == 1


def test_a_used_code_with_a_different_ballot_is_a_conflict(service, codes):
    service.ballots.cast(ELECTION, codes[0], VOTE)
    with pytest.raises(CodeUsedError, match="already been used online for a different ballot"):
        service.ballots.cast(ELECTION, codes[0], {"leader": ["alice"], "board": []})
    assert service.storage.tree_size(ELECTION) == 1


def test_unknown_malformed_and_other_election_codes_get_the_same_answer(service, codes):
    other = dict(DEMO_ELECTION, id="other-election")
    service.storage.create_election(Election.from_dict(other))
    service.storage.set_state("other-election", "open")
    answers = set()
    for election, code in [(ELECTION, "0000-0000-0000-0000-0"), (ELECTION, "nonsense"),
                           ("other-election", codes[1])]:
        with pytest.raises(InvalidCodeError) as caught:
            service.ballots.cast(election, code, VOTE)
        answers.add(str(caught.value))
    assert len(answers) == 1
    assert service.storage.count_codes(ELECTION)["unused"] == 10


def test_postal_ballot_revokes_the_online_code_and_online_makes_postal_a_duplicate(service, codes):
    postal = service.ballots.cast(ELECTION, codes[2], VOTE, channel="postal")
    assert Leaf.from_bytes(postal.leaf).type == "postal"
    with pytest.raises(CodeUsedError, match="already been used by post"):
        service.ballots.cast(ELECTION, codes[2], VOTE)
    service.ballots.cast(ELECTION, codes[3], VOTE)
    with pytest.raises(CodeUsedError, match="used online"):
        service.ballots.cast(ELECTION, codes[3], VOTE, channel="postal")
    assert service.ballots.code_status(ELECTION, codes[2]).status == "postal"
    assert service.ballots.code_status(ELECTION, codes[3]).status == "online"
    assert service.ballots.code_status(ELECTION, codes[4]).status == "unused"


def test_the_code_holder_finds_their_ballot_but_the_database_links_nothing(service, codes):
    receipt = service.ballots.cast(ELECTION, codes[5], VOTE)
    status = service.ballots.code_status(ELECTION, codes[5])
    assert status.ballot_id == Leaf.from_bytes(receipt.leaf).ballot_id
    rows = service.storage.db.execute("SELECT link FROM codes WHERE status = 'online'").fetchall()
    assert rows and all(status.ballot_id.encode() not in row[0] for row in rows)


def test_a_poll_that_is_not_open_refuses_ballots(service, codes):
    service.storage.set_state(ELECTION, "closed")
    with pytest.raises(ElectionError, match="it has closed"):
        service.ballots.cast(ELECTION, codes[0], VOTE)
    assert service.storage.count_codes(ELECTION)["unused"] == 10
