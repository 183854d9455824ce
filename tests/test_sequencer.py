"""The sequencer/signer: batching, and refusing any stored tree it did not sign."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from hsm_signer import codes as codes_mod
from hsm_signer.ballots import BallotBox
from hsm_signer.election import Election
from hsm_signer.log.checkpoint import open_checkpoint
from hsm_signer.log.merkle import leaf_hash
from hsm_signer.log.note import NoteVerifier
from hsm_signer.notify import BatchWaiter
from hsm_signer.sequencer import Notifier, Sequencer, SequencerBusyError, SignerState, TamperError
from hsm_signer.signer import SoftwareMac, SoftwareSigner
from hsm_signer.storage.sqlite import SQLiteStorage

from merkle_reference import root_from_leaf_hashes
from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["alice"], "board": ["dan"]}


class Rig:
    """Storage + software keys + a sequencer, with codes ready to vote."""

    def __init__(self, directory, count=50, batch_size=1000):
        self.directory = directory
        self.storage = SQLiteStorage(directory / "db.sqlite3")
        self.storage.create_election(Election.from_dict(DEMO_ELECTION))
        self.storage.set_state(ELECTION, "open")
        self.mac = SoftwareMac(b"k" * 32)
        issued = list(codes_mod.issue(self.mac, ELECTION, count))
        self.storage.add_codes(ELECTION, [h for _, h in issued])
        self.codes = [c for c, _ in issued]
        self.signer = SoftwareSigner.generate()
        self.notifier = Notifier()
        self.box = BallotBox(self.storage, self.mac, self.notifier, waiter=BatchWaiter(self.notifier))
        self.sequencer = self.new_sequencer(batch_size)

    def new_sequencer(self, batch_size=1000):
        return Sequencer(self.storage, self.signer, "test/checkpoint", SignerState(self.directory / "state.json"),
                         batch_size=batch_size, notifier=self.notifier)

    def submit(self, n, start=0):
        return [self.box.submit(ELECTION, code, VOTE).ballot_id for code in self.codes[start:start + n]]

    def raw(self):
        return sqlite3.connect(self.storage.path, isolation_level=None)


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.storage.close()


def test_a_burst_of_2000_entries_is_covered_by_far_fewer_signatures(tmp_path):
    rig = Rig(tmp_path, count=2000)
    rig.sequencer.start()
    try:
        ballot_ids: list[str] = []

        def voter(chunk):  # the burst: every ballot arrives before any receipt is fetched
            ballot_ids.extend(rig.box.submit(ELECTION, code, VOTE).ballot_id for code in chunk)
        threads = [threading.Thread(target=voter, args=(rig.codes[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        receipts = [rig.box.wait_for_receipt(b) for b in ballot_ids]
    finally:
        rig.sequencer.stop()
    ratio = rig.sequencer.signatures / 2000
    print(f"\n2000 entries, {rig.sequencer.signatures} HSM signatures: {ratio:.3f} signatures per entry")
    assert rig.storage.tree_size(ELECTION) == 2000
    assert sorted(r.leaf_index for r in receipts) == list(range(2000))
    assert rig.storage.pending(ELECTION, 1) == []
    assert rig.sequencer.signatures < 2000 / 4
    size, note = rig.storage.latest_checkpoint(ELECTION)
    checkpoint = open_checkpoint(note, [NoteVerifier.from_public_key("test/checkpoint", rig.signer.public_key_der)])
    leaves = rig.storage.entries(ELECTION, 0, 2000)
    assert checkpoint.size == 2000
    assert checkpoint.root_hash == root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


def test_batches_are_contiguous_and_every_checkpoint_extends_the_last(rig):
    rig.submit(5)
    assert rig.sequencer.sequence_once(ELECTION) == 5
    rig.submit(7, start=5)
    assert rig.sequencer.sequence_once(ELECTION) == 7
    assert [size for size, _ in rig.storage.checkpoints(ELECTION)] == [5, 12]
    assert rig.sequencer.sequence_once(ELECTION) == 0  # nothing pending: nothing signed
    assert rig.sequencer.signatures == 2


def test_batch_size_bounds_one_signature(tmp_path):
    rig = Rig(tmp_path, batch_size=4)
    rig.submit(10)
    assert [rig.sequencer.sequence_once(ELECTION) for _ in range(4)] == [4, 4, 2, 0]


def test_refuses_a_tree_altered_behind_its_back(rig):
    rig.submit(6)
    rig.sequencer.sequence_once(ELECTION)
    # The perfect subtree over leaves 0-3 is part of the frontier the next batch builds on.
    rig.raw().execute("UPDATE nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 0")
    rig.submit(1, start=6)
    with pytest.raises(TamperError, match=r"refusing to sign election 'test-election': the stored tree of size 6 "
                                          r"has root .* but this signer signed .*the database was altered"):
        rig.sequencer.sequence_once(ELECTION)
    assert rig.storage.tree_size(ELECTION) == 6


def test_what_it_signs_after_an_interior_node_was_altered_still_extends_its_last_checkpoint(rig):
    # A node inside a completed subtree is not read when extending the tree, so it cannot
    # change what is signed; it only spoils the proofs served from it (voters and the
    # audit catch that).
    rig.submit(6)
    rig.sequencer.sequence_once(ELECTION)
    first = rig.storage.latest_checkpoint(ELECTION)
    rig.raw().execute("UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 2")
    rig.submit(1, start=6)
    rig.sequencer.sequence_once(ELECTION)
    verifier = NoteVerifier.from_public_key("test/checkpoint", rig.signer.public_key_der)
    leaves = rig.storage.entries(ELECTION, 0, 7)
    assert open_checkpoint(rig.storage.latest_checkpoint(ELECTION)[1], [verifier]).root_hash == \
        root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])
    assert open_checkpoint(first[1], [verifier]).size == 6


def test_refuses_a_truncated_or_rolled_back_database(rig):
    rig.submit(6)
    rig.sequencer.sequence_once(ELECTION)
    db = rig.raw()
    db.execute("UPDATE entries SET leaf_index = NULL WHERE leaf_index >= 4")
    db.execute("DELETE FROM nodes WHERE idx >= 2 AND level = 1 OR idx >= 4 AND level = 0")
    with pytest.raises(TamperError, match=r"the database tree has 4 entries but this signer already signed a tree "
                                          r"of 6: the database was rolled back or truncated"):
        rig.sequencer.sequence_once(ELECTION)


def test_refuses_a_database_tree_it_has_no_record_of_signing(rig, tmp_path):
    rig.submit(3)
    rig.sequencer.sequence_once(ELECTION)
    stranger = Sequencer(rig.storage, rig.signer, "test/checkpoint", SignerState(tmp_path / "other-state.json"))
    rig.submit(1, start=3)
    with pytest.raises(TamperError, match=r"holds a tree of 3 entries but this signer's state file .* has no record"):
        stranger.sequence_once(ELECTION)


def test_a_batch_committed_before_a_crash_but_not_recorded_is_adopted_once_verified(rig):
    rig.submit(3)
    rig.sequencer.sequence_once(ELECTION)
    before = (rig.directory / "state.json").read_text()
    rig.submit(2, start=3)
    rig.sequencer.sequence_once(ELECTION)
    (rig.directory / "state.json").write_text(before)  # the crash lost the state update
    rig.submit(1, start=5)
    again = rig.new_sequencer()
    assert again.sequence_once(ELECTION) == 1
    assert again.state.get(ELECTION).size == 6


class CrashBeforeRecording(SignerState):
    """A signer state whose process dies before it records a signed batch (a kill -9 there)."""

    def set(self, election_id, signed):
        if signed.size > 0:
            raise KeyboardInterrupt("killed between the commit and the record")
        super().set(election_id, signed)


def test_a_first_batch_committed_before_a_crash_but_not_recorded_is_adopted_once_verified(rig):
    """kill -9 of the sequencer right after its very first commit once left a log nobody would sign."""
    crashing = Sequencer(rig.storage, rig.signer, "test/checkpoint", CrashBeforeRecording(rig.directory / "state.json"))
    rig.submit(3)
    with pytest.raises(KeyboardInterrupt):
        crashing.sequence_once(ELECTION)
    assert rig.storage.tree_size(ELECTION) == 3  # committed, not recorded
    rig.submit(1, start=3)
    again = rig.new_sequencer()
    assert again.sequence_once(ELECTION) == 1
    assert again.state.get(ELECTION).size == 4


def test_an_unrecorded_batch_signed_by_another_key_is_refused(rig):
    rig.submit(3)
    rig.sequencer.sequence_once(ELECTION)
    before = (rig.directory / "state.json").read_text()
    rig.submit(2, start=3)
    impostor = Sequencer(rig.storage, SoftwareSigner.generate(), "test/checkpoint", SignerState(rig.directory / "x.json"))
    impostor.state.set(ELECTION, rig.sequencer.state.get(ELECTION))
    impostor.sequence_once(ELECTION)
    (rig.directory / "state.json").write_text(before)
    rig.submit(1, start=5)
    with pytest.raises(Exception, match="signature"):
        rig.new_sequencer().sequence_once(ELECTION)


def test_only_one_sequencer_may_run_per_state_file(rig):
    rig.sequencer.start()
    try:
        with pytest.raises(SequencerBusyError, match="another sequencer is running"):
            rig.new_sequencer().start()
    finally:
        rig.sequencer.stop()
    second = rig.new_sequencer().start()  # the lock was released
    second.stop()


def test_finalise_signs_an_empty_closed_election(rig):
    rig.storage.set_state(ELECTION, "closed")
    size, note = rig.sequencer.finalise(ELECTION)
    assert size == 0
    assert rig.storage.latest_checkpoint(ELECTION) == (0, note)
    assert rig.sequencer.finalise(ELECTION) == (0, note)  # idempotent


def test_other_processes_see_the_sequencer_through_its_heartbeat(rig):
    import json
    import time

    from hsm_signer.sequencer import read_heartbeat

    assert read_heartbeat(rig.storage) is None
    rig.sequencer.start()
    try:
        deadline = time.monotonic() + 5
        while read_heartbeat(rig.storage) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        beat = read_heartbeat(rig.storage)
        assert beat["healthy"] is True and beat["fresh"] and beat["error"] is None
    finally:
        rig.sequencer.stop()
    rig.storage.set_signer_status(json.dumps({"healthy": True, "error": None, "at": time.time() - 60}))
    assert read_heartbeat(rig.storage)["fresh"] is False
