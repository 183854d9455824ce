"""Wake-ups: a committed batch wakes the requests whose ballots it sequenced, and no others."""

from __future__ import annotations

import threading
import time

from hsm_signer.notify import BatchWaiter, Notifier, PollingWaiter, ReceiptWaiter
from hsm_signer.watch import CommitWatcher


def _until(condition, timeout: float = 5.0) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(0.001)


def _registered(notifier, count: int) -> None:
    """Wait until ``count`` requests sleep on ``notifier``: a thread that has started may not be
    waiting yet, and a batch announced before it is would (by design) not wake it."""
    _until(lambda: notifier.waiters() >= count)


def _waiter(notifier, results, key, *args):
    """A thread waiting on ``notifier`` (at most 5 s), returned once it is registered there."""
    def run():
        results[key] = notifier.wait(5.0, *args)
    before = notifier.waiters()
    thread = threading.Thread(target=run)
    thread.start()
    _registered(notifier, before + 1)
    return thread


def test_a_batch_wakes_only_the_waiters_it_sequenced():
    notifier = Notifier()
    results: dict = {}
    threads = [_waiter(notifier, results, seq, "e", seq) for seq in (3, 7, 12)]
    other = _waiter(notifier, results, "other-election", "f", 1)
    notifier.notify("e", 7)
    threads[0].join(1), threads[1].join(1)
    # the batch took exactly its own waiters off the notifier: 12 and the other election still sleep
    assert notifier.waiters() == 2 and results == {3: True, 7: True}
    notifier.notify("e", 12)
    threads[2].join(1)
    assert results[12] is True and "other-election" not in results
    notifier.notify()  # no election: everyone
    other.join(1)
    assert results["other-election"] is True
    assert notifier.sequenced_through("e") == 12 and notifier.sequenced_through("f") == -1


def test_a_waiter_without_a_seq_wakes_at_the_next_batch_of_any_election():
    notifier = Notifier()
    results: dict = {}
    thread = _waiter(notifier, results, "any")
    notifier.notify("e", 1)
    thread.join(1)
    assert results == {"any": True}


def test_a_waiter_whose_entry_was_already_reported_waits_for_the_next_batch():
    notifier = Notifier()
    notifier.notify("e", 10)
    results: dict = {}
    thread = _waiter(notifier, results, "late", "e", 5)  # seq 5 <= 10: not found yet, so any batch
    assert notifier.waiters() == 1 and "late" not in results
    notifier.notify("e", 11)
    thread.join(1)
    assert results == {"late": True}


def test_a_timed_out_waiter_leaves_nothing_behind():
    notifier = Notifier()
    assert notifier.wait(0.01, "e", 4) is False
    assert notifier.wait(0.01) is False
    assert notifier._waiting.get("e") == [] and notifier._next_batch == []


def test_the_watcher_turns_another_process_s_commits_into_wake_ups(tmp_path):
    """Storage shows a new checkpoint (another process's sequencer): the waiters of its entries wake."""
    from hsm_signer.election import Election
    from hsm_signer.storage import open_storage

    from servicekit import DEMO_ELECTION

    election = DEMO_ELECTION["id"]
    store = open_storage(f"sqlite:///{tmp_path}/db.sqlite3")
    store.create_election(Election.from_dict(DEMO_ELECTION))
    store.set_state(election, "open")
    store.add_codes(election, [bytes([i]) * 32 for i in range(3)])
    seqs = [store.cast(election, bytes([i]) * 32, "online", f"w{i}".ljust(32, "0"), b"leaf", b"link",
                       require_state="open").entry.seq for i in range(3)]
    notifier = Notifier()
    watcher = CommitWatcher(store, notifier, interval=0.002).start()
    results: dict = {}
    try:
        first, last = _waiter(notifier, results, "first", election, seqs[0]), _waiter(notifier, results, "last", election, seqs[2])
        store.commit_batch(election, [(seqs[0], 0), (seqs[1], 1)], [], 2, "note-2")
        first.join(2)
        _until(lambda: notifier.sequenced_through(election) == seqs[1])  # the watcher saw that batch
        assert notifier.waiters() == 1 and results == {"first": True}  # ...and left "last" asleep
        store.commit_batch(election, [(seqs[2], 2)], [], 3, "note-3")
        last.join(2)
        assert results == {"first": True, "last": True}
        assert notifier.sequenced_through(election) == seqs[2]
        straggler = _waiter(notifier, results, "straggler", election, seqs[2] + 100)
    finally:
        watcher.stop()
        store.close()
    straggler.join(2)
    assert results["straggler"] is True  # a stopping watcher wakes every waiter to look once more


def test_a_batch_waiter_looks_only_once_its_batch_is_committed_or_now_and_then():
    notifier = Notifier()
    waiter = BatchWaiter(notifier, recheck=0.05)
    assert isinstance(waiter, ReceiptWaiter)
    assert not waiter.ready("e", 5) and waiter.ready("e", None) and waiter.ready(None, None)
    started = time.monotonic()
    assert waiter.wait("e", 5, 10.0) is True  # nobody announced a batch: look anyway after `recheck`
    assert 0.04 <= time.monotonic() - started < 2
    results: dict = {}
    patient = BatchWaiter(notifier, recheck=10.0)  # only its batch can wake it within the test

    def wait():
        results["looked"] = patient.wait("e", 5, 10.0)
    thread = threading.Thread(target=wait)
    started = time.monotonic()
    thread.start()
    _registered(notifier, 1)
    notifier.notify("e", 4)  # not its batch: it keeps sleeping
    assert notifier.waiters() == 1 and "looked" not in results
    notifier.notify("e", 5)
    thread.join(5)
    assert results == {"looked": True} and time.monotonic() - started < 5
    assert waiter.ready("e", 5) and not waiter.ready("e", 6)


def test_a_polling_waiter_always_looks_after_its_interval_or_the_timeout():
    waiter = PollingWaiter(interval=0.03)
    assert isinstance(waiter, ReceiptWaiter) and waiter.ready("e", 5)
    started = time.monotonic()
    assert waiter.wait("e", 5, 10.0) is True
    assert waiter.wait("e", 5, 0.0) is True
    assert 0.025 <= time.monotonic() - started < 2
