"""``python -m bench.readme [RESULTS_JSON]``: the README's "Benchmarks" section, from a full run's results.

Prints Markdown: the machine, the command, the headline figures of every benchmark with
its goals (met, or missed and by how much) and the charts, linking to the full report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import fmt

DEFAULT = Path(__file__).with_name("results") / "results.json"


def _goals(result: dict) -> list[str]:
    out = []
    for g in result.get("goals", []):
        verdict = "met" if g["met"] else f"**missed** ({g.get('shortfall', '')})"
        measured = f"measured {g['measured']}, " if g["measured"] is not None else ""
        out.append(f"{g['name']} {g['target']}: {measured}{verdict}")
    return out


def section(results: dict, base: str = "bench/results") -> str:
    info, b = results["machine"], results["benchmarks"]
    lines = ["## Benchmarks", "",
             f"`{results['command']}` measures the claims of issue 8 on one machine and writes "
             f"[`{base}/REPORT.md`]({base}/REPORT.md) (every table, the profiles and the notes), "
             f"`{base}/results.json` and the charts; `python -m bench --smoke` (under a minute, run by "
             "`tests/test_bench_smoke.py`) checks that every benchmark still runs. Latest full run: "
             f"{results['finished_at'][:10]}, {info['cpu_model']}, {info['nproc']} cores, {info['memory_gib']} GiB, "
             f"Python {info['python']}, SoftHSM {info['versions'].get('softhsm2')}, SQLite {info['versions'].get('sqlite')} "
             "(a shared, noisy machine: every comparison is side by side in the same run, medians over rounds).", ""]

    def add(name: str, heading: str, extra: list[str] | None = None, charts: tuple[str, ...] = ()) -> None:
        result = b.get(name)
        if not result:
            return
        lines.append(f"**{heading}.** " + (result.get("summary") or result.get("skipped") or result.get("error", ""))
                     + ".")
        for text in _goals(result) + (extra or []):
            lines.append(f"- {text}")
        lines.append("")
        for chart in charts:
            lines.append(f"![{chart}]({base}/{chart})")
        if charts:
            lines.append("")

    cast = b.get("cast", {})
    table = cast.get("table", {})
    extra = []
    for name in ("sequencer as a thread", "sequencer as a thread, slow HSM", "16 threads, slow HSM",
                 "workers: hsm-signer", "workers: hsm-signer, slow HSM"):
        if name in table:
            row = table[name]
            extra.append(f"{name}: {fmt(row['ok_per_s'])} ballots/s ({row['over_hello']:.2f}× its hello-world), "
                         f"p99 {fmt(row['p99_ms'])} ms")
    add("cast", "Cast throughput vs the framework ceiling (HTTP)", extra, ("cast.png",))
    seq = b.get("sequencer", {})
    extra = []
    if seq.get("anatomy"):
        per = seq["anatomy"]["us_per_ballot"]
        extra.append("one ballot's own work, one thread: " + ", ".join(
            f"{k.strip()} {fmt(v)} µs" for k, v in per.items() if not k.startswith(" ")))
    add("sequencer", "Batching with a slow HSM (the core, no HTTP)", extra, ("sequencer.png",))
    add("election", "The full election at the motivating scale", charts=("election-online.png",)
        if b.get("election", {}).get("runs") else ())
    add("postal", "Postal batches (48,000 rows, sealed)")
    add("tree", "Merkle tree scaling", charts=("tree-scaling.png",))
    add("audit", "Audit throughput")
    add("opening", "Opening the box (sealed ballots)")
    add("signing", "Signing layers", charts=("signing.png",))
    lines.append(f"Reproduce: `{results['command']}` (about 40 minutes; needs `wrk`, SoftHSM2, p11-kit, matplotlib, "
                 "and py-spy for the profiles).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else DEFAULT
    print(section(json.loads(path.read_text(encoding="utf-8"))), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
