"""Audit throughput: ``audit_record`` on a 1-million-entry election record, in entries per second.

The record is built by ``bench/audit_scale.py`` (random valid ballots in the published
layout, a signed checkpoint every 1,000 entries, the signed tally, the manifest; not
timed). Side by side in the same rounds, the floor any audit must pay: reading
``entries.jsonl`` and folding the RFC 9162 root of its leaf hashes
(``hsm_signer.log.tree.CompactRange``, the product's one tree builder), nothing else. The ratio says what the full check
(manifest hashes, strict parsing and recount of every ballot, every checkpoint's
signature and consistency, the tally's signature and counts) costs on top.
"""

from __future__ import annotations

import time

from .common import Context, fmt
from .stats import median, per_round_ratios

NAME = "audit"
TITLE = "Audit throughput on a 1-million-entry election record"


def _floor(record) -> float:
    """Seconds to read the entries and compute their Merkle root (the least an audit does)."""
    from hsm_signer.log.merkle import leaf_hash
    from hsm_signer.log.tree import CompactRange

    started = time.perf_counter()
    root, hashes = CompactRange(), bytearray()
    with open(record / "entries.jsonl", "rb") as handle:
        for line in handle:
            hashes += leaf_hash(line[:-1])
            if len(hashes) >= 1 << 20:
                root.extend(hashes)
                hashes.clear()
    root.extend(hashes)
    root.root()
    return time.perf_counter() - started


def run(ctx: Context) -> dict:
    from hsm_signer.audit import audit_record

    from .audit_scale import build_record

    entries, rounds = ctx.size(1_000_000, 5_000), ctx.size(3, 2)
    record = ctx.workdir / "record"
    started = time.perf_counter()
    build_record(record, entries, 1000, 2026)
    built = time.perf_counter() - started
    size_mb = sum(p.stat().st_size for p in record.rglob("*") if p.is_file()) / 1e6
    ctx.log(f"audit: built a record of {entries:,} entries ({size_mb:,.0f} MB) in {built:.1f} s")
    audit_rates, floor_rates = [], []
    checkpoints = 0
    for r in range(rounds):
        for which in (("audit", "floor") if r % 2 == 0 else ("floor", "audit")):
            if which == "audit":
                t = time.perf_counter()
                result = audit_record(record)
                audit_rates.append(result.tree_size / (time.perf_counter() - t))
                checkpoints = result.checkpoints
            else:
                floor_rates.append(entries / _floor(record))
        ctx.log(f"audit round {r + 1}: audit {audit_rates[-1]:,.0f} entries/s, floor {floor_rates[-1]:,.0f} entries/s")
    ratio = round(median(per_round_ratios(audit_rates, floor_rates)), 3)
    rate = median(audit_rates)
    summary = (f"{rate:,.0f} entries/s: a {entries:,}-entry record ({size_mb:,.0f} MB, {checkpoints:,} signed "
               f"checkpoints) audited in {entries / rate:.1f} s; {ratio:.2f}× the rate of merely hashing its "
               f"entries into the Merkle root ({median(floor_rates):,.0f}/s)")
    return {"summary": summary, "ratios": {"audit_over_hash_floor": ratio},
            "entries": entries, "checkpoints": checkpoints, "record_mb": round(size_mb, 1),
            "build_seconds": round(built, 1),
            "audit_entries_per_s": round(rate), "floor_entries_per_s": round(median(floor_rates)),
            "rounds": {"audit": [round(x) for x in audit_rates], "floor": [round(x) for x in floor_rates]}}


def render(result: dict, charts) -> str:
    lines = [result["summary"] + ".", "",
             "| | entries/s (median) | rounds |", "|---|---:|---|",
             f"| `audit_record` (everything) | {fmt(result['audit_entries_per_s'])} | "
             f"{', '.join(f'{x:,}' for x in result['rounds']['audit'])} |",
             f"| floor: read + leaf hash + root | {fmt(result['floor_entries_per_s'])} | "
             f"{', '.join(f'{x:,}' for x in result['rounds']['floor'])} |", "",
             f"Record built by bench/audit_scale.py in {result['build_seconds']} s (not timed)."]
    return "\n".join(lines)
