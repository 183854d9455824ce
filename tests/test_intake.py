"""Group commit: many request threads, one writer, several ballots per transaction."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from hsm_signer.election import Election
from hsm_signer.errors import ElectionError
from hsm_signer.intake import CastIntake, IntakeClosedError
from hsm_signer.storage import UnknownCodeError
from hsm_signer.storage.base import CastRequest
from hsm_signer.storage.sqlite import SQLiteStorage

from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]


def _prepare(store):
    store.create_election(Election.from_dict(DEMO_ELECTION))
    store.set_state(ELECTION, "open")
    store.add_codes(ELECTION, [i.to_bytes(32, "big") for i in range(200)])
    return store


@pytest.fixture
def storage(empty_storage):
    return _prepare(empty_storage)


def request(code: int, ballot: str) -> CastRequest:
    return CastRequest(ELECTION, code.to_bytes(32, "big"), "online", ballot.ljust(32, "0"), ballot.encode(),
                       b"link", require_state="open")


def _cast_concurrently(intake, requests):
    results: dict[int, object] = {}
    barrier = threading.Barrier(len(requests))

    def voter(i, req):
        barrier.wait()
        try:
            results[i] = intake.cast(req)
        except Exception as exc:  # noqa: BLE001 - the test looks at which
            results[i] = exc

    threads = [threading.Thread(target=voter, args=item) for item in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return [results[i] for i in range(len(requests))]


def test_concurrent_ballots_share_transactions_and_each_gets_its_own_answer(storage):
    intake = CastIntake(storage)
    requests = [request(i, f"b{i:03d}") for i in range(64)] + [request(10_000, "unknown"), request(3, "again")]
    results = _cast_concurrently(intake, requests)
    assert all(r.stored for r in results[:3] + results[4:64])
    assert isinstance(results[64], UnknownCodeError)
    # Code 3 twice: exactly one of the two requests stored its ballot.
    assert sorted([results[3].stored, results[65].stored]) == [False, True]
    assert storage.count_codes(ELECTION)["online"] == 64
    assert len(storage.pending(ELECTION, 1000)) == 64
    assert intake.stored == 66
    assert intake.transactions < 66, "no two ballots ever shared a transaction"
    intake.close()


def test_a_database_error_in_a_group_fails_only_its_own_ballot(tmp_path):
    class OneBadBallot(SQLiteStorage):
        """Real SQLite; the ballot id 'poison' breaks the transaction it is in, as a disk error would."""

        def _cast_one(self, db, req, states):
            if req.ballot_id.startswith("poison"):
                raise sqlite3.OperationalError("disk I/O error")
            return super()._cast_one(db, req, states)

    store = _prepare(OneBadBallot(tmp_path / "db.sqlite3"))
    intake = CastIntake(store)
    requests = [request(i, f"g{i:03d}") for i in range(20)] + [request(99, "poison")]
    results = _cast_concurrently(intake, requests)
    assert all(r.stored for r in results[:20])
    assert isinstance(results[20], sqlite3.OperationalError)
    assert store.count_codes(ELECTION)["online"] == 20 and store.code_status(ELECTION, (99).to_bytes(32, "big"))[0] == "unused"
    intake.close()
    store.close()


def test_a_closed_poll_fails_every_ballot_of_the_group(storage):
    intake = CastIntake(storage)
    storage.set_state(ELECTION, "closed")
    outcomes = intake.cast_many([request(1, "x"), request(2, "y")])
    assert all(isinstance(o, ElectionError) and "is closed" in str(o) for o in outcomes)
    with pytest.raises(ElectionError, match="is closed"):
        intake.cast(request(3, "z"))
    intake.close()


def test_after_close_nothing_is_taken(storage):
    intake = CastIntake(storage)
    assert intake.cast(request(1, "before")).stored
    intake.close()
    with pytest.raises(IntakeClosedError, match="not stored"):
        intake.cast(request(2, "after"))
    assert storage.code_status(ELECTION, (2).to_bytes(32, "big"))[0] == "unused"


def test_a_group_is_bounded(storage):
    intake = CastIntake(storage, max_group=4)
    outcomes = intake.cast_many([request(i, f"m{i:03d}") for i in range(10)])
    assert all(o.stored for o in outcomes)
    assert intake.transactions >= 3  # 10 ballots, at most 4 per transaction
    intake.close()
    with pytest.raises(ValueError):
        CastIntake(storage, max_group=0)
