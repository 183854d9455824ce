"""What every benchmark module shares: its run context and how it states a goal.

A benchmark module has ``NAME``, ``TITLE``, ``run(ctx) -> dict`` (executed in a child
process) and ``render(result, charts) -> str`` (executed by the runner, returns the
report's Markdown section and draws its charts through ``charts``). ``run`` returns at
least ``summary`` (one line) and ``ratios`` (name -> float): the side-by-side comparisons
the smoke test checks for.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ELECTION_DEFINITION = {
    "id": "bench-election",
    "title": "Benchmark election",
    "contests": [
        {"id": "leader", "title": "Leader", "options": [
            {"id": "alice", "title": "Alice"}, {"id": "bob", "title": "Bob"}, {"id": "carol", "title": "Carol"}]},
        {"id": "board", "title": "Board", "max_choices": 2, "options": [
            {"id": "dan", "title": "Dan"}, {"id": "erin", "title": "Erin"}, {"id": "frank", "title": "Frank"}]},
    ],
}
"""The election every benchmark casts in: two contests, like the tests' demo election."""

VOTES = [
    {"leader": ["alice"], "board": ["dan", "erin"]},
    {"leader": ["bob"], "board": ["frank"]},
    {"leader": ["carol"], "board": []},
    {"leader": ["alice"], "board": ["erin"]},
]


@dataclass
class Context:
    smoke: bool
    workdir: Path
    started: float = 0.0

    def size(self, full, smoke):
        """``smoke`` in a smoke run, else ``full``."""
        return smoke if self.smoke else full

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)


def goal(name: str, measured: float, target: float, *, higher_is_better: bool, unit: str = "") -> dict:
    """A goal from the issue, whether it was met, and by how much it was missed (never loosened)."""
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return {"name": name, "target": target, "measured": None, "met": False, "shortfall": "not measured"}
    met = measured >= target if higher_is_better else measured <= target
    relation = "≥" if higher_is_better else "≤"
    entry = {"name": name, "target": f"{relation} {target:g}{unit}", "measured": round(measured, 3), "met": met}
    if not met:
        gap = (target - measured) if higher_is_better else (measured - target)
        entry["shortfall"] = f"missed by {gap:.3g}{unit} ({100 * gap / target:.0f}% of the target)"
    return entry


def fmt(value: float, digits: int = 3) -> str:
    """A number for a report table: thousands separators, ``digits`` significant figures."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"
