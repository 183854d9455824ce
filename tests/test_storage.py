"""The storage contract, run against SQLite and a throwaway PostgreSQL cluster alike."""

from __future__ import annotations

import threading

import pytest

from hsm_signer.election import Election
from hsm_signer.errors import ElectionError
from hsm_signer.log.tree import MissingNodeError
from hsm_signer.storage import UnknownCodeError, open_storage
from hsm_signer.storage.base import BallotIdTakenError, CastRequest
from hsm_signer.storage.sql import StorageError

from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]


@pytest.fixture
def storage(empty_storage):
    empty_storage.create_election(Election.from_dict(DEMO_ELECTION))
    empty_storage.set_state(ELECTION, "open")
    empty_storage.add_codes(ELECTION, [bytes([i]) * 32 for i in range(10)])
    return empty_storage


def cast(storage, code: int, ballot: str, channel="online"):
    return storage.cast(ELECTION, bytes([code]) * 32, channel, ballot.ljust(32, "0"), f"leaf-{ballot}".encode(),
                        b"link-" + ballot.encode(), require_state="open")


def test_a_code_is_consumed_with_its_ballot_in_one_step(storage):
    outcome = cast(storage, 1, "a")
    assert outcome.stored and outcome.entry.leaf == b"leaf-a"
    assert storage.code_status(ELECTION, bytes([1]) * 32) == ("online", b"link-a")
    again = cast(storage, 1, "b")
    assert not again.stored and again.status == "online" and again.link == b"link-a"
    assert [e.ballot_id[:1] for e in storage.pending(ELECTION, 10)] == ["a"]
    assert storage.count_codes(ELECTION) == {"unused": 9, "online": 1, "postal": 0}


def test_unknown_codes_and_closed_polls_store_nothing(storage):
    with pytest.raises(UnknownCodeError):
        storage.cast(ELECTION, b"\xff" * 32, "online", "c" * 32, b"leaf", b"link", require_state="open")
    storage.set_state(ELECTION, "closed")
    with pytest.raises(ElectionError, match="is closed, not open"):
        cast(storage, 2, "d")
    assert storage.pending(ELECTION, 10) == []
    assert storage.count_codes(ELECTION)["unused"] == 10


def test_two_voters_racing_with_one_code_store_one_ballot(storage):
    results = []
    barrier = threading.Barrier(8)

    def voter(n):
        barrier.wait()
        results.append(cast(storage, 3, f"r{n}").stored)

    threads = [threading.Thread(target=voter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert len(storage.pending(ELECTION, 10)) == 1


def request(code: int, ballot: str, channel="online", election=ELECTION):
    return CastRequest(election, bytes([code]) * 32, channel, ballot.ljust(32, "0"), f"leaf-{ballot}".encode(),
                       b"link-" + ballot.encode(), require_state="open")


def test_several_ballots_are_stored_in_one_transaction_each_with_its_own_outcome(storage):
    cast(storage, 4, "used")
    outcomes = storage.cast_many([request(5, "new1"), request(4, "late"), request(0xEE, "bad"),
                                  request(6, "twice-a"), request(6, "twice-b", channel="postal"),
                                  request(7, "new2", election="no-such-election")])
    new1, late, bad, twice_a, twice_b, elsewhere = outcomes
    assert new1.stored and new1.entry.ballot_id.startswith("new1")
    assert not late.stored and late.status == "online" and late.link == b"link-used"
    assert isinstance(bad, UnknownCodeError)
    # The same code twice in one group: the first consumes it, the second finds it used.
    assert twice_a.stored and not twice_b.stored and twice_b.status == "online" and twice_b.link == b"link-twice-a"
    assert isinstance(elsewhere, ElectionError) and "no election 'no-such-election'" in str(elsewhere)
    assert sorted(e.ballot_id[:4] for e in storage.pending(ELECTION, 10)) == ["new1", "twic", "used"]
    assert storage.count_codes(ELECTION) == {"unused": 7, "online": 3, "postal": 0}
    storage.set_state(ELECTION, "closed")
    (closed,) = storage.cast_many([request(8, "after")])
    assert isinstance(closed, ElectionError) and "is closed, not open" in str(closed)


def test_a_failing_group_stores_none_of_its_ballots(storage):
    """One transaction: a database error (here a leaf that violates NOT NULL) rolls back the whole group."""
    cast(storage, 1, "dup")
    broken = CastRequest(ELECTION, bytes([3]) * 32, "online", "x".ljust(32, "0"), None, b"link", "open")
    with pytest.raises(Exception, match=r"(?i)not.null"):  # sqlite3 or psycopg, each its own IntegrityError
        storage.cast_many([request(2, "fine"), broken])
    assert [e.ballot_id[:3] for e in storage.pending(ELECTION, 10)] == ["dup"]
    assert storage.code_status(ELECTION, bytes([2]) * 32) == ("unused", None)


def test_seq_at_and_elections_with_pending(storage):
    seqs = [cast(storage, i, f"s{i}").entry.seq for i in range(3)]
    assert storage.elections_with_pending() == [ELECTION]
    storage.commit_batch(ELECTION, [(s, i) for i, s in enumerate(seqs[:2])], [], 2, "note-2")
    assert [storage.seq_at(ELECTION, i) for i in range(3)] == [seqs[0], seqs[1], None]
    assert storage.elections_with_pending() == [ELECTION]
    storage.commit_batch(ELECTION, [(seqs[2], 2)], [], 3, "note-3")
    assert storage.elections_with_pending() == []


def test_many_code_statuses_and_leaf_indexes_are_read_at_once(storage):
    """What a postal batch of thousands of rows reads in a few queries instead of one per row."""
    first = cast(storage, 1, "p1", channel="postal")
    cast(storage, 2, "o2")
    wanted = [bytes([2]) * 32, bytes([1]) * 32, bytes([3]) * 32, b"not a code", bytes([1]) * 32]
    assert storage.code_statuses(ELECTION, wanted) == ["online", "postal", "unused", None, "postal"]
    assert storage.code_statuses(ELECTION, []) == []
    many = [bytes([i % 10]) * 32 for i in range(1234)]  # more than one query's worth
    assert storage.code_statuses(ELECTION, many) == [{1: "postal", 2: "online"}.get(i % 10, "unused") for i in range(1234)]
    assert storage.code_statuses("no-such-election", [bytes([1]) * 32]) == [None]

    assert storage.leaf_indexes(["p1".ljust(32, "0"), "o2".ljust(32, "0")]) == {}  # stored, not yet sequenced
    storage.commit_batch(ELECTION, [(first.entry.seq, 0)], [], 1, "note-1")
    assert storage.leaf_indexes(["o2".ljust(32, "0"), "p1".ljust(32, "0"), "unknown"] * 300) == {"p1".ljust(32, "0"): 0}


def test_batches_must_extend_the_stored_tree(storage):
    seqs = [cast(storage, i, f"b{i}").entry.seq for i in range(3)]
    nodes = [(0, i, bytes([i]) * 32) for i in range(3)]
    with pytest.raises(StorageError, match="does not extend the stored tree of size 0"):
        storage.commit_batch(ELECTION, [(seqs[0], 1)], [], 2, "note")
    storage.commit_batch(ELECTION, [(s, i) for i, s in enumerate(seqs)], nodes, 3, "note-3")
    assert storage.tree_size(ELECTION) == 3
    assert storage.get_nodes(ELECTION, [(0, 2), (0, 0)]) == [b"\x02" * 32, b"\x00" * 32]
    with pytest.raises(MissingNodeError, match=r"tree node \(level 1, index 5\)"):
        storage.get_nodes(ELECTION, [(1, 5)])
    assert storage.latest_checkpoint(ELECTION) == (3, "note-3")
    assert storage.checkpoint_at(ELECTION, 3) == "note-3" and storage.checkpoint_at(ELECTION, 2) is None
    assert storage.checkpoint_covering(ELECTION, 2) == (3, "note-3")
    assert storage.checkpoint_covering(ELECTION, 3) is None
    assert storage.entries(ELECTION, 1, 3) == [b"leaf-b1", b"leaf-b2"]
    with pytest.raises(StorageError, match="already sequenced"):
        storage.commit_batch(ELECTION, [(seqs[0], 3)], [], 4, "again")
    assert storage.tree_size(ELECTION) == 3  # the refused batch changed nothing


def test_elections_and_tallies(storage):
    with pytest.raises(ElectionError, match="already exists"):
        storage.create_election(Election.from_dict(DEMO_ELECTION))
    with pytest.raises(ElectionError, match="no election 'nope'"):
        storage.get_election("nope")
    assert [r.election.id for r in storage.list_elections()] == [ELECTION]
    assert storage.get_tally(ELECTION) is None
    storage.store_tally(ELECTION, "tally note")
    assert storage.get_tally(ELECTION) == "tally note"


def test_a_service_runs_on_postgresql(tokens, tmp_path, postgres):
    from hsm_signer.service import Service
    from hsm_signer.verify import verify_receipt
    from servicekit import open_election, provision

    kit = provision(tokens, tmp_path)
    url = postgres.create_database("service")
    kit.config_path.write_text(kit.config_path.read_text().replace('url = "sqlite:///ballots.sqlite3"', f'url = "{url}"'))
    service = Service.open(kit.load(), with_sequencer=True).start()
    try:
        codes = open_election(service, 5)
        receipts = [service.ballots.cast(ELECTION, code, {"leader": ["bob"], "board": []}).receipt for code in codes]
        for receipt in receipts:
            verify_receipt(receipt, service.bundle)
        assert service.storage.tree_size(ELECTION) == 5
    finally:
        service.close()


def test_node_reads_are_primary_key_lookups_not_scans(tmp_path):
    """Regression: get_nodes scanned every node of the election (O(n) per proof) on SQLite."""
    import sqlite3

    store = open_storage(f"sqlite:///{tmp_path}/plan.sqlite3")
    captured = []
    store.db.set_trace_callback(captured.append)
    store.db.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?)", [("e", 0, i, b"h" * 32) for i in range(64)])
    keys = [(0, i) for i in range(0, 60, 2)]  # as many as a proof asks: the old form was planned as a scan
    assert store.get_nodes("e", keys) == [b"h" * 32] * len(keys)
    (query,) = [q for q in captured if q.startswith("SELECT level, idx, hash FROM nodes")]
    plan = " ".join(str(row) for row in sqlite3.connect(tmp_path / "plan.sqlite3").execute("EXPLAIN QUERY PLAN " + query))
    assert "MULTI-INDEX OR" in plan and "election=? AND level=? AND idx=?" in plan
    store.close()


def test_the_sequencer_finds_pending_elections_without_scanning_the_log(tmp_path):
    """Regression: a DISTINCT over entries scanned the whole log between every two batches."""
    import sqlite3

    store = open_storage(f"sqlite:///{tmp_path}/plan.sqlite3")
    captured = []
    store.db.set_trace_callback(captured.append)
    assert store.elections_with_pending() == []
    (query,) = [q for q in captured if "leaf_index IS NULL" in q]
    plan = " ".join(str(row) for row in sqlite3.connect(tmp_path / "plan.sqlite3").execute("EXPLAIN QUERY PLAN " + query))
    assert "SEARCH entries USING COVERING INDEX" in plan and "SCAN entries" not in plan
    store.close()


def test_links_live_until_their_window_ends_then_are_destroyed(storage):
    for code, until in ((1, 100), (2, 200), (3, None)):
        storage.cast(ELECTION, bytes([code]) * 32, "online", str(code) * 32, b"leaf", b"link-%d" % code,
                     require_state="open", link_until=until)
    again = storage.cast(ELECTION, bytes([1]) * 32, "online", "9" * 32, b"leaf", b"x", require_state="open")
    assert (again.stored, again.link, again.link_until) == (False, b"link-1", 100)
    assert storage.purge_links(150) == 2  # code 1's window ended; code 3's link never had one
    assert [storage.code_status(ELECTION, bytes([c]) * 32) for c in (1, 2, 3)] == [
        ("online", None), ("online", b"link-2"), ("online", None)]
    assert storage.forget_links(ELECTION) == 1
    assert storage.code_status(ELECTION, bytes([2]) * 32) == ("online", None)


def test_a_client_chosen_ballot_id_already_stored_is_refused_and_consumes_nothing(storage):
    cast(storage, 1, "a")
    outcomes = storage.cast_many([CastRequest(ELECTION, bytes([2]) * 32, "online", "a".ljust(32, "0"), b"leaf",
                                              b"link", "open", 10),
                                  CastRequest(ELECTION, bytes([3]) * 32, "online", "b".ljust(32, "0"), b"leaf",
                                              b"link", "open", 10)])
    assert isinstance(outcomes[0], BallotIdTakenError) and outcomes[1].stored
    assert storage.code_status(ELECTION, bytes([2]) * 32) == ("unused", None)


def test_a_version_1_database_gains_link_expiry_and_loses_its_unexpiring_links(tmp_path):
    path = tmp_path / "old.sqlite3"
    store = open_storage(f"sqlite:///{path}")
    store.create_election(Election.from_dict(DEMO_ELECTION))
    store.set_state(ELECTION, "open")
    store.add_codes(ELECTION, [bytes([1]) * 32])
    cast(store, 1, "a")
    store.db.execute("DROP INDEX codes_links")
    store.db.execute("ALTER TABLE codes DROP COLUMN link_until")
    store.db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    store.close()
    store = open_storage(f"sqlite:///{path}")
    try:
        assert store.code_status(ELECTION, bytes([1]) * 32) == ("online", None)
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
        assert len(store.pending(ELECTION, 10)) == 1
    finally:
        store.close()
