"""``python -m bench [--smoke] [--only NAME] [--out DIR]``: run the benchmarks, write the report.

Each benchmark runs in its own child process (``--child NAME``) with a time limit and
returns its result as JSON; this process collects them into ``results.json`` and renders
``REPORT.md`` and the PNG charts. With ``--only``, the other benchmarks' earlier results
in ``results.json`` are kept, so one benchmark can be re-run without the others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import machine
from .charts import Charts
from .common import Context

BENCHMARKS = {
    "tree": "bench.tree_scaling",
    "signing": "bench.signing",
    "sequencer": "bench.sequencer_load",
    "cast": "bench.cast",
    "election": "bench.full_election",
    "postal": "bench.postal",
    "audit": "bench.audit_throughput",
    "opening": "bench.opening",
}
"""Name -> module, in report order."""

TIME_LIMITS = {"smoke": 120, "full": 1800}
"""Seconds a child may run before it is stopped (a hung benchmark must not hang CI)."""

DEFAULT_OUT = Path(__file__).with_name("results")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes: every benchmark, in under a minute")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results directory (default: {DEFAULT_OUT})")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary one, removed after)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the scratch directory for inspection")
    parser.add_argument("--render-only", action="store_true",
                        help="only write REPORT.md and the charts again from OUT/results.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _run_child(args: argparse.Namespace) -> int:
    """Inside the child process: run one benchmark, write its result as JSON."""
    module = importlib.import_module(BENCHMARKS[args.child])
    ctx = Context(smoke=args.smoke, workdir=args.workdir, started=time.monotonic())
    load_before = machine.load()
    started = time.perf_counter()
    check = getattr(module, "missing_prerequisite", None)
    reason = check() if check else None
    result = {"skipped": reason, "ratios": {}} if reason else module.run(ctx)
    result.update(title=module.TITLE, seconds=round(time.perf_counter() - started, 1),
                  load_before=load_before, load_after=machine.load(), smoke=args.smoke,
                  finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    args.result_file.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


def _run_benchmark(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    """Run one benchmark in a child process; a failure becomes an ``error`` entry."""
    child_dir = workdir / name
    child_dir.mkdir(parents=True, exist_ok=True)
    result_file = child_dir / "result.json"
    command = [sys.executable, "-m", "bench", "--child", name, "--workdir", str(child_dir),
               "--result-file", str(result_file)] + (["--smoke"] if args.smoke else [])
    limit = TIME_LIMITS["smoke" if args.smoke else "full"]
    print(f"== {name}: {shlex.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, start_new_session=True)
    try:
        code = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)  # the child's own session: its servers and clients too
        process.wait()
        return {"error": f"stopped after the {limit} s time limit", "seconds": round(time.monotonic() - started, 1)}
    if code != 0 or not result_file.exists():
        return {"error": f"the benchmark process exited with status {code}; see its output above",
                "seconds": round(time.monotonic() - started, 1)}
    result = json.loads(result_file.read_text(encoding="utf-8"))
    print(f"== {name}: {result.get('summary', '')} ({result['seconds']} s)", file=sys.stderr, flush=True)
    return result


def _render(results: dict, out: Path) -> None:
    charts = Charts(out)
    info = results["machine"]
    lines = [
        "# hsm-signer benchmarks",
        "",
        f"Last written {results['finished_at']} on {info['cpu_model']}, {info['nproc']} cores, "
        f"{info['memory_gib']} GiB RAM (Linux {info['kernel']}, Python {info['python']}); "
        f"load average at the start of that run {info['load_at_start']}. Each section ends with when its "
        "benchmark ran (`--only NAME` re-runs one and keeps the others' earlier results). "
        f"Reproduce with `{results['command']}`"
        + (" (smoke sizes: structure only, not figures to quote)." if results["smoke"] else "."),
        "",
        "Every comparison below was measured side by side in the same run, rounds interleaved; "
        "figures are medians over the rounds. Software versions: "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v) + ".",
        "",
        "## Summary",
        "",
        "| benchmark | result | goals |",
        "|---|---|---|",
    ]
    for name, result in results["benchmarks"].items():
        goals = result.get("goals", [])
        verdict = ("; ".join(f"{'met' if g['met'] else 'MISSED'}: {g['name']} {g['target']} ("
                             + (f"measured {g['measured']}" if g["measured"] is not None else "")
                             + ("" if g["met"] else (", " if g["measured"] is not None else "") + g.get("shortfall", ""))
                             + ")" for g in goals) or "–")
        text = result.get("summary") or result.get("skipped") or result.get("error", "")
        lines.append(f"| {name} | {text} | {verdict} |")
    lines.append("")
    for name, result in results["benchmarks"].items():
        module = importlib.import_module(BENCHMARKS[name])
        lines.append(f"## {module.TITLE}")
        lines.append("")
        if "error" in result:
            lines += [f"Failed: {result['error']}", ""]
            continue
        if "skipped" in result:
            lines += [f"Skipped: {result['skipped']}", ""]
            continue
        lines.append((module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "))
        lines.append("")
        try:
            lines.append(module.render(result, charts))
        except Exception as exc:  # an old or partial result must not cost the rest of the report
            lines.append(f"(this section could not be rendered: {type(exc).__name__}: {exc})")
        lines.append("")
        lines.append(f"*{result['seconds']} s, finished {result.get('finished_at', '?')}; load average "
                     f"{result['load_before']} before, {result['load_after']} after.*")
        lines.append("")
    (out / "REPORT.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.child:
        return _run_child(args)
    names = args.only or list(BENCHMARKS)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        _render(json.loads((out / "results.json").read_text(encoding="utf-8")), out)
        print(f"wrote {out / 'REPORT.md'}", file=sys.stderr)
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hsm-signer-bench-"))
    command = "python -m bench" + (" --smoke" if args.smoke else "")
    previous: dict = {}
    results_file = out / "results.json"
    if args.only and results_file.exists():
        previous = json.loads(results_file.read_text(encoding="utf-8"))
        if previous.get("smoke") != args.smoke:
            previous = {}  # never mix smoke and full figures in one report
    benchmarks = dict(previous.get("benchmarks", {}))
    info = machine.describe()
    try:
        for name in names:
            try:
                benchmarks[name] = _run_benchmark(name, args, workdir)
            except Exception:
                benchmarks[name] = {"error": traceback.format_exc(limit=3)}
    finally:
        if not (args.keep_workdir or args.workdir):
            shutil.rmtree(workdir, ignore_errors=True)
    results = {
        "format": "hsm-signer/bench/v1",
        "command": command,
        "smoke": args.smoke,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "benchmarks": {n: benchmarks[n] for n in BENCHMARKS if n in benchmarks},
    }
    results_file.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    _render(results, out)
    failed = [n for n in names if "error" in benchmarks[n]]
    print(f"wrote {results_file} and {out / 'REPORT.md'}" + (f"; FAILED: {', '.join(failed)}" if failed else ""),
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
