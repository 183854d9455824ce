"""Casting through the ballot box with a real SoftHSM token: the voter's and official's story."""

from __future__ import annotations

import time

import pytest

from hsm_signer.ballots import CodeStatus, CodeUsedError, InvalidCodeError
from hsm_signer.election import Election
from hsm_signer.errors import ElectionError
from hsm_signer.lifecycle import close_poll
from hsm_signer.log.leaf import Leaf
from hsm_signer.verify import verify_receipt

from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["erin", "dan"]}


def test_a_voter_casts_and_gets_a_receipt_that_verifies_offline(service, codes):
    receipt = service.ballots.cast(ELECTION, codes[0], VOTE).receipt
    verified = verify_receipt(receipt, service.bundle)
    assert verified.election == ELECTION and verified.leaf_index == receipt.leaf_index
    leaf = Leaf.from_bytes(receipt.leaf)
    assert leaf.type == "ballot" and dict(leaf.selections) == {"leader": ("carol",), "board": ("dan", "erin")}
    assert codes[0].replace("-", "").encode() not in receipt.leaf  # the code never enters the log


def test_resubmitting_the_same_ballot_returns_the_original_receipt(service, codes):
    first = service.ballots.cast(ELECTION, codes[0], VOTE)
    again = service.ballots.cast(ELECTION, codes[0].lower(), {"leader": ["carol"], "board": ["dan", "erin"]})
    assert again.receipt == first.receipt and again.ballot_id == first.ballot_id
    assert (first.new, again.new) == (True, False)  # the API answers 201, then 200
    assert service.storage.tree_size(ELECTION) == 1


def test_a_used_code_with_a_different_ballot_is_a_conflict(service, codes):
    service.ballots.cast(ELECTION, codes[0], VOTE)
    with pytest.raises(CodeUsedError, match="already been used online for a different ballot"):
        service.ballots.cast(ELECTION, codes[0], {"leader": ["alice"], "board": []})
    assert service.storage.tree_size(ELECTION) == 1


def test_unknown_and_other_election_codes_get_the_same_answer_and_malformed_text_its_own(service, codes):
    other = dict(DEMO_ELECTION, id="other-election")
    service.storage.create_election(Election.from_dict(other))
    service.storage.set_state("other-election", "open")
    answers = set()
    for election, code in [(ELECTION, "0000-0000-0000-0000-0"), ("other-election", codes[1])]:
        with pytest.raises(InvalidCodeError) as caught:
            service.ballots.cast(election, code, VOTE)
        answers.add(str(caught.value))
        assert not caught.value.malformed
    assert answers == {"this voting code is not valid for this election; check it and try again"}
    # Text that cannot be a code is told so (computed from the text alone: no oracle on the codes).
    for text, kind in [("nonsense", "length"), ("U" * 17, "symbol"), ("0000-0000-0000-0000-1", "typo")]:
        with pytest.raises(InvalidCodeError) as caught:
            service.ballots.cast(ELECTION, text, VOTE)
        assert caught.value.malformed and caught.value.kind == kind and str(caught.value) not in answers
    assert service.storage.count_codes(ELECTION)["unused"] == 10


def test_postal_ballot_revokes_the_online_code_and_online_makes_postal_a_duplicate(service, codes):
    postal = service.ballots.cast(ELECTION, codes[2], VOTE, channel="postal").receipt
    assert Leaf.from_bytes(postal.leaf).type == "postal"
    with pytest.raises(CodeUsedError, match="already been used by post"):
        service.ballots.cast(ELECTION, codes[2], VOTE)
    service.ballots.cast(ELECTION, codes[3], VOTE)
    with pytest.raises(CodeUsedError, match="used online"):
        service.ballots.cast(ELECTION, codes[3], VOTE, channel="postal")
    assert service.ballots.code_status(ELECTION, codes[2]).status == "postal"
    assert service.ballots.code_status(ELECTION, codes[3]).status == "online"
    assert service.ballots.code_status(ELECTION, codes[4]).status == "unused"


def test_a_code_tells_its_status_only_and_the_database_links_nothing_in_clear(service, codes):
    receipt = service.ballots.cast(ELECTION, codes[5], VOTE).receipt
    ballot_id = Leaf.from_bytes(receipt.leaf).ballot_id
    status = service.ballots.code_status(ELECTION, codes[5])
    assert status == CodeStatus("online")
    rows = service.storage.db.execute("SELECT link FROM codes WHERE status = 'online'").fetchall()
    assert rows and all(row[0] and ballot_id.encode() not in row[0] and bytes.fromhex(ballot_id) not in row[0]
                        for row in rows)


def test_the_same_ballot_again_gets_its_receipt_only_within_the_window(service, codes):
    """Resubmitting is recognised from a keyed digest inside the link; once the window
    ends the link is refused, then destroyed: the same ballot is then a conflict."""
    now = [float(int(time.time()))]  # near real time: the sequencer's own purge must not fire first
    svc = service
    svc.ballots.clock = lambda: now[0]  # the box's clock and window, as Service passes them in
    svc.ballots.resubmit_window = 60.0
    first = svc.ballots.cast(ELECTION, codes[6], VOTE)
    now[0] += 59
    again = svc.ballots.cast(ELECTION, codes[6], {"board": ["erin", "dan"], "leader": ["carol"]})
    assert (again.receipt, again.new) == (first.receipt, False)
    now[0] += 1  # the window has ended: refused on read, before any purge
    with pytest.raises(CodeUsedError):
        svc.ballots.cast(ELECTION, codes[6], VOTE)
    assert svc.ballots.purge_links() == 1
    (link, until), = svc.storage.db.execute("SELECT link, link_until FROM codes WHERE status = 'online'").fetchall()
    assert link is None and until is None
    with pytest.raises(CodeUsedError):
        svc.ballots.cast(ELECTION, codes[6], VOTE)
    assert svc.ballots.code_status(ELECTION, codes[6]) == CodeStatus("online")
    assert svc.storage.tree_size(ELECTION) == 1


def test_a_used_code_gets_one_guess_at_its_ballot_not_one_per_possible_ballot(service, codes):
    service.ballots.cast(ELECTION, codes[4], VOTE)
    with pytest.raises(CodeUsedError, match="for a different ballot"):
        service.ballots.cast(ELECTION, codes[4], {"leader": ["alice"], "board": []})
    with pytest.raises(CodeUsedError):  # the right ballot now: the link is gone, so no receipt
        service.ballots.cast(ELECTION, codes[4], VOTE)
    assert service.storage.db.execute("SELECT COUNT(*) FROM codes WHERE link IS NOT NULL").fetchone()[0] == 0


def test_closing_the_poll_destroys_every_link(service, codes):
    service.ballots.cast(ELECTION, codes[7], VOTE)
    service.ballots.cast(ELECTION, codes[8], VOTE, channel="postal")
    assert service.storage.db.execute("SELECT COUNT(*) FROM codes WHERE link IS NOT NULL").fetchone()[0] == 2
    close_poll(service, ELECTION)
    assert service.storage.db.execute("SELECT COUNT(*) FROM codes WHERE link IS NOT NULL OR link_until IS NOT NULL"
                                      ).fetchone()[0] == 0
    assert service.ballots.code_status(ELECTION, codes[7]) == CodeStatus("online")
    assert service.ballots.code_status(ELECTION, codes[8]) == CodeStatus("postal")


def test_a_poll_that_is_not_open_refuses_ballots(service, codes):
    service.storage.set_state(ELECTION, "closed")
    with pytest.raises(ElectionError, match="it has closed"):
        service.ballots.cast(ELECTION, codes[0], VOTE)
    assert service.storage.count_codes(ELECTION)["unused"] == 10
