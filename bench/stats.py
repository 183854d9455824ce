"""Small statistics for noisy machines: medians over rounds, percentiles, interleaved rounds."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    return {f"p{p}_ms": round(percentile(seconds, p) * 1000, 2) for p in (50, 95, 99)} | {
        "max_ms": round(max(seconds) * 1000, 2) if seconds else math.nan}


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median with min and max, for showing how noisy the rounds were."""
    return {"median": median(values), "min": min(values), "max": max(values), "rounds": len(values)}


def interleaved_rates(variants: dict[str, Callable[[int], None]], operations: int, rounds: int,
                      warmup: int = 0) -> dict[str, list[float]]:
    """Operations per second of each variant, one measurement per variant per round.

    The variants run one after another inside each round, in an order rotated every round,
    so slow drifts of a shared machine's load hit every variant alike; compare medians.
    ``variants[name](n)`` must perform ``n`` operations.
    """
    names = list(variants)
    for name in names:
        if warmup:
            variants[name](warmup)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            start = time.perf_counter()
            variants[name](operations)
            rates[name].append(operations / (time.perf_counter() - start))
    return rates


def ratio_of_medians(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    return median(numerator) / median(denominator)


def per_round_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(numerator, denominator)]
