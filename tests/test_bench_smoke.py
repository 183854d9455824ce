"""The benchmarks cannot rot: every benchmark runs at smoke size and reports its ratios.

A smoke run checks structure only (every benchmark ran, its side-by-side ratios are
numbers, the report and charts were written), never a wall-clock threshold: CI machines
are shared and their timings mean nothing. The figures to quote come from the full run
(``python -m bench``), committed in ``bench/results/``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _missing_prerequisite(module_name: str) -> str | None:
    module = importlib.import_module(module_name)
    check = getattr(module, "missing_prerequisite", None)
    return check() if check else None


@pytest.mark.slow
def test_a_smoke_run_reports_every_benchmark_with_its_ratios(tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.__main__ import BENCHMARKS

    result = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"smoke run failed:\n{result.stderr[-4000:]}"

    data = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert data["smoke"] is True
    assert data["machine"]["nproc"] >= 1 and data["machine"]["cpu_model"]
    assert list(data["benchmarks"]) == list(BENCHMARKS)
    for name, entry in data["benchmarks"].items():
        assert "error" not in entry, f"{name}: {entry.get('error')}"
        if "skipped" in entry:
            # Only for a part of the system that is genuinely absent here, and never in CI.
            assert not os.environ.get("CI"), f"{name} was skipped in CI: {entry['skipped']}"
            assert _missing_prerequisite(BENCHMARKS[name]) is not None, f"{name} skipped for no reason"
            continue
        assert entry["summary"], name
        ratios = entry["ratios"]
        assert ratios, f"{name} reports no ratios"
        for key, value in ratios.items():
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, f"{name}.{key} = {value!r}"
        for goal in entry.get("goals", []):
            assert {"name", "target", "measured", "met"} <= set(goal), f"{name}: malformed goal {goal}"

    report = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
    assert "smoke sizes" in report
    if importlib.util.find_spec("matplotlib") is not None:
        charts = [line for line in report.splitlines() if line.startswith("![")]
        assert charts, "the report shows no charts"
        for line in charts:
            assert (tmp_path / line.split("(", 1)[1].rstrip(")")).is_file(), line
