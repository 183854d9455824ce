"""Sequencer under load: ballots per second with a fast and a slow HSM, in one process.

N ballots are cast through the product's :class:`~hsm_signer.ballots.BallotBox`
(code HMAC; the ballot stored by the box's intake writer, which commits the ballots that
queued up meanwhile in one fsynced SQLite transaction; then waiting for the signed
receipt) by C concurrent client threads, while one :class:`~hsm_signer.sequencer.Sequencer`
signs a checkpoint per batch. Variants, rounds interleaved, each round on a fresh
database:

* keys in software (``SoftwareSigner``/``SoftwareMac``) or on SoftHSM2 (the product's
  ``HsmSigner``/``HsmMac``);
* a fast HSM, or the same key behind :class:`bench.slowhsm.SlowSigner` (+100 ms per
  signature: a USB-class HSM at ~10 signatures/s), and on SoftHSM also the
  "device-exclusive" model, where the delay holds the process's PKCS#11 lock as a
  one-thing-at-a-time device would, so the code HMACs of the casting threads wait too;
* one signature per ballot (``batch_size=1``) behind the same slow HSM: the design the
  batching avoids, measured on a few ballots.

This is the core without HTTP: the web benchmark (``cast``) measures the served app.
"""

from __future__ import annotations

import queue
import threading
import time

from .common import ELECTION_DEFINITION, VOTES, Context, fmt
from .stats import latency_summary, median, per_round_ratios

NAME = "sequencer"
TITLE = "Sequencer under load: batching with a fast and a slow (USB-class) HSM"


def cast_burst(directory, signer, mac, *, ballots: int, clients: int, batch_size: int = 1000,
               hold_lock=None) -> dict:
    """Issue ``ballots`` codes, cast them all from ``clients`` threads; return rate and latencies."""
    from hsm_signer import codes as codes_mod
    from hsm_signer.ballots import BallotBox
    from hsm_signer.election import Election
    from hsm_signer.log.receipt import Receipt
    from hsm_signer.notify import BatchWaiter, Notifier
    from hsm_signer.sequencer import Sequencer, SignerState
    from hsm_signer.storage.sqlite import SQLiteStorage
    from hsm_signer.testing.service import open_election_on

    directory.mkdir(parents=True, exist_ok=True)
    storage = SQLiteStorage(directory / "ballots.sqlite3")
    election = Election.from_dict(ELECTION_DEFINITION)
    issued = open_election_on(storage, mac, ELECTION_DEFINITION, ballots)
    notifier = Notifier()
    box = BallotBox(storage, mac, notifier, waiter=BatchWaiter(notifier), receipt_timeout=60)
    sequencer = Sequencer(storage, signer, "bench/checkpoint", SignerState(directory / "signer-state.json"),
                          batch_size=batch_size, notifier=notifier)
    work: queue.SimpleQueue = queue.SimpleQueue()
    for i, (code, _) in enumerate(issued):
        work.put((codes_mod.display(code), VOTES[i % len(VOTES)]))
    latencies: list[float] = []
    receipts: list[Receipt] = []
    errors: list[str] = []

    def client() -> None:
        while True:
            try:
                code, vote = work.get_nowait()
            except queue.Empty:
                return
            start = time.perf_counter()
            try:
                receipt = box.cast(election.id, code, vote).receipt
            except Exception as exc:  # counted and reported, never hidden
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - start)
            receipts.append(receipt)

    sequencer.start()
    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    sequencer.stop()
    box.close()
    try:
        size = storage.tree_size(election.id)
        indexes = sorted(r.leaf_index for r in receipts)
        if indexes != list(range(size)) or size != ballots - len(errors):
            raise AssertionError(f"{len(receipts)} receipts for a tree of {size}: the run is not a result")
    finally:
        storage.close()
    return {
        "ballots": ballots, "clients": clients, "batch_size": batch_size, "seconds": round(elapsed, 3),
        "ballots_per_s": round(len(receipts) / elapsed, 1), "errors": len(errors), "first_errors": errors[:3],
        "signatures": sequencer.signatures,
        "signatures_per_ballot": round(sequencer.signatures / max(len(receipts), 1), 4),
        "latency": latency_summary(latencies),
    }


class _TimedStorage:
    """The storage, with the time its ``cast_many`` transactions take added up."""

    def __init__(self, inner):
        self._inner = inner
        self.seconds = 0.0

    def cast_many(self, requests):
        started = time.perf_counter()
        try:
            return self._inner.cast_many(requests)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _TimedSigner:
    """A signer that adds up the time its signatures take."""

    def __init__(self, inner):
        self._inner = inner
        self.seconds = 0.0
        self.algorithm, self.key_id, self.public_key_der = inner.algorithm, inner.key_id, inner.public_key_der

    def sign(self, message: bytes) -> bytes:
        started = time.perf_counter()
        try:
            return self._inner.sign(message)
        finally:
            self.seconds += time.perf_counter() - started


def anatomy(directory, signer, mac, *, ballots: int, batch: int = 100) -> dict:
    """Microseconds per step of one ballot's way to a receipt, one thread, no contention.

    The steps ``BallotBox.submit`` and the sequencer take, timed one by one with the
    product's own functions: code HMAC (in the HSM), the sealed code-to-ballot link,
    the leaf, storing the ballot through the box's intake (the hand-off to its writer
    thread and the fsynced transaction that consumes the code and stores the ballot; one
    ballot per transaction here, as for a lone voter), the sequencer's batch (per ballot,
    batches of ``batch``), and building the receipt (entry, covering checkpoint,
    inclusion proof).
    """
    from hsm_signer import codes as codes_mod
    from hsm_signer.ballots import BallotBox, ballot_digest, seal_link
    from hsm_signer.canonical import canonicalize
    from hsm_signer.election import OPEN, Election
    from hsm_signer.intake import CastIntake
    from hsm_signer.log.leaf import BALLOT, Leaf
    from hsm_signer.sequencer import Sequencer, SignerState
    from hsm_signer.storage.base import ONLINE, CastRequest
    from hsm_signer.storage.sqlite import SQLiteStorage
    from hsm_signer.testing.service import open_election_on

    directory.mkdir(parents=True, exist_ok=True)
    storage = SQLiteStorage(directory / "ballots.sqlite3")
    election = Election.from_dict(ELECTION_DEFINITION)
    issued = open_election_on(storage, mac, ELECTION_DEFINITION, ballots)
    stored = _TimedStorage(storage)  # the intake writer thread's transactions, timed
    box = BallotBox(storage, mac, None, intake=CastIntake(stored))
    timed = _TimedSigner(signer)  # the checkpoint signatures of the drain, timed
    sequencer = Sequencer(storage, timed, "bench/checkpoint", SignerState(directory / "signer-state.json"),
                          batch_size=batch)
    steps = {name: 0.0 for name in ("code HMAC (HSM)", "seal code-to-ballot link", "leaf (canonical JSON)",
                                    "store through the intake's writer thread",
                                    "  of which: consume code + ballot (fsynced transaction)",
                                    "sequencer batch, per ballot", "  of which: checkpoint signature",
                                    "receipt (entry, checkpoint, proof)")}
    clock = time.perf_counter
    ids = []
    for i, (code, _) in enumerate(issued):
        t0 = clock()
        digest = mac.mac(codes_mod.code_message(election.id, code))
        t1 = clock()
        clean = election.validate_selections(VOTES[i % len(VOTES)])
        leaf = Leaf.new(election.id, BALLOT, clean)
        t2 = clock()
        link = seal_link(code, election.id, leaf.ballot_id,
                         ballot_digest(code, election.id, b"selections\x00" + canonicalize(clean)))
        t3 = clock()
        box.intake.cast(CastRequest(election.id, digest, ONLINE, leaf.ballot_id, leaf.to_bytes(), link,
                                    require_state=OPEN, link_until=int(time.time()) + 1800))
        t4 = clock()
        steps["code HMAC (HSM)"] += t1 - t0
        steps["leaf (canonical JSON)"] += t2 - t1
        steps["seal code-to-ballot link"] += t3 - t2
        steps["store through the intake's writer thread"] += t4 - t3
        ids.append(leaf.ballot_id)
    box.close()
    steps["  of which: consume code + ballot (fsynced transaction)"] = stored.seconds
    t = clock()
    sequencer.drain(election.id)
    steps["sequencer batch, per ballot"] = clock() - t
    steps["  of which: checkpoint signature"] = timed.seconds
    t = clock()
    for ballot_id in ids:
        box.receipt(ballot_id)
    steps["receipt (entry, checkpoint, proof)"] = clock() - t
    storage.close()
    per = {name: round(total / ballots * 1e6, 1) for name, total in steps.items()}
    per["total per ballot"] = round(sum(v for k, v in per.items() if not k.startswith(" ")), 1)
    return {"ballots": ballots, "batch": batch, "signatures": sequencer.signatures, "us_per_ballot": per}


def run(ctx: Context) -> dict:
    from hsm_signer.hsm.manage import generate_mac_key, generate_signing_key
    from hsm_signer.signer import SoftwareMac, SoftwareSigner

    from . import hsmkit
    from .slowhsm import SlowSigner

    conf = hsmkit.token_directory(ctx.workdir)
    token = hsmkit.new_token(conf, "bench-sequencer")
    hsm = hsmkit.open_hsm(token)
    hsm_signer = generate_signing_key(hsm, "bench-checkpoint", b"\x01")
    hsm_mac = generate_mac_key(hsm, "bench-codes", b"\x02")
    soft_signer, soft_mac = SoftwareSigner.generate(), SoftwareMac(b"bench-code-key".ljust(32, b"."))

    ballots, clients, rounds = ctx.size(2000, 150), 32, ctx.size(3, 1)
    variants = {
        "software, fast HSM": lambda: (soft_signer, soft_mac),
        "software, slow HSM": lambda: (SlowSigner(soft_signer), soft_mac),
        "SoftHSM, fast HSM": lambda: (hsm_signer, hsm_mac),
        "SoftHSM, slow HSM": lambda: (SlowSigner(hsm_signer), hsm_mac),
        "SoftHSM, slow HSM, device-exclusive": lambda: (SlowSigner.around_hsm(hsm_signer), hsm_mac),
    }
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    names = list(variants)
    serial = 0
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            signer, mac = variants[name]()
            serial += 1
            result = cast_burst(ctx.workdir / f"run-{serial}", signer, mac, ballots=ballots, clients=clients)
            runs[name].append(result)
            ctx.log(f"sequencer/{name} round {r + 1}: {result['ballots_per_s']:,} ballots/s, "
                    f"{result['signatures']} signatures, p99 {result['latency']['p99_ms']} ms")
    # The design batching replaces: one signature per ballot behind the same slow HSM.
    per_ballot = []
    for _ in range(rounds):
        serial += 1
        result = cast_burst(ctx.workdir / f"run-{serial}", SlowSigner(soft_signer), soft_mac,
                            ballots=ctx.size(40, 10), clients=ctx.size(40, 10), batch_size=1)
        per_ballot.append(result)
        ctx.log(f"sequencer/one signature per ballot, slow HSM: {result['ballots_per_s']} ballots/s")
    cost = anatomy(ctx.workdir / "anatomy", hsm_signer, hsm_mac, ballots=ctx.size(3000, 300))
    ctx.log(f"sequencer/anatomy: {cost['us_per_ballot']}")
    hsm.close()

    def med(name: str, key: str) -> float:
        return median([run[key] for run in runs[name]])

    table = {}
    for name in names:
        table[name] = {
            "ballots_per_s": round(med(name, "ballots_per_s"), 1),
            "signatures_per_ballot": round(median([run["signatures_per_ballot"] for run in runs[name]]), 4),
            "p50_ms": median([run["latency"]["p50_ms"] for run in runs[name]]),
            "p95_ms": median([run["latency"]["p95_ms"] for run in runs[name]]),
            "p99_ms": median([run["latency"]["p99_ms"] for run in runs[name]]),
            "errors": sum(run["errors"] for run in runs[name]),
        }
    table["one signature per ballot, slow HSM"] = {
        "ballots_per_s": round(median([run["ballots_per_s"] for run in per_ballot]), 2),
        "signatures_per_ballot": round(median([run["signatures_per_ballot"] for run in per_ballot]), 4),
        "p50_ms": median([run["latency"]["p50_ms"] for run in per_ballot]),
        "p95_ms": median([run["latency"]["p95_ms"] for run in per_ballot]),
        "p99_ms": median([run["latency"]["p99_ms"] for run in per_ballot]),
        "errors": sum(run["errors"] for run in per_ballot),
    }

    def rates(name: str) -> list[float]:
        return [run["ballots_per_s"] for run in runs[name]]

    ratios = {
        "software.slow_over_fast": round(median(per_round_ratios(rates("software, slow HSM"), rates("software, fast HSM"))), 3),
        "softhsm.slow_over_fast": round(median(per_round_ratios(rates("SoftHSM, slow HSM"), rates("SoftHSM, fast HSM"))), 3),
        "softhsm.exclusive_slow_over_fast": round(median(per_round_ratios(
            rates("SoftHSM, slow HSM, device-exclusive"), rates("SoftHSM, fast HSM"))), 3),
        "softhsm_over_software.fast": round(median(per_round_ratios(rates("SoftHSM, fast HSM"), rates("software, fast HSM"))), 3),
        "batched_slow_over_one_signature_per_ballot": round(
            table["SoftHSM, slow HSM"]["ballots_per_s"] / table["one signature per ballot, slow HSM"]["ballots_per_s"], 1),
    }
    slow, fast = table["SoftHSM, slow HSM"], table["SoftHSM, fast HSM"]
    summary = (f"SoftHSM keys, {clients} clients: {fast['ballots_per_s']:,.0f} ballots/s with the fast HSM, "
               f"{slow['ballots_per_s']:,.0f}/s with +100 ms per signature ({ratios['softhsm.slow_over_fast']:.2f}×; "
               f"{slow['signatures_per_ballot']:.3f} signatures per ballot); one signature per ballot would give "
               f"{table['one signature per ballot, slow HSM']['ballots_per_s']:.1f} ballots/s")
    ratios["one_thread_ceiling_ballots_per_s"] = round(1e6 / cost["us_per_ballot"]["total per ballot"], 1)
    return {"summary": summary, "ratios": ratios, "table": table, "runs": runs, "anatomy": cost,
            "one_signature_per_ballot_runs": per_ballot,
            "params": {"ballots": ballots, "clients": clients, "rounds": rounds, "batch_size": 1000,
                       "slow_delay_ms": 100}}


def render(result: dict, charts) -> str:
    table = result["table"]
    p = result["params"]
    lines = [result["summary"] + ".", "",
             f"{p['ballots']:,} ballots per run from {p['clients']} client threads (each casts, waits for its "
             f"receipt, casts the next), median of {p['rounds']} interleaved rounds; batch size up to "
             f"{p['batch_size']}; slow HSM = +{p['slow_delay_ms']} ms per signature.", "",
             "| variant | ballots/s | signatures per ballot | p50 ms | p95 ms | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in table.items():
        lines.append(f"| {name} | {fmt(row['ballots_per_s'])} | {row['signatures_per_ballot']:.4f} | "
                     f"{fmt(row['p50_ms'])} | {fmt(row['p95_ms'])} | {fmt(row['p99_ms'])} | {row['errors']} |")
    lines.append("")
    lines.append("Ratios: " + ", ".join(f"{k} = {v}" for k, v in result["ratios"].items()) + ".")
    cost = result.get("anatomy")
    if cost:
        lines += ["", f"**Anatomy of a ballot** (SoftHSM keys, one thread, no contention; {cost['ballots']:,} ballots, "
                  f"sequenced in batches of {cost['batch']}): µs per ballot for each step the product takes; "
                  "indented rows are part of the row above.", "",
                  "| step | µs per ballot |", "|---|---:|"]
        lines += [f"| {step} | {fmt(us)} |" for step, us in cost["us_per_ballot"].items()]
        ceiling = 1e6 / cost["us_per_ballot"]["total per ballot"]
        lines += ["", f"One ballot at a time, nothing else running: {ceiling:,.0f} "
                  "ballots/s. Under load the intake's writer stores every ballot that queued up during its last "
                  "commit in one transaction, so the fsynced transaction is shared by several ballots while the "
                  "other steps are not; the receipt's cost stays flat as the tree grows (node reads are primary-key "
                  "lookups: see the tree benchmark). The gap between this figure and the concurrent rates above is "
                  "what concurrency costs or saves (threads queueing for the GIL and the writer, commits shared), "
                  "not work."]
    lines.append("")
    lines.append(charts.hbars("sequencer", list(table), [row["ballots_per_s"] for row in table.values()],
                              title="Ballots per second with receipts (core, no HTTP)", xlabel="ballots/s (log)",
                              logx=True, annotate=[f"{fmt(row['ballots_per_s'])}/s, p99 {fmt(row['p99_ms'])} ms"
                                                   for row in table.values()]))
    return "\n".join(lines)
