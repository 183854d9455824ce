"""Tree scaling: append and proof cost per operation as the log grows to 10 million leaves.

The claim under test (``hsm_signer/log/tree.py``): appends and proofs cost O(log n) node
reads, never O(n), so the time per operation stays flat as the election grows. The same
``MerkleTree`` code runs over three node stores, measured at growing sizes:

* ``memory`` — :class:`ArrayNodeStore` below, one ``bytearray`` per tree level (32 bytes
  per node): compact enough to hold a 10-million-leaf tree (~640 MB) and fast enough that
  the tree's own work dominates; to 10 million leaves;
* ``memory-dict`` — the project's own ``InMemoryNodeStore`` (a dict), to 1 million;
* ``sqlite`` — the service's SQLite ``nodes`` table, read through the product's
  ``SQLiteStorage.get_nodes`` (what ``StoreView`` calls) and written with the same
  ``INSERT`` that ``commit_batch`` runs, one fsynced transaction (WAL, synchronous=FULL)
  per append; to 1 million leaves.

At each size: a 1000-leaf append (the sequencer's default batch), a 1-leaf append (the
worst case per leaf: a whole right-edge read for one leaf), an inclusion proof for a
random leaf and a consistency proof from a random earlier size to the current one, each a
median over rounds. Growing between sizes uses large appends and is not timed.
"""

from __future__ import annotations

import math
import os
import random
import time
from functools import partial
from pathlib import Path

from .common import Context, fmt
from .stats import median

NAME = "tree"
TITLE = "Merkle tree scaling (append and proofs, to 10 million leaves)"

OPERATIONS = ("append_batch_per_leaf", "append_single", "inclusion", "consistency")
OPERATION_LABELS = {
    "append_batch_per_leaf": "append, 1000-leaf batch (per leaf)",
    "append_single": "append, 1 leaf",
    "inclusion": "inclusion proof",
    "consistency": "consistency proof",
}


class ArrayNodeStore:
    """A benchmark :class:`~hsm_signer.log.tree.NodeStore`: one bytearray per level.

    ``MerkleTree.append`` writes every level's nodes in increasing index order, so each
    level is an append-only array of 32-byte hashes. Rewriting a node with another hash
    is refused, as the contract requires.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    def get_nodes(self, keys):
        from hsm_signer.log.tree import MissingNodeError
        levels = self._levels
        out = []
        for level, index in keys:
            start = index * 32
            if level >= len(levels) or start + 32 > len(levels[level]):
                raise MissingNodeError(f"tree node (level {level}, index {index}) is not in the store")
            out.append(bytes(levels[level][start:start + 32]))
        return out

    def put_nodes(self, items) -> None:
        levels = self._levels
        for level, index, value in items:
            while len(levels) <= level:
                levels.append(bytearray())
            array = levels[level]
            start = index * 32
            if start == len(array):
                array += value
            elif start > len(array):
                raise ValueError(f"tree node (level {level}, index {index}) written out of order")
            elif array[start:start + 32] != value:
                raise ValueError(f"tree node (level {level}, index {index}) is already stored with another hash")

    def nbytes(self) -> int:
        return sum(len(a) for a in self._levels)


class SqliteNodeStore:
    """The service's SQLite nodes table: the product's reads, the product's INSERT for writes."""

    def __init__(self, path: Path, election_id: str = "bench-tree"):
        from hsm_signer.election import Election
        from hsm_signer.storage.sqlite import SQLiteStorage
        from .common import ELECTION_DEFINITION

        self.storage = SQLiteStorage(path)
        self.election = election_id
        self.storage.create_election(Election.from_dict({**ELECTION_DEFINITION, "id": election_id}))

    def get_nodes(self, keys):
        return self.storage.get_nodes(self.election, keys)

    def put_nodes(self, items) -> None:
        rows = [(self.election, level, index, value) for level, index, value in items]
        # The statement and transaction commit_batch uses (BEGIN IMMEDIATE ... COMMIT,
        # fsynced), without the entries bookkeeping that is not the tree's cost.
        with self.storage._write() as db:
            db.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        self.storage.close()


def _leaf_hashes(count: int) -> list[bytes]:
    blob = os.urandom(32 * count)
    return [blob[i:i + 32] for i in range(0, 32 * count, 32)]


def _sizes(limit: int) -> list[int]:
    """1e3, 3e3, 1e4, 3e4, ... up to ``limit``."""
    sizes, decade = [], 1000
    while decade <= limit:
        sizes += [s for s in (decade, 3 * decade) if s <= limit]
        decade *= 10
    return sizes


def _timed(operations, budget: float) -> float:
    """Microseconds per call of the callables in ``operations``, stopping after ``budget`` s."""
    done = 0
    start = time.perf_counter()
    for operation in operations:
        operation()
        done += 1
        if time.perf_counter() - start > budget:
            break
    return (time.perf_counter() - start) / done * 1e6


def _measure(tree, rounds: int, proofs: int, singles: int, rng: random.Random, budget: float) -> dict[str, float]:
    """Microseconds per operation (medians over rounds) at the tree's current size.

    Each operation gets at most ``budget`` seconds per round, so a store whose cost grows
    with the tree cannot stall the run (it shows up as a rising line instead).
    """
    from hsm_signer.log.merkle import verify_consistency, verify_inclusion

    per_op: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    for _ in range(rounds):
        batch = _leaf_hashes(1000)
        per_op["append_batch_per_leaf"].append(_timed([partial(tree.append, batch)], budget) / 1000)
        per_op["append_single"].append(_timed([lambda h=h: tree.append([h]) for h in _leaf_hashes(singles)], budget))
        size = tree.size
        per_op["inclusion"].append(_timed(
            [partial(tree.inclusion_proof, rng.randrange(size)) for _ in range(proofs)], budget))
        per_op["consistency"].append(_timed(
            [partial(tree.consistency_proof, rng.randrange(1, size)) for _ in range(proofs)], budget))

    # Not timed: the proofs are right (a fast wrong answer is not a result).
    root, size = tree.root(), tree.size
    index, old = rng.randrange(size), rng.randrange(1, size)
    verify_inclusion(tree.leaf_hash(index), index, size, tree.inclusion_proof(index), root)
    verify_consistency(old, size, tree.consistency_proof(old), tree.root(old), root)
    return {op: median(values) for op, values in per_op.items()}


def _grow_and_measure(ctx: Context, label: str, store, limit: int, *, grow_batch: int, rounds: int,
                      proofs: int, singles: int, budget: float, time_limit: float, slow_ms: float) -> dict:
    """Grow the tree through the sizes of :func:`_sizes` and measure at each one.

    Stops early (saying why) past ``time_limit`` seconds, or once an inclusion proof
    costs more than ``slow_ms``: by then the line has made its point.
    """
    from hsm_signer.log.tree import MerkleTree

    rng = random.Random(8)
    tree = MerkleTree(store)
    points = []
    started = time.monotonic()
    grow_seconds = 0.0
    stopped = None
    for target in _sizes(limit):
        grow_start = time.perf_counter()
        while tree.size < target:
            tree.append(_leaf_hashes(min(grow_batch, target - tree.size)))
        grow_seconds += time.perf_counter() - grow_start
        result = _measure(tree, rounds, proofs, singles, rng, budget)
        points.append({"size": target, **{op: round(v, 3) for op, v in result.items()}})
        ctx.log(f"tree/{label}: size {target:>10,}: " + ", ".join(f"{op} {v:.1f} µs" for op, v in result.items()))
        if target < limit and time.monotonic() - started > time_limit:
            stopped = f"stopped at {target:,} leaves: the {time_limit:.0f} s time limit"
        elif target < limit and result["inclusion"] > slow_ms * 1000:
            stopped = (f"stopped at {target:,} leaves: an inclusion proof already takes "
                       f"{result['inclusion'] / 1000:.0f} ms (over {slow_ms:.0f} ms)")
        if stopped:
            ctx.log(f"tree/{label}: {stopped}")
            break
    growth_rate = tree.size / grow_seconds if grow_seconds else math.nan
    return {"points": points, "largest": points[-1]["size"], "grow_leaves_per_s": round(growth_rate),
            "stopped": stopped}


def run(ctx: Context) -> dict:
    from hsm_signer.log.tree import InMemoryNodeStore

    limits = {
        "memory": ctx.size(10_000_000, 30_000),
        "memory-dict": ctx.size(1_000_000, 10_000),
        "sqlite": ctx.size(1_000_000, 10_000),
    }
    rounds = ctx.size(7, 3)
    common = dict(rounds=rounds, budget=ctx.size(0.5, 0.05), slow_ms=ctx.size(50, 1e9))
    stores = {}
    stores["memory"] = _grow_and_measure(ctx, "memory", ArrayNodeStore(), limits["memory"], grow_batch=100_000,
                                         proofs=ctx.size(500, 100), singles=ctx.size(200, 50),
                                         time_limit=ctx.size(900, 8), **common)
    stores["memory-dict"] = _grow_and_measure(ctx, "memory-dict", InMemoryNodeStore(), limits["memory-dict"],
                                              grow_batch=100_000, proofs=ctx.size(500, 100),
                                              singles=ctx.size(200, 50), time_limit=ctx.size(300, 5), **common)
    store = SqliteNodeStore(ctx.workdir / "sqlite.sqlite3")
    try:
        stores["sqlite"] = _grow_and_measure(ctx, "sqlite", store, limits["sqlite"], grow_batch=20_000,
                                             proofs=ctx.size(200, 50), singles=ctx.size(20, 5),
                                             time_limit=ctx.size(600, 5), **common)
    finally:
        store.close()
    (ctx.workdir / "sqlite.sqlite3").unlink(missing_ok=True)

    ratios = {}
    for label, data in stores.items():
        first, last = data["points"][0], data["points"][-1]
        for op in OPERATIONS:
            ratios[f"{label}.{op}.largest_over_smallest"] = round(last[op] / first[op], 3)
    # What O(log n) alone predicts between the smallest and the largest size: proofs get
    # longer by this factor (the right-edge read of an append grows the same way).
    memory = stores["memory"]["points"]
    ratios["memory.log2_size_growth"] = round(math.log2(memory[-1]["size"]) / math.log2(memory[0]["size"]), 3)
    sqlite = stores["sqlite"]["points"]
    big = memory[-1]
    summary = (f"at {big['size']:,} leaves (in memory): {big['append_batch_per_leaf']:.1f} µs per appended leaf "
               f"in 1000-leaf batches, {big['inclusion']:.0f} µs per inclusion proof, "
               f"{big['consistency']:.0f} µs per consistency proof; "
               f"{ratios['memory.inclusion.largest_over_smallest']:.2f}× the 1,000-leaf cost "
               f"(log2 growth alone predicts {ratios['memory.log2_size_growth']:.2f}×). "
               f"SQLite through the product's get_nodes: an inclusion proof at {sqlite[-1]['size']:,} leaves costs "
               f"{sqlite[-1]['inclusion'] / 1000:.2f} ms, "
               f"{ratios['sqlite.inclusion.largest_over_smallest']:.2f}× its {sqlite[0]['size']:,}-leaf cost")
    return {"summary": summary, "ratios": ratios, "stores": stores,
            "params": {"limits": limits, "rounds": rounds}}


def render(result: dict, charts) -> str:
    stores = result["stores"]
    panels = [(OPERATION_LABELS[op], {label: ([p["size"] for p in data["points"]], [p[op] for p in data["points"]])
                                      for label, data in stores.items()}) for op in OPERATIONS]
    chart = charts.line_grid("tree-scaling", panels, title="Merkle tree: time per operation vs tree size",
                             xlabel="tree size (leaves)", ylabel="µs per operation", logx=True, logy=True)
    lines = [result["summary"] + ".", ""]
    lines.append("Time per operation (µs, median over rounds) against tree size; "
                 "O(log n) work means a straight, nearly flat line on a log-x axis.")
    lines.append("")
    for label, data in stores.items():
        lines.append(f"**{label}** (grown at {data['grow_leaves_per_s']:,} leaves/s in large appends"
                     + (f"; {data['stopped']}" if data.get("stopped") else "") + ")")
        lines.append("")
        lines.append("| leaves | " + " | ".join(OPERATION_LABELS[op] for op in OPERATIONS) + " |")
        lines.append("|---:|" + "---:|" * len(OPERATIONS))
        for p in data["points"]:
            lines.append(f"| {p['size']:,} | " + " | ".join(fmt(p[op]) for op in OPERATIONS) + " |")
        lines.append("")
    ratios = result["ratios"]
    lines.append("Largest over smallest size (1.0 = perfectly flat; "
                 f"log2 growth of the proof length alone is {ratios['memory.log2_size_growth']:.2f}×):")
    lines.append("")
    lines.append("| store | " + " | ".join(OPERATION_LABELS[op] for op in OPERATIONS) + " |")
    lines.append("|---|" + "---:|" * len(OPERATIONS))
    for label, data in stores.items():
        lines.append(f"| {label} ({data['points'][0]['size']:,} → {data['largest']:,}) | "
                     + " | ".join(f"{ratios[f'{label}.{op}.largest_over_smallest']:.2f}×" for op in OPERATIONS) + " |")
    lines.append("")
    lines.append(chart)
    return "\n".join(lines)
